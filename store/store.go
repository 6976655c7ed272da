// Package store is corebank's SQL storage: one *DB per service, on SQLite
// (embedded) or PostgreSQL (scale-out), with migrations embedded in the
// binary. Service code is written once against database/sql with '?'
// placeholders; Rebind adapts a query to the dialect.
//
// The engines live in their own packages, store/sqlite and store/postgres;
// service packages import only this one.
package store

import (
	"context"
	"database/sql"
	stderrors "errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corebank/corebank/errors"
)

// Dialect names the SQL engine behind a DB.
type Dialect string

const (
	// SQLite is the embedded engine (store/sqlite).
	SQLite Dialect = "sqlite"
	// Postgres is PostgreSQL (store/postgres).
	Postgres Dialect = "postgres"
)

// DB is one service's database.
//
// SQLite allows one writer at a time, so a DB keeps two pools: Write, a single
// connection whose transactions begin IMMEDIATE (take the write lock up
// front, never fail later on an upgrade), and Read, several connections for
// snapshot reads that never block the writer (WAL). On PostgreSQL both are the
// same pool.
type DB struct {
	Write   *sql.DB
	Read    *sql.DB
	Dialect Dialect
	// Service names the owner ("ledger"); on PostgreSQL it is also the schema.
	Service string

	// Cleanup, if set, is called by Close before the pools close (the
	// SQLite store stops its checkpointer there).
	Cleanup func()
	// Release, if set, is called by Close after the pools close: a lock on
	// the store's files, given up only once nothing of this store can
	// write to them.
	Release func()

	// CommitUnknown, set by an engine whose COMMIT can go unanswered (a
	// server across a connection), reports whether err, the failure of
	// tx.Commit, leaves the outcome unknown: the COMMIT may have been
	// sent and stored without its answer coming back. Nil: every failed
	// COMMIT stored nothing (SQLite rolls a failed COMMIT back itself).
	CommitUnknown func(err error) bool

	rebound sync.Map // query string -> rebound query string
	stmts   sync.Map // query string -> *sql.Stmt on Read
}

// Rebind rewrites a query written with '?' placeholders for db's dialect
// ($1, $2, ... on PostgreSQL). '?' inside 'string literals', "quoted
// identifiers", -- line comments and /* block comments */ is left alone.
// PostgreSQL's E'escape strings' and $$dollar quotes$$ are not recognised
// (a '?' inside them would be numbered): they are PostgreSQL's only, and
// the queries Rebind serves run on SQLite too, so none has them.
// Results are cached, so call it freely on constant queries.
func (db *DB) Rebind(q string) string {
	if db.Dialect != Postgres {
		return q
	}
	if v, ok := db.rebound.Load(q); ok {
		return v.(string)
	}
	r := rebind(q)
	db.rebound.Store(q, r)
	return r
}

func rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		c := q[i]
		var end string // what closes the quote or comment starting at i
		switch {
		case c == '\'' || c == '"':
			end = string(c) // a doubled quote ('') closes and reopens: same result
		case c == '-' && strings.HasPrefix(q[i:], "--"):
			end = "\n"
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			end = "*/"
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		default:
			b.WriteByte(c)
			continue
		}
		// Copy the quoted or commented text through its end, unchanged.
		j := strings.Index(q[i+1:], end)
		if end == "*/" {
			j = strings.Index(q[i+2:], end)
			if j >= 0 {
				j++
			}
		}
		if j < 0 {
			b.WriteString(q[i:])
			break
		}
		stop := i + 1 + j + len(end)
		b.WriteString(q[i:stop])
		i = stop - 1
	}
	return b.String()
}

// Placeholders returns n comma-separated '?' groups of width w, for multi-row
// INSERTs and IN lists: Placeholders(2, 3) is "(?,?,?),(?,?,?)"; with w == 1
// the groups have no parentheses: "?,?".
func Placeholders(n, w int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		if w > 1 {
			b.WriteByte('(')
		}
		for j := 0; j < w; j++ {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		if w > 1 {
			b.WriteByte(')')
		}
	}
	return b.String()
}

// Close closes both pools.
func (db *DB) Close() error {
	if db.Cleanup != nil {
		db.Cleanup()
	}
	db.stmts.Range(func(_, v any) bool {
		v.(*sql.Stmt).Close()
		return true
	})
	err := db.Write.Close()
	if db.Read != db.Write {
		if rerr := db.Read.Close(); err == nil {
			err = rerr
		}
	}
	if db.Release != nil {
		db.Release()
	}
	return err
}

// InTx runs fn in a write transaction and commits it if fn returns nil. The
// commit is durable when InTx returns nil (SQLite synchronous=FULL;
// PostgreSQL fsync and synchronous_commit on).
//
// An error means nothing of fn was stored, except one for which
// CommitOutcomeUnknown is true: the COMMIT was sent and no answer came
// back, so the transaction may have been stored.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	// A context that has ended fails Commit without sending COMMIT (it
	// rolls back). Checked here, that failure is known to be definite;
	// found by Commit, it cannot be told from a COMMIT cut off in flight.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: context ended before commit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return db.commitFailed(err)
	}
	return nil
}

// errCommitUnknown marks a COMMIT whose outcome is unknown.
var errCommitUnknown = stderrors.New("store: commit's outcome is unknown")

// CommitOutcomeUnknown reports whether err is a COMMIT that may or may not
// have been stored: on PostgreSQL, one sent without the server answering it
// (the connection was lost or its context ended while COMMIT was in
// flight). The server may have committed before the answer was lost, so
// the writes must be taken as possibly done: a caller is told Timeout, not
// Unavailable, and retries idempotently. The original error is in err's
// chain.
//
// A failure known to leave nothing stored is not unknown: any failure
// before COMMIT (a context that ended before it, included), a COMMIT the
// server refused (an error with a SQLSTATE: a deferred constraint, a
// serialization failure) or answered with ROLLBACK, and every failed
// COMMIT on SQLite, which rolls the transaction back itself. The engine
// tells which is which (DB.CommitUnknown).
func CommitOutcomeUnknown(err error) bool { return stderrors.Is(err, errCommitUnknown) }

// commitFailed classifies err, the error of tx.Commit on db.
func (db *DB) commitFailed(err error) error {
	if db.CommitUnknown != nil && db.CommitUnknown(err) {
		return fmt.Errorf("%w: %w", errCommitUnknown, err)
	}
	return err
}

// WriteFailed returns err, the failure of a write named what ("ledger
// commit"), as its caller should see it: Timeout when the COMMIT's outcome
// is unknown (it may have been stored: retry with the same key and find
// it), Unavailable otherwise (nothing was stored). err stays in the chain.
func WriteFailed(what string, err error) error {
	if CommitOutcomeUnknown(err) {
		return errors.Wrap(err, errors.Timeout, what+"'s outcome is unknown: it may have been stored; retry with the same key")
	}
	return errors.Wrap(err, errors.Unavailable, what+" failed; nothing was stored")
}

// GroupContext is the context a group commit runs its statements under.
// On PostgreSQL it ends after timeout, so a stalled server fails the group
// instead of holding every caller in it. On SQLite it never ends: the
// driver watches a cancellable context with a goroutine (and a progress
// handler) per statement, which on a busy writer cost more than the
// statements, and an in-process SQLite cannot stall the way a network can;
// its writes end when the disk answers.
func (db *DB) GroupContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	if db.Dialect == SQLite {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), timeout)
}

// readContext is ctx for a single-row read: on SQLite without its
// cancellation (see GroupContext; a single-row read is microseconds).
func (db *DB) readContext(ctx context.Context) context.Context {
	if db.Dialect == SQLite {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.Write.PingContext(ctx) }

// QueryRow runs a single-row read on the read pool through a prepared
// statement cached per query (written with '?' placeholders; QueryRow
// rebinds it). SQLite parses a statement on every plain QueryRow; on a hot
// read path that parsing is most of the cost.
func (db *DB) QueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := db.readStmt(ctx, query)
	if err != nil {
		// The plain call fails the same way and reports it through Row.
		return db.Read.QueryRowContext(ctx, db.Rebind(query), args...)
	}
	if ctx.Err() == nil {
		ctx = db.readContext(ctx)
	}
	return st.QueryRowContext(ctx, args...)
}

// Query is QueryRow for reads of several rows.
func (db *DB) Query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := db.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func (db *DB) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if v, ok := db.stmts.Load(query); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := db.Read.PrepareContext(ctx, db.Rebind(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// Contended reports whether err is a transaction lost to a concurrent one
// on PostgreSQL: a unique key another transaction took (23505), a deadlock
// (40P01), a serialization failure (40001). Done again, it may succeed, and
// see what the other did.
func Contended(err error) bool {
	var pe interface{ SQLState() string }
	if stderrors.As(err, &pe) {
		switch pe.SQLState() {
		case "23505", "40P01", "40001":
			return true
		}
	}
	return false
}
