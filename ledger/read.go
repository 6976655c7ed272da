package ledger

import (
	"context"
	"database/sql"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/internal/ascii"
	"github.com/corebank/corebank/money"
)

const acctCols = `id, currency, owner, rule, overdraft_limit, status, posted, pending, last_seq, last_at, created_at`

const holdCols = `id, account_id, destination, currency, amount, authorized, posted, status, expires_at, metadata, created_at, updated_at`

type scanner interface{ Scan(...any) error }

func scanAcct(s scanner, a *acct) error {
	var created int64
	if err := s.Scan(&a.ID, &a.Currency, &a.Owner, &a.Rule, &a.OverdraftLimit, &a.Status, &a.posted, &a.pending, &a.lastSeq, &a.lastAt, &created); err != nil {
		return err
	}
	a.CreatedAt = time.Unix(0, created).UTC()
	return nil
}

func scanHold(s scanner, h *Hold) error {
	var expires, created, updated int64
	var meta string
	if err := s.Scan(&h.ID, &h.AccountID, &h.Destination, &h.Currency, &h.Amount, &h.Authorized, &h.Posted, &h.Status, &expires, &meta, &created, &updated); err != nil {
		return err
	}
	h.ExpiresAt, h.CreatedAt, h.UpdatedAt = time.Unix(0, expires).UTC(), time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	if meta != "" {
		var t Transfer
		if err := decodeLegsMeta("", meta, &t); err != nil {
			return err
		}
		h.Metadata = t.Metadata
	}
	return nil
}

func notFound(err error, what, id string) error {
	if errors.IsErr(err, sql.ErrNoRows) {
		return notFoundErr(what, id)
	}
	return errors.Wrap(err, errors.Unavailable, "ledger read failed")
}

// notFoundErr says that no what has id, with any card number in the id (a
// caller that put one where an id goes) masked: the message reaches
// answers, logs and spans.
func notFoundErr(what, id string) error {
	return errors.Errorf(errors.NotFound, "%s %s not found", what, ascii.MaskCardNumbers(id))
}

func (l *Ledger) getAcct(ctx context.Context, id string) (*acct, error) {
	if err := checkID("account_id", id); err != nil {
		return nil, err
	}
	a := new(acct)
	row := l.db.Read.QueryRowContext(ctx, l.db.Rebind(`SELECT `+acctCols+` FROM accounts WHERE id = ?`), id)
	if err := scanAcct(row, a); err != nil {
		return nil, notFound(err, "account", id)
	}
	return a, nil
}

// GetAccount implements Service.
func (l *Ledger) GetAccount(ctx context.Context, id string) (*Account, error) {
	a, err := l.getAcct(ctx, id)
	if err != nil {
		return nil, err
	}
	return &a.Account, nil
}

// GetHold implements Service.
func (l *Ledger) GetHold(ctx context.Context, id string) (*Hold, error) {
	if err := checkID("hold_id", id); err != nil {
		return nil, err
	}
	h := new(Hold)
	row := l.db.Read.QueryRowContext(ctx, l.db.Rebind(`SELECT `+holdCols+` FROM holds WHERE id = ?`), id)
	if err := scanHold(row, h); err != nil {
		return nil, notFound(err, "hold", id)
	}
	return h, nil
}

// GetTransfer implements Service.
func (l *Ledger) GetTransfer(ctx context.Context, id string) (*Transfer, error) {
	if err := checkID("transfer_id", id); err != nil {
		return nil, err
	}
	t := &Transfer{ID: id}
	var legs, meta string
	var at int64
	row := l.db.Read.QueryRowContext(ctx, l.db.Rebind(`SELECT key, kind, hold_id, forced, legs, metadata, at FROM transfers WHERE id = ?`), id)
	if err := row.Scan(&t.Key, &t.Kind, &t.HoldID, &t.Forced, &legs, &meta, &at); err != nil {
		return nil, notFound(err, "transfer", id)
	}
	t.At = time.Unix(0, at).UTC()
	if err := decodeLegsMeta(legs, meta, t); err != nil {
		return nil, err
	}
	return t, nil
}

// Balance implements Service.
func (l *Ledger) Balance(ctx context.Context, accountID string, asOf time.Time) (*Balance, error) {
	if err := checkAsOf(asOf); err != nil {
		return nil, err
	}
	a, err := l.getAcct(ctx, accountID)
	if err != nil {
		return nil, err
	}
	b := &Balance{AccountID: a.ID, Currency: a.Currency, Posted: a.posted, Pending: a.pending, AsOf: l.cfg.Now().UTC()}
	if !asOf.IsZero() && asOf.UnixNano() < a.lastAt {
		b.AsOf = asOf.UTC()
		// The newest entry at or before asOf carries the running balances.
		b.Posted, b.Pending, err = l.entryAsOf(ctx, a, asOf.UnixNano())
		if err != nil {
			return nil, errors.Wrap(err, errors.Unavailable, "ledger read failed")
		}
	} else if !asOf.IsZero() {
		b.AsOf = asOf.UTC() // at or after the newest entry: the balance now
	}
	b.Available = money.SatSub(b.Posted, b.Pending)
	if a.Rule == RuleLimit {
		b.Available = money.SatAdd(b.Available, a.OverdraftLimit)
	}
	return b, nil
}

// entryAsOf returns the running balances after a's newest entry at or
// before asOf (unix nanoseconds), or zeros if there is none: a binary search over the account's
// entries by seq, one primary-key read per step, so that a balance long ago
// on an account with millions of entries (a settlement account) costs
// about twenty reads, not a scan of everything since. It relies on each
// account's entries' times following their seqs, which the group commit
// keeps (accounts.last_at).
func (l *Ledger) entryAsOf(ctx context.Context, a *acct, asOf int64) (posted, pending int64, err error) {
	lo, hi := int64(0), a.lastSeq // entry lo is at or before asOf (0: none); entries after hi are after it
	for lo < hi {
		mid := hi - (hi-lo)/2 // in (lo, hi]
		var at, p, q int64
		if err := l.db.Read.QueryRowContext(ctx, l.db.Rebind(`SELECT at, posted_after, pending_after FROM entries WHERE account_id = ? AND seq = ?`), a.ID, mid).Scan(&at, &p, &q); err != nil {
			return 0, 0, err
		}
		if at <= asOf {
			lo, posted, pending = mid, p, q
		} else {
			hi = mid - 1
		}
	}
	return posted, pending, nil
}

// History implements Service.
func (l *Ledger) History(ctx context.Context, req HistoryRequest) (*HistoryPage, error) {
	if req.Limit == 0 {
		req.Limit = 50
	}
	if req.Limit < 1 || req.Limit > 500 {
		return nil, badf("limit must be between 1 and 500")
	}
	if req.Before < 0 {
		return nil, badf("before must not be negative")
	}
	if _, err := l.getAcct(ctx, req.AccountID); err != nil {
		return nil, err
	}
	before := req.Before
	if before == 0 {
		before = 1<<63 - 1
	}
	rows, err := l.db.Read.QueryContext(ctx, l.db.Rebind(`SELECT seq, transfer_id, kind, posted, pending, posted_after, pending_after, at FROM entries WHERE account_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?`), req.AccountID, before, req.Limit+1)
	if err != nil {
		return nil, errors.Wrap(err, errors.Unavailable, "ledger read failed")
	}
	defer rows.Close()
	page := &HistoryPage{Entries: make([]Entry, 0, req.Limit)}
	for rows.Next() {
		e := Entry{AccountID: req.AccountID}
		var at int64
		if err := rows.Scan(&e.Seq, &e.TransferID, &e.Kind, &e.Posted, &e.Pending, &e.PostedAfter, &e.PendingAfter, &at); err != nil {
			return nil, errors.Wrap(err, errors.Unavailable, "ledger read failed")
		}
		e.At = time.Unix(0, at).UTC()
		page.Entries = append(page.Entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, errors.Wrap(err, errors.Unavailable, "ledger read failed")
	}
	if len(page.Entries) > req.Limit {
		page.Entries = page.Entries[:req.Limit]
		page.NextBefore = page.Entries[req.Limit-1].Seq
	}
	return page, nil
}
