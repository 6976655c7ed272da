package ledger

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config tunes a Ledger. The zero value is ready to use.
type Config struct {
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// MaxBatch caps the writes in one group commit. Default 1000.
	MaxBatch int
	// Notify is called after each durable commit, to wake the outbox
	// relay. It must not block.
	Notify func()
	// Log receives commit failures. Default: discarded.
	Log *slog.Logger
	// Metrics, if set, receives the corebank_ledger_* metrics.
	Metrics prometheus.Registerer
}

// Ledger implements Service on a store.DB.
//
// Reads go straight to the database. Writes are queued to a single group
// committer, which takes every write waiting, decides each one in order
// against the state it loads once per batch, writes the results with a
// handful of multi-row statements, commits once, and only then answers each
// caller. One fsync serves hundreds of writes, and each caller still hears
// back only after its own write is durable.
//
// On PostgreSQL several ledger processes may share a database: a batch locks
// the holds and accounts it touches (SELECT ... FOR UPDATE, in id order, so
// batches cannot deadlock), and the unique idempotency key is the final
// arbiter between processes.
type Ledger struct {
	db  *store.DB
	cfg Config
	m   *metrics
	ins *statements

	mu      sync.RWMutex // held for reading while sending to ops; for writing by Close
	closing bool
	ops     chan *op
	done    chan struct{}
}

var _ Service = (*Ledger)(nil)

// Open migrates db (the ledger's tables and its event outbox) and starts the
// group committer. Close stops it.
func Open(ctx context.Context, db *store.DB, cfg Config) (*Ledger, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, db, "ledger", sub); err != nil {
		return nil, err
	}
	if err := event.Migrate(ctx, db); err != nil {
		return nil, err
	}
	ins, err := prepareStatements(ctx, db)
	if err != nil {
		return nil, err
	}
	l := &Ledger{
		ins:  ins,
		db:   db,
		cfg:  cfg,
		m:    newMetrics(cfg.Metrics),
		ops:  make(chan *op, 4*cfg.MaxBatch),
		done: make(chan struct{}),
	}
	go l.run()
	return l, nil
}

// Close stops accepting writes, finishes those already queued, and waits for
// the committer to stop. It does not close the store.
func (l *Ledger) Close() error {
	l.mu.Lock()
	if !l.closing {
		l.closing = true
		close(l.ops)
	}
	l.mu.Unlock()
	<-l.done
	l.ins.close()
	return nil
}

type opKind uint8

const (
	opOpen opKind = iota
	opClose
	opTransfer
	opPlace
	opIncr
	opPost
	opVoid
	opExpire
)

var opKinds = [...]Kind{
	opOpen: KindAccountOpen, opClose: KindAccountClose, opTransfer: KindTransfer,
	opPlace: KindHoldPlace, opIncr: KindHoldIncr, opPost: KindHoldPost,
	opVoid: KindHoldVoid, opExpire: KindHoldExpire,
}

// op is one queued write and, once done is closed, its outcome.
type op struct {
	kind opKind
	key  string
	hash string
	req  any // *CreateAccountRequest, *TransferRequest, ... ; expireReq for opExpire

	res  any // *Account, *Transfer, *Hold or []Hold
	err  error
	done chan struct{}
}

type expireReq struct {
	asOf  time.Time
	limit int
}

// reservedPrefix starts the idempotency keys the ledger makes for itself
// (hold expiry); callers may not use it.
const reservedPrefix = "ledger:"

func (l *Ledger) submit(ctx context.Context, kind opKind, key string, req any) (any, error) {
	o := &op{kind: kind, key: key, req: req, done: make(chan struct{})}
	if kind != opExpire {
		if strings.HasPrefix(key, reservedPrefix) {
			return nil, badf("keys starting with %q are reserved", reservedPrefix)
		}
		o.hash = requestHash(req)
	}
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrap(err, errors.Timeout, "deadline passed before the write was queued")
	}
	l.mu.RLock()
	if l.closing {
		l.mu.RUnlock()
		return nil, errors.New(errors.Unavailable, "ledger is shutting down")
	}
	select {
	case l.ops <- o:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return nil, errors.Wrap(ctx.Err(), errors.Timeout, "deadline passed before the write was queued")
	}
	select {
	case <-o.done:
		return o.res, o.err
	case <-ctx.Done():
		return nil, errors.Wrap(ctx.Err(), errors.Timeout, "deadline passed before the write was confirmed; retry with the same key")
	}
}

// requestHash identifies a request's content apart from its key, so a key
// reused with a different request can be told from a retry. encoding/json
// sorts map keys, so the encoding is canonical.
func requestHash(req any) string {
	var b []byte
	switch r := req.(type) {
	case *CreateAccountRequest:
		c := *r
		c.Key = ""
		b, _ = json.Marshal(c)
	case *CloseAccountRequest:
		c := *r
		c.Key = ""
		b, _ = json.Marshal(c)
	case *TransferRequest:
		c := *r
		c.Key = ""
		b, _ = json.Marshal(c)
	case *PlaceHoldRequest:
		c := *r
		c.Key = ""
		c.ExpiresAt = c.ExpiresAt.UTC()
		b, _ = json.Marshal(c)
	case *IncrementHoldRequest:
		c := *r
		c.Key = ""
		c.ExpiresAt = c.ExpiresAt.UTC()
		b, _ = json.Marshal(c)
	case *PostHoldRequest:
		c := *r
		c.Key = ""
		b, _ = json.Marshal(c)
	case *VoidHoldRequest:
		c := *r
		c.Key = ""
		b, _ = json.Marshal(c)
	}
	sum := sha256.Sum256(b)
	return string(sum[:16])
}

// CreateAccount implements Service.
func (l *Ledger) CreateAccount(ctx context.Context, req CreateAccountRequest) (*Account, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	res, err := l.submit(ctx, opOpen, req.Key, &req)
	if err != nil {
		return nil, err
	}
	return res.(*Account), nil
}

// CloseAccount implements Service.
func (l *Ledger) CloseAccount(ctx context.Context, req CloseAccountRequest) (*Account, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	res, err := l.submit(ctx, opClose, req.Key, &req)
	if err != nil {
		return nil, err
	}
	return res.(*Account), nil
}

// Transfer implements Service.
func (l *Ledger) Transfer(ctx context.Context, req TransferRequest) (*Transfer, error) {
	// The ledger's own copy, before it is validated and hashed: a caller in
	// this process keeps its slice and map, and may reuse them while the
	// write waits in a batch (after a timeout, say), as a caller over HTTP
	// cannot.
	req.Legs, req.Metadata = slices.Clone(req.Legs), maps.Clone(req.Metadata)
	if err := req.validate(); err != nil {
		return nil, err
	}
	res, err := l.submit(ctx, opTransfer, req.Key, &req)
	if err != nil {
		return nil, err
	}
	return res.(*Transfer), nil
}

// PlaceHold implements Service.
func (l *Ledger) PlaceHold(ctx context.Context, req PlaceHoldRequest) (*Hold, error) {
	req.Metadata = maps.Clone(req.Metadata) // the ledger's own (see Transfer)
	if err := req.validate(); err != nil {
		return nil, err
	}
	return l.holdOp(ctx, opPlace, req.Key, &req)
}

// IncrementHold implements Service.
func (l *Ledger) IncrementHold(ctx context.Context, req IncrementHoldRequest) (*Hold, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	return l.holdOp(ctx, opIncr, req.Key, &req)
}

// PostHold implements Service.
func (l *Ledger) PostHold(ctx context.Context, req PostHoldRequest) (*Hold, error) {
	req.Metadata = maps.Clone(req.Metadata) // the ledger's own (see Transfer)
	if err := req.validate(); err != nil {
		return nil, err
	}
	return l.holdOp(ctx, opPost, req.Key, &req)
}

// VoidHold implements Service.
func (l *Ledger) VoidHold(ctx context.Context, req VoidHoldRequest) (*Hold, error) {
	if err := req.validate(); err != nil {
		return nil, err
	}
	return l.holdOp(ctx, opVoid, req.Key, &req)
}

func (l *Ledger) holdOp(ctx context.Context, kind opKind, key string, req any) (*Hold, error) {
	res, err := l.submit(ctx, kind, key, req)
	if err != nil {
		return nil, err
	}
	return res.(*Hold), nil
}

// ExpireHolds implements Service.
func (l *Ledger) ExpireHolds(ctx context.Context, asOf time.Time, limit int) ([]Hold, error) {
	if limit <= 0 || limit > 10000 {
		return nil, badf("limit must be between 1 and 10000")
	}
	if asOf.IsZero() {
		return nil, badf("as_of is required")
	}
	if err := checkAsOf(asOf); err != nil {
		return nil, err
	}
	res, err := l.submit(ctx, opExpire, "", expireReq{asOf: asOf, limit: limit})
	if err != nil {
		return nil, err
	}
	return res.([]Hold), nil
}
