package postgres_test

import (
	"context"
	"database/sql"
	"testing"
	"testing/fstest"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/postgres"
	"github.com/corebank/corebank/store/storetest"
)

func open(t *testing.T, url, service string) *store.DB {
	t.Helper()
	db, err := postgres.Open(t.Context(), url, service)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func one[T any](t *testing.T, db *sql.DB, q string, args ...any) T {
	t.Helper()
	var v T
	if err := db.QueryRowContext(context.Background(), q, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// Services sharing one database each live in their own schema and never see
// each other's tables, though both name them the same.
func TestSchemaPerService(t *testing.T) {
	url := storetest.Database(t)
	ledger := open(t, url, "ledger")
	card := open(t, url, "card")
	ctx := t.Context()
	m := fstest.MapFS{"001_things.sql": &fstest.MapFile{Data: []byte("CREATE TABLE things (owner TEXT);")}}
	for _, db := range []*store.DB{ledger, card} {
		if err := store.Migrate(ctx, db, db.Service, m); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Write.ExecContext(ctx, "INSERT INTO things VALUES ($1)", db.Service); err != nil {
			t.Fatal(err)
		}
	}
	for _, db := range []*store.DB{ledger, card} {
		if got := one[string](t, db.Read, "SELECT string_agg(owner, ',') FROM things"); got != db.Service {
			t.Errorf("%s sees things owned by %q, want only its own", db.Service, got)
		}
		if got := one[string](t, db.Read, "SELECT current_schema()"); got != db.Service {
			t.Errorf("%s: current_schema = %q", db.Service, got)
		}
		if got := one[int](t, db.Read, "SELECT COUNT(*) FROM schema_migrations"); got != 1 {
			t.Errorf("%s: schema_migrations rows = %d, want its own 1", db.Service, got)
		}
	}
	if got := one[int](t, ledger.Read, "SELECT COUNT(*) FROM pg_tables WHERE tablename = 'things' AND schemaname IN ('ledger', 'card')"); got != 2 {
		t.Errorf("tables named things in schemas ledger and card = %d, want 2", got)
	}
}

// A service name that is not a lower-case identifier still gets its own
// schema, and unqualified names resolve there.
func TestServiceNameNeedsQuoting(t *testing.T) {
	url := storetest.Database(t)
	db := open(t, url, "Card-Vault")
	ctx := t.Context()
	if _, err := db.Write.ExecContext(ctx, "CREATE TABLE t (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if got := one[string](t, db.Read, "SELECT schemaname FROM pg_tables WHERE tablename = 't'"); got != "Card-Vault" {
		t.Errorf("table t is in schema %q, want Card-Vault", got)
	}
	// Opening again finds the same schema.
	again := open(t, url, "Card-Vault")
	if got := one[int](t, again.Read, "SELECT COUNT(*) FROM t"); got != 0 {
		t.Errorf("rows = %d", got)
	}
}

func TestDurabilitySettings(t *testing.T) {
	db := storetest.Postgres(t, "ledger")
	for name, want := range map[string]string{"synchronous_commit": "on", "fsync": "on"} {
		if got := one[string](t, db.Read, "SHOW "+name); got != want {
			t.Errorf("%s = %s, want %s", name, got, want)
		}
	}
	if db.Dialect != store.Postgres || db.Service != "ledger" || db.Read != db.Write {
		t.Errorf("Dialect, Service = %q, %q; Read == Write: %v", db.Dialect, db.Service, db.Read == db.Write)
	}
}

// Two opens racing to create the schema both succeed.
func TestConcurrentOpen(t *testing.T) {
	url := storetest.Database(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := postgres.Open(context.Background(), url, "ledger")
			if err == nil {
				db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	// The one schema they raced to create is there, and is where they work.
	db, err := postgres.Open(context.Background(), url, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var schema string
	var n int
	if err := db.Write.QueryRow(`SELECT current_schema()`).Scan(&schema); err != nil || schema != "ledger" {
		t.Errorf("current_schema() = %q, %v; want ledger", schema, err)
	}
	if err := db.Write.QueryRow(`SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = 'ledger'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d ledger schemas, %v; want 1", n, err)
	}
}
