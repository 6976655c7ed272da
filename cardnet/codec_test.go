package cardnet_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/corebank/corebank/cardnet"
)

// The messages below are laid out by hand from ISO 8583:1987: the MTI, the
// bitmap as hexadecimal characters (bit 1 is the most significant bit of
// the first byte), then the data elements in ascending order, variable
// ones behind their ASCII length prefix. Nothing here comes from the codec.

// merchant43 is DE43 in the 1987 layout: name 25, city 13, country 2.
const merchant43 = "OZONE COFFEE ROASTERS    " + "LONDON       " + "GB"

// auth0100 is an 0100 with a primary bitmap only. Present: 2 3 4 7 11 12 13
// 14 18 22 25 32 37 41 42 43 48 49.
//
//	byte 1, bits  1-8:  2 3 4 7        = 0111 0010 = 72
//	byte 2, bits  9-16: 11 12 13 14    = 0011 1100 = 3C
//	byte 3, bits 17-24: 18 22          = 0100 0100 = 44
//	byte 4, bits 25-32: 25 32          = 1000 0001 = 81
//	byte 5, bits 33-40: 37             = 0000 1000 = 08
//	byte 6, bits 41-48: 41 42 43 48    = 1110 0001 = E1
//	byte 7, bits 49-56: 49             = 1000 0000 = 80
//	byte 8, bits 57-64: none           = 00
var auth0100 = hexASCII(
	"0100",
	"723C448108E18000",
	"16", "4111111111111111", // DE2 LLVAR n..19
	"000000",       // DE3 purchase
	"000000001250", // DE4 12.50
	"0315143005",   // DE7 15 March 14:30:05 UTC
	"000123",       // DE11
	"143005",       // DE12
	"0315",         // DE13
	"2712",         // DE14 December 2027
	"5812",         // DE18 restaurants
	"071",          // DE22 contactless
	"00",           // DE25
	"06", "123456", // DE32 LLVAR n..11
	"407414000123",    // DE37
	"TERM0001",        // DE41
	"MERCHANT0000001", // DE42
	merchant43,        // DE43
	"007", "9203123",  // DE48 LLLVAR: tag 92, length 03, CVC2 123
	"826", // DE49 GBP
)

// echo0800 is an 0800 echo test: DE70 makes a secondary bitmap necessary.
//
//	primary   byte 1: 1 (secondary present) 7 = 1000 0010 = 82
//	primary   byte 2: 11                      = 0010 0000 = 20
//	secondary byte 1, bits 65-72: 70          = 0000 0100 = 04
var echo0800 = hexASCII(
	"0800",
	"8220000000000000",
	"0400000000000000",
	"0315143005", // DE7
	"000001",     // DE11
	"301",        // DE70 echo
)

// reversal0400 is a partial reversal: DE90 and DE95 are in the secondary
// bitmap. Present: 2 3 4 7 11 32 37 41 42 49 90 95.
//
//	primary   byte 1: 1 2 3 4 7  = 1111 0010 = F2
//	primary   byte 2: 11         = 0010 0000 = 20
//	primary   byte 4: 32         = 0000 0001 = 01
//	primary   byte 5: 37         = 0000 1000 = 08
//	primary   byte 6: 41 42      = 1100 0000 = C0
//	primary   byte 7: 49         = 1000 0000 = 80
//	secondary byte 4, bits 89-96: 90 95 = 0100 0010 = 42
var reversal0400 = hexASCII(
	"0400",
	"F220000108C08000",
	"0000004200000000",
	"16", "4111111111111111",
	"000000",
	"000000001250",
	"0315150000",
	"000124",
	"06", "123456",
	"407414000123",
	"TERM0001",
	"MERCHANT0000001",
	"826",
	// DE90: original MTI, STAN, DE7, acquirer (11, zero-filled), forwarder (11)
	"0100"+"000123"+"0315143005"+"00000123456"+"00000000000",
	// DE95: actual amount 5.00 remains; settlement amount; two C/D fees
	"000000000500"+"000000000000"+"C00000000"+"C00000000",
)

func TestHandBuiltMessagesDecode(t *testing.T) {
	t.Run("0100 with a primary bitmap only", func(t *testing.T) {
		m := MustUnpack(t, auth0100)
		if m.MTI() != "0100" {
			t.Fatalf("MTI = %q", m.MTI())
		}
		WantFields(t, m, map[int]string{
			2: "4111111111111111", 3: "000000", 4: "000000001250", 7: "0315143005",
			11: "000123", 12: "143005", 13: "0315", 14: "2712", 18: "5812", 22: "071",
			25: "00", 32: "123456", 37: "407414000123", 41: "TERM0001",
			42: "MERCHANT0000001", 43: merchant43, 48: "9203123", 49: "826",
		})
	})
	t.Run("0800 with a secondary bitmap", func(t *testing.T) {
		m := MustUnpack(t, echo0800)
		if m.MTI() != "0800" {
			t.Fatalf("MTI = %q", m.MTI())
		}
		WantFields(t, m, map[int]string{7: "0315143005", 11: "000001", 70: "301"})
	})
	t.Run("0400 with DE90 and DE95", func(t *testing.T) {
		m := MustUnpack(t, reversal0400)
		WantFields(t, m, map[int]string{
			2: "4111111111111111", 3: "000000", 4: "000000001250", 7: "0315150000",
			11: "000124", 32: "123456", 37: "407414000123", 41: "TERM0001",
			42: "MERCHANT0000001", 49: "826",
			90: "0100000123031514300500000123456" + "00000000000",
			95: "000000000500000000000000C00000000C00000000",
		})
	})
}

func TestPackMatchesHandBuiltBytes(t *testing.T) {
	for name, want := range map[string][]byte{
		"primary bitmap only":            auth0100,
		"secondary bitmap for DE70":      echo0800,
		"secondary bitmap for DE90/DE95": reversal0400,
	} {
		t.Run(name, func(t *testing.T) {
			// Build the message field by field, not from the bytes.
			src := MustUnpack(t, want)
			m := cardnet.DefaultSpec().NewMessage(src.MTI())
			for _, n := range src.Fields() {
				m.Set(n, src.Get(n))
			}
			if got := MustPack(t, m); !bytes.Equal(got, want) {
				t.Errorf("Pack =\n%s\nwant\n%s", got, want)
			}
		})
	}

	t.Run("secondary bitmap appears only with an element above 64", func(t *testing.T) {
		m := MustUnpack(t, echo0800)
		m.Unset(70)
		got := MustPack(t, m)
		want := hexASCII("0800", "0220000000000000", "0315143005", "000001")
		if !bytes.Equal(got, want) {
			t.Errorf("Pack = %s, want %s", got, want)
		}
	})
}

func TestRequestFromHandBuiltMessage(t *testing.T) {
	r := MustParse(t, MustUnpack(t, auth0100))
	want := authRequest("000123", "407414000123")
	if r.PAN != want.PAN || r.Amount != 1250 || r.Currency != "GBP" || r.STAN != "000123" ||
		r.RRN != want.RRN || r.TransmissionTime != want.TransmissionTime || r.LocalTime != want.LocalTime ||
		r.Expiry != want.Expiry || r.MCC != "5812" || r.POSEntryMode != "071" || r.AcquirerID != "123456" ||
		r.TerminalID != "TERM0001" || r.MerchantID != "MERCHANT0000001" || r.Merchant != want.Merchant ||
		r.CVC2 != "123" || r.ProcessingCode.Type() != cardnet.Purchase {
		t.Errorf("ParseRequest = %#v", r)
	}
	if got := r.Channel(); got != cardnet.ChannelContactless {
		t.Errorf("Channel = %q, want contactless", got)
	}

	rev := MustParse(t, MustUnpack(t, reversal0400))
	if rev.Original == nil || rev.Original.Trace() != r.Trace() {
		t.Errorf("reversal's Original.Trace() = %+v, want the original's %+v", rev.Original, r.Trace())
	}
	if rev.ReplacementAmount == nil || *rev.ReplacementAmount != 500 {
		t.Errorf("ReplacementAmount = %v, want 500", rev.ReplacementAmount)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	spec := cardnet.DefaultSpec()
	replacement := int64(700)
	reqs := map[string]*cardnet.Request{
		"authorization": authRequest("000001", "RRN000000001"),
		"financial with cash back and billing amount": func() *cardnet.Request {
			r := authRequest("000002", "RRN000000002")
			r.MTI = cardnet.MTIFinancialRequest
			r.ProcessingCode = "090000"
			r.BillingAmount, r.BillingCurrency = 1490, "EUR"
			r.AdditionalAmounts = []cardnet.AdditionalAmount{{AccountType: "00", AmountType: cardnet.AmountCashback, Currency: "GBP", Amount: 2000}}
			r.PartialApproval = true
			r.Track2 = true
			return r
		}(),
		"stand-in advice": func() *cardnet.Request {
			r := authRequest("000003", "RRN000000003")
			r.MTI = cardnet.MTIAuthorizationAdvice
			r.ResponseCode, r.AuthID, r.AdviceReason = cardnet.Approved, "STNDIN", "107"
			return r
		}(),
		"partial reversal": func() *cardnet.Request {
			r := authRequest("000004", "RRN000000001")
			r.MTI = cardnet.MTIReversalRequest
			r.CVC2 = ""
			r.Original = &cardnet.OriginalData{MTI: "0100", STAN: "000001", TransmissionTime: r.TransmissionTime, AcquirerID: "123456"}
			r.ReplacementAmount = &replacement
			return r
		}(),
	}
	for name, r := range reqs {
		t.Run(name, func(t *testing.T) {
			b := MustPack(t, MustMessage(t, r))
			m, err := spec.Unpack(b)
			if err != nil {
				t.Fatal(err)
			}
			got := MustParse(t, m)
			if !reflect.DeepEqual(got, r) {
				t.Errorf("round trip:\n got %+v\nwant %+v", *got, *r)
			}
		})
	}
}

func TestUnpackErrors(t *testing.T) {
	spec := cardnet.DefaultSpec()
	for _, tc := range []struct {
		name    string
		in      []byte
		field   int
		partial bool // whether enough was read to answer
	}{
		{"empty", nil, 0, false},
		{"MTI not digits", hexASCII("01X0", "0000000000000000"), 0, false},
		{"bitmap not hexadecimal", hexASCII("0100", "72ZZ448108E18000"), 1, false},
		{"bitmap cut short", hexASCII("0100", "723C"), 1, false},
		{"third bitmap announced by bit 65", hexASCII("0800", "8220000000000000", "8400000000000000", "0000000000000000", "0315143005000001301"), 1, false},
		{"LLVAR length not digits", hexASCII("0100", "4000000000000000", "1X", "4111111111111111"), 2, true},
		{"LLVAR longer than its maximum", hexASCII("0100", "4000000000000000", "20", "41111111111111111111"), 2, true},
		{"fixed element cut short", hexASCII("0800", "0220000000000000", "0315143005", "0001"), 11, true},
		{"bytes after the last element", append(bytes.Clone(echo0800), "XYZ"...), 70, true},
		{"bytes after an empty bitmap", hexASCII("0100", "0000000000000000", "0315"), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := spec.Unpack(tc.in)
			var ue *cardnet.UnpackError
			if !errors.As(err, &ue) {
				t.Fatalf("Unpack error = %v, want *UnpackError", err)
			}
			if ue.Field != tc.field || (ue.Partial != nil) != tc.partial {
				t.Errorf("UnpackError{Field: %d, Partial: %v}, want field %d, partial %v (%v)", ue.Field, ue.Partial, tc.field, tc.partial, err)
			}
			if cardnet.ResponseCodeFor(err) != cardnet.FormatError {
				t.Errorf("ResponseCodeFor = %s, want 30", cardnet.ResponseCodeFor(err))
			}
		})
	}
}

func TestPackErrors(t *testing.T) {
	spec := cardnet.DefaultSpec()
	for _, tc := range []struct {
		name string
		mti  string
		n    int
		v    string
		want string
	}{
		{"fixed element too short", "0100", 4, "1250", "DE4"},
		{"variable element too long", "0100", 2, strings.Repeat("4", 20), "DE2"},
		{"element not in the spec", "0100", 65, "1", "field 65"},
		{"MTI not digits", "01A0", 11, "000001", "MTI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := spec.NewMessage(tc.mti)
			m.Set(tc.n, tc.v)
			if _, err := m.Pack(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Pack error = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestMessageStringHidesCardSecrets(t *testing.T) {
	m := MustUnpack(t, auth0100)
	m.Set(35, "4111111111111111=27121010000012300000")
	for _, s := range []string{m.String(), MustParse(t, m).String()} {
		for _, secret := range []string{"4111111111111111", "9203123", "2712", "=2712"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %q", s, secret)
			}
		}
		if !strings.Contains(s, "411111******1111") {
			t.Errorf("%q lacks the masked PAN", s)
		}
	}
}
