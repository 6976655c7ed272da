package ledger_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/rpc"
	"github.com/corebank/corebank/rpc/rpctest"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// The wall clock steps back (an NTP correction; on PostgreSQL, another
// ledger process whose host clock is behind). An account's entries' times
// still follow their seqs, and a balance as of a time is what the entries
// at or before it add up to, at every instant around the step.
func TestBalanceAsOfAfterClockStepsBack(t *testing.T) {
	storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		clk := newClock(epoch)
		l := openLedger(t, db, ledger.Config{Now: clk.Now})
		src := mustAccount(t, l, "src", ledger.RuleNone, 0)
		dst := mustAccount(t, l, "dst", ledger.RuleNone, 0)

		clk.Advance(10 * time.Second)
		mustTransfer(t, l, "first", src, dst, 100)
		clk.Advance(-5 * time.Second) // the clock steps back
		mustTransfer(t, l, "second", src, dst, 7)
		clk.Advance(20 * time.Second)
		mustTransfer(t, l, "third", src, dst, 1000)

		page, err := l.History(ctx, ledger.HistoryRequest{AccountID: dst})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Entries) != 3 {
			t.Fatalf("%d entries, want 3", len(page.Entries))
		}
		for i := 1; i < len(page.Entries); i++ { // newest first
			if page.Entries[i].At.After(page.Entries[i-1].At) {
				t.Errorf("entry seq %d at %v is after the later entry seq %d at %v",
					page.Entries[i].Seq, page.Entries[i].At, page.Entries[i-1].Seq, page.Entries[i-1].At)
			}
		}
		for s := 0; s <= 40; s++ {
			asOf := epoch.Add(time.Duration(s) * time.Second)
			var want int64
			for _, e := range page.Entries {
				if !e.At.After(asOf) {
					want += e.Posted
				}
			}
			b, err := l.Balance(ctx, dst, asOf)
			if err != nil {
				t.Fatal(err)
			}
			if b.Posted != want {
				t.Errorf("balance as of epoch+%ds is %d; the entries at or before it sum to %d", s, b.Posted, want)
			}
		}
		if err := ledger.Verify(ctx, db); err != nil {
			t.Fatal(err)
		}
	})
}

// Over every transport, a string that is not UTF-8 is refused, never
// rewritten: JSON would turn both keys below into "pay-\ufffd", one key,
// and the second transfer would be answered as a replay of the first.
func TestKeysThatAreNotUTF8OverEveryTransport(t *testing.T) {
	db := storetest.SQLite(t, "ledger")
	l := openLedger(t, db, ledger.Config{})
	r := rpc.NewRouter()
	ledger.Register(r, l)
	ctx := context.Background()
	for _, tr := range rpctest.Transports(t, r) {
		t.Run(tr.Name, func(t *testing.T) {
			c := &ledger.Client{RPC: tr.RPC}
			a := mustAccount(t, l, tr.Name+"a", ledger.RuleNone, 0)
			b := mustAccount(t, l, tr.Name+"b", ledger.RuleNone, 0)
			for _, key := range []string{tr.Name + "-pay-\xfe", tr.Name + "-pay-\xff"} {
				if got, err := c.Transfer(ctx, ledger.TransferRequest{Key: key, Legs: gbp(a, b, 100)}); !errors.Is(err, errors.BadRequest) {
					t.Errorf("Transfer with key %q = %v, %v; want bad_request", key, got, err)
				}
			}
			meta := ledger.TransferRequest{Key: tr.Name + "-meta", Legs: gbp(a, b, 100), Metadata: map[string]string{"note": "caf\xe9"}}
			if got, err := c.Transfer(ctx, meta); !errors.Is(err, errors.BadRequest) {
				t.Errorf("Transfer with metadata that is not UTF-8 = %v, %v; want bad_request", got, err)
			}
			if bal, err := l.Balance(ctx, b, time.Time{}); err != nil || bal.Posted != 0 {
				t.Errorf("balance after refused transfers = %+v, %v; want 0", bal, err)
			}
		})
	}
}

// BenchmarkBalanceAsOf reads a balance as of a time before the newest
// 20,000 entries of a hot account, and one as of now.
//
//	go test -run '^$' -bench BalanceAsOf ./ledger/
func BenchmarkBalanceAsOf(b *testing.B) {
	db := storetest.SQLite(b, "ledger")
	clk := newClock(epoch)
	l := openLedger(b, db, ledger.Config{Now: clk.Now})
	ctx := context.Background()
	hot := mustAccount(b, l, "hot", ledger.RuleNone, 0)
	other := mustAccount(b, l, "other", ledger.RuleNone, 0)
	mustTransfer(b, l, "first", other, hot, 1)
	clk.Advance(time.Hour)
	const n = 20000
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Go(func() {
			for i := w; i < n; i += 64 {
				if _, err := l.Transfer(ctx, ledger.TransferRequest{Key: fmt.Sprintf("k%d", i), Legs: gbp(other, hot, 1)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, bc := range []struct {
		name string
		asOf time.Time
		want int64
	}{{"long_ago", epoch.Add(time.Minute), 1}, {"now", clk.Now(), n + 1}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				bal, err := l.Balance(ctx, hot, bc.asOf)
				if err != nil || bal.Posted != bc.want {
					b.Fatalf("balance %+v, %v; want posted %d", bal, err, bc.want)
				}
			}
		})
	}
}
