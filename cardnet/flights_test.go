package cardnet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/obs"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A reversal that reuses its original's ids (acquirer, STAN, DE7, RRN),
// arriving while the original is still being decided, is a message of its
// own: it must not share the original's decision and hear its approval.
func TestReversalReusingIDsDuringItsOriginalIsApplied(t *testing.T) {
	st := &decidedStall{delay: 600 * time.Millisecond, decided: make(chan struct{})}
	b := newBank(t, bankOptions{
		wrap:     func(s authorization.Service) authorization.Service { st.Service = s; return st },
		deadline: 3 * time.Second,
	})
	h := b.holder(100_00, card.Controls{})
	fin := b.purchase(h, 30_00)
	fin.MTI = cardnet.MTIFinancialRequest
	done := make(chan *cardnet.Message, 1)
	go func() {
		resp, err := send(b.client, MustMessage(t, fin))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-st.decided // the 0200 is decided, its answer not yet given
	rev := b.follow(fin, cardnet.MTIReversalRequest)
	rev.STAN, rev.TransmissionTime = fin.STAN, fin.TransmissionTime
	b.wantCode(rev, cardnet.Approved)
	if resp := <-done; resp == nil || resp.Get(39) != string(cardnet.Approved) {
		t.Fatalf("the 0200 was answered %v", resp)
	}
	waitLate(t, b.gw)
	b.wantBalance(h.account, 100_00, 0) // debited, then refunded by the reversal
}

// Two different reversals of one original from a network that reuses the
// original's ids in both (a partial, then a full) are two reversals, not a
// retransmission; a retransmission of either is still one.
func TestDistinctReversalsReusingIDs(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 50_00)
	b.wantCode(req, cardnet.Approved)
	rev := b.follow(req, cardnet.MTIReversalRequest)
	rev.STAN, rev.TransmissionTime = req.STAN, req.TransmissionTime
	remain := int64(20_00)
	rev.ReplacementAmount = &remain
	b.wantCode(rev, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 20_00)
	b.wantCode(rev, cardnet.Approved) // retransmitted: no second effect
	b.wantBalance(h.account, 100_00, 20_00)
	full := *rev
	full.ReplacementAmount = nil
	b.wantCode(&full, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 0)
}

// A partial reversal without DE6 (optional in an 0400) of an original held
// in another currency keeps the original's rate: DE95 is in DE49's
// currency, the hold in the card's.
func TestPartialReversalWithoutBillingAmountIsScaled(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 1000) // ¥1000, held as £5.30
	req.Currency = "JPY"
	req.BillingAmount, req.BillingCurrency = 5_30, "GBP"
	b.wantCode(req, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 5_30)
	rev := b.follow(req, cardnet.MTIReversalRequest)
	rev.BillingAmount, rev.BillingCurrency = 0, ""
	remain := int64(500) // ¥500 stays authorized: £2.65
	rev.ReplacementAmount = &remain
	b.wantCode(rev, cardnet.Approved)
	b.wantBalance(h.account, 100_00, 2_65)
}

// loseFirst loses the answer to the first authorization only (made and
// durable, but the gateway hears Unavailable).
type loseFirst struct {
	authorization.Service
	calls atomic.Int32
}

func (l *loseFirst) Authorize(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := l.Service.Authorize(ctx, req)
	if err == nil && l.calls.Add(1) == 1 {
		return nil, errors.New(errors.Unavailable, "connection reset")
	}
	return d, err
}

// slowLog delays the gateway's "unknown outcome" log line: it widens the
// moment between a decision ending and its handler answering.
type slowLog struct {
	slog.Handler
	logging chan struct{} // closed when the line is reached
	once    *sync.Once
}

func (h slowLog) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "unknown outcome") {
		h.once.Do(func() { close(h.logging) })
		time.Sleep(300 * time.Millisecond)
	}
	return nil
}
func (h slowLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h slowLog) WithGroup(string) slog.Handler            { return h }
func (h slowLog) Enabled(context.Context, slog.Level) bool { return true }

// A request whose decision failed with an unknown outcome is answered 91
// and reversed; a repeat arriving just after must hear the same 91, never
// an approval of money the gateway is releasing.
func TestRepeatDuringUndoHearsTheSame(t *testing.T) {
	b := newBank(t, bankOptions{wrap: func(s authorization.Service) authorization.Service { return &loseFirst{Service: s} }})
	sl := slowLog{Handler: slog.DiscardHandler, logging: make(chan struct{}), once: new(sync.Once)}
	b.gw.Log = slog.New(sl)
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 12_00)
	first := make(chan *cardnet.Message, 1)
	go func() {
		resp, err := send(b.client, MustMessage(t, req))
		if err != nil {
			t.Error(err)
		}
		first <- resp
	}()
	<-sl.logging // the decision has ended; its handler is logging
	repeat := *req
	repeat.MTI = "0101"
	second := b.send(&repeat)
	r1 := <-first
	waitLate(t, b.gw)
	if r1.Get(39) != string(cardnet.IssuerUnavailable) || second.Get(39) != string(cardnet.IssuerUnavailable) {
		t.Errorf("the request and its repeat were answered %s and %s, want 91 twice", r1.Get(39), second.Get(39))
	}
	b.wantBalance(h.account, 100_00, 0)
}

// hung never decides: every call waits for its context.
type hung struct {
	authorization.Service
	calls, outstanding, peak, queued, advised atomic.Int64
}

func (h *hung) Authorize(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	h.calls.Add(1)
	n := h.outstanding.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	<-ctx.Done()
	h.outstanding.Add(-1)
	return nil, ctx.Err()
}

func (h *hung) QueueReversal(context.Context, authorization.ReversalRequest) error {
	h.queued.Add(1)
	return nil
}

func (h *hung) Reverse(ctx context.Context, r authorization.ReversalRequest) (*authorization.Decision, error) {
	return &authorization.Decision{Approved: true, Reason: authorization.Approved}, nil
}

func (h *hung) Advise(ctx context.Context, r authorization.Request) (*authorization.Decision, error) {
	h.advised.Add(1)
	return &authorization.Decision{Approved: true, Reason: authorization.Approved}, nil
}

// Decisions that outlive their deadline count against MaxDecisions: a
// slow authorization service is not sent a call per request for as long
// as ReconcileTimeout. Past the bound, requests are answered per the
// timeout policy at once, each with its reversal queued.
func TestLateDecisionsAreBounded(t *testing.T) {
	auth := &hung{}
	const max = 6
	gw := &cardnet.Gateway{Auth: auth, Deadline: 10 * time.Millisecond, ReconcileTimeout: 2 * time.Second, MaxDecisions: max}
	addr := StartServer(t, &cardnet.Server{Handler: gw, Workers: 2})
	c := MustDial(t, addr)
	const n = 60
	for i := range n {
		r := authRequest(fmt.Sprintf("%06d", i+1), fmt.Sprintf("RRN%09d", i+1))
		if resp := MustSend(t, c, MustMessage(t, r)); resp.Get(39) != "91" {
			t.Fatalf("DE39 %s, want 91", resp.Get(39))
		}
	}
	if p := auth.peak.Load(); p > max {
		t.Errorf("%d decisions outstanding at once, MaxDecisions %d", p, max)
	}
	if q := auth.queued.Load(); q != n {
		t.Errorf("%d reversals queued for %d requests answered 91", q, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := gw.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// Once the late ones have ended, decisions are asked for again.
	before := auth.calls.Load()
	MustSend(t, c, MustMessage(t, authRequest("000999", "RRN000000999")))
	if auth.calls.Load() != before+1 {
		t.Errorf("after the late decisions ended, a request was not decided")
	}
}

// At MaxDecisions only requests are shed: a reversal or an advice reports
// what already happened, and is applied whenever it comes.
func TestReversalsAndAdvicesAreNotShed(t *testing.T) {
	auth := &hung{}
	gw := &cardnet.Gateway{Auth: auth, Deadline: 50 * time.Millisecond, ReconcileTimeout: time.Second, MaxDecisions: 1}
	// One late authorization takes the only place.
	if code := handled(t, gw, MustMessage(t, authRequest("000001", "RRN000000001"))); code != "91" {
		t.Fatalf("authorization answered %s, want 91", code)
	}
	if resp := gw.Handle(context.Background(), MustUnpack(t, reversal0400)); resp == nil || resp.Get(39) != string(cardnet.Approved) {
		t.Errorf("0400 at MaxDecisions answered %v, want 00 (applied)", resp)
	}
	adv := authRequest("000002", "RRN000000002")
	adv.MTI = "0120"
	adv.ResponseCode = cardnet.Approved
	adv.AuthID = "A1B2C3"
	if resp := gw.Handle(context.Background(), MustMessage(t, adv)); resp == nil || resp.Get(39) != string(cardnet.Approved) {
		t.Errorf("0120 at MaxDecisions answered %v, want 00 (applied)", resp)
	}
	if n := auth.advised.Load(); n != 1 {
		t.Errorf("%d advices applied, want 1", n)
	}
	// A request is still shed: the late authorization holds the place.
	before := auth.calls.Load()
	if code := handled(t, gw, MustMessage(t, authRequest("000003", "RRN000000003"))); code != "91" || auth.calls.Load() != before {
		t.Errorf("request at MaxDecisions answered %s after %d calls, want 91 without a call", code, auth.calls.Load()-before)
	}
	waitLate(t, gw)
}

// decidedStall answers the first financial request (or, with reversals,
// the first reversal) late, and says when it has been decided: a second
// message can then be sent while the first is decided and unanswered.
type decidedStall struct {
	authorization.Service
	delay     time.Duration
	reversals bool
	decided   chan struct{}
	once      sync.Once
}

func (s *decidedStall) stall() {
	first := false
	s.once.Do(func() { first = true; close(s.decided) })
	if first {
		time.Sleep(s.delay)
	}
}

func (s *decidedStall) Financial(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Financial(ctx, req)
	if !s.reversals {
		s.stall()
	}
	return d, err
}

func (s *decidedStall) Reverse(ctx context.Context, r authorization.ReversalRequest) (*authorization.Decision, error) {
	d, err := s.Service.Reverse(ctx, r)
	if s.reversals {
		s.stall()
	}
	return d, err
}

// A full reversal reusing the original's ids, sent while a partial one
// reusing them is being decided, is a reversal of its own: it does not
// share the partial's decision.
func TestFullReversalDuringPartialReusingIDsIsApplied(t *testing.T) {
	st := &decidedStall{delay: 600 * time.Millisecond, decided: make(chan struct{}), reversals: true}
	b := newBank(t, bankOptions{
		wrap:     func(s authorization.Service) authorization.Service { st.Service = s; return st },
		deadline: 3 * time.Second,
	})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 50_00)
	b.wantCode(req, cardnet.Approved)
	rev := b.follow(req, cardnet.MTIReversalRequest)
	rev.STAN, rev.TransmissionTime = req.STAN, req.TransmissionTime
	remain := int64(20_00)
	rev.ReplacementAmount = &remain
	done := make(chan *cardnet.Message, 1)
	go func() {
		resp, err := send(b.client, MustMessage(t, rev))
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	<-st.decided // the partial is decided, its answer not yet given
	full := *rev
	full.ReplacementAmount = nil
	b.wantCode(&full, cardnet.Approved)
	if resp := <-done; resp == nil || resp.Get(39) != string(cardnet.Approved) {
		t.Fatalf("the partial reversal was answered %v", resp)
	}
	waitLate(t, b.gw)
	b.wantBalance(h.account, 100_00, 0)
}

// A request that waited out its deadline for a worker is answered per the
// timeout policy without being decided: deciding it would only hold money
// to release it again.
func TestGatewayDoesNotDecideAnExpiredRequest(t *testing.T) {
	auth := &hung{}
	gw := &cardnet.Gateway{Auth: auth, Deadline: time.Second, ReconcileTimeout: 200 * time.Millisecond}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Millisecond))
	defer cancel()
	resp := gw.Handle(ctx, MustMessage(t, authRequest("000001", "RRN000000001")))
	if resp == nil || resp.Get(39) != string(cardnet.IssuerUnavailable) {
		t.Fatalf("answered %v, want 91", resp)
	}
	waitLate(t, gw)
	if n := auth.calls.Load(); n != 0 {
		t.Errorf("%d decisions asked for a request already past its deadline", n)
	}
	if n := auth.queued.Load(); n != 1 {
		t.Errorf("%d reversals queued, want 1 (as for any request answered per the timeout policy)", n)
	}
}

// panicky is an authorization service whose decisions panic.
type panicky struct{ hung }

func (*panicky) Authorize(context.Context, authorization.Request) (*authorization.Decision, error) {
	panic("bug in the decision")
}

// A decision that panics (it runs on a goroutine of its own) does not take
// the process down: its outcome is unknown, so it is answered per the
// timeout policy with its reversal queued and made.
func TestGatewaySurvivesAPanickingDecision(t *testing.T) {
	auth := &panicky{}
	gw := &cardnet.Gateway{Auth: auth, Deadline: time.Second}
	if code := handled(t, gw, MustMessage(t, authRequest("000001", "RRN000000001"))); code != "91" {
		t.Fatalf("answered %s, want 91", code)
	}
	waitLate(t, gw)
	if n := auth.queued.Load(); n != 1 {
		t.Errorf("%d reversals queued, want 1", n)
	}
}

// panickyReversal is an authorization service whose decisions hang and
// whose reversals panic.
type panickyReversal struct{ hung }

func (*panickyReversal) Reverse(context.Context, authorization.ReversalRequest) (*authorization.Decision, error) {
	panic("bug in the reversal")
}

// The Gateway's own reversal of a late decision runs on its own goroutine
// too: a panic there is a failed reversal (left to the authorization
// service's queue), not a crash.
func TestGatewaySurvivesAPanickingLateReversal(t *testing.T) {
	auth := &panickyReversal{}
	gw := &cardnet.Gateway{Auth: auth, Deadline: 50 * time.Millisecond, ReconcileTimeout: 100 * time.Millisecond}
	if code := handled(t, gw, MustMessage(t, authRequest("000001", "RRN000000001"))); code != "91" {
		t.Fatalf("answered %s, want 91", code)
	}
	waitLate(t, gw)
	if n := auth.queued.Load(); n != 1 {
		t.Errorf("%d reversals queued, want 1", n)
	}
}

// With a Tracer, each request is a span ("cardnet/0100", its answer's code
// on it), and the gateway's logs about it carry its trace id.
func TestGatewayTracesAndLogsUnderTheRequestSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	var logs bytes.Buffer
	gw := &cardnet.Gateway{Auth: &hung{}, Deadline: 20 * time.Millisecond, ReconcileTimeout: 100 * time.Millisecond,
		Tracer: tp.Tracer("test"), Log: obs.NewLogger(&logs, slog.LevelInfo, true)}
	if code := handled(t, gw, MustMessage(t, authRequest("000001", "RRN000000001"))); code != "91" {
		t.Fatalf("answered %s, want 91", code)
	}
	waitLate(t, gw)
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "cardnet/0100" {
		t.Fatalf("spans %v, want one cardnet/0100", spans)
	}
	var code string
	for _, kv := range spans[0].Attributes() {
		if kv.Key == "iso8583.response_code" {
			code = kv.Value.Emit()
		}
	}
	if code != "91" {
		t.Errorf("span's response code %q, want 91", code)
	}
	traceID := spans[0].SpanContext().TraceID().String()
	found := false
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l["msg"] == "cardnet: no decision within the deadline" {
			found = true
			if l["trace_id"] != traceID {
				t.Errorf("logged with trace_id %v, want %s", l["trace_id"], traceID)
			}
		}
	}
	if !found {
		t.Errorf("no timeout logged:\n%s", logs.String())
	}
}
