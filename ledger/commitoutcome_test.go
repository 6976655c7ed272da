package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// When the connection is lost while a batch's COMMIT is in flight, the
// server may have committed it: the caller is answered Timeout, not
// Unavailable, and here the transfer was indeed stored. Retried with the
// same key, without the proxy, it returns the transfer stored: one effect.
func TestLostCommitAnswersTimeout(t *testing.T) {
	ctx := context.Background()
	ddb, db, p := storetest.PostgresCutting(t, "ledger", false)
	l := openLedger(t, db, ledger.Config{})
	from := mustAccount(t, l, "from", ledger.RuleNone, 0)
	to := mustAccount(t, l, "to", ledger.RuleNone, 0)

	req := ledger.TransferRequest{Key: "pay-1", Legs: gbp(from, to, 250)}
	p.Arm()
	tr, err := l.Transfer(ctx, req)
	if !p.WasCut() {
		t.Fatal("no COMMIT went through the proxy")
	}
	if errors.CodeOf(err) != errors.Timeout || !store.CommitOutcomeUnknown(err) {
		t.Fatalf("Transfer whose COMMIT's answer was lost: %v, %v; want timeout (outcome unknown)", tr, err)
	}

	// Read on a direct connection, without the proxy.
	stored := func() int {
		t.Helper()
		var n int
		if err := ddb.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM transfers WHERE key = $1`, req.Key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := stored(); n != 1 {
		t.Fatalf("%d transfers stored under the key, want 1: the server committed the batch", n)
	}
	dl := openLedger(t, ddb, ledger.Config{})
	again, err := dl.Transfer(ctx, req)
	if err != nil {
		t.Fatalf("the retry with the same key: %v", err)
	}
	if again.Key != req.Key || len(again.Legs) != 2 {
		t.Fatalf("the retry returned %+v, want the transfer stored under %s", again, req.Key)
	}
	if n := stored(); n != 1 {
		t.Fatalf("%d transfers under the key after the retry, want 1", n)
	}
	for _, c := range []struct {
		id   string
		want int64
	}{{from, -250}, {to, 250}} {
		b, err := dl.Balance(ctx, c.id, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if b.Posted != c.want {
			t.Errorf("account %s: posted %d, want %d (one effect)", c.id, b.Posted, c.want)
		}
	}
	// The ledger that lost the answer carries on, and finds the transfer too.
	got, err := l.Transfer(ctx, req)
	if err != nil || got.ID != again.ID {
		t.Fatalf("the retry on the first ledger: %+v, %v; want transfer %s", got, err, again.ID)
	}
}
