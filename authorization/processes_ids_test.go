package authorization_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store/storetest"
)

// pausingCards pauses the first Lookup until released, so that another
// process can record its message under the same network ids meanwhile.
type pausingCards struct {
	card.Service
	once    sync.Once
	entered chan struct{}
	release chan struct{}
}

func (p *pausingCards) Lookup(ctx context.Context, pan string) (*card.Card, error) {
	p.once.Do(func() {
		close(p.entered)
		<-p.release
	})
	return p.Service.Lookup(ctx, pan)
}

// Two processes on one database, two different requests under the same
// network ids (another card and amount): the one that loses the insert
// race must hear Conflict, as it would in one process, not the winner's
// approval for a card and amount nobody holds.
func TestAnotherRequestUnderRecordedIDsAcrossProcessesIsAConflict(t *testing.T) {
	db := storetest.Postgres(t, "authorization")
	ctx := context.Background()
	e := newEnv(t, db)
	pc := &pausingCards{Service: e.cards, entered: make(chan struct{}), release: make(chan struct{})}
	other := e.another(t, db, func(c *authorization.Config) { c.Card = pc })

	h, h2 := e.holder(1000, card.Controls{}), e.holder(1000, card.Controls{})
	p := e.purchase(h, 300)
	q := e.purchase(h2, 700) // another card and amount under p's ids
	q.Network = p.Network

	var qd *authorization.Decision
	var qerr error
	done := make(chan struct{})
	go func() { defer close(done); qd, qerr = other.Authorize(ctx, q) }()
	select {
	case <-pc.entered: // other found nothing under the ids; it looks the card up
	case <-time.After(10 * time.Second):
		t.Fatal("the other process never looked the card up")
	}
	pd := must(t)(e.a.Authorize(ctx, p))
	close(pc.release)
	<-done

	if !pd.Approved {
		t.Fatalf("p: %+v", pd)
	}
	if errors.CodeOf(qerr) != errors.Conflict {
		t.Errorf("another card's request under p's ids, in another process: %s (err %v), want conflict",
			dsum(qd), qerr)
	}
	if b := e.balance(h2.Account); b.Pending != 0 {
		t.Errorf("other card pending %d", b.Pending)
	}
}
