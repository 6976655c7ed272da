package authorization

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/corebank/corebank/card"
	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/money"
	"github.com/corebank/corebank/store"
)

// Record statuses.
const (
	statusPending = "pending" // a ledger operation is under way (op_*)
	statusDone    = "done"    // decided
)

// Pending ledger operations.
const (
	opNone     = ""
	opPlace    = "place"    // ledger.PlaceHold
	opIncr     = "incr"     // ledger.IncrementHold
	opTransfer = "transfer" // ledger.Transfer

	// A reversal's: op_key is the reversal's network key, from which its
	// ledger keys derive; op_amount what its record keeps outstanding;
	// op_original the network key of that record.
	opVoid    = "void"    // ledger.VoidHold of op_target (<op_key>:void)
	opReplace = "replace" // ledger.PlaceHold of op_amount expiring at op_expires (<op_key>:hold), then VoidHold of op_target (<op_key>:void)
	opRefund  = "refund"  // ledger.Transfer of the released amount (requested) from op_target back to the account (<op_key>:refund)
)

// record is one row of authorizations: a Decision plus what the service
// needs to complete it.
type record struct {
	Decision
	networkKey  string
	originalKey string
	status      string
	op          string
	opKey       string
	opAmount    int64
	opTarget    string
	opExpires   int64
	opForce     bool
	opPartial   bool
	opOriginal  string // a reversal's: the network key of the record it changes
	replayed    bool   // read back, not made, by the call at hand (Decision.Replayed)
	txnAmount   int64  // the request's transaction amount (DE4); 0 for records before migration 007
	digest      string // Request.Digest of the request it answers; "" for reversals and records before migration 009
	origAbsent  bool   // a reversal's, not stored: computed with its original not recorded (a stand-in's)
	updatedAt   int64
}

const columns = `id, network_key, kind, acquirer, stan, rrn, transmission, original_key, original_id, status,
	approved, reason, detail, auth_code, requested, amount, outstanding, currency, card_id, account_id,
	hold_id, transfer_id, forced, mcc, channel, merchant_name, merchant_city, merchant_country,
	op, op_key, op_amount, op_target, op_expires, op_force, op_partial, op_original, at, updated_at, txn_amount, request_digest`

var insertQuery = `INSERT INTO authorizations (` + columns + `) VALUES (` + "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?" + `) ON CONFLICT DO NOTHING`

// answers reports whether r, recorded under a request's network ids,
// answers that request (of kind, billing amount requested and digest)
// rather than another under the same ids. Records from before migration
// 009 have no digest: kind and amount only.
func (r *record) answers(kind Kind, requested int64, digest string) bool {
	return r.Kind == kind && r.Requested == requested && (r.digest == "" || r.digest == digest)
}

// reverses reports whether r, recorded under a reversal's network ids, is
// that reversal: of the original at originalKey.
func (r *record) reverses(originalKey string) bool {
	return r.Kind == KindReversal && r.originalKey == originalKey
}

// anotherRequest is the conflict of a request under network ids recorded
// for another (r): it must not hear r's answer.
func anotherRequest(r *record) error {
	return errors.Errorf(errors.Conflict, "network ids already recorded for another request (%s of %d)", r.Kind, r.Requested)
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (r *record) args() []any {
	return []any{r.ID, r.networkKey, string(r.Kind), r.Network.Acquirer, r.Network.STAN, r.Network.RRN, r.Network.TransmissionTime,
		r.originalKey, r.OriginalID, r.status,
		b2i(r.Approved), string(r.Reason), r.Detail, r.AuthCode, r.Requested, r.Amount, r.Outstanding, string(r.Currency), r.CardID, r.AccountID,
		r.HoldID, r.TransferID, b2i(r.Forced), r.MCC, string(r.Channel), r.MerchantName, r.MerchantCity, r.MerchantCountry,
		r.op, r.opKey, r.opAmount, r.opTarget, r.opExpires, b2i(r.opForce), b2i(r.opPartial), r.opOriginal, r.At.UnixNano(), r.updatedAt, r.txnAmount, r.digest}
}

type scanner interface{ Scan(dest ...any) error }

func scanRecord(s scanner) (*record, error) {
	var r record
	var kind, reason, currency, channel string
	var approved, forced, opForce, opPartial, at int64
	err := s.Scan(&r.ID, &r.networkKey, &kind, &r.Network.Acquirer, &r.Network.STAN, &r.Network.RRN, &r.Network.TransmissionTime,
		&r.originalKey, &r.OriginalID, &r.status,
		&approved, &reason, &r.Detail, &r.AuthCode, &r.Requested, &r.Amount, &r.Outstanding, &currency, &r.CardID, &r.AccountID,
		&r.HoldID, &r.TransferID, &forced, &r.MCC, &channel, &r.MerchantName, &r.MerchantCity, &r.MerchantCountry,
		&r.op, &r.opKey, &r.opAmount, &r.opTarget, &r.opExpires, &opForce, &opPartial, &r.opOriginal, &at, &r.updatedAt, &r.txnAmount, &r.digest)
	if err != nil {
		return nil, err
	}
	r.Kind, r.Reason, r.Currency, r.Channel = Kind(kind), Reason(reason), money.Currency(currency), card.Channel(channel)
	r.Approved, r.Forced, r.opForce, r.opPartial = approved != 0, forced != 0, opForce != 0, opPartial != 0
	r.At = time.Unix(0, at).UTC()
	if r.originalKey != "" {
		n, ok := parseKey(r.originalKey)
		if ok {
			r.Original = &n
		}
	}
	return &r, nil
}

// parseKey inverts NetworkID.Key.
func parseKey(k string) (NetworkID, bool) {
	var parts [5]string
	i := 0
	start := 0
	for j := 0; j < len(k) && i < 4; j++ {
		if k[j] == ':' {
			parts[i] = k[start:j]
			i++
			start = j + 1
		}
	}
	if i != 4 || parts[0] != "auth" {
		return NetworkID{}, false
	}
	parts[4] = k[start:]
	return NetworkID{Acquirer: parts[1], TransmissionTime: parts[2], STAN: parts[3], RRN: parts[4]}, true
}

// decision returns the record's Decision, detached from the record.
func (r *record) decision() *Decision {
	d := r.Decision
	d.Replayed = r.replayed
	if r.Original != nil {
		o := *r.Original
		d.Original = &o
	}
	return &d
}

// find returns the record of a network key, or nil.
func (a *Authorizer) find(ctx context.Context, networkKey string) (*record, error) {
	r, err := scanRecord(a.db.QueryRow(ctx, `SELECT `+columns+` FROM authorizations WHERE network_key = ?`, networkKey))
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authorization: find %s: %w", networkKey, err)
	}
	return r, nil
}

// byID returns the record with id, or nil if there is none.
func (a *Authorizer) byID(ctx context.Context, id string) (*record, error) {
	r, err := scanRecord(a.db.QueryRow(ctx, `SELECT `+columns+` FROM authorizations WHERE id = ?`, id))
	if errors.IsErr(err, errNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("authorization: read %s: %w", id, err)
	}
	return r, nil
}

// byReference returns up to two decided, approved records of a card with
// an RRN and auth code that stand on their own: not reversals, and not
// records building on an original (incrementals, confirming advices). The
// auth code is the record's, or the network's on an advice confirming it.
// Served by the authorizations_reference index.
func (a *Authorizer) byReference(ctx context.Context, q ReferenceQuery) ([]*record, error) {
	// The code is the record's own, or the network's on a stand-in advice
	// that confirmed it (the network answered the merchant with its code,
	// and its clearing carries that one).
	rows, err := a.db.Query(ctx, `SELECT `+columns+` FROM authorizations
		WHERE card_id = ? AND rrn = ? AND status = 'done' AND approved = 1 AND kind <> ? AND original_id = ''
		AND (auth_code = ? OR id IN (SELECT original_id FROM authorizations
			WHERE card_id = ? AND auth_code = ? AND kind = 'advice' AND detail = '`+detailConfirms+`'))
		ORDER BY at, id LIMIT 2`, q.CardID, q.RRN, string(KindReversal), q.AuthCode, q.CardID, q.AuthCode)
	if err != nil {
		return nil, fmt.Errorf("authorization: by reference: %w", err)
	}
	defer rows.Close()
	var out []*record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("authorization: by reference: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("authorization: by reference: %w", err)
	}
	return out, nil
}

// Statements the group commit runs on the writer's connection, prepared
// once at Open: a single SQLite writer cannot prepare inside a transaction,
// and the checks run there read pages the writer has in its cache.
const (
	// Reversals of a key recorded, and queued (reversal_queue); and the
	// network's advices of it on the same card: a stand-in that holds (or
	// is being applied), or a decline in stand-in of the same amount. One
	// statement: it runs in every decision's gate, in the group commit.
	reversedQuery = `SELECT (SELECT COUNT(*) FROM authorizations WHERE original_key = ? AND kind = ?)
		+ (SELECT COUNT(*) FROM reversal_queue WHERE original_key = ?),
		(SELECT COUNT(*) FROM authorizations WHERE original_key = ? AND kind = 'advice' AND card_id = ?
			AND (status = 'pending' OR (approved = 1 AND hold_id <> '') OR (reason = 'network_declined' AND requested = ?)))`
	// The network's reversals of a key: those not the gateway's own
	// (recorded with detail "own").
	networkReversedQuery = `SELECT COUNT(*) FROM authorizations WHERE kind = 'reversal' AND original_key = ? AND ` + notOwn
	queueQuery           = `INSERT INTO reversal_queue (network_key, original_key, request, queued_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`
	unqueueQuery         = `DELETE FROM reversal_queue WHERE network_key = ?`
	finishQuery          = `UPDATE authorizations SET status = 'done', approved = ?, reason = ?, detail = ?, auth_code = ?,
		amount = ?, outstanding = ?, hold_id = ?, transfer_id = ?, forced = ?, original_id = ?, updated_at = ?
		WHERE id = ? AND status = 'pending'`
	// A pending record counts for what its ledger operation would hold, so
	// that spend is right while the operation is under way (the decision
	// after it, another process's). An incremental's amount counts while
	// pending; once done it is in its original's outstanding. It is not
	// another payment in the velocity count.
	spentQuery = `SELECT
		CAST(COALESCE(SUM(CASE WHEN at >= ? THEN CASE WHEN status = 'pending' THEN op_amount ELSE outstanding END ELSE 0 END), 0) AS BIGINT),
		CAST(COALESCE(SUM(CASE WHEN at >= ? THEN CASE WHEN status = 'pending' THEN op_amount ELSE outstanding END ELSE 0 END), 0) AS BIGINT),
		CAST(COALESCE(SUM(CASE WHEN at >= ? AND kind <> 'incremental' THEN 1 ELSE 0 END), 0) AS BIGINT)
		FROM authorizations
		WHERE card_id = ? AND at >= ? AND (
			(status = 'done' AND approved = 1 AND outstanding > 0 AND kind IN (?,?,?,?,?))
			OR (status = 'pending' AND kind IN (?,?,?,?,?,'incremental')))`
)

// Statuses are literals in the SQL, never parameters: the partial index
// authorizations_pending is chosen by comparing a query's status with
// 'pending', and a bound status would make SQLite prepare the statement
// again whenever the value is bound (it was 40% of the spend check).

type statements struct {
	insert, reversed, spent, finish *sql.Stmt
	queue, unqueue, networkReversed *sql.Stmt
	outbox                          *event.Outbox
}

func prepare(ctx context.Context, db *store.DB) (*statements, error) {
	var st statements
	var err error
	if st.outbox, err = event.PrepareOutbox(ctx, db); err != nil {
		return nil, fmt.Errorf("authorization: %w", err)
	}
	for _, p := range []struct {
		to    **sql.Stmt
		query string
	}{{&st.insert, insertQuery}, {&st.reversed, reversedQuery}, {&st.spent, spentQuery}, {&st.finish, finishQuery},
		{&st.queue, queueQuery}, {&st.unqueue, unqueueQuery}, {&st.networkReversed, networkReversedQuery}} {
		s, err := db.Write.PrepareContext(ctx, db.Rebind(p.query))
		if err != nil {
			st.close()
			return nil, fmt.Errorf("authorization: prepare: %w", err)
		}
		*p.to = s
	}
	return &st, nil
}

func (st *statements) close() {
	for _, s := range []*sql.Stmt{st.insert, st.reversed, st.spent, st.finish, st.queue, st.unqueue, st.networkReversed} {
		if s != nil {
			s.Close()
		}
	}
	if st.outbox != nil {
		st.outbox.Close()
	}
}

// pendingByReference returns the network keys of a card's pending records
// with an RRN and auth code (served by authorizations_reference).
func (a *Authorizer) pendingByReference(ctx context.Context, q ReferenceQuery) ([]string, error) {
	rows, err := a.db.Query(ctx, `SELECT network_key FROM authorizations WHERE card_id = ? AND rrn = ? AND auth_code = ? AND status = 'pending'`,
		q.CardID, q.RRN, q.AuthCode)
	if err != nil {
		return nil, fmt.Errorf("authorization: by reference: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("authorization: by reference: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// reversedBefore reports whether a reversal of r is recorded or queued,
// and whether the network decided r in stand-in (stood): an advice of it
// on r's card that holds, or declined it for the same amount.
func (a *Authorizer) reversedBefore(ctx context.Context, tx *sql.Tx, r *record) (reversed, stood bool, err error) {
	networkKey := r.networkKey
	var n, s int
	err = tx.StmtContext(ctx, a.st.reversed).QueryRowContext(ctx, networkKey, string(KindReversal), networkKey, networkKey, r.CardID, r.Requested).Scan(&n, &s)
	if err != nil {
		return false, false, fmt.Errorf("authorization: reversals of %s: %w", networkKey, err)
	}
	return n > 0, s > 0, nil
}

// spendKinds are the kinds whose Outstanding counts as spend once decided.
// A decided incremental's amount is in its original's Outstanding.
var spendKinds = []any{string(KindPurchase), string(KindCash), string(KindPreauth), string(KindFinancial), string(KindAdvice)}

// spent totals a card's approved, unreversed spend at now: this UTC day,
// this UTC month, and the count within window (0: no window).
func (a *Authorizer) spent(ctx context.Context, tx *sql.Tx, cardID string, now time.Time, window time.Duration) (card.Spent, error) {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	win := now.Add(time.Nanosecond) // no window: nothing is in it
	if window > 0 {
		win = now.Add(-window)
	}
	from := month
	if win.Before(from) {
		from = win
	}
	args := []any{day.UnixNano(), month.UnixNano(), win.UnixNano(), cardID, from.UnixNano()}
	args = append(args, spendKinds...)
	args = append(args, spendKinds...)
	var s card.Spent
	var count int64
	err := tx.StmtContext(ctx, a.st.spent).QueryRowContext(ctx, args...).Scan(&s.Today, &s.ThisMonth, &count)
	if err != nil {
		return card.Spent{}, fmt.Errorf("authorization: spent on %s: %w", cardID, err)
	}
	s.CountInWindow = int(count)
	return s, nil
}

// insert writes a new record, with its event when it is decided, in one
// transaction. If the network key is already recorded it writes nothing and
// returns the record that is (inserted false).
//
// gate, if not nil, runs first in the same transaction: the checks that
// read this service's own records (a reversal that came first, the card's
// spend), which may turn r into a decline. Running them inside the group
// commit makes check and write one step, and reads the writer's cache.
func (a *Authorizer) insert(ctx context.Context, r *record, gate func(ctx context.Context, tx *sql.Tx, r *record) error) (got *record, inserted bool, err error) {
	err = a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if gate != nil {
			if err := gate(ctx, tx, r); err != nil {
				return err
			}
		}
		res, err := tx.StmtContext(ctx, a.st.insert).ExecContext(ctx, r.args()...)
		if err != nil {
			return fmt.Errorf("authorization: insert %s: %w", r.networkKey, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("authorization: insert %s: %w", r.networkKey, err)
		}
		if n == 0 {
			return nil
		}
		inserted = true
		if r.status == statusDone {
			return a.appendEvent(ctx, tx, r)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if !inserted {
		got, err = a.find(ctx, r.networkKey)
		if err != nil {
			return nil, false, err
		}
		if got == nil {
			return nil, false, fmt.Errorf("authorization: %s neither inserted nor found", r.networkKey)
		}
		return got, false, nil
	}
	a.notify(r)
	return r, true, nil
}

// finish marks a pending record done with its decision, applies side
// effects on its original (increments: outstanding += amount) and appends
// its event, in one transaction. If another process finished it first,
// finish returns that record and done false.
//
// An approved incremental grows its original only while the original still
// holds the hold it incremented: if a reversal has since voided or replaced
// that hold (its answer was lost and the increment left pending meanwhile),
// the increment went with it, and the incremental is recorded declined
// (original_not_found, hold_not_pending), as when its ledger call finds the
// hold gone. Incrementals are never answered before they are finished.
//
// If another process finished the record first (done false), and mayOwe is
// set, what this process's ledger call did and the record does not name
// (see owed) is recorded as owed back in the same transaction, and
// returned, for the caller to carry out (runUndo).
func (a *Authorizer) finish(ctx context.Context, r *record, mayOwe bool) (got *record, done bool, owes *undo, err error) {
	fin := *r // applied to r once committed
	fin.status = statusDone
	fin.updatedAt = a.cfg.Now().UnixNano()
	err = a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		f := fin
		got, owes = nil, nil
		grow := f.Kind == KindIncremental && f.Approved && f.OriginalID != ""
		if grow {
			var origUpdated, lastRev int64
			// (An original that is the network's stand-in advice of it is
			// reversed under the original's key, which the advice's DE90
			// names.)
			switch err := tx.QueryRowContext(ctx, a.db.Rebind(`SELECT o.updated_at, CAST(COALESCE((SELECT MAX(r.at) FROM authorizations r
				WHERE r.kind = 'reversal' AND (r.original_key = o.network_key OR (o.kind = 'advice' AND r.original_key = o.original_key))), 0) AS BIGINT)
				FROM authorizations o WHERE o.id = ? AND o.hold_id = ? AND o.outstanding > 0`),
				f.OriginalID, f.opTarget).Scan(&origUpdated, &lastRev); {
			case err == sql.ErrNoRows:
				a.declined(&f, OriginalNotFound, "hold_not_pending")
				f.HoldID, grow = "", false
			case err != nil:
				return fmt.Errorf("authorization: original of %s: %w", f.ID, err)
			default:
				// After whatever last changed the original (a reversal to
				// a new total, timed likewise), and after its reversals
				// even those that changed nothing (a clock stepped back
				// must not put the increment before them: a reversal of
				// it would count it as covered by one): their order is
				// their times'.
				f.updatedAt = max(f.updatedAt, origUpdated+1, lastRev+1)
			}
		}
		res, err := tx.StmtContext(ctx, a.st.finish).ExecContext(ctx,
			b2i(f.Approved), string(f.Reason), f.Detail, f.AuthCode, f.Amount, f.Outstanding, f.HoldID, f.TransferID, b2i(f.Forced),
			f.OriginalID, f.updatedAt, f.ID)
		if err != nil {
			return fmt.Errorf("authorization: finish %s: %w", r.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("authorization: finish %s: %w", r.ID, err)
		}
		if n == 0 {
			// Finished by another process: its record is the answer.
			recorded, err := scanRecord(tx.QueryRowContext(ctx, a.db.Rebind(`SELECT `+columns+` FROM authorizations WHERE id = ?`), f.ID))
			if err != nil {
				return fmt.Errorf("authorization: finish %s: %w", r.ID, err)
			}
			got = recorded
			if mayOwe {
				if owes = owed(&f, recorded); owes != nil {
					return a.owe(ctx, tx, owes)
				}
			}
			return nil
		}
		done = true
		if grow {
			if _, err := tx.ExecContext(ctx, a.db.Rebind(`UPDATE authorizations SET outstanding = outstanding + ?, hold_id = ?, updated_at = ? WHERE id = ?`),
				f.Amount, f.HoldID, f.updatedAt, f.OriginalID); err != nil {
				return fmt.Errorf("authorization: grow %s: %w", f.OriginalID, err)
			}
		}
		fin = f
		return a.appendEvent(ctx, tx, &f)
	})
	if err != nil {
		return nil, false, nil, err
	}
	if !done {
		return got, false, owes, nil
	}
	*r = fin
	a.notify(r)
	return r, true, nil, nil
}

// recordReversal inserts a reversal: decided (nothing released, or its
// original not found) with its event, or pending with the ledger operation
// it is about to make (op_*), which complete carries out and finishReversal
// records. Either way the reversal leaves the queue in the same
// transaction. If the reversal's key is already recorded it writes nothing
// and returns the record that is.
//
// A pending reversal is inserted only while its target record is what the
// reversal was computed from (orig: its outstanding amount and hold) and no
// other reversal of it is pending; otherwise errOriginalChanged, and the
// caller starts again (on PostgreSQL another process reversed it meanwhile:
// the check and the insert are one step across processes by lockNet).
func (a *Authorizer) recordReversal(ctx context.Context, rev, orig *record) (*record, error) {
	inserted := false
	err := a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if rev.Reason == OriginalNotFound || rev.origAbsent {
			// The original's gate and this are one step across processes
			// (lockNet): either the original sees this reversal, or this
			// sees the original and starts again.
			if err := a.lockNet(ctx, tx, rev.originalKey); err != nil {
				return err
			}
			var n int
			if err := tx.QueryRowContext(ctx, a.db.Rebind(`SELECT COUNT(*) FROM authorizations WHERE network_key = ?`), rev.originalKey).Scan(&n); err != nil {
				return fmt.Errorf("authorization: original of %s: %w", rev.networkKey, err)
			}
			if n > 0 {
				return errOriginalArrived
			}
		}
		if rev.status == statusPending {
			if err := a.lockNet(ctx, tx, rev.opOriginal); err != nil {
				return err
			}
			var pending int
			if err := tx.QueryRowContext(ctx, a.db.Rebind(`SELECT COUNT(*) FROM authorizations WHERE op_original = ? AND status = 'pending'`),
				rev.opOriginal).Scan(&pending); err != nil {
				return fmt.Errorf("authorization: reversals of %s: %w", rev.opOriginal, err)
			}
			var outstanding int64
			var holdID string
			err := tx.QueryRowContext(ctx, a.db.Rebind(`SELECT outstanding, hold_id FROM authorizations WHERE network_key = ? AND status = 'done'`),
				rev.opOriginal).Scan(&outstanding, &holdID)
			if err != nil && err != sql.ErrNoRows {
				return fmt.Errorf("authorization: original of %s: %w", rev.networkKey, err)
			}
			if pending > 0 || err == sql.ErrNoRows || outstanding != orig.Outstanding || holdID != orig.HoldID {
				return errOriginalChanged
			}
		}
		res, err := tx.StmtContext(ctx, a.st.insert).ExecContext(ctx, rev.args()...)
		if err != nil {
			return fmt.Errorf("authorization: insert reversal %s: %w", rev.networkKey, err)
		}
		// Recorded now or before: no longer queued. (A pending reversal is
		// completed by RecoverPending if nothing else completes it first.)
		if _, err := tx.StmtContext(ctx, a.st.unqueue).ExecContext(ctx, rev.networkKey); err != nil {
			return fmt.Errorf("authorization: unqueue reversal %s: %w", rev.networkKey, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		inserted = true
		if rev.status == statusPending {
			return nil
		}
		return a.appendEvent(ctx, tx, rev)
	})
	if err != nil {
		return nil, err
	}
	if !inserted {
		got, err := a.findAgain(ctx, rev.networkKey, rev.ID) // recorded before
		if err == nil && !got.reverses(rev.originalKey) {
			return nil, anotherRequest(got) // by another process, for another message
		}
		return got, err
	}
	if rev.status == statusDone {
		a.notify(rev)
	}
	return rev, nil
}

// finishReversal marks a pending reversal done with its outcome (rev:
// Detail, Amount released, HoldID, TransferID) and, if it released
// anything, sets the record it changes (op_original) to its new
// outstanding amount (op_amount) and hold (rev.HoldID), with its event, in
// one transaction. It is timed after whatever last changed that record, as
// stampAfter times it when it begins. If the reversal was finished already
// (by another process completing it too), it returns that record.
func (a *Authorizer) finishReversal(ctx context.Context, rev *record, released bool) (*record, error) {
	fin := *rev
	fin.status = statusDone
	done := false
	err := a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		f := fin
		var after int64
		if err := tx.QueryRowContext(ctx, a.db.Rebind(`SELECT updated_at FROM authorizations WHERE network_key = ?`), f.opOriginal).Scan(&after); err != nil {
			return fmt.Errorf("authorization: original of %s: %w", f.ID, err)
		}
		f.stampAfter(a.cfg.Now(), max(after, f.updatedAt-1))
		res, err := tx.ExecContext(ctx, a.db.Rebind(`UPDATE authorizations SET status = 'done', detail = ?, amount = ?, hold_id = ?, transfer_id = ?,
			at = ?, updated_at = ? WHERE id = ? AND status = 'pending'`),
			f.Detail, f.Amount, f.HoldID, f.TransferID, f.At.UnixNano(), f.updatedAt, f.ID)
		if err != nil {
			return fmt.Errorf("authorization: finish reversal %s: %w", f.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		done = true
		if released {
			if _, err := tx.ExecContext(ctx, a.db.Rebind(`UPDATE authorizations SET outstanding = ?, hold_id = ?, updated_at = ? WHERE network_key = ?`),
				f.opAmount, f.HoldID, f.updatedAt, f.opOriginal); err != nil {
				return fmt.Errorf("authorization: reverse %s: %w", f.opOriginal, err)
			}
		}
		fin = f
		return a.appendEvent(ctx, tx, &f)
	})
	if err != nil {
		return nil, err
	}
	if !done {
		return a.findAgain(ctx, rev.networkKey, rev.ID)
	}
	*rev = fin
	a.notify(rev)
	return rev, nil
}

// pendingReversals returns the reversals pending on the record of
// networkKey (op_original), oldest first: served by
// authorizations_pending_reversal.
func (a *Authorizer) pendingReversals(ctx context.Context, networkKey string) ([]*record, error) {
	rows, err := a.db.Query(ctx, `SELECT `+columns+` FROM authorizations WHERE op_original = ? AND status = 'pending' ORDER BY updated_at`, networkKey)
	if err != nil {
		return nil, fmt.Errorf("authorization: reversals of %s: %w", networkKey, err)
	}
	defer rows.Close()
	var out []*record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("authorization: reversals of %s: %w", networkKey, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// topic is the event topic of a decided record.
func (r *record) topic() string {
	switch {
	case r.Kind == KindReversal:
		return TopicReversed
	case !r.Approved:
		return TopicDeclined
	case r.Kind == KindAdvice:
		return TopicAdvised
	case r.Kind == KindIncremental:
		return TopicIncremented
	default:
		return TopicApproved
	}
}

func (a *Authorizer) appendEvent(ctx context.Context, tx *sql.Tx, r *record) error {
	d := r.decision()
	d.Replayed, d.Age = false, 0 // a call's, not the record's
	payload, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("authorization: event %s: %w", r.ID, err)
	}
	key := r.CardID
	if key == "" {
		key = r.ID
	}
	return a.st.outbox.Append(ctx, tx, event.Event{Topic: r.topic(), Key: key, Time: r.At, Payload: payload})
}

func (a *Authorizer) notify(*record) {
	if a.cfg.Notify != nil {
		a.cfg.Notify()
	}
}

var errNoRows = sql.ErrNoRows

// queued is a reversal waiting in reversal_queue.
type queued struct {
	key string
	req ReversalRequest
	bad error // the row could not be read: left for an operator
}

// queuedReversals returns up to limit reversals queued at or before
// (unix nanoseconds), oldest first.
func (a *Authorizer) queuedReversals(ctx context.Context, before int64, limit int) ([]queued, error) {
	return a.queuedWhere(ctx, `queued_at <= ? ORDER BY queued_at, network_key LIMIT ?`, before, limit)
}

// queuedReversal returns the reversal queued under networkKey, or nil.
func (a *Authorizer) queuedReversal(ctx context.Context, networkKey string) (*ReversalRequest, error) {
	qs, err := a.queuedWhere(ctx, `network_key = ?`, networkKey)
	if err != nil || len(qs) == 0 {
		return nil, err
	}
	if qs[0].bad != nil {
		return nil, fmt.Errorf("authorization: queued reversal %s %w", networkKey, qs[0].bad)
	}
	return &qs[0].req, nil
}

// queuedWhere returns the queued reversals matching cond (and the ORDER BY
// or LIMIT after it), each unread request marked bad.
func (a *Authorizer) queuedWhere(ctx context.Context, cond string, args ...any) ([]queued, error) {
	rows, err := a.db.Query(ctx, `SELECT network_key, request FROM reversal_queue WHERE `+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("authorization: queued reversals: %w", err)
	}
	defer rows.Close()
	var out []queued
	for rows.Next() {
		var q queued
		var body string
		if err := rows.Scan(&q.key, &body); err != nil {
			return nil, fmt.Errorf("authorization: queued reversals: %w", err)
		}
		if err := json.Unmarshal([]byte(body), &q.req); err != nil {
			q.bad = fmt.Errorf("unreadable: %w", err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// unqueue removes a queued reversal whose reversal is recorded.
func (a *Authorizer) unqueue(ctx context.Context, networkKey string) error {
	return a.tx.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.StmtContext(ctx, a.st.unqueue).ExecContext(ctx, networkKey)
		return err
	})
}

// queuedInFull reports whether a full reversal of networkKey is queued.
func (a *Authorizer) queuedInFull(ctx context.Context, networkKey string) (bool, error) {
	qs, err := a.queuedWhere(ctx, `original_key = ?`, networkKey)
	for _, q := range qs {
		if q.bad == nil && q.req.Amount == 0 {
			return true, nil
		}
	}
	return false, err
}
