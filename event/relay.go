package event

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/store"
)

// Relay moves a service's outbox to the broker: it reads the oldest rows,
// publishes them as events with ID "<service>-<seq>", and deletes them only
// once the Publisher has returned nil (the broker stored them). A crash
// between the publish and the delete publishes the rows again on restart with
// the same ids, which the broker drops as duplicates. A delete that fails
// (the database refusing writes) is retried before anything is published
// again, so a long outage does not republish the same rows past the
// broker's duplicate window.
//
// The relay deletes what it published rather than remembering how far it got:
// on PostgreSQL a transaction that took a lower seq can commit after one with
// a higher seq, and a cursor would skip it. Such a row is published after
// the higher one, so events that must stay in order (one key) must come from
// transactions that are serialized anyway, for example by a row lock taken
// before Append.
//
// Two relays on one outbox (two processes of a scaled-out service: `serve`
// runs one in each, with no election yet) lose nothing but may publish a
// row twice. The broker drops the second publish of an id within its
// de-duplication window (two minutes by default); past it, consumers see a
// duplicate, which they absorb by id (Seen), as they must for at-least-once
// delivery anyway. One relay per database, chosen with the lock package,
// would publish each row once; it comes with a shared Locker.
//
// Set the fields, then call Run in a goroutine; call Notify after each commit
// that appended events. The fields must not change once Run or Flush started.
type Relay struct {
	// DB is the service's database; its Service names the events' ids.
	DB *store.DB
	// Publisher receives the events, in outbox order.
	Publisher Publisher
	// Batch is the most events read and published in one go (1000 if zero,
	// the most JetStream takes in one atomic batch).
	Batch int
	// Interval is how long the relay waits before looking at the outbox
	// again when nobody calls Notify: the fallback for a missed wake-up and
	// for rows committed by another process (1s if zero).
	Interval time.Duration
	// Linger is how long, after a pass that published events, the relay
	// lets the next ones gather before it looks again, even when woken
	// (DefaultLinger if zero; negative: not at all). Under load this turns
	// a publish and a delete commit per group commit of the service into
	// one per Linger: on SQLite the delete's commit takes the one writer
	// and an fsync from the service's own writes. An event is delayed by up
	// to Linger.
	Linger time.Duration
	// Log receives one warning per streak of failures and a note when it
	// ends. Nil discards.
	Log *slog.Logger
	// Registerer, if not nil, receives the relay's metrics, labelled with
	// service = DB.Service: corebank_outbox_published_total (events
	// published and deleted) and corebank_outbox_backlog (rows waiting,
	// counted at most once per Interval).
	Registerer prometheus.Registerer

	wakeOnce sync.Once
	wake     chan struct{}

	setupOnce sync.Once
	setupErr  error
	log       *slog.Logger
	published prometheus.Counter
	backlog   prometheus.Gauge

	mu sync.Mutex // one pass at a time; guards lastCount and undeleted
	// undeleted are seqs published but not yet deleted (the delete
	// failed): the next pass deletes them before it publishes anything, so
	// a database refusing writes does not make the relay publish the same
	// rows again and again, past the broker's duplicate window.
	undeleted []any
	lastCount time.Time
}

// DefaultLinger is Relay.Linger when it is zero.
const DefaultLinger = 20 * time.Millisecond

const (
	defaultBatch    = 1000
	defaultInterval = time.Second
	backoffBase     = 100 * time.Millisecond
	backoffMax      = 30 * time.Second
	deleteChunk     = 1000
)

// Notify wakes the relay to publish without waiting for Interval. It never
// blocks; call it after every commit that appended events.
func (r *Relay) Notify() {
	select {
	case r.wakeCh() <- struct{}{}:
	default:
	}
}

func (r *Relay) wakeCh() chan struct{} {
	r.wakeOnce.Do(func() { r.wake = make(chan struct{}, 1) })
	return r.wake
}

func (r *Relay) setup() error {
	r.setupOnce.Do(func() {
		if r.DB == nil || r.Publisher == nil {
			r.setupErr = fmt.Errorf("event: relay needs a DB and a Publisher")
			return
		}
		r.log = r.Log
		if r.log == nil {
			r.log = slog.New(slog.DiscardHandler)
		}
		r.log = r.log.With("service", r.DB.Service)
		labels := prometheus.Labels{"service": r.DB.Service}
		r.published = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "corebank", Name: "outbox_published_total", ConstLabels: labels,
			Help: "Events the outbox relay published to the broker and deleted from the outbox.",
		})
		r.backlog = prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "corebank", Name: "outbox_backlog", ConstLabels: labels,
			Help: "Events committed to the outbox and not yet published.",
		})
		if r.Registerer != nil {
			for _, c := range []prometheus.Collector{r.published, r.backlog} {
				if err := r.Registerer.Register(c); err != nil {
					r.setupErr = fmt.Errorf("event: relay metrics: %w", err)
					return
				}
			}
		}
	})
	return r.setupErr
}

func (r *Relay) batch() int {
	if r.Batch > 0 {
		return r.Batch
	}
	return defaultBatch
}

func (r *Relay) linger() time.Duration {
	if r.Linger == 0 {
		return DefaultLinger
	}
	return r.Linger
}

func (r *Relay) interval() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return defaultInterval
}

// Run publishes the outbox until ctx ends, then returns nil. It returns an
// error only if the relay is misconfigured. A failing publish or database is
// retried with jittered exponential backoff (up to 30s) and the rows stay in
// the outbox meanwhile; the first failure of a streak is logged.
func (r *Relay) Run(ctx context.Context) error {
	if err := r.setup(); err != nil {
		return err
	}
	wake := r.wakeCh()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	var failures int
	var since time.Time
	for {
		n, err := r.pass(ctx, 0)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		switch {
		case err != nil:
			failures++
			if failures == 1 {
				since = time.Now()
				r.log.Warn("outbox relay failing; retrying with backoff", "err", err)
			}
			wait = backoff(failures)
		case failures > 0:
			r.log.Info("outbox relay recovered", "failures", failures, "after", time.Since(since).Round(time.Millisecond))
			failures = 0
			fallthrough
		default:
			if n == r.batch() {
				continue // more rows are likely waiting
			}
			if n > 0 && r.linger() > 0 {
				// Let the next events gather; a wake-up meanwhile is kept.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(r.linger()):
				}
			}
			wait = r.interval()
		}
		// Go 1.23 timers: Reset and Stop never leave a stale tick behind.
		timer.Reset(wait)
	sleep:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
				break sleep
			case <-wake:
				// A commit does not cure a failing broker: keep backing off.
				if failures == 0 {
					timer.Stop()
					break sleep
				}
			}
		}
	}
}

// backoff returns the wait after the given number of consecutive failures:
// exponential from backoffBase, capped at backoffMax, with the upper half
// jittered so that many relays do not retry in step.
func backoff(failures int) time.Duration {
	d := min(backoffBase<<min(failures-1, 16), backoffMax)
	return d/2 + rand.N(d/2+1)
}

// deletePublished deletes the outbox rows with seqs, published.
func (r *Relay) deletePublished(ctx context.Context, seqs []any) error {
	db := r.DB
	for s := seqs; len(s) > 0; {
		n := min(len(s), deleteChunk)
		q := `DELETE FROM outbox WHERE seq IN (` + store.Placeholders(n, 1) + `)`
		if _, err := db.Write.ExecContext(ctx, db.Rebind(q), s[:n]...); err != nil {
			return fmt.Errorf("event: delete published %s events: %w", db.Service, err)
		}
		s = s[n:]
	}
	return nil
}

// Flush publishes every event in the outbox when it is called, and returns
// when they are published and deleted or at the first error. Events
// committed during the Flush may be left for Run. Use it on shutdown, after
// the service stopped writing, and in tests.
func (r *Relay) Flush(ctx context.Context) error {
	if err := r.setup(); err != nil {
		return err
	}
	var upTo int64
	if err := r.DB.Read.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM outbox`).Scan(&upTo); err != nil {
		return fmt.Errorf("event: flush %s outbox: %w", r.DB.Service, err)
	}
	if upTo == 0 {
		return nil
	}
	for {
		n, err := r.pass(ctx, upTo)
		if err != nil {
			return err
		}
		if n < r.batch() {
			return nil
		}
	}
}

// pass publishes and deletes up to Batch of the oldest rows, only rows with
// seq <= upTo unless upTo is 0, and returns how many it published.
func (r *Relay) pass(ctx context.Context, upTo int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	db := r.DB
	if len(r.undeleted) > 0 {
		if err := r.deletePublished(ctx, r.undeleted); err != nil {
			return 0, err
		}
		r.undeleted = nil
	}
	limit := r.batch()
	q, args := `SELECT seq, topic, key, payload, created_at FROM outbox ORDER BY seq LIMIT ?`, []any{limit}
	if upTo > 0 {
		q, args = `SELECT seq, topic, key, payload, created_at FROM outbox WHERE seq <= ? ORDER BY seq LIMIT ?`, []any{upTo, limit}
	}
	rows, err := db.Read.QueryContext(ctx, db.Rebind(q), args...)
	if err != nil {
		return 0, fmt.Errorf("event: read %s outbox: %w", db.Service, err)
	}
	evs := make([]Event, 0, min(limit, 64))
	seqs := make([]any, 0, min(limit, 64))
	prefix := db.Service + "-"
	for rows.Next() {
		var seq, created int64
		var e Event
		if err := rows.Scan(&seq, &e.Topic, &e.Key, &e.Payload, &created); err != nil {
			rows.Close()
			return 0, fmt.Errorf("event: read %s outbox: %w", db.Service, err)
		}
		e.ID = prefix + strconv.FormatInt(seq, 10)
		e.Time = time.Unix(0, created).UTC()
		evs = append(evs, e)
		seqs = append(seqs, seq)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("event: read %s outbox: %w", db.Service, err)
	}
	if len(evs) > 0 {
		if err := r.Publisher.Publish(ctx, evs); err != nil {
			return 0, fmt.Errorf("event: publish %s %s..%s: %w", db.Service, evs[0].ID, evs[len(evs)-1].ID, err)
		}
		r.published.Add(float64(len(evs)))
		if err := r.deletePublished(ctx, seqs); err != nil {
			// Published, not deleted: remembered, to be deleted before
			// anything else. Only a restart publishes them again (same
			// ids: the broker drops them within its window).
			r.undeleted = seqs
			return len(evs), err
		}
	}
	if r.Registerer != nil && time.Since(r.lastCount) >= r.interval() {
		var n int64
		if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil {
			return len(evs), fmt.Errorf("event: count %s outbox: %w", db.Service, err)
		}
		r.backlog.Set(float64(n))
		r.lastCount = time.Now()
	}
	return len(evs), nil
}
