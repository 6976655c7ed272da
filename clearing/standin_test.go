package clearing_test

import (
	"context"
	"slices"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/store/storetest"
)

// standInAdvice is the network's stand-in advice of req under its own
// code: DE90 naming req, and the identity cardnet gives an advice reusing
// req's ids ("A" after DE7).
func standInAdvice(req authorization.Request, code string) authorization.Request {
	adv := req
	adv.Kind, adv.CVC = authorization.KindAdvice, ""
	orig := req.Network
	adv.Original = &orig
	adv.Network.TransmissionTime += "A"
	adv.StandIn, adv.AuthCode = true, code
	return adv
}

// The gateway answered 91 past its deadline and reversed its late approval
// (OwnDecision); the network stood in and sent an 0120 reusing the
// original's ids with DE90 naming them. The gateway gives that advice the
// identity "<DE7>A" and it places a forced hold. The
// network's clearing of the transaction can only carry the ids the network
// used (the original's), plus the RRN and the network's DE38. Clearing
// must post the stand-in's hold, not force-post beside it.
func TestClearingOfAStandInReusingIDsPostsItsHold(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	ctx := context.Background()
	h := e.holder(100_00)
	req, d := e.lateReversed(h, 30_00)
	e.wantBalance(t, h.Account, 100_00, 0)
	// The advice as cardnet.Gateway.route builds it for ids reused with DE90.
	adv := standInAdvice(req, "NET123")
	ad, err := e.auth.Advise(ctx, adv)
	if err != nil || !ad.Approved || ad.HoldID == "" {
		t.Fatalf("Advise: %+v %v", ad, err)
	}
	e.wantBalance(t, h.Account, 100_00, 30_00)

	// The network's clearing: the transaction's ids, its RRN, its DE38.
	r := forAuth("r1", h, d, 30_00)
	r.authCode = "NET123"
	rep := e.ingest(t, "f1.csv", file("F1", r))
	rec := e.records(t, rep.FileID)["r1"]
	// Want: the stand-in's hold posted; nothing left pending; and, matched
	// under the record's own code, not flagged auth_code.
	e.wantBalance(t, h.Account, 70_00, 0)
	if rec.HoldID != ad.HoldID {
		t.Errorf("clearing matched hold %q, want the stand-in's %q", rec.HoldID, ad.HoldID)
	}
	if slices.Contains(rec.Suspicious, clearing.ReasonAuthCode) {
		t.Errorf("record matched to the stand-in by its own auth code is flagged suspicious %v", rec.Suspicious)
	}
}

// The bank's approval came late but holds; the network, which had stood
// in with its own code, sent an advice confirming it. A clearing record
// carrying only the RRN and the network's code (no original ids) posts
// the bank's hold, rather than force-posting beside it and leaving the
// hold to expire.
func TestClearingByTheNetworksCodeOfAConfirmedApproval(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	ctx := context.Background()
	h := e.holder(100_00)
	req := e.purchase(h, 30_00)
	d := e.approve(e.auth, req)
	adv := standInAdvice(req, "NET123")
	ad, err := e.auth.Advise(ctx, adv)
	if err != nil || !ad.Approved || ad.HoldID != d.HoldID {
		t.Fatalf("Advise: %+v %v; want it to confirm hold %s", ad, err, d.HoldID)
	}
	e.wantBalance(t, h.Account, 100_00, 30_00)

	r := forAuth("r1", h, d, 30_00)
	r.authCode, r.refOnly = "NET123", true
	rep := e.ingest(t, "f1.csv", file("F1", r))
	rec := e.records(t, rep.FileID)["r1"]
	e.wantBalance(t, h.Account, 70_00, 0)
	if rec.HoldID != d.HoldID {
		t.Errorf("clearing matched hold %q, want the bank's %q", rec.HoldID, d.HoldID)
	}
}

// Ids of a record building on another stand for the record that holds the
// money, as it is now. A pre-authorization of 5000 is grown by 2000 and
// the increment reversed in full, which replaces the 7000 hold by one of
// 5000: a clearing record naming the reversal's ids, or the incremental's,
// posts that hold, not the voided one. And a record naming a confirming
// advice's ids with the network's code posts the bank's hold, unflagged.
func TestClearingByIDsOfARecordBuildingOnAnother(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	ctx := context.Background()
	for _, name := range []string{"reversal", "incremental"} {
		h := e.holder(100_00)
		pre := e.purchase(h, 50_00)
		pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
		orig := e.approve(e.auth, pre)
		inc := e.purchase(h, 20_00)
		inc.Kind, inc.MCC, inc.Original, inc.CVC = authorization.KindIncremental, "7011", &pre.Network, ""
		di, err := e.auth.Increment(ctx, inc)
		if err != nil || !di.Approved {
			t.Fatalf("Increment: %+v %v", di, err)
		}
		rev := e.reverse(inc.Network, 0) // the increment reversed in full
		if rev.Amount != 20_00 {
			t.Fatalf("reversal %+v, want 2000 released", rev)
		}
		e.wantBalance(t, h.Account, 100_00, 50_00)
		now, err := e.auth.Get(ctx, orig.ID)
		if err != nil {
			t.Fatalf("Get %s: %v", orig.ID, err)
		}
		named := map[string]*authorization.Decision{"reversal": rev, "incremental": di}[name]
		r := forAuth("B-"+name, h, named, 50_00)
		r.authCode = orig.AuthCode
		e.ingest(t, "b-"+name, file("BUILD-"+name, r))
		got := e.records(t, "BUILD-"+name)["B-"+name]
		if got.Status != clearing.StatusPosted || got.HoldID != now.HoldID {
			t.Errorf("%s's ids: record %s/%s against hold %q, want posted against the original's hold %q", name, got.Status, got.Reason, got.HoldID, now.HoldID)
		}
		e.wantBalance(t, h.Account, 50_00, 0)
	}

	h := e.holder(100_00)
	req := e.purchase(h, 30_00)
	d := e.approve(e.auth, req)
	adv := standInAdvice(req, "NET456")
	adv.Network = e.net() // ids of its own
	ad, err := e.auth.Advise(ctx, adv)
	if err != nil || ad.Detail != "confirms_original" {
		t.Fatalf("Advise: %+v %v; want it to confirm", ad, err)
	}
	r := forAuth("C1", h, ad, 30_00) // the advice's ids and code
	e.ingest(t, "c1", file("BUILD-C1", r))
	got := e.records(t, "BUILD-C1")["C1"]
	if got.Status != clearing.StatusPosted || got.HoldID != d.HoldID || slices.Contains(got.Suspicious, clearing.ReasonAuthCode) {
		t.Errorf("confirming advice's ids: record %s/%s against hold %q, suspicious %v; want posted against %q, not flagged auth_code", got.Status, got.Reason, got.HoldID, got.Suspicious, d.HoldID)
	}
	e.wantBalance(t, h.Account, 70_00, 0)
}
