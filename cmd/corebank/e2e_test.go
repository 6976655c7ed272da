package main

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/internal/syncbuf"
	"github.com/corebank/corebank/ledger"
)

// The card path end to end, as the bank runs it: the network simulator
// sends ISO 8583 over TCP to the embedded bank's gateway (purchases,
// declines, reversals, increments, retransmissions, advices, 0200s,
// refunds), authorization places holds in the ledger, and days later the
// network's clearing file, ingested over RPC, settles them. Ingesting the
// file again changes nothing, and the ledger's invariants hold throughout.
func TestCardPathEndToEnd(t *testing.T) {
	ctx := context.Background()
	st, cards, err := startBenchStack(ctx, t.TempDir(), 12, cardnet.DefaultWorkers, nil, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.stop(context.Background())

	var file bytes.Buffer
	var simLog syncbuf.Buffer
	s := &sim.Simulator{
		Addr: st.gateway.addr(), Spec: cardnet.DefaultSpec(), Cards: cards,
		Rate: 100, Duration: 2 * time.Second, Rand: rand.New(rand.NewPCG(7, 11)),
		Clearing: &file, Log: slog.New(slog.NewTextHandler(&simLog, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	res, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Mismatches != 0 {
		t.Fatalf("simulator: %d errors (%v), %d retransmissions answered differently; its warnings:\n%s", res.Errors, res.FirstError, res.Mismatches, simLog.String())
	}
	if res.Scenarios[sim.KindIncremental] > 0 && (res.Increments[cardnet.Approved] == 0 || res.Increments[cardnet.UnableToLocateRecord] > 0) {
		t.Errorf("incremental authorizations answered %v: every one should find its original", res.Increments)
	}
	if len(res.Approvals) == 0 || file.Len() == 0 {
		t.Fatalf("no approvals (%d) or no clearing file (%d bytes)", len(res.Approvals), file.Len())
	}
	l := &ledger.Client{RPC: st.from(callerOperator)}
	if err := ledger.Verify(ctx, st.ledger.db); err != nil {
		t.Fatalf("after authorizations: %v", err)
	}
	pendingBefore := totalPending(t, l, st)
	if pendingBefore == 0 {
		t.Fatal("approved authorizations left no holds")
	}

	c := &clearing.Client{RPC: st.from(callerOperator)}
	// As corebank clearing ingest does: a file takes longer than one RPC's
	// default deadline (5 s), most under the race detector.
	ictx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	rep, err := c.Ingest(ictx, clearing.IngestRequest{FileName: "sim.csv", Content: file.Bytes()})
	t.Logf("ingested %d records in %v", len(res.Approvals), time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Posted == 0 || len(rep.Unmatched) != 0 {
		t.Fatalf("clearing report: %d posted, unmatched %v (records %d)", rep.Posted, rep.Unmatched, rep.Records)
	}
	// The books agree with the network: what they held is what its
	// approvals left outstanding (0200s moved money, refunds hold nothing),
	// and once the file presented all of it, nothing is held.
	var outstanding int64
	for _, a := range res.Approvals {
		if a.MTI != cardnet.MTIFinancialRequest && string(a.ProcessingCode.Type()) != "20" {
			outstanding += a.OutstandingBilling
		}
	}
	if pendingBefore != outstanding {
		t.Errorf("held %d before clearing; the network's approvals leave %d outstanding", pendingBefore, outstanding)
	}
	if pendingAfter := totalPending(t, l, st); pendingAfter != 0 {
		t.Errorf("after clearing every approval, %d is still held (%d before)", pendingAfter, pendingBefore)
	}
	if err := ledger.Verify(ctx, st.ledger.db); err != nil {
		t.Fatalf("after clearing: %v", err)
	}

	// The same file again: the stored report, and not a penny moves.
	balances := snapshotBalances(t, l, st)
	again, err := c.Ingest(ictx, clearing.IngestRequest{FileName: "sim.csv", Content: file.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.Posted != rep.Posted {
		t.Errorf("second ingest: %+v", again)
	}
	if after := snapshotBalances(t, l, st); !equalBalances(balances, after) {
		t.Errorf("second ingest moved money: %v -> %v", balances, after)
	}
}

// customerAccounts lists the bench's funded customer accounts (the
// settlement and funding accounts aside).
func customerAccounts(t *testing.T, st *stack) []string {
	t.Helper()
	rows, err := st.ledger.db.Read.Query(`SELECT id FROM accounts WHERE rule = 'limit' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func totalPending(t *testing.T, l ledger.Service, st *stack) int64 {
	t.Helper()
	var sum int64
	for _, id := range customerAccounts(t, st) {
		b, err := l.Balance(context.Background(), id, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		sum += b.Pending
	}
	return sum
}

func snapshotBalances(t *testing.T, l ledger.Service, st *stack) map[string][2]int64 {
	t.Helper()
	out := map[string][2]int64{}
	for _, id := range customerAccounts(t, st) {
		b, err := l.Balance(context.Background(), id, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		out[id] = [2]int64{b.Posted, b.Pending}
	}
	return out
}

func equalBalances(a, b map[string][2]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A hold that no clearing settles is released at its expiry (--hold-days
// after the authorization), with its event; the customer's money is
// available again, and a clearing record that comes after is force-posted
// once, not lost and not posted twice.
func TestHoldExpiryEndToEnd(t *testing.T) {
	ctx := context.Background()
	const holdDays = 3
	st, cards, err := startBenchStack(ctx, t.TempDir(), 1, cardnet.DefaultWorkers, nil, &bytes.Buffer{}, func(c *config) { c.holdDays = holdDays })
	if err != nil {
		t.Fatal(err)
	}
	defer st.stop(context.Background())
	l := &ledger.Client{RPC: st.from(callerOperator)}
	acct := customerAccounts(t, st)[0]
	before, err := l.Balance(ctx, acct, time.Time{})
	if err != nil {
		t.Fatal(err)
	}

	expired := make(chan event.Event, 4)
	sctx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	go st.p.bus.Subscribe(sctx, "test-hold-expiry", []string{ledger.TopicFor(ledger.KindHoldExpire)}, func(_ context.Context, e event.Event) error {
		expired <- e
		return nil
	})

	// A purchase over TCP, approved: the hold is placed.
	spec := cardnet.DefaultSpec()
	c, err := (&cardnet.Dialer{Spec: spec}).Dial(ctx, st.gateway.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := signOn(ctx, c, spec, 1); err != nil {
		t.Fatal(err)
	}
	authorizedAt := time.Now()
	req := sim.NewTraffic(cards, nil, 3).Purchase(authorizedAt)
	m, err := req.Message(spec)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Send(ctx, m)
	if err != nil || resp.Get(39) != string(cardnet.Approved) {
		t.Fatalf("purchase answered %v, %v; want 00", resp, err)
	}
	amount, billingCurrency := req.Amount, req.Currency // held in the card's currency
	if req.BillingCurrency != "" {
		amount, billingCurrency = req.BillingAmount, req.BillingCurrency
	}
	held, err := l.Balance(ctx, acct, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if held.Pending != before.Pending+amount || held.Available != before.Available-amount {
		t.Fatalf("after approval %+v, want %d more pending than %+v", held, amount, before)
	}

	// The day before expiry nothing is released; at it, the hold is.
	ttl := holdDays * 24 * time.Hour
	if hs, err := l.ExpireHolds(ctx, authorizedAt.Add(ttl-24*time.Hour), 100); err != nil || len(hs) != 0 {
		t.Fatalf("ExpireHolds a day early = %v, %v; want none", hs, err)
	}
	hs, err := l.ExpireHolds(ctx, authorizedAt.Add(ttl+time.Minute), 100)
	if err != nil || len(hs) != 1 || hs[0].Status != ledger.HoldExpired || hs[0].AccountID != acct || hs[0].Authorized != amount || hs[0].Amount != 0 {
		t.Fatalf("ExpireHolds at expiry = %+v, %v; want the one hold of %d expired", hs, err, amount)
	}
	after, err := l.Balance(ctx, acct, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Posted != before.Posted || after.Pending != before.Pending || after.Available != before.Available {
		t.Errorf("after expiry %+v, want the balance before the purchase %+v", after, before)
	}
	select {
	case e := <-expired:
		if !bytes.Contains(e.Payload, []byte(hs[0].ID)) {
			t.Errorf("hold expiry event %s does not name hold %s", e.Payload, hs[0].ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ledger.hold.expired event")
	}
	if hs, err := l.ExpireHolds(ctx, authorizedAt.Add(2*ttl), 100); err != nil || len(hs) != 0 {
		t.Errorf("ExpireHolds again = %v, %v; want nothing more", hs, err)
	}

	// The merchant's clearing arrives late: posted once, from the account.
	var file bytes.Buffer
	late := &sim.ClearingFile{ID: "late-1", Network: "SIMNET", Date: authorizedAt.Add(ttl + 24*time.Hour), Records: []sim.ClearingRecord{{
		ID: "R000001", PAN: req.PAN, ProcessingCode: req.ProcessingCode,
		Amount: req.Amount, Currency: req.Currency, BillingAmount: amount, BillingCurrency: billingCurrency,
		ARN: "74567890123456789012345", AuthCode: resp.Get(38),
		Network:  sim.NetworkID{Acquirer: req.AcquirerID, STAN: req.STAN, RRN: req.RRN, TransmissionTime: req.TransmissionTime.String()},
		Merchant: req.Merchant, MCC: req.MCC, Presentment: 1, Final: true,
	}}}
	if err := (sim.CSVClearing{}).WriteClearing(&file, late); err != nil {
		t.Fatal(err)
	}
	cl := &clearing.Client{RPC: st.from(callerOperator)}
	rep, err := cl.Ingest(ctx, clearing.IngestRequest{FileName: "late.csv", Content: file.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Forced != 1 || rep.Posted != 0 || len(rep.Unmatched) != 0 {
		t.Fatalf("late clearing report %+v, want its one record force-posted (its hold expired)", rep)
	}
	settled, err := l.Balance(ctx, acct, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if settled.Posted != before.Posted-amount || settled.Pending != before.Pending {
		t.Errorf("after late clearing %+v, want %d posted out of %+v and nothing held", settled, amount, before)
	}
	if err := ledger.Verify(ctx, st.ledger.db); err != nil {
		t.Fatal(err)
	}
}
