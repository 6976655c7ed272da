package money_test

import (
	"math"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/money"
)

func TestCheckedArithmeticOverflows(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func() (int64, error)
	}{
		{"max+1", func() (int64, error) { return money.Add(math.MaxInt64, 1) }},
		{"min-1", func() (int64, error) { return money.Sub(math.MinInt64, 1) }},
		{"0-min", func() (int64, error) { return money.Sub(0, math.MinInt64) }},
		{"max*2", func() (int64, error) { return money.Mul(math.MaxInt64, 2) }},
		{"min*-1", func() (int64, error) { return money.Mul(math.MinInt64, -1) }},
	} {
		if _, err := tc.f(); errors.CodeOf(err) != errors.BadRequest {
			t.Errorf("%s: err = %v, want bad_request", tc.name, err)
		}
	}
	if v, err := money.Mul(math.MinInt64, 1); err != nil || v != math.MinInt64 {
		t.Errorf("MinInt64*1 = %d, %v", v, err)
	}
	// Found by the property below: subtracting MinInt64 fits when a < 0.
	if v, err := money.Sub(-1, math.MinInt64); err != nil || v != math.MaxInt64 {
		t.Errorf("-1 - MinInt64 = %d, %v", v, err)
	}
}

// Checked arithmetic agrees with big-number arithmetic: it returns the true
// result when it fits in int64 and an error exactly when it does not.
func TestCheckedArithmeticProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := rapid.Int64().Draw(t, "a"), rapid.Int64().Draw(t, "b")
		check := func(op string, got int64, err error, exact float64, wrapped int64) {
			fits := exact >= math.MinInt64 && exact < math.MaxInt64
			switch {
			case fits && err == nil && got != wrapped:
				t.Fatalf("%s(%d, %d) = %d, want %d", op, a, b, got, wrapped)
			case err != nil && fits && math.Abs(exact) < 9e18:
				t.Fatalf("%s(%d, %d) failed though %g fits: %v", op, a, b, exact, err)
			case err == nil && !fits && math.Abs(exact) > 9.3e18:
				t.Fatalf("%s(%d, %d) = %d though %g overflows", op, a, b, got, exact)
			}
		}
		s, err := money.Add(a, b)
		check("Add", s, err, float64(a)+float64(b), a+b)
		d, err := money.Sub(a, b)
		check("Sub", d, err, float64(a)-float64(b), a-b)
		p, err := money.Mul(a, b)
		check("Mul", p, err, float64(a)*float64(b), a*b)
	})
}

func TestParseAndFormat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		cur  money.Currency
		want int64
	}{
		{"3.50", "GBP", 350},
		{"3.5", "GBP", 350},
		{"-0.01", "GBP", -1},
		{"1000", "JPY", 1000},
		{"1.234", "BHD", 1234},
		{"0", "EUR", 0},
	} {
		got, err := money.Parse(tc.in, tc.cur)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q, %s) = %d, %v; want %d", tc.in, tc.cur, got, err, tc.want)
		}
	}
	for _, bad := range []struct {
		in  string
		cur money.Currency
	}{
		{"3.505", "GBP"}, {"1.5", "JPY"}, {"", "GBP"}, {"-", "GBP"}, {"1.", "GBP"}, {".5", "GBP"},
		{"1e3", "GBP"}, {"+1", "GBP"}, {"1,00", "GBP"}, {"NaN", "GBP"}, {"10000000000000.01", "GBP"},
		{"99999999999999999999", "GBP"}, {"1.00", "XXX"},
	} {
		if _, err := money.Parse(bad.in, bad.cur); errors.CodeOf(err) != errors.BadRequest {
			t.Errorf("Parse(%q, %s) = %v, want bad_request", bad.in, bad.cur, err)
		}
	}
	for _, tc := range []struct {
		minor int64
		cur   money.Currency
		want  string
	}{
		{350, "GBP", "3.50"}, {-1, "GBP", "-0.01"}, {5, "GBP", "0.05"}, {1000, "JPY", "1000"},
		{1234, "BHD", "1.234"}, {math.MinInt64, "GBP", "-92233720368547758.08"},
	} {
		if got := money.Format(tc.minor, tc.cur); got != tc.want {
			t.Errorf("Format(%d, %s) = %q, want %q", tc.minor, tc.cur, got, tc.want)
		}
	}
}

// Format and Parse are inverse within the range Parse accepts.
func TestParseFormatRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cur := rapid.SampledFrom([]money.Currency{"GBP", "JPY", "BHD"}).Draw(t, "cur")
		v := rapid.Int64Range(-money.MaxAmount, money.MaxAmount).Draw(t, "v")
		got, err := money.Parse(money.Format(v, cur), cur)
		if err != nil || got != v {
			t.Fatalf("Parse(Format(%d)) = %d, %v", v, got, err)
		}
	})
}

func TestCurrencies(t *testing.T) {
	if c, err := money.FromNumeric("826"); err != nil || c != "GBP" {
		t.Errorf("FromNumeric(826) = %q, %v", c, err)
	}
	if _, err := money.FromNumeric("999"); errors.CodeOf(err) != errors.BadRequest {
		t.Errorf("FromNumeric(999) = %v", err)
	}
	if money.Currency("GBP").Numeric() != "826" || money.Currency("JPY").Exponent() != 0 {
		t.Error("GBP numeric or JPY exponent wrong")
	}
	if _, err := money.ParseCurrency("gbp"); err == nil {
		t.Error("lower-case currency accepted")
	}
}

func TestSaturating(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"add", money.SatAdd(2, 3), 5},
		{"add up", money.SatAdd(math.MaxInt64, 1), math.MaxInt64},
		{"add down", money.SatAdd(math.MinInt64, -1), math.MinInt64},
		{"sub", money.SatSub(2, 3), -1},
		{"sub up", money.SatSub(math.MaxInt64, -1), math.MaxInt64},
		{"sub down", money.SatSub(-4_700_000_000_000_000_000, 4_700_000_000_000_000_000), math.MinInt64},
		{"sub zero minus min", money.SatSub(0, math.MinInt64), math.MaxInt64},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// A card number pasted into an amount is refused without being shown.
func TestParseErrorHidesCardNumbers(t *testing.T) {
	for _, s := range []string{"4111111111111111", "4111 1111 1111 1111", "12.5x4111111111111111"} {
		_, err := money.Parse(s, "GBP")
		if err == nil || strings.Contains(err.Error(), "111111") {
			t.Errorf("Parse(%q) = %v, want an error without the number", s, err)
		}
	}
}
