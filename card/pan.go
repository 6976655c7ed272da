package card

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/ascii"
)

// PAN is a full card number (primary account number) held so that it
// cannot leak by accident: fmt (every verb), log/slog, encoding/json and
// encoding/text all see it masked to its first six and last four digits,
// "412345******2345". Only an explicit string(p) yields the digits.
type PAN string

// ParsePAN validates s as a card number: 12 to 19 ASCII digits with a valid
// Luhn check digit. Its errors are BadRequest and never contain s.
func ParsePAN(s string) (PAN, error) {
	if err := checkPANDigits(s); err != nil {
		return "", err
	}
	if !LuhnValid(s) {
		return "", errors.New(errors.BadRequest, "card number fails the Luhn check")
	}
	return PAN(s), nil
}

func checkPANDigits(s string) error {
	if len(s) < 12 || len(s) > 19 || !digits(s) {
		return errors.New(errors.BadRequest, "card number must be 12 to 19 digits")
	}
	return nil
}

// Masked returns p with all but its first six and last four digits replaced
// by '*'. A value too short to keep ten digits back is masked whole.
func (p PAN) Masked() string { return Mask(string(p)) }

// Mask masks a card number as PAN.Masked does.
func Mask(pan string) string {
	if len(pan) < 13 {
		return strings.Repeat("*", len(pan))
	}
	return pan[:6] + strings.Repeat("*", len(pan)-10) + pan[len(pan)-4:]
}

// String returns the masked number.
func (p PAN) String() string { return p.Masked() }

// GoString returns the masked number, for %#v.
func (p PAN) GoString() string { return fmt.Sprintf("card.PAN(%q)", p.Masked()) }

// Format prints the masked number whatever the verb, so that %s, %v, %q,
// %x and friends cannot print the digits.
func (p PAN) Format(f fmt.State, verb rune) { FormatMasked(f, verb, p.Masked(), p.GoString) }

// FormatMasked is the Format method of a type holding a secret: whatever
// the verb, it prints masked (as %s would, with the verb's flags and
// width), and %#v prints goString.
func FormatMasked(f fmt.State, verb rune, masked string, goString func() string) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, goString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), masked)
}

// LogValue logs the masked number.
func (p PAN) LogValue() slog.Value { return slog.StringValue(p.Masked()) }

// MarshalText encodes the masked number (and so does encoding/json).
func (p PAN) MarshalText() ([]byte, error) { return []byte(p.Masked()), nil }

// First6 returns the first six digits: the start of the BIN.
func (p PAN) First6() string { return string(p)[:min(6, len(p))] }

// Last4 returns the last four digits.
func (p PAN) Last4() string { return string(p)[max(0, len(p)-4):] }

// MaskedPAN returns the card number as shown to people: the first six
// digits, six '*' and the last four ("412345******2345").
func (c *Card) MaskedPAN() string { return c.PANFirst6 + "******" + c.PANLast4 }

// LogValue logs d with its number masked and without its CVC.
func (d Details) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("card_id", d.CardID),
		slog.String("pan", Mask(d.PAN)),
		slog.Int("expiry_month", d.ExpiryMonth),
		slog.Int("expiry_year", d.ExpiryYear),
		slog.String("cvc", "***"),
	)
}

// Format prints d with its number masked and without its CVC, whatever the
// verb. Only encoding/json, for the wire, carries d whole.
func (d Details) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "{CardID:%s PAN:%s Expiry:%02d/%04d CVC:***}", d.CardID, Mask(d.PAN), d.ExpiryMonth, d.ExpiryYear)
}

// LuhnValid reports whether s, a string of digits, ends in a valid Luhn
// (mod 10) check digit.
func LuhnValid(s string) bool {
	if len(s) < 2 || !digits(s) {
		return false
	}
	return LuhnDigit(s[:len(s)-1]) == s[len(s)-1]
}

// LuhnDigit returns the Luhn check digit to append to the digits s.
func LuhnDigit(s string) byte {
	// The check digit will be rightmost, so s's rightmost digit is doubled.
	sum := 0
	double := true
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

func digits(s string) bool { return s != "" && ascii.Digits(s) }
