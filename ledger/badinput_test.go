package ledger_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// badFixture is a small ledger with one object in each state a bad request
// might aim at.
type badFixture struct {
	l   *ledger.Ledger
	db  *store.DB
	now time.Time

	fund, fundEUR string // RuleNone, GBP and EUR
	a, b          string // RuleLimit 0, GBP, £100 each
	e             string // RuleLimit 0, EUR, €100
	od            string // RuleLimit with a £10 overdraft, a £5 hold on it and nothing posted
	closed        string // GBP, closed

	pending, posted, voided, expired string // holds on a, to b
	fundAKey                         string // the key that funded a
}

func newBadFixture(t *testing.T, db *store.DB) *badFixture {
	t.Helper()
	ctx := t.Context()
	clk := newClock(epoch)
	f := &badFixture{db: db, now: epoch, l: openLedger(t, db, ledger.Config{Now: clk.Now}), fundAKey: "bad-fund-a"}
	acct := func(key string, cur money.Currency, rule ledger.Rule, limit int64) string {
		a, err := f.l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: key, Currency: cur, Rule: rule, OverdraftLimit: limit})
		if err != nil {
			t.Fatalf("CreateAccount(%s): %v", key, err)
		}
		return a.ID
	}
	f.fund = acct("bad-fund", "GBP", ledger.RuleNone, 0)
	f.fundEUR = acct("bad-fund-eur", "EUR", ledger.RuleNone, 0)
	f.a = acct("bad-a", "GBP", ledger.RuleLimit, 0)
	f.b = acct("bad-b", "GBP", ledger.RuleLimit, 0)
	f.e = acct("bad-e", "EUR", ledger.RuleLimit, 0)
	f.od = acct("bad-od", "GBP", ledger.RuleLimit, 1000)
	f.closed = acct("bad-closed", "GBP", ledger.RuleLimit, 0)
	if _, err := f.l.CloseAccount(ctx, ledger.CloseAccountRequest{Key: "bad-close", AccountID: f.closed}); err != nil {
		t.Fatalf("CloseAccount: %v", err)
	}
	mustTransfer(t, f.l, f.fundAKey, f.fund, f.a, 10000)
	mustTransfer(t, f.l, "bad-fund-b", f.fund, f.b, 10000)
	if _, err := f.l.Transfer(ctx, ledger.TransferRequest{Key: "bad-fund-e", Legs: []ledger.Leg{
		{AccountID: f.fundEUR, Amount: -10000, Currency: "EUR"}, {AccountID: f.e, Amount: 10000, Currency: "EUR"},
	}}); err != nil {
		t.Fatal(err)
	}
	hold := func(key, from string, amount int64, expires time.Duration) string {
		h, err := f.l.PlaceHold(ctx, ledger.PlaceHoldRequest{Key: key, AccountID: from, Destination: f.b, Currency: "GBP", Amount: amount, ExpiresAt: epoch.Add(expires)})
		if err != nil {
			t.Fatalf("PlaceHold(%s): %v", key, err)
		}
		return h.ID
	}
	hold("bad-hold-od", f.od, 500, 30*24*time.Hour)
	f.pending = hold("bad-hold-pending", f.a, 1000, 30*24*time.Hour)
	f.posted = hold("bad-hold-posted", f.a, 500, 30*24*time.Hour)
	if _, err := f.l.PostHold(ctx, ledger.PostHoldRequest{Key: "bad-post", HoldID: f.posted, Amount: 500}); err != nil {
		t.Fatal(err)
	}
	f.voided = hold("bad-hold-voided", f.a, 300, 30*24*time.Hour)
	if _, err := f.l.VoidHold(ctx, ledger.VoidHoldRequest{Key: "bad-void", HoldID: f.voided}); err != nil {
		t.Fatal(err)
	}
	f.expired = hold("bad-hold-expired", f.a, 200, time.Hour)
	if got, err := f.l.ExpireHolds(ctx, epoch.Add(2*time.Hour), 100); err != nil || len(got) != 1 || got[0].ID != f.expired {
		t.Fatalf("ExpireHolds: %v, %v", got, err)
	}
	return f
}

func (f *badFixture) accounts() []string {
	return []string{f.fund, f.fundEUR, f.a, f.b, f.e, f.od, f.closed}
}

func (f *badFixture) holds() []string { return []string{f.pending, f.posted, f.voided, f.expired} }

// badState is everything a refused request must leave as it was.
type badState struct {
	rows     rowCounts
	balances map[string][3]int64 // posted, pending, available
	status   map[string]ledger.Status
	holds    map[string]ledger.Hold
}

func (f *badFixture) state(t *testing.T) badState {
	t.Helper()
	ctx := t.Context()
	s := badState{rows: countRows(t, f.db), balances: map[string][3]int64{}, status: map[string]ledger.Status{}, holds: map[string]ledger.Hold{}}
	for _, id := range f.accounts() {
		b, err := f.l.Balance(ctx, id, time.Time{})
		if err != nil {
			t.Fatalf("Balance(%s): %v", id, err)
		}
		s.balances[id] = [3]int64{b.Posted, b.Pending, b.Available}
		a, err := f.l.GetAccount(ctx, id)
		if err != nil {
			t.Fatalf("GetAccount(%s): %v", id, err)
		}
		s.status[id] = a.Status
	}
	for _, id := range f.holds() {
		h, err := f.l.GetHold(ctx, id)
		if err != nil {
			t.Fatalf("GetHold(%s): %v", id, err)
		}
		s.holds[id] = *h
	}
	return s
}

func (s badState) diff(o badState) string {
	if s.rows != o.rows {
		return fmt.Sprintf("rows %+v -> %+v", s.rows, o.rows)
	}
	for id, b := range s.balances {
		if o.balances[id] != b {
			return fmt.Sprintf("account %s (posted, pending, available) %v -> %v", id, b, o.balances[id])
		}
		if o.status[id] != s.status[id] {
			return fmt.Sprintf("account %s %s -> %s", id, s.status[id], o.status[id])
		}
	}
	for id, h := range s.holds {
		oh := o.holds[id]
		if d := diffHold(&h, &oh); d != "" {
			return d
		}
	}
	return ""
}

func legs(ls ...any) []ledger.Leg {
	var out []ledger.Leg
	for i := 0; i < len(ls); i += 3 {
		out = append(out, ledger.Leg{AccountID: ls[i].(string), Amount: ls[i+1].(int64), Currency: money.Currency(ls[i+2].(string))})
	}
	return out
}

func metaN(pairs, keyLen, valLen int) map[string]string {
	m := map[string]string{}
	for i := range pairs {
		k := fmt.Sprintf("%03d", i) + strings.Repeat("k", keyLen-3)
		m[k] = strings.Repeat("v", valLen)
	}
	return m
}

func TestBadInput(t *testing.T) {
	storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
		f := newBadFixture(t, db)
		far := epoch.Add(24 * time.Hour)
		long := strings.Repeat("x", 129)
		type call func(ctx context.Context, l *ledger.Ledger) error
		transfer := func(key string, ls []ledger.Leg) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.Transfer(ctx, ledger.TransferRequest{Key: key, Legs: ls})
				return err
			}
		}
		transferMeta := func(m map[string]string) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.Transfer(ctx, ledger.TransferRequest{Key: "t-meta", Legs: gbp(f.fund, f.b, 100), Metadata: m})
				return err
			}
		}
		create := func(req ledger.CreateAccountRequest) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.CreateAccount(ctx, req)
				return err
			}
		}
		closeAcct := func(key, id string) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.CloseAccount(ctx, ledger.CloseAccountRequest{Key: key, AccountID: id})
				return err
			}
		}
		place := func(mod func(r *ledger.PlaceHoldRequest)) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				r := ledger.PlaceHoldRequest{Key: "t-place", AccountID: f.a, Destination: f.b, Amount: 100, Currency: "GBP", ExpiresAt: far}
				mod(&r)
				_, err := l.PlaceHold(ctx, r)
				return err
			}
		}
		increment := func(hold string, amount int64, force bool) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.IncrementHold(ctx, ledger.IncrementHoldRequest{Key: "t-incr", HoldID: hold, Amount: amount, Force: force})
				return err
			}
		}
		post := func(hold string, amount int64) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.PostHold(ctx, ledger.PostHoldRequest{Key: "t-post", HoldID: hold, Amount: amount})
				return err
			}
		}
		void := func(key, hold string) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.VoidHold(ctx, ledger.VoidHoldRequest{Key: key, HoldID: hold})
				return err
			}
		}
		history := func(id string, limit int) call {
			return func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.History(ctx, ledger.HistoryRequest{AccountID: id, Limit: limit})
				return err
			}
		}
		// available is what a may still spend, read when the case runs.
		available := func(ctx context.Context, l *ledger.Ledger) int64 {
			b, err := l.Balance(ctx, f.a, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			return b.Available
		}
		const nowhere = "acc_nowhere"
		maxAmt, over := money.MaxAmount, money.MaxAmount+1

		cases := []struct {
			name string
			want errors.Code
			call call
		}{
			// Transfers malformed in themselves.
			{"transfer with no legs is refused", errors.BadRequest, transfer("t1", nil)},
			{"transfer with one leg is refused", errors.BadRequest, transfer("t1", legs(f.a, int64(100), "GBP"))},
			{"transfer whose legs do not sum to zero is refused", errors.BadRequest, transfer("t1", legs(f.fund, int64(-100), "GBP", f.b, int64(99), "GBP"))},
			{"transfer balanced only across currencies is refused", errors.BadRequest, transfer("t1", legs(f.a, int64(-100), "GBP", f.e, int64(100), "EUR"))},
			{"transfer balanced in one currency but not the other is refused", errors.BadRequest, transfer("t1", legs(f.fund, int64(-100), "GBP", f.b, int64(100), "GBP", f.fundEUR, int64(-50), "EUR", f.e, int64(40), "EUR"))},
			{"transfer with a zero leg is refused", errors.BadRequest, transfer("t1", legs(f.fund, int64(-100), "GBP", f.b, int64(100), "GBP", f.a, int64(0), "GBP"))},
			{"transfer of more than MaxAmount is refused", errors.BadRequest, transfer("t1", legs(f.fund, -over, "GBP", f.b, over, "GBP"))},
			{"transfer whose legs overflow int64 back to zero is refused", errors.BadRequest, transfer("t1", legs(f.fund, int64(math.MaxInt64), "GBP", f.b, int64(math.MaxInt64), "GBP", f.a, int64(2), "GBP"))},
			{"transfer of two MinInt64 legs is refused", errors.BadRequest, transfer("t1", legs(f.fund, int64(math.MinInt64), "GBP", f.b, int64(math.MinInt64), "GBP"))},
			{"transfer naming one account twice is refused", errors.BadRequest, transfer("t1", legs(f.a, int64(-100), "GBP", f.a, int64(100), "GBP"))},
			{"transfer in an unknown currency is refused", errors.BadRequest, transfer("t1", legs(f.fund, int64(-100), "XXX", f.b, int64(100), "XXX"))},
			{"transfer in a lower-case currency is refused", errors.BadRequest, transfer("t1", legs(f.fund, int64(-100), "gbp", f.b, int64(100), "gbp"))},
			{"transfer without a key is refused", errors.BadRequest, transfer("", gbp(f.fund, f.b, 100))},
			{"transfer with a key over 128 bytes is refused", errors.BadRequest, transfer(long, gbp(f.fund, f.b, 100))},
			{"transfer with a key that is not UTF-8 is refused", errors.BadRequest, transfer("bad\xff\xfekey", gbp(f.fund, f.b, 100))},
			{"transfer with a NUL byte in its key is refused", errors.BadRequest, transfer("nul\x00key", gbp(f.fund, f.b, 100))},
			{"transfer with 17 metadata pairs is refused", errors.BadRequest, transferMeta(metaN(17, 8, 8))},
			{"transfer with a metadata key over 64 bytes is refused", errors.BadRequest, transferMeta(metaN(1, 65, 8))},
			{"transfer with a metadata value over 256 bytes is refused", errors.BadRequest, transferMeta(metaN(1, 8, 257))},
			{"transfer with metadata that is not UTF-8 is refused", errors.BadRequest, transferMeta(map[string]string{"k": "\xff"})},
			// Transfers that the state refuses.
			{"transfer from an unknown account is refused", errors.NotFound, transfer("t1", gbp(nowhere, f.b, 100))},
			{"transfer to an unknown account is refused", errors.NotFound, transfer("t1", gbp(f.fund, nowhere, 100))},
			{"transfer to an account id with a NUL byte is refused", errors.BadRequest, transfer("t1", gbp(f.fund, "acc\x00", 100))},
			{"transfer in a currency its accounts do not hold is refused", errors.CurrencyMismatch, transfer("t1", legs(f.fundEUR, int64(-100), "EUR", f.b, int64(100), "EUR"))},
			{"transfer to a closed account is refused", errors.AccountClosed, transfer("t1", gbp(f.fund, f.closed, 100))},
			{"transfer from a closed account is refused", errors.AccountClosed, transfer("t1", gbp(f.closed, f.b, 100))},
			{"transfer beyond available funds is refused", errors.InsufficientFunds, transfer("t1", gbp(f.a, f.b, 8501))},
			{"transfer beyond an overdraft is refused", errors.InsufficientFunds, transfer("t1", gbp(f.od, f.b, 501))},
			{"transfer reusing a key for other legs is refused", errors.Conflict, transfer(f.fundAKey, gbp(f.fund, f.a, 1))},
			{"transfer reusing a hold's key is refused", errors.Conflict, transfer("bad-hold-pending", gbp(f.fund, f.a, 1))},

			// Accounts.
			{"account in an unknown currency is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Currency: "XXX", Rule: ledger.RuleLimit})},
			{"account without a currency is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Rule: ledger.RuleLimit})},
			{"account with a negative overdraft limit is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Currency: "GBP", Rule: ledger.RuleLimit, OverdraftLimit: -1})},
			{"account with an overdraft limit above MaxAmount is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Currency: "GBP", Rule: ledger.RuleLimit, OverdraftLimit: math.MaxInt64})},
			{"account with an unknown rule is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Currency: "GBP", Rule: "overdraft"})},
			{"account without a rule is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Currency: "GBP"})},
			{"account with no rule but an overdraft limit is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Currency: "GBP", Rule: ledger.RuleNone, OverdraftLimit: 100})},
			{"account without a key is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Currency: "GBP", Rule: ledger.RuleLimit})},
			{"account with a NUL byte in its owner is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: "c1", Currency: "GBP", Rule: ledger.RuleLimit, Owner: "cus\x00"})},
			{"account with a key over 128 bytes is refused", errors.BadRequest, create(ledger.CreateAccountRequest{Key: long, Currency: "GBP", Rule: ledger.RuleLimit})},
			{"account reusing a key for other terms is refused", errors.Conflict, create(ledger.CreateAccountRequest{Key: "bad-a", Currency: "GBP", Rule: ledger.RuleLimit, OverdraftLimit: 5})},
			{"account reusing a transfer's key is refused", errors.Conflict, create(ledger.CreateAccountRequest{Key: f.fundAKey, Currency: "GBP", Rule: ledger.RuleLimit})},
			{"closing an account with money in it is refused", errors.Conflict, closeAcct("c2", f.a)},
			{"closing an account with a pending hold is refused", errors.Conflict, closeAcct("c2", f.od)},
			{"closing a closed account again is refused", errors.Conflict, closeAcct("c2", f.closed)},
			{"closing an unknown account is refused", errors.NotFound, closeAcct("c2", nowhere)},

			// Holds.
			{"hold on an unknown account is refused", errors.NotFound, place(func(r *ledger.PlaceHoldRequest) { r.AccountID = nowhere })},
			{"hold to an unknown destination is refused", errors.NotFound, place(func(r *ledger.PlaceHoldRequest) { r.Destination = nowhere })},
			{"hold of nothing is refused", errors.BadRequest, place(func(r *ledger.PlaceHoldRequest) { r.Amount = 0 })},
			{"hold of a negative amount is refused", errors.BadRequest, place(func(r *ledger.PlaceHoldRequest) { r.Amount = -100 })},
			{"hold of more than MaxAmount is refused", errors.BadRequest, place(func(r *ledger.PlaceHoldRequest) { r.Amount, r.Force = over, true })},
			{"hold onto its own account is refused", errors.BadRequest, place(func(r *ledger.PlaceHoldRequest) { r.Destination = f.a })},
			{"hold without an expiry is refused", errors.BadRequest, place(func(r *ledger.PlaceHoldRequest) { r.ExpiresAt = time.Time{} })},
			{"hold without a key is refused", errors.BadRequest, place(func(r *ledger.PlaceHoldRequest) { r.Key = "" })},
			{"hold with 17 metadata pairs is refused", errors.BadRequest, place(func(r *ledger.PlaceHoldRequest) { r.Metadata = metaN(17, 8, 8) })},
			{"hold in a currency the account does not hold is refused", errors.CurrencyMismatch, place(func(r *ledger.PlaceHoldRequest) { r.Currency = "EUR" })},
			{"hold to a destination in another currency is refused", errors.CurrencyMismatch, place(func(r *ledger.PlaceHoldRequest) { r.Destination = f.e })},
			{"hold on a closed account is refused", errors.AccountClosed, place(func(r *ledger.PlaceHoldRequest) { r.AccountID = f.closed })},
			{"hold to a closed account is refused", errors.AccountClosed, place(func(r *ledger.PlaceHoldRequest) { r.Destination = f.closed })},
			{"hold beyond available funds is refused", errors.InsufficientFunds, place(func(r *ledger.PlaceHoldRequest) { r.Amount = 8501 })},
			{"hold reusing a key for another amount is refused", errors.Conflict, place(func(r *ledger.PlaceHoldRequest) { r.Key = "bad-hold-pending" })},

			{"increment of an unknown hold is refused", errors.NotFound, increment("hld_nowhere", 100, false)},
			{"increment by nothing is refused", errors.BadRequest, increment(f.pending, 0, false)},
			{"increment by a negative amount is refused", errors.BadRequest, increment(f.pending, -100, false)},
			{"increment of a posted hold is refused", errors.Conflict, increment(f.posted, 100, false)},
			{"increment of a voided hold is refused", errors.Conflict, increment(f.voided, 100, false)},
			{"increment of an expired hold is refused", errors.Conflict, increment(f.expired, 100, false)},
			{"increment beyond available funds is refused", errors.InsufficientFunds, increment(f.pending, 8501, false)},
			{"increment past MaxAmount is refused even by force", errors.BadRequest, increment(f.pending, maxAmt, true)},

			{"post of an unknown hold is refused", errors.NotFound, post("hld_nowhere", 100)},
			{"post of nothing is refused", errors.BadRequest, post(f.pending, 0)},
			{"post of a negative amount is refused", errors.BadRequest, post(f.pending, -100)},
			{"post of more than MaxAmount is refused", errors.BadRequest, post(f.pending, over)},
			{"post beyond the hold and the funds is refused", errors.InsufficientFunds, func(ctx context.Context, l *ledger.Ledger) error {
				return post(f.pending, 1000+available(ctx, l)+1)(ctx, l)
			}},
			{"post of a posted hold is refused", errors.Conflict, post(f.posted, 100)},
			{"post of a voided hold is refused", errors.Conflict, post(f.voided, 100)},
			{"post of an expired hold is refused", errors.Conflict, post(f.expired, 100)},

			{"void of an unknown hold is refused", errors.NotFound, void("t-void", "hld_nowhere")},
			{"void of a posted hold is refused", errors.Conflict, void("t-void", f.posted)},
			{"void of a voided hold under a new key is refused", errors.Conflict, void("t-void", f.voided)},
			{"void of an expired hold is refused", errors.Conflict, void("t-void", f.expired)},
			{"void without a key is refused", errors.BadRequest, void("", f.pending)},
			{"void of a hold id with a NUL byte is refused", errors.BadRequest, void("t-void", "hld\x00")},
			{"void reusing a post's key is refused", errors.Conflict, void("bad-post", f.pending)},

			// Reads.
			{"history with a negative limit is refused", errors.BadRequest, history(f.a, -1)},
			{"history with a limit over 500 is refused", errors.BadRequest, history(f.a, 501)},
			{"history of an unknown account is refused", errors.NotFound, history(nowhere, 10)},
			{"balance of an unknown account is refused", errors.NotFound, func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.Balance(ctx, nowhere, time.Time{})
				return err
			}},
			{"unknown account is not found", errors.NotFound, func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.GetAccount(ctx, nowhere)
				return err
			}},
			{"unknown hold is not found", errors.NotFound, func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.GetHold(ctx, "hld_nowhere")
				return err
			}},
			{"unknown transfer is not found", errors.NotFound, func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.GetTransfer(ctx, "trf_nowhere")
				return err
			}},
			// A card number where an id goes is not echoed (the message
			// reaches answers, logs and spans).
			{"a card number as an account id is not found and not echoed", errors.NotFound, func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.Balance(ctx, "4571736012345678", time.Time{})
				return echoes(err, "4571736012345678")
			}},
			{"a card number as a transfer's account id is not found and not echoed", errors.NotFound, func(ctx context.Context, l *ledger.Ledger) error {
				_, err := l.Transfer(ctx, ledger.TransferRequest{Key: "t-pan", Legs: gbp(f.a, "4571736012345678", 1)})
				return echoes(err, "4571736012345678")
			}},
			{"a card number as a hold id is not found and not echoed", errors.NotFound, func(ctx context.Context, l *ledger.Ledger) error {
				return echoes(void("t-pan-void", "4571736012345678")(ctx, l), "4571736012345678")
			}},
		}
		// Where another answer is as right: an id no account or hold can
		// have is as well not found as malformed.
		alsoRight := map[string]errors.Code{
			"transfer to an account id with a NUL byte is refused": errors.NotFound,
			"void of a hold id with a NUL byte is refused":         errors.NotFound,
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				before := f.state(t)
				err := c.call(t.Context(), f.l)
				if also, ok := alsoRight[c.name]; !ok || errors.CodeOf(err) != also {
					wantCode(t, err, c.want, c.name)
				}
				if msg := errors.MessageOf(err); msg == "" || msg == "internal error" {
					t.Errorf("error %v has no message for the caller", err)
				}
				if d := before.diff(f.state(t)); d != "" {
					t.Errorf("a refused request changed the ledger: %s", d)
				}
				checkStored(t, f.db)
			})
		}
		verify(t, f.db)

		// The limits above are exact: a request just inside each succeeds.
		t.Run("requests at every limit are accepted", func(t *testing.T) {
			ctx := t.Context()
			key := strings.Repeat("k", 128)
			meta := metaN(16, 64, 256)
			tr, err := f.l.Transfer(ctx, ledger.TransferRequest{Key: key, Legs: gbp(f.fund, f.b, maxAmt), Metadata: meta})
			if err != nil {
				t.Fatalf("transfer at the limits: %v", err)
			}
			got, err := f.l.GetTransfer(ctx, tr.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Key != key || !sameMeta(got.Metadata, meta) || got.Legs[1].Amount != maxAmt {
				t.Errorf("transfer at the limits stored as key %q, %d metadata pairs, legs %v", got.Key, len(got.Metadata), got.Legs)
			}
			p, err := f.l.History(ctx, ledger.HistoryRequest{AccountID: f.b, Limit: 500})
			if err != nil || len(p.Entries) == 0 || p.Entries[0].TransferID != tr.ID {
				t.Errorf("history with limit 500: %v, %v", p, err)
			}
			if _, err := f.l.CreateAccount(ctx, ledger.CreateAccountRequest{Key: "c-max", Currency: "GBP", Rule: ledger.RuleLimit, OverdraftLimit: maxAmt}); err != nil {
				t.Errorf("account with an overdraft limit of MaxAmount: %v", err)
			}
			checkStored(t, f.db)
			verify(t, f.db)
		})

		// An expiry outside what the store can represent must be refused,
		// not kept as some other time: a hold must never lapse before the
		// time it was given.
		t.Run("a hold's expiry is kept as given or refused", func(t *testing.T) {
			ctx := t.Context()
			for i, at := range []time.Time{
				time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC),
				time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
			} {
				// Placed with that expiry, or given it by an increment.
				place := ledger.PlaceHoldRequest{Key: fmt.Sprintf("t-far-%d", i), AccountID: f.a, Destination: f.b, Currency: "GBP", Amount: 1, ExpiresAt: at}
				if i%2 == 1 {
					place.ExpiresAt = far
				}
				h, err := f.l.PlaceHold(ctx, place)
				if err == nil && i%2 == 1 {
					h, err = f.l.IncrementHold(ctx, ledger.IncrementHoldRequest{Key: fmt.Sprintf("t-far-incr-%d", i), HoldID: h.ID, Amount: 1, ExpiresAt: at})
				}
				if err != nil {
					wantCode(t, err, errors.BadRequest, fmt.Sprintf("hold expiring %v", at))
					continue
				}
				if got, err := f.l.GetHold(ctx, h.ID); err != nil || !got.ExpiresAt.Equal(at) {
					t.Errorf("hold placed to expire %v is stored to expire %v (%v)", at, got.ExpiresAt, err)
				}
				expired, err := f.l.ExpireHolds(ctx, f.now.Add(24*time.Hour), 100)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range expired {
					if e.ID == h.ID {
						t.Errorf("hold placed to expire %v expired as of %v", at, f.now.Add(24*time.Hour))
					}
				}
				if _, err := f.l.VoidHold(ctx, ledger.VoidHoldRequest{Key: fmt.Sprintf("t-far-void-%d", i), HoldID: h.ID}); err != nil && !errors.Is(err, errors.Conflict) {
					t.Fatal(err)
				}
			}
		})

		t.Run("a refused request is decided afresh when sent again", func(t *testing.T) {
			ctx := t.Context()
			req := ledger.TransferRequest{Key: "t-poor", Legs: gbp(f.a, f.b, 20000)}
			_, err := f.l.Transfer(ctx, req)
			wantCode(t, err, errors.InsufficientFunds, "transfer beyond the balance")
			mustTransfer(t, f.l, "t-topup", f.fund, f.a, 20000)
			before, err := f.l.Balance(ctx, f.a, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.l.Transfer(ctx, req); err != nil {
				t.Fatalf("the same request, once covered: %v", err)
			}
			after, err := f.l.Balance(ctx, f.a, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if after.Posted != before.Posted-20000 {
				t.Errorf("posted %d -> %d, want a debit of 20000", before.Posted, after.Posted)
			}
		})
	})
}

// echoes returns err, or an Internal error if its message holds s.
func echoes(err error, s string) error {
	if err != nil && strings.Contains(err.Error(), s) {
		return errors.Errorf(errors.Internal, "the error echoes %s: %v", s, err)
	}
	return err
}
