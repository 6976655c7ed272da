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

// Printable reports whether s is valid UTF-8 without control characters.
// NUL above all: PostgreSQL rejects it in text, and no key or identifier
// needs it.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) { // C0, DEL and C1 (U+0080 to U+009F)
			return false
		}
	}
	return true
}
