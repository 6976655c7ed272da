package authorization_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store/storetest"
)

// An original decided in one process and its reversal in another, at the
// same moment, on one PostgreSQL database: whichever lands first, no money
// stays held for a reversed payment.
func TestReversalAndOriginalAcrossProcesses(t *testing.T) {
	db := storetest.Postgres(t, "authorization")
	ctx := context.Background()
	e := newEnv(t, db)
	other := e.another(t, db, nil)
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 120 {
		h := e.holder(100_000, card.Controls{})
		req := e.purchase(h, 600)
		rev := authorization.ReversalRequest{Network: e.net(), Original: req.Network}
		jitter := time.Duration(rng.IntN(6000)) * time.Microsecond
		var d, rd *authorization.Decision
		var derr, rerr error
		var wg sync.WaitGroup
		wg.Go(func() { d, derr = e.a.Authorize(ctx, req) })
		wg.Go(func() { time.Sleep(jitter); rd, rerr = other.Reverse(ctx, rev) })
		wg.Wait()
		if derr != nil || rerr != nil {
			t.Fatalf("round %d: %v, %v", round, derr, rerr)
		}
		if b := e.balance(h.Account); b.Pending != 0 {
			t.Fatalf("round %d (jitter %v): reversal %s/%s, original approved=%v (%s): %d still held for a reversed payment",
				round, jitter, rd.Reason, rd.Detail, d.Approved, d.Reason, b.Pending)
		}
	}
}
