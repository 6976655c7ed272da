package event_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/internal/syncbuf"
	"github.com/corebank/corebank/store"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runRelay runs r until the test ends, and fails the test if Run errs.
func runRelay(t *testing.T, r *event.Relay) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func ids(evs []event.Event) string {
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = e.ID
	}
	return strings.Join(s, ",")
}

func TestRelay(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Run("deletes what it published and never reuses a seq", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				mustAppend(t, db, mkEvents(1, 2)...)
				if got := ids(flush(t, db)); got != "svc-1,svc-2" {
					t.Fatalf("published %s, want svc-1,svc-2", got)
				}
				if n := outboxRows(t, db); n != 0 {
					t.Fatalf("outbox has %d rows after flush", n)
				}
				mustAppend(t, db, mkEvents(3, 1)...)
				if got := ids(flush(t, db)); got != "svc-3" {
					t.Fatalf("published %s after the table emptied, want svc-3", got)
				}
			})

			t.Run("a failed publish keeps the rows for the next attempt", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				mustAppend(t, db, mkEvents(1, 3)...)
				var m event.Memory
				calls := 0
				flaky := event.PublisherFunc(func(ctx context.Context, evs []event.Event) error {
					calls++
					if calls == 2 {
						return fmt.Errorf("broker down")
					}
					return m.Publish(ctx, evs)
				})
				r := &event.Relay{DB: db, Publisher: flaky, Batch: 1}
				if err := r.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "broker down") {
					t.Fatalf("Flush = %v, want the publisher's error", err)
				}
				if n := outboxRows(t, db); n != 2 {
					t.Fatalf("outbox has %d rows after a failed publish, want 2", n)
				}
				if err := r.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := ids(m.Published()); got != "svc-1,svc-2,svc-3" {
					t.Fatalf("published %s, want svc-1,svc-2,svc-3", got)
				}
			})

			// The database refuses writes (a full disk, a read-only
			// replica after failover): the published rows are deleted on
			// the next attempt, not published again on every retry, past
			// the broker's duplicate window.
			t.Run("a failed delete is retried, the rows not published again", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				mustAppend(t, db, mkEvents(1, 2)...)
				refuse, allow := `CREATE TRIGGER nodelete BEFORE DELETE ON outbox BEGIN SELECT RAISE(ABORT, 'read-only'); END`, `DROP TRIGGER nodelete`
				if db.Dialect == store.Postgres {
					refuse = `CREATE FUNCTION nodelete() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'read-only'; END $$ LANGUAGE plpgsql;
						CREATE TRIGGER nodelete BEFORE DELETE ON outbox FOR EACH ROW EXECUTE FUNCTION nodelete()`
					allow = `DROP TRIGGER nodelete ON outbox`
				}
				if _, err := db.Write.Exec(refuse); err != nil {
					t.Fatal(err)
				}
				var m event.Memory // drops repeats, as the broker does within its window
				var sent atomic.Int64
				counting := event.PublisherFunc(func(ctx context.Context, evs []event.Event) error {
					sent.Add(int64(len(evs)))
					return m.Publish(ctx, evs)
				})
				r := &event.Relay{DB: db, Publisher: counting}
				for range 3 {
					if err := r.Flush(context.Background()); err == nil || !strings.Contains(err.Error(), "read-only") {
						t.Fatalf("Flush = %v, want the delete's error", err)
					}
				}
				if n := sent.Load(); n != 2 {
					t.Fatalf("%d events sent over three failing attempts, want the 2 once", n)
				}
				if _, err := db.Write.Exec(allow); err != nil {
					t.Fatal(err)
				}
				if err := r.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				if n := outboxRows(t, db); n != 0 || ids(m.Published()) != "svc-1,svc-2" || sent.Load() != 2 {
					t.Fatalf("after the database recovered: %d rows left, published %s, %d sent", n, ids(m.Published()), sent.Load())
				}
			})

			t.Run("events committed while it lingers go out in one publish", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				var m event.Memory
				var mu sync.Mutex
				var sizes []int
				counting := event.PublisherFunc(func(ctx context.Context, evs []event.Event) error {
					mu.Lock()
					sizes = append(sizes, len(evs))
					mu.Unlock()
					return m.Publish(ctx, evs)
				})
				r := &event.Relay{DB: db, Publisher: counting, Interval: time.Hour, Linger: 2 * time.Second} // long: the three appends must fall within it, even on a loaded machine
				runRelay(t, r)
				mustAppend(t, db, mkEvents(1, 1)...)
				r.Notify()
				waitFor(t, 5*time.Second, "the first event", func() bool { return len(m.Published()) == 1 })
				// Three commits, each with its wake-up, while the relay lingers.
				for i := 2; i <= 4; i++ {
					mustAppend(t, db, mkEvents(i, 1)...)
					r.Notify()
				}
				waitFor(t, 5*time.Second, "the next three", func() bool { return len(m.Published()) == 4 })
				mu.Lock()
				defer mu.Unlock()
				if fmt.Sprint(sizes) != "[1 3]" {
					t.Errorf("publishes of %v events, want [1 3]", sizes)
				}
				if got := ids(m.Published()); got != "svc-1,svc-2,svc-3,svc-4" {
					t.Errorf("published %s", got)
				}
			})

			t.Run("Notify wakes an idle relay", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				var m event.Memory
				r := &event.Relay{DB: db, Publisher: &m, Interval: time.Hour}
				runRelay(t, r)
				mustAppend(t, db, mkEvents(1, 1)...)
				r.Notify()
				waitFor(t, 5*time.Second, "the first event", func() bool { return len(m.Published()) == 1 && outboxRows(t, db) == 0 })
				// The relay is now idle for an hour unless Notify works.
				mustAppend(t, db, mkEvents(2, 1)...)
				r.Notify()
				r.Notify() // never blocks
				waitFor(t, 5*time.Second, "the second event", func() bool { return len(m.Published()) == 2 })
			})

			t.Run("backs off while publishing fails, logs once, then recovers", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				var m event.Memory
				var calls atomic.Int32
				flaky := event.PublisherFunc(func(ctx context.Context, evs []event.Event) error {
					if calls.Add(1) <= 3 {
						return fmt.Errorf("broker down")
					}
					return m.Publish(ctx, evs)
				})
				var logs syncbuf.Buffer
				r := &event.Relay{DB: db, Publisher: flaky, Interval: time.Hour,
					Log: slog.New(slog.NewTextHandler(&logs, nil))}
				mustAppend(t, db, mkEvents(1, 2)...)
				start := time.Now()
				runRelay(t, r)
				r.Notify()
				waitFor(t, 10*time.Second, "recovery", func() bool { return len(m.Published()) == 2 })
				// Three failures back off at least 50+100+200ms in total.
				if el := time.Since(start); el < 350*time.Millisecond {
					t.Errorf("recovered after %v; backoff should take at least 350ms", el)
				}
				if n := calls.Load(); n != 4 {
					t.Errorf("publisher called %d times, want 4", n)
				}
				waitFor(t, 5*time.Second, "the recovery log", func() bool { return strings.Contains(logs.String(), "recovered") })
				out := logs.String()
				if n := strings.Count(out, "level=WARN"); n != 1 {
					t.Errorf("logged %d warnings for one failure streak, want 1:\n%s", n, out)
				}
				if !strings.Contains(out, "broker down") || !strings.Contains(out, "failures=3") {
					t.Errorf("log lacks the error or the failure count:\n%s", out)
				}
			})

			t.Run("counts published events and the backlog", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				reg := prometheus.NewRegistry()
				var m event.Memory
				r := &event.Relay{DB: db, Publisher: &m, Batch: 2, Interval: time.Hour, Registerer: reg}
				mustAppend(t, db, mkEvents(1, 5)...)
				if err := r.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				if got := gauge(t, reg, "corebank_outbox_published_total"); got != 5 {
					t.Errorf("published_total = %v, want 5", got)
				}
				// Counted once per Interval: after the first pass of two.
				if got := gauge(t, reg, "corebank_outbox_backlog"); got != 3 {
					t.Errorf("backlog = %v, want 3", got)
				}
			})

			t.Run("a row committed late under a lower seq is still published", func(t *testing.T) {
				t.Parallel()
				db := eng.open(t)
				if db.Dialect != store.Postgres {
					t.Skip("one writer at a time: seq order is commit order")
				}
				ctx := context.Background()
				var m event.Memory
				r := &event.Relay{DB: db, Publisher: &m}
				slow, err := db.Write.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer slow.Rollback()
				if err := event.Append(ctx, slow, db, mkEvents(1, 1)...); err != nil { // takes seq 1
					t.Fatal(err)
				}
				mustAppend(t, db, mkEvents(2, 1)...) // seq 2, committed first
				if err := r.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if err := slow.Commit(); err != nil {
					t.Fatal(err)
				}
				if err := r.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if got := ids(m.Published()); got != "svc-2,svc-1" {
					t.Fatalf("published %s, want svc-2,svc-1", got)
				}
				if n := outboxRows(t, db); n != 0 {
					t.Fatalf("outbox has %d rows", n)
				}
			})

			t.Run("Run without a publisher is an error", func(t *testing.T) {
				t.Parallel()
				r := &event.Relay{DB: eng.open(t)}
				if err := r.Run(context.Background()); err == nil {
					t.Fatal("Run without a Publisher returned nil")
				}
			})
		})
	}
}

// gauge returns the value of the metric called name labelled service=svc.
func gauge(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "service" && l.GetValue() == "svc" {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{service=svc}", name)
	return 0
}
