package authorization_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// The network declined the original in stand-in and its advice (same
// amount, DE90 naming it) reaches us before the original does. The late
// original is not heard (the merchant was declined): it holds nothing.
func TestLateOriginalAfterItsDeclinedAdviceHoldsNothing(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		orig := e.purchase(h, 3000)
		adv := e.purchase(h, 3000)
		adv.Kind, adv.CVC, adv.Expiry, adv.Original = authorization.KindAdvice, "", "", &orig.Network
		if ad := must(t)(e.a.Advise(ctx, adv)); ad.Reason != authorization.NetworkDeclined {
			t.Fatalf("advice %+v", ad)
		}
		d := must(t)(e.a.Authorize(ctx, orig))
		if d.Approved {
			t.Errorf("late original after the network declined it in stand-in = approved (%s/%s), holding %d", d.Reason, d.Detail, d.Amount)
		}
		e.wantBalance(t, h.Account, 10_000, 0)
	})
}

// A stand-in advice on one card whose DE90 names network ids that another
// card's request then uses: the other card's request is decided as usual,
// as everywhere an "original" of another card is left alone.
func TestStoodInCheckIsOfTheSameCard(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		ha := e.holder(10_000, card.Controls{})
		hb := e.holder(10_000, card.Controls{})
		other := e.purchase(hb, 2000)
		adv := e.purchase(ha, 1000)
		adv.Kind, adv.StandIn, adv.CVC, adv.Expiry, adv.AuthCode, adv.Original = authorization.KindAdvice, true, "", "", "NET123", &other.Network
		if ad := must(t)(e.a.Advise(ctx, adv)); !ad.Approved {
			t.Fatalf("advice %+v", ad)
		}
		if d := must(t)(e.a.Authorize(ctx, other)); !d.Approved {
			t.Errorf("card B's purchase = declined %s/%s because of card A's advice", d.Reason, d.Detail)
		}
	})
}

// Two advices whose DE90s name each other (as in
// TestReversalsOfAdvicesNamingEachOtherDoNotWait, without the gateway
// reversal in between): the second confirms the first, which holds. An
// advice is the network's own message: no stand-in check declines it.
func TestAdviceConfirmingAnAdviceThatNamesIt(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		n1, n2 := e.net(), e.net()
		adv1 := e.purchase(h, 1000)
		adv1.Network = n1
		adv1.Kind, adv1.StandIn, adv1.Original, adv1.CVC, adv1.Expiry = authorization.KindAdvice, true, &n2, "", ""
		must(t)(e.a.Advise(ctx, adv1))
		adv2 := e.purchase(h, 1000)
		adv2.Network = n2
		adv2.Kind, adv2.StandIn, adv2.Original, adv2.CVC, adv2.Expiry = authorization.KindAdvice, true, &n1, "", ""
		d := must(t)(e.a.Advise(ctx, adv2))
		if !d.Approved || d.Detail != "confirms_original" {
			t.Errorf("second advice = approved %v %s/%s, want it to confirm the first", d.Approved, d.Reason, d.Detail)
		}
		e.wantBalance(t, h.Account, 10_000, 1000)
	})
}

// A declined 0120 reusing the original's ids without DE90 (the original
// never decided), while an incremental's approved advice names that
// original: recorded network_declined, its own reason.
func TestDeclinedAdviceReusingIDsKeepsItsReason(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		pre := e.purchase(h, 1000)
		pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
		inc := e.purchase(h, 500)
		inc.Kind, inc.MCC, inc.StandIn, inc.CVC, inc.Expiry, inc.AuthCode, inc.Original = authorization.KindAdvice, "7011", true, "", "", "NET123", &pre.Network
		if d := must(t)(e.a.Advise(ctx, inc)); !d.Approved || d.HoldID == "" {
			t.Fatalf("the incremental's stand-in %+v, want approved with a hold", d)
		}
		adv := pre
		adv.Kind, adv.CVC, adv.Expiry = authorization.KindAdvice, "", ""
		d := must(t)(e.a.Advise(ctx, adv))
		if d.Reason != authorization.NetworkDeclined {
			t.Errorf("declined advice recorded %s/%s, want network_declined", d.Reason, d.Detail)
		}
	})
}

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
		inc := e.incremental(h, pre.Network, 500)
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
