package idempotency_test

import (
	"strings"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/idempotency"
)

func TestCheckKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"k", true},
		{"auth:400012:1122:000042:123456789012", true},
		{"café-☕", true},
		{strings.Repeat("k", idempotency.MaxKeyLen), true},
		{"", false},
		{strings.Repeat("k", idempotency.MaxKeyLen+1), false},
		{"a\x00b", false},
		{"tab\there", false},
		{"new\nline", false},
		{"del\x7f", false},
		{"nel\u0085", false}, // C1 controls too
		{"csi\u009b31m", false},
		{"\u0080", false},
		{"nbsp\u00a0é", true}, // the first printable after them
		{"\xff\xfe", false},
		// Format characters and separators: a key or owner that displays
		// as another in a back office or a log.
		{"acct\u202e1234", false},  // right-to-left override
		{"a\u200bb", false},        // zero-width space
		{"line\u2028break", false}, // line separator
		{"\ufeffkey", false},       // byte-order mark
		{"nonchar\uffff", false},   // a noncharacter
		{"private\ue000", false},   // private use
		{"\u0378", false},          // unassigned
		{"Zoë 🙂 ١٢٣", true},        // letters, symbols, digits of any script
		// Joiners are text between two graphic characters only.
		{"customer:\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", true}, // Persian, ZWNJ
		{"support \U0001F469\u200d\U0001F4BB", true},                        // an emoji ZWJ sequence
		{"\u0915\u094d\u200d\u0937", true},                                  // Devanagari half-form
		{"\u200dkey", false},
		{"key\u200c", false},
		{"a\u200d\u200db", false},
		{"a\u200d\u202eb", false},
	} {
		err := idempotency.CheckKey(tc.key)
		if tc.ok && err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", tc.key, err)
		}
		if !tc.ok && errors.CodeOf(err) != errors.BadRequest {
			t.Errorf("CheckKey(%q) = %v, want bad_request", tc.key, err)
		}
	}
}
