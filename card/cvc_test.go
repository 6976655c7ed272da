package card_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
)

// TestCVVPublishedVector checks the implementation against the test vector
// that circulates with descriptions of the Visa CVV algorithm: PAN
// 4123456789012345, expiry 8701 (YYMM), service code 101, CVK-A
// 0123456789ABCDEF, CVK-B FEDCBA9876543210 give CVV 561. (Intermediate:
// the triple-DES result is 5B614982E03C97DD, whose decimal digits start
// 5, 6, 1.)
func TestCVVPublishedVector(t *testing.T) {
	got, err := testCVK(t).CVV("4123456789012345", "8701", "101")
	if err != nil {
		t.Fatal(err)
	}
	if got != "561" {
		t.Fatalf("CVV = %s, want 561", got)
	}
}

func TestCVVDependsOnEveryInput(t *testing.T) {
	k := testCVK(t)
	base := must(t, k, "4571736012345678", "3401", card.ServiceCodeCVV2)
	if len(base) != 3 || strings.Trim(base, "0123456789") != "" {
		t.Fatalf("CVV = %q, want three digits", base)
	}
	// Over a handful of variations a three-digit code may collide once by
	// chance (1 in 1000); require most to differ.
	differ := func(name string, vals []string) {
		t.Helper()
		n := 0
		for _, v := range vals {
			if v != base {
				n++
			}
		}
		if n < len(vals)-1 {
			t.Errorf("%s: %d of %d variations changed the CVV", name, n, len(vals))
		}
	}
	differ("expiry", []string{
		must(t, k, "4571736012345678", "3402", card.ServiceCodeCVV2),
		must(t, k, "4571736012345678", "3501", card.ServiceCodeCVV2),
		must(t, k, "4571736012345678", "3312", card.ServiceCodeCVV2),
	})
	differ("pan", []string{
		must(t, k, "4571736012345686", "3401", card.ServiceCodeCVV2),
		must(t, k, "4571736012345694", "3401", card.ServiceCodeCVV2),
		must(t, k, "4571736099999996", "3401", card.ServiceCodeCVV2),
	})
	differ("service code", []string{
		must(t, k, "4571736012345678", "3401", "101"),
		must(t, k, "4571736012345678", "3401", "201"),
		must(t, k, "4571736012345678", "3401", "999"),
	})
	other := card.CVK{A: k.B, B: k.A}
	differ("keys", []string{must(t, other, "4571736012345678", "3401", card.ServiceCodeCVV2)})
}

func TestCVVRejectsBadInput(t *testing.T) {
	k := testCVK(t)
	for _, c := range []struct{ name, pan, exp, sc string }{
		{"short pan", "41234567890", "8701", "101"},
		{"letters in pan", "41234567890123a5", "8701", "101"},
		{"expiry length", "4123456789012345", "870", "101"},
		{"expiry letters", "4123456789012345", "87a1", "101"},
		{"service code", "4123456789012345", "8701", "1011"},
	} {
		_, err := k.CVV(c.pan, c.exp, c.sc)
		if errors.CodeOf(err) != errors.BadRequest {
			t.Errorf("%s: error = %v, want BadRequest", c.name, err)
		} else if strings.Contains(err.Error(), c.pan) {
			t.Errorf("%s: error %q contains the PAN", c.name, err)
		}
	}
	if _, err := (card.CVK{A: k.A, B: k.A}).CVV("4123456789012345", "8701", "101"); errors.CodeOf(err) != errors.BadRequest {
		t.Errorf("equal halves: error = %v, want BadRequest", err)
	}
	// One key to DES, which ignores each byte's low (parity) bit.
	parity := slices.Clone(k.A)
	for i := range parity {
		parity[i] ^= 1
	}
	if _, err := (card.CVK{A: k.A, B: parity}).CVV("4123456789012345", "8701", "101"); errors.CodeOf(err) != errors.BadRequest {
		t.Errorf("halves differing only in parity bits: error = %v, want BadRequest", err)
	}
	if _, err := (card.CVK{A: k.A[:7], B: k.B}).CVV("4123456789012345", "8701", "101"); errors.CodeOf(err) != errors.BadRequest {
		t.Errorf("short key: error = %v, want BadRequest", err)
	}
}

func must(t *testing.T, k card.CVK, pan, exp, sc string) string {
	t.Helper()
	v, err := k.CVV(pan, exp, sc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
