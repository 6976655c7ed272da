package authorization_test

import (
	"context"
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

// poisonLedger fails PlaceHold for one key always (Internal), and loses the
// answer of another once (the hold made, Unavailable returned).
type poisonLedger struct {
	ledger.Service
	mu           sync.Mutex
	poison, lose string
}

func (l *poisonLedger) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (*ledger.Hold, error) {
	l.mu.Lock()
	poison, lose := l.poison, l.lose
	if req.Key == lose {
		l.lose = ""
	}
	l.mu.Unlock()
	if req.Key == poison {
		return nil, errors.New(errors.Internal, "ledger bug")
	}
	h, err := l.Service.PlaceHold(ctx, req)
	if err == nil && req.Key == lose {
		return nil, errors.New(errors.Unavailable, "connection lost")
	}
	return h, err
}

// A pending record that cannot be completed (older than the rest, so first
// in every sweep) does not keep recovery from completing the others.
func TestRecoverPendingGoesPastOneThatFails(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		pl := &poisonLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = pl })
		h1 := e.holder(1000, card.Controls{})
		h2 := e.holder(1000, card.Controls{})
		bad := e.purchase(h1, 100)
		good := e.purchase(h2, 100)
		pl.poison = bad.Network.Key()
		pl.lose = good.Network.Key()
		if _, err := a.Authorize(ctx, bad); err == nil {
			t.Fatal("the poisoned decision succeeded")
		}
		e.clk.Add(time.Second)
		if _, err := a.Authorize(ctx, good); err == nil {
			t.Fatal("the lost answer was not lost")
		}
		e.wantBalance(t, h2.Account, 1000, 100) // held, its record pending
		e.clk.Add(time.Hour)
		n, err := a.RecoverPending(ctx, 0)
		if n != 1 || err == nil {
			t.Errorf("RecoverPending = %d, %v; want 1 completed and the poisoned one's error", n, err)
		}
		if got, err := a.ByNetworkID(ctx, good.Network); err != nil || !got.Approved {
			t.Fatalf("the good record after recovery: %+v, %v (its hold of 100 is placed)", got, err)
		}
		e.wantBalance(t, h2.Account, 1000, 100)
		e.wantBalance(t, h1.Account, 1000, 0)
	})
}
