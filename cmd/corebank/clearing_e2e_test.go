package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/ledger"
)

// Clearing over the whole path: authorizations approved over real TCP by
// the embedded bank's gateway, then cleared for less, for more, and in two
// presentments; each moves exactly the cleared amount and releases the
// rest, and the ledger's invariants hold.
func TestClearingVariantsEndToEnd(t *testing.T) {
	ctx := context.Background()
	st, cards, err := startBenchStack(ctx, t.TempDir(), 1, cardnet.DefaultWorkers, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.stop(context.Background())
	l := &ledger.Client{RPC: st.from(callerOperator)}
	cl := &clearing.Client{RPC: st.from(callerOperator)}
	acct := customerAccounts(t, st)[0]

	spec := cardnet.DefaultSpec()
	c, err := (&cardnet.Dialer{Spec: spec}).Dial(ctx, st.gateway.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := signOn(ctx, c, spec, 1); err != nil {
		t.Fatal(err)
	}
	traffic := sim.NewTraffic(cards, nil, 5)
	balance := func() *ledger.Balance {
		t.Helper()
		b, err := l.Balance(ctx, acct, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// approve sends a GBP purchase of amount over TCP and wants it approved.
	approve := func(amount int64) (*cardnet.Request, string) {
		t.Helper()
		req := traffic.Purchase(time.Now())
		req.Amount, req.Currency, req.BillingAmount, req.BillingCurrency = amount, "GBP", 0, ""
		m, err := req.Message(spec)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Send(ctx, m)
		if err != nil || resp.Get(39) != string(cardnet.Approved) {
			t.Fatalf("purchase of %d answered %v, %v; want 00", amount, resp, err)
		}
		return req, resp.Get(38)
	}
	n := 0
	record := func(req *cardnet.Request, authCode string, amount int64, arn string, presentment int, final bool) sim.ClearingRecord {
		n++
		return sim.ClearingRecord{
			ID: fmt.Sprintf("R%06d", n), PAN: req.PAN, ProcessingCode: req.ProcessingCode,
			Amount: amount, Currency: "GBP", BillingAmount: amount, BillingCurrency: "GBP",
			ARN: arn, AuthCode: authCode,
			Network:  sim.NetworkID{Acquirer: req.AcquirerID, STAN: req.STAN, RRN: req.RRN, TransmissionTime: req.TransmissionTime.String()},
			Merchant: req.Merchant, MCC: req.MCC, Presentment: presentment, Final: final,
		}
	}
	ingest := func(id string, recs ...sim.ClearingRecord) *clearing.Report {
		t.Helper()
		var file bytes.Buffer
		f := &sim.ClearingFile{ID: id, Network: "SIMNET", Date: time.Now(), Records: recs}
		if err := (sim.CSVClearing{}).WriteClearing(&file, f); err != nil {
			t.Fatal(err)
		}
		rep, err := cl.Ingest(ctx, clearing.IngestRequest{FileName: id + ".csv", Content: file.Bytes()})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	want := func(what string, b0 *ledger.Balance, posted, pending int64) {
		t.Helper()
		b := balance()
		if b.Posted != b0.Posted+posted || b.Pending != b0.Pending+pending {
			t.Errorf("%s: posted %d pending %d, want %d and %d", what, b.Posted, b.Pending, b0.Posted+posted, b0.Pending+pending)
		}
	}

	b0 := balance()
	lowReq, lowCode := approve(50_00)
	highReq, highCode := approve(40_00)
	splitReq, splitCode := approve(30_00)
	want("after three approvals", b0, 0, 120_00)

	// Lower and higher (a tip) in one file, and the first of two
	// presentments, which keeps the rest of its hold.
	rep := ingest("VARIANTS1",
		record(lowReq, lowCode, 45_00, "74567890123456789000001", 1, true),
		record(highReq, highCode, 44_00, "74567890123456789000002", 1, true),
		record(splitReq, splitCode, 10_00, "74567890123456789000003", 1, false),
	)
	if rep.Posted != 3 || rep.Forced != 0 || len(rep.Unmatched) != 0 {
		t.Fatalf("report %+v, want 3 posted against their holds", rep)
	}
	want("after lower, higher and a first presentment", b0, -(45_00 + 44_00 + 10_00), 20_00)

	// The final presentment of the split: the rest is released.
	rep = ingest("VARIANTS2", record(splitReq, splitCode, 15_00, "74567890123456789000003", 2, true))
	if rep.Posted != 1 || rep.Forced != 0 {
		t.Fatalf("second presentment report %+v, want 1 posted", rep)
	}
	want("after the final presentment", b0, -(45_00 + 44_00 + 10_00 + 15_00), 0)
	if err := ledger.Verify(ctx, st.ledger.db); err != nil {
		t.Fatal(err)
	}
}
