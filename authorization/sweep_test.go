package authorization_test

import (
	"context"
	"fmt"
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

// poisonLedger fails PlaceHold for the keys in poison always (Internal),
// and loses the answers of the others while losing is set (the hold made,
// Unavailable returned).
type poisonLedger struct {
	ledger.Service
	mu     sync.Mutex
	poison map[string]bool
	losing bool
}

func (l *poisonLedger) set(poison []string, losing bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.poison, l.losing = map[string]bool{}, losing
	for _, k := range poison {
		l.poison[k] = true
	}
}

func (l *poisonLedger) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (*ledger.Hold, error) {
	l.mu.Lock()
	poisoned, losing := l.poison[req.Key], l.losing
	l.mu.Unlock()
	if poisoned {
		return nil, errors.New(errors.Internal, "ledger bug")
	}
	h, err := l.Service.PlaceHold(ctx, req)
	if err == nil && losing {
		return nil, errors.New(errors.Unavailable, "connection lost")
	}
	return h, err
}

// Pending records that cannot be completed (older than the rest, so first
// in every sweep, and a full query's worth of them) do not keep recovery
// from completing the others.
func TestRecoverPendingGoesPastThoseThatFail(t *testing.T) {
	for _, tc := range []struct{ bad, good int }{{1, 1}, {1, 100}, {101, 2}} {
		t.Run(fmt.Sprintf("%d failing, %d others", tc.bad, tc.good), func(t *testing.T) {
			storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				e := newEnv(t, db)
				pl := &poisonLedger{Service: e.led}
				a := e.another(t, db, func(c *authorization.Config) { c.Ledger = pl })
				h := e.holder(1_000_000, card.Controls{})
				var bad []string
				for range tc.bad {
					req := e.purchase(h, 100)
					bad = append(bad, req.Network.Key())
					pl.set(bad, false)
					if _, err := a.Authorize(ctx, req); err == nil {
						t.Fatal("a poisoned decision succeeded")
					}
				}
				e.clk.Add(time.Second)
				pl.set(bad, true)
				var good []authorization.Request
				for range tc.good {
					req := e.purchase(h, 1)
					if _, err := a.Authorize(ctx, req); err == nil {
						t.Fatal("the lost answer was not lost")
					}
					good = append(good, req)
				}
				pl.set(bad, false)
				e.wantBalance(t, h.Account, 1_000_000, int64(tc.good)) // held, records pending
				e.clk.Add(time.Hour)
				n, err := a.RecoverPending(ctx, 0)
				if n != tc.good || err == nil {
					t.Errorf("RecoverPending = %d, %v; want %d completed and a poisoned one's error", n, err, tc.good)
				}
				for _, req := range good {
					if got, err := a.ByNetworkID(ctx, req.Network); err != nil || !got.Approved {
						t.Fatalf("a good record after recovery: %+v, %v (its hold is placed)", got, err)
					}
				}
				e.wantBalance(t, h.Account, 1_000_000, int64(tc.good))
			})
		})
	}
}

func (l *poisonLedger) VoidHold(ctx context.Context, req ledger.VoidHoldRequest) (*ledger.Hold, error) {
	l.mu.Lock()
	poisoned := l.poison[req.HoldID]
	l.mu.Unlock()
	if poisoned {
		return nil, errors.New(errors.Internal, "ledger bug")
	}
	return l.Service.VoidHold(ctx, req)
}

// Queued reversals that cannot be carried out, a full query's worth and
// oldest, do not keep recovery from carrying out the others.
func TestRecoverQueuedGoesPastThoseThatFail(t *testing.T) {
	for _, tc := range []struct{ bad, good int }{{1, 100}, {101, 2}} {
		t.Run(fmt.Sprintf("%d failing, %d others", tc.bad, tc.good), func(t *testing.T) {
			ctx := context.Background()
			db := storetest.SQLite(t, "authorization")
			e := newEnv(t, db)
			pl := &poisonLedger{Service: e.led}
			a := e.another(t, db, func(c *authorization.Config) { c.Ledger = pl })
			h := e.holder(1_000_000, card.Controls{})
			var badHolds []string
			queue := func(n int, bad bool) {
				for range n {
					d := must(t)(a.Authorize(ctx, e.purchase(h, 1)))
					if bad {
						badHolds = append(badHolds, d.HoldID)
					}
					if err := a.QueueReversal(ctx, authorization.ReversalRequest{Network: e.net(), Original: d.Network}); err != nil {
						t.Fatal(err)
					}
				}
			}
			queue(tc.bad, true)
			e.clk.Add(time.Second)
			queue(tc.good, false)
			pl.set(badHolds, false)
			e.clk.Add(time.Hour)
			n, err := a.RecoverQueued(ctx, 0)
			if n != tc.good || err == nil {
				t.Errorf("RecoverQueued = %d, %v; want %d carried out and a failing one's error", n, err, tc.good)
			}
			e.wantBalance(t, h.Account, 1_000_000, int64(tc.bad)) // only the failing ones still held
		})
	}
}
