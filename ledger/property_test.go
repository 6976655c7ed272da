package ledger_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
)

// The property test drives a ledger with random sequences of writes (and
// retries of them, and reuses of their keys) and, after every step, holds it
// against a model: a few maps of what each account's balances and each
// hold's state must be, and which keys have taken effect. The model decides
// every request itself (the code it must fail with, or that it succeeds) and
// the ledger must agree exactly.

// maxStepAmount bounds generated amounts: small enough that balances never
// near money.MaxAmount, large enough that RuleLimit accounts often run out.
const maxStepAmount = 500

var currencies = []money.Currency{"GBP", "EUR"}

type mAccount struct {
	id      string
	owner   string
	cur     money.Currency
	rule    ledger.Rule
	limit   int64
	created time.Time
	closed  bool
	posted  int64
	pending int64
	// mayBeLow: a forced write left available funds below zero and they have
	// not been seen at or above zero since. Only then may they be negative.
	mayBeLow bool
}

func (a *mAccount) available() int64 {
	avail := a.posted - a.pending
	if a.rule == ledger.RuleLimit {
		avail += a.limit
	}
	return avail
}

// allows reports whether a's rule lets a decision of the ledger move its
// balances by (dPosted, dPending): available funds must stay at or above
// zero, or at least not fall (posting within a hold moves money without
// changing them, and must succeed even when a forced write left them
// negative).
func (a *mAccount) allows(dPosted, dPending int64) bool {
	if a.rule != ledger.RuleLimit {
		return true
	}
	before := a.available()
	after := before + dPosted - dPending
	return after >= 0 || after >= before
}

type mHold struct {
	ledger.Hold // what GetHold must return
}

// model is what the ledger must hold.
type model struct {
	now      time.Time
	accounts []*mAccount
	byID     map[string]*mAccount
	holds    []*mHold
	holdByID map[string]*mHold
	applied  map[string]applied // key -> the request that took effect with it
	writes   int64              // committed writes: keyed requests that succeeded, plus expired holds
	tried    []request          // every keyed request sent, for retries
	seenIDs  map[string]bool    // ids of results, which must never repeat
	// snapshots of every account's (posted, pending) at instants the clock
	// then left, for Balance as of a past time.
	snapshots []snapshot
}

type applied struct {
	req request
	res any
}

type snapshot struct {
	at       time.Time
	balances map[string][2]int64
}

func (m *model) openAccounts(cur money.Currency) []*mAccount {
	var out []*mAccount
	for _, a := range m.accounts {
		if !a.closed && (cur == "" || a.cur == cur) {
			out = append(out, a)
		}
	}
	return out
}

// decision is the model's verdict on a request: the code the ledger must
// answer with ("" for success), and whether success needed a balance rule
// overridden by Force.
type decision struct {
	code   errors.Code
	forced bool
}

func fail(c errors.Code) decision { return decision{code: c} }

// request is one keyed write, as sent and as the model sees it.
type request interface {
	key() string
	send(ctx context.Context, l ledger.Service) (any, error)
	// static is the verdict on the request alone (BadRequest or ""); the
	// ledger gives it before looking at keys or state.
	static() errors.Code
	// decide judges the request against m's state, without changing it.
	decide(m *model) decision
	// apply checks a successful result and moves m to the state after it.
	apply(t *rapid.T, m *model, d decision, res any)
	describe() string
}

// ---- CreateAccount

type createAccount struct{ ledger.CreateAccountRequest }

func (r *createAccount) key() string { return r.Key }
func (r *createAccount) describe() string {
	return fmt.Sprintf("CreateAccount%+v", r.CreateAccountRequest)
}
func (r *createAccount) send(ctx context.Context, l ledger.Service) (any, error) {
	return l.CreateAccount(ctx, r.CreateAccountRequest)
}
func (r *createAccount) static() errors.Code {
	switch {
	case !r.Currency.Valid(), r.OverdraftLimit < 0:
		return errors.BadRequest
	case r.Rule != ledger.RuleLimit && r.Rule != ledger.RuleNone:
		return errors.BadRequest
	}
	return ""
}
func (r *createAccount) decide(m *model) decision { return decision{} }
func (r *createAccount) apply(t *rapid.T, m *model, d decision, res any) {
	got := res.(*ledger.Account)
	want := ledger.Account{ID: got.ID, Currency: r.Currency, Owner: r.Owner, Rule: r.Rule, OverdraftLimit: r.OverdraftLimit, Status: ledger.StatusOpen, CreatedAt: m.now}
	if diff := diffAccount(got, &want); diff != "" || got.ID == "" {
		t.Fatalf("%s returned %+v: %s", r.describe(), *got, diff)
	}
	a := &mAccount{id: got.ID, owner: r.Owner, cur: r.Currency, rule: r.Rule, limit: r.OverdraftLimit, created: m.now}
	m.accounts = append(m.accounts, a)
	m.byID[a.id] = a
}

// ---- CloseAccount

type closeAccount struct{ ledger.CloseAccountRequest }

func (r *closeAccount) key() string { return r.Key }
func (r *closeAccount) describe() string {
	return fmt.Sprintf("CloseAccount%+v", r.CloseAccountRequest)
}
func (r *closeAccount) send(ctx context.Context, l ledger.Service) (any, error) {
	return l.CloseAccount(ctx, r.CloseAccountRequest)
}
func (r *closeAccount) static() errors.Code { return "" }
func (r *closeAccount) decide(m *model) decision {
	a, ok := m.byID[r.AccountID]
	switch {
	case !ok:
		return fail(errors.NotFound)
	case a.closed, a.posted != 0, a.pending != 0:
		return fail(errors.Conflict)
	}
	return decision{}
}
func (r *closeAccount) apply(t *rapid.T, m *model, d decision, res any) {
	a := m.byID[r.AccountID]
	got := res.(*ledger.Account)
	want := ledger.Account{ID: a.id, Currency: a.cur, Owner: a.owner, Rule: a.rule, OverdraftLimit: a.limit, Status: ledger.StatusClosed, CreatedAt: a.created}
	if diff := diffAccount(got, &want); diff != "" {
		t.Fatalf("%s returned %+v: %s", r.describe(), *got, diff)
	}
	a.closed = true
}

// ---- Transfer

type transfer struct{ ledger.TransferRequest }

func (r *transfer) key() string      { return r.Key }
func (r *transfer) describe() string { return fmt.Sprintf("Transfer%+v", r.TransferRequest) }
func (r *transfer) send(ctx context.Context, l ledger.Service) (any, error) {
	return l.Transfer(ctx, r.TransferRequest)
}
func (r *transfer) static() errors.Code {
	if len(r.Legs) < 2 {
		return errors.BadRequest
	}
	sums := map[money.Currency]int64{}
	seen := map[string]bool{}
	for _, l := range r.Legs {
		if !l.Currency.Valid() || l.Amount == 0 || l.Amount > money.MaxAmount || l.Amount < -money.MaxAmount || seen[l.AccountID] {
			return errors.BadRequest
		}
		seen[l.AccountID] = true
		sums[l.Currency] += l.Amount // amounts here are small: no overflow
	}
	for _, s := range sums {
		if s != 0 {
			return errors.BadRequest
		}
	}
	return ""
}
func (r *transfer) decide(m *model) decision {
	for _, l := range r.Legs {
		a, ok := m.byID[l.AccountID]
		switch {
		case !ok:
			return fail(errors.NotFound)
		case a.closed:
			return fail(errors.AccountClosed)
		case a.cur != l.Currency:
			return fail(errors.CurrencyMismatch)
		}
	}
	var d decision
	for _, l := range r.Legs {
		if !m.byID[l.AccountID].allows(l.Amount, 0) {
			if !r.Force {
				return fail(errors.InsufficientFunds)
			}
			d.forced = true
		}
	}
	return d
}
func (r *transfer) apply(t *rapid.T, m *model, d decision, res any) {
	got := res.(*ledger.Transfer)
	want := ledger.Transfer{ID: got.ID, Key: r.Key, Kind: ledger.KindTransfer, Legs: r.Legs, Forced: d.forced, Metadata: r.Metadata, At: m.now}
	if diff := diffTransfer(got, &want); diff != "" {
		t.Fatalf("%s returned %+v: %s", r.describe(), *got, diff)
	}
	for _, l := range r.Legs {
		a := m.byID[l.AccountID]
		a.posted += l.Amount
		if d.forced && a.available() < 0 {
			a.mayBeLow = true
		}
	}
}

// ---- PlaceHold

type placeHold struct{ ledger.PlaceHoldRequest }

func (r *placeHold) key() string      { return r.Key }
func (r *placeHold) describe() string { return fmt.Sprintf("PlaceHold%+v", r.PlaceHoldRequest) }
func (r *placeHold) send(ctx context.Context, l ledger.Service) (any, error) {
	return l.PlaceHold(ctx, r.PlaceHoldRequest)
}
func (r *placeHold) static() errors.Code {
	if r.Amount <= 0 || r.Amount > money.MaxAmount || r.AccountID == r.Destination || !r.Currency.Valid() || r.ExpiresAt.IsZero() {
		return errors.BadRequest
	}
	return ""
}
func (r *placeHold) decide(m *model) decision {
	for _, id := range []string{r.AccountID, r.Destination} {
		a, ok := m.byID[id]
		switch {
		case !ok:
			return fail(errors.NotFound)
		case a.closed:
			return fail(errors.AccountClosed)
		case a.cur != r.Currency:
			return fail(errors.CurrencyMismatch)
		}
	}
	if !m.byID[r.AccountID].allows(0, r.Amount) {
		if !r.Force {
			return fail(errors.InsufficientFunds)
		}
		return decision{forced: true}
	}
	return decision{}
}
func (r *placeHold) apply(t *rapid.T, m *model, d decision, res any) {
	got := res.(*ledger.Hold)
	h := &mHold{ledger.Hold{
		ID: got.ID, AccountID: r.AccountID, Destination: r.Destination, Currency: r.Currency,
		Amount: r.Amount, Authorized: r.Amount, Status: ledger.HoldPending, ExpiresAt: r.ExpiresAt,
		Metadata: r.Metadata, CreatedAt: m.now, UpdatedAt: m.now,
	}}
	if diff := diffHold(got, &h.Hold); diff != "" || got.ID == "" {
		t.Fatalf("%s returned %+v: %s", r.describe(), *got, diff)
	}
	m.holds = append(m.holds, h)
	m.holdByID[h.ID] = h
	a := m.byID[r.AccountID]
	a.pending += r.Amount
	if d.forced && a.available() < 0 {
		a.mayBeLow = true
	}
}

// ---- IncrementHold

type incrementHold struct{ ledger.IncrementHoldRequest }

func (r *incrementHold) key() string { return r.Key }
func (r *incrementHold) describe() string {
	return fmt.Sprintf("IncrementHold%+v", r.IncrementHoldRequest)
}
func (r *incrementHold) send(ctx context.Context, l ledger.Service) (any, error) {
	return l.IncrementHold(ctx, r.IncrementHoldRequest)
}
func (r *incrementHold) static() errors.Code {
	if r.Amount <= 0 || r.Amount > money.MaxAmount {
		return errors.BadRequest
	}
	return ""
}
func (r *incrementHold) decide(m *model) decision {
	h, ok := m.holdByID[r.HoldID]
	switch {
	case !ok:
		return fail(errors.NotFound)
	case h.Status != ledger.HoldPending:
		return fail(errors.Conflict)
	case m.byID[h.AccountID].closed:
		return fail(errors.AccountClosed)
	}
	if !m.byID[h.AccountID].allows(0, r.Amount) {
		if !r.Force {
			return fail(errors.InsufficientFunds)
		}
		return decision{forced: true}
	}
	return decision{}
}
func (r *incrementHold) apply(t *rapid.T, m *model, d decision, res any) {
	h := m.holdByID[r.HoldID]
	h.Amount += r.Amount
	h.Authorized += r.Amount
	h.UpdatedAt = m.now
	if !r.ExpiresAt.IsZero() {
		h.ExpiresAt = r.ExpiresAt
	}
	if diff := diffHold(res.(*ledger.Hold), &h.Hold); diff != "" {
		t.Fatalf("%s returned %+v: %s", r.describe(), *res.(*ledger.Hold), diff)
	}
	a := m.byID[h.AccountID]
	a.pending += r.Amount
	if d.forced && a.available() < 0 {
		a.mayBeLow = true
	}
}

// ---- PostHold

type postHold struct{ ledger.PostHoldRequest }

func (r *postHold) key() string      { return r.Key }
func (r *postHold) describe() string { return fmt.Sprintf("PostHold%+v", r.PostHoldRequest) }
func (r *postHold) send(ctx context.Context, l ledger.Service) (any, error) {
	return l.PostHold(ctx, r.PostHoldRequest)
}
func (r *postHold) static() errors.Code {
	if r.Amount <= 0 || r.Amount > money.MaxAmount {
		return errors.BadRequest
	}
	return ""
}

// release is what posting r frees of h's reservation: all of it, unless
// KeepOpen, when only as much as is posted (the rest stays reserved).
func (r *postHold) release(h *mHold) int64 {
	if r.KeepOpen {
		return min(r.Amount, h.Amount)
	}
	return h.Amount
}
func (r *postHold) decide(m *model) decision {
	h, ok := m.holdByID[r.HoldID]
	switch {
	case !ok:
		return fail(errors.NotFound)
	case h.Status != ledger.HoldPending:
		return fail(errors.Conflict)
	case m.byID[h.AccountID].closed, m.byID[h.Destination].closed:
		return fail(errors.AccountClosed)
	}
	if !m.byID[h.AccountID].allows(-r.Amount, -r.release(h)) {
		if !r.Force {
			return fail(errors.InsufficientFunds)
		}
		return decision{forced: true}
	}
	return decision{}
}
func (r *postHold) apply(t *rapid.T, m *model, d decision, res any) {
	h := m.holdByID[r.HoldID]
	release := r.release(h)
	src, dst := m.byID[h.AccountID], m.byID[h.Destination]
	src.posted -= r.Amount
	src.pending -= release
	dst.posted += r.Amount
	if d.forced && src.available() < 0 {
		src.mayBeLow = true
	}
	h.Amount -= release
	h.Posted += r.Amount
	h.UpdatedAt = m.now
	if !r.KeepOpen {
		h.Status = ledger.HoldPosted
	}
	if diff := diffHold(res.(*ledger.Hold), &h.Hold); diff != "" {
		t.Fatalf("%s returned %+v: %s", r.describe(), *res.(*ledger.Hold), diff)
	}
}

// ---- VoidHold

type voidHold struct{ ledger.VoidHoldRequest }

func (r *voidHold) key() string      { return r.Key }
func (r *voidHold) describe() string { return fmt.Sprintf("VoidHold%+v", r.VoidHoldRequest) }
func (r *voidHold) send(ctx context.Context, l ledger.Service) (any, error) {
	return l.VoidHold(ctx, r.VoidHoldRequest)
}
func (r *voidHold) static() errors.Code { return "" }
func (r *voidHold) decide(m *model) decision {
	h, ok := m.holdByID[r.HoldID]
	switch {
	case !ok:
		return fail(errors.NotFound)
	case h.Status != ledger.HoldPending:
		return fail(errors.Conflict)
	}
	return decision{}
}
func (r *voidHold) apply(t *rapid.T, m *model, d decision, res any) {
	h := m.holdByID[r.HoldID]
	m.byID[h.AccountID].pending -= h.Amount
	h.Amount = 0
	h.Status = ledger.HoldVoided
	h.UpdatedAt = m.now
	if diff := diffHold(res.(*ledger.Hold), &h.Hold); diff != "" {
		t.Fatalf("%s returned %+v: %s", r.describe(), *res.(*ledger.Hold), diff)
	}
}

// ---- the state machine

type ledgerMachine struct {
	ctx   context.Context
	db    *store.DB
	l     *ledger.Ledger
	clock *clock
	m     *model
	base  rowCounts // the tables before the first step
	n     int       // requests made, for keys
	steps int
}

func (s *ledgerMachine) newKey() string {
	s.n++
	return fmt.Sprintf("k%d", s.n)
}

// exec sends r and holds the ledger's answer against the model's.
func (s *ledgerMachine) exec(t *rapid.T, r request) {
	t.Helper()
	s.steps++
	m := s.m
	before := countRows(t, s.db)
	res, err := r.send(s.ctx, s.l)
	after := countRows(t, s.db)
	m.tried = append(m.tried, r)
	unchanged := func(why string) {
		t.Helper()
		if after != before {
			t.Fatalf("%s: %s, yet the tables changed: %+v -> %+v", r.describe(), why, before, after)
		}
	}
	if c := r.static(); c != "" {
		wantCode(t, err, c, r.describe())
		unchanged("malformed")
		return
	}
	if prev, ok := m.applied[r.key()]; ok {
		if reflect.DeepEqual(prev.req, r) {
			wantCode(t, err, "", "retry of "+r.describe())
			if diff := diffResult(res, prev.res); diff != "" {
				t.Fatalf("retry of %s: result differs from the original: %s", r.describe(), diff)
			}
			unchanged("a retry")
			return
		}
		wantCode(t, err, errors.Conflict, fmt.Sprintf("%s reusing the key of %s", r.describe(), prev.req.describe()))
		unchanged("a key reused")
		return
	}
	d := r.decide(m)
	wantCode(t, err, d.code, r.describe())
	if d.code != "" {
		unchanged("failed")
		return
	}
	r.apply(t, m, d, res)
	switch r.(type) {
	case *createAccount, *transfer, *placeHold: // each makes a new object
		id := resultID(res)
		if m.seenIDs[id] {
			t.Fatalf("%s: new object's id %s was returned before", r.describe(), id)
		}
		m.seenIDs[id] = true
	}
	m.applied[r.key()] = applied{req: r, res: res}
	m.writes++
	if got := after.Transfers - before.Transfers; got != 1 {
		t.Fatalf("%s recorded %d writes, want 1", r.describe(), got)
	}
	if got := after.Outbox - before.Outbox; got != 1 {
		t.Fatalf("%s published %d events, want 1", r.describe(), got)
	}
	s.checkEvent(t, r, res)
	if tr, ok := res.(*ledger.Transfer); ok {
		stored, err := s.l.GetTransfer(s.ctx, tr.ID)
		if err != nil {
			t.Fatalf("GetTransfer(%s) after %s: %v", tr.ID, r.describe(), err)
		}
		if diff := diffTransfer(stored, tr); diff != "" {
			t.Fatalf("GetTransfer(%s) differs from Transfer's result: %s", tr.ID, diff)
		}
	}
}

// newestEvents returns the last n events in the outbox, oldest first.
func newestEvents(t *rapid.T, db *store.DB, n int) []event.Event {
	rows, err := db.Read.QueryContext(context.Background(), db.Rebind(`SELECT topic, payload FROM outbox ORDER BY seq DESC LIMIT ?`), n)
	if err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	defer rows.Close()
	var evs []event.Event
	for rows.Next() {
		var e event.Event
		if err := rows.Scan(&e.Topic, &e.Payload); err != nil {
			t.Fatalf("read outbox: %v", err)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read outbox: %v", err)
	}
	slices.Reverse(evs)
	return evs
}

// checkEvent checks the event a successful write published says what the
// write did: its topic, and a payload that decodes to the write's result.
func (s *ledgerMachine) checkEvent(t *rapid.T, r request, res any) {
	t.Helper()
	ev := newestEvents(t, s.db, 1)[0]
	var kind ledger.Kind
	switch r.(type) {
	case *createAccount, *closeAccount:
		want := ledger.TopicAccountCreated
		if _, ok := r.(*closeAccount); ok {
			want = ledger.TopicAccountClosed
		}
		var a ledger.Account
		if err := json.Unmarshal(ev.Payload, &a); err != nil || ev.Topic != want {
			t.Fatalf("%s published %s %s (%v), want topic %s", r.describe(), ev.Topic, ev.Payload, err, want)
		}
		if diff := diffAccount(&a, res.(*ledger.Account)); diff != "" {
			t.Fatalf("%s published an account unlike its result: %s", r.describe(), diff)
		}
		return
	case *transfer:
		kind = ledger.KindTransfer
	case *placeHold:
		kind = ledger.KindHoldPlace
	case *incrementHold:
		kind = ledger.KindHoldIncr
	case *postHold:
		kind = ledger.KindHoldPost
	case *voidHold:
		kind = ledger.KindHoldVoid
	}
	var ce ledger.ChangeEvent
	if err := json.Unmarshal(ev.Payload, &ce); err != nil || ev.Topic != ledger.TopicFor(kind) {
		t.Fatalf("%s published %s %s (%v), want topic %s", r.describe(), ev.Topic, ev.Payload, err, ledger.TopicFor(kind))
	}
	if ce.Transfer.Key != r.key() || ce.Transfer.Kind != kind || ce.Transfer.ID == "" || !ce.Transfer.At.Equal(s.m.now) {
		t.Fatalf("%s published transfer %+v", r.describe(), ce.Transfer)
	}
	switch res := res.(type) {
	case *ledger.Transfer:
		if diff := diffTransfer(&ce.Transfer, res); diff != "" {
			t.Fatalf("%s published a transfer unlike its result: %s", r.describe(), diff)
		}
	case *ledger.Hold:
		if ce.Hold == nil || ce.Transfer.HoldID != res.ID {
			t.Fatalf("%s published %+v without its hold %s", r.describe(), ce, res.ID)
		}
		if diff := diffHold(ce.Hold, res); diff != "" {
			t.Fatalf("%s published a hold unlike its result: %s", r.describe(), diff)
		}
	}
}

func resultID(res any) string {
	switch r := res.(type) {
	case *ledger.Account:
		return r.ID
	case *ledger.Transfer:
		return r.ID
	case *ledger.Hold:
		return r.ID
	}
	return fmt.Sprintf("%T", res)
}

// Draw helpers.

func drawAccount(t *rapid.T, label string, as []*mAccount) *mAccount {
	return as[rapid.IntRange(0, len(as)-1).Draw(t, label)]
}

// rare draws true about one time in ten. Rapid favours small values and
// shrinks toward them, so false, the common case, is the small one.
func rare(t *rapid.T, label string) bool { return rapid.IntRange(0, 9).Draw(t, label) == 9 }

// fault draws which of n deliberate faults to put in a request, or 0 for
// none (about four times in five).
func fault(t *rapid.T, n int) int {
	f := rapid.IntRange(0, 4*n).Draw(t, "fault") - 3*n
	return max(f, 0)
}

func drawMeta(t *rapid.T) map[string]string {
	if !rare(t, "with metadata") {
		return nil
	}
	return map[string]string{"merchant": rapid.SampledFrom([]string{"Ozone Coffee", "Pret", "TfL"}).Draw(t, "merchant")}
}

func drawExpiry(t *rapid.T, now time.Time) time.Time {
	return now.Add(time.Duration(rapid.IntRange(1, 120).Draw(t, "expires in minutes")) * time.Minute)
}

// unknownID names an object that does not exist.
const unknownID = "acc_does_not_exist"

// drawTransfer draws a transfer request, usually valid in form, sometimes
// deliberately not.
func (s *ledgerMachine) drawTransfer(t *rapid.T, key string) *transfer {
	m := s.m
	var groups [][]*mAccount
	for _, c := range currencies {
		if as := m.openAccounts(c); len(as) >= 2 {
			groups = append(groups, as)
		}
	}
	if len(groups) == 0 {
		t.Skip("no two open accounts in one currency")
	}
	req := ledger.TransferRequest{Key: key, Force: rare(t, "force"), Metadata: drawMeta(t)}
	if len(groups) == 2 && rare(t, "two currencies") {
		for _, g := range groups {
			req.Legs = append(req.Legs, drawLegs(t, g, 2)...)
		}
	} else {
		g := groups[rapid.IntRange(0, len(groups)-1).Draw(t, "currency")]
		req.Legs = drawLegs(t, g, rapid.IntRange(2, min(4, len(g))).Draw(t, "legs"))
	}
	r := &transfer{req}
	switch fault(t, 7) {
	case 1: // one leg
		r.Legs = r.Legs[:1]
	case 2: // unbalanced
		r.Legs[len(r.Legs)-1].Amount++
		if r.Legs[len(r.Legs)-1].Amount == 0 {
			r.Legs[len(r.Legs)-1].Amount++
		}
	case 3: // an unknown account
		r.Legs[rapid.IntRange(0, len(r.Legs)-1).Draw(t, "leg")].AccountID = unknownID
	case 4: // every leg in a currency its accounts do not hold: balanced, but mismatched
		if len(r.Legs) == 2 {
			other := currencies[0]
			if r.Legs[0].Currency == other {
				other = currencies[1]
			}
			r.Legs[0].Currency, r.Legs[1].Currency = other, other
		}
	case 5: // one account twice
		r.Legs = append(r.Legs, ledger.Leg{AccountID: r.Legs[0].AccountID, Amount: 1, Currency: r.Legs[0].Currency},
			ledger.Leg{AccountID: r.Legs[1].AccountID, Amount: -1, Currency: r.Legs[1].Currency})
	case 6: // a zero leg
		r.Legs = append(r.Legs, ledger.Leg{AccountID: unknownID, Amount: 0, Currency: r.Legs[0].Currency})
	case 7: // a closed account
		var closed []*mAccount
		for _, a := range m.accounts {
			if a.closed {
				closed = append(closed, a)
			}
		}
		if len(closed) > 0 {
			c := drawAccount(t, "closed account", closed)
			amt := int64(rapid.IntRange(1, maxStepAmount).Draw(t, "amount"))
			if rapid.Bool().Draw(t, "closed is debited") {
				amt = -amt
			}
			r.Legs = append(r.Legs, ledger.Leg{AccountID: c.id, Amount: amt, Currency: c.cur})
			r.Legs[0].Amount -= amt
			if r.Legs[0].Amount == 0 || r.Legs[0].AccountID == c.id || r.Legs[0].Currency != c.cur {
				r.Legs = r.Legs[:len(r.Legs)-1]
				r.Legs[0].Amount += amt
			}
		}
	}
	return r
}

// drawLegs draws n balanced, non-zero legs on distinct accounts of g. Half
// the time it is a funding transfer: from a RuleNone account, which never
// runs out, to others.
func drawLegs(t *rapid.T, g []*mAccount, n int) []ledger.Leg {
	idx := rapid.Permutation(seq(len(g))).Draw(t, "accounts")[:n]
	legs := make([]ledger.Leg, n)
	var sum int64
	fund := rapid.Bool().Draw(t, "funding")
	for i, j := range idx {
		legs[i] = ledger.Leg{AccountID: g[j].id, Currency: g[j].cur}
		if i == n-1 {
			continue
		}
		a := int64(rapid.IntRange(1, maxStepAmount).Draw(t, "amount"))
		if !fund && rapid.Bool().Draw(t, "debit") {
			a = -a
		}
		legs[i].Amount = a
		sum += a
	}
	if sum == 0 { // the last leg would be zero: double the first
		sum += legs[0].Amount
		legs[0].Amount *= 2
	}
	legs[n-1].Amount = -sum
	if fund {
		// Move the balancing (debit) leg onto a RuleNone account if there is one.
		for i, j := range idx {
			if g[j].rule == ledger.RuleNone && i != n-1 {
				legs[i].Amount, legs[n-1].Amount = legs[n-1].Amount, legs[i].Amount
				break
			}
		}
	}
	return legs
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func (s *ledgerMachine) drawHold(t *rapid.T) *mHold {
	if len(s.m.holds) == 0 {
		t.Skip("no holds")
	}
	// Prefer pending holds: most hold operations should have something to do.
	var pending []*mHold
	for _, h := range s.m.holds {
		if h.Status == ledger.HoldPending {
			pending = append(pending, h)
		}
	}
	if rare(t, "any hold") {
		return s.m.holds[rapid.IntRange(0, len(s.m.holds)-1).Draw(t, "hold")]
	}
	if len(pending) == 0 {
		t.Skip("no pending holds")
	}
	return pending[rapid.IntRange(0, len(pending)-1).Draw(t, "hold")]
}

// Actions.

func (s *ledgerMachine) CreateAccount(t *rapid.T) {
	if len(s.m.accounts) >= 8 {
		t.Skip("enough accounts")
	}
	req := ledger.CreateAccountRequest{
		Key:      s.newKey(),
		Currency: rapid.SampledFrom(currencies).Draw(t, "currency"),
		Owner:    rapid.SampledFrom([]string{"", "cus_1", "cus_2"}).Draw(t, "owner"),
		Rule:     rapid.SampledFrom([]ledger.Rule{ledger.RuleLimit, ledger.RuleLimit, ledger.RuleNone}).Draw(t, "rule"),
	}
	if req.Rule == ledger.RuleLimit {
		req.OverdraftLimit = int64(rapid.SampledFrom([]int{0, 0, 100, maxStepAmount}).Draw(t, "limit"))
	}
	s.exec(t, &createAccount{req})
}

func (s *ledgerMachine) CloseAccount(t *rapid.T) {
	if len(s.m.accounts) == 0 {
		t.Skip("no accounts")
	}
	// Closing mostly fails (balances are rarely zero); keep it rare.
	if !rare(t, "close") {
		t.Skip("not this time")
	}
	a := drawAccount(t, "account", s.m.accounts)
	s.exec(t, &closeAccount{ledger.CloseAccountRequest{Key: s.newKey(), AccountID: a.id}})
}

func (s *ledgerMachine) Transfer(t *rapid.T) {
	s.exec(t, s.drawTransfer(t, s.newKey()))
}

func (s *ledgerMachine) drawPlaceHold(t *rapid.T, key string) *placeHold {
	var src []*mAccount
	for _, a := range s.m.openAccounts("") {
		if len(s.m.openAccounts(a.cur)) >= 2 {
			src = append(src, a)
		}
	}
	if len(src) == 0 {
		t.Skip("no two open accounts in one currency")
	}
	a := drawAccount(t, "account", src)
	var dsts []*mAccount
	for _, d := range s.m.openAccounts(a.cur) {
		if d != a {
			dsts = append(dsts, d)
		}
	}
	d := drawAccount(t, "destination", dsts)
	r := &placeHold{ledger.PlaceHoldRequest{
		Key: key, AccountID: a.id, Destination: d.id, Currency: a.cur,
		Amount:    int64(rapid.IntRange(1, maxStepAmount).Draw(t, "amount")),
		ExpiresAt: drawExpiry(t, s.m.now),
		Force:     rare(t, "force"),
		Metadata:  drawMeta(t),
	}}
	switch fault(t, 5) {
	case 1:
		r.Destination = unknownID
	case 2:
		r.AccountID = unknownID
	case 3:
		r.Destination = r.AccountID
	case 4:
		r.Amount = 0
	case 5:
		r.Currency = currencies[0]
		if a.cur == currencies[0] {
			r.Currency = currencies[1]
		}
	}
	return r
}

func (s *ledgerMachine) PlaceHold(t *rapid.T) {
	s.exec(t, s.drawPlaceHold(t, s.newKey()))
}

func (s *ledgerMachine) drawIncrementHold(t *rapid.T, key string) *incrementHold {
	h := s.drawHold(t)
	r := &incrementHold{ledger.IncrementHoldRequest{
		Key: key, HoldID: h.ID,
		Amount: int64(rapid.IntRange(1, maxStepAmount/2).Draw(t, "amount")),
		Force:  rare(t, "force"),
	}}
	if rapid.IntRange(0, 2).Draw(t, "new expiry") == 2 {
		r.ExpiresAt = drawExpiry(t, s.m.now)
	}
	if rare(t, "unknown hold") {
		r.HoldID = "hld_does_not_exist"
	}
	return r
}

func (s *ledgerMachine) IncrementHold(t *rapid.T) {
	s.exec(t, s.drawIncrementHold(t, s.newKey()))
}

func (s *ledgerMachine) drawPostHold(t *rapid.T, key string) *postHold {
	h := s.drawHold(t)
	held := h.Amount
	var amount int64
	switch rapid.IntRange(0, 2).Draw(t, "amount vs held") {
	case 0: // less
		amount = int64(rapid.IntRange(1, int(max(1, held-1))).Draw(t, "amount"))
	case 1: // all
		amount = max(1, held)
	case 2: // more
		amount = held + int64(rapid.IntRange(1, maxStepAmount/2).Draw(t, "excess"))
	}
	return &postHold{ledger.PostHoldRequest{
		Key: key, HoldID: h.ID, Amount: amount,
		KeepOpen: rapid.IntRange(0, 2).Draw(t, "keep open") == 2,
		Force:    rare(t, "force"),
		Metadata: drawMeta(t),
	}}
}

func (s *ledgerMachine) PostHold(t *rapid.T) {
	s.exec(t, s.drawPostHold(t, s.newKey()))
}

func (s *ledgerMachine) VoidHold(t *rapid.T) {
	h := s.drawHold(t)
	s.exec(t, &voidHold{ledger.VoidHoldRequest{Key: s.newKey(), HoldID: h.ID}})
}

// Retry sends an earlier request again, unchanged: one that took effect must
// answer as it did the first time and do nothing more; one that failed is
// decided afresh.
func (s *ledgerMachine) Retry(t *rapid.T) {
	if len(s.m.tried) == 0 {
		t.Skip("nothing to retry")
	}
	s.exec(t, s.m.tried[rapid.IntRange(0, len(s.m.tried)-1).Draw(t, "request")])
}

// ReuseKey sends a different request with the key of one that took effect:
// the ledger must refuse it with Conflict and change nothing.
func (s *ledgerMachine) ReuseKey(t *rapid.T) {
	if len(s.m.applied) == 0 {
		t.Skip("no key has taken effect")
	}
	keys := slices.Sorted(maps.Keys(s.m.applied))
	key := keys[rapid.IntRange(0, len(keys)-1).Draw(t, "key")]
	var r request
	switch rapid.IntRange(0, 4).Draw(t, "kind") {
	case 0:
		r = &createAccount{ledger.CreateAccountRequest{Key: key, Currency: "GBP", Rule: ledger.RuleLimit, OverdraftLimit: 12345}}
	case 1:
		r = s.drawTransfer(t, key)
	case 2:
		r = s.drawPlaceHold(t, key)
	case 3:
		r = s.drawIncrementHold(t, key)
	case 4:
		r = s.drawPostHold(t, key)
	}
	if reflect.DeepEqual(r, s.m.applied[key].req) {
		t.Skip("drew the same request")
	}
	s.exec(t, r)
}

// Expire moves the clock on and expires every hold then due, a few at a
// time, checking each batch against the model.
func (s *ledgerMachine) Expire(t *rapid.T) {
	m := s.m
	m.snapshots = append(m.snapshots, s.snapshot())
	m.now = s.clock.Advance(time.Duration(rapid.IntRange(1, 90).Draw(t, "minutes")) * time.Minute)
	limit := rapid.IntRange(1, 3).Draw(t, "limit")
	for {
		var due []*mHold
		for _, h := range m.holds {
			if h.Status == ledger.HoldPending && !h.ExpiresAt.After(m.now) {
				due = append(due, h)
			}
		}
		before := countRows(t, s.db)
		got, err := s.l.ExpireHolds(s.ctx, m.now, limit)
		if err != nil {
			t.Fatalf("ExpireHolds(%v, %d): %v", m.now, limit, err)
		}
		after := countRows(t, s.db)
		if want := min(limit, len(due)); len(got) != want {
			t.Fatalf("ExpireHolds(%v, %d) expired %d holds with %d due", m.now, limit, len(got), len(due))
		}
		for _, g := range got {
			h, ok := m.holdByID[g.ID]
			if !ok || !slices.Contains(due, h) {
				t.Fatalf("ExpireHolds(%v) expired hold %s, which is not due (%+v)", m.now, g.ID, g)
			}
			m.byID[h.AccountID].pending -= h.Amount
			h.Amount, h.Status, h.UpdatedAt = 0, ledger.HoldExpired, m.now
			if diff := diffHold(&g, &h.Hold); diff != "" {
				t.Fatalf("ExpireHolds returned %s", diff)
			}
			due = slices.DeleteFunc(due, func(x *mHold) bool { return x == h })
		}
		m.writes += int64(len(got))
		if d := after.Transfers - before.Transfers; d != int64(len(got)) {
			t.Fatalf("ExpireHolds expired %d holds in %d writes", len(got), d)
		}
		if len(got) > 0 {
			for i, ev := range newestEvents(t, s.db, len(got)) {
				var ce ledger.ChangeEvent
				if err := json.Unmarshal(ev.Payload, &ce); err != nil || ev.Topic != ledger.TopicFor(ledger.KindHoldExpire) ||
					ce.Transfer.Kind != ledger.KindHoldExpire || ce.Hold == nil || ce.Hold.ID != got[i].ID || ce.Hold.Status != ledger.HoldExpired {
					t.Fatalf("expiring hold %s published %s %s (%v)", got[i].ID, ev.Topic, ev.Payload, err)
				}
			}
		}
		if len(got) < limit {
			break
		}
	}
	s.steps++
	// Balances as of every instant the clock has left are what they were
	// then.
	if len(m.snapshots) > 0 {
		snap := m.snapshots[rapid.IntRange(0, len(m.snapshots)-1).Draw(t, "snapshot")]
		for id, want := range snap.balances {
			b, err := s.l.Balance(s.ctx, id, snap.at.Add(30*time.Second))
			if err != nil {
				t.Fatalf("Balance(%s, %v): %v", id, snap.at, err)
			}
			if b.Posted != want[0] || b.Pending != want[1] {
				t.Fatalf("Balance(%s) as of %v: posted %d pending %d, want %d %d", id, snap.at, b.Posted, b.Pending, want[0], want[1])
			}
		}
	}
}

func (s *ledgerMachine) snapshot() snapshot {
	snap := snapshot{at: s.m.now, balances: map[string][2]int64{}}
	for _, a := range s.m.accounts {
		snap.balances[a.id] = [2]int64{a.posted, a.pending}
	}
	return snap
}

// Check runs after every step.
func (s *ledgerMachine) Check(t *rapid.T) {
	m := s.m
	for _, a := range m.accounts {
		b, err := s.l.Balance(s.ctx, a.id, time.Time{})
		if err != nil {
			t.Fatalf("Balance(%s): %v", a.id, err)
		}
		if b.AccountID != a.id || b.Currency != a.cur || b.Posted != a.posted || b.Pending != a.pending {
			t.Fatalf("Balance(%s) = %+v, want posted %d pending %d in %s", a.id, *b, a.posted, a.pending, a.cur)
		}
		if a.rule == ledger.RuleLimit {
			if b.Available != a.available() {
				t.Fatalf("Balance(%s).Available = %d, want %d", a.id, b.Available, a.available())
			}
			if b.Available < 0 && !a.mayBeLow {
				t.Fatalf("account %s (limit %d) has available %d without a forced write", a.id, a.limit, b.Available)
			}
		}
		if a.available() >= 0 {
			a.mayBeLow = false
		}
		acc, err := s.l.GetAccount(s.ctx, a.id)
		if err != nil {
			t.Fatalf("GetAccount(%s): %v", a.id, err)
		}
		if closed := acc.Status == ledger.StatusClosed; closed != a.closed {
			t.Fatalf("GetAccount(%s).Status = %s, closed in the model: %v", a.id, acc.Status, a.closed)
		}
	}
	for _, h := range m.holds {
		got, err := s.l.GetHold(s.ctx, h.ID)
		if err != nil {
			t.Fatalf("GetHold(%s): %v", h.ID, err)
		}
		if diff := diffHold(got, &h.Hold); diff != "" {
			t.Fatalf("GetHold: %s", diff)
		}
	}
	c := countRows(t, s.db)
	if got, want := c.Accounts-s.base.Accounts, int64(len(m.accounts)); got != want {
		t.Fatalf("%d accounts stored, want %d", got, want)
	}
	if got, want := c.Holds-s.base.Holds, int64(len(m.holds)); got != want {
		t.Fatalf("%d holds stored, want %d", got, want)
	}
	if got := c.Transfers - s.base.Transfers; got != m.writes {
		t.Fatalf("%d writes recorded, want %d", got, m.writes)
	}
	if got := c.Outbox - s.base.Outbox; got != m.writes {
		t.Fatalf("%d events in the outbox, want one for each of %d writes", got, m.writes)
	}
	checkStored(t, s.db)
	verify(t, s.db)
	if len(m.accounts) > 0 {
		s.checkHistory(t, m.accounts[s.steps%len(m.accounts)])
	}
}

// checkHistory reads an account's whole history and checks it adds up to
// its balances, and that every entry belongs to a write the model knows.
func (s *ledgerMachine) checkHistory(t *rapid.T, a *mAccount) {
	es := fullHistory(t, s.ctx, s.l, a.id, 1+s.steps%4)
	var posted, pending int64
	for _, e := range es {
		posted += e.Posted
		pending += e.Pending
		tr, err := s.l.GetTransfer(s.ctx, e.TransferID)
		if err != nil {
			t.Fatalf("GetTransfer(%s) of entry %d of %s: %v", e.TransferID, e.Seq, a.id, err)
		}
		if tr.Kind != e.Kind {
			t.Fatalf("entry %d of %s has kind %s, its write %s", e.Seq, a.id, e.Kind, tr.Kind)
		}
		if _, ok := s.m.applied[tr.Key]; !ok && !(tr.Kind == ledger.KindHoldExpire && strings.HasPrefix(tr.Key, "ledger:")) {
			t.Fatalf("entry %d of %s comes from write %+v, which the model did not make", e.Seq, a.id, *tr)
		}
		if tr.HoldID != "" {
			h, ok := s.m.holdByID[tr.HoldID]
			if !ok || (h.AccountID != a.id && h.Destination != a.id) {
				t.Fatalf("entry %d of %s comes from a write on hold %s, not one of its holds", e.Seq, a.id, tr.HoldID)
			}
		}
	}
	if len(es) > 0 && (es[0].PostedAfter != a.posted || es[0].PendingAfter != a.pending) {
		t.Fatalf("newest entry of %s ends at posted %d pending %d, want %d %d", a.id, es[0].PostedAfter, es[0].PendingAfter, a.posted, a.pending)
	}
	if posted != a.posted || pending != a.pending {
		t.Fatalf("history of %s sums to posted %d pending %d, want %d %d", a.id, posted, pending, a.posted, a.pending)
	}
}

// TestModel checks the ledger against the model on each engine, on a fresh
// database for each generated sequence. PostgreSQL answers each of the
// hundreds of queries a sequence makes over the network, and the race
// detector slows the pure-Go SQLite several times over, so those run a
// quarter of rapid's checks (set -rapid.checks to choose for all).
func TestModel(t *testing.T) {
	checks, chosen := rapidChecks()
	eachFreshDB(t, func(t *testing.T, fresh func() (*store.DB, error)) {
		n := checks
		if !chosen && (strings.HasSuffix(t.Name(), "/postgres") || raceEnabled()) {
			n = max(1, checks/4)
		}
		withRapidChecks(t, n, func() {
			rapid.Check(t, func(rt *rapid.T) {
				db, err := fresh()
				if err != nil {
					rt.Fatalf("open a database: %v", err)
				}
				defer db.Close()
				clk := newClock(epoch)
				l, err := ledger.Open(context.Background(), db, ledger.Config{Now: clk.Now})
				if err != nil {
					rt.Fatalf("ledger.Open: %v", err)
				}
				defer l.Close()
				s := &ledgerMachine{
					ctx: context.Background(), db: db, l: l, clock: clk,
					m: &model{
						now: clk.Now(), byID: map[string]*mAccount{}, holdByID: map[string]*mHold{},
						applied: map[string]applied{}, seenIDs: map[string]bool{},
					},
				}
				s.base = countRows(rt, db)
				// Start from an account of each rule in each currency: without
				// two accounts in a currency most actions have nothing to do.
				for _, c := range currencies {
					for _, rule := range []ledger.Rule{ledger.RuleNone, ledger.RuleLimit} {
						req := ledger.CreateAccountRequest{Key: s.newKey(), Currency: c, Rule: rule}
						if rule == ledger.RuleLimit {
							req.OverdraftLimit = int64(rapid.SampledFrom([]int{0, 100}).Draw(rt, "limit"))
						}
						s.exec(rt, &createAccount{req})
					}
				}
				rt.Repeat(rapid.StateMachineActions(s))
			})
		})
	})
}

// rapidChecks returns the number of checks rapid is set to make, and
// whether the command line (-rapid.checks) or the environment (RAPID_CHECKS)
// chose it.
func rapidChecks() (n int, chosen bool) {
	n, _ = strconv.Atoi(flag.Lookup("rapid.checks").Value.String())
	chosen = os.Getenv("RAPID_CHECKS") != ""
	flag.Visit(func(f *flag.Flag) { chosen = chosen || f.Name == "rapid.checks" })
	return n, chosen
}

// withRapidChecks runs fn with rapid set to make n checks.
func withRapidChecks(t *testing.T, n int, fn func()) {
	old := flag.Lookup("rapid.checks").Value.String()
	if err := flag.Set("rapid.checks", strconv.Itoa(n)); err != nil {
		t.Fatal(err)
	}
	defer flag.Set("rapid.checks", old)
	fn()
}
