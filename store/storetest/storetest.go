// Package storetest gives tests real databases: a fresh SQLite store in a
// temporary directory, or a fresh PostgreSQL database on a test server, each
// removed when the test ends. Every service package tests its store code on
// both engines with Each.
//
// PostgreSQL comes from COREBANK_TEST_POSTGRES_URL, an admin URL such as
// postgres://corebank@127.0.0.1:55432/postgres?sslmode=disable (what
// .ci/postgres.sh start prints). When it is unset, a test fails under CI (env
// CI set); elsewhere storetest starts the private server with
// .ci/postgres.sh once per test binary, and skips the PostgreSQL tests with
// the reason when it cannot.
package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/postgres"
	"github.com/corebank/corebank/store/sqlite"
)

// SQLite returns a new, empty SQLite store for service in a temporary
// directory, closed when t ends.
func SQLite(t testing.TB, service string) *store.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), t.TempDir(), service)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storetest: close sqlite: %v", err)
		}
	})
	return db
}

// Postgres returns a store for service in a new, empty PostgreSQL database
// (see Database), closed and dropped when t ends. It skips t when no server
// can be had outside CI.
func Postgres(t testing.TB, service string) *store.DB {
	t.Helper()
	return openPostgres(t, Database(t), service)
}

// PostgresCutting returns two stores for service on one new, empty
// PostgreSQL database: direct, and via, whose connections go through the
// CommitCutter p (stalling or closing; see cutCommits).
func PostgresCutting(t *testing.T, service string, stall bool) (direct, via *store.DB, p *CommitCutter) {
	t.Helper()
	url := Database(t)
	cut, p := cutCommits(t, url, stall)
	return openPostgres(t, url, service), openPostgres(t, cut, service), p
}

// openPostgres opens the store for service at url, closed when t ends.
func openPostgres(t testing.TB, url, service string) *store.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url, service)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	// Cleanups run last-in first-out: this close runs before the drop
	// registered by Database.
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storetest: close postgres: %v", err)
		}
	})
	return db
}

// Each runs fn as two subtests, "sqlite" and "postgres", each with a fresh
// store for service on that engine.
func Each(t *testing.T, service string, fn func(t *testing.T, db *store.DB)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) { fn(t, SQLite(t, service)) })
	t.Run("postgres", func(t *testing.T) { fn(t, Postgres(t, service)) })
}

// Like returns a fresh store for service on the same engine as like: for a
// test run under Each that needs a second service's database.
func Like(t testing.TB, like *store.DB, service string) *store.DB {
	t.Helper()
	if like.Dialect == store.Postgres {
		return Postgres(t, service)
	}
	return SQLite(t, service)
}

// Dump returns every value of every table of db's schema as text (bytes as
// they are, other values as fmt prints them), keyed "table.column": for
// tests that search what a service stored, a card number, say.
func Dump(t testing.TB, db *store.DB) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, tbl := range Tables(t, db) {
		rows, err := db.Read.Query(`SELECT * FROM ` + tbl)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				var s string
				switch v := v.(type) {
				case []byte:
					s = string(v)
				default:
					s = fmt.Sprint(v)
				}
				out[tbl+"."+cols[i]] = append(out[tbl+"."+cols[i]], s)
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// Tables lists the tables of db's schema.
func Tables(t testing.TB, db *store.DB) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table'`
	if db.Dialect == store.Postgres {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`
	}
	rows, err := db.Read.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
