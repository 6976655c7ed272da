package cardnet_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	cberrors "github.com/corebank/corebank/errors"
)

func TestParseRequestValidation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(m *cardnet.Message)
		field int
		want  error
	}{
		{"unknown MTI", func(m *cardnet.Message) { m.SetMTI("0300") }, 0, cardnet.ErrUnknownMTI},
		{"response MTI", func(m *cardnet.Message) { m.SetMTI("0110") }, 0, cardnet.ErrUnknownMTI},
		{"missing amount", func(m *cardnet.Message) { m.Unset(4) }, 4, cardnet.ErrMissing},
		{"missing STAN", func(m *cardnet.Message) { m.Unset(11) }, 11, cardnet.ErrMissing},
		{"missing RRN", func(m *cardnet.Message) { m.Unset(37) }, 37, cardnet.ErrMissing},
		{"missing MCC", func(m *cardnet.Message) { m.Unset(18) }, 18, cardnet.ErrMissing},
		{"missing PAN and track 2", func(m *cardnet.Message) { m.Unset(2) }, 2, cardnet.ErrMissing},
		{"billing amount without its currency", func(m *cardnet.Message) { m.Set(6, "000000001490") }, 51, cardnet.ErrMissing},
		{"local time without local date", func(m *cardnet.Message) { m.Unset(13) }, 13, cardnet.ErrMissing},
		{"amount not numeric", func(m *cardnet.Message) { m.Set(4, "00000000125O") }, 4, cardnet.ErrFormat},
		{"PAN not numeric", func(m *cardnet.Message) { m.Set(2, "4111-1111-1111") }, 2, cardnet.ErrFormat},
		{"STAN not numeric", func(m *cardnet.Message) { m.Set(11, "00012A") }, 11, cardnet.ErrFormat},
		{"transmission month 13", func(m *cardnet.Message) { m.Set(7, "1315143005") }, 7, cardnet.ErrFormat},
		{"31 April", func(m *cardnet.Message) { m.Set(7, "0431143005") }, 7, cardnet.ErrFormat},
		{"expiry month 00", func(m *cardnet.Message) { m.Set(14, "2700") }, 14, cardnet.ErrFormat},
		{"expiry month 13", func(m *cardnet.Message) { m.Set(14, "2713") }, 14, cardnet.ErrFormat},
		{"expiry not numeric", func(m *cardnet.Message) { m.Set(14, "2A1B") }, 14, cardnet.ErrFormat},
		{"track 2 expiry month 13", func(m *cardnet.Message) { m.Set(35, "4111111111111111=2713101") }, 35, cardnet.ErrFormat},
		{"RRN with a control character", func(m *cardnet.Message) { m.Set(37, "40741400012\n") }, 37, cardnet.ErrFormat},
		{"RRN with a colon", func(m *cardnet.Message) { m.Set(37, "407414:00123") }, 37, cardnet.ErrFormat},
		{"CVC2 of two digits", func(m *cardnet.Message) { m.Set(48, "920212") }, 48, cardnet.ErrFormat},
		{"DE48 tag longer than the element", func(m *cardnet.Message) { m.Set(48, "9205123") }, 48, cardnet.ErrFormat},
		{"unknown currency", func(m *cardnet.Message) { m.Set(49, "999") }, 49, cardnet.ErrUnknownCurrency},
		{"currency not numeric", func(m *cardnet.Message) { m.Set(49, "GBP") }, 49, cardnet.ErrFormat},
		{"track 2 PAN differs from DE2", func(m *cardnet.Message) { m.Set(35, "4000000000000002=2712101") }, 35, cardnet.ErrMismatch},
		{"track 2 without expiry", func(m *cardnet.Message) { m.Set(35, "4111111111111111=27") }, 35, cardnet.ErrFormat},
		{"additional amounts cut short", func(m *cardnet.Message) { m.Set(54, "0040826C00000000200") }, 54, cardnet.ErrFormat},
		// Echoed, not read: checked all the same, or the response would
		// carry back what the request could not.
		{"forwarding institution not numeric", func(m *cardnet.Message) { m.Set(33, "ABC;DEF") }, 33, cardnet.ErrFormat},
		{"settlement amount not numeric", func(m *cardnet.Message) { m.Set(5, "00000000125O") }, 5, cardnet.ErrFormat},
		{"settlement currency not numeric", func(m *cardnet.Message) { m.Set(50, "GBP") }, 50, cardnet.ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := MustUnpack(t, auth0100)
			tc.edit(m)
			r, err := cardnet.ParseRequest(m)
			var fe *cardnet.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseRequest = %v, %v; want a *FieldError", r, err)
			}
			if fe.Field != tc.field || !errors.Is(err, tc.want) {
				t.Errorf("error %q: field %d, want %d wrapping %q", err, fe.Field, tc.field, tc.want)
			}
			if cberrors.CodeOf(err) != cberrors.BadRequest {
				t.Errorf("CodeOf = %s, want bad_request", cberrors.CodeOf(err))
			}
			if strings.Contains(err.Error(), "4111111111111111") {
				t.Errorf("error %q shows the PAN", err)
			}
			// Nor an expiry: errors are logged, and the expiry is card data.
			if tc.field == 14 || tc.field == 35 {
				for _, v := range []string{"2A1B", "2713", "2700", "13"} {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error %q shows the expiry", err)
					}
				}
			}
		})
	}
}

func TestParseRequestMandatoryFieldsPerMTI(t *testing.T) {
	for _, tc := range []struct {
		mti   string
		field int
	}{
		{cardnet.MTIAuthorizationAdvice, 39},
		{"0121", 39},
		{cardnet.MTIReversalRequest, 90},
		{cardnet.MTIReversalAdvice, 90},
	} {
		t.Run(tc.mti, func(t *testing.T) {
			m := MustUnpack(t, auth0100)
			m.SetMTI(tc.mti)
			_, err := cardnet.ParseRequest(m)
			var fe *cardnet.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, cardnet.ErrMissing) {
				t.Errorf("ParseRequest = %v, want DE%d missing", err, tc.field)
			}
		})
	}

	t.Run("0800 needs DE70", func(t *testing.T) {
		m := networkRequest("000001", cardnet.NetworkEcho)
		m.Unset(70)
		_, err := cardnet.ParseRequest(m)
		var fe *cardnet.FieldError
		if !errors.As(err, &fe) || fe.Field != 70 {
			t.Errorf("ParseRequest = %v, want DE70 missing", err)
		}
	})

	t.Run("a reversal needs neither MCC nor merchant", func(t *testing.T) {
		m := MustUnpack(t, reversal0400)
		if m.Has(18) || m.Has(43) {
			t.Fatal("fixture carries DE18 or DE43")
		}
		MustParse(t, m)
	})
}

func TestRequestFromTrack2(t *testing.T) {
	m := MustUnpack(t, auth0100)
	m.Unset(2)
	m.Unset(14)
	m.Set(35, "4111111111111111D27121010000012300000")
	r := MustParse(t, m)
	if r.PAN != "4111111111111111" || r.Expiry != (cardnet.Expiry{Year: 2027, Month: 12}) || !r.Track2 {
		t.Errorf("PAN %s, expiry %v, track2 %v", r.PAN.Masked(), r.Expiry, r.Track2)
	}
}

func TestRequestInterpretation(t *testing.T) {
	t.Run("repeat", func(t *testing.T) {
		m := MustUnpack(t, auth0100)
		m.SetMTI("0101")
		r := MustParse(t, m)
		if !r.IsRepeat() || r.BaseMTI() != "0100" {
			t.Errorf("IsRepeat %v, BaseMTI %s", r.IsRepeat(), r.BaseMTI())
		}
	})
	t.Run("pre-authorization and incremental", func(t *testing.T) {
		m := MustUnpack(t, auth0100)
		m.Set(25, "06")
		if r := MustParse(t, m); !r.PreAuth() || r.Incremental() {
			t.Errorf("PreAuth %v, Incremental %v; want true, false", r.PreAuth(), r.Incremental())
		}
		m.Set(90, "0100"+"000001"+"0314120000"+"00000123456"+"00000000000")
		if r := MustParse(t, m); !r.Incremental() {
			t.Error("an 0100 with DE90 is not incremental")
		}
	})
	t.Run("channels", func(t *testing.T) {
		for _, tc := range []struct {
			entry, condition, mcc string
			want                  cardnet.Channel
		}{
			{"051", "00", "5812", cardnet.ChannelChip},
			{"071", "00", "5812", cardnet.ChannelContactless},
			{"911", "00", "5812", cardnet.ChannelContactless},
			{"901", "00", "5812", cardnet.ChannelMagstripe},
			{"801", "00", "5812", cardnet.ChannelMagstripe},
			{"810", "59", "5812", cardnet.ChannelECommerce},
			{"010", "59", "5812", cardnet.ChannelECommerce},
			{"010", "08", "5812", cardnet.ChannelECommerce},
			{"051", "00", "6011", cardnet.ChannelATM},
			{"001", "00", "5812", cardnet.ChannelUnknown},
		} {
			m := MustUnpack(t, auth0100)
			m.Set(22, tc.entry)
			m.Set(25, tc.condition)
			m.Set(18, tc.mcc)
			if got := MustParse(t, m).Channel(); got != tc.want {
				t.Errorf("DE22 %s DE25 %s MCC %s: Channel %q, want %q", tc.entry, tc.condition, tc.mcc, got, tc.want)
			}
		}
	})
	t.Run("partial approval support", func(t *testing.T) {
		m := MustUnpack(t, auth0100)
		m.Set(48, "61011"+"9203123")
		if r := MustParse(t, m); !r.PartialApproval || r.CVC2 != "123" {
			t.Errorf("PartialApproval %v, CVC2 present %v", r.PartialApproval, r.CVC2 != "")
		}
	})
}

func TestDateTimeYear(t *testing.T) {
	d := cardnet.DateTime{Month: 12, Day: 31, Hour: 23, Minute: 59, Second: 59}
	now := time.Date(2027, 1, 1, 0, 0, 5, 0, time.UTC)
	if got, want := d.Time(now), time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Time = %v, want %v (the old year)", got, want)
	}
	leap := cardnet.DateTime{Month: 2, Day: 29, Hour: 12}
	if got := leap.Time(time.Date(2029, 1, 10, 0, 0, 0, 0, time.UTC)); got.Year() != 2028 || got.Month() != 2 || got.Day() != 29 {
		t.Errorf("29 February near 2029 = %v, want 2028-02-29", got)
	}
}

func TestRequestMessageErrors(t *testing.T) {
	spec := cardnet.DefaultSpec()
	for name, edit := range map[string]func(r *cardnet.Request){
		"currency without numeric code": func(r *cardnet.Request) { r.Currency = "XXX" },
		"amount beyond 12 digits":       func(r *cardnet.Request) { r.Amount = 1_000_000_000_000 },
		"negative amount":               func(r *cardnet.Request) { r.Amount = -1 },
		"no STAN":                       func(r *cardnet.Request) { r.STAN = "" },
		"RRN of 11":                     func(r *cardnet.Request) { r.RRN = "RRN00000001" },
	} {
		r := authRequest("000001", "RRN000000001")
		edit(r)
		if m, err := r.Message(spec); err == nil {
			t.Errorf("%s: built %v", name, m)
		}
	}
}

// A card number in DE43 (an acquirer's mistake) is masked when the request
// is read, before the merchant is recorded, published or logged.
func TestMerchantHoldsNoCardNumber(t *testing.T) {
	r := authRequest("000001", "RRN000000001")
	r.Merchant = cardnet.Merchant{Name: "4599993523778640", City: "459999352377", Country: "GB"}
	req, err := cardnet.ParseRequest(MustMessage(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if req.Merchant.Name != "459999******8640" || req.Merchant.City != "********2377" || req.Merchant.Country != "GB" {
		t.Errorf("merchant read as %q, %q, %q", req.Merchant.Name, req.Merchant.City, req.Merchant.Country)
	}
}

// So is one laid across the name and the city: each part alone has fewer
// than 12 digits, and the two together the whole number.
func TestMerchantHoldsNoCardNumberAcrossNameAndCity(t *testing.T) {
	const pan = "4599993523778640"
	r := authRequest("000001", "RRN000000001")
	r.Merchant = cardnet.Merchant{Name: "ACME COFFEE LT " + pan[:10], City: pan[10:] + " LONDON", Country: "GB"}
	msg := MustMessage(t, r)
	if !strings.Contains(msg.Get(43), pan) {
		t.Fatalf("fixture: DE43 %q does not carry the number", msg.Get(43))
	}
	req, err := cardnet.ParseRequest(msg)
	if err != nil {
		t.Fatal(err)
	}
	if req.Merchant.Name != "ACME COFFEE LT 459999****" || req.Merchant.City != "**8640 LONDON" || req.Merchant.Country != "GB" {
		t.Errorf("merchant read as %q, %q, %q", req.Merchant.Name, req.Merchant.City, req.Merchant.Country)
	}
}

// So is one written in groups, in the merchant and in the message's dump.
func TestMerchantHoldsNoGroupedCardNumber(t *testing.T) {
	digits := func(s string) string {
		return strings.Map(func(r rune) rune {
			if '0' <= r && r <= '9' {
				return r
			}
			return -1
		}, s)
	}
	const pan = "4599993523778640"
	for _, name := range []string{"4599 9935 2377 8640", "4599-9935-2377-8640", "4599.9935.2377.8640"} {
		r := authRequest("000001", "RRN000000001")
		r.Merchant = cardnet.Merchant{Name: name, City: "LONDON", Country: "GB"}
		msg := MustMessage(t, r)
		req, err := cardnet.ParseRequest(msg)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(digits(req.Merchant.Name), pan[6:12]) || req.Merchant.City != "LONDON" {
			t.Errorf("merchant read as %q, %q", req.Merchant.Name, req.Merchant.City)
		}
		if strings.Contains(digits(msg.String()), pan) {
			t.Errorf("message dumped as %s", msg)
		}
	}
}
