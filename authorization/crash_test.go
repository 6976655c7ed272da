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
	"github.com/corebank/corebank/store/storetest"
)

// lossyLedger is a ledger whose PlaceHold answers are lost after the hold
// is placed while lose is set: the crash between the ledger and the record.
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

func (l *lossyLedger) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (*ledger.Hold, error) {
	h, err := l.Service.PlaceHold(ctx, req)
	l.mu.Lock()
	lose := l.lose
	l.mu.Unlock()
	if err == nil && lose {
		return nil, errors.New(errors.Unavailable, "connection lost")
	}
	return h, err
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
