package authorization_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// reversalLedger is a ledger on which one call goes wrong once: the call
// with key fail fails without being made (the connection lost before it),
// and the call with key lose is made and its answer lost (the process dies,
// or the connection drops, before the reversal is recorded).
type reversalLedger struct {
	ledger.Service
	mu         sync.Mutex
	fail, lose string
}

func (l *reversalLedger) set(fail, lose string) {
	l.mu.Lock()
	l.fail, l.lose = fail, lose
	l.mu.Unlock()
}

// call makes a ledger call with key: failed before it is made if key is
// to fail, its answer lost after if key is to be lost.
func call[T any](l *reversalLedger, key string, do func() (*T, error)) (*T, error) {
	l.mu.Lock()
	fail := key != "" && key == l.fail
	if fail {
		l.fail = ""
	}
	l.mu.Unlock()
	if fail {
		return nil, errors.New(errors.Unavailable, "connection lost")
	}
	v, err := do()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && key != "" && key == l.lose {
		l.lose = ""
		return nil, errors.New(errors.Unavailable, "connection lost")
	}
	return v, err
}

func (l *reversalLedger) VoidHold(ctx context.Context, req ledger.VoidHoldRequest) (*ledger.Hold, error) {
	return call(l, req.Key, func() (*ledger.Hold, error) { return l.Service.VoidHold(ctx, req) })
}

func (l *reversalLedger) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (*ledger.Hold, error) {
	return call(l, req.Key, func() (*ledger.Hold, error) { return l.Service.PlaceHold(ctx, req) })
}

func (l *reversalLedger) Transfer(ctx context.Context, req ledger.TransferRequest) (*ledger.Transfer, error) {
	return call(l, req.Key, func() (*ledger.Transfer, error) { return l.Service.Transfer(ctx, req) })
}

// reversedEvents counts the authorization.reversed events of a reversal.
func reversedEvents(t *testing.T, db *store.DB, id string) int {
	t.Helper()
	n := 0
	for _, ev := range outbox(t, db) {
		var d authorization.Decision
		if ev.Topic == authorization.TopicReversed && json.Unmarshal(ev.Payload, &d) == nil && d.ID == id {
			n++
		}
	}
	return n
}

// preauth approves a pre-authorization of amount on h with a.
func (e *env) preauth(t *testing.T, a *authorization.Authorizer, h *holder, amount int64) authorization.Request {
	t.Helper()
	pre := e.purchase(h, amount)
	pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
	if d := must(t)(a.Authorize(context.Background(), pre)); !d.Approved {
		t.Fatalf("pre-authorization %+v", d)
	}
	return pre
}

// financial approves a 0200 cash withdrawal of amount on h with a.
func (e *env) financial(t *testing.T, a *authorization.Authorizer, h *holder, amount int64) authorization.Request {
	t.Helper()
	req := e.purchase(h, amount)
	req.Kind, req.Channel, req.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
	if d := must(t)(a.Financial(context.Background(), req)); !d.Approved {
		t.Fatalf("financial %+v", d)
	}
	return req
}

// A 0200 of 5000 is reversed twice under different ids (the gateway's own
// late reversal and the network's 0420, or a partial 0400 then a full
// one). The first's refund is made but its answer lost, then the second
// comes, then the first is retried. The customer gets back 5000 once: the
// second completes the first before it computes what is left.
func TestReversalRefundsOnceAcrossIDs(t *testing.T) {
	for _, firstKeep := range []int64{0, 2000} {
		storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
			ctx := context.Background()
			e := newEnv(t, db)
			rl := &reversalLedger{Service: e.led}
			a := e.another(t, db, func(c *authorization.Config) { c.Ledger = rl })
			h := e.holder(10_000, card.Controls{})
			req := e.financial(t, a, h, 5000)
			e.wantBalance(t, h.Account, 5000, 0)

			first := authorization.ReversalRequest{Network: e.net(), Original: req.Network, Amount: firstKeep}
			rl.set("", first.Network.Key()+":refund")
			_, err := a.Reverse(ctx, first)
			wantCode(t, err, errors.Unavailable)
			e.wantBalance(t, h.Account, 10_000-firstKeep, 0) // refunded, unrecorded

			second := authorization.ReversalRequest{Network: e.net(), Original: req.Network, Advice: true}
			d2 := must(t)(a.Reverse(ctx, second))
			d1 := must(t)(a.Reverse(ctx, first)) // retried
			if d1.Amount != 5000-firstKeep || d2.Amount != firstKeep || d1.TransferID == "" {
				t.Errorf("first keeps %d: reversals released %d (%+v) and %d (%+v), want %d and %d",
					firstKeep, d1.Amount, d1, d2.Amount, d2, 5000-firstKeep, firstKeep)
			}
			e.wantBalance(t, h.Account, 10_000, 0)
			if b := e.balance(e.settlement); b.Posted != 0 {
				t.Errorf("first keeps %d: settlement posted %d, want 0", firstKeep, b.Posted)
			}
			if o := must(t)(a.ByNetworkID(ctx, req.Network)); o.Outstanding != 0 {
				t.Errorf("original outstanding %d, want 0", o.Outstanding)
			}
			if n := reversedEvents(t, db, d1.ID); n != 1 {
				t.Errorf("%d reversed events of the first reversal, want 1", n)
			}
		})
	}
}

// A partial reversal interrupted between its new hold and the void of the
// old one, then a full reversal of the same original under other ids: the
// full one completes the partial one first, then releases what remains.
// The records say nothing is outstanding, the ledger holds nothing, and
// the interrupted reversal, retransmitted, answers what it did.
func TestInterruptedPartialReversalIsCompletedFirst(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		rl := &reversalLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = rl })
		h := e.holder(10_000, card.Controls{})
		pre := e.preauth(t, a, h, 5000)

		r1 := authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 2000}
		rl.set(r1.Network.Key()+":void", "")
		_, err := a.Reverse(ctx, r1)
		wantCode(t, err, errors.Unavailable)
		e.wantBalance(t, h.Account, 10_000, 7000) // both holds

		// The network reverses the whole authorization under other ids.
		full := must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
		if full.Amount != 2000 {
			t.Errorf("full reversal released %d, want 2000 (the rest after the partial one): %+v", full.Amount, full)
		}
		o := must(t)(a.ByNetworkID(ctx, pre.Network))
		if o.Outstanding != 0 {
			t.Fatalf("original outstanding %d, want 0", o.Outstanding)
		}
		if held, err := e.led.GetHold(ctx, o.HoldID); err != nil || held.Status != ledger.HoldVoided || held.Authorized != 2000 {
			t.Errorf("original's hold %+v, %v; want the 2000 replacement, voided", held, err)
		}
		e.wantBalance(t, h.Account, 10_000, 0)

		// The interrupted reversal retransmitted: it was completed.
		d := must(t)(a.Reverse(ctx, r1))
		if d.Amount != 3000 || d.HoldID != o.HoldID || d.Detail != "" {
			t.Errorf("retransmitted partial reversal = %+v, want 3000 released onto hold %s", d, o.HoldID)
		}
		e.wantBalance(t, h.Account, 10_000, 0)
	})
}

// Two full reversals of one pre-authorization under different ids, the
// first's void made but its answer lost: the second completes the first
// (the original is released once, by the first) instead of finding the
// hold voided and leaving the original outstanding.
func TestSecondFullReversalAfterLostVoidAnswer(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		rl := &reversalLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = rl })
		h := e.holder(10_000, card.Controls{})
		pre := e.preauth(t, a, h, 5000)

		first := authorization.ReversalRequest{Network: e.net(), Original: pre.Network}
		rl.set("", first.Network.Key()+":void")
		_, err := a.Reverse(ctx, first)
		wantCode(t, err, errors.Unavailable)
		e.wantBalance(t, h.Account, 10_000, 0) // voided, unrecorded

		d2 := must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Advice: true}))
		if d2.Amount != 0 || d2.Detail != "advice,nothing_to_release" {
			t.Errorf("second reversal = %+v, want nothing to release", d2)
		}
		if o := must(t)(a.ByNetworkID(ctx, pre.Network)); o.Outstanding != 0 {
			t.Errorf("original outstanding %d after the second reversal, want 0", o.Outstanding)
		}
		d1 := must(t)(a.Reverse(ctx, first)) // retried
		if d1.Amount != 5000 || d1.Detail != "" {
			t.Errorf("first reversal = %+v, want 5000 released", d1)
		}
		if o := must(t)(a.ByNetworkID(ctx, pre.Network)); o.Outstanding != 0 {
			t.Errorf("original outstanding %d, want 0", o.Outstanding)
		}
		e.wantBalance(t, h.Account, 10_000, 0)
		if n := reversedEvents(t, db, d1.ID); n != 1 {
			t.Errorf("%d reversed events of the first reversal, want 1", n)
		}
	})
}

// A reversal whose ledger operation was made and whose record was not
// finished (the process died in between) is completed when the service
// starts again (RecoverPending), to what the ledger did, once: a full
// reversal's void, a partial one's new hold and void, a 0200's refund.
func TestPendingReversalRecoveredAtOpen(t *testing.T) {
	cases := []struct {
		name      string
		kept      int64  // what the reversal leaves outstanding
		financial bool   // the original is a 0200
		lose      string // the suffix of the ledger key whose answer is lost
	}{
		{"full", 0, false, ":void"},
		{"partial", 2000, false, ":void"},
		{"partial, died before the void", 2000, false, ":hold"},
		{"financial", 0, true, ":refund"},
		{"financial partial", 2000, true, ":refund"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				e := newEnv(t, db)
				rl := &reversalLedger{Service: e.led}
				a := e.another(t, db, func(cfg *authorization.Config) { cfg.Ledger = rl })
				h := e.holder(10_000, card.Controls{})
				var orig authorization.Request
				posted, pending := int64(10_000), int64(c.kept) // after the reversal
				if c.financial {
					orig = e.financial(t, a, h, 5000)
					posted, pending = 10_000-c.kept, 0
				} else {
					orig = e.preauth(t, a, h, 5000)
				}
				rev := authorization.ReversalRequest{Network: e.net(), Original: orig.Network, Amount: c.kept}
				rl.set("", rev.Network.Key()+c.lose)
				_, err := a.Reverse(ctx, rev)
				wantCode(t, err, errors.Unavailable)
				a.Close() // the process dies
				if c.lose == ":hold" {
					e.wantBalance(t, h.Account, posted, 5000+c.kept) // both holds, unrecorded
				} else {
					e.wantBalance(t, h.Account, posted, pending) // made, unrecorded
				}
				if n := count(t, db, `SELECT COUNT(*) FROM authorizations WHERE status = 'pending'`); n != 1 {
					t.Fatalf("%d records pending, want the reversal", n)
				}

				// It starts again; a minute later, so that on PostgreSQL the
				// record is old enough to be another process's no longer.
				e.clk.Add(2 * time.Minute)
				b := e.another(t, db, nil)
				if n := count(t, db, `SELECT COUNT(*) FROM authorizations WHERE status = 'pending'`); n != 0 {
					t.Errorf("%d records pending after Open, want none", n)
				}
				e.wantBalance(t, h.Account, posted, pending) // nothing more
				o := must(t)(b.ByNetworkID(ctx, orig.Network))
				if o.Outstanding != c.kept {
					t.Errorf("original outstanding %d, want %d", o.Outstanding, c.kept)
				}
				if !c.financial {
					held, err := e.led.GetHold(ctx, o.HoldID)
					if want := map[bool]ledger.HoldStatus{true: ledger.HoldPending, false: ledger.HoldVoided}[c.kept > 0]; err != nil || held.Status != want {
						t.Errorf("original's hold %+v, %v; want %s", held, err, want)
					}
				}
				d := must(t)(b.ByNetworkID(ctx, rev.Network))
				if d.Amount != 5000-c.kept {
					t.Errorf("reversal = %+v, want %d released", d, 5000-c.kept)
				}
				again := must(t)(b.Reverse(ctx, rev)) // retransmitted
				if again.ID != d.ID || again.Amount != d.Amount {
					t.Errorf("retransmitted reversal = %+v, want %+v", again, d)
				}
				if n, err := b.RecoverPending(ctx, 0); err != nil || n != 0 {
					t.Errorf("RecoverPending again = %d, %v; want nothing left", n, err)
				}
				e.wantBalance(t, h.Account, posted, pending)
				if n := reversedEvents(t, db, d.ID); n != 1 {
					t.Errorf("%d reversed events, want 1", n)
				}
			})
		})
	}
}

// The network stood in for a purchase and advised it (DE90 naming the
// purchase); its reversal of the transaction names the purchase too, not
// the advice. The hold the advice placed is released, once, whether the
// bank never saw the purchase or answered it late and reversed it itself.
// An advice that only confirmed the bank's own approval leaves the
// reversal to the purchase's hold.
func TestReversalOfAStoodInOriginalReleasesTheAdvice(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		standIn := func(h *holder, o authorization.NetworkID, amount int64) *authorization.Decision {
			t.Helper()
			adv := e.purchase(h, amount)
			adv.Kind, adv.StandIn, adv.Original, adv.CVC, adv.Expiry = authorization.KindAdvice, true, &o, "", ""
			d := must(t)(e.a.Advise(ctx, adv))
			if !d.Approved || d.HoldID == "" {
				t.Fatalf("stand-in advice %+v", d)
			}
			return d
		}

		// Never received: the advice holds 3000.
		h := e.holder(10_000, card.Controls{})
		o := e.net()
		adv := standIn(h, o, 3000)
		e.wantBalance(t, h.Account, 10_000, 3000)
		r := authorization.ReversalRequest{Network: e.net(), Original: o, Advice: true}
		d := must(t)(e.a.Reverse(ctx, r))
		if d.OriginalID != adv.ID || d.Amount != 3000 || !strings.Contains(d.Detail, "stand_in") {
			t.Errorf("reversal %+v, want 3000 released from advice %s", d, adv.ID)
		}
		e.wantBalance(t, h.Account, 10_000, 0)
		must(t)(e.a.Reverse(ctx, r)) // retransmitted
		must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: o}))
		e.wantBalance(t, h.Account, 10_000, 0)
		if got := must(t)(e.a.ByNetworkID(ctx, adv.Network)); got.Outstanding != 0 {
			t.Errorf("advice outstanding %d after its reversal", got.Outstanding)
		}
		// The purchase, arriving after all, is declined: it was reversed.
		late := e.purchase(h, 3000)
		late.Network = o
		if d := must(t)(e.a.Authorize(ctx, late)); d.Approved || d.Reason != authorization.AlreadyReversed {
			t.Errorf("original after its reversal: %+v", d)
		}

		// Answered late and reversed by the gateway (91), then stood in
		// for: the network's partial reversal reduces the advice's hold.
		h2 := e.holder(10_000, card.Controls{})
		p := e.purchase(h2, 4000)
		must(t)(e.a.Authorize(ctx, p))
		must(t)(e.a.Reverse(ctx, gatewayReversal(p.Network)))
		adv2 := standIn(h2, p.Network, 4000)
		e.wantBalance(t, h2.Account, 10_000, 4000)
		d = must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: p.Network, Amount: 1500}))
		if d.OriginalID != adv2.ID || d.Amount != 2500 {
			t.Errorf("partial reversal %+v, want 2500 released from advice %s", d, adv2.ID)
		}
		e.wantBalance(t, h2.Account, 10_000, 1500)

		// Confirming the bank's approval: the purchase's hold is released.
		h3 := e.holder(10_000, card.Controls{})
		p3 := e.purchase(h3, 2000)
		must(t)(e.a.Authorize(ctx, p3))
		conf := e.purchase(h3, 2000)
		conf.Kind, conf.StandIn, conf.Original, conf.CVC, conf.Expiry = authorization.KindAdvice, true, &p3.Network, "", ""
		if c := must(t)(e.a.Advise(ctx, conf)); c.Detail != "confirms_original" {
			t.Fatalf("confirming advice %+v", c)
		}
		d = must(t)(e.a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: p3.Network}))
		if d.Amount != 2000 || strings.Contains(d.Detail, "stand_in") {
			t.Errorf("reversal %+v, want 2000 released from the purchase", d)
		}
		e.wantBalance(t, h3.Account, 10_000, 0)
		if err := ledger.Verify(ctx, e.ledDB); err != nil {
			t.Fatal(err)
		}
	})
}

// pausedLedger is a ledger whose next GetHold, once armed, tells paused
// and waits for resume: a reversal computed and not yet written.
type pausedLedger struct {
	ledger.Service
	mu             sync.Mutex
	armed          bool
	paused, resume chan struct{}
}

func (l *pausedLedger) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	l.mu.Lock()
	pause := l.armed
	l.armed = false
	l.mu.Unlock()
	if pause {
		close(l.paused)
		<-l.resume
	}
	return l.Service.GetHold(ctx, id)
}

// Two partial reversals of one pre-authorization under different ids, in
// two processes sharing PostgreSQL: one computes what to keep, the other
// reverses meanwhile; the first, when it comes to write its reversal
// pending, finds the original changed and starts again, so it replaces the
// hold the other left, not the one it read. Then a reversal begun in one
// process and left pending (its answer lost) is completed by the other
// before it acts on the original.
func TestPartialReversalsAcrossProcesses(t *testing.T) {
	db := storetest.Postgres(t, "authorization")
	ctx := context.Background()
	e := newEnv(t, db)
	pl := &pausedLedger{Service: e.led, paused: make(chan struct{}), resume: make(chan struct{})}
	b := e.another(t, db, func(c *authorization.Config) { c.Ledger = pl })
	rl := &reversalLedger{Service: e.led}
	a := e.another(t, db, func(c *authorization.Config) { c.Ledger = rl })
	h := e.holder(10_000, card.Controls{})
	pre := e.preauth(t, a, h, 5000)

	pl.mu.Lock()
	pl.armed = true
	pl.mu.Unlock()
	var db1 *authorization.Decision
	var berr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		db1, berr = b.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 1000})
	}()
	<-pl.paused // b has read the original: 5000 on its first hold
	da := must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 3000}))
	close(pl.resume)
	<-done
	if berr != nil {
		t.Fatal(berr)
	}
	if da.Amount != 2000 || db1.Amount != 2000 {
		t.Errorf("reversals released %d and %d, want 2000 each", da.Amount, db1.Amount)
	}
	o := must(t)(a.ByNetworkID(ctx, pre.Network))
	if o.Outstanding != 1000 || o.HoldID != db1.HoldID {
		t.Errorf("original %+v, want 1000 outstanding on %s", o, db1.HoldID)
	}
	e.wantBalance(t, h.Account, 10_000, 1000)

	// a's next reversal loses its void's answer; b reverses the rest.
	r := authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 400}
	rl.set("", r.Network.Key()+":void")
	_, err := a.Reverse(ctx, r)
	wantCode(t, err, errors.Unavailable)
	full := must(t)(b.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
	if full.Amount != 400 {
		t.Errorf("full reversal released %d, want the 400 left by the pending one", full.Amount)
	}
	if d := must(t)(a.Reverse(ctx, r)); d.Amount != 600 {
		t.Errorf("pending reversal, retransmitted = %+v, want 600 released", d)
	}
	if o := must(t)(b.ByNetworkID(ctx, pre.Network)); o.Outstanding != 0 {
		t.Errorf("original outstanding %d, want 0", o.Outstanding)
	}
	e.wantBalance(t, h.Account, 10_000, 0)
}

// A reader of an original (clearing, about to post its hold) sees it as
// the reversals pending on it leave it: their ledger answers lost, reading
// the original completes them, by its network id or by reference. Without
// that, clearing would post the hold a partial reversal has replaced.
func TestReadingAnOriginalCompletesItsPendingReversals(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		rl := &reversalLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = rl })
		for _, read := range []string{"network id", "reference"} {
			h := e.holder(10_000, card.Controls{})
			pre := e.preauth(t, a, h, 5000)
			first := must(t)(a.ByNetworkID(ctx, pre.Network))
			r := authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 2000}
			rl.set("", r.Network.Key()+":void") // the replacement placed, the old hold voided, the answer lost
			_, err := a.Reverse(ctx, r)
			wantCode(t, err, errors.Unavailable)

			var o *authorization.Decision
			if read == "network id" {
				o = must(t)(a.ByNetworkID(ctx, pre.Network))
			} else {
				o = must(t)(a.ByReference(ctx, authorization.ReferenceQuery{CardID: first.CardID, RRN: first.Network.RRN, AuthCode: first.AuthCode}))
			}
			if o.Outstanding != 2000 || o.HoldID == first.HoldID {
				t.Errorf("read by %s: %+v, want 2000 outstanding on a new hold (not %s)", read, o, first.HoldID)
			}
			e.wantBalance(t, h.Account, 10_000, 2000)
			if d := must(t)(a.Reverse(ctx, r)); d.Amount != 3000 || d.HoldID != o.HoldID {
				t.Errorf("the reversal retransmitted = %+v, want 3000 released, hold %s", d, o.HoldID)
			}
			e.wantBalance(t, h.Account, 10_000, 2000)
		}
	})
}
