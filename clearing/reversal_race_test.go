package clearing_test

import (
	"context"
	"sync"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// voidGate is the authorization service's ledger: its first VoidHold
// waits at the gate (once armed) until released.
type voidGate struct {
	ledger.Service
	mu       sync.Mutex
	armed    bool
	atVoid   chan struct{}
	proceeds chan struct{}
}

func (g *voidGate) VoidHold(ctx context.Context, req ledger.VoidHoldRequest) (*ledger.Hold, error) {
	g.mu.Lock()
	armed := g.armed
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(g.atVoid)
		<-g.proceeds
	}
	return g.Service.VoidHold(ctx, req)
}

// afterPost is clearing's ledger: after its first PostHold it lets the
// reversal waiting at the gate go on.
type afterPost struct {
	ledger.Service
	once sync.Once
	gate *voidGate
}

func (a *afterPost) PostHold(ctx context.Context, req ledger.PostHoldRequest) (*ledger.Hold, error) {
	h, err := a.Service.PostHold(ctx, req)
	a.once.Do(func() { close(a.gate.proceeds) })
	return h, err
}

// startsReversal: after clearing's ByNetworkID has answered, a partial
// reversal of the authorization arrives from the gateway and runs up to
// its void of the old hold (the new hold placed).
type startsReversal struct {
	authorization.Service
	e    *env
	gate *voidGate
	once sync.Once
	done chan error
}

func (s *startsReversal) ByNetworkID(ctx context.Context, n authorization.NetworkID) (*authorization.Decision, error) {
	d, err := s.Service.ByNetworkID(ctx, n)
	s.once.Do(func() {
		s.gate.mu.Lock()
		s.gate.armed = true
		s.gate.mu.Unlock()
		go func() {
			_, err := s.Service.Reverse(context.Background(), authorization.ReversalRequest{Network: s.e.net(), Original: n, Amount: 800})
			s.done <- err
		}()
		<-s.gate.atVoid
	})
	return d, err
}

// A clearing of 800 (final) posts hold A while a partial reversal to 800
// is replacing A by a new hold B of 800: the reversal placed B, then finds
// A posted when it voids it. What the network wants is 800 paid, nothing
// left held: the reversal releases B when it finds A posted.
func TestPartialReversalRacingAFinalClearingLeavesNoSecondHold(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		settle := map[money.Currency]string{"GBP": e.settlement}
		gate := &voidGate{Service: e.led, atVoid: make(chan struct{}), proceeds: make(chan struct{})}
		auth, err := authorization.Open(ctx, storetest.Like(t, db, "authorization"), authorization.Config{
			Card: e.cards, Ledger: gate, Now: e.clk.Now, Settlement: settle})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { auth.Close() })
		sr := &startsReversal{Service: auth, e: e, gate: gate, done: make(chan error, 1)}
		c, err := clearing.Open(ctx, storetest.Like(t, db, "clearing"), clearing.Config{
			Ledger: &afterPost{Service: e.led, gate: gate}, Authorization: sr, Card: e.cards, Settlement: settle, Now: e.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		h := e.holder(10000)
		d := e.approve(auth, e.purchase(h, 1000))
		rep, err := c.Ingest(ctx, clearing.IngestRequest{FileName: "r", Content: file("RACE2", forAuth("R1", h, d, 800))})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-sr.done; err != nil {
			t.Fatalf("Reverse: %v", err)
		}
		if rep.Posted != 1 {
			t.Errorf("report %+v, want the record posted", rep)
		}
		b := e.balance(h.Account)
		if b.Posted != 9200 || b.Pending != 0 {
			t.Errorf("posted %d pending %d, want 9200 and 0 (800 cleared once, nothing held)", b.Posted, b.Pending)
		}
	})
}
