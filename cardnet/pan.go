package cardnet

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/corebank/corebank/card"
)

// PAN is a primary account number (a card number). Its String, GoString,
// LogValue and MarshalText give the masked form, so a PAN cannot reach a log
// or an event in clear by accident; string(p) is the deliberate way out.
type PAN string

// Masked returns the PAN with all but the first six and last four digits
// replaced by '*' ("411111******1111"), the most a display may show. Shorter
// numbers show less: the last four only below 13 digits, nothing below 8.
func (p PAN) Masked() string {
	n := len(p)
	switch {
	case n == 0:
		return ""
	case n < 8 || !isDigits(string(p), n):
		// Not one character per digit (a spec that carries DE2 as packed
		// bytes): any four bytes would show eight digits.
		return strings.Repeat("*", n)
	case n < 13:
		return strings.Repeat("*", n-4) + string(p[n-4:])
	}
	return string(p[:6]) + strings.Repeat("*", n-10) + string(p[n-4:])
}

// String returns the masked PAN.
func (p PAN) String() string { return p.Masked() }

// GoString returns the masked PAN, for %#v.
func (p PAN) GoString() string { return `"` + p.Masked() + `"` }

// Format prints the masked PAN whatever the verb (%d included).
func (p PAN) Format(f fmt.State, verb rune) { card.FormatMasked(f, verb, p.Masked(), p.GoString) }

// LogValue logs the masked PAN.
func (p PAN) LogValue() slog.Value { return slog.StringValue(p.Masked()) }

// MarshalText encodes the masked PAN: a full card number is never encoded.
func (p PAN) MarshalText() ([]byte, error) { return []byte(p.Masked()), nil }

// CVC is a card verification code as the network carries it (CVC2/CVV2, the
// three or four digits printed on the card). It is never logged, stored or
// encoded: String, GoString, LogValue and MarshalText give "***" when a code
// is present. string(c) is the deliberate way out, for verification only.
type CVC string

func (c CVC) hidden() string {
	if c == "" {
		return ""
	}
	return "***"
}

// String returns "***", or "" when no code is present.
func (c CVC) String() string { return c.hidden() }

// GoString returns the hidden form, for %#v.
func (c CVC) GoString() string { return `"` + c.hidden() + `"` }

// Format prints the hidden form whatever the verb.
func (c CVC) Format(f fmt.State, verb rune) { card.FormatMasked(f, verb, c.hidden(), c.GoString) }

// LogValue logs the hidden form.
func (c CVC) LogValue() slog.Value { return slog.StringValue(c.hidden()) }

// MarshalText encodes the hidden form: a CVC is never encoded.
func (c CVC) MarshalText() ([]byte, error) { return []byte(c.hidden()), nil }
