package sim_test

import (
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
)

func TestCatalogueIsValidDE43AndMCC(t *testing.T) {
	cat := sim.Catalogue()
	if len(cat) < 30 || len(cat) > 60 {
		t.Errorf("%d merchants, want 30 to 60", len(cat))
	}
	seen := map[string]bool{}
	for _, m := range cat {
		if seen[m.Name] {
			t.Errorf("%q listed twice", m.Name)
		}
		seen[m.Name] = true
		de43 := m.DE43().String()
		if len(de43) != 40 || strings.TrimRight(de43[:25], " ") != m.Name || strings.TrimRight(de43[25:38], " ") != m.City || de43[38:] != m.Country {
			t.Errorf("%q: DE43 %q is not name 25, city 13, country 2 (name or city too long?)", m.Name, de43)
		}
		if m.Name == "" || m.City == "" || len(m.Country) != 2 || strings.ToUpper(m.Country) != m.Country {
			t.Errorf("%q: name, city or country %q malformed", m.Name, m.Country)
		}
		if _, ok := sim.MCCs[m.MCC]; !ok || len(m.MCC) != 4 {
			t.Errorf("%q: MCC %q is not a known 4-digit category", m.Name, m.MCC)
		}
		if m.Currency.Numeric() == "" || m.Min < 1 || m.Max < m.Min || m.Max > 99_999_999 {
			t.Errorf("%q: currency %s or range %d..%d invalid", m.Name, m.Currency, m.Min, m.Max)
		}
		if (m.MCC == "6011") != (m.Presence == sim.ATM) {
			t.Errorf("%q: MCC 6011 is for ATMs and only them", m.Name)
		}
	}
}

func TestTrafficPurchasesParse(t *testing.T) {
	tr := sim.NewTraffic(testCards, nil, 1)
	stans := map[string]bool{}
	now := time.Date(2025, 3, 15, 14, 30, 5, 0, time.UTC)
	for range 2000 {
		req := tr.Purchase(now)
		m, err := req.Message(cardnet.DefaultSpec())
		if err != nil {
			t.Fatalf("Purchase built an invalid request: %v", err)
		}
		got, err := cardnet.ParseRequest(m)
		if err != nil {
			t.Fatal(err)
		}
		if key := got.AcquirerID + got.STAN + got.RRN; stans[key] {
			t.Fatalf("network ids %s reused", key)
		} else {
			stans[key] = true
		}
		if got.Channel() == cardnet.ChannelUnknown {
			t.Errorf("entry mode %s gives no channel", got.POSEntryMode)
		}
		if got.Channel() == cardnet.ChannelECommerce && got.POSEntryMode == "810" && got.CVC2 == "" {
			t.Errorf("e-commerce purchase without CVC2")
		}
		if got.BillingCurrency == got.Currency {
			t.Errorf("DE51 %s repeats DE49: a billing amount is for foreign purchases", got.BillingCurrency)
		}
	}
}

func TestReadCards(t *testing.T) {
	cards, err := sim.ReadCards(strings.NewReader(`[{"pan":"4000001234567899","expiry":"2912","cvc":"123","currency":"GBP"}]`))
	if err != nil || len(cards) != 1 || cards[0].PAN != "4000001234567899" || cards[0].CVC != "123" {
		t.Fatalf("ReadCards: %v %v", cards, err)
	}
	for name, in := range map[string]string{
		"short pan":    `[{"pan":"4000","expiry":"2912","cvc":"123","currency":"GBP"}]`,
		"bad expiry":   `[{"pan":"4000001234567899","expiry":"2913","cvc":"123","currency":"GBP"}]`,
		"bad cvc":      `[{"pan":"4000001234567899","expiry":"2912","cvc":"12","currency":"GBP"}]`,
		"bad currency": `[{"pan":"4000001234567899","expiry":"2912","cvc":"123","currency":"XXX"}]`,
		"empty":        `[]`,
		"unknown key":  `[{"pan":"4000001234567899","expiry":"2912","cvc":"123","currency":"GBP","pin":"1234"}]`,
	} {
		_, err := sim.ReadCards(strings.NewReader(in))
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "4000001234567899") {
			t.Errorf("%s: error shows the full PAN: %v", name, err)
		}
	}
}
