package authorization_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// blinkingGetHold fails GetHold once, when armed: the ledger briefly
// unreachable (a read; nothing happens in the ledger).
type blinkingGetHold struct {
	ledger.Service
	armed atomic.Bool
}

func (l *blinkingGetHold) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	if l.armed.CompareAndSwap(true, false) {
		return nil, errors.New(errors.Unavailable, "connection lost")
	}
	return l.Service.GetHold(ctx, id)
}

// A pre-authorization of 5000, a presentment of 3000 with more to come,
// then the network's reversal to a new total of 2000 (all of it cleared
// already: the hold is only voided, the original keeps 2000 outstanding on
// it), then its full reversal. The full reversal's void is refused (the
// hold is voided already) and the service reads the hold to tell voided
// from posted. If that read fails once (a transient Unavailable), the
// reversal stays pending and is completed later, as after every other
// ledger failure: recorded for good as releasing nothing, it would leave
// the original 2000 outstanding that nothing in the ledger holds, a
// phantom spend the card's limits count.
func TestFullReversalOfAVoidedHoldSurvivesATransientGetHoldFailure(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		led := &blinkingGetHold{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = led })
		h := e.holder(10_000, card.Controls{DailyLimit: 6000})
		pre := e.preauth(t, a, h, 5000)
		o := must(t)(a.ByNetworkID(ctx, pre.Network))
		if _, err := e.led.PostHold(ctx, ledger.PostHoldRequest{Key: "clr:f:1", HoldID: o.HoldID, Amount: 3000, KeepOpen: true, Force: true}); err != nil {
			t.Fatal(err)
		}
		must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 2000}))
		e.wantBalance(t, h.Account, 7000, 0)

		full := authorization.ReversalRequest{Network: e.net(), Original: pre.Network}
		led.armed.Store(true)
		d, err := a.Reverse(ctx, full)
		if err == nil && d.Amount == 0 {
			t.Errorf("full reversal with one failed ledger read recorded for good: %+v (released nothing)", d)
		}
		// The network retransmits its reversal (0421) and the service
		// recovers: all is as it would have been without the failure.
		if _, err := a.RecoverPending(ctx, 0); err != nil {
			t.Fatalf("RecoverPending: %v", err)
		}
		d = must(t)(a.Reverse(ctx, full))
		if d.Amount != 2000 {
			t.Errorf("full reversal released %d, want 2000: %+v", d.Amount, d)
		}
		if o := must(t)(a.ByNetworkID(ctx, pre.Network)); o.Outstanding != 0 {
			t.Errorf("original outstanding %d after the network's full reversal, want 0 (nothing is held for it)", o.Outstanding)
		}
		e.wantBalance(t, h.Account, 7000, 0)
		// The card's daily limit (6000) is free again: nothing is
		// outstanding on it.
		if p := must(t)(a.Authorize(ctx, e.purchase(h, 5000))); !p.Approved {
			t.Errorf("purchase of 5000 under a 6000 daily limit with nothing outstanding declined: %s %s", p.Reason, p.Detail)
		}
	})
}
