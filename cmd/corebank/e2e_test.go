package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
	"github.com/corebank/corebank/clearing"
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
	st, cards, err := startBenchStack(ctx, t.TempDir(), 12, cardnet.DefaultWorkers, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.stop(context.Background())

	var file bytes.Buffer
	s := &sim.Simulator{
		Addr: st.gateway.addr(), Spec: cardnet.DefaultSpec(), Cards: cards,
		Rate: 100, Duration: 2 * time.Second, Rand: rand.New(rand.NewPCG(7, 11)),
		Clearing: &file,
	}
	res, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Mismatches != 0 {
		t.Fatalf("simulator: %d errors (%v), %d retransmissions answered differently", res.Errors, res.FirstError, res.Mismatches)
	}
	if len(res.Approvals) == 0 || file.Len() == 0 {
		t.Fatalf("no approvals (%d) or no clearing file (%d bytes)", len(res.Approvals), file.Len())
	}
	l := &ledger.Client{RPC: st.from("test")}
	if err := ledger.Verify(ctx, st.ledger.db); err != nil {
		t.Fatalf("after authorizations: %v", err)
	}
	pendingBefore := totalPending(t, l, st)
	if pendingBefore == 0 {
		t.Fatal("approved authorizations left no holds")
	}

	c := &clearing.Client{RPC: st.from("test")}
	rep, err := c.Ingest(ctx, clearing.IngestRequest{FileName: "sim.csv", Content: file.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Posted == 0 || len(rep.Unmatched) != 0 {
		t.Fatalf("clearing report: %d posted, unmatched %v (records %d)", rep.Posted, rep.Unmatched, rep.Records)
	}
	pendingAfter := totalPending(t, l, st)
	if pendingAfter >= pendingBefore {
		t.Errorf("clearing released no holds: pending %d before, %d after", pendingBefore, pendingAfter)
	}
	if err := ledger.Verify(ctx, st.ledger.db); err != nil {
		t.Fatalf("after clearing: %v", err)
	}

	// The same file again: the stored report, and not a penny moves.
	balances := snapshotBalances(t, l, st)
	again, err := c.Ingest(ctx, clearing.IngestRequest{FileName: "sim.csv", Content: file.Bytes()})
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
