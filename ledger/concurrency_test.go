package ledger_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// The concurrency tests hammer a few hot accounts from many goroutines and
// then account for every write: each success must show in the balances and
// the histories exactly once, each failure not at all, and no decision of
// the ledger may ever take a RuleLimit account below its limit, not even
// for an instant a concurrent reader could see.

// concFixture is a funding account and some hot RuleLimit (limit 0)
// accounts it has funded.
type concFixture struct {
	ctx   context.Context
	db    *store.DB
	l     *ledger.Ledger   // the first of ls
	ls    []*ledger.Ledger // ledgers sharing db, as several processes would
	pre   string           // starts every key the fixture and its users make
	fund  string
	hot   []string
	setup map[string]bool // keys of the fixture's own writes
}

// newConcFixture opens instances ledgers on db and makes accounts, with
// keys starting with prefix so fixtures on one database stay apart.
func newConcFixture(t *testing.T, db *store.DB, cfg ledger.Config, prefix string, instances, hot int, funding int64) *concFixture {
	t.Helper()
	f := &concFixture{ctx: t.Context(), db: db, pre: prefix, setup: map[string]bool{}}
	for range instances {
		f.ls = append(f.ls, openLedger(t, db, cfg))
	}
	f.l = f.ls[0]
	f.fund = mustAccount(t, f.l, prefix+"fund", ledger.RuleNone, 0)
	for i := range hot {
		id := mustAccount(t, f.l, fmt.Sprintf("%shot-%d", prefix, i), ledger.RuleLimit, 0)
		f.hot = append(f.hot, id)
		if funding > 0 {
			key := fmt.Sprintf("%sfund-hot-%d", prefix, i)
			mustTransfer(t, f.l, key, f.fund, id, funding)
			f.setup[key] = true
		}
	}
	return f
}

func mustAccount(tb testing.TB, l ledger.Service, key string, rule ledger.Rule, limit int64) string {
	tb.Helper()
	a, err := l.CreateAccount(tb.Context(), ledger.CreateAccountRequest{Key: key, Currency: "GBP", Rule: rule, OverdraftLimit: limit})
	if err != nil {
		tb.Fatalf("CreateAccount(%s): %v", key, err)
	}
	return a.ID
}

func mustTransfer(tb testing.TB, l ledger.Service, key, from, to string, amount int64) *ledger.Transfer {
	tb.Helper()
	tr, err := l.Transfer(tb.Context(), ledger.TransferRequest{Key: key, Legs: []ledger.Leg{
		{AccountID: from, Amount: -amount, Currency: "GBP"}, {AccountID: to, Amount: amount, Currency: "GBP"},
	}})
	if err != nil {
		tb.Fatalf("Transfer(%s): %v", key, err)
	}
	return tr
}

func gbp(from, to string, amount int64) []ledger.Leg {
	return []ledger.Leg{{AccountID: from, Amount: -amount, Currency: "GBP"}, {AccountID: to, Amount: amount, Currency: "GBP"}}
}

// success is a write that took effect, as its caller saw it.
type success struct {
	key      string
	kind     ledger.Kind
	id       string   // the transfer's id, or the hold's
	accounts []string // the accounts whose history must show it
}

// cWorker is one goroutine's share of the work, and its own account of
// what its successes must have done.
type cWorker struct {
	f      *concFixture
	l      retrying
	n      int
	rng    *rand.Rand
	posted map[string]int64 // change to posted balances its successes made
	holds  []*ledger.Hold   // its pending holds, as it expects them
	done   []success
	ops    int
	// last is its last successful request, to retry: resend returns the
	// result again.
	last struct {
		resend func() (any, error)
		res    any
	}
	errs []string
}

func (w *cWorker) errorf(format string, args ...any) {
	w.errs = append(w.errs, fmt.Sprintf("worker %d op %d: ", w.n, w.ops)+fmt.Sprintf(format, args...))
}

func (w *cWorker) key() string { return fmt.Sprintf("%sw%d-%d", w.f.pre, w.n, w.ops) }

// outcome checks err is nil or one of the codes allowed, and reports
// whether the write succeeded.
func (w *cWorker) outcome(what string, err error, allowed ...errors.Code) bool {
	if err == nil {
		return true
	}
	c := errors.CodeOf(err)
	for _, a := range allowed {
		if c == a {
			return false
		}
	}
	w.errorf("%s: unexpected error %v", what, err)
	return false
}

func (w *cWorker) remember(s success, res any, resend func() (any, error)) {
	w.done = append(w.done, s)
	w.last.res, w.last.resend = res, resend
}

func (w *cWorker) hot() (string, string) {
	h := w.f.hot
	i := w.rng.IntN(len(h))
	j := (i + 1 + w.rng.IntN(len(h)-1)) % len(h)
	return h[i], h[j]
}

func (w *cWorker) step() {
	ctx, l := w.f.ctx, w.l
	w.ops++
	switch p := w.rng.IntN(100); {
	case p < 35: // a transfer between hot accounts, which may not be covered
		from, to := w.hot()
		amt := 1 + w.rng.Int64N(2000)
		req := ledger.TransferRequest{Key: w.key(), Legs: gbp(from, to, amt)}
		tr, err := l.Transfer(ctx, req)
		if w.outcome("transfer", err, errors.InsufficientFunds) {
			w.posted[from] -= amt
			w.posted[to] += amt
			w.remember(success{req.Key, ledger.KindTransfer, tr.ID, []string{from, to}}, tr,
				func() (any, error) { return l.Transfer(ctx, req) })
		}
	case p < 42: // a top-up from the funding account
		_, to := w.hot()
		amt := 1 + w.rng.Int64N(500)
		req := ledger.TransferRequest{Key: w.key(), Legs: gbp(w.f.fund, to, amt)}
		tr, err := l.Transfer(ctx, req)
		if w.outcome("top-up", err) {
			w.posted[w.f.fund] -= amt
			w.posted[to] += amt
			w.remember(success{req.Key, ledger.KindTransfer, tr.ID, []string{w.f.fund, to}}, tr,
				func() (any, error) { return l.Transfer(ctx, req) })
		}
	case p < 62: // a hold
		from, to := w.hot()
		req := ledger.PlaceHoldRequest{Key: w.key(), AccountID: from, Destination: to, Currency: "GBP",
			Amount: 1 + w.rng.Int64N(1500), ExpiresAt: time.Now().Add(24 * time.Hour)}
		h, err := l.PlaceHold(ctx, req)
		if w.outcome("place hold", err, errors.InsufficientFunds) {
			if h.Amount != req.Amount || h.Status != ledger.HoldPending {
				w.errorf("placed hold %+v, want %d pending", *h, req.Amount)
			}
			res := *h // h now tracks what the hold should be; res stays as answered
			w.holds = append(w.holds, h)
			w.remember(success{req.Key, ledger.KindHoldPlace, h.ID, []string{from}}, &res,
				func() (any, error) { return l.PlaceHold(ctx, req) })
		}
	case p < 70: // grow one of its holds
		if len(w.holds) == 0 {
			return
		}
		h := w.holds[w.rng.IntN(len(w.holds))]
		req := ledger.IncrementHoldRequest{Key: w.key(), HoldID: h.ID, Amount: 1 + w.rng.Int64N(500)}
		got, err := l.IncrementHold(ctx, req)
		if w.outcome("increment hold", err, errors.InsufficientFunds) {
			h.Amount += req.Amount
			if got.Amount != h.Amount {
				w.errorf("incremented hold %s holds %d, want %d", h.ID, got.Amount, h.Amount)
			}
			w.remember(success{req.Key, ledger.KindHoldIncr, h.ID, []string{h.AccountID}}, got,
				func() (any, error) { return l.IncrementHold(ctx, req) })
		}
	case p < 85: // post one of its holds: less than, all of, or more than held
		if len(w.holds) == 0 {
			return
		}
		i := w.rng.IntN(len(w.holds))
		h := w.holds[i]
		amt := max(1, w.rng.Int64N(2*h.Amount+1)) // up to twice what is held
		req := ledger.PostHoldRequest{Key: w.key(), HoldID: h.ID, Amount: amt, KeepOpen: w.rng.IntN(3) == 0}
		got, err := l.PostHold(ctx, req)
		if w.outcome("post hold", err, errors.InsufficientFunds) {
			w.posted[h.AccountID] -= amt
			w.posted[h.Destination] += amt
			if req.KeepOpen {
				h.Amount -= min(amt, h.Amount)
			} else {
				h.Amount = 0
				w.holds = append(w.holds[:i], w.holds[i+1:]...)
			}
			if got.Amount != h.Amount {
				w.errorf("posted hold %s holds %d, want %d", h.ID, got.Amount, h.Amount)
			}
			w.remember(success{req.Key, ledger.KindHoldPost, h.ID, []string{h.AccountID, h.Destination}}, got,
				func() (any, error) { return l.PostHold(ctx, req) })
		}
	case p < 93: // void one of its holds
		if len(w.holds) == 0 {
			return
		}
		i := w.rng.IntN(len(w.holds))
		h := w.holds[i]
		req := ledger.VoidHoldRequest{Key: w.key(), HoldID: h.ID}
		got, err := l.VoidHold(ctx, req)
		if w.outcome("void hold", err) {
			touched := []string{h.AccountID}
			if h.Amount == 0 { // a hold posted down to nothing but kept open
				touched = nil
			}
			h.Amount = 0
			w.holds = append(w.holds[:i], w.holds[i+1:]...)
			if got.Status != ledger.HoldVoided || got.Amount != 0 {
				w.errorf("voided hold %+v", *got)
			}
			w.remember(success{req.Key, ledger.KindHoldVoid, h.ID, touched}, got,
				func() (any, error) { return l.VoidHold(ctx, req) })
		}
	default: // retry its last success: same result, no new effect
		if w.last.resend == nil {
			return
		}
		res, err := w.last.resend()
		if err != nil {
			w.errorf("retry: %v", err)
			return
		}
		if diff := diffResult(res, w.last.res); diff != "" {
			w.errorf("retry answered differently: %s", diff)
		}
	}
}

// rounds is n, or short under -short.
func rounds(n, short int) int {
	if testing.Short() {
		return short
	}
	return n
}

// hammerOps is the number of operations each of the hammering goroutines
// makes.
func hammerOps() int {
	if testing.Short() {
		return 10
	}
	return 40
}

func TestConcurrentWrites(t *testing.T) {
	storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
		t.Run("every success is counted once and no account goes below its limit", func(t *testing.T) {
			hammer(t, db, "hammer-", 1)
		})
		t.Run("so too with two ledgers sharing the database", func(t *testing.T) {
			hammer(t, db, "hammer2-", 2)
		})

		t.Run("one request sent many times at once takes effect once", func(t *testing.T) {
			f := newConcFixture(t, db, ledger.Config{}, "same-request-", 2, 1, 100000)
			var retries atomic.Int64
			for r := range rounds(20, 5) {
				req := ledger.TransferRequest{Key: fmt.Sprintf("same-request-%d", r), Legs: gbp(f.hot[0], f.fund, 10)}
				before := countRows(t, f.db)
				const senders = 8
				var ids [senders]string
				var errs [senders]error
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range senders {
					wg.Go(func() {
						<-start
						tr, err := retrying{l: f.ls[i%len(f.ls)], retries: &retries}.Transfer(f.ctx, req)
						if err == nil {
							ids[i] = tr.ID
						}
						errs[i] = err
					})
				}
				close(start)
				wg.Wait()
				for i := range senders {
					if errs[i] != nil || ids[i] != ids[0] {
						t.Fatalf("round %d: sender %d got %q, %v; sender 0 got %q", r, i, ids[i], errs[i], ids[0])
					}
				}
				if after := countRows(t, f.db); after.Transfers != before.Transfers+1 || after.Entries != before.Entries+2 {
					t.Fatalf("round %d: one request sent %d times at once: rows %+v -> %+v", r, senders, before, after)
				}
			}
			b, err := f.l.Balance(f.ctx, f.hot[0], time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(100000 - 10*rounds(20, 5)); b.Posted != want {
				t.Errorf("posted %d, want %d", b.Posted, want)
			}
			t.Logf("%d sends retried after a retryable error", retries.Load())
			checkStored(t, f.db)
			verify(t, f.db)
		})

		t.Run("of different requests racing under one key exactly one takes effect", func(t *testing.T) {
			f := newConcFixture(t, db, ledger.Config{}, "same-key-", 2, 1, 100000)
			var retries atomic.Int64
			for r := range rounds(20, 5) {
				key := fmt.Sprintf("same-key-%d", r)
				before, err := f.l.Balance(f.ctx, f.hot[0], time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				const senders = 8
				var res [senders]*ledger.Transfer
				var errs [senders]error
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range senders {
					wg.Go(func() {
						<-start
						req := ledger.TransferRequest{Key: key, Legs: gbp(f.hot[0], f.fund, int64(1+i))}
						res[i], errs[i] = retrying{l: f.ls[i%len(f.ls)], retries: &retries}.Transfer(f.ctx, req)
					})
				}
				close(start)
				wg.Wait()
				winner := -1
				for i := range senders {
					switch errors.CodeOf(errs[i]) {
					case "":
						if winner >= 0 {
							t.Fatalf("round %d: senders %d and %d both succeeded with key %s: %+v, %+v", r, winner, i, key, *res[winner], *res[i])
						}
						winner = i
					case errors.Conflict:
					default:
						t.Fatalf("round %d: sender %d: %v", r, i, errs[i])
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: no request under key %s took effect", r, key)
				}
				after, err := f.l.Balance(f.ctx, f.hot[0], time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				if after.Posted != before.Posted-int64(1+winner) {
					t.Fatalf("round %d: sender %d won with %d, but posted went %d -> %d", r, winner, 1+winner, before.Posted, after.Posted)
				}
			}
			t.Logf("%d sends retried after a retryable error", retries.Load())
			checkStored(t, f.db)
			verify(t, f.db)
		})

		// A write is decided alone: one the database cannot store must fail
		// by itself, not take the writes committed with it down too.
		t.Run("a malformed write does not fail the writes batched with it", func(t *testing.T) {
			f := newConcFixture(t, db, ledger.Config{}, "poison-", 1, 1, 0)
			for r := range rounds(10, 3) {
				const senders = 20
				var errs [senders]error
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range senders {
					wg.Go(func() {
						<-start
						key := fmt.Sprintf("poison-%d-%d", r, i)
						if i == senders/2 {
							key += "\x00" // valid UTF-8, but no SQL text column takes it
						}
						_, errs[i] = f.l.Transfer(f.ctx, ledger.TransferRequest{Key: key, Legs: gbp(f.fund, f.hot[0], 1)})
					})
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if i != senders/2 && err != nil {
						t.Fatalf("round %d: a well-formed write failed beside a malformed one: %v", r, err)
					}
				}
			}
		})

		t.Run("closing the ledger mid-stream loses no acknowledged write", func(t *testing.T) {
			f := newConcFixture(t, db, ledger.Config{}, "closing-", 1, 2, 0)
			// A ledger of its own, closed while writes stream in.
			l, err := ledger.Open(f.ctx, f.db, ledger.Config{})
			if err != nil {
				t.Fatal(err)
			}
			type ack struct {
				req ledger.TransferRequest
				id  string
			}
			var mu sync.Mutex
			var acks []ack
			var refused atomic.Int64
			var wg sync.WaitGroup
			for g := range 20 {
				wg.Go(func() {
					for n := 0; ; n++ {
						req := ledger.TransferRequest{Key: fmt.Sprintf("closing-%d-%d", g, n), Legs: gbp(f.fund, f.hot[n%2], 1)}
						tr, err := l.Transfer(f.ctx, req)
						if err != nil {
							if !errors.Is(err, errors.Unavailable) {
								t.Errorf("write during Close: %v", err)
							}
							refused.Add(1)
							return
						}
						mu.Lock()
						acks = append(acks, ack{req, tr.ID})
						mu.Unlock()
					}
				})
			}
			// Close once writes are flowing.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				mu.Lock()
				n := len(acks)
				mu.Unlock()
				if n >= 20 {
					break
				}
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if _, err := l.Transfer(f.ctx, ledger.TransferRequest{Key: "closing-after", Legs: gbp(f.fund, f.hot[0], 1)}); !errors.Is(err, errors.Unavailable) {
				t.Errorf("write after Close: got %v, want unavailable", err)
			}
			if len(acks) == 0 || refused.Load() != 20 {
				t.Fatalf("%d writes acknowledged, %d writers refused: the test exercised little", len(acks), refused.Load())
			}
			// Every acknowledged write is there, once: retried through
			// another ledger, it answers with its id and adds nothing.
			before := countRows(t, f.db)
			for _, a := range acks {
				tr, err := f.l.Transfer(f.ctx, a.req)
				if err != nil || tr.ID != a.id {
					t.Fatalf("retry of acknowledged %s: %v, %v; want %s", a.req.Key, tr, err, a.id)
				}
			}
			if after := countRows(t, f.db); after != before {
				t.Errorf("retries of acknowledged writes changed the tables: %+v -> %+v", before, after)
			}
			var posted int64
			for _, id := range f.hot {
				b, err := f.l.Balance(f.ctx, id, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				posted += b.Posted
			}
			if posted != int64(len(acks)) {
				t.Errorf("%d writes of 1 acknowledged, %d posted", len(acks), posted)
			}
			t.Logf("%d writes acknowledged before Close", len(acks))
			checkStored(t, f.db)
			verify(t, f.db)
		})

		t.Run("exactly one of two debits racing for the last ten pounds wins", func(t *testing.T) {
			f := newConcFixture(t, db, ledger.Config{}, "last-tenner-", 1, 1, 0)
			a := f.hot[0]
			rounds := rounds(40, 10)
			type attempt func(key string) (any, error)
			debit := func(key string) (any, error) {
				return f.l.Transfer(f.ctx, ledger.TransferRequest{Key: key, Legs: gbp(a, f.fund, 1000)})
			}
			hold := func(key string) (any, error) {
				return f.l.PlaceHold(f.ctx, ledger.PlaceHoldRequest{Key: key, AccountID: a, Destination: f.fund, Currency: "GBP", Amount: 1000, ExpiresAt: time.Now().Add(time.Hour)})
			}
			pairs := [][2]attempt{{debit, debit}, {debit, hold}, {hold, hold}}
			var holdWins, debitWins int
			for r := range rounds {
				mustTransfer(t, f.l, fmt.Sprintf("refill-%d", r), f.fund, a, 1000)
				pair := pairs[r%len(pairs)]
				var res [2]any
				var errs [2]error
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						<-start
						res[i], errs[i] = pair[i](fmt.Sprintf("race-%d-%d", r, i))
					})
				}
				close(start)
				wg.Wait()
				wins := 0
				for i := range 2 {
					switch errors.CodeOf(errs[i]) {
					case "":
						wins++
						if h, ok := res[i].(*ledger.Hold); ok {
							holdWins++
							// Release the money so the next round starts from zero.
							if _, err := f.l.PostHold(f.ctx, ledger.PostHoldRequest{Key: fmt.Sprintf("race-%d-post", r), HoldID: h.ID, Amount: 1000}); err != nil {
								t.Fatalf("round %d: post the winning hold: %v", r, err)
							}
						} else {
							debitWins++
						}
					case errors.InsufficientFunds:
					default:
						t.Fatalf("round %d: attempt %d: %v", r, i, errs[i])
					}
				}
				if wins != 1 {
					t.Fatalf("round %d: %d of two debits of the last £10 succeeded", r, wins)
				}
				b, err := f.l.Balance(f.ctx, a, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				if b.Posted != 0 || b.Pending != 0 {
					t.Fatalf("round %d: the account holds %+v after spending its last £10", r, *b)
				}
			}
			t.Logf("debits won %d rounds, holds %d", debitWins, holdWins)
			checkStored(t, f.db)
			verify(t, f.db)
		})

		t.Run("exactly one of racing posts, voids and expiries of a hold wins", func(t *testing.T) {
			f := newConcFixture(t, db, ledger.Config{}, "hold-race-", 2, 2, 100000)
			a, dst := f.hot[0], f.hot[1]
			var retries atomic.Int64
			kinds := []string{"post", "void", "expire"}
			wins := map[string]int{}
			for r := range rounds(30, 6) {
				h, err := f.l.PlaceHold(f.ctx, ledger.PlaceHoldRequest{Key: fmt.Sprintf("hold-race-%d", r), AccountID: a, Destination: dst, Currency: "GBP", Amount: 700, ExpiresAt: time.Now().Add(time.Hour)})
				if err != nil {
					t.Fatal(err)
				}
				before, err := f.l.Balance(f.ctx, a, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				// Racer i posts, voids or expires the hold, through either
				// ledger; an expirer asks as of a time the hold is due. Who
				// does what turns each round: the goroutine made last tends
				// to run first.
				kind := func(i int) string { return kinds[(i+r)%len(kinds)] }
				const racers = 6
				var res [racers]*ledger.Hold
				var errs [racers]error
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range racers {
					l := retrying{l: f.ls[i%len(f.ls)], retries: &retries}
					wg.Go(func() {
						<-start
						key := fmt.Sprintf("hold-race-%d-%d", r, i)
						switch kind(i) {
						case "post":
							res[i], errs[i] = l.PostHold(f.ctx, ledger.PostHoldRequest{Key: key, HoldID: h.ID, Amount: 500})
						case "void":
							res[i], errs[i] = l.VoidHold(f.ctx, ledger.VoidHoldRequest{Key: key, HoldID: h.ID})
						case "expire":
							var expired []ledger.Hold
							expired, errs[i] = retry(l, func() ([]ledger.Hold, error) {
								return l.l.ExpireHolds(f.ctx, time.Now().Add(2*time.Hour), 100)
							})
							for _, e := range expired {
								if e.ID == h.ID {
									res[i] = &e
								}
							}
						}
					})
				}
				close(start)
				wg.Wait()
				winner := -1
				for i := range racers {
					switch c := errors.CodeOf(errs[i]); {
					case c == "" && res[i] != nil:
						if winner >= 0 {
							t.Fatalf("round %d: racers %d (%s) and %d (%s) both finished hold %s", r, winner, kind(winner), i, kind(i), h.ID)
						}
						winner = i
					case c == "" && kind(i) == "expire": // expired nothing of ours
					case c == errors.Conflict && kind(i) != "expire":
					default:
						t.Fatalf("round %d: racer %d (%s): %v, %v", r, i, kind(i), res[i], errs[i])
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: nobody finished hold %s", r, h.ID)
				}
				wins[kind(winner)]++
				got, err := f.l.GetHold(f.ctx, h.ID)
				if err != nil {
					t.Fatal(err)
				}
				after, err := f.l.Balance(f.ctx, a, time.Time{})
				if err != nil {
					t.Fatal(err)
				}
				wantStatus, wantPosted := map[string]ledger.HoldStatus{"post": ledger.HoldPosted, "void": ledger.HoldVoided, "expire": ledger.HoldExpired}[kind(winner)], before.Posted
				if kind(winner) == "post" {
					wantPosted -= 500
				}
				if got.Status != wantStatus || got.Amount != 0 || diffHold(got, res[winner]) != "" {
					t.Fatalf("round %d: racer %d won with %+v, but the hold is %+v", r, winner, *res[winner], *got)
				}
				if after.Posted != wantPosted || after.Pending != before.Pending-700 {
					t.Fatalf("round %d: balance %+v -> %+v after racer %d won", r, *before, *after, winner)
				}
			}
			t.Logf("wins %v; %d calls retried after a retryable error", wins, retries.Load())
			checkStored(t, f.db)
			verify(t, f.db)
		})
	})
}

// hammer runs many goroutines of random writes on a few hot accounts
// through instances ledgers sharing db, watching them with a concurrent
// reader, and then accounts for every write.
func hammer(t *testing.T, db *store.DB, prefix string, instances int) {
	const goroutines = 50
	var notified atomic.Int64
	reg := prometheus.NewRegistry()
	cfg := ledger.Config{Notify: func() { notified.Add(1) }, Metrics: reg}
	f := newConcFixture(t, db, cfg, prefix, instances, 4, 5000)
	const setupWrites = 1 + 4 + 4
	base := countRows(t, f.db)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	// A reader watches the hot accounts throughout: available funds
	// must never be seen negative, and every snapshot must verify.
	stop := make(chan struct{})
	var reads atomic.Int64
	readerDone := make(chan []string)
	go func() {
		var errs []string
		for {
			select {
			case <-stop:
				readerDone <- errs
				return
			default:
			}
			for _, id := range f.hot {
				b, err := f.l.Balance(f.ctx, id, time.Time{})
				if err != nil {
					errs = append(errs, fmt.Sprintf("Balance(%s): %v", id, err))
					continue
				}
				if b.Available < 0 || b.Posted-b.Pending < 0 {
					errs = append(errs, fmt.Sprintf("account %s seen below its limit: %+v", id, *b))
				}
			}
			if err := ledger.Verify(f.ctx, f.db); err != nil {
				errs = append(errs, fmt.Sprintf("Verify while writing: %v", err))
			}
			reads.Add(1)
		}
	}()

	var retries, calls atomic.Int64
	workers := make([]*cWorker, goroutines)
	var wg sync.WaitGroup
	for i := range workers {
		w := &cWorker{f: f, l: retrying{l: f.ls[i%len(f.ls)], retries: &retries, calls: &calls}, n: i, rng: rand.New(rand.NewPCG(seed, uint64(i))), posted: map[string]int64{}}
		workers[i] = w
		wg.Go(func() {
			for range hammerOps() {
				w.step()
			}
		})
	}
	wg.Wait()
	close(stop)
	for _, e := range <-readerDone {
		t.Error(e)
	}
	t.Logf("%d goroutines × %d ops on %d ledgers; %d writes sent again after a retryable error; the reader made %d passes", goroutines, hammerOps(), instances, retries.Load(), reads.Load())

	// Every worker's expectations.
	posted := map[string]int64{f.fund: -5000 * int64(len(f.hot))}
	for _, id := range f.hot {
		posted[id] = 5000
	}
	pending := map[string]int64{}
	var successes []success
	for _, w := range workers {
		for _, e := range w.errs {
			t.Error(e)
		}
		for id, d := range w.posted {
			posted[id] += d
		}
		for _, h := range w.holds {
			pending[h.AccountID] += h.Amount
		}
		successes = append(successes, w.done...)
	}
	if len(successes) < goroutines {
		t.Fatalf("only %d writes succeeded: the test exercised little", len(successes))
	}

	var total int64
	for _, id := range append([]string{f.fund}, f.hot...) {
		b, err := f.l.Balance(f.ctx, id, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		total += b.Posted
		if b.Posted != posted[id] || b.Pending != pending[id] {
			t.Errorf("account %s: posted %d pending %d; the successes add up to posted %d pending %d", id, b.Posted, b.Pending, posted[id], pending[id])
		}
		if id != f.fund && b.Available < 0 {
			t.Errorf("account %s ended below its limit: %+v", id, *b)
		}
	}
	if total != 0 {
		t.Errorf("posted balances sum to %d, not zero", total)
	}
	after := countRows(t, f.db)
	if got := after.Transfers - base.Transfers; got != int64(len(successes)) {
		t.Errorf("%d writes recorded, %d succeeded", got, len(successes))
	}
	checkStored(t, f.db)
	verify(t, f.db)
	checkVisibleOnce(t, f, successes)

	// Every write was counted by the metrics, and commits woke the relay.
	var counted float64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "corebank_ledger_writes_total" {
			for _, m := range mf.GetMetric() {
				counted += m.GetCounter().GetValue()
			}
		}
	}
	if want := float64(calls.Load() + setupWrites); counted != want {
		t.Errorf("corebank_ledger_writes_total counts %v writes, %v were made", counted, want)
	}
	if n := notified.Load(); n < 1 || n > int64(len(successes)+setupWrites) {
		t.Errorf("Notify called %d times for %d successful writes", n, len(successes)+setupWrites)
	}
}

// checkVisibleOnce reads the history of every account and checks each
// success appears in the history of each account it touched as exactly one
// write with its key, and nothing else appears but the fixture's writes.
func checkVisibleOnce(t *testing.T, f *concFixture, successes []success) {
	t.Helper()
	type seen struct {
		transfers map[string]*ledger.Transfer // id -> write
		entries   map[string]int              // write id -> entries in this history
	}
	byAccount := map[string]*seen{}
	keyOf := map[string]*ledger.Transfer{} // transfer id -> transfer, over all histories
	for _, id := range append([]string{f.fund}, f.hot...) {
		s := &seen{transfers: map[string]*ledger.Transfer{}, entries: map[string]int{}}
		byAccount[id] = s
		for _, e := range fullHistory(t, f.ctx, f.l, id, 500) {
			tr, ok := keyOf[e.TransferID]
			if !ok {
				var err error
				if tr, err = f.l.GetTransfer(f.ctx, e.TransferID); err != nil {
					t.Fatalf("GetTransfer(%s): %v", e.TransferID, err)
				}
				keyOf[e.TransferID] = tr
			}
			s.transfers[tr.ID] = tr
			s.entries[tr.ID]++
		}
	}
	// Each write's key names at most one write in all.
	idByKey := map[string]string{}
	for id, tr := range keyOf {
		if other, ok := idByKey[tr.Key]; ok && other != id {
			t.Errorf("key %s names two writes, %s and %s", tr.Key, other, id)
		}
		idByKey[tr.Key] = id
	}
	want := map[string]bool{}
	for _, s := range successes {
		want[s.key] = true
		if len(s.accounts) == 0 {
			continue // it changed no balance: it need not be in a history
		}
		id, ok := idByKey[s.key]
		if !ok {
			t.Errorf("success %s (%s) is in no history", s.key, s.kind)
			continue
		}
		tr := keyOf[id]
		if tr.Kind != s.kind || (s.kind == ledger.KindTransfer && id != s.id) || (s.kind != ledger.KindTransfer && tr.HoldID != s.id) {
			t.Errorf("success %s (%s on %s) shows in history as %+v", s.key, s.kind, s.id, *tr)
		}
		for _, acct := range s.accounts {
			n := byAccount[acct].entries[id]
			if n == 0 || (s.kind == ledger.KindTransfer && n != 1) {
				t.Errorf("success %s (%s) has %d entries in the history of %s", s.key, s.kind, n, acct)
			}
		}
	}
	for key, id := range idByKey {
		if !want[key] && !f.setup[key] {
			t.Errorf("history holds write %s (key %s, %s) that no caller saw succeed", id, key, keyOf[id].Kind)
		}
	}
}

// retrying is a caller that does what the contract asks of callers: it
// sends a write that failed with a retryable code again, unchanged, with
// the same key.
type retrying struct {
	l       ledger.Service
	retries *atomic.Int64
	calls   *atomic.Int64 // if set, counts every call made
}

func retry[T any](r retrying, call func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		if r.calls != nil {
			r.calls.Add(1)
		}
		res, err := call()
		if err == nil || !errors.CodeOf(err).Retryable() || attempt == 10 {
			return res, err
		}
		r.retries.Add(1)
		time.Sleep(time.Duration(attempt) * time.Millisecond)
	}
}

func (r retrying) Transfer(ctx context.Context, req ledger.TransferRequest) (*ledger.Transfer, error) {
	return retry(r, func() (*ledger.Transfer, error) { return r.l.Transfer(ctx, req) })
}

func (r retrying) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (*ledger.Hold, error) {
	return retry(r, func() (*ledger.Hold, error) { return r.l.PlaceHold(ctx, req) })
}

func (r retrying) IncrementHold(ctx context.Context, req ledger.IncrementHoldRequest) (*ledger.Hold, error) {
	return retry(r, func() (*ledger.Hold, error) { return r.l.IncrementHold(ctx, req) })
}

func (r retrying) PostHold(ctx context.Context, req ledger.PostHoldRequest) (*ledger.Hold, error) {
	return retry(r, func() (*ledger.Hold, error) { return r.l.PostHold(ctx, req) })
}

func (r retrying) VoidHold(ctx context.Context, req ledger.VoidHoldRequest) (*ledger.Hold, error) {
	return retry(r, func() (*ledger.Hold, error) { return r.l.VoidHold(ctx, req) })
}
