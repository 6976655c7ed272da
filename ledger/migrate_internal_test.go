package ledger

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

// A ledger written before accounts.last_at existed is given, by migration
// 002, each account's newest entry time; the next write is timed no
// earlier, even by a clock behind it.
func TestLastAtMigrationFillsFromEntries(t *testing.T) {
	storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		first := fstest.MapFS{}
		if err := fs.WalkDir(migrations, "migrations", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasPrefix(d.Name(), "001_") {
				return err
			}
			b, err := migrations.ReadFile(path)
			first[d.Name()] = &fstest.MapFile{Data: b}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := store.Migrate(ctx, db, "ledger", first); err != nil {
			t.Fatal(err)
		}
		at := batchEpoch.UnixNano()
		for _, q := range []string{
			`INSERT INTO accounts (id, currency, owner, rule, overdraft_limit, status, posted, pending, last_seq, created_at) VALUES ('acc_a', 'GBP', '', 'none', 0, 'open', 5, 0, 2, 0)`,
			`INSERT INTO accounts (id, currency, owner, rule, overdraft_limit, status, posted, pending, last_seq, created_at) VALUES ('acc_b', 'GBP', '', 'none', 0, 'open', -5, 0, 2, 0)`,
			`INSERT INTO accounts (id, currency, owner, rule, overdraft_limit, status, posted, pending, last_seq, created_at) VALUES ('acc_c', 'GBP', '', 'none', 0, 'open', 0, 0, 0, 0)`,
			`INSERT INTO entries (account_id, seq, transfer_id, kind, posted, pending, posted_after, pending_after, at) VALUES
				('acc_a', 1, 'trf_1', 'transfer', 2, 0, 2, 0, ?), ('acc_a', 2, 'trf_2', 'transfer', 3, 0, 5, 0, ?),
				('acc_b', 1, 'trf_1', 'transfer', -2, 0, -2, 0, ?), ('acc_b', 2, 'trf_2', 'transfer', -3, 0, -5, 0, ?)`,
		} {
			args := []any{}
			if strings.Contains(q, "entries") {
				args = []any{at + 1, at + 2, at + 1, at + 2}
			}
			if _, err := db.Write.ExecContext(ctx, db.Rebind(q), args...); err != nil {
				t.Fatal(err)
			}
		}
		// Reopened by this version: 002 runs; its clock is an hour behind.
		l, err := Open(ctx, db, Config{Now: func() time.Time { return batchEpoch.Add(-time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for id, want := range map[string]int64{"acc_a": at + 2, "acc_b": at + 2, "acc_c": 0} {
			a, err := l.getAcct(ctx, id)
			if err != nil || a.lastAt != want {
				t.Fatalf("%s last_at = %v, %v; want %d", id, a, err, want)
			}
		}
		tr, err := l.Transfer(ctx, TransferRequest{Key: "after", Legs: []Leg{{AccountID: "acc_a", Amount: -1, Currency: "GBP"}, {AccountID: "acc_c", Amount: 1, Currency: "GBP"}}})
		if err != nil {
			t.Fatal(err)
		}
		if tr.At.UnixNano() != at+2 {
			t.Errorf("a write after the upgrade, by a clock behind, is timed %v; want %v, its accounts' newest entry", tr.At, time.Unix(0, at+2).UTC())
		}
		if err := Verify(ctx, db); err != nil {
			t.Fatal(err)
		}
	})
}
