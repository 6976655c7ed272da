package authorization_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// early opens a second authorizer on e's records that answers approvals
// before finishing their records, as the embedded node runs it.
func (e *env) early(t *testing.T) *authorization.Authorizer {
	t.Helper()
	a, err := authorization.Open(context.Background(), e.db, authorization.Config{
		Card: e.cards, Ledger: e.led, Now: e.clk.Now, AnswerEarly: true,
		Settlement: map[money.Currency]string{"GBP": e.settlement},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// With AnswerEarly the answer comes before the record is finished; every
// reader of the authorizer still sees the decision the network was told,
// and the record is finished by the time Close returns.
func TestAnswerEarlyReadsWhatWasAnswered(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		a := e.early(t)
		h := e.holder(1000, card.Controls{})
		req := e.purchase(h, 400)
		d := must(t)(a.Authorize(ctx, req))
		if !d.Approved || d.HoldID == "" || d.Amount != 400 || d.AuthCode == "" {
			t.Fatalf("decision = %+v", d)
		}
		e.wantBalance(t, h.Account, 1000, 400)
		// Read straight after the answer: the reads wait for the record.
		if got, err := a.ByNetworkID(ctx, req.Network); err != nil || got.HoldID != d.HoldID || got.AuthCode != d.AuthCode {
			t.Errorf("ByNetworkID = %+v, %v; want the answered %+v", got, err, d)
		}
		if got, err := a.ByReference(ctx, ref(d)); err != nil || got.ID != d.ID {
			t.Errorf("ByReference = %+v, %v; want %s", got, err, d.ID)
		}
		if got, err := a.Get(ctx, d.ID); err != nil || !got.Approved {
			t.Errorf("Get = %+v, %v", got, err)
		}
		// A retransmission gets the same answer and holds nothing more.
		again := must(t)(a.Authorize(ctx, req))
		if again.ID != d.ID || again.HoldID != d.HoldID || again.AuthCode != d.AuthCode {
			t.Errorf("retransmission = %+v, want %+v", again, d)
		}
		e.wantBalance(t, h.Account, 1000, 400)
		// Many at once, then Close: none is left pending.
		var wg sync.WaitGroup
		var ds []*authorization.Decision
		var mu sync.Mutex
		for range 20 {
			h := e.holder(1000, card.Controls{})
			wg.Go(func() {
				d, err := a.Authorize(ctx, e.purchase(h, 100))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ds = append(ds, d)
				mu.Unlock()
			})
		}
		wg.Wait()
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			got, err := e.a.Get(ctx, d.ID) // another authorizer: no lock to wait on
			if err != nil || !got.Approved || got.HoldID != d.HoldID {
				t.Errorf("after Close, %s = %+v, %v; want finished as answered", d.ID, got, err)
			}
		}
	})
}

// The card's next decision waits for the record answered before it, so
// that spend limits count it: of concurrent payments under a daily limit,
// only those that fit are approved.
func TestAnswerEarlyKeepsSpendLimits(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		a := e.early(t)
		defer a.Close()
		h := e.holder(100_000, card.Controls{DailyLimit: 1000})
		var wg sync.WaitGroup
		var approved, declined sync.Map
		for i := range 10 {
			wg.Go(func() {
				d, err := a.Authorize(ctx, e.purchase(h, 300))
				if err != nil {
					t.Error(err)
					return
				}
				if d.Approved {
					approved.Store(i, d)
				} else if d.Reason == authorization.ExceedsLimit {
					declined.Store(i, d)
				} else {
					t.Errorf("decision %+v", d)
				}
			})
		}
		wg.Wait()
		n := 0
		approved.Range(func(any, any) bool { n++; return true })
		if n != 3 {
			t.Errorf("%d payments of 300 approved under a daily limit of 1000, want 3", n)
		}
		e.wantBalance(t, h.Account, 100_000, 900)
	})
}

// A record left pending (the process died between the ledger and the
// record) is completed when the service starts, to what the ledger did.
func TestRecoverPendingAtOpen(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, "authorization")
	e := newEnv(t, db)
	lossy := &lossyLedger{Service: e.led, lose: true}
	cfg := authorization.Config{
		Card: e.cards, Ledger: lossy, Now: e.clk.Now,
		Settlement: map[money.Currency]string{"GBP": e.settlement},
	}
	a, err := authorization.Open(ctx, db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := e.holder(1000, card.Controls{})
	req := e.purchase(h, 400)
	_, err = a.Authorize(ctx, req)
	wantCode(t, err, errors.Unavailable)
	a.Close()
	e.wantBalance(t, h.Account, 1000, 400) // the hold exists, unrecorded

	lossy.setLose(false)
	b, err := authorization.Open(ctx, db, cfg) // recovers
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	d, err := b.ByNetworkID(ctx, req.Network)
	if err != nil || !d.Approved || d.HoldID == "" || d.Amount != 400 {
		t.Fatalf("after recovery ByNetworkID = %+v, %v; want approved with its hold", d, err)
	}
	e.wantBalance(t, h.Account, 1000, 400) // still one hold
	if n, err := b.RecoverPending(ctx, 0); err != nil || n != 0 {
		t.Errorf("RecoverPending again = %d, %v; want nothing left", n, err)
	}
}

// The service counts its answers by kind and reason, and its group commits.
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, "authorization")
	e := newEnv(t, db)
	reg := prometheus.NewRegistry()
	a := e.another(t, db, func(c *authorization.Config) { c.Metrics = reg })
	h := e.holder(1000, card.Controls{})
	ok := e.purchase(h, 400)
	must(t)(a.Authorize(ctx, ok))
	must(t)(a.Authorize(ctx, ok)) // retransmitted: answered again
	must(t)(a.Authorize(ctx, e.purchase(h, 5000)))
	want := map[string]float64{
		"purchase/approved":           2,
		"purchase/insufficient_funds": 1,
	}
	got := map[string]float64{}
	var groups uint64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "corebank_authorization_answers_total":
				var kind, reason string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "kind":
						kind = l.GetValue()
					case "reason":
						reason = l.GetValue()
					}
				}
				got[kind+"/"+reason] += m.GetCounter().GetValue()
			case "corebank_store_group_writes":
				groups += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	if groups == 0 {
		t.Error("no group commits counted")
	}
}

// What follows an answer at once (an incremental authorization, a
// reversal) finds the original as it was answered.
func TestAnswerEarlyFollowUps(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		a := e.early(t)
		defer a.Close()
		for i := range 20 {
			h := e.holder(10_000, card.Controls{})
			pre := e.purchase(h, 5000)
			pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
			orig := must(t)(a.Authorize(ctx, pre))
			inc := e.incremental(h, pre.Network, 2000)
			d := must(t)(a.Increment(ctx, inc))
			if !d.Approved || d.HoldID != orig.HoldID || d.OriginalID != orig.ID {
				t.Fatalf("%d: incremental straight after its original = %+v", i, d)
			}
			// What a late reversal of the original reads (the gateway's,
			// after a timeout on the incremental) has grown already.
			if o, err := a.ByNetworkID(ctx, pre.Network); err != nil || o.Outstanding != 7000 {
				t.Fatalf("%d: original straight after its incremental = %+v, %v; want 7000 outstanding", i, o, err)
			}
			rev := must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
			if !rev.Approved || rev.Amount != 7000 {
				t.Fatalf("%d: reversal straight after = %+v", i, rev)
			}
			e.wantBalance(t, h.Account, 10_000, 0)
		}
	})
}

// Two processes deciding on one card share its limits: two payments that
// do not both fit under a daily limit, sent at once to two authorizers on
// one database, are never both approved.
func TestSpendLimitsAcrossProcesses(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		other := e.another(t, db, nil)
		for round := range 25 {
			h := e.holder(100_000, card.Controls{DailyLimit: 1000})
			reqs := []authorization.Request{e.purchase(h, 600), e.purchase(h, 600)}
			var wg sync.WaitGroup
			var approved atomic.Int32
			start := make(chan struct{})
			for i, a := range []*authorization.Authorizer{e.a, other} {
				wg.Go(func() {
					<-start
					d, err := a.Authorize(ctx, reqs[i])
					if err != nil {
						t.Error(err)
						return
					}
					if d.Approved {
						approved.Add(1)
					} else if d.Reason != authorization.ExceedsLimit {
						t.Errorf("decision %+v", d)
					}
				})
			}
			close(start)
			wg.Wait()
			if n := approved.Load(); n != 1 {
				t.Fatalf("round %d: %d of two payments of 600 approved under a daily limit of 1000, want 1", round, n)
			}
			e.wantBalance(t, h.Account, 100_000, 600)
		}
	})
}

// While the service runs, records left pending (a ledger call whose answer
// was lost) are completed by the periodic sweep, without a retransmission.
func TestRecoverPendingWhileRunning(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, "authorization")
	e := newEnv(t, db)
	lossy := &lossyLedger{Service: e.led, lose: true}
	a := e.another(t, db, func(c *authorization.Config) { c.Ledger, c.RecoverEvery = lossy, 10*time.Millisecond })
	h := e.holder(1000, card.Controls{})
	req := e.purchase(h, 400)
	_, err := a.Authorize(ctx, req)
	wantCode(t, err, errors.Unavailable)
	lossy.setLose(false)
	time.Sleep(100 * time.Millisecond)
	if _, err := a.ByNetworkID(ctx, req.Network); !errors.Is(err, errors.NotFound) {
		t.Fatalf("a record younger than 5s was completed: %v", err)
	}
	e.clk.Add(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := a.ByNetworkID(ctx, req.Network)
		if err == nil {
			if !d.Approved || d.HoldID == "" || d.Amount != 400 {
				t.Fatalf("recovered decision %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pending record was not completed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.wantBalance(t, h.Account, 1000, 400) // one hold
}

// With AnswerEarly, only approvals go out ahead of their finished record:
// a decline is recorded before it is answered (the ledger does not
// remember refusals, so a pending decline completed later, once funds
// arrived, could approve what the network was told was declined).
func TestAnswerEarlyRecordsADeclineFirst(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, "authorization")
	e := newEnv(t, db)
	a := e.another(t, db, func(c *authorization.Config) { c.AnswerEarly = true })
	h := e.holder(100, card.Controls{})
	req := e.purchase(h, 400)
	// The record cannot be finished.
	if _, err := db.Write.Exec(`CREATE TRIGGER boom BEFORE UPDATE ON authorizations WHEN NEW.status = 'done' BEGIN SELECT RAISE(ABORT, 'injected'); END`); err != nil {
		t.Fatal(err)
	}
	if d, err := a.Authorize(ctx, req); err == nil {
		t.Fatalf("a decline whose record cannot be finished was answered: approved %v, %s", d.Approved, d.Reason)
	}
	if _, err := db.Write.Exec(`DROP TRIGGER boom`); err != nil {
		t.Fatal(err)
	}
	// Funds arrive; the retransmission's answer is the only one given, and
	// the books agree with it.
	if _, err := e.led.Transfer(ctx, ledger.TransferRequest{Key: "salary", Legs: []ledger.Leg{{AccountID: e.fund, Amount: -1000, Currency: "GBP"}, {AccountID: h.Account, Amount: 1000, Currency: "GBP"}}}); err != nil {
		t.Fatal(err)
	}
	d := must(t)(a.Authorize(ctx, req))
	held := int64(0)
	if d.Approved {
		held = 400
	}
	e.wantBalance(t, h.Account, 1100, held)
}
