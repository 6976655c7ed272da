package authorization_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store/storetest"
)

// A refund the network approved in stand-in (its 0120, which cardnet makes
// a stand-in KindRefund carrying the message's DE14) stands whatever the
// card's state: the network decided. A DE14 that is not the card's must
// neither decline it nor count towards the card's CVC lock: it is not a
// guess by whoever holds the card, and ten such advices would lock the
// cardholder's CVC check.
func TestStandInRefundWithAnotherExpiry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(10_000, card.Controls{})
	for i := range card.DefaultMaxCVCFailures {
		adv := e.purchase(h, 1000)
		adv.Kind, adv.StandIn, adv.AuthCode, adv.CVC, adv.Expiry = authorization.KindRefund, true, "NET123", "", "3001"
		d := must(t)(e.a.Authorize(ctx, adv))
		if !d.Approved {
			t.Errorf("stand-in refund %d with DE14 3001: %s/%s, want approved (the network decided)", i, d.Reason, d.Detail)
		}
	}
	if d := must(t)(e.a.Authorize(ctx, e.purchase(h, 100))); !d.Approved {
		t.Errorf("the cardholder's purchase with the right expiry and CVC after %d stand-in refunds: %s, want approved", card.DefaultMaxCVCFailures, d.Reason)
	}
}
