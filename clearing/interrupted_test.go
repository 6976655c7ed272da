package clearing_test

import (
	"context"
	"slices"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// A 0200 of 1000 is cleared 1500 (presentment 1, file A) and 300
// (presentment 2, file B): 1800 in all, so the cardholder must end up
// debited 1800. File A's run stops after its plan (debit 500) was recorded
// but before the ledger took it; file B is ingested; then file A again.
// File B's plan must count A's recorded plan, or 300 is never debited.
func TestSingleMessageExcessCountsAnInterruptedFilesDebit(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10_000)
		d := e.financial(h, 1000)
		first := forAuth("XA1", h, d, 1500)
		first.notFinal = true
		second := forAuth("XB2", h, d, 300)
		second.presentment, second.arn = 2, arnFor("XA1")
		a := file("XFA", first)

		e.flaky.calls.Store(0)
		e.flaky.fail.Store(1) // the ledger is down when A's debit is made
		if _, err := e.c.Ingest(context.Background(), clearing.IngestRequest{FileName: "a", Content: a}); err == nil {
			t.Fatal("want the injected failure")
		}
		e.flaky.fail.Store(0)
		e.ingest(t, "b", file("XFB", second))
		e.ingest(t, "a", a) // completes file A
		e.wantBalance(t, h.Account, 10_000-1800, 0)
	})
}

// The bank's approval under the record's ids holds nothing (the gateway
// reversed its late answer) and the record bears another code: step 3
// runs (docs/clearing.md). Two stand-in advices of the card share the
// record's RRN and that code: docs say none is guessed at, the record is
// force-posted (no_authorization) and flagged ambiguous_reference.
func TestAmbiguousStandInReferenceIsFlagged(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	ctx := context.Background()
	h := e.holder(100_00)
	req, d := e.lateReversed(h, 30_00)
	if ad, err := e.auth.Advise(ctx, standInAdvice(req, "NET123")); err != nil || !ad.Approved || ad.HoldID == "" {
		t.Fatalf("Advise: %+v %v", ad, err)
	}
	// Another stand-in of the card, same RRN and network code.
	other := e.purchase(h, 20_00)
	other.Network.RRN = req.Network.RRN
	other.Kind, other.CVC, other.StandIn, other.AuthCode = authorization.KindAdvice, "", true, "NET123"
	if ad, err := e.auth.Advise(ctx, other); err != nil || !ad.Approved || ad.HoldID == "" {
		t.Fatalf("Advise other: %+v %v", ad, err)
	}
	if _, err := e.auth.ByReference(ctx, authorization.ReferenceQuery{CardID: h.Card.ID, RRN: req.Network.RRN, AuthCode: "NET123"}); errors.CodeOf(err) != errors.Conflict {
		t.Fatalf("ByReference: %v, want conflict (the set-up is not ambiguous)", err)
	}
	r := forAuth("AMB1", h, d, 30_00)
	r.authCode = "NET123"
	e.ingest(t, "amb", file("AMBSI", r))
	got := e.records(t, "AMBSI")["AMB1"]
	if got.Status != clearing.StatusForced || got.Reason != clearing.ReasonNoAuthorization || got.Detail != "rrn and auth code match more than one authorization of the card" {
		t.Errorf("record %s (%s, %q), want forced, no_authorization, with the ambiguity as its detail: none of the two is guessed at", got.Status, got.Reason, got.Detail)
	}
	ambiguous := 0
	for _, r := range got.Suspicious {
		if r == clearing.ReasonAmbiguousReference {
			ambiguous++
		}
	}
	if slices.Contains(got.Suspicious, clearing.ReasonAuthCode) || ambiguous != 1 {
		t.Errorf("suspicious %v, want ambiguous_reference once and no auth_code", got.Suspicious)
	}
	if !slices.Contains(got.Suspicious, clearing.ReasonAmbiguousReference) {
		t.Errorf("record suspicious %v, want ambiguous_reference (docs: several matches are flagged, none guessed at)", got.Suspicious)
	}
}

// The record's ids name a declined attempt; its RRN and approval code
// find the card's approval (step 3), matched under the record's own code.
// Docs: the declined flag stays; a differing auth code flags only a record
// that matches the authorization it differs from.
func TestDeclinedThenMatchedByOwnCodeIsNotFlaggedAuthCode(t *testing.T) {
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	ctx := context.Background()
	h := e.holder(50_00)
	big := e.purchase(h, 80_00) // declined: insufficient funds
	dd, err := e.auth.Authorize(ctx, big)
	if err != nil || dd.Approved {
		t.Fatalf("want a decline: %+v %v", dd, err)
	}
	retry := e.purchase(h, 40_00)
	retry.Network.RRN = big.Network.RRN
	ok := e.approve(e.auth, retry)
	r := forAuth("DEC1", h, dd, 40_00)
	r.authCode = ok.AuthCode
	e.ingest(t, "dec", file("DECL", r))
	got := e.records(t, "DECL")["DEC1"]
	if got.Status != clearing.StatusPosted || got.HoldID != ok.HoldID {
		t.Fatalf("record %s against %s, want posted against %s", got.Status, got.HoldID, ok.HoldID)
	}
	if slices.Contains(got.Suspicious, clearing.ReasonAuthCode) {
		t.Errorf("suspicious %v: auth_code on a record matched under its own code", got.Suspicious)
	}
}
