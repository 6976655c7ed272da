package sim_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/cardnet/sim"
)

// testCards: a GBP card, a EUR card, and a GBP card the issuer has
// restricted (every 0100/0200 declined 62).
var testCards = []sim.Card{
	{PAN: "4000001234567899", Expiry: "2912", CVC: "123", Currency: "GBP"},
	{PAN: "5100009876543210", Expiry: "3006", CVC: "456", Currency: "EUR"},
	{PAN: "4000005555555551", Expiry: "2811", CVC: "789", Currency: "GBP"},
}

const restrictedPAN = "4000005555555551"

// outstanding is the issuer's view of one approval: what the acquirer may
// clear.
type outstanding struct {
	amount, billing int64
	authCode        string
}

// issuer is a toy issuer: deterministic decisions by PAN, CVC2, expiry and
// amount; idempotent on network ids; its own record of what stays
// authorized, to check the simulator's clearing file against.
type issuer struct {
	t     *testing.T
	cards map[string]sim.Card
	// forgetful: answer repeats afresh instead of from the record (an
	// idempotency bug the simulator must catch).
	forgetful bool

	mu       sync.Mutex
	answers  map[string]*cardnet.Message    // by base MTI and network ids
	approved map[cardnet.Trace]*outstanding // by the 0100/0120/0200's trace
	traceKey map[cardnet.Trace]string       // trace to network-id key
	seq      int
	repeats  int
}

func newIssuer(t *testing.T) *issuer {
	is := &issuer{t: t, cards: map[string]sim.Card{}, answers: map[string]*cardnet.Message{},
		approved: map[cardnet.Trace]*outstanding{}, traceKey: map[cardnet.Trace]string{}}
	for _, c := range testCards {
		is.cards[string(c.PAN)] = c
	}
	return is
}

func idKey(r *cardnet.Request) string {
	return strings.Join([]string{r.BaseMTI(), r.AcquirerID, r.STAN, r.RRN, r.TransmissionTime.String()}, "|")
}

func (is *issuer) Handle(ctx context.Context, m *cardnet.Message) *cardnet.Message {
	req, err := cardnet.ParseRequest(m)
	if err != nil {
		is.t.Errorf("issuer: the simulator sent a malformed %s: %v", m.MTI(), err)
		resp, _ := cardnet.Respond(m, cardnet.Answer{Code: cardnet.FormatError})
		return resp
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	key := idKey(req)
	if req.IsRepeat() {
		is.repeats++
	}
	if prev, ok := is.answers[key]; ok && !is.forgetful {
		resp := prev.Clone()
		return resp
	}
	a := is.decide(req)
	resp, err := cardnet.Respond(m, a)
	if err != nil {
		is.t.Errorf("issuer: respond to %v: %v", req, err)
		return nil
	}
	is.answers[key] = resp
	return resp
}

// decide is the issuer's decision and its effect on what stays authorized.
func (is *issuer) decide(req *cardnet.Request) cardnet.Answer {
	is.seq++
	authCode := fmt.Sprintf("A%05d", is.seq)
	billing := req.Amount
	if req.BillingCurrency != "" {
		billing = req.BillingAmount
	}
	switch req.BaseMTI() {
	case cardnet.MTIReversalRequest:
		if o := is.approved[req.Original.Trace()]; o != nil {
			o.amount, o.billing = 0, 0
			if req.ReplacementAmount != nil {
				o.amount, o.billing = *req.ReplacementAmount, *req.ReplacementAmount
			}
		}
		return cardnet.Answer{Code: cardnet.Approved}
	case cardnet.MTIAuthorizationAdvice:
		if req.ResponseCode == cardnet.Approved {
			is.approved[req.Trace()] = &outstanding{amount: req.Amount, billing: billing, authCode: req.AuthID}
		}
		return cardnet.Answer{Code: cardnet.Approved}
	}
	c, ok := is.cards[string(req.PAN)]
	switch {
	case !ok:
		return cardnet.Answer{Code: cardnet.InvalidCardNumber}
	case req.Expiry.String() != c.Expiry:
		return cardnet.Answer{Code: cardnet.ExpiredCard}
	case req.CVC2 != "" && req.CVC2 != c.CVC:
		return cardnet.Answer{Code: cardnet.DoNotHonour}
	case string(req.PAN) == restrictedPAN:
		return cardnet.Answer{Code: cardnet.RestrictedCard}
	case billing > 200_000:
		return cardnet.Answer{Code: cardnet.NotSufficientFunds}
	}
	if req.Incremental() {
		o := is.approved[req.Original.Trace()]
		if o == nil {
			return cardnet.Answer{Code: cardnet.UnableToLocateRecord}
		}
		o.amount += req.Amount
		o.billing += billing
		return cardnet.Answer{Code: cardnet.Approved, AuthID: authCode}
	}
	a := cardnet.Answer{Code: cardnet.Approved, AuthID: authCode}
	amount := req.Amount
	if req.PartialApproval && req.BillingCurrency == "" && req.Amount > 2000 {
		a.Code, a.Amount = cardnet.PartiallyApproved, req.Amount/2
		amount, billing = a.Amount, a.Amount
	}
	is.approved[req.Trace()] = &outstanding{amount: amount, billing: billing, authCode: authCode}
	return a
}

// startIssuer serves h on loopback until the test ends.
func startIssuer(t *testing.T, h cardnet.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &cardnet.Server{Handler: h}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; !errors.Is(err, cardnet.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func runSim(t *testing.T, addr string, seed uint64, clearing *bytes.Buffer) *sim.Result {
	t.Helper()
	s := &sim.Simulator{
		Addr:      addr,
		Cards:     testCards,
		Rate:      400,
		Duration:  time.Second,
		Rand:      rand.New(rand.NewPCG(seed, 1)),
		EchoEvery: 100 * time.Millisecond,
		Timeout:   5 * time.Second,
	}
	if clearing != nil {
		s.Clearing = clearing
	}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestSimulatorPlaysEveryScenarioAndClears(t *testing.T) {
	is := newIssuer(t)
	addr := startIssuer(t, is)
	var clearing bytes.Buffer
	res := runSim(t, addr, 7, &clearing)

	t.Run("answers everything", func(t *testing.T) {
		if res.Errors != 0 {
			t.Errorf("%d requests unanswered, first: %v", res.Errors, res.FirstError)
		}
		// The pacer schedules 400 scenarios in the second (some send two
		// messages): fewer than 200 would mean it is not pacing at the
		// rate. A check of pacing, not of speed: a loaded machine still
		// sends most of them.
		if n := res.Sent("0100") + res.Sent("0120") + res.Sent("0200"); n < 200 {
			t.Errorf("%d scenarios answered in a second at 400/s", n)
		}
	})
	t.Run("signs on, echoes and signs off", func(t *testing.T) {
		// Sign-on, sign-off and at least one echo, all approved. The echoes
		// run on a timer, so how many fit in the run depends on the
		// machine's load: count only what every run must have.
		if n := res.Codes["0800"][cardnet.Approved]; n < 3 || res.Sent("0800") != n {
			t.Errorf("0800 answered 00 %d times of %d sent, want sign-on, an echo or more, sign-off, all approved", n, res.Sent("0800"))
		}
	})
	t.Run("plays every scenario", func(t *testing.T) {
		for _, k := range []sim.Kind{sim.KindPurchase, sim.KindDecline, sim.KindReversal, sim.KindIncremental,
			sim.KindRetransmit, sim.KindStandIn, sim.KindFinancial, sim.KindRefund} {
			if res.Scenarios[k] == 0 {
				t.Errorf("no %s scenario played: %v", k, res.Scenarios)
			}
		}
		for _, mti := range []string{"0100", "0101", "0120", "0200", "0400", "0401"} {
			if res.Sent(mti) == 0 {
				t.Errorf("no %s sent: %v", mti, res.Codes)
			}
		}
		// the decline scenarios reach each decline
		for _, code := range []cardnet.ResponseCode{"05", "14", "51", "54", "62", "10"} {
			if res.Codes["0100"][code] == 0 {
				t.Errorf("no 0100 answered %s: %v", code, res.Codes["0100"])
			}
		}
	})
	t.Run("retransmissions get the same answer", func(t *testing.T) {
		if is.repeats == 0 || res.Mismatches != 0 {
			t.Errorf("issuer saw %d repeats; simulator counted %d mismatches", is.repeats, res.Mismatches)
		}
	})
	t.Run("clearing file matches the approvals", func(t *testing.T) {
		recs := parseClearing(t, clearing.Bytes())
		is.mu.Lock()
		defer is.mu.Unlock()
		want := 0
		for trace, o := range is.approved {
			if o.amount == 0 {
				continue
			}
			want++
			key := trace.AcquirerID + "|" + trace.STAN + "|" + trace.TransmissionTime.String()
			r, ok := recs[key]
			if !ok {
				t.Errorf("approval %v (%d outstanding) has no clearing record", trace, o.amount)
				continue
			}
			if r.amount != o.amount || r.billing != o.billing || r.authCode != o.authCode {
				t.Errorf("approval %v: cleared %d/%d code %s, issuer has %d/%d code %s", trace, r.amount, r.billing, r.authCode, o.amount, o.billing, o.authCode)
			}
		}
		if len(recs) != want || want == 0 {
			t.Errorf("%d clearing records, issuer has %d approvals outstanding", len(recs), want)
		}
		if len(res.Clearing.Records) != len(recs) {
			t.Errorf("Result has %d records, the file %d", len(res.Clearing.Records), len(recs))
		}
		refunds := 0
		for _, r := range recs {
			if r.code == "200000" {
				refunds++
			}
		}
		if refunds == 0 {
			t.Errorf("no refund record in the clearing file")
		}
	})
}

func TestSimulatorCatchesNonIdempotentIssuer(t *testing.T) {
	is := newIssuer(t)
	is.forgetful = true
	addr := startIssuer(t, is)
	res := runSim(t, addr, 11, nil)
	if res.Mismatches == 0 {
		t.Errorf("an issuer answering repeats afresh (new approval codes) went unnoticed: %d repeats", is.repeats)
	}
}

func TestSimulatorIsReproducible(t *testing.T) {
	a := runSim(t, startIssuer(t, newIssuer(t)), 3, nil)
	b := runSim(t, startIssuer(t, newIssuer(t)), 3, nil)
	if fmt.Sprint(a.Scenarios) != fmt.Sprint(b.Scenarios) || fmt.Sprint(a.Codes["0100"]) != fmt.Sprint(b.Codes["0100"]) {
		t.Errorf("same seed, different runs:\n%v %v\n%v %v", a.Scenarios, a.Codes["0100"], b.Scenarios, b.Codes["0100"])
	}
}

func TestSimulatorFailsWithoutSignOn(t *testing.T) {
	h := cardnet.HandlerFunc(func(ctx context.Context, m *cardnet.Message) *cardnet.Message { return nil })
	addr := startIssuer(t, h)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	s := &sim.Simulator{Addr: dead, Cards: testCards, Rate: 10, Duration: time.Second}
	if _, err := s.Run(context.Background()); err == nil {
		t.Errorf("Run against a closed port succeeded")
	}
	s.Addr = addr
	s.Cards = nil
	if _, err := s.Run(context.Background()); err == nil {
		t.Errorf("Run without cards succeeded")
	}
}

type clearingRecord struct {
	amount, billing int64
	authCode, code  string
}

// parseClearing checks the file's layout, counts and control total, and
// returns its records by acquirer, STAN and transmission time.
func parseClearing(t *testing.T, b []byte) map[string]clearingRecord {
	t.Helper()
	r := csv.NewReader(bytes.NewReader(b))
	r.FieldsPerRecord = -1
	lines, err := r.ReadAll()
	if err != nil {
		t.Fatalf("clearing file is not CSV: %v", err)
	}
	if len(lines) < 2 || lines[0][0] != "H" || lines[len(lines)-1][0] != "T" {
		t.Fatalf("clearing file has no header or trailer")
	}
	h, tr := lines[0], lines[len(lines)-1]
	if len(h) != 6 || len(tr) != 4 || h[1] != tr[1] || h[4] != tr[2] || h[5] != tr[3] {
		t.Errorf("header %v and trailer %v disagree", h, tr)
	}
	out := map[string]clearingRecord{}
	var total int64
	for _, l := range lines[1 : len(lines)-1] {
		if len(l) != 20 || l[0] != "D" {
			t.Fatalf("detail line %v: want 20 fields starting D", l[:2])
		}
		amount, _ := strconv.ParseInt(l[4], 10, 64)
		billing, _ := strconv.ParseInt(l[6], 10, 64)
		total += billing
		if len(l[8]) != 23 || len(l[15]) > 40 || len(l[18]) == 0 || l[19] != "Y" {
			t.Errorf("record %s: arn %q, merchant %q, presentment %q, final %q", l[1], l[8], l[15], l[18], l[19])
		}
		key := l[11] + "|" + l[12] + "|" + l[13]
		if _, dup := out[key]; dup {
			t.Errorf("two records for %s", key)
		}
		out[key] = clearingRecord{amount: amount, billing: billing, authCode: l[10], code: l[3]}
	}
	if h[4] != strconv.Itoa(len(out)) || h[5] != strconv.FormatInt(total, 10) {
		t.Errorf("header count %s total %s; file has %d records totalling %d", h[4], h[5], len(out), total)
	}
	return out
}

// Two runs on one day present their transactions under references of their
// own: clearing skips a reference it has seen as a duplicate presentment.
func TestSimulatorRunsDoNotShareARNs(t *testing.T) {
	is := newIssuer(t)
	addr := startIssuer(t, is)
	// Two seeds, and one seed twice (a run reproduced).
	for _, seeds := range [][2]uint64{{21, 22}, {21, 21}} {
		a := runSim(t, addr, seeds[0], nil)
		b := runSim(t, addr, seeds[1], nil)
		seen := map[string]bool{}
		for _, r := range a.Clearing.Records {
			seen[r.ARN] = true
		}
		if len(seen) == 0 || len(b.Clearing.Records) == 0 {
			t.Fatalf("runs cleared %d and %d records: the test proves nothing", len(seen), len(b.Clearing.Records))
		}
		for _, r := range b.Clearing.Records {
			if seen[r.ARN] {
				t.Fatalf("seeds %d and %d: ARN %s in both runs' clearing files", seeds[0], seeds[1], r.ARN)
			}
		}
		if a.Clearing.ID == b.Clearing.ID {
			t.Errorf("seeds %d and %d: both files are %s", seeds[0], seeds[1], a.Clearing.ID)
		}
	}
}

// A rate so low that its interval would not fit a Duration plays one
// scenario, not a flood (the interval wrapped to a negative one); rates a
// Simulator cannot pace are refused.
func TestSimulatorTinyAndBadRates(t *testing.T) {
	addr := startIssuer(t, newIssuer(t))
	s := &sim.Simulator{Addr: addr, Cards: testCards, Rate: 1e-10, Duration: time.Second,
		Rand: rand.New(rand.NewPCG(1, 1)), Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := s.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range res.Scenarios {
		n += c
	}
	if n != 1 {
		t.Errorf("a 1 s run at 1e-10 scenarios/s played %d scenarios, want 1", n)
	}
	for _, rate := range []float64{math.NaN(), math.Inf(1), 0, -1, sim.MaxRate * 2} {
		s := &sim.Simulator{Addr: addr, Cards: testCards, Rate: rate, Duration: time.Second}
		if _, err := s.Run(ctx); err == nil {
			t.Errorf("Rate %v: ran", rate)
		}
	}
}

// A run whose connection breaks still writes the clearing file of what was
// approved before: the network clears what it approved.
func TestSimulatorClearsWhatWasApprovedWhenTheConnectionBreaks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var approved atomic.Int64
	broken := make(chan struct{})
	var once sync.Once
	is := newIssuer(t)
	srv := &cardnet.Server{Handler: cardnet.HandlerFunc(func(ctx context.Context, m *cardnet.Message) *cardnet.Message {
		resp := is.Handle(ctx, m)
		if m.MTI() == "0100" && resp != nil && resp.Get(39) == "00" && approved.Add(1) == 20 {
			once.Do(func() { close(broken) })
		}
		return resp
	})}
	go srv.Serve(ln)
	go func() {
		<-broken
		srv.Close() // the link drops
	}()
	defer srv.Close()
	var file bytes.Buffer
	s := &sim.Simulator{Addr: ln.Addr().String(), Cards: testCards, Rate: 400, Duration: 5 * time.Second,
		Rand: rand.New(rand.NewPCG(3, 1)), Timeout: time.Second, Clearing: &file, Mix: sim.Mix{Purchase: 1}}
	res, err := s.Run(context.Background())
	if err == nil {
		t.Fatal("a run whose connection broke ended without an error")
	}
	if res == nil || len(res.Approvals) == 0 || len(res.Clearing.Records) != len(res.Approvals) {
		t.Fatalf("result %+v", res)
	}
	if lines := strings.Count(file.String(), "\nD,"); lines != len(res.Approvals) || !strings.HasPrefix(file.String(), "H,"+res.Clearing.ID+",") {
		t.Errorf("clearing file of %d record lines for %d approvals:\n%.200s", lines, len(res.Approvals), file.String())
	}
}
