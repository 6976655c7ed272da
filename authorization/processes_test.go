package authorization_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store/storetest"
)

// An original decided in one process and its reversal in another, at the
// same moment, on one PostgreSQL database: whichever lands first, no money
// stays held for a reversed payment.
func TestReversalAndOriginalAcrossProcesses(t *testing.T) {
	db := storetest.Postgres(t, "authorization")
	ctx := context.Background()
	e := newEnv(t, db)
	other := e.another(t, db, nil)
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 120 {
		h := e.holder(100_000, card.Controls{})
		req := e.purchase(h, 600)
		rev := authorization.ReversalRequest{Network: e.net(), Original: req.Network}
		jitter := time.Duration(rng.IntN(6000)) * time.Microsecond
		var d, rd *authorization.Decision
		var derr, rerr error
		var wg sync.WaitGroup
		wg.Go(func() { d, derr = e.a.Authorize(ctx, req) })
		wg.Go(func() { time.Sleep(jitter); rd, rerr = other.Reverse(ctx, rev) })
		wg.Wait()
		if derr != nil || rerr != nil {
			t.Fatalf("round %d: %v, %v", round, derr, rerr)
		}
		if b := e.balance(h.Account); b.Pending != 0 {
			t.Fatalf("round %d (jitter %v): reversal %s/%s, original approved=%v (%s): %d still held for a reversed payment",
				round, jitter, rd.Reason, rd.Detail, d.Approved, d.Reason, b.Pending)
		}
	}
}

// hookLedger calls before and after around each Transfer and PlaceHold,
// and fails the first undo (a key ending ":undo") when failUndo is set.
type hookLedger struct {
	ledger.Service
	before, after func()
	failUndo      atomic.Bool
}

func (h *hookLedger) around(key string, call func() error) error {
	if strings.HasSuffix(key, ":undo") {
		if h.failUndo.CompareAndSwap(true, false) {
			return errors.New(errors.Unavailable, "ledger away for one call")
		}
		return call()
	}
	if h.before != nil {
		h.before()
	}
	err := call()
	if h.after != nil {
		h.after()
	}
	return err
}

func (h *hookLedger) Transfer(ctx context.Context, req ledger.TransferRequest) (t *ledger.Transfer, err error) {
	err = h.around(req.Key, func() error { t, err = h.Service.Transfer(ctx, req); return err })
	return t, err
}

func (h *hookLedger) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (hd *ledger.Hold, err error) {
	err = h.around(req.Key, func() error { hd, err = h.Service.PlaceHold(ctx, req); return err })
	return hd, err
}

func (h *hookLedger) VoidHold(ctx context.Context, req ledger.VoidHoldRequest) (hd *ledger.Hold, err error) {
	err = h.around(req.Key, func() error { hd, err = h.Service.VoidHold(ctx, req); return err })
	return hd, err
}

// A 0200 (or a purchase) left pending in process B, whose transfer (hold)
// is refused for want of funds, is completed by the network's
// retransmission in process A after money arrived: A's call goes through,
// B records the decline first. What A moved (held) is given back: the
// books agree with the decline. When the ledger is away for A's undo,
// the undo is recorded with A's finding, and RecoverUndos carries it out
// later, once.
func TestDecidedTwiceAcrossProcesses(t *testing.T) {
	for _, tc := range []struct {
		name      string
		financial bool
		failUndo  bool
	}{
		{"financial", true, false},
		{"purchase", false, false},
		{"financial, undo failing once", true, true},
		{"purchase, undo failing once", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Postgres(t, "authorization")
			e := newEnv(t, db)
			h := e.holder(100, card.Controls{})
			req := e.purchase(h, 600)
			if tc.financial {
				req.Kind, req.Channel, req.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
			}
			bRefused, aMoved, bDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
			var onceB, onceA sync.Once // only each process's first call is staged
			procB := e.another(t, db, func(c *authorization.Config) {
				c.Ledger = &hookLedger{Service: e.led, after: func() { onceB.Do(func() { close(bRefused); <-aMoved }) }}
			})
			var salary sync.Once
			ledA := &hookLedger{Service: e.led,
				before: func() {
					salary.Do(func() { // a salary arrives between the two calls
						if _, err := e.led.Transfer(ctx, ledger.TransferRequest{Key: "salary", Legs: []ledger.Leg{{AccountID: e.fund, Amount: -1000, Currency: "GBP"}, {AccountID: h.Account, Amount: 1000, Currency: "GBP"}}}); err != nil {
							t.Error(err)
						}
					})
				},
				after: func() { onceA.Do(func() { close(aMoved); <-bDone }) },
			}
			ledA.failUndo.Store(tc.failUndo)
			procA := e.another(t, db, func(c *authorization.Config) { c.Ledger = ledA })
			decide := func(a *authorization.Authorizer) (*authorization.Decision, error) {
				if tc.financial {
					return a.Financial(ctx, req)
				}
				return a.Authorize(ctx, req)
			}
			var dA, dB *authorization.Decision
			var errA, errB error
			var wg sync.WaitGroup
			wg.Go(func() { defer close(bDone); dB, errB = decide(procB) })
			<-bRefused
			wg.Go(func() { dA, errA = decide(procA) })
			wg.Wait()
			if errA != nil || errB != nil {
				t.Fatal(errA, errB)
			}
			if dA.Approved || dB.Approved {
				t.Fatalf("answers %s and %s; want the decline both times (B recorded it first)", dA.Reason, dB.Reason)
			}
			if tc.failUndo {
				if ledA.failUndo.Load() {
					t.Fatal("A made no undo")
				}
				// A's call stands until recovery: the money is moved (held).
				if tc.financial {
					e.wantBalance(t, h.Account, 500, 0)
				} else {
					e.wantBalance(t, h.Account, 1100, 600)
				}
				if got := count(t, db, `SELECT COUNT(*) FROM undos`); got != 1 {
					t.Fatalf("%d undos recorded; want 1", got)
				}
				for i, want := range []int{1, 0} { // the second run finds nothing left
					n, err := procA.RecoverUndos(ctx, 0)
					if err != nil || n != want {
						t.Fatalf("RecoverUndos run %d: %d, %v; want %d", i+1, n, err, want)
					}
				}
			}
			e.wantBalance(t, h.Account, 1100, 0) // 100 and the salary; nothing debited or held for the decline
			if got := count(t, db, `SELECT COUNT(*) FROM undos`); got != 0 {
				t.Fatalf("%d undos left; want none", got)
			}
		})
	}
}
