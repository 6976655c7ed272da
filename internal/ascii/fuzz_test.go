package ascii

import (
	"regexp"
	"strings"
	"testing"
)

// cardRun is a run as MaskCardNumbers's doc defines it: digits, each after
// at most one space, dash or dot. Matches are leftmost and, the quantifiers
// being greedy, as long as the text allows.
var cardRun = regexp.MustCompile(`[0-9](?:[ .\-]?[0-9])*`)

// refMask masks s as MaskCardNumbers's doc says: in each run of 12 or more
// digits, every digit but the first six and the last four (the last four
// only, for 12) becomes '*'.
func refMask(s string) string {
	b := []byte(s)
	for _, m := range cardRun.FindAllStringIndex(s, -1) {
		var at []int
		for i := m[0]; i < m[1]; i++ {
			if '0' <= s[i] && s[i] <= '9' {
				at = append(at, i)
			}
		}
		n := len(at)
		if n < 12 {
			continue
		}
		keep := 6
		if n == 12 {
			keep = 0
		}
		for _, i := range at[keep : n-4] {
			b[i] = '*'
		}
	}
	return string(b)
}

// longestRun returns the most digits in one run of s.
func longestRun(s string) int {
	most := 0
	for _, r := range cardRun.FindAllString(s, -1) {
		most = max(most, strings.Count(r, "")-1-strings.Count(r, " ")-strings.Count(r, "-")-strings.Count(r, "."))
	}
	return most
}

// FuzzMaskCardNumbers masks arbitrary text. MaskCardNumbers never panics;
// it returns what a reference implementation of its doc comment returns;
// it keeps the length and changes only digits, to '*'; the result has no
// run of 12 or more digits and masks to itself; text without a digit
// comes back unchanged.
func FuzzMaskCardNumbers(f *testing.F) {
	for _, s := range []string{
		"", "OZONE COFFEE", "PAY 4571736043621200", "4599 9935 2377 8640",
		"4599-9935-2377-8640 LONDON", "4599.9935.2377.8640", "459999352377",
		"45999935237", "TEL 020 7946 0000", "4599  9935 2377 8640",
		"A 4599993523778640123 B", "459999******8640",
		"12-34-56-78-90-12 and 1234567890",
		// From the other tests: numbers within Quote's and JSON's text.
		"4571-7360-1234-5678", "12345678901", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
		`field "4599993523778640" appears twice`, "459999352377-8640", "1.2.3.4.5.6.7.8.9.0.1.2",
		"1234567890123 4567890123456", "-4599993523778640-", "4599 9935 2377 864٠",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := MaskCardNumbers(s)
		if want := refMask(s); got != want {
			t.Fatalf("MaskCardNumbers(%q) = %q, want %q", s, got, want)
		}
		if len(got) != len(s) {
			t.Fatalf("MaskCardNumbers(%q) = %q: length changed", s, got)
		}
		for i := 0; i < len(s); i++ {
			if got[i] != s[i] && (got[i] != '*' || s[i] < '0' || s[i] > '9') {
				t.Fatalf("MaskCardNumbers(%q) = %q: byte %d changed from %q to %q", s, got, i, s[i], got[i])
			}
		}
		if n := longestRun(got); n >= 12 {
			t.Fatalf("MaskCardNumbers(%q) = %q, which has a run of %d digits", s, got, n)
		}
		if again := MaskCardNumbers(got); again != got {
			t.Fatalf("MaskCardNumbers(%q) = %q, but that masks to %q", s, got, again)
		}
		if !strings.ContainsAny(s, "0123456789") && got != s {
			t.Fatalf("MaskCardNumbers(%q) = %q, but it has no digit", s, got)
		}
	})
}
