package cardnet_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
)

// authStall decides the first authorization, then holds its answer back.
type authStall struct {
	authorization.Service
	decided chan struct{}
	once    sync.Once
}

func (s *authStall) Authorize(ctx context.Context, r authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Authorize(ctx, r)
	first := false
	s.once.Do(func() { first = true; close(s.decided) })
	if first {
		time.Sleep(600 * time.Millisecond)
	}
	return d, err
}

// A second 0100 reusing the network ids (acquirer, STAN, DE7, RRN) of one
// being decided, but for another amount, is not a retransmission: the
// authorization service answers it 94 (conflict). Arriving while the first
// is in flight, it joins the first's flight and is answered 00 with its
// own, larger DE4 echoed: the network hears £90 approved while £30 is held.
// A message under the ids of one still being decided, but for another
// amount, does not join its decision (and hear its approval, with only the
// first's amount held): it is decided on its own and answered 94, as it is
// once the first has been answered.
func TestAnotherAmountUnderTheIDsOfADecisionInFlightIsNotJoined(t *testing.T) {
	st := &authStall{decided: make(chan struct{})}
	b := newBank(t, bankOptions{
		wrap:     func(s authorization.Service) authorization.Service { st.Service = s; return st },
		deadline: 3 * time.Second,
	})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	done := make(chan *cardnet.Message, 1)
	go func() {
		resp, err := send(b.client, MustMessage(t, req))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-st.decided
	other := *req
	other.Amount = 90_00
	// Straight to the gateway, so that its answer cannot be confused
	// with the first's (same STAN and RRN) by a client.
	resp := b.gw.Handle(context.Background(), MustMessage(t, &other))
	<-done
	waitLate(t, b.gw)
	// Control: the same message sent after the flight has ended is 94.
	after := b.send(&other)
	t.Logf("after the flight: DE39 %s", after.Get(39))
	if got := resp.Get(39); got != string(cardnet.DuplicateTransmission) {
		t.Errorf("0100 for 90.00 reusing the ids of a 30.00 in flight: DE39 %s DE4 %s DE38 %q, want 94 as after the flight (%s)",
			got, resp.Get(4), resp.Get(38), after.Get(39))
	}
	b.wantBalance(h.account, 100_00, 30_00)
}

// A second 0100 reusing the network ids of an approved one, for the same
// amount but another card, is not a retransmission either: it must not
// hear the first card's approval (nothing is held on the second card).
func TestAnotherCardUnderTheSameIDsIsNotARetransmission(t *testing.T) {
	b := newBank(t, bankOptions{})
	h1 := b.holder(100_00, card.Controls{})
	h2 := b.holder(0, card.Controls{}) // no money at all
	req := b.purchase(h1, 30_00)
	b.wantCode(req, cardnet.Approved)
	other := *req
	other.PAN, other.Expiry, other.CVC2 = cardnet.PAN(h2.pan), h2.expiry, cardnet.CVC(h2.cvc)
	resp := b.send(&other)
	if got := resp.Get(39); got != string(cardnet.DuplicateTransmission) {
		t.Errorf("0100 for card %s reusing the ids of card %s's approval: answered %s (DE2 %s, DE38 %s); want 94",
			cardnet.PAN(h2.pan), cardnet.PAN(h1.pan), got, cardnet.PAN(resp.Get(2)), resp.Get(38))
	}
	b.wantBalance(h1.account, 100_00, 30_00)
	b.wantBalance(h2.account, 0, 0)
}

// The same, for the same card and amount digits in another currency (DE49):
// ¥3000 is not £30.00.
func TestAnotherCurrencyUnderTheSameIDsIsNotARetransmission(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	b.wantCode(req, cardnet.Approved)
	other := *req
	other.Currency = "JPY"
	if got := b.send(&other).Get(39); got != string(cardnet.DuplicateTransmission) {
		t.Errorf("0100 for JPY 3000 reusing the ids of a GBP 30.00 approval: answered %s; want 94", got)
	}
	b.wantBalance(h.account, 100_00, 30_00)
	// The first's retransmission still hears its approval.
	if got := b.send(req).Get(39); got != string(cardnet.Approved) {
		t.Errorf("retransmission of the approval: %s, want 00", got)
	}
}

// A request under the ids of one being decided, but of another content,
// is answered 94 at once: not shed at MaxDecisions (shedding marks the ids
// timed out and queues the gateway's own reversal of them, which would
// release the first's approval the network heard), nor decided.
func TestAnotherRequestUnderInFlightIDsUndoesNothing(t *testing.T) {
	st := &authStall{decided: make(chan struct{})}
	b := newBank(t, bankOptions{
		wrap:     func(s authorization.Service) authorization.Service { st.Service = s; return st },
		deadline: 3 * time.Second,
	})
	b.gw.MaxDecisions = 1 // before the gateway's first message
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	done := make(chan *cardnet.Message, 1)
	go func() { done <- b.gw.Handle(context.Background(), MustMessage(t, req)) }()
	<-st.decided
	other := *req
	other.Amount = 90_00
	resp := b.gw.Handle(context.Background(), MustMessage(t, &other))
	if got := resp.Get(39); got != string(cardnet.DuplicateTransmission) {
		t.Errorf("the other content under the ids in flight: %s, want 94", got)
	}
	first := <-done
	waitLate(t, b.gw)
	if first == nil || first.Get(39) != string(cardnet.Approved) {
		t.Fatalf("first answered %v", first)
	}
	if _, err := b.auth.RecoverQueued(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	// The network heard 00 for 30.00: it stays held.
	b.wantBalance(h.account, 100_00, 30_00)
}

// slowAmount delays the decision of requests for one amount.
type slowAmount struct {
	authorization.Service
	amount int64
	delay  time.Duration
}

func (s *slowAmount) Authorize(ctx context.Context, r authorization.Request) (*authorization.Decision, error) {
	if r.Amount == s.amount {
		time.Sleep(s.delay)
	}
	return s.Service.Authorize(ctx, r)
}

// otherAmount is the amount of the other request under a message's ids
// that newBankSlowOnOthers decides past the deadline.
const otherAmount = 90_00

// newBankSlowOnOthers is a bank whose decisions of requests for
// otherAmount outlive its 100 ms deadline.
func newBankSlowOnOthers(t *testing.T) *bank {
	slow := &slowAmount{amount: otherAmount, delay: 300 * time.Millisecond}
	return newBank(t, bankOptions{
		wrap:     func(s authorization.Service) authorization.Service { slow.Service = s; return slow },
		deadline: 100 * time.Millisecond,
	})
}

// sendOtherPastDeadline sends other (for otherAmount) and wants it
// answered 91, then lets its late decision and the gateway's own reversal,
// queued or direct, run their course.
func (b *bank) sendOtherPastDeadline(t *testing.T, other *cardnet.Request) {
	t.Helper()
	other.Amount = otherAmount
	if got := b.send(other).Get(39); got != string(cardnet.IssuerUnavailable) {
		t.Fatalf("the other request, decided past the deadline: %s, want 91", got)
	}
	waitLate(t, b.gw)
	if _, err := b.auth.RecoverQueued(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

// Another request under the ids of one answered already, whose own
// decision outlives the deadline: it is answered per the timeout policy
// (91) and the gateway reverses what it answered for, which is nothing:
// its own reversal is bound to its content, so the first's approval, which
// the network heard, keeps its hold, and a retransmission of the first
// still hears 00.
func TestAnotherRequestTimedOutUnderAnsweredIDsUndoesNothing(t *testing.T) {
	b := newBankSlowOnOthers(t)
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 30_00)
	b.wantCode(req, cardnet.Approved)
	other := *req
	b.sendOtherPastDeadline(t, &other)
	b.wantBalance(h.account, 100_00, 30_00)
	if got := b.send(req).Get(39); got != string(cardnet.Approved) {
		t.Errorf("retransmission of the approval: %s, want 00", got)
	}
	b.wantBalance(h.account, 100_00, 30_00)
}
