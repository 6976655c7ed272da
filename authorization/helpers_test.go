package authorization_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/corebank/corebank/authorization"
	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/card/cardtest"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// epoch is where the tests' clock starts: cards issued then expire at the
// end of January 2034 ("3401").
var epoch = time.Date(2030, 1, 15, 9, 0, 0, 0, time.UTC)

type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *clock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// env is an authorization service wired to a real card service and a real
// ledger, each on its own database of the same engine.
type env struct {
	t          *testing.T
	db         *store.DB
	clk        *clock
	a          *authorization.Authorizer
	cards      *card.Cards
	led        *ledger.Ledger
	ledDB      *store.DB // the ledger's database, for ledger.Verify
	fund       string    // the ledger account customers are funded from
	settlement string
	n          atomic.Int64
}

func newEnv(t *testing.T, db *store.DB) *env {
	t.Helper()
	ctx := context.Background()
	clk := new(clock)
	clk.Set(epoch)
	ledDB := storetest.Like(t, db, "ledger")
	led, err := ledger.Open(ctx, ledDB, ledger.Config{Now: clk.Now})
	if err != nil {
		t.Fatalf("ledger.Open: %v", err)
	}
	t.Cleanup(func() { led.Close() })
	cards, err := card.Open(ctx, storetest.Like(t, db, "card"), cardtest.Config("45717360", clk.Now))
	if err != nil {
		t.Fatalf("card.Open: %v", err)
	}
	e := &env{t: t, db: db, clk: clk, cards: cards, led: led, ledDB: ledDB}
	e.fund = e.account("fund", ledger.RuleNone)
	e.settlement = e.account("settlement", ledger.RuleNone)
	e.a, err = authorization.Open(ctx, db, authorization.Config{
		Card: cards, Ledger: led, Now: clk.Now,
		Settlement: map[money.Currency]string{"GBP": e.settlement},
	})
	if err != nil {
		t.Fatalf("authorization.Open: %v", err)
	}
	return e
}

// another opens another authorization service on db, as a second process
// or the same one restarted would, with the env's clock, settlement, card
// and ledger services and no recovery sweep; tweak changes its Config first.
// It closes when the test ends.
func (e *env) another(t *testing.T, db *store.DB, tweak func(*authorization.Config)) *authorization.Authorizer {
	t.Helper()
	cfg := authorization.Config{
		Card: e.cards, Ledger: e.led, Now: e.clk.Now, RecoverEvery: -1,
		Settlement: map[money.Currency]string{"GBP": e.settlement},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err := authorization.Open(context.Background(), db, cfg)
	if err != nil {
		t.Fatalf("authorization.Open: %v", err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func (e *env) account(key string, rule ledger.Rule) string {
	e.t.Helper()
	return cardtest.Account(e.t, e.led, key, rule)
}

// holder is an issued card on a funded account, with its details.
type holder = cardtest.Holder

// wrongCVC is a CVC of h's card that is not its own: its CVC plus i
// (1 to 999), modulo 1000.
func wrongCVC(h *holder, i int) authorization.CVC {
	n, _ := strconv.Atoi(h.CVC)
	return authorization.CVC(fmt.Sprintf("%03d", (n+i)%1000))
}

// holder issues a card with controls on a new account holding balance.
func (e *env) holder(balance int64, ctl card.Controls) *holder {
	e.t.Helper()
	return cardtest.Issue(e.t, e.led, e.cards, e.fund, e.n.Add(1), balance, ctl)
}

// net returns a fresh network id.
func (e *env) net() authorization.NetworkID {
	n := e.n.Add(1)
	return authorization.NetworkID{Acquirer: "123456", STAN: fmt.Sprintf("%06d", n), RRN: fmt.Sprintf("RRN%09d", n), TransmissionTime: "0115090000"}
}

// purchase is a valid card-present purchase of amount pence.
func (e *env) purchase(h *holder, amount int64) authorization.Request {
	return authorization.Request{
		Kind: authorization.KindPurchase, Network: e.net(), PAN: authorization.PAN(h.PAN), Expiry: "3401", CVC: authorization.CVC(h.CVC),
		Amount: amount, Currency: "GBP", MCC: "5814", Channel: card.ChannelContactless,
		MerchantName: "OZONE COFFEE", MerchantCity: "LONDON", MerchantCountry: "GB",
	}
}

func (e *env) balance(acc string) *ledger.Balance {
	e.t.Helper()
	b, err := e.led.Balance(context.Background(), acc, time.Time{})
	if err != nil {
		e.t.Fatalf("Balance: %v", err)
	}
	return b
}

// wantBalance checks an account's posted and pending balances.
func (e *env) wantBalance(t *testing.T, acc string, posted, pending int64) {
	t.Helper()
	b := e.balance(acc)
	if b.Posted != posted || b.Pending != pending {
		t.Errorf("balance posted %d pending %d, want %d and %d", b.Posted, b.Pending, posted, pending)
	}
}

// must returns a function that fails t on an error and returns the
// decision: must(t)(s.Authorize(ctx, req)).
func must(t *testing.T) func(*authorization.Decision, error) *authorization.Decision {
	return func(d *authorization.Decision, err error) *authorization.Decision {
		t.Helper()
		if err != nil {
			t.Fatalf("decision: %v", err)
		}
		return d
	}
}

func wantCode(t *testing.T, err error, code errors.Code) {
	t.Helper()
	if errors.CodeOf(err) != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}

func count(t *testing.T, db *store.DB, q string) int {
	t.Helper()
	var n int
	if err := db.Read.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

type outboxEvent struct {
	Topic, Key string
	Payload    []byte
}

func outbox(t *testing.T, db *store.DB) []outboxEvent {
	t.Helper()
	rows, err := db.Read.Query(`SELECT topic, key, payload FROM outbox ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxEvent
	for rows.Next() {
		var e outboxEvent
		if err := rows.Scan(&e.Topic, &e.Key, &e.Payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// standInAdvice is the network's stand-in advice (0120) of orig on h's
// card, under ids of its own and the network's approval code.
// incremental is an incremental authorization of amount, at a hotel, of
// the payment the network knows as original.
func (e *env) incremental(h *holder, original authorization.NetworkID, amount int64) authorization.Request {
	inc := e.purchase(h, amount)
	inc.Kind, inc.MCC, inc.Original = authorization.KindIncremental, "7011", &original
	return inc
}

func (e *env) standInAdvice(h *holder, orig authorization.Request, code string) authorization.Request {
	adv := e.purchase(h, orig.Amount)
	adv.Kind, adv.StandIn, adv.Original, adv.CVC, adv.Expiry, adv.AuthCode = authorization.KindAdvice, true, &orig.Network, "", "", code
	adv.MCC = orig.MCC
	return adv
}
