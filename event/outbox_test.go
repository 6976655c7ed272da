package event_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/event"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// engines lists the databases the outbox is tested on.
var engines = []struct {
	name string
	open func(testing.TB) *store.DB
}{
	{"sqlite", mustOpenSQLite},
	{"postgres", func(tb testing.TB) *store.DB { return migratedDB(tb, storetest.Postgres(tb, "svc")) }},
}

// mustOpenSQLite returns a migrated SQLite database for service "svc".
func mustOpenSQLite(tb testing.TB) *store.DB {
	return migratedDB(tb, storetest.SQLite(tb, "svc"))
}

// migratedDB applies the outbox migrations to db.
func migratedDB(tb testing.TB, db *store.DB) *store.DB {
	tb.Helper()
	if err := event.Migrate(context.Background(), db); err != nil {
		tb.Fatal(err)
	}
	return db
}

// t0 is the service clock's reading in these tests.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

// mkEvents returns n events numbered from first.
func mkEvents(first, n int) []event.Event {
	evs := make([]event.Event, n)
	for i := range evs {
		k := first + i
		evs[i] = event.Event{
			Topic:   "ledger.transfer.created",
			Key:     fmt.Sprintf("acc-%d", k%7),
			Time:    t0.Add(time.Duration(k) * time.Millisecond),
			Payload: []byte(fmt.Sprintf(`{"n":%d}`, k)),
		}
	}
	return evs
}

func mustAppend(tb testing.TB, db *store.DB, evs ...event.Event) {
	tb.Helper()
	err := db.InTx(context.Background(), func(tx *sql.Tx) error {
		return event.Append(context.Background(), tx, db, evs...)
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func outboxRows(tb testing.TB, db *store.DB) int {
	tb.Helper()
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// flush publishes db's outbox into a fresh Memory and returns what arrived.
func flush(tb testing.TB, db *store.DB) []event.Event {
	tb.Helper()
	var m event.Memory
	r := &event.Relay{DB: db, Publisher: &m}
	if err := r.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return m.Published()
}

// appender is one of the two ways to append: event.Append, and an Outbox
// prepared on db.
type appender func(t *testing.T, db *store.DB) func(ctx context.Context, tx *sql.Tx, evs ...event.Event) error

var appenders = []struct {
	name string
	make appender
}{
	{"Append", func(t *testing.T, db *store.DB) func(context.Context, *sql.Tx, ...event.Event) error {
		return func(ctx context.Context, tx *sql.Tx, evs ...event.Event) error {
			return event.Append(ctx, tx, db, evs...)
		}
	}},
	{"Outbox", func(t *testing.T, db *store.DB) func(context.Context, *sql.Tx, ...event.Event) error {
		o, err := event.PrepareOutbox(context.Background(), db)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(o.Close)
		return o.Append
	}},
}

func TestAppend(t *testing.T) {
	for _, eng := range engines {
		for _, ap := range appenders {
			t.Run(eng.name+"/"+ap.name, func(t *testing.T) {
				testAppend(t, eng.open, ap.make)
			})
		}
	}
}

func testAppend(t *testing.T, open func(testing.TB) *store.DB, mk appender) {
	mustAppend := func(t *testing.T, db *store.DB, evs ...event.Event) {
		t.Helper()
		app := mk(t, db)
		if err := db.InTx(context.Background(), func(tx *sql.Tx) error { return app(context.Background(), tx, evs...) }); err != nil {
			t.Fatal(err)
		}
	}
	{
		{
			t.Run("events round-trip with ids from the outbox sequence", func(t *testing.T) {
				t.Parallel()
				db := open(t)
				in := mkEvents(1, 3)
				in[1].Key, in[1].Payload = "", nil
				in[2].ID = "ignored"
				mustAppend(t, db, in...)
				got := flush(t, db)
				if len(got) != 3 {
					t.Fatalf("published %d events, want 3", len(got))
				}
				for i, e := range got {
					want := in[i]
					if e.ID != fmt.Sprintf("svc-%d", i+1) || e.Topic != want.Topic || e.Key != want.Key ||
						!e.Time.Equal(want.Time) || !bytes.Equal(e.Payload, want.Payload) {
						t.Errorf("event %d = %+v, want %+v with id svc-%d", i, e, want, i+1)
					}
				}
			})
			t.Run("a rolled-back transaction leaves no event", func(t *testing.T) {
				t.Parallel()
				db := open(t)
				boom := errors.New(errors.Conflict, "rolled back")
				app := mk(t, db) // prepared outside the transaction: SQLite's writer has one connection
				err := db.InTx(context.Background(), func(tx *sql.Tx) error {
					if err := app(context.Background(), tx, mkEvents(1, 2)...); err != nil {
						return err
					}
					return boom
				})
				if err != boom {
					t.Fatalf("InTx = %v, want %v", err, boom)
				}
				if n := outboxRows(t, db); n != 0 {
					t.Fatalf("outbox has %d rows after rollback", n)
				}
			})
			t.Run("a batch larger than one statement keeps its order", func(t *testing.T) {
				t.Parallel()
				db := open(t)
				mustAppend(t, db, mkEvents(0, 1201)...)
				got := flush(t, db)
				if len(got) != 1201 {
					t.Fatalf("published %d events, want 1201", len(got))
				}
				for i, e := range got {
					if want := fmt.Sprintf(`{"n":%d}`, i); string(e.Payload) != want || e.ID != fmt.Sprintf("svc-%d", i+1) {
						t.Fatalf("event %d = %s %s, want svc-%d %s", i, e.ID, e.Payload, i+1, want)
					}
				}
			})
			t.Run("an event without topic or time, or too large for a broker, is a bug", func(t *testing.T) {
				t.Parallel()
				db := open(t)
				app := mk(t, db)
				huge := event.Event{Topic: "ledger.x.y", Time: t0, Payload: bytes.Repeat([]byte("x"), event.MaxPayload+1)}
				bad := []event.Event{{Time: t0}, {Topic: "ledger.x.y"}, huge,
					{Topic: "ledger.x y", Time: t0}, {Topic: "ledger..y", Time: t0}, {Topic: "ledger.>", Time: t0}, {Topic: "ledger.*.y", Time: t0},
					{Topic: "ledger.x.y", Key: strings.Repeat("k", event.MaxKey+1), Time: t0}, {Topic: "ledger.x.y", Key: "a\r\nNats-Msg-Id: x", Time: t0}}
				for _, e := range bad {
					err := db.InTx(context.Background(), func(tx *sql.Tx) error {
						return app(context.Background(), tx, mkEvents(1, 1)[0], e)
					})
					if errors.CodeOf(err) != errors.Internal {
						t.Errorf("Append(%s, %d bytes) = %v, want an internal error", e.Topic, len(e.Payload), err)
					}
				}
				if n := outboxRows(t, db); n != 0 {
					t.Fatalf("outbox has %d rows after failed appends", n)
				}
				longest := event.Event{Topic: "ledger." + strings.Repeat("t", event.MaxTopic-7), Key: strings.Repeat("k", event.MaxKey), Time: t0}
				if err := db.InTx(context.Background(), func(tx *sql.Tx) error { return app(context.Background(), tx, longest) }); err != nil {
					t.Errorf("Append of the longest topic and key = %v", err)
				}
				if got := flush(t, db); len(got) != 1 || got[0].Topic != longest.Topic || got[0].Key != longest.Key {
					t.Errorf("published %+v, want the one event with the longest topic and key", got)
				}
			})
			t.Run("migrating twice is harmless", func(t *testing.T) {
				t.Parallel()
				db := open(t)
				mustAppend(t, db, mkEvents(1, 1)...)
				if err := event.Migrate(context.Background(), db); err != nil {
					t.Fatal(err)
				}
				if n := outboxRows(t, db); n != 1 {
					t.Fatalf("outbox has %d rows, want 1", n)
				}
			})
		}
	}
}

func TestSeen(t *testing.T) {
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			ctx := context.Background()
			db := eng.open(t)
			seen := func(tx *sql.Tx, consumer, id string) bool {
				t.Helper()
				ok, err := event.Seen(ctx, tx, db, consumer, id)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				if seen(tx, "feed", "ledger-1") {
					t.Error("first sighting reported as seen")
				}
				if !seen(tx, "feed", "ledger-1") {
					t.Error("second sighting in the same transaction not reported as seen")
				}
				if seen(tx, "notify", "ledger-1") {
					t.Error("another consumer's sighting counted")
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			_ = db.InTx(ctx, func(tx *sql.Tx) error {
				if !seen(tx, "feed", "ledger-1") {
					t.Error("committed sighting forgotten")
				}
				if seen(tx, "feed", "ledger-2") {
					t.Error("unseen event reported as seen")
				}
				return errors.New(errors.Conflict, "roll back")
			})
			_ = db.InTx(ctx, func(tx *sql.Tx) error {
				if seen(tx, "feed", "ledger-2") {
					t.Error("a rolled-back sighting was kept")
				}
				return nil
			})
		})
	}
}

// BenchmarkAppend measures the ledger's hot path: one transaction appending
// a batch of 500 events, on SQLite.
func BenchmarkAppend(b *testing.B) {
	db := mustOpenSQLite(b)
	ctx := context.Background()
	evs := mkEvents(0, 500)
	for i := range evs {
		evs[i].Payload = bytes.Repeat([]byte("x"), 200)
	}
	for b.Loop() {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			return event.Append(ctx, tx, db, evs...)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(evs))/b.Elapsed().Seconds(), "events/s")
}
