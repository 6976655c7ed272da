package card_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
)

// refLuhn reports whether the digits s end in a valid Luhn check digit:
// doubling every second digit from the right, casting out nines, the sum
// is a multiple of ten.
func refLuhn(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if i%2 == 1 {
			d = d * 2 % 9
			if d == 0 && s[len(s)-1-i] == '9' {
				d = 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// refPAN reports whether s is what ParsePAN's doc accepts: 12 to 19 ASCII
// digits with a valid Luhn check digit.
func refPAN(s string) bool {
	if len(s) < 12 || len(s) > 19 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return refLuhn(s)
}

// panMessages is the text of ParsePAN's errors: an input that is a part
// of it is not taken for an echo.
const panMessages = "bad_request: card number must be 12 to 19 digits; card number fails the Luhn check"

// FuzzParsePAN parses arbitrary strings as card numbers. ParsePAN never
// panics; it accepts exactly the strings of 12 to 19 ASCII digits that pass
// an independent Luhn check, unchanged; its errors are bad_request and do
// not contain the input; an accepted PAN's masked form (Masked, and what
// fmt, encoding/json and First6/Last4 show) keeps the length and shows
// only the first six and the last four digits (none below 13 digits).
func FuzzParsePAN(f *testing.F) {
	for _, s := range []string{
		// TestLuhn, TestParsePAN, TestPANIsMaskedEverywhere
		"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
		"4111111111111112", "5555555555554443", "", "4", "41111111111a1111",
		"41111111111", "41111111111111111111", "4111-1111-1111-1111",
		"4571736012345678", "4111111111111111111", "123456789012",
		// Lengths 12, 13 and 19 with a valid check digit; non-ASCII digits.
		"000000000000", "1234567890128", "4000000000000000006", "٤١١١١١١١١١١١١١١١",
		" 4111111111111111", "4111111111111111\n", "+411111111111111",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := card.ParsePAN(s)
		want := refPAN(s)
		if err != nil {
			if want {
				t.Fatalf("ParsePAN(%q) = %v, want it accepted", s, err)
			}
			if errors.CodeOf(err) != errors.BadRequest {
				t.Fatalf("ParsePAN(%q) error %v, want bad_request", s, err)
			}
			if len(s) >= 4 && strings.Contains(err.Error(), s) && !strings.Contains(panMessages, s) {
				t.Fatalf("ParsePAN(%q) error %q contains the input", s, err)
			}
			return
		}
		if !want {
			t.Fatalf("ParsePAN(%q) = %q, want an error", s, string(p))
		}
		if string(p) != s {
			t.Fatalf("ParsePAN(%q) = %q, want it unchanged", s, string(p))
		}

		m := p.Masked()
		if len(m) != len(s) {
			t.Fatalf("ParsePAN(%q).Masked() = %q: length changed", s, m)
		}
		shown := 0
		for i := 0; i < len(m); i++ {
			switch {
			case m[i] == '*':
			case m[i] != s[i]:
				t.Fatalf("ParsePAN(%q).Masked() = %q: byte %d is neither the digit nor '*'", s, m, i)
			case len(s) < 13 || (i >= 6 && i < len(s)-4):
				t.Fatalf("ParsePAN(%q).Masked() = %q shows digit %d", s, m, i)
			default:
				shown++
			}
		}
		if len(s) >= 13 && shown != 10 {
			t.Fatalf("ParsePAN(%q).Masked() = %q shows %d digits, want the first 6 and last 4", s, m, shown)
		}
		if p.First6() != s[:6] || p.Last4() != s[len(s)-4:] {
			t.Fatalf("ParsePAN(%q): First6, Last4 = %q, %q", s, p.First6(), p.Last4())
		}
		j, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, out := range []string{
			fmt.Sprint(p), fmt.Sprintf("%s|%v|%+v|%#v|%q|%x|%X|%d|%30s", p, p, p, p, p, p, p, p, p), string(j),
		} {
			if strings.Contains(out, s) || strings.Contains(out, fmt.Sprintf("%x", s)) || strings.Contains(out, fmt.Sprintf("%X", s)) {
				t.Fatalf("ParsePAN(%q) prints as %q, which shows the number", s, out)
			}
			if !strings.Contains(out, m) && !strings.Contains(out, fmt.Sprintf("%x", m)) && !strings.Contains(out, fmt.Sprintf("%X", m)) {
				t.Fatalf("ParsePAN(%q) prints as %q, without its masked form %q", s, out, m)
			}
		}
	})
}
