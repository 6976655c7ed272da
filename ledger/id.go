package ledger

import (
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
	"time"
)

// ids makes identifiers that sort by creation time: a prefix, 10 base-32
// characters of milliseconds since the epoch, and 16 of randomness (80 bits).
// Time order keeps B-tree inserts near the right edge; the random part makes
// them unique across processes without coordination.
type ids struct {
	mu  sync.Mutex
	rng *rand.ChaCha8
}

func newIDs() *ids {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		panic("ledger: no entropy: " + err.Error())
	}
	return &ids{rng: rand.NewChaCha8(seed)}
}

const crockford = "0123456789abcdefghjkmnpqrstvwxyz"

func (g *ids) new(prefix string, now time.Time) string {
	var b [26]byte
	ms := uint64(now.UnixMilli())
	for i := 9; i >= 0; i-- {
		b[i] = crockford[ms&31]
		ms >>= 5
	}
	g.mu.Lock()
	r1, r2 := g.rng.Uint64(), g.rng.Uint64()
	g.mu.Unlock()
	for i := 10; i < 26; i++ {
		b[i] = crockford[r1&31]
		r1 >>= 5
		if i == 21 {
			r1 = r2
		}
	}
	return prefix + string(b[:])
}
