// Package money holds corebank's value types for amounts of money: integer
// minor units (pence, cents) with an ISO 4217 currency. Never a float.
// Arithmetic that could overflow int64 is checked.
package money

import (
	"math"
	"math/bits"

	"github.com/corebank/corebank/errors"
)

// Currency is an ISO 4217 alphabetic code ("GBP").
type Currency string

// Exponent is the number of minor-unit digits of each supported currency.
// The list is the currencies the simulator and the public API use; add to it
// when a product needs one. ISO 4217 numeric codes are in Numeric.
var exponents = map[Currency]int{
	"GBP": 2, "EUR": 2, "USD": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2,
	"PLN": 2, "CZK": 2, "HUF": 2, "RON": 2, "CAD": 2, "AUD": 2, "NZD": 2,
	"SGD": 2, "HKD": 2, "CNY": 2, "INR": 2, "MXN": 2, "BRL": 2, "ZAR": 2,
	"TRY": 2, "AED": 2, "ILS": 2, "THB": 2, "JPY": 0, "KRW": 0, "ISK": 0,
	"BHD": 3, "KWD": 3, "JOD": 3,
}

var numeric = map[Currency]string{
	"GBP": "826", "EUR": "978", "USD": "840", "CHF": "756", "SEK": "752",
	"NOK": "578", "DKK": "208", "PLN": "985", "CZK": "203", "HUF": "348",
	"RON": "946", "CAD": "124", "AUD": "036", "NZD": "554", "SGD": "702",
	"HKD": "344", "CNY": "156", "INR": "356", "MXN": "484", "BRL": "986",
	"ZAR": "710", "TRY": "949", "AED": "784", "ILS": "376", "THB": "764",
	"JPY": "392", "KRW": "410", "ISK": "352", "BHD": "048", "KWD": "414",
	"JOD": "400",
}

var byNumeric = func() map[string]Currency {
	m := make(map[string]Currency, len(numeric))
	for c, n := range numeric {
		m[n] = c
	}
	return m
}()

// Valid reports whether c is a supported ISO 4217 currency.
func (c Currency) Valid() bool { _, ok := exponents[c]; return ok }

// Exponent returns the number of minor-unit digits of c (2 for GBP).
func (c Currency) Exponent() int { return exponents[c] }

// Numeric returns c's ISO 4217 numeric code ("826" for GBP), as ISO 8583
// carries it, or "" if c is unknown.
func (c Currency) Numeric() string { return numeric[c] }

// FromNumeric returns the currency with ISO 4217 numeric code n.
func FromNumeric(n string) (Currency, error) {
	c, ok := byNumeric[n]
	if !ok {
		return "", errors.Errorf(errors.BadRequest, "unknown currency code %q", n)
	}
	return c, nil
}

// ParseCurrency validates s as a supported currency code.
func ParseCurrency(s string) (Currency, error) {
	c := Currency(s)
	if !c.Valid() {
		return "", errors.Errorf(errors.BadRequest, "unsupported currency %q", s)
	}
	return c, nil
}

// Add returns a+b, or a BadRequest error if the sum overflows int64.
func Add(a, b int64) (int64, error) {
	s := a + b
	if (a > 0 && b > 0 && s < 0) || (a < 0 && b < 0 && s >= 0) {
		return 0, errors.New(errors.BadRequest, "amount overflows")
	}
	return s, nil
}

// Sub returns a-b, or a BadRequest error if the difference overflows int64.
func Sub(a, b int64) (int64, error) {
	d := a - b
	// Overflow only when the operands' signs differ and the result's sign
	// is not a's.
	if (a >= 0) != (b >= 0) && (d >= 0) != (a >= 0) {
		return 0, errors.New(errors.BadRequest, "amount overflows")
	}
	return d, nil
}

// SatAdd returns a+b, saturating at the int64 bounds instead of wrapping.
func SatAdd(a, b int64) int64 {
	s, err := Add(a, b)
	if err != nil {
		if a > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

// SatSub returns a-b, saturating at the int64 bounds instead of wrapping.
func SatSub(a, b int64) int64 {
	d, err := Sub(a, b)
	if err != nil {
		if a >= 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return d
}

// Mul returns a*b, or a BadRequest error if the product overflows int64.
func Mul(a, b int64) (int64, error) {
	if a == 0 || b == 0 {
		return 0, nil
	}
	neg := (a < 0) != (b < 0)
	ua, ub := abs(a), abs(b)
	hi, lo := bits.Mul64(ua, ub)
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	if hi != 0 || lo > limit {
		return 0, errors.New(errors.BadRequest, "amount overflows")
	}
	if neg {
		return -int64(lo-1) - 1, nil
	}
	return int64(lo), nil
}

// MulDiv returns x*num/den rounded down, computed in 128 bits so that the
// product of two amounts (an amount times a rate given as two amounts)
// cannot overflow; a quotient past int64 saturates. x and num must not be
// negative and den must be positive: for converting an amount at the rate
// num/den.
func MulDiv(x, num, den int64) int64 {
	hi, lo := bits.Mul64(uint64(x), uint64(num))
	if hi >= uint64(den) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(den))
	return int64(min(q, math.MaxInt64))
}

func abs(a int64) uint64 {
	if a < 0 {
		return uint64(-(a + 1)) + 1
	}
	return uint64(a)
}

// MaxAmount is the largest amount a single posting may carry: 10^15 minor
// units (10 trillion pounds), far below int64's range; but 9,223 postings of
// it already pass int64, so sums use Add (checked) or SatAdd, never +.
const MaxAmount int64 = 1_000_000_000_000_000
