package card

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// crockford is the base-32 alphabet of ids, the ledger's too.
const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

// newID returns an identifier that sorts by creation time: prefix, 10
// base-32 characters of milliseconds since the epoch, and 16 of randomness
// (80 bits), as the ledger makes them.
func newID(prefix string, now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	var r [16]byte
	rand.Read(r[:]) // never fails (crypto/rand: it crashes the program instead)
	r1, r2 := binary.LittleEndian.Uint64(r[:8]), binary.LittleEndian.Uint64(r[8:])
	for i := 10; i < 26; i++ {
		b[i] = crockford[r1&31]
		r1 >>= 5
		if i == 17 {
			r1 = r2
		}
	}
	return prefix + string(b[:])
}
