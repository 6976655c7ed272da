package authorization_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/store/storetest"
)

// An incremental is approved and heard (00). Another request reuses its
// ids and is answered per the timeout policy: the gateway's own reversal,
// bound to that other request's digest, releases nothing (another_request).
// The network's own reversal of the incremental must still undo the
// increment: the no-op reversal recorded under the incremental's ids did
// not.
func TestAnotherRequestsOwnReversalDoesNotCoverTheIncrement(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(10_000, card.Controls{})
	pre := e.preauth(t, e.a, h, 1000)
	inc := e.incremental(h, pre.Network, 500)
	if d := must(t)(e.a.Increment(ctx, inc)); !d.Approved {
		t.Fatalf("incremental %+v", d)
	}
	e.wantBalance(t, h.Account, 10_000, 1500)

	other := inc
	other.Amount = 700 // another request under the incremental's ids
	gw := inc.Network
	gw.RRN = "GW" + gw.RRN
	gw.TransmissionTime += "." + other.Digest()[:8]
	own := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: gw, Original: inc.Network, OwnDecision: true, OriginalDigest: other.Digest()}))
	t.Logf("own reversal of the other request: %s amount %d", own.Detail, own.Amount)
	e.wantBalance(t, h.Account, 10_000, 1500) // nothing of the increment released

	// The network reverses the incremental.
	d := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network}))
	if d.Amount != 500 {
		t.Errorf("network reversal of the increment released %d (%s), want 500", d.Amount, d.Detail)
	}
	e.wantBalance(t, h.Account, 10_000, 1000)
}
