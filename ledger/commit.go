package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/id"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
)

// commitTimeout bounds one group commit. A batch that cannot commit in this
// long fails as Unavailable, or as Timeout if the deadline cut its COMMIT off
// in flight (it may have been stored); either way its callers retry with
// their keys.
const commitTimeout = 30 * time.Second

// run is the group committer: it takes every write waiting, up to MaxBatch,
// and commits them together.
func (l *Ledger) run() {
	defer close(l.done)
	batch := make([]*op, 0, l.cfg.MaxBatch)
	for {
		o, ok := <-l.ops
		if !ok {
			return
		}
		batch = append(batch[:0], o)
	fill:
		for len(batch) < l.cfg.MaxBatch {
			select {
			case o, ok := <-l.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		l.commit(batch)
	}
}

// acct is an account as a batch sees it.
type acct struct {
	Account
	posted, pending, lastSeq int64
	lastAt                   int64 // the time of entry lastSeq (unix nanoseconds)
	dirty                    bool
}

// available is what a debit may use: posted − pending + limit, saturating
// at the int64 bounds (forced writes can take posted and pending far apart;
// a wrapped sum would turn a huge debt into funds).
func (a *acct) available(posted, pending int64) int64 {
	return money.SatAdd(money.SatSub(posted, pending), a.OverdraftLimit)
}

// allows reports whether moving a's balances to (posted, pending) keeps it
// within its rule. A change that leaves available funds negative is allowed
// only if it does not make them more negative (a forced write may have put
// them there; posting within a hold must still succeed).
func (a *acct) allows(posted, pending int64) bool {
	if a.Rule == RuleNone {
		return true
	}
	if a.available(posted, pending) >= 0 {
		return true
	}
	// Not more negative, judged by the change itself (one write's, never
	// near the int64 bounds), not by two saturated totals.
	return (posted-a.posted)-(pending-a.pending) >= 0
}

type holdState struct {
	Hold
	dirty bool
}

// prior is a write already stored under an idempotency key.
type prior struct {
	id, hash, holdID, accountID, legs, metadata, result string
	kind                                                Kind
	forced                                              bool
	at                                                  int64
}

type transferRow struct {
	id, key, hash          string
	kind                   Kind
	holdID, accountID      string
	forced                 bool
	legs, metadata, result string
	at                     int64
}

type entryRow struct {
	accountID, transferID string
	seq                   int64
	kind                  Kind
	posted, pending       int64
	postedAfter           int64
	pendingAfter          int64
	at                    int64
}

// batch is the state of one group commit.
type batch struct {
	l     *Ledger
	tx    *sql.Tx
	now   time.Time
	nowNS int64

	priors   map[string]*prior
	accounts map[string]*acct
	holds    map[string]*holdState
	applied  map[string]*op // key -> op that succeeded in this batch
	expiring []*holdState   // holds found due for the batch's expire ops

	transfers []transferRow
	entries   []entryRow
	events    []event.Event
}

func (l *Ledger) commit(ops []*op) {
	start := time.Now()
	ctx, cancel := l.db.GroupContext(commitTimeout)
	defer cancel()
	var b *batch
	var err error
	for attempt := 1; ; attempt++ {
		b = &batch{
			l:        l,
			priors:   make(map[string]*prior),
			accounts: make(map[string]*acct),
			holds:    make(map[string]*holdState),
			applied:  make(map[string]*op),
		}
		for _, o := range ops {
			o.res, o.err = nil, nil
		}
		err = l.db.InTx(ctx, func(tx *sql.Tx) error {
			b.tx = tx
			if err := b.load(ctx, ops); err != nil {
				return fmt.Errorf("load: %w", err)
			}
			// The time after the rows are locked: on PostgreSQL, a batch
			// of another process that wrote these accounts first
			// committed before now, so their entries' times follow their
			// seqs.
			b.now = l.cfg.Now().UTC()
			// Never before an entry already on an account the batch
			// writes (a clock stepped back, or another process's is
			// behind): each account's entries' times follow their seqs,
			// which Balance at a past time relies on.
			for _, a := range b.accounts {
				if a.lastAt > b.now.UnixNano() {
					b.now = time.Unix(0, a.lastAt).UTC()
				}
			}
			b.nowNS = b.now.UnixNano()
			for _, o := range ops {
				b.apply(o)
			}
			if err := b.write(ctx); err != nil {
				return fmt.Errorf("write: %w", err)
			}
			return nil
		})
		if err == nil || attempt == 2 || !store.Contended(err) {
			break
		}
		// Another process's batch took a key of this one first (two
		// openings of one account key, say), or the two deadlocked:
		// decided again, the batch sees the other's writes and replays
		// them, instead of failing every write in it.
		l.cfg.Log.Warn("ledger group commit lost to another process; deciding the batch again", "writes", len(ops), "err", err)
	}
	if err != nil {
		l.cfg.Log.Error("ledger group commit failed", "writes", len(ops), "err", err)
		// Every answer, refusals included: a write refused for want of
		// funds or for a key was refused against the batch's earlier
		// writes, which are not stored either. If the COMMIT was sent
		// and its answer lost, the batch may have been stored: Timeout,
		// and the retry with the same key finds what was.
		fail := store.WriteFailed("ledger commit", err)
		for _, o := range ops {
			o.res, o.err = nil, fail
		}
	}
	l.m.observe(ops, time.Since(start), err)
	for _, o := range ops {
		close(o.done)
	}
	// A batch whose outcome is unknown may have stored its events: waking
	// the relay for nothing costs one look at an empty outbox.
	if (err == nil || store.CommitOutcomeUnknown(err)) && len(b.events) > 0 && l.cfg.Notify != nil {
		l.cfg.Notify()
	}
}

// forUpdate locks the rows a batch reads on PostgreSQL. SQLite needs no
// row locks: the write transaction began IMMEDIATE and holds the database.
func (b *batch) forUpdate() string {
	if b.l.db.Dialect == store.Postgres {
		return " ORDER BY id FOR UPDATE"
	}
	return ""
}

// load reads everything the batch's writes refer to, in three round trips:
// prior writes by key, holds by id, accounts by id.
func (b *batch) load(ctx context.Context, ops []*op) error {
	var keys, holdIDs []string
	for _, o := range ops {
		if o.key != "" {
			keys = append(keys, o.key)
		}
		switch r := o.req.(type) {
		case *IncrementHoldRequest:
			holdIDs = append(holdIDs, r.HoldID)
		case *PostHoldRequest:
			holdIDs = append(holdIDs, r.HoldID)
		case *VoidHoldRequest:
			holdIDs = append(holdIDs, r.HoldID)
		}
	}
	if err := b.inChunks("id", holdIDs, func(cond string, args []any) error {
		_, err := b.loadHolds(ctx, `SELECT `+holdCols+` FROM holds WHERE `+cond+b.forUpdate(), args...)
		return err
	}); err != nil {
		return err
	}
	for _, o := range ops {
		if r, ok := o.req.(expireReq); ok {
			q := `SELECT ` + holdCols + ` FROM holds WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?`
			if b.l.db.Dialect == store.Postgres {
				// Locked in id order, as every batch locks rows, so that
				// two processes' batches cannot deadlock.
				q = `SELECT ` + holdCols + ` FROM holds WHERE id IN (SELECT id FROM holds WHERE status = 'pending' AND expires_at <= ? ORDER BY expires_at, id LIMIT ?) ORDER BY id FOR UPDATE`
			}
			due, err := b.loadHolds(ctx, q, r.asOf.UnixNano(), r.limit)
			if err != nil {
				return err
			}
			b.expiring = append(b.expiring, due...)
		}
	}
	acctIDs := make(map[string]struct{})
	for _, o := range ops {
		switch r := o.req.(type) {
		case *CloseAccountRequest:
			acctIDs[r.AccountID] = struct{}{}
		case *TransferRequest:
			for _, leg := range r.Legs {
				acctIDs[leg.AccountID] = struct{}{}
			}
		case *PlaceHoldRequest:
			acctIDs[r.AccountID] = struct{}{}
			acctIDs[r.Destination] = struct{}{}
		}
	}
	for _, h := range b.holds {
		acctIDs[h.AccountID] = struct{}{}
		acctIDs[h.Destination] = struct{}{}
	}
	ids := make([]string, 0, len(acctIDs))
	for a := range acctIDs {
		ids = append(ids, a)
	}
	slices.Sort(ids)
	if err := b.inChunks("id", ids, func(cond string, args []any) error {
		rows, err := b.tx.QueryContext(ctx, b.l.db.Rebind(`SELECT `+acctCols+` FROM accounts WHERE `+cond+b.forUpdate()), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a := new(acct)
			if err := scanAcct(rows, a); err != nil {
				return err
			}
			b.accounts[a.ID] = a
		}
		return rows.Err()
	}); err != nil {
		return err
	}
	// The writes already stored under the batch's keys, read once the rows
	// are locked: on PostgreSQL another process's batch that wrote these
	// keys on these rows has committed by now, and is seen (read before,
	// a void or final post it stored would look like a hold finished by
	// someone else: a conflict, not a replay).
	if err := b.inChunks("key", keys, func(cond string, args []any) error {
		rows, err := b.tx.QueryContext(ctx, b.l.db.Rebind(`SELECT key, id, req_hash, kind, hold_id, account_id, forced, legs, metadata, result, at FROM transfers WHERE `+cond), args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			var hash []byte
			p := new(prior)
			if err := rows.Scan(&k, &p.id, &hash, &p.kind, &p.holdID, &p.accountID, &p.forced, &p.legs, &p.metadata, &p.result, &p.at); err != nil {
				return err
			}
			p.hash = string(hash)
			b.priors[k] = p
		}
		return rows.Err()
	}); err != nil {
		return err
	}
	return nil
}

// loadHolds reads holds into the batch (keeping any already loaded, which
// may be ahead of the database) and returns them.
func (b *batch) loadHolds(ctx context.Context, q string, args ...any) ([]*holdState, error) {
	rows, err := b.tx.QueryContext(ctx, b.l.db.Rebind(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*holdState
	for rows.Next() {
		h := new(holdState)
		if err := scanHold(rows, &h.Hold); err != nil {
			return nil, err
		}
		if have, ok := b.holds[h.ID]; ok {
			h = have
		} else {
			b.holds[h.ID] = h
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

// inChunks calls fn with ids in groups small enough for any engine's limit
// on bound parameters, and the SQL condition that matches a group against
// column: "column IN (?, ...)" on SQLite, "column = ANY(?)" with one array
// parameter on PostgreSQL (one statement text, planned once, whatever the
// batch).
func (b *batch) inChunks(column string, ids []string, fn func(cond string, args []any) error) error {
	if len(ids) == 0 {
		return nil
	}
	if b.l.db.Dialect == store.Postgres {
		return fn(column+" = ANY(?::text[])", []any{ids})
	}
	const chunk = 500
	args := make([]any, 0, min(len(ids), chunk))
	for i := 0; i < len(ids); i += chunk {
		args = args[:0]
		for _, v := range ids[i:min(i+chunk, len(ids))] {
			args = append(args, v)
		}
		if err := fn(column+" IN ("+store.Placeholders(len(args), 1)+")", args); err != nil {
			return err
		}
	}
	return nil
}

// apply decides one write against the batch's state. A write either fails,
// leaving the state as it found it, or succeeds and queues its rows.
func (b *batch) apply(o *op) {
	if o.kind == opExpire {
		o.res, o.err = b.expire(o.req.(expireReq))
		return
	}
	if p, ok := b.applied[o.key]; ok {
		// The kind too: an increment and a post of one hold by one amount
		// hash alike.
		if p.hash != o.hash || p.kind != o.kind {
			o.err = errors.New(errors.Conflict, "idempotency key already used for a different request")
			return
		}
		o.res = cloneResult(p.res) // each caller its own, as over HTTP
		return
	}
	if p, ok := b.priors[o.key]; ok {
		if p.hash != o.hash || p.kind != opKinds[o.kind] {
			o.err = errors.New(errors.Conflict, "idempotency key already used for a different request")
			return
		}
		o.res, o.err = p.replay(o.key)
		return
	}
	switch r := o.req.(type) {
	case *CreateAccountRequest:
		o.res, o.err = b.open(o, r)
	case *CloseAccountRequest:
		o.res, o.err = b.close(o, r)
	case *TransferRequest:
		o.res, o.err = b.transfer(o, r)
	case *PlaceHoldRequest:
		o.res, o.err = b.place(o, r)
	case *IncrementHoldRequest:
		o.res, o.err = b.increment(o, r)
	case *PostHoldRequest:
		o.res, o.err = b.post(o, r)
	case *VoidHoldRequest:
		o.res, o.err = b.void(o, r.HoldID, KindHoldVoid)
	}
	if o.err == nil {
		b.applied[o.key] = o
	}
}

// replay rebuilds the original result of a stored write.
func (p *prior) replay(key string) (any, error) {
	switch p.kind {
	case KindAccountOpen, KindAccountClose:
		a := new(Account)
		if err := json.Unmarshal([]byte(p.result), a); err != nil {
			return nil, errors.Wrap(err, errors.Internal, "stored result unreadable")
		}
		return a, nil
	case KindTransfer:
		t := &Transfer{ID: p.id, Key: key, Kind: p.kind, Forced: p.forced, At: time.Unix(0, p.at).UTC()}
		if err := decodeLegsMeta(p.legs, p.metadata, t); err != nil {
			return nil, err
		}
		return t, nil
	default:
		h := new(Hold)
		if err := json.Unmarshal([]byte(p.result), h); err != nil {
			return nil, errors.Wrap(err, errors.Internal, "stored result unreadable")
		}
		return h, nil
	}
}

func (b *batch) account(id string) (*acct, error) {
	a, ok := b.accounts[id]
	if !ok {
		return nil, notFoundErr("account", id)
	}
	return a, nil
}

func (b *batch) openAccount(id string, c money.Currency) (*acct, error) {
	a, err := b.account(id)
	if err != nil {
		return nil, err
	}
	if a.Status != StatusOpen {
		return nil, errors.Errorf(errors.AccountClosed, "account %s is closed", id)
	}
	if a.Currency != c {
		return nil, errors.Errorf(errors.CurrencyMismatch, "account %s holds %s, not %s", id, a.Currency, c)
	}
	return a, nil
}

func (b *batch) hold(id string) (*holdState, error) {
	h, ok := b.holds[id]
	if !ok {
		return nil, notFoundErr("hold", id)
	}
	return h, nil
}

func (b *batch) pendingHold(id string) (*holdState, error) {
	h, err := b.hold(id)
	if err != nil {
		return nil, err
	}
	if h.Status != HoldPending {
		return nil, errors.Errorf(errors.Conflict, "hold %s is %s", id, h.Status)
	}
	return h, nil
}

func (b *batch) open(o *op, r *CreateAccountRequest) (any, error) {
	a := &acct{Account: Account{
		ID: id.New("acc_", b.now), Currency: r.Currency, Owner: r.Owner,
		Rule: r.Rule, OverdraftLimit: r.OverdraftLimit, Status: StatusOpen, CreatedAt: b.now,
	}, dirty: true}
	b.accounts[a.ID] = a
	res := a.Account
	b.record(o, transferRow{kind: KindAccountOpen, accountID: a.ID, result: mustJSON(res)}, &res, TopicAccountCreated, a.ID)
	return &res, nil
}

func (b *batch) close(o *op, r *CloseAccountRequest) (any, error) {
	a, err := b.account(r.AccountID)
	if err != nil {
		return nil, err
	}
	if a.Status != StatusOpen {
		return nil, errors.Errorf(errors.Conflict, "account %s is already closed", a.ID)
	}
	if a.posted != 0 || a.pending != 0 {
		return nil, errors.Errorf(errors.Conflict, "account %s has a non-zero balance", a.ID)
	}
	a.Status, a.dirty = StatusClosed, true
	res := a.Account
	b.record(o, transferRow{kind: KindAccountClose, accountID: a.ID, result: mustJSON(res)}, &res, TopicAccountClosed, a.ID)
	return &res, nil
}

// change is a proposed new (posted, pending) for an account, checked before
// any is applied so a write is all or nothing.
type change struct {
	a                *acct
	posted, pending  int64 // deltas
	newPost, newPend int64
}

func (c *change) compute() error {
	var err error
	if c.newPost, err = money.Add(c.a.posted, c.posted); err != nil {
		return errors.Errorf(errors.BadRequest, "balance of %s would overflow", c.a.ID)
	}
	if c.newPend, err = money.Add(c.a.pending, c.pending); err != nil {
		return errors.Errorf(errors.BadRequest, "pending balance of %s would overflow", c.a.ID)
	}
	return nil
}

// check computes changes and tests each account's rule. It returns whether
// a rule had to be overridden by force.
func check(force bool, cs ...*change) (forced bool, err error) {
	for _, c := range cs {
		if err := c.compute(); err != nil {
			return false, err
		}
		if !c.a.allows(c.newPost, c.newPend) {
			if !force {
				return false, errors.Errorf(errors.InsufficientFunds, "insufficient funds in account %s", c.a.ID)
			}
			forced = true
		}
	}
	return forced, nil
}

// commitChanges applies checked changes and queues their entries.
func (b *batch) commitChanges(transferID string, kind Kind, cs ...*change) {
	for _, c := range cs {
		if c.posted == 0 && c.pending == 0 {
			continue // nothing changes: no entry (voiding a hold already drawn down to zero)
		}
		a := c.a
		a.posted, a.pending, a.dirty = c.newPost, c.newPend, true
		a.lastSeq++
		a.lastAt = b.nowNS
		b.entries = append(b.entries, entryRow{
			accountID: a.ID, transferID: transferID, seq: a.lastSeq, kind: kind,
			posted: c.posted, pending: c.pending, postedAfter: a.posted, pendingAfter: a.pending, at: b.nowNS,
		})
	}
}

func (b *batch) transfer(o *op, r *TransferRequest) (any, error) {
	cs := make([]*change, len(r.Legs))
	for i, leg := range r.Legs {
		a, err := b.openAccount(leg.AccountID, leg.Currency)
		if err != nil {
			return nil, err
		}
		cs[i] = &change{a: a, posted: leg.Amount}
	}
	forced, err := check(r.Force, cs...)
	if err != nil {
		return nil, err
	}
	t := &Transfer{ID: id.New("trf_", b.now), Key: o.key, Kind: KindTransfer, Legs: r.Legs, Forced: forced, Metadata: r.Metadata, At: b.now}
	b.commitChanges(t.ID, KindTransfer, cs...)
	b.record(o, transferRow{id: t.ID, kind: KindTransfer, forced: forced, legs: mustJSON(r.Legs), metadata: metaJSON(r.Metadata)},
		ChangeEvent{Transfer: *t}, TopicTransfer, r.Legs[0].AccountID)
	return t, nil
}

func (b *batch) place(o *op, r *PlaceHoldRequest) (any, error) {
	a, err := b.openAccount(r.AccountID, r.Currency)
	if err != nil {
		return nil, err
	}
	if _, err := b.openAccount(r.Destination, r.Currency); err != nil {
		return nil, err
	}
	c := &change{a: a, pending: r.Amount}
	forced, err := check(r.Force, c)
	if err != nil {
		return nil, err
	}
	h := &holdState{Hold: Hold{
		ID: id.New("hld_", b.now), AccountID: a.ID, Destination: r.Destination, Currency: r.Currency,
		Amount: r.Amount, Authorized: r.Amount, Status: HoldPending, ExpiresAt: r.ExpiresAt.UTC(),
		Metadata: r.Metadata, CreatedAt: b.now, UpdatedAt: b.now,
	}, dirty: true}
	b.holds[h.ID] = h
	return b.holdWrite(o, h, KindHoldPlace, forced, nil, r.Metadata, c), nil
}

func (b *batch) increment(o *op, r *IncrementHoldRequest) (any, error) {
	h, err := b.pendingHold(r.HoldID)
	if err != nil {
		return nil, err
	}
	a, err := b.openAccount(h.AccountID, h.Currency)
	if err != nil {
		return nil, err
	}
	c := &change{a: a, pending: r.Amount}
	forced, err := check(r.Force, c)
	if err != nil {
		return nil, err
	}
	amt, err1 := money.Add(h.Amount, r.Amount)
	auth, err2 := money.Add(h.Authorized, r.Amount)
	if err1 != nil || err2 != nil || auth > money.MaxAmount {
		return nil, badf("hold %s would exceed the maximum amount", h.ID)
	}
	h.Amount, h.Authorized, h.dirty, h.UpdatedAt = amt, auth, true, b.now
	if !r.ExpiresAt.IsZero() {
		h.ExpiresAt = r.ExpiresAt.UTC()
	}
	return b.holdWrite(o, h, KindHoldIncr, forced, nil, nil, c), nil
}

func (b *batch) post(o *op, r *PostHoldRequest) (any, error) {
	h, err := b.pendingHold(r.HoldID)
	if err != nil {
		return nil, err
	}
	src, err := b.openAccount(h.AccountID, h.Currency)
	if err != nil {
		return nil, err
	}
	dst, err := b.openAccount(h.Destination, h.Currency)
	if err != nil {
		return nil, err
	}
	release := h.Amount
	if r.KeepOpen {
		release = min(r.Amount, h.Amount)
	}
	cs := []*change{{a: src, posted: -r.Amount, pending: -release}, {a: dst, posted: r.Amount}}
	forced, err := check(r.Force, cs...)
	if err != nil {
		return nil, err
	}
	posted, err := money.Add(h.Posted, r.Amount)
	if err != nil {
		return nil, badf("hold %s would exceed the maximum amount", h.ID)
	}
	h.Posted, h.Amount, h.dirty, h.UpdatedAt = posted, h.Amount-release, true, b.now
	if !r.KeepOpen {
		h.Status = HoldPosted
	}
	legs := []Leg{{AccountID: src.ID, Amount: -r.Amount, Currency: h.Currency}, {AccountID: dst.ID, Amount: r.Amount, Currency: h.Currency}}
	return b.holdWrite(o, h, KindHoldPost, forced, legs, r.Metadata, cs...), nil
}

func (b *batch) void(o *op, id string, kind Kind) (any, error) {
	h, err := b.pendingHold(id)
	if err != nil {
		return nil, err
	}
	a, err := b.account(h.AccountID)
	if err != nil {
		return nil, err
	}
	c := &change{a: a, pending: -h.Amount}
	if _, err := check(true, c); err != nil {
		return nil, err
	}
	h.Amount, h.dirty, h.UpdatedAt = 0, true, b.now
	h.Status = HoldVoided
	if kind == KindHoldExpire {
		h.Status = HoldExpired
	}
	return b.holdWrite(o, h, kind, false, nil, nil, c), nil
}

// expire releases the loaded holds that are due, in expiry order.
func (b *batch) expire(r expireReq) (any, error) {
	out := []Hold{}
	due := r.asOf.UnixNano()
	for _, h := range b.expiring {
		if len(out) == r.limit {
			break
		}
		if h.Status != HoldPending || h.ExpiresAt.UnixNano() > due {
			continue
		}
		o := &op{kind: opExpire, key: reservedPrefix + "expire:" + h.ID}
		res, err := b.void(o, h.ID, KindHoldExpire)
		if err != nil {
			return nil, err
		}
		out = append(out, *res.(*Hold))
	}
	return out, nil
}

// holdWrite applies a hold write's balance changes and records it.
func (b *batch) holdWrite(o *op, h *holdState, kind Kind, forced bool, legs []Leg, meta map[string]string, cs ...*change) *Hold {
	tid := id.New("trf_", b.now)
	b.commitChanges(tid, kind, cs...)
	res := h.Hold
	res.Metadata = maps.Clone(h.Metadata)
	t := Transfer{ID: tid, Key: o.key, Kind: kind, Legs: legs, HoldID: h.ID, Forced: forced, Metadata: meta, At: b.now}
	legsJSON := ""
	if legs != nil {
		legsJSON = mustJSON(legs)
	}
	b.record(o, transferRow{id: tid, kind: kind, holdID: h.ID, accountID: h.AccountID, forced: forced, legs: legsJSON, metadata: metaJSON(meta), result: mustJSON(res)},
		ChangeEvent{Transfer: t, Hold: &res}, TopicFor(kind), h.AccountID)
	return &res
}

// record queues a write's journal row and its event.
func (b *batch) record(o *op, row transferRow, payload any, topic, eventKey string) {
	if row.id == "" {
		row.id = id.New("trf_", b.now)
	}
	row.key, row.hash, row.at = o.key, o.hash, b.nowNS
	b.transfers = append(b.transfers, row)
	b.events = append(b.events, event.Event{Topic: topic, Key: eventKey, Time: b.now, Payload: []byte(mustJSON(payload))})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("ledger: marshal %T: %v", v, err))
	}
	return string(b)
}

func metaJSON(m map[string]string) string {
	if len(m) == 0 {
		return ""
	}
	return mustJSON(m)
}

func decodeLegsMeta(legs, meta string, t *Transfer) error {
	if legs != "" {
		if err := json.Unmarshal([]byte(legs), &t.Legs); err != nil {
			return errors.Wrap(err, errors.Internal, "stored legs unreadable")
		}
	}
	if meta != "" {
		if err := json.Unmarshal([]byte(meta), &t.Metadata); err != nil {
			return errors.Wrap(err, errors.Internal, "stored metadata unreadable")
		}
	}
	return nil
}

// statements are the ledger's prepared writes.
type statements struct {
	transfers, entries, holds, accounts *store.Inserter
	outbox                              *event.Outbox
}

func prepareStatements(ctx context.Context, db *store.DB) (_ *statements, err error) {
	var s statements
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.outbox, err = event.PrepareOutbox(ctx, db); err != nil {
		return nil, err
	}
	// On SQLite, OR ROLLBACK: a multi-row INSERT that could stop midway
	// (ABORT, the default) makes SQLite copy every page it changes into a
	// statement journal first, 14% of the committer's CPU. A group never
	// goes on after a failed statement anyway: it fails whole.
	insert := "INSERT INTO"
	if db.Dialect == store.SQLite {
		insert = "INSERT OR ROLLBACK INTO"
	}
	if s.transfers, err = store.PrepareInserter(ctx, db, insert+` transfers (id, key, req_hash, kind, hold_id, account_id, forced, legs, metadata, result, at)`, "", 11); err != nil {
		return nil, err
	}
	if s.entries, err = store.PrepareInserter(ctx, db, insert+` entries (account_id, seq, transfer_id, kind, posted, pending, posted_after, pending_after, at)`, "", 9); err != nil {
		return nil, err
	}
	if s.holds, err = store.PrepareInserter(ctx, db, insert+` holds (`+holdCols+`)`,
		` ON CONFLICT (id) DO UPDATE SET amount = excluded.amount, authorized = excluded.authorized, posted = excluded.posted, status = excluded.status, expires_at = excluded.expires_at, updated_at = excluded.updated_at`, 12); err != nil {
		return nil, err
	}
	if s.accounts, err = store.PrepareInserter(ctx, db, insert+` accounts (`+acctCols+`)`,
		` ON CONFLICT (id) DO UPDATE SET status = excluded.status, posted = excluded.posted, pending = excluded.pending, last_seq = excluded.last_seq, last_at = excluded.last_at`, 11); err != nil {
		return nil, err
	}
	return &s, nil
}

func (s *statements) close() {
	for _, i := range []*store.Inserter{s.transfers, s.entries, s.holds, s.accounts} {
		if i != nil {
			i.Close()
		}
	}
	if s.outbox != nil {
		s.outbox.Close()
	}
}

// write stores the batch's rows with a few multi-row statements.
func (b *batch) write(ctx context.Context) error {
	if err := b.l.ins.transfers.Exec(ctx, b.tx, len(b.transfers), func(i int, args []any) []any {
		r := &b.transfers[i]
		return append(args, r.id, r.key, []byte(r.hash), string(r.kind), r.holdID, r.accountID, r.forced, r.legs, r.metadata, r.result, r.at)
	}); err != nil {
		return err
	}
	if err := b.l.ins.entries.Exec(ctx, b.tx, len(b.entries), func(i int, args []any) []any {
		e := &b.entries[i]
		return append(args, e.accountID, e.seq, e.transferID, string(e.kind), e.posted, e.pending, e.postedAfter, e.pendingAfter, e.at)
	}); err != nil {
		return err
	}
	var holds []*holdState
	for _, h := range b.holds {
		if h.dirty {
			holds = append(holds, h)
		}
	}
	slices.SortFunc(holds, func(x, y *holdState) int { return strings.Compare(x.ID, y.ID) })
	if err := b.l.ins.holds.Exec(ctx, b.tx, len(holds), func(i int, args []any) []any {
		h := holds[i]
		return append(args, h.ID, h.AccountID, h.Destination, string(h.Currency), h.Amount, h.Authorized, h.Posted, string(h.Status), h.ExpiresAt.UnixNano(), metaJSON(h.Metadata), h.CreatedAt.UnixNano(), h.UpdatedAt.UnixNano())
	}); err != nil {
		return err
	}
	var accts []*acct
	for _, a := range b.accounts {
		if a.dirty {
			accts = append(accts, a)
		}
	}
	slices.SortFunc(accts, func(x, y *acct) int { return strings.Compare(x.ID, y.ID) })
	if err := b.l.ins.accounts.Exec(ctx, b.tx, len(accts), func(i int, args []any) []any {
		a := accts[i]
		return append(args, a.ID, string(a.Currency), a.Owner, string(a.Rule), a.OverdraftLimit, string(a.Status), a.posted, a.pending, a.lastSeq, a.lastAt, a.CreatedAt.UnixNano())
	}); err != nil {
		return err
	}
	return b.l.ins.outbox.Append(ctx, b.tx, b.events...)
}

// cloneResult copies a write's result, with its slices and maps.
func cloneResult(res any) any {
	switch r := res.(type) {
	case *Transfer:
		c := *r
		c.Legs, c.Metadata = slices.Clone(r.Legs), maps.Clone(r.Metadata)
		return &c
	case *Hold:
		c := *r
		c.Metadata = maps.Clone(r.Metadata)
		return &c
	case *Account:
		c := *r
		return &c
	}
	return res
}
