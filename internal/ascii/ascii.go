// Package ascii holds the byte-level checks that several packages' parsers
// and validators share: card numbers, amounts, network ids and clearing
// fields are all strings of ASCII digits.
package ascii

import (
	"fmt"
	"strconv"
)

// Digits reports whether every byte of s is an ASCII digit ('0' to '9').
// It is true of "": callers that need a value check the length.
func Digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// DigitsLen reports whether s is lo to hi ASCII digits.
func DigitsLen(s string, lo, hi int) bool {
	return len(s) >= lo && len(s) <= hi && Digits(s)
}

// Value is the number a string of ASCII digits (checked with Digits, and
// short enough not to overflow an int) stands for.
func Value(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// Quote shows a bad value in an error, cut short. A value with 12 or more
// digits in it, however separated, is not shown: it may be a card number
// in the wrong column (masking a cut or spaced one would miss digits).
func Quote(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		if '0' <= s[i] && s[i] <= '9' {
			digits++
		}
	}
	if digits >= 12 {
		return fmt.Sprintf("(a value of %d characters with %d digits, not shown)", len(s), digits)
	}
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

// MaskCardNumbers masks what could be a card number in free text: each run
// of 12 or more digits, bare or separated by single spaces, dashes or dots
// ("4599 9935 2377 8640"), keeps its first six and last four digits (the
// last four only, for 12) and its separators, the digits between becoming
// '*'. The length is kept, and a masked string masks to itself.
func MaskCardNumbers(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		if '0' <= s[i] && s[i] <= '9' {
			digits++
		}
	}
	if digits < 12 {
		return s // nothing to mask: no copy
	}
	b := []byte(s)
	isDigit := func(i int) bool { return i < len(b) && '0' <= b[i] && b[i] <= '9' }
	for i := 0; i < len(b); {
		if !isDigit(i) {
			i++
			continue
		}
		// The run: digits, each after at most one separator.
		var at []int // the digits' positions
		j := i
		for isDigit(j) {
			at = append(at, j)
			j++
			if j < len(b) && (b[j] == ' ' || b[j] == '-' || b[j] == '.') && isDigit(j+1) {
				j++
			}
		}
		if n := len(at); n >= 12 {
			first := 6
			if n < 13 {
				first = 0
			}
			for _, k := range at[first : n-4] {
				b[k] = '*'
			}
		}
		i = j
	}
	return string(b)
}
