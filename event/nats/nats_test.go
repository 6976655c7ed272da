package nats_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/event/nats"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// engines lists the SQL stores the outbox runs on in these tests.
var engines = []struct {
	name string
	open func(tb testing.TB, service string) *store.DB
}{
	{"sqlite", openSQLite},
	{"postgres", func(tb testing.TB, service string) *store.DB { return migrated(tb, storetest.Postgres(tb, service)) }},
}

// openSQLite returns a migrated SQLite database for service.
func openSQLite(tb testing.TB, service string) *store.DB {
	return migrated(tb, storetest.SQLite(tb, service))
}

func migrated(tb testing.TB, db *store.DB) *store.DB {
	tb.Helper()
	if err := event.Migrate(context.Background(), db); err != nil {
		tb.Fatal(err)
	}
	return db
}

// quick makes redelivery after a failed handler fast enough for tests.
var quick = nats.WithRetryDelay(10*time.Millisecond, 50*time.Millisecond)

// embedded starts an in-process server with the default stream and returns
// a connection to it.
func embedded(tb testing.TB) *nats.Conn {
	tb.Helper()
	s, err := nats.Embedded(nats.EmbeddedConfig{Dir: tb.TempDir()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Shutdown)
	if u := s.ClientURL(); u != "" {
		tb.Errorf("server without a client port has ClientURL %q", u)
	}
	if !nats.SyncAlways(s) {
		tb.Fatal("embedded JetStream does not fsync every write")
	}
	c, err := nats.ConnectEmbedded(s, quick)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	ensureStream(tb, c)
	return c
}

func ensureStream(tb testing.TB, c *nats.Conn) {
	tb.Helper()
	if err := c.EnsureStream(context.Background(), nats.DefaultStream, nats.DefaultSubjects(), 1); err != nil {
		tb.Fatal(err)
	}
}

// waitFor polls cond until it holds or d passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goRun runs f in a goroutine until the returned stop is called or the test
// ends, and fails the test if f returns an error or does not stop.
func goRun(tb testing.TB, f func(ctx context.Context) error) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("stopped with %v", err)
				}
			case <-time.After(10 * time.Second):
				tb.Errorf("did not stop within 10s")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

func outboxRows(tb testing.TB, db *store.DB) int {
	tb.Helper()
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// change is the payload of the test's events: the n-th change to key.
type change struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

// producer appends changes to a service's outbox, n per key in order.
type producer struct {
	db   *store.DB
	next map[string]int
	t0   time.Time
}

func newProducer(db *store.DB) *producer {
	return &producer{db: db, next: map[string]int{}, t0: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

// commit appends events for keys in one transaction.
func (p *producer) commit(keys ...string) error {
	evs := make([]event.Event, len(keys))
	for i, k := range keys {
		b, _ := json.Marshal(change{Key: k, N: p.next[k]})
		p.next[k]++
		evs[i] = event.Event{Topic: "ledger.transfer.created", Key: k, Time: p.t0.Add(time.Duration(p.next[k]) * time.Microsecond), Payload: b}
	}
	return p.db.InTx(context.Background(), func(tx *sql.Tx) error {
		return event.Append(context.Background(), tx, p.db, evs...)
	})
}

func (p *producer) mustCommit(tb testing.TB, keys ...string) {
	tb.Helper()
	if err := p.commit(keys...); err != nil {
		tb.Fatal(err)
	}
}

// commitRandom appends n events over keys in transactions of 1 to 50,
// calling notify after each commit.
func (p *producer) commitRandom(n int, keys []string, seed uint64, notify func()) error {
	r := rand.New(rand.NewPCG(seed, 2))
	for n > 0 {
		size := min(n, 1+r.IntN(50))
		batch := make([]string, size)
		for i := range batch {
			batch[i] = keys[r.IntN(len(keys))]
		}
		if err := p.commit(batch...); err != nil {
			return err
		}
		notify()
		n -= size
	}
	return nil
}

func (p *producer) mustCommitRandom(tb testing.TB, n int, keys []string) {
	tb.Helper()
	if err := p.commitRandom(n, keys, 1, func() {}); err != nil {
		tb.Fatal(err)
	}
}

// feed is an idempotent consumer with its own database: it applies each
// change once, recording the event in its inbox in the same transaction.
type feed struct {
	db *store.DB

	mu      sync.Mutex
	calls   map[string]int      // event id -> handler calls
	applied map[string][]int    // key -> n in the order applied
	failing map[string]struct{} // ids whose first delivery fails
	last    event.Event
}

func newFeed(tb testing.TB) *feed {
	db := openSQLite(tb, "feed")
	if _, err := db.Write.Exec(`CREATE TABLE applied (key TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (key, n))`); err != nil {
		tb.Fatal(err)
	}
	return &feed{db: db, calls: map[string]int{}, applied: map[string][]int{}, failing: map[string]struct{}{}}
}

func (f *feed) handle(ctx context.Context, e event.Event) error {
	f.mu.Lock()
	f.calls[e.ID]++
	_, fail := f.failing[e.ID]
	delete(f.failing, e.ID)
	f.last = e
	f.mu.Unlock()
	if fail {
		return fmt.Errorf("induced failure of %s", e.ID)
	}
	var c change
	if err := json.Unmarshal(e.Payload, &c); err != nil {
		return err
	}
	var fresh bool
	err := f.db.InTx(ctx, func(tx *sql.Tx) error {
		seen, err := event.Seen(ctx, tx, f.db, "feed", e.ID)
		if err != nil || seen {
			return err
		}
		fresh = true
		_, err = tx.ExecContext(ctx, `INSERT INTO applied (key, n) VALUES (?, ?)`, c.Key, c.N)
		return err
	})
	if err == nil && fresh {
		f.mu.Lock()
		f.applied[c.Key] = append(f.applied[c.Key], c.N)
		f.mu.Unlock()
	}
	return err
}

// appliedRows counts the changes the feed has applied. It counts what
// handle records after its transaction commits, so once it reaches n every
// one of those n commits is done (the table's count alone can run ahead of
// the record, and a check made in between would see one missing).
func (f *feed) appliedRows(tb testing.TB) int {
	tb.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, ns := range f.applied {
		n += len(ns)
	}
	return n
}

// storedRows counts the changes in the feed's table.
func (f *feed) storedRows(tb testing.TB) int {
	tb.Helper()
	var n int
	if err := f.db.Read.QueryRow(`SELECT COUNT(*) FROM applied`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

func (f *feed) callsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *feed) totalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

// checkApplied asserts that every change of want (key -> count) was applied
// exactly once and, per key, in order.
func (f *feed) checkApplied(tb testing.TB, want map[string]int) {
	tb.Helper()
	total := 0
	for _, n := range want {
		total += n
	}
	if got := f.storedRows(tb); got != total {
		tb.Errorf("feed table holds %d changes, want %d", got, total)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range want {
		got := f.applied[k]
		if len(got) != n {
			tb.Errorf("key %s: applied %d changes, want %d", k, len(got), n)
			continue
		}
		for i, v := range got {
			if v != i {
				tb.Errorf("key %s: change %d applied in position %d: %v", k, v, i, got)
				break
			}
		}
	}
}

// subscribeFeed runs f as durable consumer "feed" on c.
func subscribeFeed(tb testing.TB, c *nats.Conn, f *feed) (stop func()) {
	return goRun(tb, func(ctx context.Context) error {
		return c.Subscribe(ctx, "feed", []string{"ledger.>"}, f.handle)
	})
}

// endToEnd commits events to an outbox from four writers at once, each in
// many transactions over its own keys, while a relay publishes them through
// c, and checks that the feed applies each exactly once, in order per key,
// and that the outbox empties.
func endToEnd(t *testing.T, c *nats.Conn, db *store.DB) {
	const writers, perWriter = 4, 100
	const n = writers * perWriter
	f := newFeed(t)
	subscribeFeed(t, c, f)
	relay := &event.Relay{DB: db, Publisher: c, Interval: 50 * time.Millisecond}
	goRun(t, relay.Run)
	producers := make([]*producer, writers)
	errs := make(chan error, writers)
	for w := range producers {
		p := newProducer(db)
		producers[w] = p
		keys := []string{fmt.Sprintf("acc-%d-a", w), fmt.Sprintf("acc-%d-b", w)}
		go func() { errs <- p.commitRandom(perWriter, keys, uint64(w), relay.Notify) }()
	}
	want := map[string]int{}
	for range producers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range producers {
		for k, v := range p.next {
			want[k] = v
		}
	}
	waitFor(t, 10*time.Second, "an empty outbox", func() bool { return outboxRows(t, db) == 0 })
	waitFor(t, 30*time.Second, "all changes applied", func() bool { return f.appliedRows(t) == n })
	time.Sleep(20 * time.Millisecond) // a duplicate would arrive by now
	f.checkApplied(t, want)
	if calls := f.totalCalls(); calls != n {
		t.Errorf("handler called %d times for %d events", calls, n)
	}
	f.mu.Lock()
	last := f.last
	f.mu.Unlock()
	if last.Topic != "ledger.transfer.created" || last.Key == "" || last.Time.IsZero() ||
		!strings.HasPrefix(last.ID, db.Service+"-") {
		t.Errorf("last event delivered = %+v, want an id %s-<seq>, a topic, a key and a time", last, db.Service)
	}
}

func TestEmbedded(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			t.Run("outbox to consumer, once each, in order per key", func(t *testing.T) {
				t.Parallel()
				endToEnd(t, embedded(t), eng.open(t, "ledger"))
			})
			t.Run("a relay that fails mid-way loses nothing and duplicates nothing", func(t *testing.T) {
				t.Parallel()
				relayCrash(t, embedded(t), eng.open(t, "ledger"))
			})
		})
	}
	t.Run("the broker drops a second publish of an id", func(t *testing.T) {
		t.Parallel()
		duplicates(t, embedded(t))
	})
	t.Run("a failed handler gets its event again", func(t *testing.T) {
		t.Parallel()
		redelivery(t, embedded(t))
	})
	t.Run("a restarted consumer resumes where it acknowledged", func(t *testing.T) {
		t.Parallel()
		resume(t, embedded(t))
	})
	t.Run("the largest payload the outbox takes is published, alone and in a batch", func(t *testing.T) {
		t.Parallel()
		c := embedded(t)
		big := func(id string) event.Event {
			return event.Event{ID: id, Topic: "ledger.transfer.created", Key: "acc_1", Time: time.Now(),
				Payload: bytes.Repeat([]byte("x"), event.MaxPayload)}
		}
		if err := c.Publish(context.Background(), []event.Event{big("max-1")}); err != nil {
			t.Fatalf("one event of event.MaxPayload bytes: %v", err)
		}
		var batch []event.Event
		for i := range 8 { // an atomic batch
			batch = append(batch, big(fmt.Sprintf("max-b%d", i)))
		}
		if err := c.Publish(context.Background(), batch); err != nil {
			t.Fatalf("a batch of events of event.MaxPayload bytes: %v", err)
		}
	})
	t.Run("a server needs a store directory", func(t *testing.T) {
		t.Parallel()
		if s, err := nats.Embedded(nats.EmbeddedConfig{}); err == nil {
			s.Shutdown()
			t.Fatal("Embedded without Dir started")
		}
	})
	t.Run("one server per store directory", func(t *testing.T) {
		t.Parallel()
		// Two would overwrite each other's stream files: acknowledged
		// events lost. The second is refused while the first runs.
		dir := t.TempDir()
		s, err := nats.Embedded(nats.EmbeddedConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if s2, err := nats.Embedded(nats.EmbeddedConfig{Dir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
			if s2 != nil {
				s2.Shutdown()
			}
			t.Fatalf("a second server on the store started: %v", err)
		}
		s.Shutdown()
		s, err = nats.Embedded(nats.EmbeddedConfig{Dir: dir})
		if err != nil {
			t.Fatalf("after the first stopped: %v", err)
		}
		s.Shutdown()
	})
	t.Run("events and consumer positions survive a server restart", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		start := func() (*nats.Server, *nats.Conn) {
			s, err := nats.Embedded(nats.EmbeddedConfig{Dir: dir, Port: -1})
			if err != nil {
				t.Fatal(err)
			}
			if s.ClientURL() == "" {
				t.Fatal("server with a random port has no ClientURL")
			}
			c, err := nats.Connect(s.ClientURL(), quick)
			if err != nil {
				s.Shutdown()
				t.Fatal(err)
			}
			return s, c
		}
		s, c := start()
		ensureStream(t, c)
		db := openSQLite(t, "ledger")
		p := newProducer(db)
		p.mustCommitRandom(t, 200, []string{"a", "b"})
		if err := (&event.Relay{DB: db, Publisher: c}).Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		f := newFeed(t)
		stop := subscribeFeed(t, c, f)
		waitFor(t, 10*time.Second, "the first 200", func() bool { return f.appliedRows(t) == 200 })
		stop()
		c.Close()
		s.Shutdown()

		s, c = start()
		t.Cleanup(s.Shutdown)
		t.Cleanup(c.Close) // after the subscription below stops
		p.mustCommitRandom(t, 100, []string{"a", "b"})
		if err := (&event.Relay{DB: db, Publisher: c}).Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		subscribeFeed(t, c, f)
		waitFor(t, 10*time.Second, "all 300", func() bool { return f.appliedRows(t) == 300 })
		time.Sleep(50 * time.Millisecond)
		if calls := f.totalCalls(); calls != 300 {
			t.Errorf("handler called %d times for 300 events: acknowledged events came back", calls)
		}
		f.checkApplied(t, p.next)
	})
}

// duplicates publishes one id three times (twice in one batch), and a
// batch that repeats the first half of an earlier one, and checks that the
// consumer sees each event once and in order.
func duplicates(t *testing.T, c *nats.Conn) {
	ctx := context.Background()
	e := event.Event{ID: "ledger-7", Topic: "ledger.transfer.created", Key: "acc-1", Time: time.Now(), Payload: []byte(`{"key":"acc-1","n":0}`)}
	if err := c.Publish(ctx, []event.Event{e, e}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, []event.Event{e}); err != nil {
		t.Fatal(err)
	}
	batch := make([]event.Event, 40)
	for i := range batch {
		batch[i] = event.Event{ID: fmt.Sprintf("ledger-%d", 100+i), Topic: "ledger.transfer.created", Key: "b",
			Time: time.Now(), Payload: []byte(fmt.Sprintf(`{"key":"b","n":%d}`, i))}
	}
	// An atomic batch of 20, then one of 40 holding those 20 again: the
	// server refuses the second whole, and Publish falls back to one by one.
	if err := c.Publish(ctx, batch[:20]); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, batch); err != nil {
		t.Fatal(err)
	}
	f := newFeed(t)
	subscribeFeed(t, c, f)
	// Delivered is not applied: the feed counts a call before its commit
	// and records the change after it. Wait for all 41 to be applied,
	// then give a wrongful redelivery time to show.
	waitFor(t, 10*time.Second, "all 41 events applied", func() bool { return f.appliedRows(t) == 41 })
	time.Sleep(200 * time.Millisecond)
	if n := f.callsOf("ledger-7"); n != 1 {
		t.Fatalf("consumer saw ledger-7 %d times, want 1", n)
	}
	if n := f.totalCalls(); n != 41 {
		t.Errorf("consumer handled %d deliveries of 41 distinct events", n)
	}
	f.checkApplied(t, map[string]int{"acc-1": 1, "b": 40})
}

// redelivery fails the first delivery of one event and checks that it comes
// again and is applied.
func redelivery(t *testing.T, c *nats.Conn) {
	db := openSQLite(t, "ledger")
	p := newProducer(db)
	p.mustCommit(t, "a", "b", "c")
	if err := (&event.Relay{DB: db, Publisher: c}).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := newFeed(t)
	f.failing["ledger-2"] = struct{}{}
	subscribeFeed(t, c, f)
	waitFor(t, 10*time.Second, "all three applied", func() bool { return f.appliedRows(t) == 3 })
	if n := f.callsOf("ledger-2"); n != 2 {
		t.Errorf("failed event delivered %d times, want 2", n)
	}
	for _, id := range []string{"ledger-1", "ledger-3"} {
		if n := f.callsOf(id); n != 1 {
			t.Errorf("%s delivered %d times, want 1", id, n)
		}
	}
}

// resume stops a consumer after it acknowledged some events and checks that
// a new subscription under the same name gets exactly the rest.
func resume(t *testing.T, c *nats.Conn) {
	db := openSQLite(t, "ledger")
	p := newProducer(db)
	relay := &event.Relay{DB: db, Publisher: c}
	for range 5 {
		p.mustCommit(t, "a")
	}
	if err := relay.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := newFeed(t)
	stop := subscribeFeed(t, c, f)
	waitFor(t, 10*time.Second, "the first five", func() bool { return f.appliedRows(t) == 5 })
	stop()
	for range 3 {
		p.mustCommit(t, "a")
	}
	if err := relay.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	subscribeFeed(t, c, f)
	waitFor(t, 10*time.Second, "all eight", func() bool { return f.appliedRows(t) == 8 })
	time.Sleep(50 * time.Millisecond) // a replay would arrive by now
	for i := 1; i <= 8; i++ {
		if n := f.callsOf(fmt.Sprintf("ledger-%d", i)); n != 1 {
			t.Errorf("ledger-%d delivered %d times, want 1", i, n)
		}
	}
	f.checkApplied(t, p.next)
}

// relayCrash publishes through a publisher that dies on its third call
// after passing on half of its batch, as a process killed between publishing
// and deleting would, and checks that a later relay publishes the rest with
// no duplicate reaching the consumer.
func relayCrash(t *testing.T, c *nats.Conn, db *store.DB) {
	ctx := context.Background()
	p := newProducer(db)
	p.mustCommitRandom(t, 50, []string{"a", "b", "c"})
	calls := 0
	dying := event.PublisherFunc(func(ctx context.Context, evs []event.Event) error {
		calls++
		if calls == 3 {
			if err := c.Publish(ctx, evs[:len(evs)/2]); err != nil {
				return err
			}
			return fmt.Errorf("killed mid-batch")
		}
		return c.Publish(ctx, evs)
	})
	if err := (&event.Relay{DB: db, Publisher: dying, Batch: 10}).Flush(ctx); err == nil {
		t.Fatal("Flush through a dying publisher returned nil")
	}
	if n := outboxRows(t, db); n != 30 {
		t.Fatalf("outbox holds %d rows after the crash, want 30 (two batches of 10 published)", n)
	}
	if err := (&event.Relay{DB: db, Publisher: c, Batch: 10}).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := outboxRows(t, db); n != 0 {
		t.Fatalf("outbox holds %d rows after recovery", n)
	}
	f := newFeed(t)
	subscribeFeed(t, c, f)
	waitFor(t, 10*time.Second, "all 50", func() bool { return f.appliedRows(t) == 50 })
	time.Sleep(50 * time.Millisecond)
	if calls := f.totalCalls(); calls != 50 {
		t.Errorf("consumer handled %d deliveries of 50 events: duplicates got through", calls)
	}
	f.checkApplied(t, p.next)
}
