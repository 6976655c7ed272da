package authorization_test

import (
	"context"
	"sync"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// incrLosingLedger makes the IncrementHold call with key lose, then loses
// its answer once (the hold is grown, the caller hears Unavailable).
type incrLosingLedger struct {
	ledger.Service
	mu   sync.Mutex
	lose string
}

func (l *incrLosingLedger) IncrementHold(ctx context.Context, req ledger.IncrementHoldRequest) (*ledger.Hold, error) {
	h, err := l.Service.IncrementHold(ctx, req)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && req.Key == l.lose {
		l.lose = ""
		return nil, errors.New(errors.Unavailable, "connection lost")
	}
	return h, err
}

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
		ll := &incrLosingLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = ll })
		h := e.holder(100_000, card.Controls{PerTransactionLimit: 10_000})
		pre := e.preauth(t, a, h, 6000)
		inc1 := e.purchase(h, 3000)
		inc1.Kind, inc1.MCC, inc1.Original = authorization.KindIncremental, "7011", &pre.Network
		ll.mu.Lock()
		ll.lose = inc1.Network.Key()
		ll.mu.Unlock()
		if _, err := a.Increment(ctx, inc1); errors.CodeOf(err) != errors.Unavailable {
			t.Fatalf("first increment: %v, want its answer lost", err)
		}
		inc2 := e.purchase(h, 3000)
		inc2.Kind, inc2.MCC, inc2.Original = authorization.KindIncremental, "7011", &pre.Network
		d2 := must(t)(a.Increment(ctx, inc2))
		d1 := must(t)(a.Increment(ctx, inc1)) // the retransmission completes it
		got := must(t)(a.ByNetworkID(ctx, pre.Network))
		t.Logf("inc1 %s/%s, inc2 %s/%s, payment holds %d", d1.Reason, d1.Detail, d2.Reason, d2.Detail, got.Outstanding)
		if got.Outstanding > 10_000 {
			t.Errorf("one payment holds %d under a per-transaction limit of 10000 (inc1 %s, inc2 %s)", got.Outstanding, d1.Reason, d2.Reason)
		}
		if b := e.balance(h.Account); b.Pending > 10_000 {
			t.Errorf("the ledger holds %d for one payment under a 10000 limit", b.Pending)
		}
	})
}
