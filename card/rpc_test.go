package card_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/rpc/rpctest"
	"github.com/corebank/corebank/store/storetest"
)

// TestClient drives the service through Client, in process and over HTTP:
// callers cannot tell the transports apart, and the details Reveal shows
// survive the wire whole.
func TestClient(t *testing.T) {
	db := storetest.SQLite(t, "card")
	s := openCards(t, db, testConfig(t, newClock(epoch)))
	r := rpc.NewRouter()
	card.Register(r, s)
	for _, tr := range rpctest.Transports(t, r) {
		t.Run(tr.Name, func(t *testing.T) {
			ctx := rpc.WithCaller(context.Background(), "api")
			c := &card.Client{RPC: tr.RPC}
			cd := issue(t, c, "issue-"+tr.Name, "cus_"+tr.Name)
			if again := issue(t, c, "issue-"+tr.Name, "cus_"+tr.Name); !reflect.DeepEqual(cd, again) {
				t.Errorf("retry = %+v, want %+v", again, cd)
			}
			got, err := c.Get(ctx, cd.ID)
			if err != nil || !reflect.DeepEqual(got, cd) {
				t.Errorf("Get = %+v, %v", got, err)
			}
			list, err := c.List(ctx, "cus_"+tr.Name)
			if err != nil || len(list) != 1 || list[0].ID != cd.ID {
				t.Errorf("List = %v, %v", list, err)
			}
			d, err := c.Reveal(ctx, card.RevealRequest{CardID: cd.ID, CustomerID: cd.CustomerID, Reason: "app"})
			if err != nil {
				t.Fatal(err)
			}
			direct := reveal(t, s, cd)
			if d.PAN != direct.PAN || d.CVC != direct.CVC || len(d.PAN) != 16 {
				t.Errorf("details over %s differ from the service's", tr.Name)
			}
			found, err := c.Lookup(ctx, d.PAN)
			if err != nil || found.ID != cd.ID {
				t.Errorf("Lookup = %v, %v", found, err)
			}
			if ok, err := c.VerifyCVC(ctx, cd.ID, d.CVC); err != nil || !ok {
				t.Errorf("VerifyCVC(right) = %v, %v", ok, err)
			}
			if ok, err := c.VerifyCVC(ctx, cd.ID, wrongCVC(d.CVC)); err != nil || ok {
				t.Errorf("VerifyCVC(wrong) = %v, %v", ok, err)
			}
			if err := c.CountFailedCheck(ctx, cd.ID); err != nil {
				t.Errorf("CountFailedCheck = %v", err)
			}
			if n := cvcFailures(t, db, cd.ID); n != 2 {
				t.Errorf("failures counted after a wrong CVC and a failed check = %d; want 2", n)
			}
			wantCode(t, c.CountFailedCheck(ctx, noSuchCard), errors.NotFound)
			wantCode(t, c.CountFailedCheck(ctx, ""), errors.BadRequest)
			ctl := card.Controls{DailyLimit: 10_000, DisabledChannels: []card.Channel{card.ChannelATM}}
			if got, err := c.SetControls(ctx, card.SetControlsRequest{Key: "ctl-" + tr.Name, CardID: cd.ID, Controls: ctl}); err != nil || !reflect.DeepEqual(got.Controls, ctl) {
				t.Errorf("SetControls = %+v, %v", got, err)
			}
			for _, step := range []struct {
				f    func() (*card.Card, error)
				want card.State
			}{
				{func() (*card.Card, error) {
					return c.Freeze(ctx, card.StateRequest{Key: "f-" + tr.Name, CardID: cd.ID})
				}, card.StateFrozen},
				{func() (*card.Card, error) {
					return c.Unfreeze(ctx, card.StateRequest{Key: "u-" + tr.Name, CardID: cd.ID})
				}, card.StateActive},
				{func() (*card.Card, error) {
					return c.Block(ctx, card.BlockRequest{Key: "b-" + tr.Name, CardID: cd.ID, Reason: card.BlockStolen})
				}, card.StateBlocked},
			} {
				if got, err := step.f(); err != nil || got.State != step.want {
					t.Errorf("state change = %v, %v; want %s", got, err, step.want)
				}
			}
			_, err = c.Close(ctx, card.StateRequest{Key: "c-" + tr.Name, CardID: cd.ID})
			wantCode(t, err, errors.Conflict)
			_, err = c.Reveal(ctx, card.RevealRequest{CardID: cd.ID, CustomerID: "cus_other", Reason: "x"})
			wantCode(t, err, errors.NotFound)
			_, err = c.Lookup(ctx, "12")
			wantCode(t, err, errors.BadRequest)
		})
	}
}
