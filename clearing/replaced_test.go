package clearing_test

import (
	"context"
	"testing"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// Presentment 1 (final=N) posts 600 of a 1000 hold, keeping 400 held. A
// partial reversal then says 800 remains authorized: the bank should hold
// at most 800-600=200 more (or 400, what it held), never more than before.
func TestPartialReversalAfterAPartialClearingHoldsOnlyWhatRemains(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10000)
		d := e.partlyCleared(t, h)
		e.wantBalance(t, h.Account, 9400, 400)
		e.reverse(d.Network, 800)
		e.wantBalance(t, h.Account, 9400, 200) // 800 authorized, 600 of it cleared: 200 to come
		// The final presentment: 100 more.
		second := forAuth("P2", h, d, 100)
		second.presentment = 2
		second.arn = arnFor("P1")
		e.ingest(t, "p2", file("P2F", second))
		b := e.balance(h.Account)
		if b.Posted != 9300 || b.Pending != 0 {
			t.Errorf("after final presentment: posted %d pending %d, want 9300 and 0", b.Posted, b.Pending)
		}
	})
}

// racingAuth is the real authorization service; after ByNetworkID answers,
// it lets a partial reversal of that authorization through (as one arriving
// from the gateway at that moment would), before clearing posts.
type racingAuth struct {
	authorization.Service
	e    *env
	once bool
}

func (r *racingAuth) ByNetworkID(ctx context.Context, n authorization.NetworkID) (*authorization.Decision, error) {
	d, err := r.Service.ByNetworkID(ctx, n)
	if err == nil && !r.once {
		r.once = true
		if _, err := r.Service.Reverse(ctx, authorization.ReversalRequest{Network: r.e.net(), Original: n, Amount: 800}); err != nil {
			r.e.t.Errorf("Reverse: %v", err)
		}
	}
	return d, err
}

// A partial reversal replaces the hold (new hold for 800, old voided)
// between clearing's lookup and its post: clearing follows the
// authorization to the new hold and posts it, 800 paid once and nothing
// left held.
func TestClearingRacingAPartialReversalPostsTheNewHold(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		settle := map[money.Currency]string{"GBP": e.settlement}
		c, err := clearing.Open(context.Background(), storetest.Like(t, db, "clearing"), clearing.Config{
			Ledger: e.led, Authorization: &racingAuth{Service: e.auth, e: e}, Card: e.cards, Settlement: settle, Now: e.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		h := e.holder(10000)
		d := e.authorize(h, 1000)
		if _, err := c.Ingest(context.Background(), clearing.IngestRequest{FileName: "r", Content: file("RACE", forAuth("R1", h, d, 800))}); err != nil {
			t.Fatal(err)
		}
		b := e.balance(h.Account)
		if b.Posted != 9200 || b.Pending != 0 {
			t.Errorf("posted %d pending %d, want 9200 and 0 (the 800 cleared once, nothing left held)", b.Posted, b.Pending)
		}
	})
}

// The same without a race: the ledger is down when clearing posts (the
// plan, naming the hold, is recorded), a partial reversal then replaces
// the hold, and the file is ingested again.
func TestClearingResumedAfterItsHoldWasReplacedPostsTheNewHold(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10000)
		d := e.authorize(h, 1000)
		content := file("RESUME", forAuth("R1", h, d, 800))
		e.flaky.fail.Store(1)
		if _, err := e.c.Ingest(context.Background(), clearing.IngestRequest{FileName: "r", Content: content}); err == nil {
			t.Fatal("want the injected failure")
		}
		e.flaky.fail.Store(0)
		e.reverse(d.Network, 800)
		e.ingest(t, "r", content)
		b := e.balance(h.Account)
		if b.Posted != 9200 || b.Pending != 0 {
			t.Errorf("posted %d pending %d, want 9200 and 0", b.Posted, b.Pending)
		}
	})
}

// 1000 authorized, 600 cleared (final=N), a partial reversal to 800 holds
// 200 (800-600). A second partial reversal to 700 must hold at most 100
// (700-600): a reversal never holds more than before.
func TestSecondPartialReversalAfterAPartialClearingHoldsOnlyWhatRemains(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10000)
		d := e.partlyCleared(t, h)
		e.wantBalance(t, h.Account, 9400, 400)
		e.reverse(d.Network, 800)
		e.wantBalance(t, h.Account, 9400, 200)
		e.reverse(d.Network, 700)
		e.wantBalance(t, h.Account, 9400, 100) // 700 less the 600 cleared
	})
}

// 1000 authorized, 600 cleared (final=N); a partial reversal to 500 leaves
// nothing to hold (500 < 600), so the old hold is only voided and the
// authorization keeps outstanding 500 on it. A full reversal then finds
// that hold voided and still brings the outstanding amount to zero (not
// left counted as spend).
func TestFullReversalAfterNothingLeftToHoldBringsOutstandingToZero(t *testing.T) {
	storetest.Each(t, "clearing", func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		h := e.holder(10000)
		d := e.partlyCleared(t, h)
		e.reverse(d.Network, 500)
		e.wantBalance(t, h.Account, 9400, 0)
		r := e.reverse(d.Network, 0)
		got, err := e.auth.ByNetworkID(context.Background(), d.Network)
		if err != nil {
			t.Fatal(err)
		}
		if got.Outstanding != 0 {
			t.Errorf("after a full reversal (%s %q): outstanding %d on hold %s, want 0", r.Reason, r.Detail, got.Outstanding, got.HoldID)
		}
	})
}

// partlyCleared authorizes 1000 on h and clears 600 of it with more to
// come (presentment P1, final=N): 400 stays held.
func (e *env) partlyCleared(t *testing.T, h *holder) *authorization.Decision {
	t.Helper()
	d := e.authorize(h, 1000)
	first := forAuth("P1", h, d, 600)
	first.notFinal = true
	e.ingest(t, "p1", file("P1F", first))
	return d
}
