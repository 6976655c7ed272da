package authorization_test

import (
	"context"
	"strings"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// A reversal whose own network ids are already recorded for another
// message is not a retransmission of anything: it is Conflict, never that
// message's answer (a purchase's approval, heard by the network as its
// reversal done while the original it names stays held), and it changes
// nothing. A retransmission of a reversal that names another original is
// a Conflict too. The original is then reversed by a reversal of its own.
func TestReversalUnderAnotherMessagesIDsIsAConflict(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(1000, card.Controls{})
	p1 := e.purchase(h, 100)
	must(t)(e.a.Authorize(ctx, p1))
	p2 := e.purchase(h, 200)
	d2 := must(t)(e.a.Authorize(ctx, p2))

	_, err := e.a.Reverse(ctx, authorization.ReversalRequest{Network: p1.Network, Original: p2.Network})
	wantCode(t, err, errors.Conflict)
	if got := must(t)(e.a.ByNetworkID(ctx, p2.Network)); got.Outstanding != 200 {
		t.Errorf("p2 outstanding %d after the refused reversal, want 200", got.Outstanding)
	}
	if p := e.balance(h.Account).Pending; p != 300 {
		t.Errorf("pending %d after the refused reversal, want 300", p)
	}

	rev := authorization.ReversalRequest{Network: e.net(), Original: p1.Network}
	must(t)(e.a.Reverse(ctx, rev))
	_, err = e.a.Reverse(ctx, authorization.ReversalRequest{Network: rev.Network, Original: p2.Network})
	wantCode(t, err, errors.Conflict)
	if p := e.balance(h.Account).Pending; p != 200 {
		t.Errorf("pending %d, want p2's 200 only", p)
	}

	d := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: p2.Network}))
	if d.Kind != authorization.KindReversal || !d.Approved || d.OriginalID != d2.ID || e.balance(h.Account).Pending != 0 {
		t.Errorf("reversal of p2: %+v, pending %d, want p2 reversed and nothing held", d, e.balance(h.Account).Pending)
	}
}

// docs/authorization.md: a reversal whose own ids are those of the
// increment's original is refused as malformed; the increment stays held.
func TestReversalOfAnIncrementUnderItsOriginalsIDsIsRefused(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(1000, card.Controls{})
	pre := e.purchase(h, 300)
	pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
	must(t)(e.a.Authorize(ctx, pre))
	inc := e.incremental(h, pre.Network, 100)
	must(t)(e.a.Increment(ctx, inc))
	_, err := e.a.Reverse(ctx, authorization.ReversalRequest{Network: pre.Network, Original: inc.Network})
	wantCode(t, err, errors.BadRequest)
	if p := e.balance(h.Account).Pending; p != 400 {
		t.Errorf("pending %d after the refused reversal, want 400", p)
	}
}

// A request under the network ids of a recorded one is its retransmission
// only if it asks the same: another card, currency or billing amount is
// conflict (nothing recorded, nothing held), on either store; the true
// retransmission still hears the recorded answer.
func TestReplayMustAskWhatWasRecorded(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h, other := e.holder(1000, card.Controls{}), e.holder(1000, card.Controls{})
		p := e.purchase(h, 300)
		d := must(t)(e.a.Authorize(ctx, p))
		for name, change := range map[string]func(r *authorization.Request){
			"another card": func(r *authorization.Request) {
				r.PAN, r.CVC = authorization.PAN(other.PAN), authorization.CVC(other.CVC)
			},
			"another currency": func(r *authorization.Request) { r.Currency = "EUR" },
			"a billing amount": func(r *authorization.Request) {
				r.BillingAmount, r.BillingCurrency = 300, "GBP"
				r.Currency, r.Amount = "EUR", 350
			},
		} {
			r := p
			change(&r)
			_, err := e.a.Authorize(ctx, r)
			if errors.CodeOf(err) != errors.Conflict {
				t.Errorf("%s under the ids of an approval: %v, want conflict", name, err)
			}
		}
		if got := must(t)(e.a.Authorize(ctx, p)); got.ID != d.ID || !got.Approved || !got.Replayed {
			t.Errorf("retransmission: %+v, want the recorded approval %s", got, d.ID)
		}
		if a, b := e.balance(h.Account), e.balance(other.Account); a.Pending != 300 || b.Pending != 0 {
			t.Errorf("pending %d and %d, want 300 and 0", a.Pending, b.Pending)
		}
	})
}

// The gateway's own reversal names the content it answered for
// (OriginalDigest): against a record of another request under those ids
// it releases nothing; against the request it answered for, it reverses
// as before. A digest that is not one, or on a network's reversal, is
// refused.
func TestOwnReversalIsBoundToTheRequestsDigest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(1000, card.Controls{})
	p := e.purchase(h, 300)
	must(t)(e.a.Authorize(ctx, p))
	other := p
	other.Amount = 900
	own := func(digest, rrn string) authorization.ReversalRequest {
		n := p.Network
		n.RRN = rrn
		return authorization.ReversalRequest{Network: n, Original: p.Network, OwnDecision: true, OriginalDigest: digest}
	}
	d := must(t)(e.a.Reverse(ctx, own(other.Digest(), "GW1")))
	if d.Amount != 0 || !strings.Contains(d.Detail, "another_request") || e.balance(h.Account).Pending != 300 {
		t.Errorf("own reversal for another request: %+v, pending %d; want nothing released", d, e.balance(h.Account).Pending)
	}
	for _, bad := range []authorization.ReversalRequest{own("abc", "GW2"), {Network: e.net(), Original: p.Network, OriginalDigest: p.Digest()}} {
		_, err := e.a.Reverse(ctx, bad)
		wantCode(t, err, errors.BadRequest)
	}
	d = must(t)(e.a.Reverse(ctx, own(p.Digest(), "GW3")))
	if d.Amount != 300 || e.balance(h.Account).Pending != 0 {
		t.Errorf("own reversal for the request: %+v, pending %d; want 300 released", d, e.balance(h.Account).Pending)
	}
}
