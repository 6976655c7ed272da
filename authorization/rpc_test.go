package authorization_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/rpc/rpctest"
	"github.com/corebank/corebank/store/storetest"
)

// TestClient drives the service through Client, in process and over HTTP:
// the decisions, the errors and the queued reversal come through either
// transport as the service gave them.
func TestClient(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	r := rpc.NewRouter()
	authorization.Register(r, e.a)
	for _, tr := range rpctest.Transports(t, r) {
		t.Run(tr.Name, func(t *testing.T) {
			ctx := rpc.WithCaller(context.Background(), "cardnet")
			c := &authorization.Client{RPC: tr.RPC}
			h := e.holder(10_000, card.Controls{})

			pre := e.purchase(h, 3000)
			pre.Kind = authorization.KindPreauth
			d := must(t)(c.Authorize(ctx, pre))
			if !d.Approved || d.HoldID == "" {
				t.Fatalf("Authorize = %+v", d)
			}
			direct := must(t)(e.a.Get(ctx, d.ID))
			if !reflect.DeepEqual(d, direct) {
				t.Errorf("decision over %s = %+v, want the service's %+v", tr.Name, d, direct)
			}
			if got := must(t)(c.Get(ctx, d.ID)); !reflect.DeepEqual(got, direct) {
				t.Errorf("Get = %+v", got)
			}
			if got := must(t)(c.ByNetworkID(ctx, pre.Network)); got.ID != d.ID {
				t.Errorf("ByNetworkID = %+v", got)
			}
			if got := must(t)(c.ByReference(ctx, authorization.ReferenceQuery{CardID: h.Card.ID, RRN: pre.Network.RRN, AuthCode: d.AuthCode})); got.ID != d.ID {
				t.Errorf("ByReference = %+v", got)
			}
			inc := e.purchase(h, 500)
			inc.Kind, inc.Original = authorization.KindIncremental, &pre.Network
			if got := must(t)(c.Increment(ctx, inc)); !got.Approved || got.OriginalID != d.ID {
				t.Errorf("Increment = %+v", got)
			}
			e.wantBalance(t, h.Account, 10_000, 3500)

			// A queued reversal, carried out by reading it.
			rr := authorization.ReversalRequest{Network: e.net(), Original: pre.Network}
			if err := c.QueueReversal(ctx, rr); err != nil {
				t.Fatal(err)
			}
			e.wantBalance(t, h.Account, 10_000, 3500)
			if got := must(t)(c.ByNetworkID(ctx, rr.Network)); got.Kind != authorization.KindReversal || got.Amount != 3500 {
				t.Errorf("queued reversal read = %+v, want 3500 released", got)
			}
			e.wantBalance(t, h.Account, 10_000, 0)
			if got := must(t)(c.Reverse(ctx, rr)); got.Amount != 3500 {
				t.Errorf("Reverse repeat = %+v, want the same reversal", got)
			}

			fin := e.purchase(h, 1000)
			fin.Kind = authorization.KindFinancial
			if got := must(t)(c.Financial(ctx, fin)); !got.Approved || got.TransferID == "" {
				t.Errorf("Financial = %+v", got)
			}
			adv := e.purchase(h, 200)
			adv.Kind, adv.StandIn = authorization.KindAdvice, true
			if got := must(t)(c.Advise(ctx, adv)); !got.Approved || !got.Forced {
				t.Errorf("Advise = %+v", got)
			}
			e.wantBalance(t, h.Account, 9000, 200)

			// Errors keep their codes across the wire.
			wantCode(t, c.QueueReversal(ctx, authorization.ReversalRequest{Network: rr.Network, Original: rr.Network}), errors.BadRequest)
			_, err := c.ByNetworkID(ctx, e.net())
			wantCode(t, err, errors.NotFound)
		})
	}
}
