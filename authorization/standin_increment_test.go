package authorization_test

import (
	"context"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// The gateway answered 91 to a pre-authorization and queued its own
// reversal; the network stood in (its advice holds 5000), then an
// incremental of 2000 grew the advice's hold to 7000. The gateway's queued
// reversal is carried out next: it undoes the bank's decision only (the
// pre-authorization's own hold if the bank approved late, nothing if the
// bank never saw it) and leaves the advice at 7000. The network then
// reverses the incremental: the advice must come back to 5000. The
// gateway's own reversal did not take the increment off the advice, so it
// must not count as covering it.
func TestOwnReversalAfterIncrementOfStandInDoesNotCoverIt(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		for _, seen := range []bool{false, true} {
			h := e.holder(20_000, card.Controls{})
			pre := e.purchase(h, 5000)
			pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
			if seen {
				must(t)(e.a.Authorize(ctx, pre)) // late: the gateway had answered 91
			}
			if err := e.a.QueueReversal(ctx, gatewayReversal(pre.Network)); err != nil {
				t.Fatal(err)
			}
			adv := e.standInAdvice(h, pre, "NET777")
			ad := must(t)(e.a.Advise(ctx, adv))
			if !ad.Approved || ad.HoldID == "" || ad.Detail == "confirms_original" {
				t.Fatalf("seen %v: advice %+v, want its own hold", seen, ad)
			}
			inc := e.incremental(h, pre.Network, 2000)
			d := must(t)(e.a.Increment(ctx, inc))
			if !d.Approved || d.OriginalID != ad.ID {
				t.Fatalf("seen %v: incremental %+v, want it to grow the advice", seen, d)
			}
			e.clk.Add(time.Second)
			// The gateway's queued reversal of the pre-authorization.
			if _, err := e.a.RecoverQueued(ctx, 0); err != nil {
				t.Fatal(err)
			}
			if got := must(t)(e.a.Get(ctx, ad.ID)); got.Outstanding != 7000 {
				t.Fatalf("seen %v: advice outstanding %d after the gateway's reversal, want 7000", seen, got.Outstanding)
			}
			e.wantBalance(t, h.Account, 20_000, 7000)
			// The network reverses the incremental.
			r := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network}))
			if r.Amount != 2000 {
				t.Errorf("seen %v: the network's reversal of the incremental released %d (%s), want 2000", seen, r.Amount, r.Detail)
			}
			e.wantBalance(t, h.Account, 20_000, 5000)
			if got := must(t)(e.a.Get(ctx, ad.ID)); got.Outstanding != 5000 {
				t.Errorf("seen %v: advice outstanding %d, want 5000", seen, got.Outstanding)
			}
		}
	})
}

// The network stood in for a pre-authorization the bank had approved (its
// advice confirms the bank's hold), then the bank approved an incremental
// of it. The gateway's own reversal of its (late) answer to the
// pre-authorization keeps the hold (confirmed_by_stand_in: it releases
// nothing). The network then reverses the incremental: the increment must
// come off. The gateway's reversal that kept the hold stated nothing about
// what the network wants held, so it must not "cover" the increment.
func TestKeptOwnReversalDoesNotCoverAnIncrement(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(20_000, card.Controls{})
		pre := e.preauth(t, e.a, h, 5000)
		ad := must(t)(e.a.Advise(ctx, e.standInAdvice(h, pre, "NET444")))
		if ad.Detail != "confirms_original" {
			t.Fatalf("advice %+v, want it to confirm", ad)
		}
		inc := e.incremental(h, pre.Network, 2000)
		must(t)(e.a.Increment(ctx, inc))
		e.wantBalance(t, h.Account, 20_000, 7000)
		e.clk.Add(time.Second)
		if d := must(t)(e.a.Reverse(ctx, gatewayReversal(pre.Network))); d.Amount != 0 {
			t.Fatalf("the gateway's reversal released %d, want 0 (confirmed by the stand-in)", d.Amount)
		}
		e.clk.Add(time.Second)
		r := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network}))
		if r.Amount != 2000 {
			t.Errorf("the network's reversal of the incremental released %d (%s), want 2000", r.Amount, r.Detail)
		}
		e.wantBalance(t, h.Account, 20_000, 5000)
	})
}
