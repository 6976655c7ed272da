package authorization_test

// Failure injection between authorization and the ledger / card services:
// every ledger and card call a scenario makes is failed in turn, before
// the callee acts (nothing happened) or after (the effect is durable, the
// answer lost), optionally with the ledger staying away afterwards. The
// gateway's policy is simulated (an unknown outcome on a 0100/0200 is
// answered 91 after queueing the gateway's own reversal, which it then
// attempts), the network retransmits what it was not answered, and the
// service's recovery runs. Then the books must agree with what the network
// was told.

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store/storetest"
)

type faultMode int

const (
	faultNone   faultMode = iota
	faultBefore           // the call fails before the callee acts
	faultAfter            // the callee acts, its answer is lost
)

func (m faultMode) String() string {
	return [...]string{"none", "before", "after"}[m]
}

// fault fails the nth call (1-based) of method.
type fault struct {
	method string
	nth    int
	mode   faultMode
	down   bool // and every call after it fails (before) until up
	brief  bool // down only until the message at hand is answered
}

func (f fault) String() string {
	s := fmt.Sprintf("%s#%d-%s", f.method, f.nth, f.mode)
	if f.down {
		s += "-down"
	}
	if f.brief {
		s += "-brief"
	}
	return s
}

// injector counts calls per method and applies one fault.
type injector struct {
	mu     sync.Mutex
	calls  map[string]int
	trace  []string // "method#n"
	f      fault
	isDown bool
}

func newInjector(f fault) *injector { return &injector{calls: map[string]int{}, f: f} }

// count is how many calls of method were made through in.
func (in *injector) count(method string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[method]
}

func (in *injector) up() {
	in.mu.Lock()
	in.isDown = false
	in.f = fault{}
	in.mu.Unlock()
}

var errLost = errors.New(errors.Unavailable, "injected: connection lost")

func inject[T any](in *injector, method string, do func() (T, error)) (T, error) {
	var zero T
	in.mu.Lock()
	in.calls[method]++
	n := in.calls[method]
	in.trace = append(in.trace, fmt.Sprintf("%s#%d", method, n))
	hit := in.f.method == method && in.f.nth == n
	if in.isDown || (hit && in.f.mode == faultBefore) {
		if hit && in.f.down {
			in.isDown = true
		}
		in.mu.Unlock()
		return zero, errLost
	}
	in.mu.Unlock()
	v, err := do()
	if hit && in.f.mode == faultAfter {
		in.mu.Lock()
		if in.f.down {
			in.isDown = true
		}
		in.mu.Unlock()
		return zero, errLost
	}
	return v, err
}

type faultLedger struct {
	ledger.Service
	in *injector
}

func (l *faultLedger) PlaceHold(ctx context.Context, req ledger.PlaceHoldRequest) (*ledger.Hold, error) {
	return inject(l.in, "PlaceHold", func() (*ledger.Hold, error) { return l.Service.PlaceHold(ctx, req) })
}
func (l *faultLedger) IncrementHold(ctx context.Context, req ledger.IncrementHoldRequest) (*ledger.Hold, error) {
	return inject(l.in, "IncrementHold", func() (*ledger.Hold, error) { return l.Service.IncrementHold(ctx, req) })
}
func (l *faultLedger) PostHold(ctx context.Context, req ledger.PostHoldRequest) (*ledger.Hold, error) {
	return inject(l.in, "PostHold", func() (*ledger.Hold, error) { return l.Service.PostHold(ctx, req) })
}
func (l *faultLedger) VoidHold(ctx context.Context, req ledger.VoidHoldRequest) (*ledger.Hold, error) {
	return inject(l.in, "VoidHold", func() (*ledger.Hold, error) { return l.Service.VoidHold(ctx, req) })
}
func (l *faultLedger) Transfer(ctx context.Context, req ledger.TransferRequest) (*ledger.Transfer, error) {
	return inject(l.in, "Transfer", func() (*ledger.Transfer, error) { return l.Service.Transfer(ctx, req) })
}
func (l *faultLedger) GetHold(ctx context.Context, id string) (*ledger.Hold, error) {
	return inject(l.in, "GetHold", func() (*ledger.Hold, error) { return l.Service.GetHold(ctx, id) })
}
func (l *faultLedger) Balance(ctx context.Context, acc string, asOf time.Time) (*ledger.Balance, error) {
	return inject(l.in, "Balance", func() (*ledger.Balance, error) { return l.Service.Balance(ctx, acc, asOf) })
}

type faultCard struct {
	card.Service
	in *injector
}

func (c *faultCard) Lookup(ctx context.Context, pan string) (*card.Card, error) {
	return inject(c.in, "card.Lookup", func() (*card.Card, error) { return c.Service.Lookup(ctx, pan) })
}
func (c *faultCard) VerifyCVC(ctx context.Context, id, cvc string) (bool, error) {
	return inject(c.in, "card.VerifyCVC", func() (bool, error) { return c.Service.VerifyCVC(ctx, id, cvc) })
}
func (c *faultCard) CountFailedCheck(ctx context.Context, id string) error {
	_, err := inject(c.in, "card.CountFailedCheck", func() (struct{}, error) { return struct{}{}, c.Service.CountFailedCheck(ctx, id) })
	return err
}

// sim is one run of a scenario: the service behind the faulty ledger and
// card, the simulated gateway and network, and the network's view.
type sim struct {
	t       *testing.T
	e       *env
	a       *authorization.Authorizer
	in      *injector
	h       *holder
	initial int64
	// held: what the network believes is authorized and outstanding, per
	// transaction (the network key of the message that began it).
	held   map[string]int64
	posted int64 // 0200s approved, less their reversals
	// told: what each request was answered ("approved:<amount>", "91", ...).
	told map[string]string
	// retry: reversals and advices the network must send again (no answer).
	retryRev []authorization.ReversalRequest
	retryAdv []authorization.Request
	log      []string
	sentRev  []authorization.ReversalRequest
	sentAdv  []authorization.Request
	sentReq  []authorization.Request // approved 0100/0200s
	incBase  map[string]string       // incremental's key -> its original's
	fin      map[string]bool         // 0200s: held is what they debited
	cleared  map[string]int64        // per transaction: what clearing posted
	final    map[string]bool         // per transaction: finally presented
	nclr     int
}

func unknownOutcome(err error) bool {
	switch errors.CodeOf(err) {
	case errors.Timeout, errors.Unavailable, errors.Internal:
		return true
	}
	return false
}

func (s *sim) logf(format string, args ...any) { s.log = append(s.log, fmt.Sprintf(format, args...)) }

// gatewayOwn is the gateway's reaction to a 0100/0200 whose outcome is
// unknown: queue its own reversal, answer 91, attempt the reversal.
func (s *sim) gatewayOwn(n authorization.NetworkID) {
	ctx := context.Background()
	rev := authorization.ReversalRequest{Network: n, Original: n, OwnDecision: true}
	rev.Network.RRN = "GW" + n.RRN
	if err := s.a.QueueReversal(ctx, rev); err != nil {
		s.t.Fatalf("QueueReversal: %v", err)
	}
	if d, err := s.a.Reverse(ctx, rev); err != nil {
		s.logf("  own reversal of %s failed: %v (left queued)", n.STAN, err)
	} else {
		s.logf("  own reversal of %s: released %d %s", n.STAN, d.Amount, d.Detail)
	}
}

// decide runs a 0100/0200 through the gateway's policy and returns the
// decision the network heard (nil: 91).
func (s *sim) decide(name string, req authorization.Request, call func(context.Context, authorization.Request) (*authorization.Decision, error)) *authorization.Decision {
	d, err := call(context.Background(), req)
	switch {
	case err != nil && unknownOutcome(err):
		s.logf("%s %s: error %v -> 91", name, req.Network.STAN, err)
		s.told[req.Network.Key()] = "91"
		s.gatewayOwn(req.Network)
		return nil
	case err != nil:
		s.t.Fatalf("%s: %v", name, err)
	}
	s.logf("%s %s: approved=%v amount=%d reason=%s", name, req.Network.STAN, d.Approved, d.Amount, d.Reason)
	if d.Approved {
		s.sentReq = append(s.sentReq, req)
		s.told[req.Network.Key()] = fmt.Sprintf("approved:%d", d.Amount)
	} else {
		s.told[req.Network.Key()] = "declined"
	}
	return d
}

// stepDone ends a message: a brief outage is over (nothing recovered).
func (s *sim) stepDone() {
	if s.in.f.brief {
		s.in.mu.Lock()
		was := s.in.isDown
		s.in.isDown = false
		s.in.mu.Unlock()
		if was {
			// The network retransmits what it was not answered.
			s.retransmit()
		}
	}
}

func (s *sim) approved(n authorization.NetworkID) bool {
	return strings.HasPrefix(s.told[n.Key()], "approved")
}

// authorized sends req and reports whether the network was told approved:
// most scenarios go on only from an approval.
func (s *sim) authorized(req authorization.Request) bool {
	s.auth(req)
	return s.approved(req.Network)
}

func (s *sim) auth(req authorization.Request) *authorization.Decision {
	defer s.stepDone()
	d := s.decide("authorize", req, s.a.Authorize)
	if d != nil && d.Approved && req.Kind != authorization.KindRefund {
		s.held[req.Network.Key()] = d.Amount
	}
	return d
}

func (s *sim) financial(req authorization.Request) *authorization.Decision {
	defer s.stepDone()
	d := s.decide("financial", req, s.a.Financial)
	if d != nil && d.Approved {
		s.held[req.Network.Key()] = d.Amount // outstanding, posted
		s.fin[req.Network.Key()] = true
		s.posted += d.Amount
	}
	return d
}

// incr: the network's incremental of an original it was told approved.
func (s *sim) incr(req authorization.Request) *authorization.Decision {
	defer s.stepDone()
	d := s.decide("increment", req, s.a.Increment)
	if d != nil && d.Approved {
		s.held[req.Original.Key()] += d.Amount
		s.held[req.Network.Key()+"#inc"] = d.Amount
		s.incBase[req.Network.Key()] = req.Original.Key()
	}
	return d
}

// reverse: the network's reversal, applied in its view at once (the
// network retransmits until acknowledged).
func (s *sim) reverse(rev authorization.ReversalRequest) {
	financial := s.fin[rev.Original.Key()]
	defer s.stepDone()
	k := rev.Original.Key()
	if inc, ok := s.held[k+"#inc"]; ok {
		// reversal of an incremental: its original comes down by it
		s.held[k+"#inc"] = 0
		s.held[s.incBase[k]] -= inc - rev.Amount
	} else if cur := s.held[k]; rev.Amount < cur {
		if financial {
			s.posted -= cur - rev.Amount
		}
		s.held[k] = rev.Amount
	}
	s.send(rev)
}

func (s *sim) send(rev authorization.ReversalRequest) {
	s.sentRev = append(s.sentRev, rev)
	d, err := s.a.Reverse(context.Background(), rev)
	if err != nil {
		s.logf("reverse %s of %s: error %v (network will retransmit)", rev.Network.STAN, rev.Original.STAN, err)
		s.retryRev = append(s.retryRev, rev)
		return
	}
	s.logf("reverse %s of %s: released %d detail=%q", rev.Network.STAN, rev.Original.STAN, d.Amount, d.Detail)
}

// advise: a stand-in advice; the network paid amount for transaction key.
func (s *sim) advise(req authorization.Request, txn string) {
	defer s.stepDone()
	s.held[txn] = req.Amount
	s.sendAdvice(req)
}

// declinedAdvice: the network declined txn in stand-in (the merchant was
// declined): nothing remains authorized.
func (s *sim) declinedAdvice(req authorization.Request, txn string) {
	defer s.stepDone()
	s.held[txn] = 0
	s.sendAdvice(req)
}

func (s *sim) sendAdvice(req authorization.Request) {
	s.sentAdv = append(s.sentAdv, req)
	d, err := s.a.Advise(context.Background(), req)
	if err != nil {
		s.logf("advise %s: error %v (network will retransmit)", req.Network.STAN, err)
		s.retryAdv = append(s.retryAdv, req)
		return
	}
	s.logf("advise %s: approved=%v amount=%d reason=%s detail=%q", req.Network.STAN, d.Approved, d.Amount, d.Reason, d.Detail)
}

// clear is a presentment of amount against transaction orig (final or
// with more to come), as clearing posts it: the authorization's hold read
// by network id, posted with Force, following a replacement hold.
func (s *sim) clear(orig authorization.NetworkID, amount int64, final bool) {
	ctx := context.Background()
	s.nclr++
	key := fmt.Sprintf("clr:f:%d", s.nclr)
	// Clearing comes a day later: a ledger that went away is back by then,
	// the network has retransmitted what it was not answered, and recovery
	// has run.
	s.in.mu.Lock()
	down := s.in.isDown
	s.in.mu.Unlock()
	if down {
		s.logf("clear %s: the ledger is back", orig.STAN)
		s.in.up()
	}
	s.retransmit()
	s.recover(false)
	for try := 0; try < 3; try++ {
		d, err := s.a.ByNetworkID(ctx, orig)
		if err != nil {
			s.logf("clear %s: lookup: %v (retried)", orig.STAN, err)
			continue
		}
		_, err = s.e.led.PostHold(ctx, ledger.PostHoldRequest{Key: key, HoldID: d.HoldID, Amount: amount, KeepOpen: !final, Force: true})
		if err != nil {
			s.logf("clear %s: post on %s: %v", orig.STAN, d.HoldID, err)
			continue
		}
		s.logf("clear %s: posted %d on %s final=%v", orig.STAN, amount, d.HoldID, final)
		s.cleared[orig.Key()] += amount
		s.final[orig.Key()] = s.final[orig.Key()] || final
		return
	}
	s.t.Fatalf("clear %s failed:\n%s", orig.STAN, strings.Join(s.log, "\n"))
}

// settle brings the services back, lets the network retransmit what it
// was not answered and the service recover, twice over.
func (s *sim) settle() {
	s.in.up()
	for round := 0; round < 2; round++ {
		s.recover(true)
		s.retransmit()
	}
}

// recover runs the service's recovery: pending records, queued reversals,
// undos. With the services up for good (settled), every error fails the
// test; otherwise only one that is not the injected fault does (the
// injected one leaves the work for a later run).
func (s *sim) recover(settled bool) {
	ctx := context.Background()
	for _, r := range []struct {
		name string
		run  func(context.Context, time.Duration) (int, error)
	}{
		{"RecoverPending", s.a.RecoverPending},
		{"RecoverQueued", s.a.RecoverQueued},
		{"RecoverUndos", s.a.RecoverUndos},
	} {
		n, err := r.run(ctx, 0)
		switch {
		case err != nil && (settled || !errors.IsErr(err, errLost)):
			s.t.Errorf("%s: %d, %v", r.name, n, err)
			s.logf("%s: %d, %v", r.name, n, err)
		case err != nil:
			s.logf("%s: %d, %v (injected; left for later)", r.name, n, err)
		case n > 0:
			s.logf("%s: %d", r.name, n)
		}
	}
}

// retransmit sends again the reversals and advices the network was not
// answered for, as it does.
func (s *sim) retransmit() {
	revs, advs := s.retryRev, s.retryAdv
	s.retryRev, s.retryAdv = nil, nil
	for _, r := range revs {
		s.send(r)
	}
	for _, r := range advs {
		s.sendAdvice(r)
	}
}

// repeat retransmits every message the network was answered for (its
// duplicates): none may have a second effect.
func (s *sim) repeat() {
	ctx := context.Background()
	for _, r := range s.sentReq {
		var err error
		switch r.Kind {
		case authorization.KindIncremental:
			_, err = s.a.Increment(ctx, r)
		case authorization.KindFinancial:
			_, err = s.a.Financial(ctx, r)
		default:
			_, err = s.a.Authorize(ctx, r)
		}
		if err != nil {
			s.t.Errorf("duplicate %s %s: %v", r.Kind, r.Network.STAN, err)
		}
	}
	for _, r := range s.sentRev {
		if _, err := s.a.Reverse(ctx, r); err != nil {
			s.t.Errorf("duplicate reversal %s: %v", r.Network.STAN, err)
		}
	}
	for _, r := range s.sentAdv {
		if _, err := s.a.Advise(ctx, r); err != nil {
			s.t.Errorf("duplicate advice %s: %v", r.Network.STAN, err)
		}
	}
}

// check: the books agree with what the network was told.
func (s *sim) check() []string {
	ctx := context.Background()
	var bad []string
	if err := ledger.Verify(ctx, s.e.ledDB); err != nil {
		bad = append(bad, fmt.Sprintf("ledger.Verify: %v", err))
	}
	var want, wantOut, clearedAll int64
	for k, v := range s.held {
		if strings.HasSuffix(k, "#inc") || s.fin[k] {
			continue
		}
		if !s.final[k] {
			wantOut += v
			want += max(v-s.cleared[k], 0)
		}
	}
	for _, c := range s.cleared {
		clearedAll += c
	}
	b, err := s.e.led.Balance(ctx, s.h.Account, time.Time{})
	if err != nil {
		s.t.Fatal(err)
	}
	if b.Pending != want || b.Posted != s.initial-s.posted-clearedAll {
		bad = append(bad, fmt.Sprintf("account posted %d pending %d; the network was told posted %d held %d",
			b.Posted, b.Pending, s.initial-s.posted-clearedAll, want))
	}
	if n := count(s.t, s.e.db, `SELECT COUNT(*) FROM authorizations WHERE status = 'pending'`); n != 0 {
		bad = append(bad, fmt.Sprintf("%d records still pending", n))
	}
	if n := count(s.t, s.e.db, `SELECT COUNT(*) FROM reversal_queue`); n != 0 {
		bad = append(bad, fmt.Sprintf("%d reversals still queued", n))
	}
	if n := count(s.t, s.e.db, `SELECT COUNT(*) FROM undos`); n != 0 {
		bad = append(bad, fmt.Sprintf("%d undos still owed", n))
	}
	// The records: each approved record's outstanding on a pending hold of
	// that amount (less what clearing posted), and their sum what the
	// ledger holds.
	finalHolds := map[string]bool{}
	for k, f := range s.final {
		if !f {
			continue
		}
		var hold string
		if err := s.e.db.Read.QueryRow(s.e.db.Rebind(`SELECT hold_id FROM authorizations WHERE network_key = ?`), k).Scan(&hold); err != nil {
			s.t.Fatalf("hold of %s: %v", k, err)
		}
		finalHolds[hold] = true
	}
	rows, err := s.e.db.Read.Query(`SELECT network_key, kind, outstanding, hold_id, detail FROM authorizations
		WHERE approved = 1 AND status = 'done' AND kind IN ('purchase','cash','preauth','advice') AND outstanding > 0`)
	if err != nil {
		s.t.Fatal(err)
	}
	defer rows.Close()
	var recHeld int64
	holds := map[string]int64{}
	for rows.Next() {
		var key, kind, hold, detail string
		var out int64
		if err := rows.Scan(&key, &kind, &out, &hold, &detail); err != nil {
			s.t.Fatal(err)
		}
		if detail == "confirms_original" || finalHolds[hold] {
			continue
		}
		recHeld += out
		holds[hold] += out
	}
	var ledHeld int64
	for id, out := range holds {
		h, err := s.e.led.GetHold(ctx, id)
		if err != nil {
			s.t.Fatal(err)
		}
		cl := h.Posted + authorization.ClearedBefore(h.Metadata)
		switch {
		case h.Status == ledger.HoldPosted:
		case h.Status == ledger.HoldVoided && out <= cl:
		case h.Status == ledger.HoldPending && h.Amount == max(out-cl, 0):
			ledHeld += h.Amount
		default:
			bad = append(bad, fmt.Sprintf("records say %d outstanding on hold %s; the ledger has %+v", out, id, h))
		}
	}
	if ledHeld != b.Pending {
		bad = append(bad, fmt.Sprintf("records' holds hold %d, ledger pending %d", ledHeld, b.Pending))
	}
	if recHeld != wantOut {
		bad = append(bad, fmt.Sprintf("records' outstanding %d; the network was told %d remains authorized", recHeld, wantOut))
	}
	return bad
}

// scenario builds a sim's steps.
type scenario struct {
	name    string
	balance int64
	ctl     card.Controls
	run     func(s *sim)
}

func (s *sim) purchase(amount int64) authorization.Request { return s.e.purchase(s.h, amount) }

func (s *sim) preauth(amount int64) authorization.Request {
	r := s.e.purchase(s.h, amount)
	r.Kind, r.MCC = authorization.KindPreauth, "7011"
	return r
}

func (s *sim) revOf(orig authorization.NetworkID, keep int64) authorization.ReversalRequest {
	return authorization.ReversalRequest{Network: s.e.net(), Original: orig, Amount: keep}
}

func newSim(t *testing.T, sc scenario, f fault, early bool) *sim {
	db := storetest.SQLite(t, "authorization")
	if os.Getenv("FAULT_PG") != "" {
		db = storetest.Postgres(t, "authorization")
	}
	e := newEnv(t, db)
	in := newInjector(f)
	a := e.another(t, db, func(c *authorization.Config) {
		c.AnswerEarly = early
		c.Ledger = &faultLedger{Service: e.led, in: in}
		c.Card = &faultCard{Service: e.cards, in: in}
	})
	s := &sim{t: t, e: e, a: a, in: in, initial: sc.balance, held: map[string]int64{}, told: map[string]string{},
		incBase: map[string]string{}, fin: map[string]bool{}, cleared: map[string]int64{}, final: map[string]bool{}}
	s.h = e.holder(sc.balance, sc.ctl)
	return s
}

// runFaults runs sc without a fault to learn its calls, then once per call
// and fault mode, and reports every run whose books disagree: with the
// approvals answered after their records are finished, and answered early
// (AnswerEarly, the embedded shape's). On SQLite; FAULT_PG=1 runs it on
// PostgreSQL. Not under the race detector: these runs are sequential,
// the race detector makes them several times slower (four minutes), and
// .ci/run runs them without it in the same pass as every other test.
func runFaults(t *testing.T, sc scenario) {
	if raceEnabled {
		t.Skip("sequential fault runs: run without -race (as .ci/run's go test ./... does)")
	}
	for _, early := range []bool{false, true} {
		t.Run(map[bool]string{false: "answered after finishing", true: "answered early"}[early], func(t *testing.T) {
			runFaultsWith(t, sc, early)
		})
	}
}

func runFaultsWith(t *testing.T, sc scenario, early bool) {
	clean := newSim(t, sc, fault{}, early)
	sc.run(clean)
	clean.settle()
	if bad := clean.check(); len(bad) > 0 {
		t.Fatalf("%s without a fault: %v\n%s", sc.name, bad, strings.Join(clean.log, "\n"))
	}
	calls := append([]string(nil), clean.in.trace...)
	for _, c := range calls {
		method, nth, _ := strings.Cut(c, "#")
		var n int
		fmt.Sscan(nth, &n)
		faults := []fault{
			{method, n, faultBefore, false, false}, {method, n, faultAfter, false, false},
			{method, n, faultBefore, true, false}, {method, n, faultAfter, true, false},
			{method, n, faultBefore, true, true}, {method, n, faultAfter, true, true},
		}
		for _, f := range faults {
			t.Run(f.String(), func(t *testing.T) {
				s := newSim(t, sc, f, early)
				sc.run(s)
				s.settle()
				if bad := s.check(); len(bad) > 0 {
					t.Errorf("%s with %s:\n  %s\nrun:\n  %s", sc.name, f, strings.Join(bad, "\n  "), strings.Join(s.log, "\n  "))
					return
				}
				s.logf("-- duplicates")
				s.repeat()
				if bad := s.check(); len(bad) > 0 {
					t.Errorf("%s with %s, after duplicates:\n  %s\nrun:\n  %s", sc.name, f, strings.Join(bad, "\n  "), strings.Join(s.log, "\n  "))
				} else if os.Getenv("FAULT_LOG") != "" {
					t.Logf("%s with %s:\n  %s", sc.name, f, strings.Join(s.log, "\n  "))
				}
			})
		}
	}
}
