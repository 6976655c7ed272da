package clearing_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

func TestMatchesByReference(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10000)
		other := e.authorize(h, 400) // the card's other hold, not to be touched
		noIDs := e.authorize(h, 600)
		lostIDs := e.authorize(h, 700)

		r1 := forAuth("REF1", h, noIDs, 600)
		r1.refOnly = true // the file carries no original network ids
		r2 := forAuth("REF2", h, lostIDs, 650)
		r2.stan = "999999" // network ids we have no record of
		rep := e.ingest(t, "ref", file("REF", r1, r2))
		if rep.Posted != 2 || rep.Forced != 0 || len(rep.Suspicious) != 0 || len(rep.Unmatched) != 0 {
			t.Fatalf("report %+v, want 2 posted, nothing suspicious", rep)
		}
		recs := e.records(t, "REF")
		for _, c := range []struct {
			id string
			d  *authorization.Decision
		}{{"REF1", noIDs}, {"REF2", lostIDs}} {
			if r := recs[c.id]; r.Status != clearing.StatusPosted || r.AuthorizationID != c.d.ID || r.HoldID != c.d.HoldID {
				t.Errorf("%s = %+v, want posted against %s's hold %s", c.id, r, c.d.ID, c.d.HoldID)
			}
		}
		if r := recs["REF1"]; !r.Original.IsZero() {
			t.Errorf("REF1 original %+v, want none", r.Original)
		}
		for _, id := range []string{noIDs.HoldID, lostIDs.HoldID} {
			if hd := e.hold(t, id); hd.Status != ledger.HoldPosted {
				t.Errorf("hold %s %s, want posted", id, hd.Status)
			}
		}
		if hd := e.hold(t, other.HoldID); hd.Status != ledger.HoldPending || hd.Amount != 400 {
			t.Errorf("the other hold %+v, want pending 400", hd)
		}
		e.wantBalance(t, h.Account, 10000-600-650, 400)
		e.wantBalance(t, e.settlement, 600+650, 0)
	})
}

func TestAmbiguousReferenceIsForcePosted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		// An authorizer on the same records whose auth codes are always
		// "000000": two authorizations of one card share RRN and code.
		fixed, err := authorization.Open(context.Background(), e.authDB, authorization.Config{
			Card: e.cards, Ledger: e.led, Now: e.clk.Now, Rand: bytes.NewReader(make([]byte, 1<<10)),
			Settlement: map[money.Currency]string{"GBP": e.settlement},
		})
		if err != nil {
			t.Fatal(err)
		}
		h := e.holder(900) // the holds leave 100 available: the force-post overdraws
		first, second := e.purchase(h, 300), e.purchase(h, 500)
		second.Network.RRN = first.Network.RRN
		d1, d2 := e.approve(fixed, first), e.approve(fixed, second)
		if d1.AuthCode != d2.AuthCode {
			t.Fatalf("auth codes %s and %s, want the same", d1.AuthCode, d2.AuthCode)
		}

		r := forAuth("AMB", h, d2, 500)
		r.refOnly = true
		rep := e.ingest(t, "amb", file("AMB", r))
		if rep.Forced != 1 || rep.Posted != 0 || len(rep.Suspicious) != 1 ||
			rep.Suspicious[0].RecordID != "AMB" || rep.Suspicious[0].Reason != clearing.ReasonAmbiguousReference {
			t.Fatalf("report %+v, want AMB forced and suspicious ambiguous_reference", rep)
		}
		got := e.records(t, "AMB")["AMB"]
		if got.Status != clearing.StatusForced || got.Reason != clearing.ReasonNoAuthorization || got.AuthorizationID != "" ||
			!slices.Equal(got.Suspicious, []clearing.Reason{clearing.ReasonAmbiguousReference}) {
			t.Errorf("AMB = %+v", got)
		}
		tr, err := e.led.GetTransfer(context.Background(), got.TransferID)
		if err != nil || !tr.Forced {
			t.Fatalf("force-post transfer %+v %v, want forced", tr, err)
		}
		// Neither hold was guessed at.
		for _, d := range []*authorization.Decision{d1, d2} {
			if hd := e.hold(t, d.HoldID); hd.Status != ledger.HoldPending {
				t.Errorf("hold %s %s, want pending", d.HoldID, hd.Status)
			}
		}
		e.wantBalance(t, h.Account, 900-500, 300+500)
	})
}
