package authorization_test

import (
	"context"
	"reflect"
	"sync"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// lossyLedger is a ledger whose PlaceHold and IncrementHold answers are
// lost after the hold is placed or grown while lose is set: the crash
// between the ledger and the record.
type lossyLedger struct {
	ledger.Service
	mu   sync.Mutex
	lose bool
}

func (l *lossyLedger) setLose(lose bool) {
	l.mu.Lock()
	l.lose = lose
	l.mu.Unlock()
}

// lost is err, or the lost answer's error if lose is set.
func (l *lossyLedger) lost(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && l.lose {
		return errors.New(errors.Unavailable, "connection lost")
	}
	return err
}

func (l *lossyLedger) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (*ledger.Hold, error) {
	h, err := l.Service.PlaceHold(ctx, req)
	if err = l.lost(err); err != nil {
		return nil, err
	}
	return h, nil
}

func (l *lossyLedger) IncrementHold(ctx context.Context, req ledger.IncrementHoldRequest) (*ledger.Hold, error) {
	h, err := l.Service.IncrementHold(ctx, req)
	if err = l.lost(err); err != nil {
		return nil, err
	}
	return h, nil
}

// An incremental left pending (the ledger grew the hold, its answer was
// lost: the gateway answered 91) whose original is then reversed must not
// grow the original back when it is completed: the hold it grew is gone.
func TestPendingIncrementAfterItsOriginalIsReversed(t *testing.T) {
	ctx := context.Background()
	setup := func(t *testing.T, ctl card.Controls) (*env, *authorization.Authorizer, *lossyLedger, *holder, authorization.Request, authorization.Request) {
		db := storetest.SQLite(t, "authorization")
		e := newEnv(t, db)
		lossy := &lossyLedger{Service: e.led}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = lossy })
		h := e.holder(10_000, ctl)
		pre := e.purchase(h, 5000)
		pre.Kind, pre.MCC = authorization.KindPreauth, "7011"
		must(t)(a.Authorize(ctx, pre))
		lossy.setLose(true)
		inc := e.incremental(h, pre.Network, 2000)
		_, err := a.Increment(ctx, inc)
		wantCode(t, err, errors.Unavailable)
		lossy.setLose(false)
		e.wantBalance(t, h.Account, 10_000, 7000)
		return e, a, lossy, h, pre, inc
	}

	t.Run("reduced to a new total, then the increment reversed", func(t *testing.T) {
		e, a, _, h, pre, inc := setup(t, card.Controls{})
		must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network, Amount: 3000}))
		e.wantBalance(t, h.Account, 10_000, 3000)
		if d := must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: inc.Network})); d.Amount != 0 {
			t.Errorf("reversal of the increment = %+v, want nothing released", d)
		}
		e.wantBalance(t, h.Account, 10_000, 3000)
		o := must(t)(a.ByNetworkID(ctx, pre.Network))
		if held, err := e.led.GetHold(ctx, o.HoldID); err != nil || o.Outstanding != 3000 || held.Status != ledger.HoldPending || held.Amount != 3000 {
			t.Errorf("original %+v on hold %+v, %v; want 3000 outstanding on the pending 3000 hold", o, held, err)
		}
		if d := must(t)(a.ByNetworkID(ctx, inc.Network)); d.Approved || d.Reason != authorization.OriginalNotFound {
			t.Errorf("incremental = %+v, want declined original_not_found", d)
		}
		// The network cancels the rest: everything is released.
		must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
		e.wantBalance(t, h.Account, 10_000, 0)
	})

	t.Run("wholly reversed, then the increment retransmitted", func(t *testing.T) {
		e, a, _, h, pre, inc := setup(t, card.Controls{DailyLimit: 8000})
		must(t)(a.Reverse(ctx, authorization.ReversalRequest{Network: e.net(), Original: pre.Network}))
		e.wantBalance(t, h.Account, 10_000, 0)
		if d := must(t)(a.Increment(ctx, inc)); d.Approved {
			t.Errorf("retransmitted incremental = %+v, want declined: nothing it added is held", d)
		}
		if o := must(t)(a.ByNetworkID(ctx, pre.Network)); o.Outstanding != 0 {
			t.Errorf("original outstanding %d, want 0", o.Outstanding)
		}
		// No phantom spend: a purchase within the daily limit is approved.
		if d := must(t)(a.Authorize(ctx, e.purchase(h, 7000))); !d.Approved {
			t.Errorf("purchase of 7000 under an 8000 daily limit with nothing held = %+v", d)
		}
	})
}

func TestCrashBetweenLedgerAndRecord(t *testing.T) {
	ctx := context.Background()
	db := storetest.SQLite(t, "authorization")
	e := newEnv(t, db)
	lossy := &lossyLedger{Service: e.led, lose: true}
	a, err := authorization.Open(ctx, storetest.SQLite(t, "authorization"), authorization.Config{
		Card: e.cards, Ledger: lossy, Now: e.clk.Now,
		Settlement: map[money.Currency]string{"GBP": e.settlement},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := e.holder(1000, card.Controls{})
	req := e.purchase(h, 400)
	_, err = a.Authorize(ctx, req)
	wantCode(t, err, errors.Unavailable)
	e.wantBalance(t, h.Account, 1000, 400) // the hold exists, unrecorded
	if _, err := a.ByNetworkID(ctx, req.Network); !errors.Is(err, errors.NotFound) {
		t.Errorf("undecided request visible: %v", err)
	}

	// Meanwhile the card is frozen: the retransmission must complete what
	// was begun, not decide afresh and strand the hold.
	if _, err := e.cards.Freeze(ctx, card.StateRequest{Key: "freeze", CardID: h.Card.ID}); err != nil {
		t.Fatal(err)
	}
	lossy.setLose(false)
	d := must(t)(a.Authorize(ctx, req))
	if !d.Approved || d.HoldID == "" || d.Amount != 400 {
		t.Fatalf("retransmission = %+v", d)
	}
	e.wantBalance(t, h.Account, 1000, 400) // still one hold
	again := must(t)(a.Authorize(ctx, req))
	if !reflect.DeepEqual(again, d) {
		t.Errorf("second retransmission = %+v, want %+v", again, d)
	}
}

// lossyTransfers loses the answer of a Transfer that took effect.
type lossyTransfers struct{ *lossyLedger }

func (l lossyTransfers) Transfer(ctx context.Context, req ledger.TransferRequest) (*ledger.Transfer, error) {
	t, err := l.Service.Transfer(ctx, req)
	if err = l.lost(err); err != nil {
		return nil, err
	}
	return t, nil
}

// A 0200 whose ledger answer is lost after the money moved: the
// retransmission completes it and moves the money once.
func TestFinancialAnswerLostMovesMoneyOnce(t *testing.T) {
	storetest.Each(t, "authorization", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		e := newEnv(t, db)
		lossy := &lossyLedger{Service: e.led, lose: true}
		a := e.another(t, db, func(c *authorization.Config) { c.Ledger = lossyTransfers{lossy} })
		h := e.holder(1000, card.Controls{})
		req := e.purchase(h, 400)
		req.Kind, req.Channel, req.MCC = authorization.KindFinancial, card.ChannelATM, "6011"
		_, err := a.Financial(ctx, req)
		wantCode(t, err, errors.Unavailable)
		e.wantBalance(t, h.Account, 600, 0) // moved, unrecorded
		lossy.setLose(false)
		d := must(t)(a.Financial(ctx, req))
		if !d.Approved || d.TransferID == "" || d.Amount != 400 {
			t.Fatalf("retransmission = %+v", d)
		}
		e.wantBalance(t, h.Account, 600, 0) // moved once
	})
}
