package authorization_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// The gateway queues a reversal before it answers a request per its
// timeout policy; these are the promises QueueReversal makes.
func TestQueuedReversals(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		queued := func(t *testing.T) int {
			t.Helper()
			return count(t, db, `SELECT COUNT(*) FROM reversal_queue`)
		}
		reversals := func(t *testing.T, orig authorization.NetworkID) int {
			t.Helper()
			return count(t, db, `SELECT COUNT(*) FROM authorizations WHERE kind = 'reversal' AND original_key = '`+orig.Key()+`'`)
		}

		t.Run("bad requests are refused and queue nothing", func(t *testing.T) {
			n := e.net()
			for _, rr := range []authorization.ReversalRequest{
				{Network: n, Original: n},
				{Network: e.net()},
				{Network: e.net(), Original: e.net(), Amount: -1},
			} {
				wantCode(t, e.a.QueueReversal(ctx, rr), errors.BadRequest)
			}
			if got := queued(t); got != 0 {
				t.Fatalf("%d queued, want 0", got)
			}
		})

		t.Run("an original after its queued reversal is declined", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 400)
			rr := authorization.ReversalRequest{Network: e.net(), Original: req.Network}
			if err := e.a.QueueReversal(ctx, rr); err != nil {
				t.Fatal(err)
			}
			d := must(t)(e.a.Authorize(ctx, req))
			if d.Approved || d.Reason != authorization.AlreadyReversed || d.HoldID != "" {
				t.Fatalf("original = %+v, want declined already_reversed", d)
			}
			e.wantBalance(t, h.Account, 1000, 0)
			if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
				t.Fatalf("RecoverQueued = %d, %v; want 1", n, err)
			}
			rev := must(t)(e.a.ByNetworkID(ctx, rr.Network))
			if rev.Kind != authorization.KindReversal || rev.Amount != 0 || rev.OriginalID != d.ID {
				t.Errorf("reversal = %+v, want one of %s releasing nothing", rev, d.ID)
			}
			if got := queued(t); got != 0 {
				t.Errorf("%d still queued", got)
			}
		})

		t.Run("recovery releases an approval's hold, once", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 400)
			orig := must(t)(e.a.Authorize(ctx, req))
			rr := authorization.ReversalRequest{Network: e.net(), Original: req.Network}
			for range 2 { // queuing again is one promise
				if err := e.a.QueueReversal(ctx, rr); err != nil {
					t.Fatal(err)
				}
			}
			e.wantBalance(t, h.Account, 1000, 400) // promised, not yet done
			if again := must(t)(e.a.Authorize(ctx, req)); !again.Approved || again.HoldID != orig.HoldID {
				t.Errorf("retransmission = %+v, want the original approval", again)
			}
			if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
				t.Fatalf("RecoverQueued = %d, %v; want 1", n, err)
			}
			e.wantBalance(t, h.Account, 1000, 0)
			if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 0 {
				t.Fatalf("second RecoverQueued = %d, %v; want 0", n, err)
			}
			// Queued again after it was done: carried out as a repeat.
			if err := e.a.QueueReversal(ctx, rr); err != nil {
				t.Fatal(err)
			}
			if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
				t.Fatalf("RecoverQueued of a repeat = %d, %v; want 1", n, err)
			}
			e.wantBalance(t, h.Account, 1000, 0)
			if got := reversals(t, req.Network); got != 1 {
				t.Errorf("%d reversals recorded, want 1", got)
			}
			if got := queued(t); got != 0 {
				t.Errorf("%d still queued", got)
			}
		})

		t.Run("a Reverse or a read carries out the queued reversal", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			first, second := e.purchase(h, 300), e.purchase(h, 200)
			must(t)(e.a.Authorize(ctx, first))
			must(t)(e.a.Authorize(ctx, second))
			e.wantBalance(t, h.Account, 1000, 500)
			r1 := authorization.ReversalRequest{Network: e.net(), Original: first.Network}
			r2 := authorization.ReversalRequest{Network: e.net(), Original: second.Network}
			for _, rr := range []authorization.ReversalRequest{r1, r2} {
				if err := e.a.QueueReversal(ctx, rr); err != nil {
					t.Fatal(err)
				}
			}
			if d := must(t)(e.a.Reverse(ctx, r1)); d.Amount != 300 {
				t.Errorf("reverse = %+v, want 300 released", d)
			}
			e.wantBalance(t, h.Account, 1000, 200)
			if d := must(t)(e.a.ByNetworkID(ctx, r2.Network)); d.Kind != authorization.KindReversal || d.Amount != 200 {
				t.Errorf("read of the queued reversal = %+v, want it carried out, 200 released", d)
			}
			e.wantBalance(t, h.Account, 1000, 0)
			if got := queued(t); got != 0 {
				t.Errorf("%d still queued", got)
			}
		})

		t.Run("a restart carries out what was queued", func(t *testing.T) {
			h := e.holder(1000, card.Controls{})
			req := e.purchase(h, 700)
			must(t)(e.a.Authorize(ctx, req))
			if err := e.a.QueueReversal(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network}); err != nil {
				t.Fatal(err)
			}
			// On PostgreSQL another process may be at work on fresh rows:
			// Open takes those older than a minute.
			e.clk.Add(2 * time.Minute)
			e.another(t, db, nil) // its Open carries out the queue
			e.wantBalance(t, h.Account, 1000, 0)
			if got := queued(t); got != 0 {
				t.Errorf("%d still queued", got)
			}
		})

		t.Run("reversing an incremental undoes the increment, once", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{})
			pre := e.purchase(h, 5000)
			pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
			orig := must(t)(e.a.Authorize(ctx, pre))
			inc := e.incremental(h, pre.Network, 2000)
			must(t)(e.a.Increment(ctx, inc))
			e.wantBalance(t, h.Account, 10_000, 7000)
			rev := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network}))
			if rev.Amount != 2000 || rev.HoldID == "" || rev.HoldID == orig.HoldID {
				t.Fatalf("reversal = %+v, want 2000 released and a new hold", rev)
			}
			e.wantBalance(t, h.Account, 10_000, 5000)
			if got, _ := e.a.Get(ctx, orig.ID); got.Outstanding != 5000 || got.HoldID != rev.HoldID {
				t.Errorf("original = %+v, want 5000 outstanding on the new hold", got)
			}
			// A second reversal of the same incremental, under other ids.
			again := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network}))
			if again.Amount != 0 {
				t.Errorf("second reversal = %+v, want nothing released", again)
			}
			e.wantBalance(t, h.Account, 10_000, 5000)
			// Then the original itself.
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
			e.wantBalance(t, h.Account, 10_000, 0)
		})

		// The network, told 91 for a late increment, reduces the
		// original to a new total; the queued reversal of the increment
		// then must not take it off again.
		t.Run("a new total for the original covers its increments", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{})
			pre := e.purchase(h, 5000)
			pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
			must(t)(e.a.Authorize(ctx, pre))
			inc := e.incremental(h, pre.Network, 2000)
			must(t)(e.a.Increment(ctx, inc))
			rr := authorization.ReversalRequest{Network: e.net(), Original: inc.Network}
			if err := e.a.QueueReversal(ctx, rr); err != nil {
				t.Fatal(err)
			}
			e.clk.Add(time.Second)
			must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 4000}))
			e.wantBalance(t, h.Account, 10_000, 4000)
			if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
				t.Fatalf("RecoverQueued = %d, %v; want 1", n, err)
			}
			if d := must(t)(e.a.ByNetworkID(ctx, rr.Network)); d.Amount != 0 {
				t.Errorf("reversal of the covered increment = %+v, want nothing released", d)
			}
			e.wantBalance(t, h.Account, 10_000, 4000)

			// An increment after a reduction is still undone by its reversal.
			inc2 := e.incremental(h, pre.Network, 1000)
			e.clk.Add(time.Second)
			must(t)(e.a.Increment(ctx, inc2))
			e.wantBalance(t, h.Account, 10_000, 5000)
			if d := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc2.Network})); d.Amount != 1000 {
				t.Errorf("reversal of the later increment = %+v, want 1000 released", d)
			}
			e.wantBalance(t, h.Account, 10_000, 4000)
		})

		t.Run("a reversal whose ids are its increment's original is refused, not hung", func(t *testing.T) {
			h := e.holder(10_000, card.Controls{})
			never := e.net() // an original never seen
			inc := e.incremental(h, never, 2000)
			must(t)(e.a.Increment(ctx, inc))
			type answer struct {
				d   *authorization.Decision
				err error
			}
			done := make(chan answer, 1)
			go func() {
				d, err := e.a.Reverse(ctx, authorization.ReversalRequest{Network: never, Original: inc.Network})
				done <- answer{d, err}
			}()
			select {
			case a := <-done:
				if a.err != nil || a.d.Amount != 0 || !strings.Contains(a.d.Detail, "nothing_to_release") {
					t.Errorf("Reverse = %+v, %v; want recorded releasing nothing", a.d, a.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Reverse waits for its own lock")
			}
			e.wantBalance(t, h.Account, 10_000, 0)
		})
	})
}

// An original whose reversal is queued is as good as reversed to what
// builds on it: a stand-in advice naming it places its own hold (the
// network paid), and an incremental of it is declined.
func TestQueuedReversalCountsForWhatBuildsOnIt(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		h := e.holder(10_000, card.Controls{})
		req := e.purchase(h, 1000)
		must(t)(e.a.Authorize(ctx, req)) // the late approval the network never heard
		if err := e.a.QueueReversal(ctx, authorization.ReversalRequest{Network: e.net(), Original: req.Network}); err != nil {
			t.Fatal(err)
		}
		inc := e.purchase(h, 500)
		inc.Kind, inc.Original = authorization.KindIncremental, &req.Network
		if d := must(t)(e.a.Increment(ctx, inc)); d.Approved {
			t.Errorf("incremental of an original whose reversal is queued = %+v, want declined", d)
		}
		adv := e.purchase(h, 1000)
		adv.Kind, adv.StandIn, adv.Original, adv.CVC, adv.Expiry = authorization.KindAdvice, true, &req.Network, "", ""
		if d := must(t)(e.a.Advise(ctx, adv)); !d.Approved || d.Detail == "confirms_original" {
			t.Errorf("advice = %+v, want its own forced hold", d)
		}
		if n, err := e.a.RecoverQueued(ctx, 0); err != nil || n != 1 {
			t.Fatalf("RecoverQueued = %d, %v; want 1", n, err)
		}
		// The late approval released; the network's stand-in held.
		e.wantBalance(t, h.Account, 10_000, 1000)
	})
}

// A new total for an original applied before an increment of it grew the
// hold does not cover the increment: its reversal takes it off.
func TestNewTotalBeforeTheIncrementDoesNotCoverIt(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, "authorization")
	e := newEnv(t, db)
	g := &gatedCard{Service: e.cards, armed: make(chan struct{}, 1), gate: make(chan struct{})}
	a := e.another(t, db, func(c *authorization.Config) { c.Card = g })
	h := e.holder(10_000, card.Controls{})
	pre := e.purchase(h, 5000)
	pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
	must(t)(a.Authorize(ctx, pre))
	inc := e.incremental(h, pre.Network, 2000)
	g.arm.Store(true)
	done := make(chan *authorization.Decision, 1)
	go func() {
		d, err := a.Increment(ctx, inc)
		if err != nil {
			t.Error(err)
		}
		done <- d
	}()
	<-g.armed // the increment is being decided: it has not grown the hold
	e.clk.Add(time.Second)
	must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 4000}))
	e.wantBalance(t, h.Account, 10_000, 4000)
	close(g.gate)
	if d := <-done; d == nil || !d.Approved {
		t.Fatalf("increment = %+v, want approved on the new total", d)
	}
	e.wantBalance(t, h.Account, 10_000, 6000)
	if d := must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network})); d.Amount != 2000 {
		t.Errorf("reversal of the increment = %+v, want 2000 released", d)
	}
	e.wantBalance(t, h.Account, 10_000, 4000)
}

// gatedCard holds its next Lookup, once armed, until gate closes.
type gatedCard struct {
	card.Service
	arm   atomic.Bool
	armed chan struct{} // receives once a lookup is held
	gate  chan struct{}
}

func (g *gatedCard) Lookup(ctx context.Context, pan string) (*card.Card, error) {
	if g.arm.CompareAndSwap(true, false) {
		g.armed <- struct{}{}
		<-g.gate
	}
	return g.Service.Lookup(ctx, pan)
}

// An increment, then a new total for its original, at one instant of the
// clock: the new total still covers the increment (their order is kept by
// their stamps, never equal), and the increment's reversal releases nothing.
func TestNewTotalAtTheSameInstantCoversTheIncrement(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, storetest.SQLite(t, "authorization"))
	h := e.holder(10_000, card.Controls{})
	pre := e.purchase(h, 5000)
	pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
	must(t)(e.a.Authorize(ctx, pre))
	inc := e.incremental(h, pre.Network, 2000)
	must(t)(e.a.Increment(ctx, inc))
	must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 6000}))
	e.wantBalance(t, h.Account, 10_000, 6000)
	if d := must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network})); d.Amount != 0 {
		t.Errorf("reversal of the covered increment = %+v, want nothing released", d)
	}
	e.wantBalance(t, h.Account, 10_000, 6000)
}
