package money_test

import (
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/money"
)

// fuzzCurrencies have 2, 0 and 3 minor-unit digits, and one is unknown.
var fuzzCurrencies = []money.Currency{"GBP", "JPY", "BHD", "XXX"}

// amountSyntax is an amount's syntax by number of minor-unit digits.
var amountSyntax = map[int]*regexp.Regexp{
	0: regexp.MustCompile(`^-?[0-9]+$`),
	2: regexp.MustCompile(`^-?[0-9]+(?:\.[0-9]{1,2})?$`),
	3: regexp.MustCompile(`^-?[0-9]+(?:\.[0-9]{1,3})?$`),
}

// refParse is the reference reading of an amount in a currency with exp
// minor-unit digits: an optional leading '-', ASCII digits, and optionally
// a '.' and one to exp digits, exactly, as a big integer of minor units.
func refParse(s string, exp int) (*big.Int, bool) {
	if !amountSyntax[exp].MatchString(s) {
		return nil, false
	}
	neg := strings.HasPrefix(s, "-")
	whole, f, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	v, ok := new(big.Int).SetString(whole+f+strings.Repeat("0", exp-len(f)), 10)
	if !ok {
		return nil, false
	}
	if neg {
		v.Neg(v)
	}
	return v, true
}

// FuzzParse reads arbitrary strings as amounts and formats arbitrary
// int64s. Parse never panics; it accepts only what the reference reading
// accepts, with the same value (exactly, as a big integer: near the int64
// limits nothing wraps), and no more than MaxAmount either way; it accepts
// every amount the reference accepts within MaxAmount written in at most 18
// digits; its errors are bad_request; and an accepted amount formats back
// to a string that parses to the same amount. Format renders any int64 as
// the exact decimal value, which parses back within MaxAmount.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		// TestParseAndFormat
		"3.50", "3.5", "-0.01", "1000", "1.234", "0",
		"3.505", "1.5", "", "-", "1.", ".5", "1e3", "+1", "1,00", "NaN",
		"10000000000000.01", "99999999999999999999", "1.00",
		"-92233720368547758.08",
		// Near MaxAmount and the int64 limits.
		"10000000000000.00", "1000000000000000", "1000000000000.000",
		"1000000000000001", "-1000000000000000", "-10000000000000.01",
		"9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"92233720368547758.07", "18446744073709551615", "18446744073709551616",
		"999999999999999999", "999999999999999.999", "0000000000000000001",
		"--1", "-0", "-0.00", " 1", "1 ", "٣", "1.2.3", "0x10", "1_000",
	} {
		for i := range fuzzCurrencies {
			f.Add(s, int64(0), uint8(i))
		}
	}
	for _, v := range []int64{0, 1, -1, 350, money.MaxAmount, -money.MaxAmount, money.MaxAmount + 1, math.MaxInt64, math.MinInt64, math.MinInt64 + 1} {
		f.Add("0", v, uint8(0))
	}
	maxAmount := big.NewInt(money.MaxAmount)

	f.Fuzz(func(t *testing.T, s string, v int64, ci uint8) {
		c := fuzzCurrencies[int(ci)%len(fuzzCurrencies)]
		exp := c.Exponent()

		got, err := money.Parse(s, c)
		want, ok := refParse(s, exp)
		ok = ok && c.Valid() && want.CmpAbs(maxAmount) <= 0
		if err != nil {
			if errors.CodeOf(err) != errors.BadRequest {
				t.Fatalf("Parse(%q, %s) error %v, want bad_request", s, c, err)
			}
			// Up to 18 digits all amounts up to MaxAmount fit (more are
			// refused however many are leading zeros, an undocumented
			// but harmless limit).
			whole, _, _ := strings.Cut(strings.TrimPrefix(s, "-"), ".")
			if ok && len(whole)+exp <= 18 {
				t.Fatalf("Parse(%q, %s) = %v, want %d", s, c, err, want)
			}
		} else {
			if !ok {
				t.Fatalf("Parse(%q, %s) = %d, want an error", s, c, got)
			}
			if big.NewInt(got).Cmp(want) != 0 {
				t.Fatalf("Parse(%q, %s) = %d, want %d", s, c, got, want)
			}
			back, err := money.Parse(money.Format(got, c), c)
			if err != nil || back != got {
				t.Fatalf("Parse(Format(Parse(%q, %s))) = Parse(%q) = %d, %v; want %d", s, c, money.Format(got, c), back, err, got)
			}
		}

		if !c.Valid() {
			return
		}
		out := money.Format(v, c)
		if r, ok := refParse(out, exp); !ok || r.Cmp(big.NewInt(v)) != 0 {
			t.Fatalf("Format(%d, %s) = %q, which reads as %v", v, c, out, r)
		}
		if back, err := money.Parse(out, c); v >= -money.MaxAmount && v <= money.MaxAmount && (err != nil || back != v) {
			t.Fatalf("Parse(Format(%d, %s)) = Parse(%q) = %d, %v", v, c, out, back, err)
		} else if err == nil && back != v {
			t.Fatalf("Parse(Format(%d, %s)) = Parse(%q) = %d: wrapped", v, c, out, back)
		}
	})
}
