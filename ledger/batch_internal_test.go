package ledger

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store/sqlite"
)

// These tests hand the group committer exact batches (commit), to pin what
// one batch decides.

var batchEpoch = time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)

type batchFix struct {
	l                  *Ledger
	ctx                context.Context
	fund, cust, settle string
}

func newBatchFix(t *testing.T) *batchFix {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir(), "ledger")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	l, err := Open(ctx, db, Config{Now: func() time.Time { return batchEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	f := &batchFix{l: l, ctx: ctx}
	open := func(key string, rule Rule) string {
		a, err := l.CreateAccount(ctx, CreateAccountRequest{Key: key, Currency: "GBP", Rule: rule})
		if err != nil {
			t.Fatal(err)
		}
		return a.ID
	}
	f.fund, f.cust, f.settle = open("fund", RuleNone), open("cust", RuleLimit), open("settle", RuleNone)
	if _, err := l.Transfer(ctx, TransferRequest{Key: "topup", Legs: []Leg{{f.fund, -1000, "GBP"}, {f.cust, 1000, "GBP"}}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// queued is a write as the public methods queue it.
func queued(kind opKind, key string, req any) *op {
	return &op{kind: kind, key: key, hash: requestHash(req), req: req, done: make(chan struct{})}
}

// An increment and a post of one hold by one amount hash alike: reusing
// the key for the other kind in the same batch is still a conflict.
func TestBatchKeyReusedForAnotherKind(t *testing.T) {
	f := newBatchFix(t)
	h, err := f.l.PlaceHold(f.ctx, PlaceHoldRequest{Key: "place", AccountID: f.cust, Destination: f.settle, Amount: 100, Currency: "GBP", ExpiresAt: batchEpoch.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	incr := queued(opIncr, "k", &IncrementHoldRequest{Key: "k", HoldID: h.ID, Amount: 10})
	post := queued(opPost, "k", &PostHoldRequest{Key: "k", HoldID: h.ID, Amount: 10})
	f.l.commit([]*op{incr, post})
	if incr.err != nil {
		t.Fatal(incr.err)
	}
	if !errors.Is(post.err, errors.Conflict) {
		t.Errorf("post reusing the increment's key in its batch = %+v, %v; want conflict", post.res, post.err)
	}
	if _, err := f.l.PostHold(f.ctx, PostHoldRequest{Key: "k", HoldID: h.ID, Amount: 10}); !errors.Is(err, errors.Conflict) {
		t.Errorf("the same post in a later batch: %v, want conflict", err)
	}
}

// A batch whose commit fails answers every write Unavailable: a refusal
// decided against the batch's earlier writes would be a refusal against
// writes that were never stored.
func TestBatchFailedCommitAnswersAllUnavailable(t *testing.T) {
	f := newBatchFix(t)
	if _, err := f.l.db.Write.Exec(`CREATE TRIGGER boom BEFORE INSERT ON transfers WHEN NEW.key = 'boom' BEGIN SELECT RAISE(ABORT, 'injected'); END`); err != nil {
		t.Fatal(err)
	}
	drain := queued(opTransfer, "boom", &TransferRequest{Key: "boom", Legs: []Leg{{f.cust, -1000, "GBP"}, {f.fund, 1000, "GBP"}}})
	spend := queued(opTransfer, "spend", &TransferRequest{Key: "spend", Legs: []Leg{{f.cust, -500, "GBP"}, {f.fund, 500, "GBP"}}})
	reuse := queued(opTransfer, "boom", &TransferRequest{Key: "boom", Legs: []Leg{{f.cust, -1, "GBP"}, {f.fund, 1, "GBP"}}})
	f.l.commit([]*op{drain, spend, reuse})
	for name, o := range map[string]*op{"drain": drain, "spend": spend, "reuse": reuse} {
		if !errors.Is(o.err, errors.Unavailable) {
			t.Errorf("%s = %v, want unavailable", name, o.err)
		}
	}
	if b, err := f.l.Balance(f.ctx, f.cust, time.Time{}); err != nil || b.Available != 1000 {
		t.Errorf("balance %+v, %v; want 1000 available, nothing stored", b, err)
	}
	// Retried, the spend goes through.
	if _, err := f.l.Transfer(f.ctx, TransferRequest{Key: "spend", Legs: []Leg{{f.cust, -500, "GBP"}, {f.fund, 500, "GBP"}}}); err != nil {
		t.Errorf("retried spend: %v", err)
	}
}

// Forced writes can take posted and pending far apart; available funds
// saturate rather than wrap round to a fortune.
func TestAvailableSaturates(t *testing.T) {
	f := newBatchFix(t)
	const m = 1_000_000_000_000_000
	var ops []*op
	for i := range 4700 {
		k := fmt.Sprintf("debit-%d", i)
		ops = append(ops, queued(opTransfer, k, &TransferRequest{Key: k, Force: true, Legs: []Leg{{f.cust, -m, "GBP"}, {f.fund, m, "GBP"}}}))
		k = fmt.Sprintf("hold-%d", i)
		ops = append(ops, queued(opPlace, k, &PlaceHoldRequest{Key: k, Force: true, AccountID: f.cust, Destination: f.settle, Amount: m, Currency: "GBP", ExpiresAt: batchEpoch.Add(time.Hour)}))
	}
	for i := 0; i < len(ops); i += 1000 {
		f.l.commit(ops[i:min(i+1000, len(ops))])
	}
	for _, o := range ops {
		if o.err != nil {
			t.Fatal(o.err)
		}
	}
	b, err := f.l.Balance(f.ctx, f.cust, time.Time{})
	if err != nil || b.Available >= 0 {
		t.Fatalf("balance %+v, %v; want available far below zero", b, err)
	}
	if _, err := f.l.Transfer(f.ctx, TransferRequest{Key: "unforced", Legs: []Leg{{f.cust, -m, "GBP"}, {f.fund, m, "GBP"}}}); !errors.Is(err, errors.InsufficientFunds) {
		t.Errorf("unforced debit of an account deep in debt: %v, want insufficient_funds", err)
	}
}

// A caller in this process that gives up on a queued transfer (its
// deadline) and reuses its legs and metadata must not change what the
// ledger commits; nor may changing a result change the request or another
// caller's result. Over HTTP none of this can happen: the in-process
// transport must not differ.
func TestRequestsAndResultsAreTheLedgersOwn(t *testing.T) {
	f := newBatchFix(t)
	// Hold the writer, so the transfer waits in its batch.
	conn, err := f.l.db.Write.Conn(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := TransferRequest{Key: "late", Legs: []Leg{{f.cust, -5, "GBP"}, {f.fund, 5, "GBP"}}, Metadata: map[string]string{"k": "v"}}
	ctx, cancel := context.WithTimeout(f.ctx, 50*time.Millisecond)
	_, err = f.l.Transfer(ctx, req)
	cancel()
	if !errors.Is(err, errors.Timeout) {
		t.Fatalf("Transfer with the writer held = %v, want timeout", err)
	}
	req.Legs[1].Amount, req.Metadata["k"] = 5000, "reused"
	conn.Close()
	got, err := f.l.Transfer(f.ctx, TransferRequest{Key: "late", Legs: []Leg{{f.cust, -5, "GBP"}, {f.fund, 5, "GBP"}}, Metadata: map[string]string{"k": "v"}})
	if err != nil || got.Legs[1].Amount != 5 || got.Metadata["k"] != "v" {
		t.Fatalf("the retry = %+v, %v; want the transfer as first sent", got, err)
	}
	if err := Verify(f.ctx, f.l.db); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	// Results: one's own, in the same batch too.
	a := queued(opTransfer, "twice", &TransferRequest{Key: "twice", Legs: []Leg{{f.cust, -1, "GBP"}, {f.fund, 1, "GBP"}}, Metadata: map[string]string{"k": "v"}})
	b := queued(opTransfer, "twice", &TransferRequest{Key: "twice", Legs: []Leg{{f.cust, -1, "GBP"}, {f.fund, 1, "GBP"}}, Metadata: map[string]string{"k": "v"}})
	f.l.commit([]*op{a, b})
	ra, rb := a.res.(*Transfer), b.res.(*Transfer)
	ra.Legs[0].Amount, ra.Metadata["k"] = -999, "changed"
	if rb.Legs[0].Amount != -1 || rb.Metadata["k"] != "v" {
		t.Errorf("changing one caller's result changed another's: %+v", rb)
	}
}

// Two different transfers under one key in one batch: the first takes
// effect, the second is a conflict (not told it succeeded with the first's
// result).
func TestBatchKeyReusedForAnotherRequestOfTheSameKind(t *testing.T) {
	f := newBatchFix(t)
	a := &TransferRequest{Key: "k", Legs: []Leg{{f.cust, -10, "GBP"}, {f.settle, 10, "GBP"}}}
	b := &TransferRequest{Key: "k", Legs: []Leg{{f.cust, -20, "GBP"}, {f.settle, 20, "GBP"}}}
	first, second := queued(opTransfer, "k", a), queued(opTransfer, "k", b)
	f.l.commit([]*op{first, second})
	if first.err != nil {
		t.Fatal(first.err)
	}
	if !errors.Is(second.err, errors.Conflict) {
		t.Errorf("a different transfer reusing the key in its batch = %+v, %v; want conflict", second.res, second.err)
	}
}
