package money

import (
	"strconv"
	"strings"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/ascii"
)

// Format renders minor units in c's major unit with its exponent: Format(-350,
// "GBP") is "-3.50".
func Format(minor int64, c Currency) string {
	exp := c.Exponent()
	neg := minor < 0
	u := abs(minor)
	s := strconv.FormatUint(u, 10)
	if exp > 0 {
		for len(s) <= exp {
			s = "0" + s
		}
		s = s[:len(s)-exp] + "." + s[len(s)-exp:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// Parse reads a decimal amount in c's major unit ("3.50") into minor units.
// It rejects more fractional digits than c has, signs other than a leading
// '-', exponents, and anything beyond MaxAmount.
func Parse(s string, c Currency) (int64, error) {
	bad := errors.Errorf(errors.BadRequest, "invalid amount %s", ascii.Quote(s))
	if !c.Valid() {
		return 0, errors.Errorf(errors.BadRequest, "unsupported currency %q", c)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, hasDot := strings.Cut(s, ".")
	exp := c.Exponent()
	if whole == "" || (hasDot && (frac == "" || len(frac) > exp)) || !digits(whole) || !digits(frac) {
		return 0, bad
	}
	frac += strings.Repeat("0", exp-len(frac))
	if len(whole)+len(frac) > 18 {
		return 0, bad
	}
	v, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil || v > MaxAmount {
		return 0, bad
	}
	if neg {
		v = -v
	}
	return v, nil
}

func digits(s string) bool { return ascii.Digits(s) }
