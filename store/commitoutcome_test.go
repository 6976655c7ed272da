package store_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// itemsThroughCutter opens a PostgreSQL database with a table items,
// directly and through a CommitCutter (stalling or closing).
func itemsThroughCutter(t *testing.T, stall bool) (direct, via *store.DB, p *storetest.CommitCutter) {
	t.Helper()
	direct, via, p = storetest.PostgresCutting(t, "committer", stall)
	if _, err := direct.Write.ExecContext(context.Background(), `CREATE TABLE items (id TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	return direct, via, p
}

// When the connection is lost while a group's COMMIT is in flight, the
// server may have committed: every caller of the group is answered Timeout
// (the outcome is unknown), not Unavailable (nothing was stored), and here
// the group was indeed stored.
func TestCommitterLostCommitAnswersTimeout(t *testing.T) {
	ctx := context.Background()
	ddb, db, p := itemsThroughCutter(t, false)
	c := store.NewCommitter(db, 64)
	defer c.Close()

	// One group, whose COMMIT the proxy cuts.
	insert := func(id string) func(context.Context, *sql.Tx) error {
		return func(ctx context.Context, tx *sql.Tx) error {
			p.Arm() // this group's COMMIT loses its answer
			_, err := tx.ExecContext(ctx, `INSERT INTO items (id) VALUES ($1)`, id)
			return err
		}
	}
	ids := []string{"a", "b", "c"}
	errs := oneGroup(t, c, insert(ids[0]), insert(ids[1]), insert(ids[2]))
	if !p.WasCut() {
		t.Fatal("no COMMIT went through the proxy")
	}
	for i, err := range errs {
		if errors.CodeOf(err) != errors.Timeout || !store.CommitOutcomeUnknown(err) {
			t.Errorf("caller %d of the group whose COMMIT's answer was lost: %v, want timeout (outcome unknown)", i, err)
		}
	}
	if n := count(t, ddb.Read, `SELECT COUNT(*) FROM items`); n != len(ids) {
		t.Fatalf("%d items stored, want %d: the server committed the group", n, len(ids))
	}
	// The committer carries on, on a new connection.
	if err := c.InTx(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO items (id) VALUES ('after')`)
		return err
	}); err != nil {
		t.Fatalf("the next group: %v", err)
	}
}

// A deadline that fires while COMMIT is in flight leaves its outcome
// unknown too: here the server committed and the answer never came.
func TestInTxDeadlineDuringCommitOutcomeUnknown(t *testing.T) {
	ctx := context.Background()
	ddb, db, p := itemsThroughCutter(t, true)
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	err := db.InTx(tctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(tctx, `INSERT INTO items (id) VALUES ('a')`); err != nil {
			return err
		}
		p.Arm()
		return nil
	})
	if !p.WasCut() {
		t.Fatal("no COMMIT went through the proxy")
	}
	if err == nil || !store.CommitOutcomeUnknown(err) {
		t.Errorf("InTx whose deadline passed during COMMIT: %v, want an unknown outcome", err)
	}
	if !errors.IsErr(err, context.DeadlineExceeded) {
		t.Errorf("InTx: %v, want the deadline in its chain", err)
	}
	if n := count(t, ddb.Read, `SELECT COUNT(*) FROM items`); n != 1 {
		t.Fatalf("%d items stored, want 1: the server committed", n)
	}
}

// A context that ended before COMMIT was sent is a definite failure:
// nothing is stored, and the outcome is known.
func TestInTxContextEndedBeforeCommit(t *testing.T) {
	storetest.Each(t, "committer", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Write.ExecContext(ctx, `CREATE TABLE items (id TEXT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		err := db.InTx(cctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(cctx, `INSERT INTO items (id) VALUES ('a')`); err != nil {
				return err
			}
			cancel()
			return nil
		})
		if err == nil || store.CommitOutcomeUnknown(err) || !errors.IsErr(err, context.Canceled) {
			t.Errorf("InTx whose context ended before COMMIT: %v, want a definite context.Canceled", err)
		}
		if n := count(t, db.Read, `SELECT COUNT(*) FROM items`); n != 0 {
			t.Fatalf("%d items stored by a transaction never committed", n)
		}
	})
}
