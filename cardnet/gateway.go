package cardnet

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/money"
)

// TimeoutPolicy is what the Gateway answers a request whose decision is not
// reached within its deadline.
type TimeoutPolicy int

const (
	// Decline91 answers 91, issuer unavailable: the acquirer declines (or
	// its network stands in on the 91).
	Decline91 TimeoutPolicy = iota
	// NoAnswer sends nothing, so that the network times out and stands in
	// for the issuer (and later sends an 0120 advice of what it decided).
	NoAnswer
)

// String names the policy as the --iso8583-on-timeout flag spells it.
func (p TimeoutPolicy) String() string {
	if p == NoAnswer {
		return "none"
	}
	return "91"
}

// ParseTimeoutPolicy reads "91" or "none".
func ParseTimeoutPolicy(s string) (TimeoutPolicy, error) {
	switch s {
	case "91", "decline":
		return Decline91, nil
	case "none", "no-answer", "stand-in":
		return NoAnswer, nil
	}
	return 0, fmt.Errorf("timeout policy must be 91 or none, not %q", s)
}

// MarshalText spells the policy as String does (flag.TextVar shows it).
func (p TimeoutPolicy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText reads the policy as ParseTimeoutPolicy does.
func (p *TimeoutPolicy) UnmarshalText(b []byte) error {
	v, err := ParseTimeoutPolicy(string(b))
	if err == nil {
		*p = v
	}
	return err
}

// DefaultReconcileTimeout bounds a decision that outlives its deadline,
// together with the reversal that reconciles it.
const DefaultReconcileTimeout = 30 * time.Second

// DefaultQueueTimeout bounds queuing the reversal of a request answered
// per the timeout policy, before the answer.
const DefaultQueueTimeout = 300 * time.Millisecond

// DefaultMaxDecisions bounds the decisions in progress at once, those that
// outlived their deadline included: four times the Server's default pool.
const DefaultMaxDecisions = 4 * DefaultWorkers

// timedOutTTL is how long the Gateway remembers a request it answered per
// its TimeoutPolicy, to answer a retransmission of it the same way.
const timedOutTTL = time.Hour

// DefaultMaxRemembered bounds the requests answered per the timeout policy
// that the Gateway remembers (about 200 bytes each).
const DefaultMaxRemembered = 1 << 20

// Gateway is the Handler that maps ISO 8583 requests to the authorization
// service and its decisions back to responses:
//
//	0100 purchase, cash, refund (DE3), pre-auth (DE25 06)  Authorize
//	0100 with DE90                                       Increment
//	0120 advice (stand-in when DE39 is 00 or 10)          Advise
//	0200 financial                                       Financial
//	0400, 0420 reversal (partial with DE95)              Reverse
//
// and their repeats (0101, 0121, 0201, 0401, 0421), which the authorization
// service answers identically since they carry the same network ids.
//
// Network ids: a message's NetworkID is its acquirer (DE32, leading zeros
// removed), STAN (DE11), RRN (DE37) and transmission time (DE7). DE90 names
// an original by acquirer, STAN and DE7 but not RRN: as networks do, a
// reversal or incremental carries its original's RRN in DE37.
//
// Deadline: each decision has at most Deadline (and the Server's
// per-request deadline, whichever is sooner). Past it the Gateway answers
// per OnTimeout and lets the decision finish in the background; if it then
// turns out approved with money held or moved, the Gateway reverses it (a
// reversal whose network id is derived from the request's, so doing it
// twice does it once), so that the bank's books agree with the decline or
// the silence it sent. Before it answers 91 that reversal is queued
// durably with the authorization service (QueueReversal, within
// QueueTimeout), which carries it out if this process dies first, and
// which declines the original if it has not been decided yet; if it cannot
// be queued the request gets no answer, so that the network times it out
// and reverses or stands in, as it does for an issuer that is down. The
// same holds for a decision that failed with an unknown outcome (the
// service unreachable, an internal error). A retransmission of such a
// request gets the same timeout answer. Nothing is answered approved before
// the authorization service has returned, which it does only once its
// decision is durable.
// Advices and reversals are not reconciled: the network sends them again
// until acknowledged.
//
// Set the fields before the first Handle; do not change them afterwards.
type Gateway struct {
	// Auth decides. Required.
	Auth authorization.Service
	// Deadline bounds each decision; DefaultDeadline if zero.
	Deadline time.Duration
	// OnTimeout is what to answer past the deadline.
	OnTimeout TimeoutPolicy
	// ReconcileTimeout bounds a late decision and its reversal;
	// DefaultReconcileTimeout if zero.
	ReconcileTimeout time.Duration
	// QueueTimeout bounds queuing a reversal before a timeout answer;
	// DefaultQueueTimeout if zero. The answer comes at most this long
	// after Deadline.
	QueueTimeout time.Duration
	// MaxDecisions bounds the decisions in progress, counting those that
	// outlived their deadline and the reversals of late ones: each is a
	// goroutine and a call to the authorization service. The Server's
	// pool bounds only the requests waiting for an answer; when the
	// service slows down, late decisions would otherwise pile up, rate
	// times ReconcileTimeout of them, on the service that is slow. At the
	// bound a request is answered per the timeout policy at once, its
	// reversal queued, without calling for a decision. DefaultMaxDecisions
	// if zero; it should be well above the Server's Workers.
	MaxDecisions int
	// MaxRemembered bounds the requests answered per the timeout policy
	// that the Gateway remembers, for an hour at most, to answer their
	// retransmissions alike (an hour of an issuer outage at a few hundred
	// requests a second would otherwise grow without bound). Past it the
	// oldest are forgotten, and a retransmission of a forgotten one is
	// checked with the authorization service (a lookup), as every
	// decision it read back rather than made is (Decision.Replayed).
	// DefaultMaxRemembered if zero.
	MaxRemembered int
	// Log receives timeouts, reconciliations and failures; discarded if
	// nil. Card numbers are masked, card secrets left out.
	Log *slog.Logger
	// Tracer, if set, records each request as a span, "cardnet/0100",
	// the parent of the calls it makes; its logs carry the trace id.
	Tracer trace.Tracer
	// Metrics, if set, receives the gateway's metrics:
	// corebank_cardnet_requests_total{mti,code},
	// corebank_cardnet_decision_seconds{mti},
	// corebank_cardnet_timeouts_total{mti} and
	// corebank_cardnet_reconciliations_total{outcome}.
	Metrics prometheus.Registerer

	once      sync.Once
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	timeouts  *prometheus.CounterVec
	shed      *prometheus.CounterVec
	reconcile *prometheus.CounterVec

	started    time.Time // when it began (monotonic)
	mu         sync.Mutex
	lastForgot time.Time           // when it last forgot a timeout (monotonic); zero if never
	flights    map[string]*flight  // decisions in progress, by message type, network key and content
	deciding   map[string]string   // requests' flights in progress (fkey), by message type and network key
	busy       int                 // flights, plus reversals of late decisions under way
	timedOut   map[string]timedOut // requests answered per OnTimeout, by network key and content (reqID.key)
	expiry     []timedOutKey       // timedOut's keys in the order recorded, to forget old ones
	bg         sync.WaitGroup      // decisions outliving their deadline
}

// timedOut is a request answered (or left unanswered) per the timeout
// policy.
type timedOut struct {
	at     time.Time
	queued bool // its reversal is queued: 91 may be answered
}

// timedOutKey is one recording in Gateway.timedOut, for expiry.
type timedOutKey struct {
	key string
	at  time.Time
}

// flight is one decision in progress, shared by the retransmissions of its
// request that arrive meanwhile, so that all of them are answered alike.
type flight struct {
	done     chan struct{} // closed when d and err are set
	d        *authorization.Decision
	err      error
	timedOut bool // set, under Gateway.mu, only while done is open
	undoing  bool // set, under Gateway.mu, once a reversal of its error is under way
}

var _ Handler = (*Gateway)(nil)

func (g *Gateway) init() {
	g.once.Do(func() {
		if g.Deadline <= 0 {
			g.Deadline = DefaultDeadline
		}
		if g.ReconcileTimeout <= 0 {
			g.ReconcileTimeout = DefaultReconcileTimeout
		}
		if g.QueueTimeout <= 0 {
			g.QueueTimeout = DefaultQueueTimeout
		}
		if g.MaxDecisions <= 0 {
			g.MaxDecisions = DefaultMaxDecisions
		}
		if g.MaxRemembered <= 0 {
			g.MaxRemembered = DefaultMaxRemembered
		}
		if g.Log == nil {
			g.Log = slog.New(slog.DiscardHandler)
		}
		g.started = time.Now()
		g.flights = make(map[string]*flight)
		g.deciding = make(map[string]string)
		g.timedOut = make(map[string]timedOut)
		g.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corebank_cardnet_requests_total",
			Help: "ISO 8583 requests answered by the gateway, by request MTI (repeats as their original) and response code; code \"none\" when deliberately unanswered.",
		}, []string{"mti", "code"})
		g.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "corebank_cardnet_decision_seconds",
			Help:    "Time from a request reaching the gateway to its answer, by request MTI.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 1.5, 2.5, 5},
		}, []string{"mti"})
		g.timeouts = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corebank_cardnet_timeouts_total",
			Help: "Requests answered per the timeout policy because no decision came within the deadline, by request MTI.",
		}, []string{"mti"})
		g.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corebank_cardnet_shed_total",
			Help: "Requests answered per the timeout policy without a decision because MaxDecisions were in progress, by request MTI.",
		}, []string{"mti"})
		g.reconcile = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "corebank_cardnet_reconciliations_total",
			Help: "Late decisions after a timeout answer, by outcome: reversed, declined (nothing to undo), failed (left queued with the authorization service), not_queued (the reversal could not be queued, so the request went unanswered).",
		}, []string{"outcome"})
		if g.Metrics != nil {
			for _, c := range []prometheus.Collector{g.requests, g.latency, g.timeouts, g.shed, g.reconcile} {
				if err := g.Metrics.Register(c); err != nil {
					g.Log.Warn("cardnet: gateway metric not registered", "err", err)
				}
			}
		}
	})
}

// Wait waits until the decisions that outlived their deadline have finished
// and been reconciled, or ctx ends. Call it after the Server has shut down
// and before the authorization service closes.
func (g *Gateway) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		g.bg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cardnet: waiting for late decisions: %w", ctx.Err())
	}
}

// Handle implements Handler.
func (g *Gateway) Handle(ctx context.Context, msg *Message) *Message {
	g.init()
	start := time.Now()
	base := baseMTI(msg.MTI())
	var span trace.Span
	if g.Tracer != nil {
		ctx, span = g.Tracer.Start(ctx, "cardnet/"+base, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("iso8583.mti", msg.MTI())))
	}
	resp, code := g.handle(ctx, msg, start)
	if span != nil {
		span.SetAttributes(attribute.String("iso8583.response_code", code))
		span.End()
	}
	g.latency.WithLabelValues(base).Observe(time.Since(start).Seconds())
	g.requests.WithLabelValues(base, code).Inc()
	return resp
}

// handle returns the response and its code for the metrics ("none" when
// there is no response) to msg, which arrived at arrived.
func (g *Gateway) handle(ctx context.Context, msg *Message, arrived time.Time) (*Message, string) {
	req, err := ParseRequest(msg)
	if err != nil {
		return g.respond(msg, Answer{Code: ResponseCodeFor(err)})
	}
	log := g.Log.With("req", req)
	call, reconcile, code, digest := g.route(req)
	if call == nil {
		log.WarnContext(ctx, "cardnet: request not supported", "code", string(code))
		return g.respond(msg, Answer{Code: code})
	}
	n := reqID{ids: networkID(req), digest: digest}
	key := n.key()

	// A flight is shared by retransmissions of one message only: a
	// reversal or advice may reuse its original's ids (same acquirer,
	// STAN, DE7 and RRN) and must not join the original's decision; two
	// reversals reusing them differ by DE95 alone (see reversalRequest).
	// And another request under one's ids (another card, amount or
	// currency) must not hear its answer: while the first is decided it
	// is answered 94 at once (neither decided, nor shed or timed out,
	// which would reverse the first under those ids); after, the
	// authorization service, which finds the first recorded, answers it
	// conflict (94).
	mkey := req.BaseMTI() + " " + n.ids.Key()
	fkey := mkey + " " + digest
	if req.ReplacementAmount != nil {
		fkey += " R" + strconv.FormatInt(*req.ReplacementAmount, 10)
	}
	// A request that waited out its deadline for a worker is answered per
	// the timeout policy as it stands: deciding it now would only hold
	// money to release it again. (Advices and reversals are applied
	// whenever they come: they report what happened.)
	expired := reconcile && ctx.Err() != nil
	f, joined, late, other := g.join(mkey, fkey, key, reconcile, expired)
	if other {
		log.WarnContext(ctx, "cardnet: another request under the network ids of one being decided; answering 94")
		return g.respond(msg, Answer{Code: DuplicateTransmission})
	}
	if late {
		log.InfoContext(ctx, "cardnet: retransmission of a request answered per the timeout policy; answering alike")
		return g.reconciledAnswer(ctx, msg, n, log)
	}
	if f == nil {
		if expired {
			g.timeouts.WithLabelValues(baseMTI(req.MTI)).Inc()
			log.WarnContext(ctx, "cardnet: request past its deadline before it was decided; answering per the timeout policy without deciding", "policy", g.OnTimeout.String())
		} else {
			// MaxDecisions in progress: shed, as if this one were late.
			g.shed.WithLabelValues(baseMTI(req.MTI)).Inc()
			log.WarnContext(ctx, "cardnet: too many decisions in progress; answering per the timeout policy without deciding", "max", g.MaxDecisions, "policy", g.OnTimeout.String())
		}
		if !reconcile {
			return g.timeoutAnswer(msg)
		}
		g.mu.Lock()
		g.markTimedOut(key)
		g.mu.Unlock()
		return g.reconciledAnswer(ctx, msg, n, log)
	}
	if !joined {
		g.bg.Add(1)
		go g.fly(ctx, n, mkey, fkey, f, call, reconcile, log)
	}
	deadline := time.NewTimer(g.Deadline)
	defer deadline.Stop()
	select {
	case <-f.done:
	case <-deadline.C:
	case <-ctx.Done():
	}
	g.mu.Lock()
	select {
	case <-f.done:
	default:
		f.timedOut = true
		if reconcile {
			g.rememberTimeout(key, false)
		}
	}
	timedOut := f.timedOut
	lastForgot := g.lastForgot
	g.mu.Unlock()

	if timedOut {
		g.timeouts.WithLabelValues(baseMTI(req.MTI)).Inc()
		log.WarnContext(ctx, "cardnet: no decision within the deadline", "policy", g.OnTimeout.String())
		if !reconcile {
			return g.timeoutAnswer(msg)
		}
		return g.reconciledAnswer(ctx, msg, n, log)
	}
	if f.err != nil && reconcile && unknownOutcome(f.err) {
		// The decision may have been made and its answer lost (the
		// authorization service unreachable, a timeout on the way): as
		// with a late decision, answer per the timeout policy and reverse
		// whatever was done, so that the books agree with the answer.
		log.ErrorContext(ctx, "cardnet: authorization failed with an unknown outcome; answering per the timeout policy and reversing", "err", f.err, "policy", g.OnTimeout.String())
		return g.undo(ctx, msg, n, f, log)
	}
	if f.err != nil {
		code := ResponseCodeFor(f.err)
		log.ErrorContext(ctx, "cardnet: authorization failed", "err", f.err, "code", string(code))
		return g.respond(msg, Answer{Code: code})
	}
	if reconcile && (req.IsRepeat() || g.beyondMemory(f.d, lastForgot, arrived)) {
		// A repeat, or a duplicate of a request decided before this
		// Gateway's memory of its timeouts reaches: what was answered
		// then may have been a timeout's that it does not remember.
		reversed, err := g.reversedLate(ctx, key, n)
		if err != nil {
			// Whether the first answer was a timeout's is unknown, so
			// this decision cannot be answered; and it must not stand
			// unanswered either (silence would leave its money held):
			// undone and answered as a late decision is.
			log.ErrorContext(ctx, "cardnet: cannot tell whether a repeat's request was reversed late; answering per the timeout policy and reversing it", "err", err)
			return g.undo(ctx, msg, n, f, log)
		}
		if reversed {
			// A repeat after a restart of a request whose late approval
			// was reversed (or its reversal queued): answer as the
			// timeout did.
			return g.timeoutAnswer(msg)
		}
	}
	a := g.answer(req, f.d)
	resp, err := Respond(msg, a)
	undoable := reconcile && f.d.Approved && (f.d.HoldID != "" || f.d.TransferID != "")
	if err == nil && undoable {
		// The Server packs it; an approval the spec cannot carry (a
		// loaded spec with a numeric DE38, say) would go out as 96 with
		// the money held: find out now, while it can still be undone.
		// (Other answers hold nothing: the Server's 96 is enough.)
		_, err = resp.Pack()
	}
	if err == nil {
		return resp, string(a.Code)
	}
	if undoable {
		// An approval that cannot be said: undo it, as after a timeout,
		// so that the books agree with what the network hears.
		log.ErrorContext(ctx, "cardnet: an approval cannot be laid out; reversing it and answering per the timeout policy", "err", err)
		return g.undo(ctx, msg, n, f, log)
	}
	return g.respond(msg, a)
}

// undo answers msg (network id n), whose decided flight f the books must
// not keep (an unknown outcome, an approval that cannot be said), as a late
// decision is answered, and reverses what f did: once per flight, in the
// background.
func (g *Gateway) undo(ctx context.Context, msg *Message, n reqID, f *flight, log *slog.Logger) (*Message, string) {
	key := n.key()
	g.mu.Lock()
	g.markTimedOut(key)
	first := !f.undoing
	f.undoing = true
	if first {
		g.busy++ // may pass MaxDecisions: the reversal must run
	}
	g.mu.Unlock()
	resp, code := g.reconciledAnswer(ctx, msg, n, log)
	if first {
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			defer g.done()
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.ReconcileTimeout)
			defer cancel()
			g.reverseLate(rctx, n, f.d, f.err, log)
		}()
	}
	return resp, code
}

// join returns the flight of fkey, starting one if there is none (joined
// false: the caller must fly it), or nil if MaxDecisions are in progress or the request expired;
// or late, if reconcile and the request with network key was answered per
// the timeout policy: checked under the same lock, so that a decision
// ending with an unknown outcome (fly records its 91) is never followed by
// a new decision of its retransmission; or other, if reconcile and
// another request (another fkey) under the same message type and ids
// (mkey) is being decided.
func (g *Gateway) join(mkey, fkey, key string, reconcile, expired bool) (f *flight, joined, late, other bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.timedOut[key]; ok && reconcile {
		return nil, false, true, false
	}
	if f, ok := g.flights[fkey]; ok {
		return f, true, false, false
	}
	if d, ok := g.deciding[mkey]; ok && reconcile && d != fkey {
		return nil, false, false, true
	}
	// Only a request is shed: advices and reversals report what already
	// happened, and are applied whenever they come (they still count).
	if expired || (reconcile && g.busy >= g.MaxDecisions) {
		return nil, false, false, false
	}
	g.busy++
	f = &flight{done: make(chan struct{})}
	g.flights[fkey] = f
	if reconcile {
		g.deciding[mkey] = fkey
	}
	return f, false, false, false
}

// done ends one of the decisions counted against MaxDecisions.
func (g *Gateway) done() {
	g.mu.Lock()
	g.busy--
	g.mu.Unlock()
}

// fly runs the decision of f on a context that outlives the request's
// deadline, and reconciles it if the request was answered per the timeout
// policy.
func (g *Gateway) fly(ctx context.Context, n reqID, mkey, fkey string, f *flight, call decide, reconcile bool, log *slog.Logger) {
	defer g.bg.Done()
	defer g.done() // after the late decision's reversal, if any
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.ReconcileTimeout)
	defer cancel()
	d, err := safely(dctx, call)
	g.mu.Lock()
	f.d, f.err = d, err
	close(f.done)
	delete(g.flights, fkey)
	if reconcile && g.deciding[mkey] == fkey {
		delete(g.deciding, mkey)
	}
	if reconcile && !f.timedOut && err != nil && unknownOutcome(err) {
		// Answered per the timeout policy (see undo): a retransmission
		// arriving from now on must hear the same, not start a decision.
		g.markTimedOut(n.key())
	}
	timedOut := f.timedOut
	g.mu.Unlock()
	if timedOut && reconcile {
		g.reverseLate(dctx, n, d, err, log)
	}
}

// decide is one call to the authorization service.
type decide func(ctx context.Context) (*authorization.Decision, error)

// reverseSafely is the Gateway's reversal of the request with network id n,
// run as safely runs a decision: on the Gateway's own goroutines, a panic
// is an Internal error (not retried here; the queued reversal is carried
// out by the authorization service's sweep).
func (g *Gateway) reverseSafely(ctx context.Context, n reqID) (*authorization.Decision, error) {
	return safely(ctx, func(ctx context.Context) (*authorization.Decision, error) {
		return g.Auth.Reverse(ctx, lateReversal(n))
	})
}

// safely runs call, turning a panic into an Internal error: the decision
// runs on a goroutine of its own, outside the Server's recovery, and its
// outcome is unknown (answered and reversed as such).
func safely(ctx context.Context, call decide) (d *authorization.Decision, err error) {
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, errors.Errorf(errors.Internal, "authorization panicked: %v", r)
		}
	}()
	return call(ctx)
}

// latePrefix marks the network id of the Gateway's own reversal of a late
// decision: "GW" and the RRN, which no 12-character network RRN equals.
const latePrefix = "GW"

// lateReversalID is the network id of the Gateway's reversal of the
// request n: derived, so that it is done once however often it is
// attempted; its content's digest (the first eight digits, after DE7's)
// tells apart the reversals of two requests under the same ids.
func lateReversalID(n reqID) authorization.NetworkID {
	r := n.ids
	r.RRN = latePrefix + r.RRN
	if n.digest != "" {
		r.TransmissionTime += "." + n.digest[:8]
	}
	return r
}

// reqID identifies a message for the Gateway's flights, timeouts and own
// reversals: its network ids, and what it asks (authorization's
// Request.Digest, the same identity the service checks a replay by), so
// that another request reusing the ids is never taken for it (answered
// per the timeout policy, it reverses nothing of the first's).
type reqID struct {
	ids    authorization.NetworkID
	digest string // empty for reversals (told apart by DE95 instead)
}

// key is n's key in the Gateway's memory of its timeouts.
func (n reqID) key() string { return n.ids.Key() + "/" + n.digest }

// unknownOutcome reports whether a failed decision may nevertheless have
// held or moved money: the authorization service or the ledger did not
// answer (timeout, unavailable) or failed unexpectedly (internal).
func unknownOutcome(err error) bool {
	switch errors.CodeOf(err) {
	case errors.Timeout, errors.Unavailable, errors.Internal:
		return true
	}
	return false
}

// lateReversal is the Gateway's reversal of the request with network id
// n: of an incremental, it undoes the increment (the authorization service
// finds the original it grew).
func lateReversal(n reqID) authorization.ReversalRequest {
	return authorization.ReversalRequest{Network: lateReversalID(n), Original: n.ids, OwnDecision: true, OriginalDigest: n.digest}
}

// reconciledAnswer answers msg (network id n), which is answered per the
// timeout policy, once the reversal that reconciles it is queued: 91, or
// no answer if the policy says so or the reversal cannot be queued within
// QueueTimeout (so that the network, not us, reverses or stands in).
func (g *Gateway) reconciledAnswer(ctx context.Context, msg *Message, n reqID, log *slog.Logger) (*Message, string) {
	key := n.key()
	g.mu.Lock()
	queued := g.timedOut[key].queued
	g.mu.Unlock()
	if !queued {
		qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.QueueTimeout)
		err := g.Auth.QueueReversal(qctx, lateReversal(n))
		cancel()
		if err != nil {
			g.reconcile.WithLabelValues("not_queued").Inc()
			log.ErrorContext(ctx, "cardnet: the reversal of a request without a decision could not be queued; leaving it unanswered, for the network to reverse or stand in", "err", err)
			return nil, "none"
		}
		g.mu.Lock()
		g.rememberTimeout(key, true)
		g.mu.Unlock()
	}
	return g.timeoutAnswer(msg)
}

// reverseLate carries out the queued reversal of a late decision answered
// per the timeout policy: an approval that held or moved money, or an
// error (the effect may be half done: the reversal completes the original
// first, or records that it is reversed so that the original is declined
// when retransmitted). A decline is reversed too, releasing nothing, so
// that the queue is emptied at once.
func (g *Gateway) reverseLate(ctx context.Context, n reqID, d *authorization.Decision, derr error, log *slog.Logger) {
	rd, err := g.reverseSafely(ctx, n)
	for wait := 100 * time.Millisecond; err != nil && errors.CodeOf(err).Retryable(); wait = min(2*wait, 5*time.Second) {
		// The authorization service or the ledger is briefly away: the
		// reversal is idempotent, try again until ReconcileTimeout.
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			rd, err = g.reverseSafely(ctx, n)
			continue
		}
		break
	}
	if err != nil {
		g.reconcile.WithLabelValues("failed").Inc()
		log.ErrorContext(ctx, "cardnet: late decision not reversed yet; the authorization service carries out its queued reversal later, if it was queued", "err", err)
		return
	}
	if derr == nil && (!d.Approved || (d.HoldID == "" && d.TransferID == "")) {
		g.reconcile.WithLabelValues("declined").Inc()
		log.InfoContext(ctx, "cardnet: late decision needed no reconciliation", "approved", d.Approved, "reason", string(d.Reason))
		return
	}
	g.reconcile.WithLabelValues("reversed").Inc()
	log.WarnContext(ctx, "cardnet: late decision reversed to match the timeout answer", "reversal", rd.ID, "released", rd.Amount, "currency", string(rd.Currency))
}

// replaySlack is the slack of beyondMemory's comparisons beyond the
// request's own time in flight: two hosts' clocks' rates over the seconds
// in which a network retransmits.
const replaySlack = 50 * time.Millisecond

// beyondMemory reports whether d, a decision the authorization service
// read back rather than made (Decision.Replayed), may be older than what
// this Gateway remembers answering per its timeout policy: made before it
// started, or no later than a timeout it has since forgotten could have
// been decided (ReconcileTimeout after it was answered). It compares the
// decision's age, by the service's clock, with durations on this Gateway's
// monotonic clock, never one host's time with another's: a duplicate of a
// decision made and answered in this Gateway's life, and remembered, needs
// no lookup (which, failing, would turn an approval into a reversal). The
// age was taken when the service answered, after the request arrived: the
// time since arrived bounds how much older it has grown since.
func (g *Gateway) beyondMemory(d *authorization.Decision, lastForgot, arrived time.Time) bool {
	if !d.Replayed {
		return false
	}
	margin := time.Since(arrived) + replaySlack
	if d.Age >= time.Since(g.started)-margin {
		return true
	}
	return !lastForgot.IsZero() && d.Age >= time.Since(lastForgot)-g.ReconcileTimeout-margin
}

// reversedLate reports whether the Gateway reversed the request with
// network id n late (or queued its reversal), before a restart that forgot
// it, or among the timeouts it has forgotten: checked for repeats and for
// decisions beyond its memory. An error means it cannot tell.
func (g *Gateway) reversedLate(ctx context.Context, key string, n reqID) (bool, error) {
	_, err := g.Auth.ByNetworkID(ctx, lateReversalID(n))
	if errors.Is(err, errors.NotFound) && n.digest != "" {
		// Gateways before the digest was part of the id wrote "GW" and
		// the RRN alone: a repeat after an upgrade must find those too.
		_, err = g.Auth.ByNetworkID(ctx, lateReversalID(reqID{ids: n.ids}))
	}
	if errors.Is(err, errors.NotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	g.mu.Lock()
	g.rememberTimeout(key, true)
	g.mu.Unlock()
	return true, nil
}

// rememberTimeout records, under g.mu, that the request with key was
// answered per the timeout policy (queued: its reversal is queued), and
// forgets old ones: past timedOutTTL, or the oldest past MaxRemembered.
func (g *Gateway) rememberTimeout(key string, queued bool) {
	now := time.Now()
	_, again := g.timedOut[key] // recorded again (its reversal queued since): no new request
	for len(g.expiry) > 0 && (now.Sub(g.expiry[0].at) > timedOutTTL || (!again && len(g.timedOut) >= g.MaxRemembered)) {
		e := g.expiry[0]
		g.expiry = g.expiry[1:]
		if t, ok := g.timedOut[e.key]; ok && t.at.Equal(e.at) {
			delete(g.timedOut, e.key) // not recorded again since
			g.lastForgot = now
		}
	}
	g.timedOut[key] = timedOut{at: now, queued: queued}
	g.expiry = append(g.expiry, timedOutKey{key, now})
}

// markTimedOut records, under g.mu, that the request with key is answered
// per the timeout policy, unless it is already (its reversal maybe queued).
func (g *Gateway) markTimedOut(key string) {
	if _, ok := g.timedOut[key]; !ok {
		g.rememberTimeout(key, false)
	}
}

// timeoutAnswer answers msg per the timeout policy.
func (g *Gateway) timeoutAnswer(msg *Message) (*Message, string) {
	if g.OnTimeout == NoAnswer {
		return nil, "none"
	}
	return g.respond(msg, Answer{Code: IssuerUnavailable})
}

// respond lays out the response, answering 96 if a cannot be.
func (g *Gateway) respond(msg *Message, a Answer) (*Message, string) {
	resp, err := Respond(msg, a)
	if err != nil {
		g.Log.Error("cardnet: cannot lay out the response; answering 96", "err", err, "code", string(a.Code))
		resp, err = Respond(msg, Answer{Code: SystemMalfunction})
		if err != nil {
			return nil, "none"
		}
		return resp, string(SystemMalfunction)
	}
	return resp, string(a.Code)
}

// route returns the call that decides req, whether a late approval of it
// must be reconciled, and the Digest of the authorization request it
// sends (none for a reversal); or nil and the response code refusing it.
func (g *Gateway) route(req *Request) (call decide, reconcile bool, code ResponseCode, digest string) {
	switch req.BaseMTI() {
	case MTIAuthorizationRequest:
		r := authRequest(req)
		credit := req.ProcessingCode.Type().Credit()
		if req.Incremental() && !credit {
			// (A refund naming its purchase in DE90 is a refund: it
			// holds nothing, it never grows the purchase's hold.)
			r.Kind = authorization.KindIncremental
			return func(ctx context.Context) (*authorization.Decision, error) { return g.Auth.Increment(ctx, r) }, true, "", r.Digest()
		}
		switch req.ProcessingCode.Type() {
		case Purchase, PurchaseWithCashback:
			r.Kind = authorization.KindPurchase
			if req.PreAuth() {
				r.Kind = authorization.KindPreauth
			}
		case CashWithdrawal:
			r.Kind = authorization.KindCash
		case Refund, OriginalCredit:
			r.Kind, r.Original = authorization.KindRefund, nil
		default:
			return nil, false, ReasonInvalidTransaction.ResponseCode(req.MTI), ""
		}
		return func(ctx context.Context) (*authorization.Decision, error) { return g.Auth.Authorize(ctx, r) }, true, "", r.Digest()
	case MTIFinancialRequest:
		switch req.ProcessingCode.Type() {
		case Purchase, PurchaseWithCashback, CashWithdrawal:
		default:
			return nil, false, ReasonInvalidTransaction.ResponseCode(req.MTI), ""
		}
		r := authRequest(req)
		r.Kind = authorization.KindFinancial
		return func(ctx context.Context) (*authorization.Decision, error) { return g.Auth.Financial(ctx, r) }, true, "", r.Digest()
	case MTIAuthorizationAdvice:
		r := authRequest(req)
		if o := originalID(req); o != nil && *o == r.Network {
			// An advice reusing its original's ids (acquirer, STAN, DE7,
			// RRN) is a message of its own: it keeps DE90, and its
			// identity is the original's marked "A" after DE7 (its RRN,
			// which clearing matches by, unchanged).
			r.Original = o
			r.Network.TransmissionTime += "A"
		}
		if req.ProcessingCode.Type().Credit() && req.ResponseCode.Approval() {
			// The network approved a refund on our behalf: a credit holds
			// nothing, and its money moves with clearing, as for a 0100
			// refund.
			r.Kind, r.Original, r.StandIn, r.AuthCode = authorization.KindRefund, nil, true, req.AuthID
			return func(ctx context.Context) (*authorization.Decision, error) { return g.Auth.Authorize(ctx, r) }, false, "", r.Digest()
		}
		r.Kind = authorization.KindAdvice
		r.StandIn = req.ResponseCode.Approval()
		if r.StandIn {
			r.AuthCode = req.AuthID // DE38: the code the network approved with
		}
		return func(ctx context.Context) (*authorization.Decision, error) { return g.Auth.Advise(ctx, r) }, false, "", r.Digest()
	case MTIReversalRequest, MTIReversalAdvice:
		return func(ctx context.Context) (*authorization.Decision, error) {
			return g.Auth.Reverse(ctx, reversalRequest(req))
		}, false, "", ""
	}
	return nil, false, ReasonInvalidTransaction.ResponseCode(req.MTI), ""
}

// networkID is req's identity for the authorization service.
func networkID(req *Request) authorization.NetworkID {
	t := req.Trace()
	return authorization.NetworkID{
		Acquirer:         authorization.Acquirer(t.AcquirerID),
		STAN:             req.STAN,
		RRN:              req.RRN,
		TransmissionTime: req.TransmissionTime.String(),
	}
}

// originalID is the identity of the message DE90 names; its RRN is req's
// (see Gateway).
func originalID(req *Request) *authorization.NetworkID {
	if req.Original == nil {
		return nil
	}
	t := req.Original.Trace()
	return &authorization.NetworkID{
		Acquirer:         authorization.Acquirer(t.AcquirerID),
		STAN:             t.STAN,
		RRN:              req.RRN,
		TransmissionTime: t.TransmissionTime.String(),
	}
}

// unknownChannel is what the card service is told when DE22 names no
// channel it knows: card controls decline it (57).
const unknownChannel card.Channel = "unknown"

func authRequest(req *Request) authorization.Request {
	r := authorization.Request{
		Network:         networkID(req),
		PAN:             authorization.PAN(req.PAN),
		CVC:             authorization.CVC(req.CVC2),
		Amount:          req.Amount,
		Currency:        req.Currency,
		BillingAmount:   req.BillingAmount,
		BillingCurrency: req.BillingCurrency,
		MCC:             req.MCC,
		Channel:         card.Channel(req.Channel()),
		MerchantName:    req.Merchant.Name,
		MerchantCity:    req.Merchant.City,
		MerchantCountry: req.Merchant.Country,
		Original:        originalID(req),
		// Never for a purchase with cash back: a partial approval could
		// leave less than the cash the terminal hands out. Declined (51)
		// instead, which the networks always allow.
		PartialAllowed: req.PartialApproval && req.ProcessingCode.Type() != PurchaseWithCashback,
	}
	if r.Channel == card.Channel(ChannelUnknown) {
		r.Channel = unknownChannel
	}
	if !req.Expiry.IsZero() {
		r.Expiry = req.Expiry.String()
	}
	if r.Original != nil && *r.Original == r.Network {
		r.Original = nil // names itself: nothing to build on
	}
	return r
}

func reversalRequest(req *Request) authorization.ReversalRequest {
	r := authorization.ReversalRequest{
		Network: networkID(req),
		Advice:  req.BaseMTI() == MTIReversalAdvice,
	}
	if o := originalID(req); o != nil {
		r.Original = *o
	}
	if r.Network == r.Original {
		// Some networks reuse the original's STAN and DE7 in a reversal:
		// the reversal still needs an identity of its own, and one that a
		// different reversal of the same original (partial, then full)
		// does not share, while a retransmission does: DE95 is part of it.
		r.Network.RRN = "R" + r.Network.RRN
		if req.ReplacementAmount != nil {
			r.Network.TransmissionTime += "R" + strconv.FormatInt(*req.ReplacementAmount, 10)
		}
	}
	if req.ReplacementAmount != nil {
		r.Amount = *req.ReplacementAmount
		switch {
		case req.BillingAmount > 0 && req.Amount > 0:
			// DE95 is in the transaction currency; the hold in the billing
			// currency: scale by the original's rate.
			r.Amount = authorization.ScaleRemaining(*req.ReplacementAmount, req.BillingAmount, req.Amount)
		case r.Amount > 0 && req.Amount > 0:
			// Without DE6 (optional in an 0400) only the record the
			// reversal releases knows its billing currency and rate: the
			// service scales DE95 by them when they differ from DE49.
			r.AmountCurrency, r.OriginalAmount = req.Currency, req.Amount
		}
	}
	return r
}

// answer lays out decision d of req.
func (g *Gateway) answer(req *Request, d *authorization.Decision) Answer {
	a := Answer{Code: Reason(d.Reason).ResponseCode(req.MTI)}
	if d.Approved && len(d.AuthCode) == 6 {
		a.AuthID = d.AuthCode
	}
	if a.Code == PartiallyApproved {
		if req.BillingAmount > 0 {
			a.BillingAmount = d.Amount
			// The transaction amount approved, at the request's rate,
			// rounded down so the merchant is never told more.
			a.Amount = money.MulDiv(req.Amount, d.Amount, req.BillingAmount)
		} else {
			a.Amount = d.Amount
		}
		// Rounding can push it out of what a partial approval may say;
		// the merchant is then told a little less than is held.
		a.Amount = min(max(a.Amount, 1), req.Amount-1)
	}
	return a
}
