package authorization_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// A wrong expiry is counted with card.Service.CountFailedCheck, not by
// verifying an empty CVC (which decrypts the card number for nothing),
// and counts with wrong CVCs towards the card's CVC lock at the same
// threshold: one short of it, the right data is approved (and clears the
// count); at it, even the right data is refused until the window passes.
func TestWrongExpiriesAndCVCsLockTogether(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		a, in := e.countingCards(t, db)
		h := e.holder(100_000, card.Controls{})

		req := e.purchase(h, 100)
		req.Expiry = "3001"
		if d := must(t)(a.Authorize(ctx, req)); d.Reason != authorization.ExpiryMismatch {
			t.Fatalf("wrong expiry: %s, want expiry_mismatch", d.Reason)
		}
		if v, f := in.count("card.VerifyCVC"), in.count("card.CountFailedCheck"); v != 0 || f != 1 {
			t.Errorf("a wrong expiry made %d VerifyCVC and %d CountFailedCheck calls, want 0 and 1", v, f)
		}

		// wrong sends the i-th wrong guess: alternately an expiry and a CVC.
		wrong := func(i int) {
			t.Helper()
			req := e.purchase(h, 100)
			want := authorization.InvalidCVC
			if i%2 == 0 {
				req.Expiry, want = fmt.Sprintf("%02d%02d", 30+i/12, 1+i%12), authorization.ExpiryMismatch // never the card's 3401
			} else {
				req.CVC = wrongCVC(h, i)
			}
			if d := must(t)(a.Authorize(ctx, req)); d.Reason != want {
				t.Fatalf("wrong guess %d: %s, want %s", i, d.Reason, want)
			}
		}
		// With the first wrong expiry, one short of the lock.
		for i := 1; i < card.DefaultMaxCVCFailures-1; i++ {
			wrong(i)
		}
		if d := must(t)(a.Authorize(ctx, e.purchase(h, 100))); !d.Approved {
			t.Fatalf("the right data after %d wrong guesses: %s, want approved", card.DefaultMaxCVCFailures-1, d.Reason)
		}
		// The count was cleared: the lock takes the full number again.
		for i := range card.DefaultMaxCVCFailures - 1 {
			wrong(i)
		}
		if d := must(t)(a.Authorize(ctx, e.purchase(h, 100))); !d.Approved {
			t.Fatalf("the right data after %d more wrong guesses: %s, want approved", card.DefaultMaxCVCFailures-1, d.Reason)
		}
		for i := range card.DefaultMaxCVCFailures {
			wrong(i)
		}
		if d := must(t)(a.Authorize(ctx, e.purchase(h, 100))); d.Approved || d.Reason != authorization.InvalidCVC {
			t.Errorf("the right data after %d wrong guesses: %s, want invalid_cvc (locked)", card.DefaultMaxCVCFailures, d.Reason)
		}
		e.clk.Add(card.DefaultCVCFailureWindow + time.Second)
		if d := must(t)(a.Authorize(ctx, e.purchase(h, 100))); !d.Approved {
			t.Errorf("after the window: %s, want approved", d.Reason)
		}
	})
}

// A refund the network approved in stand-in is the network's decision: it
// is approved before any check of the card's data, whatever the card's
// state, DE14 or CVC, and nothing is counted towards the card's CVC lock.
func TestStandInRefundChecksNoCardData(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		a, in := e.countingCards(t, db)
		h := e.holder(10_000, card.Controls{})
		wrong := wrongCVC(h, 1)
		for i := range card.DefaultMaxCVCFailures {
			ref := e.purchase(h, 1000)
			ref.Kind, ref.StandIn, ref.AuthCode, ref.Expiry, ref.CVC = authorization.KindRefund, true, "NET123", "3001", wrong
			if d := must(t)(a.Authorize(ctx, ref)); !d.Approved || d.AuthCode != "NET123" || d.Amount != 1000 {
				t.Fatalf("stand-in refund %d with a wrong DE14 and CVC: %+v, want approved under NET123", i, d)
			}
		}
		if v, f := in.count("card.VerifyCVC"), in.count("card.CountFailedCheck"); v != 0 || f != 0 {
			t.Errorf("stand-in refunds made %d VerifyCVC and %d CountFailedCheck calls, want none", v, f)
		}
		if d := must(t)(a.Authorize(ctx, e.purchase(h, 100))); !d.Approved {
			t.Errorf("the cardholder's purchase after the stand-in refunds: %s, want approved (nothing counted)", d.Reason)
		}

		// A blocked card's stand-in refund stands too.
		if _, err := e.cards.Block(ctx, card.BlockRequest{Key: "block", CardID: h.Card.ID, Reason: card.BlockStolen}); err != nil {
			t.Fatal(err)
		}
		ref := e.purchase(h, 500)
		ref.Kind, ref.StandIn, ref.AuthCode, ref.Expiry, ref.CVC = authorization.KindRefund, true, "NET124", "3001", wrong
		if d := must(t)(a.Authorize(ctx, ref)); !d.Approved || d.AuthCode != "NET124" {
			t.Errorf("stand-in refund on a blocked card: %+v, want approved under NET124", d)
		}
		if v, f := in.count("card.VerifyCVC"), in.count("card.CountFailedCheck"); v != 1 || f != 0 {
			// One VerifyCVC: the cardholder's purchase above.
			t.Errorf("%d VerifyCVC and %d CountFailedCheck calls, want 1 (the purchase) and 0", v, f)
		}
	})
}

// An incremental's per-transaction limit is card.Check's, on the whole
// payment (Attempt.Held and the increment), so it comes in Check's order:
// before the daily limit, as for a new payment.
func TestIncrementPerTransactionLimitInCheckOrder(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(100_000, card.Controls{PerTransactionLimit: 250, DailyLimit: 250})
		pre := e.preauth(t, e.a, h, 200)
		inc := e.incremental(h, pre.Network, 100) // 300 in all: over both limits
		d := must(t)(e.a.Increment(ctx, inc))
		if d.Approved || d.Reason != authorization.ExceedsLimit || d.Detail != string(card.OverTransactionLimit) {
			t.Errorf("increment of 100 on 200 under limits of 250 a payment and 250 a day: %s/%s, want exceeds_limit/over_transaction_limit", d.Reason, d.Detail)
		}
		inc = e.incremental(h, pre.Network, 50) // 250 in all: at both limits
		if d := must(t)(e.a.Increment(ctx, inc)); !d.Approved {
			t.Errorf("increment of 50 on 200: %s/%s, want approved", d.Reason, d.Detail)
		}
		if got := must(t)(e.a.ByNetworkID(ctx, pre.Network)); got.Outstanding != 250 {
			t.Errorf("the payment holds %d, want 250", got.Outstanding)
		}
	})
}

// countingCards returns an authorizer on db whose card service calls are
// counted (in.count), with nothing injected.
func (e *env) countingCards(t *testing.T, db *store.DB) (*authorization.Authorizer, *injector) {
	in := newInjector(fault{})
	return e.another(t, db, func(c *authorization.Config) { c.Card = &faultCard{Service: e.cards, in: in} }), in
}
