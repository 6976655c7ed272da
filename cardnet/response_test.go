package cardnet_test

import (
	"bytes"
	"testing"

	"github.com/corebank/corebank/cardnet"
)

func TestRespondEchoesWhatTheStandardRequires(t *testing.T) {
	t.Run("0110 approval", func(t *testing.T) {
		req := MustUnpack(t, auth0100)
		resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.Approved, AuthID: "A1B2C3"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.MTI() != "0110" {
			t.Errorf("MTI = %s", resp.MTI())
		}
		// Echoed: PAN, processing code, amount, DE7, STAN, local time and
		// date, acquirer, RRN, terminal, merchant, currency. Not echoed:
		// expiry, MCC, POS data, DE43, DE48 (CVC2).
		WantFields(t, resp, map[int]string{
			2: "4111111111111111", 3: "000000", 4: "000000001250", 7: "0315143005",
			11: "000123", 12: "143005", 13: "0315", 32: "123456", 37: "407414000123",
			38: "A1B2C3", 39: "00", 41: "TERM0001", 42: "MERCHANT0000001", 49: "826",
		})
	})

	t.Run("0110 laid out by hand", func(t *testing.T) {
		req := MustUnpack(t, auth0100)
		resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.NotSufficientFunds})
		if err != nil {
			t.Fatal(err)
		}
		// Present: 2 3 4 7 11 12 13 32 37 39 41 42 49.
		//	byte 1: 2 3 4 7     = 0111 0010 = 72
		//	byte 2: 11 12 13    = 0011 1000 = 38
		//	byte 4: 32          = 0000 0001 = 01
		//	byte 5: 37 39       = 0000 1010 = 0A
		//	byte 6: 41 42       = 1100 0000 = C0
		//	byte 7: 49          = 1000 0000 = 80
		want := hexASCII("0110", "723800010AC08000",
			"16", "4111111111111111", "000000", "000000001250", "0315143005", "000123",
			"143005", "0315", "06", "123456", "407414000123", "51", "TERM0001",
			"MERCHANT0000001", "826")
		if got := MustPack(t, resp); !bytes.Equal(got, want) {
			t.Errorf("Pack =\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("0410 echoes original data and replacement amounts", func(t *testing.T) {
		req := MustUnpack(t, reversal0400)
		resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.Approved})
		if err != nil {
			t.Fatal(err)
		}
		if resp.MTI() != "0410" {
			t.Errorf("MTI = %s", resp.MTI())
		}
		for _, n := range []int{2, 3, 4, 7, 11, 32, 37, 41, 42, 49, 90, 95} {
			if resp.Get(n) != req.Get(n) {
				t.Errorf("DE%d = %q, want the request's %q", n, resp.Get(n), req.Get(n))
			}
		}
		if resp.Get(39) != "00" || resp.Has(38) {
			t.Errorf("DE39 %q, DE38 present %v", resp.Get(39), resp.Has(38))
		}
	})

	t.Run("0810", func(t *testing.T) {
		resp, err := cardnet.Respond(networkRequest("000007", cardnet.NetworkSignOn), cardnet.Answer{Code: cardnet.Approved})
		if err != nil {
			t.Fatal(err)
		}
		if resp.MTI() != "0810" {
			t.Errorf("MTI = %s", resp.MTI())
		}
		WantFields(t, resp, map[int]string{7: "0315143005", 11: "000007", 39: "00", 70: "001"})
	})

	t.Run("response MTIs", func(t *testing.T) {
		for req, want := range map[string]string{
			"0100": "0110", "0101": "0110", "0120": "0130", "0121": "0130", "0200": "0210",
			"0400": "0410", "0401": "0410", "0420": "0430", "0421": "0430", "0800": "0810",
		} {
			if got, err := cardnet.ResponseMTI(req); got != want || err != nil {
				t.Errorf("ResponseMTI(%s) = %s, %v; want %s", req, got, err, want)
			}
		}
		for _, bad := range []string{"0110", "0410", "01A0", "100"} {
			if got, err := cardnet.ResponseMTI(bad); err == nil {
				t.Errorf("ResponseMTI(%s) = %s, want an error", bad, got)
			}
		}
	})
}

func TestRespondPartialApproval(t *testing.T) {
	req := MustUnpack(t, auth0100)
	resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.PartiallyApproved, AuthID: "P00001", Amount: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Get(4) != "000000001000" || resp.Get(39) != "10" {
		t.Errorf("DE4 %q DE39 %q, want the approved 10.00 and 10", resp.Get(4), resp.Get(39))
	}

	for name, a := range map[string]cardnet.Answer{
		"approval without authorization code": {Code: cardnet.Approved},
		"partial of the whole amount":         {Code: cardnet.PartiallyApproved, AuthID: "P00001", Amount: 1250},
		"partial of nothing":                  {Code: cardnet.PartiallyApproved, AuthID: "P00001"},
		"amount on a full approval":           {Code: cardnet.Approved, AuthID: "P00001", Amount: 1000},
		"authorization code of 5":             {Code: cardnet.Approved, AuthID: "P0001"},
		"response code of 3":                  {Code: "000", AuthID: "P00001"},
	} {
		if _, err := cardnet.Respond(req, a); err == nil {
			t.Errorf("%s: Respond succeeded, want an error", name)
		}
	}

	t.Run("billing amount too", func(t *testing.T) {
		req := MustUnpack(t, auth0100)
		req.Set(6, "000000001490")
		req.Set(51, "978")
		if _, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.PartiallyApproved, AuthID: "P00001", Amount: 1000}); err == nil {
			t.Error("partial approval without the billing amount accepted")
		}
		resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.PartiallyApproved, AuthID: "P00001", Amount: 1000, BillingAmount: 1192})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Get(6) != "000000001192" || resp.Get(51) != "978" {
			t.Errorf("DE6 %q DE51 %q", resp.Get(6), resp.Get(51))
		}
	})
}

func TestRespondBalances(t *testing.T) {
	req := MustUnpack(t, auth0100)
	resp, err := cardnet.Respond(req, cardnet.Answer{Code: cardnet.Approved, AuthID: "A1B2C3", AdditionalAmounts: []cardnet.AdditionalAmount{
		{AccountType: "00", AmountType: cardnet.AmountAvailableBalance, Currency: "GBP", Amount: 1234567},
		{AccountType: "00", AmountType: cardnet.AmountLedgerBalance, Currency: "GBP", Amount: -500},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Get(54), "0002826C000001234567"+"0001826D000000000500"; got != want {
		t.Errorf("DE54 = %q, want %q", got, want)
	}
}
