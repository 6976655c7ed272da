package cardnet_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/card/cardtest"
	"github.com/corebank/corebank/cardnet"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// These tests drive the real Gateway over real TCP with cardnet.Client,
// deciding with the real authorization, card and ledger services, each on
// its own database.

// bankClock is the card service's clock, which a test moves to issue
// cards that have since expired.
type bankClock struct{ offset atomic.Int64 }

func (c *bankClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// bank is the card-issuing half of corebank behind a gateway.
type bank struct {
	t          *testing.T
	ledDB      *store.DB
	led        *ledger.Ledger
	cards      *card.Cards
	cardClock  *bankClock
	auth       *authorization.Authorizer
	gw         *cardnet.Gateway
	reg        *prometheus.Registry
	client     *cardnet.Client
	fund       string
	settlement string
	n          atomic.Int64
}

type bankOptions struct {
	db        func(t testing.TB, service string) *store.DB // storetest.SQLite by default
	wrap      func(authorization.Service) authorization.Service
	deadline  time.Duration
	onTimeout cardnet.TimeoutPolicy
}

func newBank(t *testing.T, o bankOptions) *bank {
	t.Helper()
	ctx := context.Background()
	if o.db == nil {
		o.db = storetest.SQLite
	}
	b := &bank{t: t, cardClock: new(bankClock), reg: prometheus.NewRegistry()}
	b.ledDB = o.db(t, "ledger")
	var err error
	b.led, err = ledger.Open(ctx, b.ledDB, ledger.Config{})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := ledger.Verify(context.Background(), b.ledDB); err != nil {
			t.Errorf("ledger.Verify after the test: %v", err)
		}
		b.led.Close()
	})
	b.cards, err = card.Open(ctx, o.db(t, "card"), cardtest.Config("45999912", b.cardClock.Now))
	if err != nil {
		t.Fatalf("card.Open: %v", err)
	}
	b.fund = b.account("fund", ledger.RuleNone)
	b.settlement = b.account("settlement-GBP", ledger.RuleNone)
	b.auth, err = authorization.Open(ctx, o.db(t, "authorization"), authorization.Config{
		Card: b.cards, Ledger: b.led, Settlement: map[money.Currency]string{"GBP": b.settlement},
	})
	if err != nil {
		t.Fatalf("authorization.Open: %v", err)
	}
	var svc authorization.Service = b.auth
	if o.wrap != nil {
		svc = o.wrap(svc)
	}
	b.gw = &cardnet.Gateway{Auth: svc, Deadline: o.deadline, OnTimeout: o.onTimeout, Metrics: b.reg}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.gw.Wait(ctx); err != nil {
			t.Errorf("gateway Wait: %v", err)
		}
	})
	addr := StartServer(t, &cardnet.Server{Handler: b.gw, Deadline: 5 * time.Second})
	b.client = MustDial(t, addr)
	return b
}

func (b *bank) account(key string, rule ledger.Rule) string {
	b.t.Helper()
	return cardtest.Account(b.t, b.led, key, rule)
}

// cardholder is an issued card on its own account, with its details.
type cardholder struct {
	card    *card.Card
	account string
	pan     string
	expiry  cardnet.Expiry
	cvc     string
}

// holder issues a card with controls on a new account holding balance.
func (b *bank) holder(balance int64, ctl card.Controls) *cardholder {
	b.t.Helper()
	h := cardtest.Issue(b.t, b.led, b.cards, b.fund, b.n.Add(1), balance, ctl)
	c := h.Card
	return &cardholder{card: c, account: h.Account, pan: h.PAN, expiry: cardnet.Expiry{Year: c.ExpiryYear, Month: time.Month(c.ExpiryMonth)}, cvc: h.CVC}
}

// purchase is a contactless 0100 purchase of amount pence with fresh
// network ids.
func (b *bank) purchase(h *cardholder, amount int64) *cardnet.Request {
	n := b.n.Add(1)
	return &cardnet.Request{
		MTI:              cardnet.MTIAuthorizationRequest,
		PAN:              cardnet.PAN(h.pan),
		ProcessingCode:   "000000",
		Amount:           amount,
		Currency:         "GBP",
		TransmissionTime: cardnet.DateTime{Month: 3, Day: 15, Hour: 14, Minute: 30, Second: 5},
		STAN:             fmt.Sprintf("%06d", n),
		Expiry:           h.expiry,
		MCC:              "5814",
		POSEntryMode:     "071",
		POSCondition:     "00",
		AcquirerID:       "123456",
		RRN:              fmt.Sprintf("RRN%09d", n),
		TerminalID:       "TERM0001",
		MerchantID:       "MERCHANT0000001",
		Merchant:         cardnet.Merchant{Name: "OZONE COFFEE ROASTERS", City: "LONDON", Country: "GB"},
		CVC2:             cardnet.CVC(h.cvc),
	}
}

// follow returns a message of type mti that refers to orig through DE90 and
// its RRN, with its own STAN.
func (b *bank) follow(orig *cardnet.Request, mti string) *cardnet.Request {
	r := *orig
	r.MTI = mti
	r.STAN = fmt.Sprintf("%06d", b.n.Add(1))
	r.TransmissionTime.Second++
	r.CVC2 = ""
	r.Original = &cardnet.OriginalData{MTI: orig.MTI, STAN: orig.STAN, TransmissionTime: orig.TransmissionTime, AcquirerID: orig.AcquirerID}
	return &r
}

// recorded is the authorization service's record of request r.
func (b *bank) recorded(r *cardnet.Request) (*authorization.Decision, error) {
	return b.auth.ByNetworkID(context.Background(), authorization.NetworkID{
		Acquirer: "123456", STAN: r.STAN, RRN: r.RRN, TransmissionTime: r.TransmissionTime.String()})
}

func (b *bank) send(r *cardnet.Request) *cardnet.Message {
	b.t.Helper()
	return MustSend(b.t, b.client, MustMessage(b.t, r))
}

// wantCode sends r and checks the response's DE39.
func (b *bank) wantCode(r *cardnet.Request, code cardnet.ResponseCode) *cardnet.Message {
	b.t.Helper()
	resp := b.send(r)
	if got := resp.Get(39); got != string(code) {
		b.t.Fatalf("%s stan %s: DE39 = %q, want %q (%s)", r.MTI, r.STAN, got, code, code.Description())
	}
	return resp
}

func (b *bank) wantBalance(acc string, posted, pending int64) {
	b.t.Helper()
	bal, err := b.led.Balance(context.Background(), acc, time.Time{})
	if err != nil {
		b.t.Fatalf("Balance: %v", err)
	}
	if bal.Posted != posted || bal.Pending != pending {
		b.t.Errorf("balance posted %d pending %d, want %d and %d", bal.Posted, bal.Pending, posted, pending)
	}
}

func TestGatewayApproves(t *testing.T) {
	for _, engine := range []struct {
		name string
		db   func(testing.TB, string) *store.DB
	}{{"sqlite", storetest.SQLite}, {"postgres", storetest.Postgres}} {
		t.Run(engine.name, func(t *testing.T) {
			b := newBank(t, bankOptions{db: engine.db})
			h := b.holder(100_00, card.Controls{})
			req := b.purchase(h, 12_50)
			resp := b.wantCode(req, cardnet.Approved)
			if resp.MTI() != cardnet.MTIAuthorizationResponse || len(resp.Get(38)) != 6 {
				t.Errorf("response %s with DE38 %q, want 0110 with a 6-character approval code", resp.MTI(), resp.Get(38))
			}
			if resp.Get(11) != req.STAN || resp.Get(37) != req.RRN {
				t.Errorf("STAN/RRN not echoed: %q %q", resp.Get(11), resp.Get(37))
			}
			b.wantBalance(h.account, 100_00, 12_50)
			b.wantBalance(b.settlement, 0, 0)
			d, err := b.recorded(req)
			if err != nil || !d.Approved || d.AuthCode != resp.Get(38) || d.HoldID == "" {
				t.Fatalf("recorded decision %+v, %v; want approved with the code answered and a hold", d, err)
			}

			rev := b.wantCode(b.follow(req, cardnet.MTIReversalRequest), cardnet.Approved)
			if rev.MTI() != cardnet.MTIReversalResponse {
				t.Errorf("reversal answered %s", rev.MTI())
			}
			b.wantBalance(h.account, 100_00, 0)
			if got := (b.gwRequests("0100", "00")); got != 1 {
				t.Errorf("requests_total{0100,00} = %v, want 1", got)
			}
		})
	}
}

// gwRequests returns the gateway's request counter for mti and code.
func (b *bank) gwRequests(mti, code string) float64 {
	return b.counter("corebank_cardnet_requests_total", map[string]string{"mti": mti, "code": code})
}

// counter sums the gateway's counter name over the series with labels.
func (b *bank) counter(name string, labels map[string]string) float64 {
	mfs, err := b.reg.Gather()
	if err != nil {
		b.t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func TestGatewayDeclines(t *testing.T) {
	b := newBank(t, bankOptions{})
	ctx := context.Background()

	t.Run("unknown card is 14", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		req := b.purchase(h, 1_00)
		req.PAN = "4999990000000005" // not issued
		req.CVC2 = ""
		b.wantCode(req, cardnet.InvalidCardNumber)
	})
	t.Run("wrong expiry is 54", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		req := b.purchase(h, 1_00)
		req.Expiry.Year++
		req.CVC2 = ""
		b.wantCode(req, cardnet.ExpiredCard)
		b.wantBalance(h.account, 10_00, 0)
	})
	t.Run("expired card is 54", func(t *testing.T) {
		b.cardClock.offset.Store(int64(-5 * 366 * 24 * time.Hour))
		h := b.holder(10_00, card.Controls{})
		b.cardClock.offset.Store(0)
		b.wantCode(b.purchase(h, 1_00), cardnet.ExpiredCard)
	})
	for _, c := range []struct {
		reason card.BlockReason
		code   cardnet.ResponseCode
	}{{card.BlockLost, cardnet.LostCard}, {card.BlockStolen, cardnet.StolenCard}} {
		t.Run(string(c.reason)+" card is "+string(c.code), func(t *testing.T) {
			h := b.holder(10_00, card.Controls{})
			if _, err := b.cards.Block(ctx, card.BlockRequest{Key: "block-" + h.card.ID, CardID: h.card.ID, Reason: c.reason}); err != nil {
				t.Fatal(err)
			}
			b.wantCode(b.purchase(h, 1_00), c.code)
		})
	}
	t.Run("frozen card is 05", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		if _, err := b.cards.Freeze(ctx, card.StateRequest{Key: "freeze-" + h.card.ID, CardID: h.card.ID}); err != nil {
			t.Fatal(err)
		}
		b.wantCode(b.purchase(h, 1_00), cardnet.DoNotHonour)
	})
	t.Run("wrong CVC2 is 05", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		req := b.purchase(h, 1_00)
		req.CVC2 = cardnet.CVC(fmt.Sprintf("%03d", (atoi3(h.cvc)+1)%1000))
		b.wantCode(req, cardnet.DoNotHonour)
	})
	t.Run("insufficient funds is 51", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		b.wantCode(b.purchase(h, 10_01), cardnet.NotSufficientFunds)
		b.wantBalance(h.account, 10_00, 0)
	})
	t.Run("blocked merchant category is 57", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{BlockedMCCs: []string{"5814"}})
		b.wantCode(b.purchase(h, 1_00), cardnet.NotPermittedToCardholder)
	})
	t.Run("disabled channel is 57", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{DisabledChannels: []card.Channel{card.ChannelContactless}})
		b.wantCode(b.purchase(h, 1_00), cardnet.NotPermittedToCardholder)
		req := b.purchase(h, 1_00)
		req.POSEntryMode = "051" // chip: allowed
		b.wantCode(req, cardnet.Approved)
	})
	t.Run("per-transaction limit is 61", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{PerTransactionLimit: 20_00})
		b.wantCode(b.purchase(h, 20_01), cardnet.ExceedsAmountLimit)
		b.wantCode(b.purchase(h, 20_00), cardnet.Approved)
	})
	t.Run("unsupported processing code is 12", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		req := b.purchase(h, 1_00)
		req.ProcessingCode = "300000" // balance inquiry
		b.wantCode(req, cardnet.InvalidTransaction)
	})
}

func atoi3(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func TestGatewayPaymentLifecycle(t *testing.T) {
	b := newBank(t, bankOptions{})
	ctx := context.Background()

	t.Run("retransmission gets the same answer and holds once", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 7_00)
		first := b.wantCode(req, cardnet.Approved)
		again := b.wantCode(req, cardnet.Approved)
		repeat := *req
		repeat.MTI = "0101"
		third := b.wantCode(&repeat, cardnet.Approved)
		if first.Get(38) != again.Get(38) || first.Get(38) != third.Get(38) {
			t.Errorf("approval codes %q %q %q, want one", first.Get(38), again.Get(38), third.Get(38))
		}
		if third.MTI() != cardnet.MTIAuthorizationResponse {
			t.Errorf("0101 answered %s, want 0110", third.MTI())
		}
		b.wantBalance(h.account, 100_00, 7_00)
	})
	t.Run("retransmitted decline is the same decline", func(t *testing.T) {
		h := b.holder(1_00, card.Controls{})
		req := b.purchase(h, 7_00)
		b.wantCode(req, cardnet.NotSufficientFunds)
		if _, err := b.led.Transfer(ctx, ledger.TransferRequest{Key: "topup-" + h.account, Legs: []ledger.Leg{
			{AccountID: b.fund, Amount: -50_00, Currency: "GBP"}, {AccountID: h.account, Amount: 50_00, Currency: "GBP"},
		}}); err != nil {
			t.Fatal(err)
		}
		b.wantCode(req, cardnet.NotSufficientFunds)
		b.wantBalance(h.account, 51_00, 0)
	})
	t.Run("partial reversal keeps what remains", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 10_00)
		b.wantCode(req, cardnet.Approved)
		rev := b.follow(req, cardnet.MTIReversalRequest)
		remain := int64(4_00)
		rev.ReplacementAmount = &remain
		b.wantCode(rev, cardnet.Approved)
		b.wantBalance(h.account, 100_00, 4_00)
		b.wantCode(rev, cardnet.Approved) // retransmitted: no second effect
		b.wantBalance(h.account, 100_00, 4_00)
	})
	t.Run("reversal advice reverses fully", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 10_00)
		b.wantCode(req, cardnet.Approved)
		resp := b.wantCode(b.follow(req, cardnet.MTIReversalAdvice), cardnet.Approved)
		if resp.MTI() != cardnet.MTIReversalAdviceResponse {
			t.Errorf("0420 answered %s", resp.MTI())
		}
		b.wantBalance(h.account, 100_00, 0)
	})
	t.Run("reversal before its original declines the original", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 10_00)
		b.wantCode(b.follow(req, cardnet.MTIReversalRequest), cardnet.Approved)
		b.wantCode(req, cardnet.DoNotHonour)
		b.wantBalance(h.account, 100_00, 0)
	})
	t.Run("incremental authorization grows the hold", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 30_00)
		req.POSCondition = "06" // pre-authorization
		b.wantCode(req, cardnet.Approved)
		inc := b.follow(req, cardnet.MTIAuthorizationRequest)
		inc.Amount = 15_00
		b.wantCode(inc, cardnet.Approved)
		b.wantBalance(h.account, 100_00, 45_00)
		d, err := b.recorded(inc)
		if err != nil || d.Kind != authorization.KindIncremental {
			t.Fatalf("recorded %+v, %v; want an incremental", d, err)
		}
		// An increment beyond the funds is declined and holds nothing more.
		inc2 := b.follow(req, cardnet.MTIAuthorizationRequest)
		inc2.Amount = 60_00
		b.wantCode(inc2, cardnet.NotSufficientFunds)
		b.wantBalance(h.account, 100_00, 45_00)
	})
	t.Run("incremental of an unknown authorization is 25", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 30_00)
		inc := b.follow(req, cardnet.MTIAuthorizationRequest)
		b.wantCode(inc, cardnet.UnableToLocateRecord)
	})
	t.Run("partial approval answers 10 with the amount held", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		req := b.purchase(h, 25_00)
		req.PartialApproval = true
		resp := b.wantCode(req, cardnet.PartiallyApproved)
		if resp.Get(4) != "000000001000" || len(resp.Get(38)) != 6 {
			t.Errorf("partial approval DE4 %q DE38 %q, want 000000001000 and a code", resp.Get(4), resp.Get(38))
		}
		b.wantBalance(h.account, 10_00, 10_00)
	})
	t.Run("stand-in advice is applied even when it overdraws", func(t *testing.T) {
		h := b.holder(5_00, card.Controls{})
		adv := b.purchase(h, 20_00)
		adv.MTI = cardnet.MTIAuthorizationAdvice
		adv.ResponseCode = cardnet.Approved
		adv.AuthID = "STNDIN"
		adv.CVC2 = ""
		resp := b.wantCode(adv, cardnet.Approved)
		if resp.MTI() != cardnet.MTIAuthorizationAdviceResponse {
			t.Errorf("0120 answered %s", resp.MTI())
		}
		b.wantBalance(h.account, 5_00, 20_00)
		d, err := b.recorded(adv)
		if err != nil || !d.Forced || d.AuthCode != "STNDIN" {
			t.Fatalf("recorded %+v, %v; want a forced advice with the network's approval code", d, err)
		}
		// So clearing finds it by reference.
		if _, err := b.auth.ByReference(ctx, authorization.ReferenceQuery{CardID: h.card.ID, RRN: adv.RRN, AuthCode: "STNDIN"}); err != nil {
			t.Errorf("ByReference(rrn, STNDIN): %v", err)
		}
		b.wantCode(adv, cardnet.Approved) // retransmitted: applied once
		b.wantBalance(h.account, 5_00, 20_00)
	})
	t.Run("advice of a network decline is acknowledged and holds nothing", func(t *testing.T) {
		h := b.holder(5_00, card.Controls{})
		adv := b.purchase(h, 2_00)
		adv.MTI = cardnet.MTIAuthorizationAdvice
		adv.ResponseCode = cardnet.NotSufficientFunds
		adv.CVC2 = ""
		b.wantCode(adv, cardnet.Approved)
		b.wantBalance(h.account, 5_00, 0)
	})
	t.Run("0200 financial posts at once and reverses", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		fin := b.purchase(h, 40_00)
		fin.MTI = cardnet.MTIFinancialRequest
		fin.ProcessingCode = "010000"
		fin.MCC = "6011"
		resp := b.wantCode(fin, cardnet.Approved)
		if resp.MTI() != cardnet.MTIFinancialResponse {
			t.Errorf("0200 answered %s", resp.MTI())
		}
		b.wantBalance(h.account, 60_00, 0)
		b.wantCode(fin, cardnet.Approved) // retransmitted: posted once
		b.wantBalance(h.account, 60_00, 0)
		b.wantCode(b.follow(fin, cardnet.MTIReversalRequest), cardnet.Approved)
		b.wantBalance(h.account, 100_00, 0)
	})
	t.Run("refund is approved without a hold", func(t *testing.T) {
		h := b.holder(1_00, card.Controls{})
		req := b.purchase(h, 9_00)
		req.ProcessingCode = "200000"
		b.wantCode(req, cardnet.Approved)
		b.wantBalance(h.account, 1_00, 0)
	})
}

// stall is an authorization service that takes delay longer than the real
// one to return its (already durable) decisions on Authorize and Financial.
type stall struct {
	authorization.Service
	delay time.Duration
}

func (s stall) Authorize(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Authorize(ctx, req)
	time.Sleep(s.delay)
	return d, err
}

func (s stall) Financial(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	d, err := s.Service.Financial(ctx, req)
	time.Sleep(s.delay)
	return d, err
}

// lostAnswer is an authorization service whose answers to authorizations
// are lost on the way back after the decision was made: the gateway sees
// an unavailable service, not knowing whether money was held.
type lostAnswer struct{ authorization.Service }

func (l lostAnswer) Authorize(ctx context.Context, req authorization.Request) (*authorization.Decision, error) {
	if _, err := l.Service.Authorize(ctx, req); err != nil {
		return nil, err
	}
	return nil, errors.New(errors.Unavailable, "connection reset")
}

func TestGatewayUnknownOutcome(t *testing.T) {
	b := newBank(t, bankOptions{wrap: func(s authorization.Service) authorization.Service { return lostAnswer{s} }})
	h := b.holder(100_00, card.Controls{})
	req := b.purchase(h, 12_00)
	b.wantCode(req, cardnet.IssuerUnavailable)
	waitLate(t, b.gw)
	// The hold the lost answer placed is released: the books agree with 91.
	b.wantBalance(h.account, 100_00, 0)
	d, err := b.recorded(req)
	if err != nil || !d.Approved || d.Outstanding != 0 {
		t.Fatalf("original %+v, %v; want approved, then reversed to nothing outstanding", d, err)
	}
	// A retransmission gets the same answer and holds nothing.
	repeat := *req
	repeat.MTI = "0101"
	b.wantCode(&repeat, cardnet.IssuerUnavailable)
	waitLate(t, b.gw)
	b.wantBalance(h.account, 100_00, 0)
}

func TestGatewayDeadline(t *testing.T) {
	const deadline = 100 * time.Millisecond
	slow := func(s authorization.Service) authorization.Service { return stall{s, 3 * deadline} }

	t.Run("91 and the late approval reversed", func(t *testing.T) {
		b := newBank(t, bankOptions{wrap: slow, deadline: deadline})
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 12_00)
		start := time.Now()
		b.wantCode(req, cardnet.IssuerUnavailable)
		// The contract: the deadline, then at most QueueTimeout to queue
		// the reversal (the stalled decision itself would answer 00).
		if took := time.Since(start); took > deadline+cardnet.DefaultQueueTimeout+time.Second {
			t.Errorf("answered after %v, want within the deadline %v and the queue's %v", took, deadline, cardnet.DefaultQueueTimeout)
		}
		waitLate(t, b.gw)
		b.wantBalance(h.account, 100_00, 0)
		d, err := b.recorded(req)
		if err != nil || !d.Approved || d.Outstanding != 0 {
			t.Fatalf("original %+v, %v; want approved, then reversed to nothing outstanding", d, err)
		}
		// The retransmission gets the same 91 and changes nothing.
		b.wantCode(req, cardnet.IssuerUnavailable)
		repeat := *req
		repeat.MTI = "0101"
		b.wantCode(&repeat, cardnet.IssuerUnavailable)
		waitLate(t, b.gw)
		b.wantBalance(h.account, 100_00, 0)
		if got := (b.gwRequests("0100", "91")); got != 3 {
			t.Errorf("requests_total{0100,91} = %v, want 3", got)
		}
	})
	t.Run("no answer and the late 0200 refunded", func(t *testing.T) {
		b := newBank(t, bankOptions{wrap: slow, deadline: deadline, onTimeout: cardnet.NoAnswer})
		h := b.holder(100_00, card.Controls{})
		fin := b.purchase(h, 30_00)
		fin.MTI = cardnet.MTIFinancialRequest
		ctx, cancel := context.WithTimeout(context.Background(), 5*deadline)
		defer cancel()
		if resp, err := b.client.Send(ctx, MustMessage(t, fin)); err == nil {
			t.Fatalf("answered %v, want no answer", resp)
		}
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer wcancel()
		if err := b.gw.Wait(wctx); err != nil {
			t.Fatal(err)
		}
		b.wantBalance(h.account, 100_00, 0)
		// The network stands in and advises its approval: applied.
		adv := b.purchase(h, 30_00)
		adv.MTI = cardnet.MTIAuthorizationAdvice
		adv.ResponseCode = cardnet.Approved
		adv.CVC2 = ""
		b.wantCode(adv, cardnet.Approved)
		b.wantBalance(h.account, 100_00, 30_00)
	})
	t.Run("a decision within the deadline is answered", func(t *testing.T) {
		b := newBank(t, bankOptions{wrap: func(s authorization.Service) authorization.Service { return stall{s, deadline / 4} }, deadline: deadline})
		h := b.holder(100_00, card.Controls{})
		b.wantCode(b.purchase(h, 1_00), cardnet.Approved)
		b.wantBalance(h.account, 100_00, 1_00)
	})
}

// Amounts at the edges of the standard: what is answered is what is held.
func TestGatewayAmountEdges(t *testing.T) {
	b := newBank(t, bankOptions{})

	t.Run("a zero cardholder billing amount is a format error, nothing held", func(t *testing.T) {
		h := b.holder(10_00, card.Controls{})
		req := b.purchase(h, 25_00)
		req.PartialApproval = true
		m := MustMessage(t, req)
		m.Set(6, "000000000000")
		m.Set(51, "826")
		if resp := MustSend(t, b.client, m); resp.Get(39) != string(cardnet.FormatError) {
			t.Errorf("DE39 %s, want 30", resp.Get(39))
		}
		b.wantBalance(h.account, 10_00, 0)
	})

	t.Run("a partial reversal in another currency leaves something held", func(t *testing.T) {
		h := b.holder(100_00, card.Controls{})
		req := b.purchase(h, 1000)
		req.Currency = "JPY"
		req.BillingAmount, req.BillingCurrency = 5_30, "GBP"
		b.wantCode(req, cardnet.Approved)
		rev := b.follow(req, cardnet.MTIReversalRequest)
		remain := int64(1) // ¥1 stays authorized: at the rate, less than a penny
		rev.ReplacementAmount = &remain
		b.wantCode(rev, cardnet.Approved)
		b.wantBalance(h.account, 100_00, 1)
	})

}

// A partial approval that cannot be said (a transaction amount of ¥1 leaves
// no smaller amount to approve) is undone like a late one: 91, nothing held.
func TestGatewayApprovalThatCannotBeSaidIsReversed(t *testing.T) {
	b := newBank(t, bankOptions{})
	h := b.holder(50, card.Controls{})
	req := b.purchase(h, 1)
	req.Currency = "JPY"
	req.BillingAmount, req.BillingCurrency = 1_00, "GBP"
	req.PartialApproval = true
	b.wantCode(req, cardnet.IssuerUnavailable)
	waitLate(t, b.gw)
	b.wantBalance(h.account, 50, 0)
	// The network's repeat hears the same.
	repeat := *req
	repeat.MTI = "0101"
	b.wantCode(&repeat, cardnet.IssuerUnavailable)
}
