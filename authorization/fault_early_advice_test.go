package authorization_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store/storetest"
)

// In the embedded shape (AnswerEarly) an approval is answered before its
// record is finished. The network did not hear that approval in time,
// declined in stand-in, and its advice (0120, no stand-in approval) names
// the original: the merchant was declined, no clearing will come, and the
// advice releases the bank's hold (releaseDeclined), once the original is
// finished: read while still pending it would look "not approved", and
// the advice, acknowledged and never sent again, would leave a declined
// payment's money held until the hold expires.
func TestDeclinedAdviceRightAfterAnEarlyApproval(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	a := e.early(t)
	defer a.Close()
	h := e.holder(1_000_000, card.Controls{})
	stuck := 0
	const rounds = 20
	for range rounds {
		p := e.purchase(h, 4000)
		if d := must(t)(a.Authorize(ctx, p)); !d.Approved {
			t.Fatalf("purchase %+v", d)
		}
		adv := e.purchase(h, 4000)
		adv.Kind, adv.CVC, adv.Original = authorization.KindAdvice, "", &p.Network
		if d := must(t)(a.Advise(ctx, adv)); d.Reason != authorization.NetworkDeclined {
			t.Fatalf("advice %+v", d)
		}
		if o := must(t)(a.ByNetworkID(ctx, p.Network)); o.Outstanding != 0 {
			stuck++
		}
	}
	if _, err := a.RecoverPending(ctx, 0); err != nil {
		t.Fatalf("RecoverPending: %v", err)
	}
	if b := e.balance(h.Account); stuck > 0 || b.Pending != 0 {
		t.Errorf("%d of %d payments the network declined in stand-in still held; account pending %d, want 0", stuck, rounds, b.Pending)
	}
}
