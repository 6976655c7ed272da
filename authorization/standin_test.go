package authorization_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// gatewayReversal is the gateway's own reversal of a request it answered
// per its timeout policy (cardnet's lateReversal).
func gatewayReversal(orig authorization.NetworkID) authorization.ReversalRequest {
	gw := orig
	gw.RRN = "GW" + gw.RRN
	return authorization.ReversalRequest{Network: gw, Original: orig, OwnDecision: true}
}

// The gateway's own reversal undoes only what the bank's decision did,
// never the network's stand-in. Here the bank's decision ends holding
// nothing: its ledger call failed with an unknown outcome, the gateway
// answered 91 and queued its reversal, the network stood in and advised
// (its own forced hold), and the original, completed, is declined (the
// stand-in took the funds). The gateway's reversal then releases nothing.
func TestGatewaysOwnReversalLeavesTheStandIn(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		rl := &reversalLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = rl })
		h := e.holder(4000, card.Controls{})
		orig := e.purchase(h, 3000)
		rl.set(orig.Network.Key(), "") // the ledger unreachable for the original's hold
		_, err := a.Authorize(ctx, orig)
		wantCode(t, err, errors.Unavailable)
		late := gatewayReversal(orig.Network)
		if err := a.QueueReversal(ctx, late); err != nil {
			t.Fatal(err)
		}
		adv := e.purchase(h, 3000)
		adv.Kind, adv.StandIn, adv.Original, adv.CVC, adv.Expiry = authorization.KindAdvice, true, &orig.Network, "", ""
		ad := must(t)(a.Advise(ctx, adv))
		if !ad.Approved || ad.HoldID == "" || ad.Detail == "confirms_original" {
			t.Fatalf("stand-in advice %+v, want its own hold", ad)
		}
		e.wantBalance(t, h.Account, 4000, 3000)
		d := must(t)(a.Reverse(ctx, late))
		if d.Amount != 0 || d.OriginalID == ad.ID {
			t.Errorf("gateway's reversal = %+v, want nothing released from the stand-in %s", d, ad.ID)
		}
		e.wantBalance(t, h.Account, 4000, 3000)
		if got := must(t)(a.ByNetworkID(ctx, adv.Network)); got.Outstanding != 3000 {
			t.Errorf("stand-in advice outstanding %d, want 3000", got.Outstanding)
		}
	})
}

// The bank's original still holds and the gateway's reversal of it is
// queued when the network stands in and then reverses its stand-in: the
// network's reversal releases the stand-in, the gateway's the original,
// whichever runs first.
func TestNetworkReversalBeforeTheGatewaysReleasesTheStandIn(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		req := e.purchase(h, 1000)
		must(t)(e.a.Authorize(ctx, req))
		if err := e.a.QueueReversal(ctx, gatewayReversal(req.Network)); err != nil {
			t.Fatal(err)
		}
		adv := e.purchase(h, 1000)
		adv.Kind, adv.StandIn, adv.Original, adv.CVC, adv.Expiry = authorization.KindAdvice, true, &req.Network, "", ""
		must(t)(e.a.Advise(ctx, adv))
		e.wantBalance(t, h.Account, 10_000, 2000)
		must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network, Advice: true}))
		e.wantBalance(t, h.Account, 10_000, 1000)
		if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
			t.Fatalf("RecoverQueued = %d, %v", n, err)
		}
		e.wantBalance(t, h.Account, 10_000, 0)
	})
}

// A stand-in advice that arrives after the network's reversal of its
// original (the store-and-forward queue behind an online 0400) holds
// nothing: the transaction it reports is reversed. After the gateway's own
// reversal of an original it never decided, the stand-in holds: that
// reversal undid the bank's decision, not the network's.
func TestStandInAdviceAfterTheReversalOfItsOriginal(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		o := e.net()
		if r := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: o, Advice: true})); r.Reason != authorization.OriginalNotFound {
			t.Fatalf("reversal %+v", r)
		}
		adv := e.purchase(h, 3000)
		adv.Kind, adv.StandIn, adv.Original, adv.CVC, adv.Expiry = authorization.KindAdvice, true, &o, "", ""
		if d := must(t)(e.a.Advise(ctx, adv)); d.Approved || d.Reason != authorization.AlreadyReversed {
			t.Errorf("advice after the network's reversal = %+v, want declined already_reversed", d)
		}
		e.wantBalance(t, h.Account, 10_000, 0)

		o2 := e.net()
		if r := must(t)(e.a.Reverse(ctx, gatewayReversal(o2))); r.Reason != authorization.OriginalNotFound {
			t.Fatalf("gateway's reversal %+v", r)
		}
		adv2 := e.purchase(h, 2500)
		adv2.Kind, adv2.StandIn, adv2.Original, adv2.CVC, adv2.Expiry = authorization.KindAdvice, true, &o2, "", ""
		if d := must(t)(e.a.Advise(ctx, adv2)); !d.Approved || d.HoldID == "" {
			t.Errorf("advice after the gateway's own reversal = %+v, want its own hold", d)
		}
		e.wantBalance(t, h.Account, 10_000, 2500)
	})
}

// Two stand-in advices whose DE90s name each other (garbage from the
// network), each with its own hold, reversed at once: neither reversal
// looks for a stand-in of an advice, so neither waits for the other's
// lock.
func TestReversalsOfAdvicesNamingEachOtherDoNotWait(t *testing.T) {
	db := storetest.SQLite(t, "authorization")
	ctx := context.Background()
	e := newEnv(t, db)
	for try := range 20 {
		h := e.holder(10_000, card.Controls{})
		n1, n2 := e.net(), e.net()
		adv1 := e.purchase(h, 1000)
		adv1.Network = n1
		adv1.Kind, adv1.StandIn, adv1.Original, adv1.CVC, adv1.Expiry = authorization.KindAdvice, true, &n2, "", ""
		if d := must(t)(e.a.Advise(ctx, adv1)); !d.Approved || d.HoldID == "" {
			t.Fatalf("first advice %+v", d)
		}
		must(t)(e.a.Reverse(ctx, gatewayReversal(n1))) // so the second is not a confirmation of the first
		adv2 := e.purchase(h, 2000)
		adv2.Network = n2
		adv2.Kind, adv2.StandIn, adv2.Original, adv2.CVC, adv2.Expiry = authorization.KindAdvice, true, &n1, "", ""
		if d := must(t)(e.a.Advise(ctx, adv2)); d.Detail == "confirms_original" || d.HoldID == "" {
			t.Fatalf("second advice %+v", d)
		}
		start := make(chan struct{})
		done := make(chan error, 2)
		for _, o := range []authorization.NetworkID{n1, n2} {
			r := authorization.ReversalRequest{Network: e.net(), Original: o}
			go func() { <-start; _, err := e.a.Reverse(ctx, r); done <- err }()
		}
		close(start)
		for range 2 {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("try %d: two reversals wait for each other's locks", try)
			}
		}
		e.wantBalance(t, h.Account, 10_000, 0)
	}
}

// A stand-in advice that came while the bank's approval held confirmed it
// and placed nothing: the gateway's own reversal of that approval (it had
// answered 91) leaves the hold, which is the network's approval's now;
// whether the advice came before the reversal was queued, or completed the
// bank's slow decision itself. A network's reversal still releases it.
func TestGatewaysOwnReversalLeavesAConfirmedHold(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		rl := &reversalLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = rl })
		for _, slow := range []bool{false, true} {
			h := e.holder(10_000, card.Controls{})
			o := e.purchase(h, 2000)
			if slow {
				rl.set("", o.Network.Key()) // the bank's decision's answer lost
				_, err := a.Authorize(ctx, o)
				wantCode(t, err, errors.Unavailable)
			} else {
				must(t)(a.Authorize(ctx, o))
			}
			adv := e.purchase(h, 2000)
			adv.Kind, adv.StandIn, adv.Original, adv.CVC, adv.Expiry = authorization.KindAdvice, true, &o.Network, "", ""
			if ad := must(t)(a.Advise(ctx, adv)); ad.Detail != "confirms_original" {
				t.Fatalf("advice %+v, want it to confirm", ad)
			}
			gw := gatewayReversal(o.Network)
			if err := a.QueueReversal(ctx, gw); err != nil {
				t.Fatal(err)
			}
			if d := must(t)(a.Reverse(ctx, gw)); d.Amount != 0 {
				t.Errorf("slow %v: the gateway's reversal released %d under a confirmed stand-in", slow, d.Amount)
			}
			e.wantBalance(t, h.Account, 10_000, 2000)
			if d := must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: o.Network, Advice: true})); d.Amount != 2000 {
				t.Errorf("slow %v: the network's reversal = %+v, want 2000 released", slow, d)
			}
			e.wantBalance(t, h.Account, 10_000, 0)
		}
	})
}

// A refund (0100) the bank declined, then the network's approved 0120 for
// it reusing its ids without DE90 (cardnet makes it a stand-in refund
// under the same ids): a message of its own, approved under the network's
// code; its retransmission hears the same.
func TestStandInRefundReusingIDsWithoutDE90(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(10_000, card.Controls{})
	req := e.purchase(h, 1000)
	req.Kind, req.Currency = authorization.KindRefund, "USD" // declined: not the card's currency
	d, err := e.a.Authorize(ctx, req)
	if err != nil || d.Approved {
		t.Fatalf("refund: %+v %v, want declined", d, err)
	}
	adv := req
	adv.CVC, adv.Expiry, adv.StandIn, adv.AuthCode = "", "", true, "NET123"
	ad := must(t)(e.a.Authorize(ctx, adv))
	if !ad.Approved || ad.ID == d.ID || ad.AuthCode != "NET123" {
		t.Errorf("stand-in refund advice = %+v (the 0100's %s): want its own approved record under NET123", ad, d.ID)
	}
	if again := must(t)(e.a.Authorize(ctx, adv)); again.ID != ad.ID {
		t.Errorf("retransmitted stand-in refund = %s, want %s", again.ID, ad.ID)
	}
	e.wantBalance(t, h.Account, 10_000, 0)
}

// An advice reusing ids whose DE7 is already the longest allowed cannot be
// given an identity of its own: refused precisely, nothing recorded that
// no reader could name.
func TestAdviceRedirectPastTheFieldLimitIsRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(10_000, card.Controls{})
	req := e.purchase(h, 1000)
	req.Network.TransmissionTime = strings.Repeat("1", 24)
	must(t)(e.a.Authorize(ctx, req))
	adv := req
	adv.Kind, adv.StandIn, adv.CVC, adv.Expiry, adv.AuthCode = authorization.KindAdvice, true, "", "", "NET123"
	_, err := e.a.Advise(ctx, adv)
	wantCode(t, err, errors.BadRequest)
	e.wantBalance(t, h.Account, 10_000, 1000)
}

// The network stood in for a pre-authorization (the bank never saw it, or
// answered it late and the gateway reversed its own approval), and its
// advice holds the money. A later incremental naming the pre-authorization
// grows the advice's hold; reversing the incremental takes the increase
// back off; the network's reversal of the pre-authorization releases it
// all; and a clearing finds the grown hold by the network's reference.
func TestIncrementalOfAStandInPreauth(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		for _, seen := range []bool{false, true} {
			h := e.holder(10_000, card.Controls{})
			pre := e.purchase(h, 5000)
			pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
			if seen {
				// The bank approved late; the gateway reversed its own
				// approval (it had answered 91).
				must(t)(e.a.Authorize(ctx, pre))
				must(t)(e.a.Reverse(ctx, gatewayReversal(pre.Network)))
			}
			adv := e.standInAdvice(h, pre, "NET777")
			ad := must(t)(e.a.Advise(ctx, adv))
			if !ad.Approved || ad.HoldID == "" || ad.Detail == "confirms_original" {
				t.Fatalf("seen %v: advice %+v, want its own hold", seen, ad)
			}
			e.wantBalance(t, h.Account, 10_000, 5000)

			inc := e.incremental(h, pre.Network, 2000)
			d := must(t)(e.a.Increment(ctx, inc))
			if !d.Approved || d.HoldID != ad.HoldID || d.OriginalID != ad.ID {
				t.Fatalf("seen %v: incremental %+v, want it to grow the advice's hold %s", seen, d, ad.HoldID)
			}
			e.wantBalance(t, h.Account, 10_000, 7000)
			if got := must(t)(e.a.Get(ctx, ad.ID)); got.Outstanding != 7000 {
				t.Errorf("seen %v: advice outstanding %d, want 7000", seen, got.Outstanding)
			}
			// A second incremental, reversed: back to 7000.
			inc2 := e.incremental(h, pre.Network, 1000)
			must(t)(e.a.Increment(ctx, inc2))
			e.wantBalance(t, h.Account, 10_000, 8000)
			if r := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc2.Network})); r.Amount != 1000 {
				t.Errorf("seen %v: reversal of the incremental released %d, want 1000", seen, r.Amount)
			}
			e.wantBalance(t, h.Account, 10_000, 7000)
			// The clearing's lookup by the network's reference finds the
			// advice, which holds it all.
			if got, err := e.a.ByReference(ctx, authorization.ReferenceQuery{CardID: h.Card.ID, RRN: adv.Network.RRN, AuthCode: "NET777"}); err != nil || got.ID != ad.ID || got.Outstanding != 7000 {
				t.Errorf("seen %v: ByReference = %+v, %v; want the advice with 7000", seen, got, err)
			}
			// The network's reversal of the pre-authorization: all of it.
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
			e.wantBalance(t, h.Account, 10_000, 0)
		}
	})
}
