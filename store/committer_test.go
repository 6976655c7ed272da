package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

func TestCommitter(t *testing.T) {
	storetest.Each(t, "committer", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Write.ExecContext(ctx, `CREATE TABLE items (id INTEGER PRIMARY KEY, note TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		c := store.NewCommitter(db, 64)
		defer c.Close()
		count := func(where string) int {
			var n int
			if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM items WHERE `+where).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		insert := func(id int, note string) func(context.Context, *sql.Tx) error {
			return func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO items (id, note) VALUES (?, ?)`), id, note)
				return err
			}
		}

		// Concurrent writers: the good ones are all stored, each failing
		// one (an error after its insert, a duplicate key, a panic) leaves
		// nothing behind and gets its own error, and none of them spoils
		// the group it shared.
		const n = 300
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				switch i % 5 {
				case 1: // writes, then fails
					errs[i] = c.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
						if err := insert(10_000+i, "failed")(ctx, tx); err != nil {
							return err
						}
						return errors.New(errors.Conflict, "changed my mind")
					})
				case 2: // a statement error: aborts a PostgreSQL transaction until the savepoint is rolled back
					errs[i] = c.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
						if err := insert(20_000+i, "dup")(ctx, tx); err != nil {
							return err
						}
						return insert(20_000+i, "dup")(ctx, tx)
					})
				case 3:
					errs[i] = c.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
						if err := insert(30_000+i, "panicked")(ctx, tx); err != nil {
							return err
						}
						panic("bug")
					})
				default:
					errs[i] = c.InTx(ctx, insert(i, "ok"))
				}
			}(i)
		}
		wg.Wait()
		for i, err := range errs {
			switch i % 5 {
			case 1:
				if errors.CodeOf(err) != errors.Conflict {
					t.Errorf("op %d: err %v, want its own conflict", i, err)
				}
			case 2:
				if err == nil {
					t.Errorf("op %d: duplicate key not reported", i)
				}
			case 3:
				if errors.CodeOf(err) != errors.Internal {
					t.Errorf("op %d: panic gave %v, want internal", i, err)
				}
			default:
				if err != nil {
					t.Errorf("op %d: %v", i, err)
				}
			}
		}
		if got, want := count("note = 'ok'"), n*2/5; got != want {
			t.Errorf("%d good rows stored, want %d", got, want)
		}
		if got := count("note <> 'ok'"); got != 0 {
			t.Errorf("%d rows of failed transactions stored", got)
		}

		// A function sees the writes of those before it in its group.
		if err := c.InTx(ctx, insert(50_000, "first")); err != nil {
			t.Fatal(err)
		}
		err := c.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
			var note string
			if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT note FROM items WHERE id = ?`), 50_000).Scan(&note); err != nil {
				return err
			}
			if note != "first" {
				return fmt.Errorf("read %q", note)
			}
			return nil
		})
		if err != nil {
			t.Errorf("read after write: %v", err)
		}

		// A caller whose deadline has passed is refused before queueing.
		dead, cancel := context.WithCancel(ctx)
		cancel()
		if err := c.InTx(dead, insert(60_000, "late")); errors.CodeOf(err) != errors.Timeout {
			t.Errorf("cancelled caller: %v, want timeout", err)
		}
	})
}

// Close runs what is queued and then refuses more.
func TestCommitterClose(t *testing.T) {
	db := storetest.SQLite(t, "committer")
	ctx := context.Background()
	if _, err := db.Write.ExecContext(ctx, `CREATE TABLE items (id INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	c := store.NewCommitter(db, 8)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO items (id) VALUES (?)`, i)
				return err
			})
		}(i)
	}
	wg.Wait()
	c.Close()
	var n int
	if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil || n != 50 {
		t.Fatalf("%d rows after Close (%v), want 50", n, err)
	}
	if err := c.InTx(ctx, func(context.Context, *sql.Tx) error { return nil }); errors.CodeOf(err) != errors.Unavailable {
		t.Errorf("InTx after Close = %v, want unavailable", err)
	}
}

// When a group's commit fails, every function in it is answered
// Unavailable, refusals included: a refusal may rest on an earlier
// function's write, which is not stored either.
func TestCommitterFailedCommitAnswersAllUnavailable(t *testing.T) {
	storetest.Each(t, "committer", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, q := range []string{
			`CREATE TABLE items (id TEXT PRIMARY KEY)`,
			`CREATE TABLE parent (id TEXT PRIMARY KEY)`,
			`CREATE TABLE child (p TEXT REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)`,
		} {
			if _, err := db.Write.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		c := store.NewCommitter(db, 64)
		defer c.Close()
		// Either of these two refuses because of the other's write,
		// whichever runs first.
		create := func(ctx context.Context, tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM items WHERE id = 'x'`).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return errors.New(errors.Conflict, "x already exists")
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO items (id) VALUES ('x')`)
			return err
		}
		orphan := func(ctx context.Context, tx *sql.Tx) error { // fails the commit
			_, err := tx.ExecContext(ctx, `INSERT INTO child (p) VALUES ('missing')`)
			return err
		}
		errs := oneGroup(t, c, create, create, orphan)
		var n int
		if err := db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM items`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d items stored by a group whose commit failed", n)
		}
		for i, err := range errs {
			if errors.CodeOf(err) != errors.Unavailable {
				t.Errorf("function %d of the failed group: %v, want unavailable", i, err)
			}
		}
	})
}

// oneGroup runs fns through c as one group: a first group holds the
// writer until all of them are queued. It returns each one's error.
func oneGroup(t *testing.T, c *store.Committer, fns ...func(context.Context, *sql.Tx) error) []error {
	t.Helper()
	ctx := context.Background()
	running, release := make(chan struct{}), make(chan struct{})
	blocker := make(chan error, 1)
	go func() {
		blocker <- c.InTx(ctx, func(context.Context, *sql.Tx) error {
			close(running)
			<-release
			return nil
		})
	}()
	<-running
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.InTx(ctx, fn)
		}()
	}
	for c.Queued() < len(fns) {
		runtime.Gosched()
	}
	close(release)
	if err := <-blocker; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	return errs
}
