package authorization

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/money"
)

// undo is a ledger operation owed back (table undos, migration 008): what
// this process's ledger call did for a record another process finished
// differently. op is opVoid (ledger.VoidHold of holdID) or opRefund
// (ledger.Transfer of amount from target back to accountID).
type undo struct {
	key, authorizationID, op, holdID, accountID, target string
	currency                                            money.Currency
	amount                                              int64
}

// owed returns the undo owed for f, the record this process was about to
// finish, against what is recorded (the other process's outcome): its hold
// or 0200 transfer when the record names another or none. Nil when nothing
// is owed. An increment is not undone: the ledger has no decrement (known
// limit, docs/authorization.md).
func owed(f, recorded *record) *undo {
	u := &undo{key: f.opKey + ":undo", authorizationID: f.ID, accountID: f.AccountID,
		target: f.opTarget, currency: f.Currency, amount: f.opAmount}
	switch {
	case f.op == opPlace && f.HoldID != "" && recorded.HoldID != f.HoldID:
		u.op, u.holdID = opVoid, f.HoldID
	case f.op == opTransfer && f.TransferID != "" && recorded.TransferID != f.TransferID:
		u.op = opRefund
	default:
		return nil
	}
	return u
}

// owe records u in tx (the transaction that found the record finished
// differently), once per key.
func (a *Authorizer) owe(ctx context.Context, tx *sql.Tx, u *undo) error {
	_, err := tx.ExecContext(ctx, a.db.Rebind(`INSERT INTO undos (ledger_key, authorization_id, op, hold_id, account_id, target, amount, currency, queued_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		u.key, u.authorizationID, u.op, u.holdID, u.accountID, u.target, u.amount, u.currency, a.cfg.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("authorization: record the undo of %s: %w", u.authorizationID, err)
	}
	return nil
}

// runUndo carries out u under its own idempotency key and, once the ledger
// has done it, or refused it for good because the hold is no longer
// pending (expired, or voided already), removes it. Any other failure
// leaves it for RecoverUndos.
func (a *Authorizer) runUndo(ctx context.Context, u *undo) error {
	var err error
	switch u.op {
	case opVoid:
		var st ledger.HoldStatus
		st, _, err = a.voidHold(ctx, u.key, u.holdID)
		switch {
		case err != nil:
		case st == ledger.HoldPending:
			err = errors.Errorf(errors.Conflict, "the ledger refuses to void hold %s, still pending", u.holdID)
		case st == ledger.HoldPosted:
			// Nothing held any more, but posted by clearing: money the
			// network took. An operator must look; the row cannot say
			// more.
			a.cfg.Log.ErrorContext(ctx, "authorization: a hold owed back was posted before it could be voided",
				"authorization_id", u.authorizationID, "hold_id", u.holdID)
		}
	case opRefund:
		_, err = a.giveBack(ctx, u.key, u.target, u.accountID, u.amount, u.currency,
			map[string]string{"authorization_id": u.authorizationID})
	default:
		return errors.Errorf(errors.Internal, "authorization: undo %s: unknown operation %q", u.key, u.op)
	}
	if err != nil {
		return fmt.Errorf("authorization: undo %s: %w", u.key, err)
	}
	return a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, a.db.Rebind(`DELETE FROM undos WHERE ledger_key = ?`), u.key)
		return err
	})
}

// RecoverUndos carries out the undos (see owe) recorded at least olderThan
// ago, oldest first, and returns how many it carried out. One that fails
// is left for the next run, and the first failure is returned after the
// others have been tried.
func (a *Authorizer) RecoverUndos(ctx context.Context, olderThan time.Duration) (int, error) {
	list := func(limit int) ([]*undo, error) {
		return a.undos(ctx, a.cfg.Now().Add(-olderThan).UnixNano(), limit)
	}
	return recoverEach(list, func(u *undo) string { return u.key }, func(u *undo) error {
		if err := a.runUndo(ctx, u); err != nil {
			switch errors.CodeOf(err) {
			case errors.NotFound, errors.AccountClosed, errors.CurrencyMismatch, errors.BadRequest:
				// Refused for good (the account closed since, say):
				// kept, and said at every run, until an operator
				// settles it and deletes the row.
				a.cfg.Log.ErrorContext(ctx, "authorization: the ledger refuses an undo; an operator must settle it",
					"authorization_id", u.authorizationID, "op", u.op, "undo_key", u.key, "err", err)
			default:
				a.cfg.Log.WarnContext(ctx, "authorization: an undo failed; trying again later", "authorization_id", u.authorizationID, "err", err)
			}
			return err
		}
		a.undone.Inc()
		a.cfg.Log.InfoContext(ctx, "authorization: carried out an undo left over", "authorization_id", u.authorizationID, "op", u.op)
		return nil
	})
}

// undos returns up to limit undos recorded at or before (unix
// nanoseconds), oldest first.
func (a *Authorizer) undos(ctx context.Context, before int64, limit int) ([]*undo, error) {
	rows, err := a.db.Query(ctx, `SELECT ledger_key, authorization_id, op, hold_id, account_id, target, amount, currency
		FROM undos WHERE queued_at <= ? ORDER BY queued_at, ledger_key LIMIT ?`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("authorization: undos: %w", err)
	}
	defer rows.Close()
	var out []*undo
	for rows.Next() {
		u := new(undo)
		if err := rows.Scan(&u.key, &u.authorizationID, &u.op, &u.holdID, &u.accountID, &u.target, &u.amount, &u.currency); err != nil {
			return nil, fmt.Errorf("authorization: undos: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}
