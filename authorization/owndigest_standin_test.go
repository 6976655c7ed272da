package authorization_test

import (
	"context"
	"strings"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store/storetest"
)

// docs/authorization.md: a gateway reversal still queued, carried out
// after a stand-in advice took the undecided original's ids, "finds the
// advice under those ids and leaves it (stand_in_kept)". The gateway now
// always sends OriginalDigest; the advice's digest (kind advice) never
// equals the request's, so the record says another_request instead.
func TestQueuedOwnReversalWithDigestKeepsAStandInAsDocumented(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(10_000, card.Controls{})
	orig := e.purchase(h, 3000)
	gw := orig.Network
	gw.RRN = "GW" + gw.RRN
	gw.TransmissionTime += "." + orig.Digest()[:8]
	if err := e.a.QueueReversal(ctx, authorization.ReversalRequest{Network: gw, Original: orig.Network, OwnDecision: true, OriginalDigest: orig.Digest()}); err != nil {
		t.Fatal(err)
	}
	adv := orig
	adv.Kind, adv.StandIn, adv.CVC, adv.Expiry, adv.AuthCode = authorization.KindAdvice, true, "", "", "NET123"
	must(t)(e.a.Advise(ctx, adv))
	if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
		t.Fatalf("RecoverQueued = %d, %v", n, err)
	}
	e.wantBalance(t, h.Account, 10_000, 3000)
	d := must(t)(e.a.ByNetworkID(ctx, gw))
	if !strings.Contains(d.Detail, "stand_in_kept") {
		t.Errorf("own reversal recorded %q (original %q), docs say stand_in_kept", d.Detail, d.OriginalID)
	}
}
