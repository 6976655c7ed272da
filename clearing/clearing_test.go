package clearing_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/lock"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

func TestPostsAgainstHolds(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		equal, lower, higher, way := e.holder(10000), e.holder(10000), e.holder(10000), e.holder(10000)
		dEq, dLo, dHi, dWay := e.authorize(equal, 1000), e.authorize(lower, 1000), e.authorize(higher, 1000), e.authorize(way, 1000)
		rep := e.ingest(t, "f1.csv", file("F1",
			forAuth("R1", equal, dEq, 1000),
			forAuth("R2", lower, dLo, 800),
			forAuth("R3", higher, dHi, 1150), // a tip, within 20%
			forAuth("R4", way, dWay, 1500),   // 50% over: suspicious
		))
		if rep.Posted != 4 || rep.Forced != 0 || len(rep.Unmatched) != 0 {
			t.Fatalf("report %+v, want 4 posted", rep)
		}
		if len(rep.Suspicious) != 1 || rep.Suspicious[0].RecordID != "R4" || rep.Suspicious[0].Reason != clearing.ReasonOverAuthorized {
			t.Errorf("suspicious %+v, want R4 over_authorized", rep.Suspicious)
		}
		e.wantBalance(t, equal.Account, 9000, 0)
		e.wantBalance(t, lower.Account, 9200, 0) // remainder released
		e.wantBalance(t, higher.Account, 8850, 0)
		e.wantBalance(t, way.Account, 8500, 0)
		e.wantBalance(t, e.settlement, 1000+800+1150+1500, 0)
		for _, d := range []string{dEq.HoldID, dLo.HoldID, dHi.HoldID} {
			if h := e.hold(t, d); h.Status != ledger.HoldPosted {
				t.Errorf("hold %s %s, want posted", d, h.Status)
			}
		}
		recs := e.records(t, "F1")
		if r := recs["R2"]; r.Status != clearing.StatusPosted || r.CardID != lower.Card.ID || r.AuthorizationID != dLo.ID || r.HoldID != dLo.HoldID {
			t.Errorf("R2 = %+v", r)
		}
	})
}

func TestMultipleClearingsAgainstOneAuthorization(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10000)
		d := e.authorize(h, 3000)
		first := forAuth("S1", h, d, 1000)
		first.notFinal = true
		e.ingest(t, "split-1", file("SPLIT1", first))
		e.wantBalance(t, h.Account, 9000, 2000) // the rest stays held
		if hd := e.hold(t, d.HoldID); hd.Status != ledger.HoldPending || hd.Amount != 2000 {
			t.Fatalf("hold after first presentment %+v", hd)
		}
		second := forAuth("S2", h, d, 1500)
		second.presentment = 2
		second.arn = arnFor("S1") // the same transaction
		rep := e.ingest(t, "split-2", file("SPLIT2", second))
		if rep.Posted != 1 {
			t.Fatalf("report %+v", rep)
		}
		e.wantBalance(t, h.Account, 7500, 0) // final: the last 500 released
		if hd := e.hold(t, d.HoldID); hd.Status != ledger.HoldPosted || hd.Posted != 2500 {
			t.Fatalf("hold after final %+v", hd)
		}
		// A third presentment after the final one: the network paid, so
		// it is force-posted, and flagged.
		third := forAuth("S3", h, d, 100)
		third.presentment = 3
		third.arn = arnFor("S1")
		rep = e.ingest(t, "split-3", file("SPLIT3", third))
		if rep.Forced != 1 || len(rep.Suspicious) != 1 || rep.Suspicious[0].Reason != clearing.ReasonAfterFinal {
			t.Fatalf("report %+v", rep)
		}
		e.wantBalance(t, h.Account, 7400, 0)
	})
}

func TestForcePostAndRefund(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		poor := e.holder(100)
		refundee := e.holder(0)
		unknown := "4571736000000000" // Luhn-valid? irrelevant: no such card
		d := e.authorize(e.holder(5000), 500)
		_ = d
		rep := e.ingest(t, "f.csv", file("FP1",
			rec{id: "NOAUTH", pan: poor.PAN, amount: 700}, // no authorization, more than the balance
			rec{id: "REFUND", pan: refundee.PAN, proc: "200000", amount: 1234},
			rec{id: "GHOST", pan: unknown, amount: 99},
		))
		if rep.Forced != 1 || rep.Refunded != 1 || len(rep.Unmatched) != 1 || rep.Unmatched[0].RecordID != "GHOST" || rep.Unmatched[0].Reason != clearing.ReasonCardNotFound {
			t.Fatalf("report %+v", rep)
		}
		e.wantBalance(t, poor.Account, -600, 0) // forced: overdrawn
		e.wantBalance(t, refundee.Account, 1234, 0)
		e.wantBalance(t, e.settlement, 700-1234, 0)
		recs := e.records(t, "FP1")
		tr, err := e.led.GetTransfer(context.Background(), recs["NOAUTH"].TransferID)
		if err != nil || !tr.Forced {
			t.Fatalf("force-post transfer %+v %v, want forced", tr, err)
		}
		if r := recs["NOAUTH"]; r.Status != clearing.StatusForced || r.Reason != clearing.ReasonNoAuthorization {
			t.Errorf("NOAUTH = %+v", r)
		}
	})
}

func TestExpiredHoldIsForcePosted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(1000)
		d := e.authorize(h, 800)
		if _, err := e.led.VoidHold(context.Background(), ledger.VoidHoldRequest{Key: "void", HoldID: d.HoldID}); err != nil {
			t.Fatal(err)
		}
		rep := e.ingest(t, "late", file("LATE", forAuth("L1", h, d, 900)))
		if rep.Forced != 1 {
			t.Fatalf("report %+v", rep)
		}
		e.wantBalance(t, h.Account, 100, 0)
		if r := e.records(t, "LATE")["L1"]; r.Reason != clearing.ReasonHoldNotPending || r.AuthorizationID != d.ID {
			t.Errorf("L1 = %+v", r)
		}
	})
}

func TestCardMismatchIsSuspicious(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		owner, other := e.holder(1000), e.holder(1000)
		d := e.authorize(owner, 500)
		r := forAuth("M1", other, d, 500) // the network ids of owner's authorization, other's PAN
		rep := e.ingest(t, "m", file("MIS", r))
		if rep.Forced != 1 || len(rep.Suspicious) != 1 || rep.Suspicious[0].Reason != clearing.ReasonCardMismatch {
			t.Fatalf("report %+v", rep)
		}
		e.wantBalance(t, owner.Account, 1000, 500) // owner's hold untouched
		e.wantBalance(t, other.Account, 500, 0)
	})
}

// snapshot is what an ingest may change: balances and row counts.
type snapshot struct {
	balances          map[string]ledger.Balance
	transfers, events int
	records, files    int
}

func (e *env) snapshot(t *testing.T, accs ...string) snapshot {
	s := snapshot{balances: map[string]ledger.Balance{}}
	for _, a := range accs {
		b := e.balance(a)
		b.AsOf = b.AsOf.UTC()
		s.balances[a] = *b
	}
	s.transfers = count(t, e.ledDB, `SELECT COUNT(*) FROM transfers`)
	s.events = count(t, e.db, `SELECT COUNT(*) FROM outbox`)
	s.records = count(t, e.db, `SELECT COUNT(*) FROM clearing_records`)
	s.files = count(t, e.db, `SELECT COUNT(*) FROM clearing_files`)
	return s
}

func sameSnapshot(t *testing.T, a, b snapshot) {
	t.Helper()
	if a.transfers != b.transfers || a.events != b.events || a.records != b.records || a.files != b.files {
		t.Errorf("rows changed: %+v then %+v", a, b)
	}
	for k, v := range a.balances {
		if w := b.balances[k]; v.Posted != w.Posted || v.Pending != w.Pending {
			t.Errorf("balance of %s changed: %+v then %+v", k, v, w)
		}
	}
}

func TestDuplicateFileChangesNothing(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h, r := e.holder(5000), e.holder(0)
		d := e.authorize(h, 1000)
		content := file("DUP", forAuth("A", h, d, 1000), rec{id: "B", pan: h.PAN, amount: 50}, rec{id: "C", pan: r.PAN, proc: "200000", amount: 70})
		first := e.ingest(t, "dup.csv", content)
		before := e.snapshot(t, h.Account, r.Account, e.settlement)
		second := e.ingest(t, "dup-again.csv", content)
		sameSnapshot(t, before, e.snapshot(t, h.Account, r.Account, e.settlement))
		if !second.Replayed || second.Posted != first.Posted || second.Forced != first.Forced || second.Refunded != first.Refunded {
			t.Errorf("second report %+v, want the first %+v replayed", second, first)
		}

		// The same id with other content is refused, and changes nothing.
		other := file("DUP", rec{id: "A", pan: h.PAN, amount: 1})
		_, err := e.c.Ingest(context.Background(), clearing.IngestRequest{FileName: "dup.csv", Content: other})
		wantCode(t, err, errors.Conflict)
		sameSnapshot(t, before, e.snapshot(t, h.Account, r.Account, e.settlement))

		// The same presentment in another file is a duplicate record.
		resend := forAuth("X", h, d, 1000)
		resend.arn = arnFor("A")
		rep := e.ingest(t, "resend", file("RESEND", resend))
		if rep.Duplicates != 1 || rep.Posted+rep.Forced != 0 {
			t.Fatalf("resend report %+v, want one duplicate", rep)
		}
		if x := e.records(t, "RESEND")["X"]; x.Status != clearing.StatusDuplicate || x.DuplicateOf != "DUP/A" {
			t.Errorf("X = %+v", x)
		}
		e.wantBalance(t, h.Account, 5000-1000-50, 0)
	})
}

func TestMalformedFilesAreRefused(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(5000)
		good := rec{id: "R1", pan: h.PAN, amount: 100}
		valid := string(file("BAD", good))
		cases := []struct {
			name, content, want string
		}{
			{"bad header", strings.Replace(valid, "H,BAD,MCI,2030-01-16", "H,BAD,MCI,2030-13-16", 1), "line 2: date:"},
			{"no header", "D" + strings.SplitN(valid, "\nD", 2)[1], "line 1: a detail record before the header"},
			{"bad amount", strings.Replace(valid, ",000000,100,GBP,", ",000000,1.00,GBP,", 1), `line 3 (record R1): amount: "1.00"`},
			{"bad currency", strings.Replace(valid, ",100,GBP,100,GBP,", ",100,GBP,100,XXQ,", 1), `line 3 (record R1): billing_currency: "XXQ"`},
			{"wrong record count", strings.Replace(strings.Replace(valid, "H,BAD,MCI,2030-01-16,1,", "H,BAD,MCI,2030-01-16,2,", 1), "T,BAD,1,", "T,BAD,2,", 1), "the header says 2 records, the file has 1"},
			{"wrong control total", strings.Replace(strings.Replace(valid, ",1,100\n", ",1,101\n", 1), "T,BAD,1,100", "T,BAD,1,101", 1), "control_total: the header says 101, the billing amounts sum to 100"},
			{"no trailer", strings.Split(valid, "T,")[0], "no trailer line"},
			{"bad pan", strings.Replace(valid, h.PAN, h.PAN[:10]+"X", 1), "line 3 (record R1): pan: must be 12 to 19 digits"},
			{"zero amount, with its limit shown", strings.Replace(valid, ",000000,100,GBP,", ",000000,0,GBP,", 1), `amount: "0" must be a whole number of minor units, 1 to 1,000,000,000,000,000`},
		}
		for _, cc := range []string{"gb", "GBR", "G", "G1", ""} {
			cases = append(cases, struct{ name, content, want string }{"merchant country " + cc,
				strings.Replace(valid, ",LONDON,GB,", ",LONDON,"+cc+",", 1), "merchant_country: " + strconv.Quote(cc) + " must be two upper-case letters"})
		}
		before := e.snapshot(t, h.Account)
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := e.c.Ingest(context.Background(), clearing.IngestRequest{FileName: "bad.csv", Content: []byte(c.content)})
				wantCode(t, err, errors.BadRequest)
				if msg := errors.MessageOf(err); !strings.Contains(msg, c.want) {
					t.Errorf("message %q, want it to contain %q", msg, c.want)
				}
				if strings.Contains(err.Error(), h.PAN[:10]) {
					t.Errorf("error %q shows the card number", err)
				}
			})
		}
		sameSnapshot(t, before, e.snapshot(t, h.Account))
		if n := count(t, db, `SELECT COUNT(*) FROM clearing_records`); n != 0 {
			t.Errorf("%d records stored from malformed files", n)
		}
	})
}

func TestCrashMidFileResumes(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		hs := []*holder{e.holder(5000), e.holder(5000), e.holder(5000)}
		d0, d1 := e.authorize(hs[0], 1000), e.authorize(hs[1], 1000)
		content := file("CRASH",
			forAuth("C1", hs[0], d0, 900),
			forAuth("C2", hs[1], d1, 1100),
			rec{id: "C3", pan: hs[2].PAN, amount: 300},
			rec{id: "C4", pan: hs[2].PAN, proc: "200000", amount: 50},
		)
		ctx := context.Background()
		req := clearing.IngestRequest{FileName: "crash", Content: content}

		// Run 1 dies right after the ledger committed C2's post, before
		// the record was updated.
		e.flaky.fail.Store(2)
		e.flaky.after.Store(true)
		_, err := e.c.Ingest(ctx, req)
		wantCode(t, err, errors.Unavailable)
		if f, err := e.c.GetFile(ctx, "CRASH"); err != nil || f.Status != clearing.FileProcessing {
			t.Fatalf("file after crash %+v %v", f, err)
		}
		if r := e.records(t, "CRASH"); r["C1"].Status != clearing.StatusPosted || r["C2"].Status != clearing.StatusPending {
			t.Fatalf("records after crash: C1 %s C2 %s", r["C1"].Status, r["C2"].Status)
		}
		// Run 2 dies before its third ledger write (C4's).
		e.flaky.calls.Store(0)
		e.flaky.fail.Store(3)
		e.flaky.after.Store(false)
		_, err = e.c.Ingest(ctx, req)
		wantCode(t, err, errors.Unavailable)
		// Run 3 completes.
		e.flaky.fail.Store(0)
		rep := e.ingest(t, "crash", content)
		if rep.Posted != 2 || rep.Forced != 1 || rep.Refunded != 1 || rep.Replayed {
			t.Fatalf("report %+v", rep)
		}
		e.wantBalance(t, hs[0].Account, 4100, 0)
		e.wantBalance(t, hs[1].Account, 3900, 0)
		e.wantBalance(t, hs[2].Account, 5000-300+50, 0)
		e.wantBalance(t, e.settlement, 900+1100+300-50, 0)
		if n := count(t, db, `SELECT COUNT(*) FROM outbox WHERE topic = 'clearing.record.posted'`); n != 4 {
			t.Errorf("%d record events, want 4", n)
		}
	})
}

func TestConcurrentIngestOfOneFile(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(5000)
		d := e.authorize(h, 1000)
		content := file("CONC", forAuth("A", h, d, 1000), rec{id: "B", pan: h.PAN, amount: 10}, rec{id: "C", pan: h.PAN, amount: 20})
		var wg sync.WaitGroup
		reps := make([]*clearing.Report, 4)
		for i := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rep, err := e.c.Ingest(context.Background(), clearing.IngestRequest{FileName: "conc", Content: content})
				if err != nil {
					t.Errorf("Ingest %d: %v", i, err)
				}
				reps[i] = rep
			}()
		}
		wg.Wait()
		fresh := 0
		for _, r := range reps {
			if r != nil && !r.Replayed {
				fresh++
			}
			if r != nil && (r.Posted != 1 || r.Forced != 2) {
				t.Errorf("report %+v", r)
			}
		}
		if fresh != 1 {
			t.Errorf("%d ingests processed the file, want 1", fresh)
		}
		e.wantBalance(t, h.Account, 5000-1030, 0)
		if n := count(t, e.ledDB, `SELECT COUNT(*) FROM transfers WHERE key LIKE 'clr:%'`); n != 3 {
			t.Errorf("%d clearing transfers in the ledger, want 3", n)
		}
	})
}

func TestNoCardNumberIsStored(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h, ghost := e.holder(5000), "5500000000000004"
		d := e.authorize(h, 1000)
		e.ingest(t, "pan", file("PAN", forAuth("A", h, d, 1000), rec{id: "B", pan: ghost, amount: 5}, rec{id: "C", pan: h.PAN, proc: "200000", amount: 5}))
		stored := storetest.Dump(t, db)
		for _, table := range []string{"clearing_records", "clearing_files", "clearing_presentments", "outbox"} {
			rows := 0
			for col, vals := range stored {
				if strings.HasPrefix(col, table+".") {
					rows = max(rows, len(vals))
				}
			}
			if rows == 0 {
				t.Errorf("%s: no rows: the check checks nothing", table)
			}
		}
		for col, vals := range stored {
			for _, v := range vals {
				for _, pan := range []string{h.PAN, ghost} {
					if strings.Contains(v, pan) || strings.Contains(v, pan[:12]) || strings.Contains(v, pan[4:]) {
						t.Errorf("%s holds card number digits: %q", col, v)
					}
				}
			}
		}
		if r := e.records(t, "PAN")["A"]; r.PANMasked != h.PAN[:6]+"******"+h.PAN[12:] {
			t.Errorf("masked PAN %q", r.PANMasked)
		}
	})
}

// noLock is a Locker that excludes nobody but hands out increasing
// tokens, as an expired lease under a paused processor would behave: only
// the fencing token protects the file.
type noLock struct{ last atomic.Int64 }

func (l *noLock) Lock(context.Context, string) (lock.Lease, error) {
	return lock.NewLease(l.last.Add(1), func() {}), nil
}

// pausingLedger stops in its first PostHold until released.
type pausingLedger struct {
	ledger.Service
	entered, release chan struct{}
	once             sync.Once
}

func (p *pausingLedger) PostHold(ctx context.Context, req ledger.PostHoldRequest) (*ledger.Hold, error) {
	p.once.Do(func() {
		close(p.entered)
		<-p.release
	})
	return p.Service.PostHold(ctx, req)
}

func TestStaleProcessorIsFenced(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(5000)
		d := e.authorize(h, 1000)
		content := file("FENCE", forAuth("A", h, d, 1000), rec{id: "B", pan: h.PAN, amount: 10})
		var lk noLock
		settle := map[money.Currency]string{"GBP": e.settlement}
		paused := &pausingLedger{Service: e.led, entered: make(chan struct{}), release: make(chan struct{})}
		open := func(l ledger.Service) *clearing.Clearer {
			c, err := clearing.Open(context.Background(), db, clearing.Config{Ledger: l, Authorization: e.auth, Card: e.cards, Settlement: settle, Locker: &lk, Now: e.clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		stale, fresh := open(paused), open(e.led)
		req := clearing.IngestRequest{FileName: "fence", Content: content}
		errc := make(chan error, 1)
		go func() {
			_, err := stale.Ingest(context.Background(), req)
			errc <- err
		}()
		select {
		case <-paused.entered: // the stale processor is inside record A's ledger write
		case err := <-errc:
			t.Fatalf("the stale processor ended before its ledger write: %v", err)
		}
		rep, err := fresh.Ingest(context.Background(), req)
		if err != nil || rep.Posted != 1 || rep.Forced != 1 {
			t.Fatalf("fresh Ingest = %+v, %v", rep, err)
		}
		close(paused.release)
		wantCode(t, <-errc, errors.Conflict)
		e.wantBalance(t, h.Account, 5000-1010, 0)
		if f, err := fresh.GetFile(context.Background(), "FENCE"); err != nil || f.Status != clearing.FileCompleted || f.Report.Posted != 1 {
			t.Fatalf("file %+v %v", f, err)
		}
	})
}

func TestDocumentedExampleIngests(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/clearing.md")
	if err != nil {
		t.Fatal(err)
	}
	_, ex, _ := strings.Cut(string(doc), "## Example\n\n```\n")
	ex, _, _ = strings.Cut(ex, "```")
	e := newEnv(t, storetest.SQLite(t, "clearing"))
	rep := e.ingest(t, "example", []byte(ex))
	// Its card numbers are no card of ours.
	if rep.Records != 2 || len(rep.Unmatched) != 2 || rep.Unmatched[0].Reason != clearing.ReasonCardNotFound {
		t.Fatalf("report %+v", rep)
	}
}

// The gateway approves purchases with cash back (DE3 09) and original
// credits (26), so their first presentments carry those types: the one
// clears as a purchase against its hold, the other credits the card's
// account as a refund does. Neither refuses the file.
func TestCashBackAndOriginalCreditClear(t *testing.T) {
	t.Parallel()
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		shopper, payee := e.holder(10000), e.holder(0)
		d := e.authorize(shopper, 3000)
		cashBack := forAuth("CB", shopper, d, 3000)
		cashBack.proc = "090000"
		rep := e.ingest(t, "cb.csv", file("CB1", cashBack, rec{id: "OCT", pan: payee.PAN, proc: "260000", amount: 2500}))
		if rep.Posted != 1 || rep.Refunded != 1 || rep.Forced != 0 || len(rep.Unmatched) != 0 {
			t.Fatalf("report %+v, want one posted and one credited", rep)
		}
		e.wantBalance(t, shopper.Account, 7000, 0)
		e.wantBalance(t, payee.Account, 2500, 0)
		if h := e.hold(t, d.HoldID); h.Status != ledger.HoldPosted || h.Posted != 3000 {
			t.Errorf("hold %+v, want 3000 posted", h)
		}
		if r := e.records(t, "CB1")["CB"]; r.Kind != clearing.KindPurchase || r.AuthorizationID != d.ID {
			t.Errorf("CB = %+v, want a purchase matched to %s", r, d.ID)
		}
	})
}
