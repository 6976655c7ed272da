package authorization_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// The original is never decided; the gateway queues its own reversal
// (not yet carried out); the network stands in and its 0120 reuses the
// original's ids without DE90. The advice holds, and the queued reversal,
// carried out later, finds the advice under the original's key and leaves
// it: the gateway's reversal undoes the bank's decision, and there was
// none.
func TestQueuedOwnReversalKeepsAStandInReusingIDs(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		orig := e.purchase(h, 3000)
		if err := e.a.QueueReversal(ctx, gatewayReversal(orig.Network)); err != nil {
			t.Fatal(err)
		}
		adv := orig
		adv.Kind, adv.StandIn, adv.CVC, adv.Expiry, adv.AuthCode = authorization.KindAdvice, true, "", "", "NET123"
		ad := must(t)(e.a.Advise(ctx, adv))
		if !ad.Approved || ad.HoldID == "" {
			t.Fatalf("advice %+v, want its own hold", ad)
		}
		e.wantBalance(t, h.Account, 10_000, 3000)
		if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
			t.Fatalf("RecoverQueued = %d, %v", n, err)
		}
		// The gateway's own reversal undoes the bank's decision, never the
		// network's stand-in: the hold must stay.
		e.wantBalance(t, h.Account, 10_000, 3000)
	})
}

// The network stood in for an incremental (its advice names the
// incremental's ids), and the incremental reaches us afterwards: it is
// declined stood_in, not held a second time.
func TestIncrementalAfterItsStandInHoldsNothingMore(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		pre := e.preauth(t, e.a, h, 1000)
		inc := e.purchase(h, 500)
		inc.Kind, inc.MCC, inc.Original = authorization.KindIncremental, "7011", &pre.Network
		adv := e.purchase(h, 500)
		adv.Kind, adv.StandIn, adv.CVC, adv.Expiry, adv.AuthCode, adv.Original = authorization.KindAdvice, true, "", "", "NET123", &inc.Network
		ad := must(t)(e.a.Advise(ctx, adv))
		if !ad.Approved || ad.HoldID == "" {
			t.Fatalf("advice %+v, want its own hold", ad)
		}
		e.wantBalance(t, h.Account, 10_000, 1500)
		if d := must(t)(e.a.Increment(ctx, inc)); d.Approved || d.Detail != "stood_in" {
			t.Errorf("late incremental = %v %s/%s, want declined stood_in", d.Approved, d.Reason, d.Detail)
		}
		e.wantBalance(t, h.Account, 10_000, 1500)
	})
}

// A preauth approved and heard. An incremental is stood in for and
// declined by the network; its 0120 (as 0100, plus 39) carries the
// incremental's DE90, naming the preauth. The preauth, which the merchant
// will clear, stays held.
func TestDeclinedAdviceOfAnIncrementKeepsThePreauth(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		pre := e.preauth(t, e.a, h, 1000)
		adv := e.purchase(h, 500)
		adv.Kind, adv.MCC, adv.CVC, adv.Expiry, adv.Original = authorization.KindAdvice, "7011", "", "", &pre.Network
		ad := must(t)(e.a.Advise(ctx, adv))
		if ad.Reason != authorization.NetworkDeclined {
			t.Fatalf("advice %+v", ad)
		}
		e.wantBalance(t, h.Account, 10_000, 1000)
	})
}
