// Package id mints corebank's identifiers: a prefix naming the kind of
// object ("trf_", "card_"), then 26 characters of Crockford base 32: ten of
// milliseconds since the epoch and sixteen of randomness (80 bits).
//
// Ids sort by creation time, so B-tree inserts land near the right edge,
// and any process can mint them without coordination. They are unique, not
// secret: the randomness is math/rand/v2's ChaCha8, seeded by the runtime,
// which is fast and safe for concurrent use.
package id

import (
	"math/rand/v2"
	"time"
)

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// New returns a new identifier with prefix, minted at now.
func New(prefix string, now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	r1, r2 := rand.Uint64(), rand.Uint64()
	for i := 10; i < 26; i++ {
		b[i] = crockford[r1&31]
		r1 >>= 5
		if i == 21 {
			r1 = r2
		}
	}
	return prefix + string(b[:])
}
