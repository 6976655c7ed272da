package cardnet_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/errors"
)

// amnesiac is a slow authorization service whose reversals from the
// gateway never arrive: what a crash right after a timeout answer leaves
// behind, the gateway's own reconciliation lost with the process.
type amnesiac struct{ stall }

func (amnesiac) Reverse(context.Context, authorization.ReversalRequest) (*authorization.Decision, error) {
	return nil, errors.New(errors.Internal, "the process died")
}

// unqueueable is a slow authorization service that cannot queue a
// reversal while fails is positive.
type unqueueable struct {
	stall
	fails *atomic.Int32
}

func (u unqueueable) QueueReversal(ctx context.Context, req authorization.ReversalRequest) error {
	if u.fails.Add(-1) >= 0 {
		return errors.New(errors.Unavailable, "authorization service unreachable")
	}
	return u.stall.QueueReversal(ctx, req)
}

// unreadable is an authorization service whose reads fail for a while.
type unreadable struct{ authorization.Service }

func (unreadable) ByNetworkID(context.Context, authorization.NetworkID) (*authorization.Decision, error) {
	return nil, errors.New(errors.Unavailable, "briefly away")
}

// slowIncrement takes delay longer than the real service to answer
// incremental authorizations.
type slowIncrement struct {
	authorization.Service
	delay time.Duration
}

func (s slowIncrement) Increment(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Increment(ctx, req)
	time.Sleep(s.delay)
	return d, err
}

// The reversal that reconciles a timeout answer is queued before the
// answer, so that it is carried out even if the gateway's process dies.
func TestGatewayTimeoutReconciliationIsDurable(t *testing.T) {
	const deadline = 100 * time.Millisecond
	ctx := context.Background()

	t.Run("91, then a crash: the queued reversal releases the late hold", func(t *testing.T) {
		b := newBank(t, bankOptions{deadline: deadline, wrap: func(s authorization.Service) authorization.Service {
			return amnesiac{stall{s, 3 * deadline}}
		}})
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 12_00)
		b.wantCode(req, cardnet.IssuerUnavailable)
		waitLate(t, b.gw)
		// The gateway's reversal was lost: the hold is still there.
		b.wantBalance(h.account, 100_00, 12_00)
		b.wantReconciliations("failed", 1)
		// The authorization service's recovery (at its next start, or its
		// sweep) carries out the queued reversal.
		b.wantRecoveredQueued(1)
		b.wantBalance(h.account, 100_00, 0)
		// A gateway restarted without memory of the timeout answers the
		// network's repeat as it answered the original.
		fresh := &cardnet.Gateway{Auth: b.auth, Deadline: deadline}
		repeat := *req
		repeat.MTI = "0101"
		resp := fresh.Handle(ctx, MustMessage(t, &repeat))
		if resp == nil || resp.Get(39) != string(cardnet.IssuerUnavailable) {
			t.Fatalf("repeat after a restart answered %v, want 91", resp)
		}
		// So does a plain duplicate (0100, not 0101) to another restart.
		again := &cardnet.Gateway{Auth: b.auth, Deadline: deadline}
		if resp := again.Handle(ctx, MustMessage(t, req)); resp == nil || resp.Get(39) != string(cardnet.IssuerUnavailable) {
			t.Fatalf("duplicate after a restart answered %v, want 91", resp)
		}
		b.wantBalance(h.account, 100_00, 0)
	})

	t.Run("a repeat whose late reversal cannot be looked up is answered 91 and reversed", func(t *testing.T) {
		b := newBank(t, bankOptions{deadline: deadline, wrap: func(s authorization.Service) authorization.Service {
			return amnesiac{stall{s, 3 * deadline}}
		}})
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 12_00)
		b.wantCode(req, cardnet.IssuerUnavailable)
		waitLate(t, b.gw)
		b.wantBalance(h.account, 100_00, 12_00) // the reversal was lost
		// Restarted, with the authorization service briefly unreadable:
		// the first answer may have been a timeout's, so no 00; and the
		// approval is reversed, as after a timeout.
		fresh := &cardnet.Gateway{Auth: unreadable{b.auth}, Deadline: time.Second}
		repeat := *req
		repeat.MTI = "0101"
		if code := handled(t, fresh, MustMessage(t, &repeat)); code != "91" {
			t.Errorf("repeat answered %s, want 91", code)
		}
		waitLate(t, fresh)
		b.wantBalance(h.account, 100_00, 0)
		b.wantRecoveredQueued(0) // carried out by the fresh gateway
	})

	t.Run("a repeat approved now whose lookup fails leaves nothing held", func(t *testing.T) {
		b := newBank(t, bankOptions{deadline: deadline})
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 12_00)
		repeat := *req
		repeat.MTI = "0101" // the network's repeat of an 0100 we never got
		fresh := &cardnet.Gateway{Auth: unreadable{b.auth}, Deadline: time.Second}
		for i := range 2 { // its retransmission hears the same, and holds nothing
			if code := handled(t, fresh, MustMessage(t, &repeat)); code != "91" {
				t.Errorf("repeat %d answered %s, want 91", i+1, code)
			}
			waitLate(t, fresh)
			b.wantBalance(h.account, 100_00, 0)
		}
		b.wantBalance(h.account, 100_00, 0)
	})

	t.Run("no answer while the reversal cannot be queued", func(t *testing.T) {
		fails := new(atomic.Int32)
		fails.Store(1)
		b := newBank(t, bankOptions{deadline: deadline, wrap: func(s authorization.Service) authorization.Service {
			return unqueueable{stall{s, 3 * deadline}, fails}
		}})
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 20_00)
		sctx, cancel := context.WithTimeout(ctx, 5*deadline)
		defer cancel()
		if resp, err := b.client.Send(sctx, MustMessage(t, req)); err == nil {
			t.Fatalf("answered %v although the reversal could not be queued; want no answer", resp.Get(39))
		}
		b.wantReconciliations("not_queued", 1)
		waitLate(t, b.gw)
		// The late approval was reversed all the same.
		b.wantBalance(h.account, 100_00, 0)
		// The network's retransmission: the reversal is queued now, and 91
		// answered.
		repeat := *req
		repeat.MTI = "0101"
		b.wantCode(&repeat, cardnet.IssuerUnavailable)
		waitLate(t, b.gw)
		b.wantBalance(h.account, 100_00, 0)
	})

	t.Run("a late incremental approval is undone, not the whole hold", func(t *testing.T) {
		b := newBank(t, bankOptions{deadline: deadline, wrap: func(s authorization.Service) authorization.Service {
			return slowIncrement{s, 3 * deadline}
		}})
		h := b.holder(100_00, card.Controls{})
		pre := b.purchase(h, 30_00)
		pre.POSCondition = "06"
		b.wantCode(pre, cardnet.Approved)
		inc := b.follow(pre, cardnet.MTIAuthorizationRequest)
		inc.Amount = 15_00
		b.wantCode(inc, cardnet.IssuerUnavailable)
		waitLate(t, b.gw)
		b.wantBalance(h.account, 100_00, 30_00)
		b.wantReconciliations("reversed", 1)
		b.wantRecoveredQueued(0)
		// After a restart, its repeat finds the gateway's own reversal
		// (its id carries the increment's digest) and hears 91 again.
		fresh := &cardnet.Gateway{Auth: b.auth, Deadline: time.Second}
		repeat := *inc
		repeat.MTI = "0101"
		if code := handled(t, fresh, MustMessage(t, &repeat)); code != string(cardnet.IssuerUnavailable) {
			t.Errorf("the incremental's repeat after a restart: %s, want 91", code)
		}
		waitLate(t, fresh)
		b.wantBalance(h.account, 100_00, 30_00)
	})
}

// wantReconciliations checks the gateway's reconciliations counter for
// outcome.
func (b *bank) wantReconciliations(outcome string, want float64) {
	b.t.Helper()
	if got := b.counter("corebank_cardnet_reconciliations_total", map[string]string{"outcome": outcome}); got != want {
		b.t.Errorf("reconciliations{%s} = %v, want %v", outcome, got, want)
	}
}

// wantRecoveredQueued runs the authorization service's recovery of queued
// reversals and wants it to carry out n.
func (b *bank) wantRecoveredQueued(n int) {
	b.t.Helper()
	if got, err := b.auth.RecoverQueued(context.Background(), 0); err != nil || got != n {
		b.t.Fatalf("RecoverQueued = %d, %v; want %d", got, err, n)
	}
}

// slowWhile is an authorization service whose decisions take delay while
// slow is set.
type slowWhile struct {
	authorization.Service
	slow  *atomic.Bool
	delay time.Duration
}

func (s slowWhile) Authorize(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Authorize(ctx, req)
	if s.slow.Load() {
		time.Sleep(s.delay)
	}
	return d, err
}

// The Gateway remembers at most MaxRemembered requests it answered per the
// timeout policy. A duplicate of one it has forgotten is not answered 00
// for an approval it reversed: it is checked with the authorization
// service, as after a restart.
func TestForgottenTimeoutIsCheckedAgain(t *testing.T) {
	const deadline = 100 * time.Millisecond
	b := newBank(t, bankOptions{deadline: deadline})
	slow := new(atomic.Bool)
	slow.Store(true)
	gw := &cardnet.Gateway{Auth: slowWhile{b.auth, slow, 3 * deadline}, Deadline: deadline, MaxRemembered: 1}
	send := func(req *cardnet.Request) string {
		t.Helper()
		code := handled(t, gw, MustMessage(t, req))
		waitLate(t, gw)
		return code
	}
	h := b.holder(100_00, card.Controls{})
	first, second := b.purchase(h, 12_00), b.purchase(h, 5_00)
	if code := send(first); code != "91" {
		t.Fatalf("first answered %s, want 91", code)
	}
	if code := send(second); code != "91" { // and the first is forgotten
		t.Fatalf("second answered %s, want 91", code)
	}
	b.wantBalance(h.account, 100_00, 0) // both late approvals reversed
	slow.Store(false)
	if code := send(first); code != "91" {
		t.Errorf("a duplicate of the forgotten first answered %s, want 91 as before", code)
	}
	b.wantBalance(h.account, 100_00, 0)
}

// lookupCounting counts ByNetworkID calls and fails them while fail is set.
type lookupCounting struct {
	authorization.Service
	lookups *atomic.Int64
	fail    *atomic.Bool
}

func (l lookupCounting) ByNetworkID(ctx context.Context, n authorization.NetworkID) (*authorization.Decision, error) {
	l.lookups.Add(1)
	if l.fail.Load() {
		return nil, errors.New(errors.Unavailable, "briefly away")
	}
	return l.Service.ByNetworkID(ctx, n)
}

// Forgetting timed-out requests costs nothing to the requests that follow:
// the last MaxRemembered are remembered (each recorded twice, answered and
// then its reversal queued, counts once), and a fresh request, which is
// nobody's duplicate, is answered as decided without a lookup, even one
// that would fail.
func TestForgettingTimeoutsSparesFreshRequests(t *testing.T) {
	const deadline = 100 * time.Millisecond
	b := newBank(t, bankOptions{deadline: deadline})
	slow := new(atomic.Bool)
	slow.Store(true)
	lookups, fail := new(atomic.Int64), new(atomic.Bool)
	gw := &cardnet.Gateway{Auth: lookupCounting{slowWhile{b.auth, slow, 3 * deadline}, lookups, fail}, Deadline: deadline, MaxRemembered: 3}
	send := func(req *cardnet.Request) string {
		t.Helper()
		code := handled(t, gw, MustMessage(t, req))
		waitLate(t, gw)
		return code
	}
	h := b.holder(100_00, card.Controls{})
	var timedOut []*cardnet.Request
	for range 4 { // the first is forgotten
		req := b.purchase(h, 1_00)
		if code := send(req); code != "91" {
			t.Fatalf("answered %s, want 91", code)
		}
		timedOut = append(timedOut, req)
	}
	b.wantBalance(h.account, 100_00, 0)
	slow.Store(false)
	lookups.Store(0)
	// The last three are remembered: their duplicates need no lookup.
	for _, req := range timedOut[1:] {
		if code := send(req); code != "91" {
			t.Errorf("a duplicate of a remembered timeout answered %s, want 91", code)
		}
	}
	if n := lookups.Load(); n != 0 {
		t.Errorf("%d lookups for duplicates of the last %d timeouts (MaxRemembered 3)", n, len(timedOut)-1)
	}
	fail.Store(true)
	if code := send(b.purchase(h, 12_00)); code != "00" {
		t.Errorf("a fresh request approved on time answered %s, want 00", code)
	}
	if n := lookups.Load(); n != 0 {
		t.Errorf("%d late-reversal lookups for a fresh request", n)
	}
	b.wantBalance(h.account, 100_00, 12_00)
}
