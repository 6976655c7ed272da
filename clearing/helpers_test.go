package clearing_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/card/cardtest"
	"github.com/corebank/corebank/clearing"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

var epoch = time.Date(2030, 1, 15, 9, 0, 0, 0, time.UTC)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// flakyLedger is the real ledger whose writes fail from the fail-th call
// on (0: never), as if the process died there.
type flakyLedger struct {
	ledger.Service
	calls, fail atomic.Int64
	after       atomic.Bool // fail after the real call took effect
}

func (f *flakyLedger) trip() error {
	n := f.calls.Add(1)
	if k := f.fail.Load(); k > 0 && n >= k {
		return errors.New(errors.Unavailable, "injected crash")
	}
	return nil
}

func (f *flakyLedger) Transfer(ctx context.Context, req ledger.TransferRequest) (*ledger.Transfer, error) {
	err := f.trip()
	if err != nil && !f.after.Load() {
		return nil, err
	}
	t, lerr := f.Service.Transfer(ctx, req)
	if err != nil {
		return nil, err
	}
	return t, lerr
}

func (f *flakyLedger) PostHold(ctx context.Context, req ledger.PostHoldRequest) (*ledger.Hold, error) {
	err := f.trip()
	if err != nil && !f.after.Load() {
		return nil, err
	}
	h, lerr := f.Service.PostHold(ctx, req)
	if err != nil {
		return nil, err
	}
	return h, lerr
}

// env is a clearing service wired to real card, authorization and ledger
// services, each on its own database of the test's engine.
type env struct {
	t          *testing.T
	db, ledDB  *store.DB
	authDB     *store.DB
	clk        *clock
	led        *ledger.Ledger
	flaky      *flakyLedger
	cards      *card.Cards
	auth       *authorization.Authorizer
	c          *clearing.Clearer
	fund       string
	settlement string
	n          atomic.Int64
}

func newEnv(t *testing.T, db *store.DB) *env {
	t.Helper()
	ctx := context.Background()
	clk := new(clock)
	clk.ns.Store(epoch.UnixNano())
	e := &env{t: t, db: db, clk: clk, ledDB: storetest.Like(t, db, "ledger")}
	var err error
	e.led, err = ledger.Open(ctx, e.ledDB, ledger.Config{Now: clk.Now})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() { e.led.Close() })
	e.cards, err = card.Open(ctx, storetest.Like(t, db, "card"), cardtest.Config("45717360", clk.Now))
	if err != nil {
		t.Fatalf("card.Open: %v", err)
	}
	e.fund = e.account("fund", ledger.RuleNone)
	e.settlement = e.account("settlement", ledger.RuleNone)
	settle := map[money.Currency]string{"GBP": e.settlement}
	e.authDB = storetest.Like(t, db, "authorization")
	e.auth, err = authorization.Open(ctx, e.authDB, authorization.Config{
		Card: e.cards, Ledger: e.led, Now: clk.Now, Settlement: settle,
	})
	if err != nil {
		t.Fatalf("authorization.Open: %v", err)
	}
	e.flaky = &flakyLedger{Service: e.led}
	e.c, err = clearing.Open(ctx, db, clearing.Config{
		Ledger: e.flaky, Authorization: e.auth, Card: e.cards, Settlement: settle, Now: clk.Now,
	})
	if err != nil {
		t.Fatalf("clearing.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := ledger.Verify(context.Background(), e.ledDB); err != nil {
			t.Errorf("ledger.Verify: %v", err)
		}
	})
	return e
}

func (e *env) account(key string, rule ledger.Rule) string {
	e.t.Helper()
	return cardtest.Account(e.t, e.led, key, rule)
}

// holder is an issued card on a funded account, with its details.
type holder = cardtest.Holder

// holder issues a card on a new account holding balance.
func (e *env) holder(balance int64) *holder {
	e.t.Helper()
	return cardtest.Issue(e.t, e.led, e.cards, e.fund, e.n.Add(1), balance, card.Controls{})
}

// net returns network ids no message has had.
func (e *env) net() authorization.NetworkID {
	n := e.n.Add(1)
	return authorization.NetworkID{Acquirer: "123456", STAN: fmt.Sprintf("%06d", n), RRN: fmt.Sprintf("RRN%09d", n), TransmissionTime: "0115090000"}
}

// reverse has the authorization service reverse orig down to keep (0: in
// full) under new network ids.
func (e *env) reverse(orig authorization.NetworkID, keep int64) *authorization.Decision {
	e.t.Helper()
	d, err := e.auth.Reverse(context.Background(), authorization.ReversalRequest{Network: e.net(), Original: orig, Amount: keep})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// purchase is a purchase of amount pence on h with fresh network ids.
func (e *env) purchase(h *holder, amount int64) authorization.Request {
	return authorization.Request{
		Kind:    authorization.KindPurchase,
		Network: e.net(),
		PAN:     authorization.PAN(h.PAN), Expiry: "3401", CVC: authorization.CVC(h.CVC),
		Amount: amount, Currency: "GBP", MCC: "5814", Channel: card.ChannelContactless,
		MerchantName: "OZONE COFFEE", MerchantCity: "LONDON", MerchantCountry: "GB",
	}
}

// authorize approves a purchase of amount pence on h and returns it.
func (e *env) authorize(h *holder, amount int64) *authorization.Decision {
	e.t.Helper()
	return e.approve(e.auth, e.purchase(h, amount))
}

// approve has s authorize req, which must be approved.
func (e *env) approve(s authorization.Service, req authorization.Request) *authorization.Decision {
	e.t.Helper()
	d, err := s.Authorize(context.Background(), req)
	if err != nil || !d.Approved {
		e.t.Fatalf("Authorize: %v %+v", err, d)
	}
	return d
}

// rec is one detail record to write into a file.
type rec struct {
	id          string
	pan         string
	proc        string // processing code; default 000000
	amount      int64
	currency    string // default GBP
	billing     int64  // default amount
	arn         string // default derived from id
	auth        *authorization.Decision
	authCode    string // default auth's
	presentment int    // default 1
	notFinal    bool
	refOnly     bool   // only auth's RRN and auth code, no original network ids
	stan        string // overrides auth's STAN
}

// forAuth is a record clearing d for amount on h.
func forAuth(id string, h *holder, d *authorization.Decision, amount int64) rec {
	return rec{id: id, pan: h.PAN, amount: amount, auth: d}
}

func (r rec) line() string {
	proc, cur := r.proc, r.currency
	if proc == "" {
		proc = "000000"
	}
	if cur == "" {
		cur = "GBP"
	}
	billing := r.billing
	if billing == 0 {
		billing = r.amount
	}
	arn := r.arn
	if arn == "" {
		arn = arnFor(r.id)
	}
	var rrn, code, acq, stan, tx string
	if r.auth != nil {
		rrn, code, acq, stan, tx = r.auth.Network.RRN, r.auth.AuthCode, r.auth.Network.Acquirer, r.auth.Network.STAN, r.auth.Network.TransmissionTime
	}
	if r.refOnly {
		acq, stan, tx = "", "", ""
	}
	if r.stan != "" {
		stan = r.stan
	}
	if r.authCode != "" {
		code = r.authCode
	}
	p, final := r.presentment, "Y"
	if p == 0 {
		p = 1
	}
	if r.notFinal {
		final = "N"
	}
	return fmt.Sprintf("D,%s,%s,%s,%d,%s,%d,%s,%s,%s,%s,%s,%s,%s,\"OZONE COFFEE, SHOREDITCH\",LONDON,GB,5814,%d,%s",
		r.id, r.pan, proc, r.amount, cur, billing, cur, arn, rrn, code, acq, stan, tx, p, final)
}

// lateReversed approves a purchase of amount on h, then reverses it as
// the gateway does its own late approval (cardnet's lateReversal: the
// original's ids, an RRN of its own, OwnDecision), and returns the
// purchase and its decision.
func (e *env) lateReversed(h *holder, amount int64) (authorization.Request, *authorization.Decision) {
	e.t.Helper()
	req := e.purchase(h, amount)
	d := e.approve(e.auth, req)
	late := req.Network
	late.RRN = "GW" + late.RRN
	if _, err := e.auth.Reverse(context.Background(), authorization.ReversalRequest{Network: late, Original: req.Network, OwnDecision: true}); err != nil {
		e.t.Fatal(err)
	}
	return req, d
}

// arnFor derives a 23-digit acquirer reference from a record id.
func arnFor(id string) string {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return fmt.Sprintf("74%021d", h%1e18)
}

// file builds a well-formed clearing file.
func file(id string, recs ...rec) []byte {
	var b strings.Builder
	var total int64
	for _, r := range recs {
		if r.billing != 0 {
			total += r.billing
		} else {
			total += r.amount
		}
	}
	fmt.Fprintf(&b, "# test clearing file\nH,%s,MCI,2030-01-16,%d,%d\n", id, len(recs), total)
	for _, r := range recs {
		b.WriteString(r.line() + "\n")
	}
	fmt.Fprintf(&b, "T,%s,%d,%d\n", id, len(recs), total)
	return []byte(b.String())
}

func (e *env) ingest(t *testing.T, name string, content []byte) *clearing.Report {
	t.Helper()
	rep, err := e.c.Ingest(context.Background(), clearing.IngestRequest{FileName: name, Content: content})
	if err != nil {
		t.Fatalf("Ingest: %v", err)
	}
	return rep
}

func (e *env) balance(acc string) *ledger.Balance {
	e.t.Helper()
	b, err := e.led.Balance(context.Background(), acc, time.Time{})
	if err != nil {
		e.t.Fatalf("Balance: %v", err)
	}
	return b
}

func (e *env) wantBalance(t *testing.T, acc string, posted, pending int64) {
	t.Helper()
	b := e.balance(acc)
	if b.Posted != posted || b.Pending != pending {
		t.Errorf("balance posted %d pending %d, want %d and %d", b.Posted, b.Pending, posted, pending)
	}
}

func (e *env) hold(t *testing.T, id string) *ledger.Hold {
	t.Helper()
	h, err := e.led.GetHold(context.Background(), id)
	if err != nil {
		t.Fatalf("GetHold: %v", err)
	}
	return h
}

func (e *env) records(t *testing.T, fileID string) map[string]clearing.Record {
	t.Helper()
	m := map[string]clearing.Record{}
	for _, r := range e.allRecords(t, fileID) {
		m[r.ID] = r
	}
	return m
}

func count(t *testing.T, db *store.DB, q string) int {
	t.Helper()
	var n int
	if err := db.Read.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantCode(t *testing.T, err error, code errors.Code) {
	t.Helper()
	if errors.CodeOf(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

// allRecords reads a file's records page by page, checking the pages.
func (e *env) allRecords(t *testing.T, fileID string) []clearing.Record {
	t.Helper()
	var all []clearing.Record
	after := 0
	for {
		p, err := e.c.ListRecords(context.Background(), clearing.ListRecordsRequest{FileID: fileID, After: after})
		if err != nil {
			t.Fatalf("ListRecords: %v", err)
		}
		for _, r := range p.Records {
			if r.Seq <= after {
				t.Fatalf("ListRecords after %d returned seq %d", after, r.Seq)
			}
			after = r.Seq
		}
		all = append(all, p.Records...)
		if !p.More {
			return all
		}
		if len(p.Records) != clearing.MaxRecordsPage {
			t.Fatalf("a page of %d records with more to come, want %d", len(p.Records), clearing.MaxRecordsPage)
		}
	}
}
