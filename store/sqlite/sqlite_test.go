package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/sqlite"
	"github.com/corebank/corebank/store/storetest"

	_ "modernc.org/sqlite" // a second, independent connection in tests
)

func pragma(t *testing.T, c interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, name string) string {
	t.Helper()
	var v string
	if err := c.QueryRowContext(context.Background(), "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestWriterPragmas(t *testing.T) {
	db := storetest.SQLite(t, "ledger")
	for name, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "2", // FULL: every commit is fsynced
		"foreign_keys": "1",
		"busy_timeout": "10000",
		"query_only":   "0",
	} {
		if got := pragma(t, db.Write, name); got != want {
			t.Errorf("writer %s = %s, want %s", name, got, want)
		}
	}
	if got := db.Write.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer pool max connections = %d, want 1", got)
	}
}

func TestReadersAreQueryOnly(t *testing.T) {
	db := storetest.SQLite(t, "ledger")
	ctx := t.Context()
	if _, err := db.Write.ExecContext(ctx, "CREATE TABLE t (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	// Hold several reader connections at once so the check covers more than
	// the first one.
	n := db.Read.Stats().MaxOpenConnections
	if n < 2 {
		t.Fatalf("reader pool max connections = %d, want several", n)
	}
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Read.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		if got := pragma(t, c, "query_only"); got != "1" {
			t.Errorf("reader %d: query_only = %s, want 1", i, got)
		}
		if got := pragma(t, c, "journal_mode"); got != "wal" {
			t.Errorf("reader %d: journal_mode = %s, want wal", i, got)
		}
		if _, err := c.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err == nil {
			t.Errorf("reader %d: INSERT succeeded", i)
		}
	}
	var rows int
	if err := db.Write.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("rows written through readers = %d, want 0", rows)
	}
}

// The writer's transactions take the write lock at BEGIN (IMMEDIATE), so
// they can never fail later trying to upgrade a read lock.
func TestWriterBeginsImmediate(t *testing.T) {
	dir := t.TempDir()
	db, err := sqlite.Open(t.Context(), dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Write.BeginTx(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	// An independent connection with no busy wait must find the lock taken,
	// although tx has not run a statement yet.
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ledger.db")+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err == nil {
		other.ExecContext(t.Context(), "ROLLBACK")
		t.Fatal("a second writer began while the store's transaction was open: BEGIN is not IMMEDIATE")
	}
}

// WAL: a reader neither waits for an open write transaction nor sees it, and
// an open read transaction keeps its snapshot after the writer commits.
func TestReaderAndWriterDoNotBlock(t *testing.T) {
	db := storetest.SQLite(t, "ledger")
	ctx := t.Context()
	if _, err := db.Write.ExecContext(ctx, "CREATE TABLE t (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Write.ExecContext(ctx, "INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	count := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) int {
		t.Helper()
		// A reader blocked by the writer would hit this deadline (the
		// busy timeout is 10s).
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n int
		if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
			t.Fatalf("read: %v", err)
		}
		return n
	}

	snap, err := db.Read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Rollback()
	if n := count(snap); n != 1 { // starts the snapshot
		t.Fatalf("snapshot sees %d rows, want 1", n)
	}

	w, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Rollback()
	if _, err := w.ExecContext(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	if n := count(db.Read); n != 1 {
		t.Errorf("reader sees %d rows while the write is uncommitted, want 1", n)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("commit while a read transaction is open: %v", err)
	}
	if n := count(snap); n != 1 {
		t.Errorf("open snapshot sees %d rows after the commit, want still 1", n)
	}
	if n := count(db.Read); n != 2 {
		t.Errorf("new read sees %d rows after the commit, want 2", n)
	}
}

// Many readers run while the writer commits, none fails with SQLITE_BUSY.
func TestConcurrentReadsDuringWrites(t *testing.T) {
	db := storetest.SQLite(t, "ledger")
	ctx := t.Context()
	if _, err := db.Write.ExecContext(ctx, "CREATE TABLE t (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	const writes = 200
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 16)
	for range 4 {
		wg.Go(func() {
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				var n int
				if err := db.Read.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
					errs <- err
					return
				}
				if n < last {
					errs <- errRowsWentBack
					return
				}
				last = n
			}
		})
	}
	for i := range writes {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES (?)", i)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := db.Read.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != writes {
		t.Errorf("rows = %d, want %d", n, writes)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

const errRowsWentBack = errString("a reader saw fewer rows than before")

func TestReopenKeepsCommits(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	db, err := sqlite.Open(ctx, dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "CREATE TABLE t (a TEXT)"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO t VALUES ('kept')")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = sqlite.Open(ctx, dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var a string
	if err := db.Read.QueryRowContext(ctx, "SELECT a FROM t").Scan(&a); err != nil {
		t.Fatal(err)
	}
	if a != "kept" {
		t.Errorf("a = %q, want kept", a)
	}
	if db.Dialect != store.SQLite || db.Service != "ledger" {
		t.Errorf("Dialect, Service = %q, %q", db.Dialect, db.Service)
	}
}

// File names are URIs inside the driver: a directory with '#', '?' or '%' in
// its name (t.TempDir keeps '#' and '%' from subtest names) must still be the
// one used.
func TestOddDirectoryNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a#b?c%41 d")
	db, err := sqlite.Open(t.Context(), dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Write.ExecContext(t.Context(), "CREATE TABLE t (a INTEGER)"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ledger.db")); err != nil {
		t.Errorf("database file not where asked: %v", err)
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "a*")); len(m) != 1 {
		t.Errorf("files beside the directory: %q, want only the directory", m)
	}
}

// The writer never checkpoints (wal_autocheckpoint=0); the background
// checkpointer must, or the WAL grows without bound. Only a checkpoint
// moves pages into the database file, so its growth proves one ran.
func TestCheckpointerCopiesWALIntoDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := sqlite.Open(ctx, dir, "svc")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Write.ExecContext(ctx, `CREATE TABLE blobs (id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "svc.db")
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := db.Write.ExecContext(ctx, `INSERT INTO blobs (b) VALUES (randomblob(16384))`); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if after.Size() >= before.Size()+50*16384 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes, was %d: the WAL was never checkpointed into it", after.Size(), before.Size())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close may be called more than once, like sql.DB's.
func TestCloseTwice(t *testing.T) {
	db, err := sqlite.Open(context.Background(), t.TempDir(), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close() // must not panic
}
