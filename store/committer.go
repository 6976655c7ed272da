package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/obs"
)

// Committer group-commits small write transactions: it runs every
// transaction function waiting (up to a maximum) inside one database
// transaction, each in a savepoint of its own, commits once, and only then
// answers each caller. One fsync serves the whole group, and each caller
// still hears back only after its own writes are durable.
//
// A function that fails is rolled back to its savepoint and gets its own
// error; the others in the group are unaffected. Functions in one group run
// one after another and see the writes of those before them, as if each had
// committed alone in that order. If the group fails, every function gets
// the same error, refusals included (a refusal may rest on an earlier
// function's writes): Unavailable when nothing of the group was stored, or
// Timeout when the COMMIT was sent and its answer lost (see
// CommitOutcomeUnknown), so that the whole group may have been stored and
// each caller must retry idempotently.
//
// Functions must only run SQL on the transaction and the context they are
// given (the group's, not the caller's: one caller giving up must not break
// the others' transaction), and must not wait on anything else, such as an
// RPC: the group waits with them. They must close their rows and return
// every statement's error: on PostgreSQL a function that returns (or
// panics) with rows open leaves the connection busy, and one that swallows
// a statement's error leaves the transaction aborted; either way its
// savepoint cannot be rolled back and the whole group fails Unavailable
// (nothing stored, every caller told to retry).
//
// The ledger has its own committer, which also loads each batch's state in
// a few queries; Committer is for services whose transactions are small and
// independent.
type Committer struct {
	db  *DB
	max int

	mu      sync.RWMutex // held for reading while sending to ops; for writing by Close
	closing bool
	ops     chan *txOp
	done    chan struct{}

	// savepoint statements, prepared once (nil: not prepared, run plain)
	savepoint, release, rollbackTo *sql.Stmt
	closeOnce                      sync.Once

	writes  prometheus.Observer // writes per group; nil until Instrument
	seconds prometheus.Observer // a group's time, first write to durable commit
}

type txOp struct {
	fn   func(ctx context.Context, tx *sql.Tx) error
	err  error
	done chan struct{}
}

// committerTimeout bounds one group's transaction.
const committerTimeout = 30 * time.Second

// NewCommitter starts a committer on db that groups up to maxBatch
// transactions (256 if maxBatch <= 0). Close stops it.
func NewCommitter(db *DB, maxBatch int) *Committer {
	if maxBatch <= 0 {
		maxBatch = 256
	}
	c := &Committer{db: db, max: maxBatch, ops: make(chan *txOp, 4*maxBatch), done: make(chan struct{})}
	// Prepared here, before any group holds the writer (SQLite has one
	// connection): parsing three statements per function was a tenth of a
	// busy committer. If preparing fails they run unprepared.
	stmts := []**sql.Stmt{&c.savepoint, &c.release, &c.rollbackTo}
	for i, q := range []string{"SAVEPOINT op", "RELEASE SAVEPOINT op", "ROLLBACK TO SAVEPOINT op"} {
		st, err := db.Write.PrepareContext(context.Background(), q)
		if err != nil {
			c.closeStmts()
			break
		}
		*stmts[i] = st
	}
	go c.run()
	return c
}

// InTx runs fn in the next group and returns its error, or nil once the
// group has committed durably. If ctx ends first, InTx returns a Timeout
// error and fn may still run and commit: the caller must treat the outcome
// as unknown (and retry idempotently).
func (c *Committer) InTx(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, errors.Timeout, "deadline passed before the write was queued")
	}
	o := &txOp{fn: fn, done: make(chan struct{})}
	c.mu.RLock()
	if c.closing {
		c.mu.RUnlock()
		return errors.New(errors.Unavailable, "store is shutting down")
	}
	select {
	case c.ops <- o:
		c.mu.RUnlock()
	case <-ctx.Done():
		c.mu.RUnlock()
		return errors.Wrap(ctx.Err(), errors.Timeout, "deadline passed before the write was queued")
	}
	select {
	case <-o.done:
		return o.err
	case <-ctx.Done():
		return errors.Wrap(ctx.Err(), errors.Timeout, "deadline passed before the write was confirmed")
	}
}

// Instrument registers the committer's metrics in reg, labelled service =
// the store's: corebank_store_group_writes (transactions per group commit)
// and corebank_store_group_commit_seconds (a group's time from its first
// function to its durable commit). Call it before the first InTx.
func (c *Committer) Instrument(reg prometheus.Registerer) error {
	labels := prometheus.Labels{"service": c.db.Service}
	writes, err := obs.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: obs.Namespace, Name: "store_group_writes", ConstLabels: labels,
		Help:    "Write transactions per group commit.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	}))
	if err != nil {
		return fmt.Errorf("store: committer metrics: %w", err)
	}
	seconds, err := obs.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: obs.Namespace, Name: "store_group_commit_seconds", ConstLabels: labels,
		Help:    "Time of one group commit, from its first write to its durable commit.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}))
	if err != nil {
		return fmt.Errorf("store: committer metrics: %w", err)
	}
	c.writes, c.seconds = writes, seconds
	return nil
}

// Close stops accepting transactions, runs those already queued, and waits.
func (c *Committer) Close() {
	c.mu.Lock()
	if !c.closing {
		c.closing = true
		close(c.ops)
	}
	c.mu.Unlock()
	<-c.done
	c.closeOnce.Do(c.closeStmts)
}

func (c *Committer) run() {
	defer close(c.done)
	group := make([]*txOp, 0, c.max)
	for {
		o, ok := <-c.ops
		if !ok {
			return
		}
		group = append(group[:0], o)
	fill:
		for len(group) < c.max {
			select {
			case o, ok := <-c.ops:
				if !ok {
					break fill
				}
				group = append(group, o)
			default:
				break fill
			}
		}
		start := time.Now()
		c.commit(group)
		if c.writes != nil {
			c.writes.Observe(float64(len(group)))
			c.seconds.Observe(time.Since(start).Seconds())
		}
	}
}

func (c *Committer) closeStmts() {
	for _, st := range []**sql.Stmt{&c.savepoint, &c.release, &c.rollbackTo} {
		if *st != nil {
			(*st).Close()
			*st = nil
		}
	}
}

// exec runs one of the savepoint statements, prepared if it could be.
func exec(ctx context.Context, tx *sql.Tx, st *sql.Stmt, query string) error {
	var err error
	if st != nil {
		_, err = tx.StmtContext(ctx, st).ExecContext(ctx)
	} else {
		_, err = tx.ExecContext(ctx, query)
	}
	return err
}

func (c *Committer) commit(group []*txOp) {
	ctx, cancel := c.db.GroupContext(committerTimeout)
	defer cancel()
	err := c.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, o := range group {
			if err := exec(ctx, tx, c.savepoint, "SAVEPOINT op"); err != nil {
				return err
			}
			o.err = call(ctx, tx, o.fn)
			if o.err != nil {
				if err := exec(ctx, tx, c.rollbackTo, "ROLLBACK TO SAVEPOINT op"); err != nil {
					return err
				}
			}
			if err := exec(ctx, tx, c.release, "RELEASE SAVEPOINT op"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		fail := WriteFailed("group commit", err)
		for _, o := range group {
			o.err = fail
		}
	}
	for _, o := range group {
		close(o.done)
	}
}

// call runs fn, turning a panic into an error so one bad function cannot
// take the group (or the process) down.
func call(ctx context.Context, tx *sql.Tx, fn func(context.Context, *sql.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.Wrap(fmt.Errorf("panic: %v", r), errors.Internal, "internal error")
		}
	}()
	return fn(ctx, tx)
}
