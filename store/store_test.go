package store_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

func TestRebind(t *testing.T) {
	pg := &store.DB{Dialect: store.Postgres}
	lite := &store.DB{Dialect: store.SQLite}
	for _, tc := range []struct{ name, in, want string }{
		{"numbers placeholders in order", "SELECT a FROM t WHERE b = ? AND c IN (?, ?)", "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)"},
		{"no placeholders", "SELECT 1", "SELECT 1"},
		{"leaves string literals alone", "SELECT '?', ? FROM t WHERE d = 'a?b'", "SELECT '?', $1 FROM t WHERE d = 'a?b'"},
		{"doubled quote stays inside the literal", "SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"leaves quoted identifiers alone", `SELECT "odd?col" FROM t WHERE x = ?`, `SELECT "odd?col" FROM t WHERE x = $1`},
		{"leaves line comments alone", "SELECT a -- the account's id, or?\nFROM t WHERE id = ?", "SELECT a -- the account's id, or?\nFROM t WHERE id = $1"},
		{"leaves block comments alone", "SELECT /* what's ? */ a FROM t WHERE id = ?", "SELECT /* what's ? */ a FROM t WHERE id = $1"},
		{"unterminated literal is copied", "SELECT ? WHERE a = 'x?", "SELECT $1 WHERE a = 'x?"},
		{"more than nine", "VALUES (?,?,?,?,?,?,?,?,?,?,?)", "VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := pg.Rebind(tc.in); got != tc.want {
				t.Errorf("postgres Rebind(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
			// Cached result is the same.
			if got := pg.Rebind(tc.in); got != tc.want {
				t.Errorf("postgres Rebind(%q) second call = %q", tc.in, got)
			}
			if got := lite.Rebind(tc.in); got != tc.in {
				t.Errorf("sqlite Rebind(%q) = %q, want it unchanged", tc.in, got)
			}
		})
	}
}

func TestRebindRunsOnBothEngines(t *testing.T) {
	storetest.Each(t, "rebind", func(t *testing.T, db *store.DB) {
		var lit, arg string
		var n int64
		q := db.Rebind("SELECT 'what''s ?', CAST(? AS TEXT), CAST(? AS INTEGER) /* one more? */ -- or?\n")
		if err := db.Read.QueryRowContext(t.Context(), q, "x", int64(7)).Scan(&lit, &arg, &n); err != nil {
			t.Fatal(err)
		}
		if lit != "what's ?" || arg != "x" || n != 7 {
			t.Errorf("got %q, %q, %d; want \"what's ?\", \"x\", 7", lit, arg, n)
		}
	})
}

func TestPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		n, w int
		want string
	}{
		{2, 3, "(?,?,?),(?,?,?)"},
		{3, 1, "?,?,?"},
		{1, 2, "(?,?)"},
		{1, 1, "?"},
		{0, 3, ""},
	} {
		if got := store.Placeholders(tc.n, tc.w); got != tc.want {
			t.Errorf("Placeholders(%d, %d) = %q, want %q", tc.n, tc.w, got, tc.want)
		}
	}
	storetest.Each(t, "placeholders", func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		if _, err := db.Write.ExecContext(ctx, "CREATE TABLE t (a INTEGER, b TEXT)"); err != nil {
			t.Fatal(err)
		}
		q := db.Rebind("INSERT INTO t (a, b) VALUES " + store.Placeholders(3, 2))
		if _, err := db.Write.ExecContext(ctx, q, 1, "x", 2, "y", 3, "z"); err != nil {
			t.Fatal(err)
		}
		var n int
		q = db.Rebind("SELECT COUNT(*) FROM t WHERE b IN (" + store.Placeholders(2, 1) + ")")
		if err := db.Read.QueryRowContext(ctx, q, "x", "z").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("rows with b in (x, z) = %d, want 2", n)
		}
	})
}

func TestInTx(t *testing.T) {
	storetest.Each(t, "intx", func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		if _, err := db.Write.ExecContext(ctx, "CREATE TABLE t (a INTEGER)"); err != nil {
			t.Fatal(err)
		}
		insert := func(tx *sql.Tx, a int) error {
			_, err := tx.ExecContext(ctx, db.Rebind("INSERT INTO t (a) VALUES (?)"), a)
			return err
		}

		t.Run("commits when fn succeeds", func(t *testing.T) {
			if err := db.InTx(ctx, func(tx *sql.Tx) error { return insert(tx, 1) }); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db.Read, "SELECT COUNT(*) FROM t WHERE a = 1"); got != 1 {
				t.Errorf("committed rows = %d, want 1 (seen from the read pool)", got)
			}
		})

		t.Run("rolls back and returns fn's error", func(t *testing.T) {
			boom := errors.New("boom")
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				if err := insert(tx, 2); err != nil {
					return err
				}
				return boom
			})
			if !errors.Is(err, boom) {
				t.Fatalf("InTx error = %v, want boom", err)
			}
			if got := count(t, db.Write, "SELECT COUNT(*) FROM t WHERE a = 2"); got != 0 {
				t.Errorf("rows after rollback = %d, want 0", got)
			}
		})

		t.Run("rolls back on panic and the writer stays usable", func(t *testing.T) {
			func() {
				defer func() {
					if recover() == nil {
						t.Error("panic did not propagate")
					}
				}()
				_ = db.InTx(ctx, func(tx *sql.Tx) error {
					if err := insert(tx, 3); err != nil {
						return err
					}
					panic("boom")
				})
			}()
			if got := count(t, db.Write, "SELECT COUNT(*) FROM t WHERE a = 3"); got != 0 {
				t.Errorf("rows after panic = %d, want 0", got)
			}
			// SQLite has one writer connection: a transaction left open would
			// block this one forever.
			if err := db.InTx(ctx, func(tx *sql.Tx) error { return insert(tx, 4) }); err != nil {
				t.Fatal(err)
			}
			if got := count(t, db.Read, "SELECT COUNT(*) FROM t WHERE a = 4"); got != 1 {
				t.Errorf("rows after the next transaction = %d, want 1", got)
			}
		})
	})
}

// count runs a query returning one integer.
func count(t *testing.T, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, query string, args ...any) int {
	t.Helper()
	var n int
	if err := q.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// The ledger's multi-row INSERTs on SQLite are INSERT OR ROLLBACK: no
// statement journal to copy pages into (most of a group's cost past the
// WAL writes), and a constraint broken midway rolls back the whole
// transaction. The group then fails as a whole, as it did, leaving
// nothing, and the writer serves the next one.
func TestInsertOrRollbackFailsTheWholeTransaction(t *testing.T) {
	db := storetest.SQLite(t, "orrollback")
	ctx := t.Context()
	if _, err := db.Write.ExecContext(ctx, "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	ins, err := store.PrepareInserter(ctx, db, "INSERT OR ROLLBACK INTO t (a, b)", "", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	rows := func(as ...int64) func(i int, args []any) []any {
		return func(i int, args []any) []any { return append(args, as[i], "x") }
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if err := ins.Exec(ctx, tx, 2, rows(1, 2)); err != nil {
			return err
		}
		return ins.Exec(ctx, tx, 3, rows(3, 4, 3)) // 3 twice
	})
	if err == nil {
		t.Fatal("a duplicate key committed")
	}
	if got := count(t, db.Write, "SELECT COUNT(*) FROM t"); got != 0 {
		t.Errorf("%d rows after the failed transaction, want 0", got)
	}
	if err := db.InTx(ctx, func(tx *sql.Tx) error { return ins.Exec(ctx, tx, 2, rows(1, 2)) }); err != nil {
		t.Fatalf("the next transaction: %v", err)
	}
	if got := count(t, db.Read, "SELECT COUNT(*) FROM t"); got != 2 {
		t.Errorf("%d rows, want 2", got)
	}
}
