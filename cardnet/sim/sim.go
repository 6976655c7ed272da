package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/money"
)

// Simulator is a card network connected to one issuer: it signs on, sends
// the issuer the traffic of the cards' holders at the catalogue's merchants
// at Rate scenarios per second for Duration, echoes meanwhile, signs off,
// and writes the clearing file of what was approved.
//
// Set the fields, then call Run once.
type Simulator struct {
	// Addr is the issuer gateway's ISO 8583 address. Required.
	Addr string
	// Spec is the message layout; cardnet.DefaultSpec() if nil.
	Spec *cardnet.Spec
	// Cards pay. Required.
	Cards []Card
	// Acquirers are the acquiring institution ids (DE32) traffic comes
	// from; DefaultAcquirers if empty. Each merchant banks with one.
	Acquirers []string
	// Rate is scenarios started per second, paced from a schedule (open
	// loop: a slow answer does not slow the schedule). Required.
	Rate float64
	// Duration is how long scenarios are started for; the run then waits
	// for the last to finish. Required.
	Duration time.Duration
	// Mix weighs the scenarios; DefaultMix if zero.
	Mix Mix
	// Rand draws every choice; seeded from the clock if nil.
	Rand *rand.Rand
	// Log receives the run's progress; discarded if nil. Card numbers are
	// masked, CVCs never logged.
	Log *slog.Logger

	// EchoEvery is the interval of echo tests (0800/301); 30 s if zero.
	EchoEvery time.Duration
	// Timeout bounds the wait for each answer; 10 s if zero.
	Timeout time.Duration
	// MaxInFlight bounds the scenarios under way at once: at the bound the
	// schedule waits. 512 if zero.
	MaxInFlight int
	// Network names the network in the clearing file; "SIMNET" if empty.
	Network string
	// Clearing receives the clearing file at the end of a run; none is
	// written if nil.
	Clearing io.Writer
	// ClearingFormat lays the clearing file out; CSVClearing if nil.
	ClearingFormat ClearingWriter
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Approval is an authorization the issuer approved (or the network
// approved for it, for a stand-in advice), and what remains of it after
// increments and reversals: what the acquirer will clear.
type Approval struct {
	Kind           Kind
	MTI            string // of the approved request: 0100, 0120, 0200
	Network        NetworkID
	PAN            cardnet.PAN
	ProcessingCode cardnet.ProcessingCode
	// Amount is approved in Currency (the merchant's), BillingAmount in
	// BillingCurrency (the card's): the same when the currencies are.
	Amount          int64
	Currency        money.Currency
	BillingAmount   int64
	BillingCurrency money.Currency
	AuthCode        string
	Code            cardnet.ResponseCode // 00, or 10 for a partial approval
	Merchant        Merchant
	// Outstanding and OutstandingBilling are what remains authorized after
	// increments and reversals.
	Outstanding, OutstandingBilling int64
}

// Result is what a run sent and got back.
type Result struct {
	Elapsed time.Duration
	// Scenarios counts the scenarios played, by kind.
	Scenarios map[Kind]int
	// Codes counts the answers by request MTI ("0100", "0101", "0800" ...)
	// and response code (DE39).
	Codes map[string]map[cardnet.ResponseCode]int
	// Errors counts requests that got no answer, or a malformed one;
	// FirstError is the first of them.
	Errors     int
	FirstError error
	// Mismatches counts retransmissions answered differently from the
	// original (code, approval code or amounts): each is an idempotency
	// bug in the issuer.
	Mismatches int
	// Increments counts the answers to incremental authorizations by
	// response code: a 25 means the issuer did not find the original.
	Increments map[cardnet.ResponseCode]int
	// Approvals lists the approved authorizations in the order approved.
	Approvals []Approval
	// Clearing is the clearing file of the run.
	Clearing *ClearingFile
}

// Sent returns the number of requests answered with MTI mti.
func (r *Result) Sent(mti string) int {
	n := 0
	for _, c := range r.Codes[mti] {
		n += c
	}
	return n
}

// run is one Run's state.
type run struct {
	s       *Simulator
	c       *cardnet.Client
	ids     *ids
	now     func() time.Time
	log     *slog.Logger
	timeout time.Duration
	acq     []string

	mu  sync.Mutex
	res *Result
}

// Run plays the simulation: it connects, signs on, plays scenarios at Rate
// for Duration while echoing every EchoEvery, waits for the last answers,
// signs off, and writes the clearing file. It fails if it cannot connect or
// sign on, or if the connection breaks; ctx ending stops the schedule early
// and the run then ends as usual. Requests that got no answer are counted
// in the Result, not returned as errors.
func (s *Simulator) Run(ctx context.Context) (*Result, error) {
	if s.Addr == "" || len(s.Cards) == 0 || !(s.Rate > 0) || s.Duration <= 0 {
		return nil, errors.New("sim: Addr, Cards, Rate and Duration are required")
	}
	if s.Rate > MaxRate {
		return nil, fmt.Errorf("sim: Rate %g: at most %g scenarios a second", s.Rate, float64(MaxRate))
	}
	for i, c := range s.Cards {
		if err := c.check(); err != nil {
			return nil, fmt.Errorf("sim: card %d: %w", i+1, err)
		}
	}
	mix := s.Mix
	if mix == (Mix{}) {
		mix = DefaultMix
	}
	if mix.total() <= 0 {
		return nil, errors.New("sim: the Mix has no positive weight")
	}
	r := &run{s: s, now: s.Now, log: s.Log, timeout: s.Timeout, acq: s.Acquirers}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.timeout <= 0 {
		r.timeout = 10 * time.Second
	}
	if len(r.acq) == 0 {
		r.acq = DefaultAcquirers
	}
	rnd := s.Rand
	if rnd == nil {
		seed := uint64(time.Now().UnixNano())
		rnd = rand.New(rand.NewPCG(seed, seed>>1))
	}
	r.ids = newIDs(append(r.acq, networkAcquirer), rnd)
	r.res = &Result{Scenarios: map[Kind]int{}, Codes: map[string]map[cardnet.ResponseCode]int{}, Increments: map[cardnet.ResponseCode]int{}}
	planner := newPlanner(rnd, s.Cards, mix)

	c, err := (&cardnet.Dialer{Spec: s.Spec, Log: r.log}).Dial(ctx, s.Addr)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	r.c = c
	defer c.Close()
	if err := r.network(ctx, cardnet.NetworkSignOn); err != nil {
		return nil, fmt.Errorf("sim: sign on: %w", err)
	}
	r.log.Info("sim: signed on", "addr", s.Addr, "rate", s.Rate, "duration", s.Duration)

	start := r.now()
	echoCtx, stopEcho := context.WithCancel(ctx)
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		r.echo(echoCtx)
	}()

	maxInFlight := s.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = 512
	}
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	interval := Interval(s.Rate)
	t0 := time.Now()
schedule:
	for i := 0; ; i++ {
		at := t0.Add(time.Duration(i) * interval)
		if at.Sub(t0) >= s.Duration {
			break
		}
		if w := time.Until(at); w > 0 {
			select {
			case <-time.After(w):
			case <-ctx.Done():
				break schedule
			case <-c.Done():
				break schedule
			}
		}
		pl := planner.next()
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break schedule
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.play(context.WithoutCancel(ctx), pl)
		}()
	}
	wg.Wait()
	stopEcho()
	<-echoDone

	var runErr error
	select {
	case <-c.Done():
		runErr = fmt.Errorf("sim: the connection ended during the run (first error: %v)", r.res.FirstError)
	default:
		if err := r.network(context.WithoutCancel(ctx), cardnet.NetworkSignOff); err != nil {
			runErr = fmt.Errorf("sim: sign off: %w", err)
		}
	}
	// The approvals answered before the end are presented whatever ended
	// the run: the network clears what it approved.
	r.res.Elapsed = r.now().Sub(start)
	r.res.Clearing = r.clearing()
	r.log.Info("sim: signed off", "elapsed", r.res.Elapsed.Round(time.Millisecond), "approvals", len(r.res.Approvals),
		"errors", r.res.Errors, "mismatches", r.res.Mismatches, "clearing_records", len(r.res.Clearing.Records))
	if s.Clearing != nil {
		f := s.ClearingFormat
		if f == nil {
			f = CSVClearing{}
		}
		if err := f.WriteClearing(s.Clearing, r.res.Clearing); err != nil {
			return r.res, errors.Join(runErr, fmt.Errorf("sim: %w", err))
		}
	}
	return r.res, runErr
}

// networkAcquirer is DE32 of the network's own management messages.
const networkAcquirer = "999999"

// network sends an 0800 with network management code code and wants 00.
func (r *run) network(ctx context.Context, code string) error {
	now := r.now()
	stan, _ := r.ids.next(networkAcquirer, now)
	m := r.spec().NewMessage(cardnet.MTINetworkRequest)
	m.Set(7, dateTime(now.UTC()).String())
	m.Set(11, stan)
	m.Set(70, code)
	resp, err := r.send(ctx, m)
	if err != nil {
		return err
	}
	if got := resp.Get(39); got != string(cardnet.Approved) {
		return fmt.Errorf("0800/%s answered %s", code, got)
	}
	return nil
}

func (r *run) spec() *cardnet.Spec {
	if r.s.Spec != nil {
		return r.s.Spec
	}
	return cardnet.DefaultSpec()
}

// echo sends echo tests until ctx ends.
func (r *run) echo(ctx context.Context) {
	every := r.s.EchoEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.network(ctx, cardnet.NetworkEcho); err != nil && ctx.Err() == nil {
				r.log.Warn("sim: echo test failed", "err", err)
			}
		}
	}
}

// send sends m, counts its answer by request MTI and response code, and
// returns it. A failure is counted as an error.
func (r *run) send(ctx context.Context, m *cardnet.Message) (*cardnet.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	resp, err := r.c.Send(ctx, m)
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return nil, err // the run is stopping (an echo cut short): not a lost answer
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && len(resp.Get(39)) != 2 {
		err = fmt.Errorf("answer %s to %s stan %s has no response code", resp.MTI(), m.MTI(), m.Get(11))
	}
	if err != nil {
		r.res.Errors++
		if r.res.FirstError == nil {
			r.res.FirstError = err
		}
		return nil, err
	}
	codes := r.res.Codes[m.MTI()]
	if codes == nil {
		codes = map[cardnet.ResponseCode]int{}
		r.res.Codes[m.MTI()] = codes
	}
	codes[cardnet.ResponseCode(resp.Get(39))]++
	return resp, nil
}

// sendRequest lays req out and sends it.
func (r *run) sendRequest(ctx context.Context, req *cardnet.Request) (*cardnet.Message, *cardnet.Message, error) {
	m, err := req.Message(r.spec())
	if err != nil {
		// A bug in the planner: count it like a lost message.
		r.mu.Lock()
		r.res.Errors++
		if r.res.FirstError == nil {
			r.res.FirstError = err
		}
		r.mu.Unlock()
		return nil, nil, err
	}
	resp, err := r.send(ctx, m)
	return m, resp, err
}

// approved returns the approval an answer to req carries, or nil.
func approved(kind Kind, req *cardnet.Request, resp *cardnet.Message, pl *plan) *Approval {
	code := cardnet.ResponseCode(resp.Get(39))
	if !code.Approval() {
		return nil
	}
	a := newApproval(kind, req, code, resp.Get(38), pl)
	if code == cardnet.PartiallyApproved {
		a.Amount = amountOf(resp, 4, a.Amount)
		a.BillingAmount = amountOf(resp, 6, a.Amount)
		a.Outstanding, a.OutstandingBilling = a.Amount, a.BillingAmount
	}
	return a
}

// newApproval is an approval of req with code and authCode, for the
// amounts req carries.
func newApproval(kind Kind, req *cardnet.Request, code cardnet.ResponseCode, authCode string, pl *plan) *Approval {
	a := &Approval{
		Kind: kind, MTI: req.BaseMTI(),
		Network:        NetworkID{Acquirer: req.AcquirerID, STAN: req.STAN, RRN: req.RRN, TransmissionTime: req.TransmissionTime.String()},
		PAN:            req.PAN,
		ProcessingCode: req.ProcessingCode,
		Amount:         req.Amount, Currency: req.Currency,
		BillingAmount: req.Amount, BillingCurrency: req.Currency,
		AuthCode: authCode, Code: code, Merchant: catalogue[pl.merchant],
	}
	if req.BillingCurrency != "" {
		a.BillingAmount, a.BillingCurrency = req.BillingAmount, req.BillingCurrency
	}
	a.Outstanding, a.OutstandingBilling = a.Amount, a.BillingAmount
	return a
}

func amountOf(m *cardnet.Message, n int, otherwise int64) int64 {
	v, err := strconv.ParseInt(m.Get(n), 10, 64)
	if err != nil {
		return otherwise
	}
	return v
}

// play runs one scenario to its end.
func (r *run) play(ctx context.Context, pl plan) {
	r.mu.Lock()
	r.res.Scenarios[pl.kind]++
	r.mu.Unlock()

	mti := cardnet.MTIAuthorizationRequest
	switch pl.kind {
	case KindStandIn:
		mti = cardnet.MTIAuthorizationAdvice
	case KindFinancial:
		mti = cardnet.MTIFinancialRequest
	}
	acq := acquirer(r.acq, pl.merchant)
	now := r.now()
	stan, rrn := r.ids.next(acq, now)
	req := pl.request(mti, acq, stan, rrn, now)
	if pl.kind == KindStandIn {
		req.ResponseCode, req.AuthID, req.AdviceReason = cardnet.Approved, pl.authCode, adviceReasonStandIn
	}
	m, resp, err := r.sendRequest(ctx, req)
	if pl.kind == KindStandIn && m != nil {
		// The network approved and paid, whatever the issuer answers: it
		// sends the advice until acknowledged, and clears the approval.
		if err != nil || resp.Get(39) != string(cardnet.Approved) {
			r.forward(ctx, m)
		}
		a := standInApproval(req, &pl)
		r.mu.Lock()
		r.res.Approvals = append(r.res.Approvals, *a)
		r.mu.Unlock()
		return
	}
	if err != nil {
		r.log.Warn("sim: no answer", "kind", pl.kind, "req", req, "err", err)
		return
	}
	a := approved(pl.kind, req, resp, &pl)
	r.log.Debug("sim: answered", "kind", pl.kind, "req", req, "code", resp.Get(39))

	switch pl.kind {
	case KindRetransmit:
		r.repeat(ctx, m, resp)
		if a != nil && pl.reverse {
			r.reverse(ctx, a, 0, true)
		}
	case KindReversal:
		if a != nil {
			r.reverse(ctx, a, min(pl.remain, a.Outstanding), false)
		}
	case KindIncremental:
		if a != nil {
			for _, inc := range pl.increments {
				r.increment(ctx, &pl, a, inc)
			}
		}
	}
	if a != nil {
		r.mu.Lock()
		r.res.Approvals = append(r.res.Approvals, *a)
		r.mu.Unlock()
	}
}

// forwardTries bounds how often the simulator sends an advice or a reversal
// the issuer has not acknowledged (00) again, as a repeat.
const forwardTries = 5

// forward sends m (an advice or a reversal the issuer did not acknowledge)
// again as a repeat, as a store-and-forward network does, until it is
// acknowledged or forwardTries pass, and reports whether it was.
func (r *run) forward(ctx context.Context, m *cardnet.Message) bool {
	again := asRepeat(m)
	for try := 1; try <= forwardTries; try++ {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
		resp, err := r.send(ctx, again)
		if err == nil && resp.Get(39) == string(cardnet.Approved) {
			return true
		}
	}
	r.log.Warn("sim: an advice or reversal was never acknowledged", "mti", m.MTI(), "stan", m.Get(11), "rrn", m.Get(37))
	return false
}

// standInApproval is the approval a stand-in advice reports: the network's,
// with its approval code, for the amounts the advice carries.
func standInApproval(req *cardnet.Request, pl *plan) *Approval {
	return newApproval(KindStandIn, req, cardnet.Approved, pl.authCode, pl)
}

// asRepeat is m as the network sends it again: the same ids, the MTI
// ending in 1.
func asRepeat(m *cardnet.Message) *cardnet.Message {
	again := m.Clone()
	again.SetMTI(m.MTI()[:3] + "1")
	return again
}

// repeat sends m again as a repeat (same ids, MTI ending in 1) and checks
// that the answer is the one first given.
func (r *run) repeat(ctx context.Context, m, first *cardnet.Message) {
	again := asRepeat(m)
	resp, err := r.send(ctx, again)
	if err != nil {
		return
	}
	for _, n := range []int{39, 38, 4, 6} {
		if resp.Get(n) != first.Get(n) {
			r.mu.Lock()
			r.res.Mismatches++
			r.mu.Unlock()
			r.log.Error("sim: a retransmission got another answer", "mti", again.MTI(), "stan", m.Get(11), "rrn", m.Get(37),
				"field", n, "first", first.Get(n), "repeat", resp.Get(n))
			return
		}
	}
}

// reverse sends an 0400 for approval a leaving remain authorized (0: all
// of it), and, when repeat, sends it again as an 0401.
func (r *run) reverse(ctx context.Context, a *Approval, remain int64, repeat bool) {
	now := r.now()
	stan, _ := r.ids.next(a.Network.Acquirer, now)
	orig := a.Network
	t, err := parseDE7(orig.TransmissionTime)
	if err != nil {
		return
	}
	req := &cardnet.Request{
		MTI:              cardnet.MTIReversalRequest,
		PAN:              a.PAN,
		ProcessingCode:   a.ProcessingCode,
		Amount:           a.Outstanding,
		Currency:         a.Currency,
		TransmissionTime: dateTime(now.UTC()),
		STAN:             stan,
		AcquirerID:       orig.Acquirer,
		RRN:              orig.RRN, // a reversal carries its original's RRN
		AuthID:           a.AuthCode,
		Original:         &cardnet.OriginalData{MTI: a.MTI, STAN: orig.STAN, TransmissionTime: t, AcquirerID: orig.Acquirer},
	}
	if a.Currency != a.BillingCurrency {
		req.BillingAmount, req.BillingCurrency = a.OutstandingBilling, a.BillingCurrency
	}
	if remain > 0 {
		req.ReplacementAmount = &remain
	}
	m, resp, err := r.sendRequest(ctx, req)
	if m == nil {
		return // not laid out: never sent
	}
	// The network reverses on its side whatever the issuer answers, and
	// sends the reversal until acknowledged; it clears what remains.
	acked := err == nil && resp.Get(39) == string(cardnet.Approved)
	if !acked {
		acked = r.forward(ctx, m)
	}
	r.mu.Lock()
	if remain > 0 {
		a.OutstandingBilling = billing(remain, a.Currency, a.BillingCurrency)
	} else {
		a.OutstandingBilling = 0
	}
	a.Outstanding = remain
	r.mu.Unlock()
	if repeat && err == nil && resp.Get(39) == string(cardnet.Approved) {
		// A retransmission must get the answer the first got; an answer
		// that was not an acknowledgement (91 past the deadline) is not
		// final, and forward has already sent the reversal again.
		r.repeat(ctx, m, resp)
	}
}

// increment sends an incremental authorization adding amount to a.
func (r *run) increment(ctx context.Context, pl *plan, a *Approval, amount int64) {
	now := r.now()
	stan, _ := r.ids.next(a.Network.Acquirer, now)
	rrn := a.Network.RRN // like a reversal, it carries its original's RRN
	t, err := parseDE7(a.Network.TransmissionTime)
	if err != nil {
		return
	}
	inc := *pl
	inc.amount = amount
	inc.partial = false
	req := inc.request(cardnet.MTIAuthorizationRequest, a.Network.Acquirer, stan, rrn, now)
	req.Original = &cardnet.OriginalData{MTI: a.MTI, STAN: a.Network.STAN, TransmissionTime: t, AcquirerID: a.Network.Acquirer}
	_, resp, err := r.sendRequest(ctx, req)
	if err != nil {
		return
	}
	r.mu.Lock()
	r.res.Increments[cardnet.ResponseCode(resp.Get(39))]++
	r.mu.Unlock()
	if !cardnet.ResponseCode(resp.Get(39)).Approval() {
		return
	}
	got := approved(KindIncremental, req, resp, pl)
	r.mu.Lock()
	a.Outstanding += got.Amount
	a.OutstandingBilling += got.BillingAmount
	r.mu.Unlock()
}

// MaxRate is the fastest rate a Simulator (or a load generator pacing with
// Interval) is asked for: one a microsecond.
const MaxRate = 1e6

// Interval is the time between two sends at rate per second (rate > 0): at
// least a nanosecond, and at most the longest Duration, for a rate so low
// that its interval would not fit (which would wrap to a negative one).
func Interval(rate float64) time.Duration {
	iv := float64(time.Second) / rate
	if !(iv < float64(math.MaxInt64)) {
		return math.MaxInt64
	}
	return max(time.Duration(iv), 1)
}

// parseDE7 reads "MMDDhhmmss".
func parseDE7(s string) (cardnet.DateTime, error) {
	if !digits(s, 10, 10) {
		return cardnet.DateTime{}, fmt.Errorf("transmission time %q: not MMDDhhmmss", s)
	}
	return cardnet.DateTime{Month: time.Month(atoi(s[:2])), Day: atoi(s[2:4]), Hour: atoi(s[4:6]), Minute: atoi(s[6:8]), Second: atoi(s[8:])}, nil
}

// clearing builds the clearing file of the run: a final first presentment
// of what remains of each approval, a refund record for each approved
// refund. Fully reversed approvals are not cleared.
func (r *run) clearing() *ClearingFile {
	now := r.now().UTC()
	network := r.s.Network
	if network == "" {
		network = "SIMNET"
	}
	f := &ClearingFile{
		// The id's suffix and the ARNs come from the process's own
		// random source, not the run's Rand: two runs of one seed (a run
		// reproduced) must not present under one reference either.
		ID:      fmt.Sprintf("%s-%s-%04x", network, now.Format("20060102T150405"), rand.IntN(1<<16)),
		Network: network,
		Date:    now,
	}
	if len(f.ID) > 32 {
		f.ID = f.ID[len(f.ID)-32:]
	}
	// The ARNs' sequence starts at random: two runs on one day must not
	// present different transactions under one reference (clearing would
	// skip the second as a duplicate presentment).
	base := rand.IntN(100_000_000_000 - 1_000_000)
	for _, a := range r.res.Approvals {
		if a.Outstanding <= 0 || a.OutstandingBilling <= 0 {
			continue
		}
		n := len(f.Records) + 1
		f.Records = append(f.Records, ClearingRecord{
			ID:              fmt.Sprintf("R%06d", n),
			PAN:             a.PAN,
			ProcessingCode:  a.ProcessingCode,
			Amount:          a.Outstanding,
			Currency:        a.Currency,
			BillingAmount:   a.OutstandingBilling,
			BillingCurrency: a.BillingCurrency,
			ARN:             arn(a.Network.Acquirer, now, base+n),
			AuthCode:        a.AuthCode,
			Network:         a.Network,
			Merchant:        a.Merchant.DE43(),
			MCC:             a.Merchant.MCC,
			Presentment:     1,
			Final:           true,
		})
	}
	return f
}
