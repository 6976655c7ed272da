// Package idempotency holds the rules every corebank service applies to the
// idempotency keys its callers send with writes: the same key with the same
// request has one effect, however often it is sent.
package idempotency

import (
	"unicode"
	"unicode/utf8"

	"github.com/corebank/corebank/errors"
)

// MaxKeyLen is the longest key a service accepts, in bytes.
const MaxKeyLen = 128

// CheckKey returns a BadRequest error unless key is 1 to MaxKeyLen bytes of
// printable UTF-8.
func CheckKey(key string) error {
	switch {
	case key == "":
		return errors.New(errors.BadRequest, "key is required")
	case len(key) > MaxKeyLen:
		return errors.Errorf(errors.BadRequest, "key is longer than %d bytes", MaxKeyLen)
	case !Printable(key):
		return errors.New(errors.BadRequest, "key must be printable UTF-8")
	}
	return nil
}

// Printable reports whether s is valid UTF-8 of graphic characters only
// (letters, marks, numbers, punctuation, symbols and spaces: Go's
// unicode.IsGraphic). Refused: controls (NUL above all: PostgreSQL rejects
// it in text), format characters such as a right-to-left override or a
// zero-width space (which make one key or owner display as another in a
// back office or a log), line and paragraph separators, private-use,
// surrogate, noncharacter and unassigned code points. The zero-width
// joiner and non-joiner are text between two graphic characters (Persian
// and Indic spelling, emoji sequences) and allowed there only.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	prev := rune(-1) // the character before, -1 at the start or after a joiner
	for i, r := range s {
		if r == '\u200c' || r == '\u200d' {
			next, _ := utf8.DecodeRuneInString(s[i+utf8.RuneLen(r):])
			if prev < 0 || i+utf8.RuneLen(r) == len(s) || !unicode.IsGraphic(next) {
				return false
			}
			prev = -1
			continue
		}
		if !unicode.IsGraphic(r) {
			return false
		}
		prev = r
	}
	return true
}
