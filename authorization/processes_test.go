package authorization_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
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

// hookLedger calls before and after around each Transfer.
type hookLedger struct {
	ledger.Service
	before, after func()
}

func (h *hookLedger) Transfer(ctx context.Context, req ledger.TransferRequest) (*ledger.Transfer, error) {
	if h.before != nil {
		h.before()
	}
	t, err := h.Service.Transfer(ctx, req)
	if h.after != nil {
		h.after()
	}
	return t, err
}

// A 0200 left pending in process B, whose transfer is refused for want of
// funds, is completed by the network's retransmission in process A after
// money arrived: A's transfer goes through, B records the decline first.
// What A moved is given back: the books agree with the decline.
func TestFinancialDecidedTwiceAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	db := storetest.Postgres(t, "authorization")
	e := newEnv(t, db)
	h := e.holder(100, card.Controls{})
	req := e.purchase(h, 600)
	req.Kind, req.Channel, req.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
	bRefused, aMoved, bDone := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var onceB, onceA sync.Once // only each process's first transfer is staged
	procB := e.another(t, db, func(c *authorization.Config) {
		c.Ledger = &hookLedger{Service: e.led, after: func() { onceB.Do(func() { close(bRefused); <-aMoved }) }}
	})
	var salary sync.Once
	procA := e.another(t, db, func(c *authorization.Config) {
		c.Ledger = &hookLedger{Service: e.led,
			before: func() {
				salary.Do(func() { // a salary arrives between the two calls
					if _, err := e.led.Transfer(ctx, ledger.TransferRequest{Key: "salary", Legs: []ledger.Leg{{AccountID: e.fund, Amount: -1000, Currency: "GBP"}, {AccountID: h.Account, Amount: 1000, Currency: "GBP"}}}); err != nil {
						t.Error(err)
					}
				})
			},
			after: func() { onceA.Do(func() { close(aMoved); <-bDone }) },
		}
	})
	var dA, dB *authorization.Decision
	var errA, errB error
	var wg sync.WaitGroup
	wg.Go(func() { defer close(bDone); dB, errB = procB.Financial(ctx, req) })
	<-bRefused
	wg.Go(func() { dA, errA = procA.Financial(ctx, req) })
	wg.Wait()
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if dA.Approved || dB.Approved {
		t.Fatalf("answers %s and %s; want the decline both times (B recorded it first)", dA.Reason, dB.Reason)
	}
	e.wantBalance(t, h.Account, 1100, 0) // 100 and the salary; nothing debited for the decline
}
