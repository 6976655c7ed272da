package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/postgres"
	"github.com/corebank/corebank/store/storetest"
	"github.com/jackc/pgx/v5"
)

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// applied returns the recorded "version name" pairs of set, in order.
func applied(t *testing.T, db *store.DB, set string) []string {
	t.Helper()
	rows, err := db.Read.QueryContext(t.Context(), db.Rebind("SELECT version, name FROM schema_migrations WHERE set_name = ? ORDER BY version"), set)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int
		var name string
		if err := rows.Scan(&v, &name); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{strconv.Itoa(v), name}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func equal(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

func TestMigrate(t *testing.T) {
	storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		// Version 10 sorts before 2 as text: it must still run after it.
		fsys := fstest.MapFS{
			"1_accounts.sql":  file("CREATE TABLE accounts (id TEXT PRIMARY KEY, balance INTEGER NOT NULL);\n"),
			"2_seed.sql":      file("-- two statements in one file\nINSERT INTO accounts (id, balance) VALUES ('a', 1);\nINSERT INTO accounts (id, balance) VALUES ('b', 2);\n"),
			"10_double.sql":   file("UPDATE accounts SET balance = balance * 10;"),
			"README.md":       file("not a migration"),
			"notes/3_skip.md": file("not a migration either"),
		}

		t.Run("applies in numeric order and records the versions", func(t *testing.T) {
			if err := store.Migrate(ctx, db, "ledger", fsys); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db.Read, "SELECT SUM(balance) FROM accounts"); got != 30 {
				t.Errorf("sum of balances = %d, want 30 (seeded 1+2, then multiplied by 10)", got)
			}
			want := []string{"1 1_accounts.sql", "2 2_seed.sql", "10 10_double.sql"}
			if got := applied(t, db, "ledger"); !equal(got, want) {
				t.Errorf("schema_migrations = %q, want %q", got, want)
			}
		})

		t.Run("a second run is a no-op", func(t *testing.T) {
			if err := store.Migrate(ctx, db, "ledger", fsys); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db.Read, "SELECT SUM(balance) FROM accounts"); got != 30 {
				t.Errorf("sum of balances after a second run = %d, want 30 (nothing re-applied)", got)
			}
			if got := applied(t, db, "ledger"); len(got) != 3 {
				t.Errorf("schema_migrations = %q, want 3 rows", got)
			}
		})

		t.Run("applies only what is new", func(t *testing.T) {
			fsys["11_more.sql"] = file("INSERT INTO accounts (id, balance) VALUES ('c', 5);")
			defer delete(fsys, "11_more.sql")
			if err := store.Migrate(ctx, db, "ledger", fsys); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db.Read, "SELECT SUM(balance) FROM accounts"); got != 35 {
				t.Errorf("sum of balances = %d, want 35", got)
			}
		})

		t.Run("a renamed or late-numbered migration is refused", func(t *testing.T) {
			renamed := fstest.MapFS{"1_accounts_v2.sql": file("SELECT 1;"), "2_seed.sql": fsys["2_seed.sql"], "10_double.sql": fsys["10_double.sql"]}
			if err := store.Migrate(ctx, db, "ledger", renamed); err == nil || !strings.Contains(err.Error(), "applied as 1_accounts.sql") {
				t.Errorf("renamed migration: %v, want refused", err)
			}
			late := fstest.MapFS{"1_accounts.sql": fsys["1_accounts.sql"], "2_seed.sql": fsys["2_seed.sql"], "5_late.sql": file("INSERT INTO accounts (id, balance) VALUES ('late', 1000);"), "10_double.sql": fsys["10_double.sql"]}
			if err := store.Migrate(ctx, db, "ledger", late); err == nil || !strings.Contains(err.Error(), "5_late.sql is new but migration 11 is already applied") {
				t.Errorf("late-numbered migration: %v, want refused", err)
			}
			if got := count(t, db.Read, "SELECT SUM(balance) FROM accounts"); got != 35 {
				t.Errorf("sum of balances = %d, want 35: nothing applied", got)
			}
		})

		t.Run("an applied migration edited since is refused", func(t *testing.T) {
			edited := fstest.MapFS{"1_accounts.sql": fsys["1_accounts.sql"], "2_seed.sql": file("INSERT INTO accounts (id, balance) VALUES ('a', 100);"), "10_double.sql": fsys["10_double.sql"]}
			if err := store.Migrate(ctx, db, "ledger", edited); err == nil || !strings.Contains(err.Error(), "2_seed.sql was edited after it was applied") {
				t.Errorf("edited migration: %v, want refused", err)
			}
		})

		t.Run("migrations recorded before checksums are kept take the file's", func(t *testing.T) {
			// As a database migrated by a version that kept no checksums.
			if _, err := db.Write.ExecContext(ctx, "UPDATE schema_migrations SET checksum = ''"); err != nil {
				t.Fatal(err)
			}
			edited := fstest.MapFS{"1_accounts.sql": fsys["1_accounts.sql"], "2_seed.sql": fsys["2_seed.sql"], "10_double.sql": file("-- reworded\nUPDATE accounts SET balance = balance * 10;"), "11_more.sql": file("INSERT INTO accounts (id, balance) VALUES ('c', 5);")}
			if err := store.Migrate(ctx, db, "ledger", edited); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db.Read, "SELECT COUNT(*) FROM schema_migrations WHERE set_name = 'ledger' AND checksum = ''"); got != 0 {
				t.Errorf("%d migrations still without a checksum", got)
			}
			// From now on, an edit is seen.
			delete(edited, "11_more.sql")
			edited["11_more.sql"] = file("INSERT INTO accounts (id, balance) VALUES ('c', 6);")
			if err := store.Migrate(ctx, db, "ledger", edited); err == nil || !strings.Contains(err.Error(), "11_more.sql was edited") {
				t.Errorf("edited migration after checksums were taken: %v, want refused", err)
			}
			if got := count(t, db.Read, "SELECT SUM(balance) FROM accounts"); got != 35 {
				t.Errorf("sum of balances = %d, want 35: nothing applied", got)
			}
		})

		t.Run("sets are recorded apart", func(t *testing.T) {
			outbox := fstest.MapFS{"1_outbox.sql": file("CREATE TABLE outbox (id INTEGER PRIMARY KEY, payload TEXT);")}
			if err := store.Migrate(ctx, db, "outbox", outbox); err != nil {
				t.Fatal(err)
			}
			if got, want := applied(t, db, "outbox"), []string{"1 1_outbox.sql"}; !equal(got, want) {
				t.Errorf("outbox set = %q, want %q", got, want)
			}
			if got := count(t, db.Read, "SELECT COUNT(*) FROM outbox"); got != 0 {
				t.Errorf("outbox rows = %d", got)
			}
			if got := applied(t, db, "ledger"); len(got) != 4 {
				t.Errorf("ledger set = %q, want its 4 versions untouched", got)
			}
		})
	})
}

// A schema_migrations table made before checksums were kept gains the
// column, and the migrations recorded in it are not run again.
func TestMigrateUpgradesItsTable(t *testing.T) {
	storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		for _, q := range []string{
			`CREATE TABLE schema_migrations (set_name TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, PRIMARY KEY (set_name, version))`,
			`CREATE TABLE accounts (id TEXT PRIMARY KEY)`,
			`INSERT INTO schema_migrations (set_name, version, name) VALUES ('ledger', 1, '1_accounts.sql')`,
		} {
			if _, err := db.Write.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		fsys := fstest.MapFS{
			"1_accounts.sql": file("CREATE TABLE accounts (id TEXT PRIMARY KEY);"),
			"2_seed.sql":     file("INSERT INTO accounts (id) VALUES ('a');"),
		}
		if err := store.Migrate(ctx, db, "ledger", fsys); err != nil {
			t.Fatal(err)
		}
		if got := count(t, db.Read, "SELECT COUNT(*) FROM accounts"); got != 1 {
			t.Errorf("%d accounts, want 1 (2 applied, 1 not again)", got)
		}
		if got := count(t, db.Read, "SELECT COUNT(*) FROM schema_migrations WHERE checksum <> ''"); got != 2 {
			t.Errorf("%d migrations with a checksum, want 2", got)
		}
	})
}

func TestMigrateDialectFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"001_kind.sql":          file("CREATE TABLE kind (name TEXT); INSERT INTO kind VALUES ('common');"),
		"001_kind.sqlite.sql":   file("CREATE TABLE kind (name TEXT); INSERT INTO kind VALUES ('sqlite');"),
		"001_kind.postgres.sql": file("CREATE TABLE kind (name TEXT); INSERT INTO kind VALUES ('postgres');"),
		"002_common.sql":        file("INSERT INTO kind VALUES ('common2');"),
		// A trigger and a PL/pgSQL function: statements whose bodies hold
		// semicolons at the ends of lines.
		"003_audit.sqlite.sql": file(`CREATE TABLE audit (name TEXT);
CREATE TRIGGER kind_audit AFTER INSERT ON kind BEGIN
	INSERT INTO audit VALUES (NEW.name);
END;
`),
		"003_audit.postgres.sql": file(`CREATE TABLE audit (name TEXT);
CREATE FUNCTION kind_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit VALUES (NEW.name);
	RETURN NEW;
END;
$$;
CREATE TRIGGER kind_audit AFTER INSERT ON kind FOR EACH ROW EXECUTE FUNCTION kind_audit();
`),
	}
	storetest.Each(t, "dialect", func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		if err := store.Migrate(ctx, db, "dialect", fsys); err != nil {
			t.Fatal(err)
		}
		var name string
		if err := db.Read.QueryRowContext(ctx, "SELECT name FROM kind WHERE name <> 'common2'").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != string(db.Dialect) {
			t.Errorf("ran the %q file on %s", name, db.Dialect)
		}
		d := string(db.Dialect)
		want := []string{"1 001_kind." + d + ".sql", "2 002_common.sql", "3 003_audit." + d + ".sql"}
		if got := applied(t, db, "dialect"); !equal(got, want) {
			t.Errorf("schema_migrations = %q, want %q", got, want)
		}
		if _, err := db.Write.ExecContext(ctx, "INSERT INTO kind VALUES ('x')"); err != nil {
			t.Fatal(err)
		}
		if got := count(t, db.Read, "SELECT COUNT(*) FROM audit WHERE name = 'x'"); got != 1 {
			t.Errorf("audit rows for x = %d, want 1: the trigger is not in place", got)
		}
	})
}

func TestMigrateFailureRollsBack(t *testing.T) {
	storetest.Each(t, "broken", func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		fsys := fstest.MapFS{
			"001_ok.sql":    file("CREATE TABLE ok (a INTEGER);"),
			"002_bad.sql":   file("CREATE TABLE half (a INTEGER);\nINSERT INTO ok VALUES (1);\nINSERT INTO no_such_table VALUES (1);\n"),
			"003_later.sql": file("CREATE TABLE later (a INTEGER);"),
		}
		err := store.Migrate(ctx, db, "broken", fsys)
		if err == nil {
			t.Fatal("Migrate succeeded with a broken migration")
		}
		if !strings.Contains(err.Error(), "002_bad.sql") {
			t.Errorf("error %q does not name the file 002_bad.sql", err)
		}
		if got, want := applied(t, db, "broken"), []string{"1 001_ok.sql"}; !equal(got, want) {
			t.Errorf("schema_migrations = %q, want %q", got, want)
		}
		if got := count(t, db.Read, "SELECT COUNT(*) FROM ok"); got != 0 {
			t.Errorf("rows inserted by the failed migration = %d, want 0", got)
		}
		for _, table := range []string{"half", "later"} {
			if _, err := db.Read.ExecContext(ctx, "SELECT 1 FROM "+table); err == nil {
				t.Errorf("table %s exists after the failed migration", table)
			}
		}

		// Fixed, the migration and those after it apply.
		fsys["002_bad.sql"] = file("CREATE TABLE half (a INTEGER);\nINSERT INTO ok VALUES (1);\n")
		if err := store.Migrate(ctx, db, "broken", fsys); err != nil {
			t.Fatal(err)
		}
		if got := applied(t, db, "broken"); len(got) != 3 {
			t.Errorf("schema_migrations = %q, want 3 rows", got)
		}
		if got := count(t, db.Read, "SELECT COUNT(*) FROM ok"); got != 1 {
			t.Errorf("rows in ok = %d, want 1", got)
		}
	})
}

func TestMigrateRejectsBadNames(t *testing.T) {
	db := storetest.SQLite(t, "names")
	if err := store.Migrate(t.Context(), db, "none", fstest.MapFS{}); err != nil {
		t.Fatal(err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"duplicate number":  {"001_a.sql": file("SELECT 1;"), "1_b.sql": file("SELECT 1;")},
		"duplicate dialect": {"001_a.sqlite.sql": file("SELECT 1;"), "001_b.sqlite.sql": file("SELECT 1;")},
		"no number":         {"init.sql": file("SELECT 1;")},
		"bad number":        {"x1_init.sql": file("SELECT 1;")},
	} {
		t.Run(name, func(t *testing.T) {
			if err := store.Migrate(t.Context(), db, name, fsys); err == nil {
				t.Errorf("Migrate accepted %v", keys(fsys))
			}
			if got := applied(t, db, name); len(got) != 0 {
				t.Errorf("applied %q", got)
			}
		})
	}
}

func keys(m fstest.MapFS) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Replicas of a service start together and migrate the same database at
// once: each migration must still run exactly once. (On PostgreSQL: a
// SQLite file takes one store at a time, TestSQLiteFileTakesOneStore.)
func TestMigrateConcurrently(t *testing.T) {
	fsys := fstest.MapFS{
		"001_t.sql":    file("CREATE TABLE t (a INTEGER);"),
		"002_once.sql": file("INSERT INTO t VALUES (1);"),
		"003_u.sql":    file("CREATE TABLE u (a INTEGER);"),
	}
	const replicas = 4
	run := func(t *testing.T, open func() *store.DB) {
		dbs := make([]*store.DB, replicas)
		for i := range dbs {
			dbs[i] = open()
		}
		var wg sync.WaitGroup
		errs := make([]error, replicas)
		for i, db := range dbs {
			wg.Go(func() { errs[i] = store.Migrate(context.Background(), db, "replica", fsys) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}
		if got := count(t, dbs[0].Read, "SELECT COUNT(*) FROM t"); got != 1 {
			t.Errorf("rows inserted by 002_once.sql = %d, want 1", got)
		}
		if got := applied(t, dbs[0], "replica"); len(got) != 3 {
			t.Errorf("schema_migrations = %q, want 3 rows", got)
		}
	}
	for _, isolation := range []string{"", "repeatable read", "serializable"} {
		name := "postgres"
		if isolation != "" {
			name += ", the database defaulting to " + isolation
		}
		t.Run(name, func(t *testing.T) {
			u := storetest.Database(t)
			if isolation != "" {
				// A DBA's default: a snapshot fixed at the lock would not
				// see what the replica before applied. The store pins
				// read committed.
				pu, err := url.Parse(u)
				if err != nil {
					t.Fatal(err)
				}
				admin, err := sql.Open("pgx", u)
				if err != nil {
					t.Fatal(err)
				}
				defer admin.Close()
				if _, err := admin.Exec(fmt.Sprintf(`ALTER DATABASE %s SET default_transaction_isolation = '%s'`, pgx.Identifier{strings.TrimPrefix(pu.Path, "/")}.Sanitize(), isolation)); err != nil {
					t.Fatal(err)
				}
			}
			run(t, func() *store.DB {
				db, err := postgres.Open(t.Context(), u, "replica")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				var got string
				if err := db.Read.QueryRowContext(t.Context(), "SHOW default_transaction_isolation").Scan(&got); err != nil || got != "read committed" {
					t.Fatalf("the store's isolation is %q (%v), want read committed", got, err)
				}
				return db
			})
		})
	}
}
