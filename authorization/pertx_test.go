package authorization_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// The per-transaction limit is on the whole of a grown payment. An
// incremental whose ledger answer was lost is pending: the ledger grew the
// hold, and the record (spend counts it at its operation's amount) is
// completed later to an approval. A second incremental of the same
// pre-authorization must see it: 6000 + 3000 (pending) + 3000 is over a
// 10000 limit. The gate reads only the original's finished outstanding.
func TestPerTransactionLimitSeesAPendingIncrement(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		// The first IncrementHold (inc1's) grows the hold and loses its
		// answer, once.
		in := newInjector(fault{method: "IncrementHold", nth: 1, mode: faultAfter})
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = &faultLedger{Service: e.led, in: in} })
		h := e.holder(100_000, card.Controls{PerTransactionLimit: 10_000})
		pre := e.preauth(t, a, h, 6000)
		inc1 := e.incremental(h, pre.Network, 3000)
		if _, err := a.Increment(ctx, inc1); errors.CodeOf(err) != errors.Unavailable {
			t.Fatalf("first increment: %v, want its answer lost", err)
		}
		inc2 := e.incremental(h, pre.Network, 3000)
		d2 := must(t)(a.Increment(ctx, inc2))
		d1 := must(t)(a.Increment(ctx, inc1)) // the retransmission completes it
		if !d1.Approved || d1.Reason != authorization.Approved || d1.Amount != 3000 {
			t.Errorf("first increment completed as %+v, want approved for 3000 (the ledger grew the hold)", d1)
		}
		if d2.Approved || d2.Reason != authorization.ExceedsLimit || d2.Detail != string(card.OverTransactionLimit) {
			t.Errorf("second increment %s/%s (approved %v), want declined %s/%s: 6000 + 3000 pending + 3000 is over 10000",
				d2.Reason, d2.Detail, d2.Approved, authorization.ExceedsLimit, card.OverTransactionLimit)
		}
		if got := must(t)(a.ByNetworkID(ctx, pre.Network)); got.Outstanding != 9000 {
			t.Errorf("payment holds %d, want 9000 (6000 + the first increment's 3000)", got.Outstanding)
		}
		e.wantBalance(t, h.Account, 100_000, 9000)
	})
}
