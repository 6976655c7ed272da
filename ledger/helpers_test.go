package ledger_test

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/ledger"
	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/postgres"
	"github.com/corebank/corebank/store/sqlite"
	"github.com/corebank/corebank/store/storetest"
)

// epoch is where the tests' injected clocks start: a round instant far from
// the real clock, so a time read ad hoc from time.Now stands out.
var epoch = time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)

// clock is an injected ledger clock the test moves by hand. The group
// committer reads it from its own goroutine, hence the atomic.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := new(clock)
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward by d and returns the new time.
func (c *clock) Advance(d time.Duration) time.Time {
	return time.Unix(0, c.ns.Add(int64(d))).UTC()
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// openLedger opens a ledger on db and closes it when tb ends.
func openLedger(tb testing.TB, db *store.DB, cfg ledger.Config) *ledger.Ledger {
	tb.Helper()
	l, err := ledger.Open(context.Background(), db, cfg)
	if err != nil {
		tb.Fatalf("ledger.Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Errorf("ledger.Close: %v", err)
		}
	})
	return l
}

// rowCounts are the sizes of the ledger's tables and its outbox.
type rowCounts struct {
	Accounts, Transfers, Entries, Holds, Outbox int64
}

func countRows(tb rapid.TB, db *store.DB) rowCounts {
	tb.Helper()
	var c rowCounts
	// One statement, so the counts are of one snapshot.
	err := db.Read.QueryRowContext(context.Background(), `SELECT
		(SELECT COUNT(*) FROM accounts), (SELECT COUNT(*) FROM transfers), (SELECT COUNT(*) FROM entries),
		(SELECT COUNT(*) FROM holds), (SELECT COUNT(*) FROM outbox)`).Scan(&c.Accounts, &c.Transfers, &c.Entries, &c.Holds, &c.Outbox)
	if err != nil {
		tb.Fatalf("count rows: %v", err)
	}
	return c
}

// checkStored asserts the ledger's invariants on its tables directly, with
// SQL of its own rather than ledger.Verify's, so a bug shared by the ledger
// and its checker still shows:
//
//   - every write's posted entries sum to zero per currency;
//   - all posted balances of a currency sum to zero (nothing created or lost);
//   - each account's stored balances equal the sums of its entries, and its
//     newest entry's running balances;
//   - each entry's running balances are the sums of the entries up to it;
//   - each account's pending balance is what its pending holds reserve;
//   - every entry belongs to a recorded write;
//   - every recorded write has exactly one outbox event (no relay runs in
//     these tests, so the outbox only grows).
func checkStored(tb rapid.TB, db *store.DB) {
	tb.Helper()
	ctx := context.Background()
	// Read everything in one snapshot: the committer may be running.
	tx, err := db.Read.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatalf("begin: %v", err)
	}
	defer tx.Rollback()
	rowsOf := func(what, q string) []string {
		tb.Helper()
		rows, err := tx.QueryContext(ctx, q)
		if err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		var out []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				tb.Fatalf("%s: %v", what, err)
			}
			var b strings.Builder
			for i, c := range cols {
				v := vals[i]
				if bs, ok := v.([]byte); ok {
					v = string(bs)
				}
				fmt.Fprintf(&b, "%s=%v ", c, v)
			}
			out = append(out, b.String())
		}
		if err := rows.Err(); err != nil {
			tb.Fatalf("%s: %v", what, err)
		}
		return out
	}
	for _, c := range []struct{ what, q string }{
		{"writes that do not balance per currency", `
			SELECT e.transfer_id, a.currency, SUM(e.posted) AS total
			FROM entries e JOIN accounts a ON a.id = e.account_id
			GROUP BY e.transfer_id, a.currency HAVING SUM(e.posted) <> 0`},
		{"currencies whose posted balances do not sum to zero", `
			SELECT currency, SUM(posted) AS total FROM accounts GROUP BY currency HAVING SUM(posted) <> 0`},
		{"accounts whose balances differ from the sums of their entries", `
			SELECT a.id, a.posted, a.pending,
				(SELECT COALESCE(SUM(e.posted), 0) FROM entries e WHERE e.account_id = a.id) AS entries_posted,
				(SELECT COALESCE(SUM(e.pending), 0) FROM entries e WHERE e.account_id = a.id) AS entries_pending
			FROM accounts a
			WHERE a.posted <> (SELECT COALESCE(SUM(e.posted), 0) FROM entries e WHERE e.account_id = a.id)
			   OR a.pending <> (SELECT COALESCE(SUM(e.pending), 0) FROM entries e WHERE e.account_id = a.id)`},
		{"accounts whose newest entry disagrees with their balances", `
			SELECT a.id, a.posted, a.pending, e.seq, e.posted_after, e.pending_after
			FROM accounts a JOIN entries e ON e.account_id = a.id
			WHERE e.seq = (SELECT MAX(seq) FROM entries x WHERE x.account_id = a.id)
			  AND (e.posted_after <> a.posted OR e.pending_after <> a.pending)`},
		{"entries whose running balances are not the sums up to them", `
			SELECT account_id, seq, posted_after, running_posted, pending_after, running_pending FROM (
				SELECT account_id, seq, posted_after, pending_after,
					SUM(posted) OVER (PARTITION BY account_id ORDER BY seq ROWS UNBOUNDED PRECEDING) AS running_posted,
					SUM(pending) OVER (PARTITION BY account_id ORDER BY seq ROWS UNBOUNDED PRECEDING) AS running_pending
				FROM entries) x
			WHERE posted_after <> running_posted OR pending_after <> running_pending`},
		{"accounts whose pending balance is not what their pending holds reserve", `
			SELECT a.id, a.pending,
				(SELECT COALESCE(SUM(h.amount), 0) FROM holds h WHERE h.account_id = a.id AND h.status = 'pending') AS holds
			FROM accounts a
			WHERE a.pending <> (SELECT COALESCE(SUM(h.amount), 0) FROM holds h WHERE h.account_id = a.id AND h.status = 'pending')`},
		{"entries of no recorded write", `
			SELECT e.account_id, e.seq, e.transfer_id FROM entries e
			WHERE NOT EXISTS (SELECT 1 FROM transfers t WHERE t.id = e.transfer_id)`},
		{"writes without exactly one event", `
			SELECT t.n AS writes, o.n AS events FROM
				(SELECT COUNT(*) AS n FROM transfers) t, (SELECT COUNT(*) AS n FROM outbox) o
			WHERE t.n <> o.n`},
	} {
		if bad := rowsOf(c.what, c.q); len(bad) > 0 {
			tb.Fatalf("stored ledger broken: %s:\n  %s", c.what, strings.Join(bad[:min(len(bad), 5)], "\n  "))
		}
	}
}

// verify runs ledger.Verify and fails tb on a violation.
func verify(tb rapid.TB, db *store.DB) {
	tb.Helper()
	if err := ledger.Verify(context.Background(), db); err != nil {
		tb.Fatalf("ledger.Verify: %v", err)
	}
}

// wantCode fails tb unless err carries code (the empty code meaning no error).
func wantCode(tb rapid.TB, err error, code errors.Code, what string) {
	tb.Helper()
	if got := errors.CodeOf(err); got != code {
		if code == "" {
			tb.Fatalf("%s: unexpected error %v", what, err)
		}
		tb.Fatalf("%s: got error code %q (%v), want %q", what, got, err, code)
	}
}

// fullHistory pages through an account's whole history with pages of size
// page, checking the pagination contract on the way: entries newest first,
// seq strictly decreasing, NextBefore the last seq of a full page and 0 on
// the last page, each entry's running balances following from the next
// older one. It returns the entries newest first.
func fullHistory(tb rapid.TB, ctx context.Context, l ledger.Service, accountID string, page int) []ledger.Entry {
	tb.Helper()
	var all []ledger.Entry
	before := int64(0)
	for pages := 0; ; pages++ {
		if pages > 100000 {
			tb.Fatalf("history of %s: pagination does not end", accountID)
		}
		p, err := l.History(ctx, ledger.HistoryRequest{AccountID: accountID, Before: before, Limit: page})
		if err != nil {
			tb.Fatalf("history of %s before %d: %v", accountID, before, err)
		}
		if len(p.Entries) > page {
			tb.Fatalf("history of %s: page of %d entries, limit %d", accountID, len(p.Entries), page)
		}
		for _, e := range p.Entries {
			if e.AccountID != accountID {
				tb.Fatalf("history of %s holds an entry of %s", accountID, e.AccountID)
			}
			if before != 0 && e.Seq >= before {
				tb.Fatalf("history of %s before %d returned seq %d", accountID, before, e.Seq)
			}
			if n := len(all); n > 0 && e.Seq >= all[n-1].Seq {
				tb.Fatalf("history of %s not newest first: seq %d after %d", accountID, e.Seq, all[n-1].Seq)
			}
			all = append(all, e)
		}
		if p.NextBefore == 0 {
			break
		}
		if len(p.Entries) != page || p.NextBefore != p.Entries[len(p.Entries)-1].Seq {
			tb.Fatalf("history of %s: NextBefore %d after a page of %d (limit %d)", accountID, p.NextBefore, len(p.Entries), page)
		}
		before = p.NextBefore
	}
	for i, e := range all {
		prevPosted, prevPending := int64(0), int64(0)
		if i+1 < len(all) {
			prevPosted, prevPending = all[i+1].PostedAfter, all[i+1].PendingAfter
		}
		if e.PostedAfter != prevPosted+e.Posted || e.PendingAfter != prevPending+e.Pending {
			tb.Fatalf("history of %s: entry seq %d (posted %+d -> %d, pending %+d -> %d) does not follow from the one before (%d, %d)",
				accountID, e.Seq, e.Posted, e.PostedAfter, e.Pending, e.PendingAfter, prevPosted, prevPending)
		}
	}
	return all
}

// Comparisons of results. Times compare as instants; empty and nil
// metadata are the same.

func sameTime(a, b time.Time) bool { return a.Equal(b) }

func sameMeta(a, b map[string]string) bool { return maps.Equal(a, b) }

func diffAccount(a, b *ledger.Account) string {
	x, y := *a, *b
	if !sameTime(x.CreatedAt, y.CreatedAt) {
		return fmt.Sprintf("created_at %v != %v", x.CreatedAt, y.CreatedAt)
	}
	x.CreatedAt, y.CreatedAt = time.Time{}, time.Time{}
	if x != y {
		return fmt.Sprintf("%+v != %+v", x, y)
	}
	return ""
}

func diffTransfer(a, b *ledger.Transfer) string {
	switch {
	case a.ID != b.ID || a.Key != b.Key || a.Kind != b.Kind || a.HoldID != b.HoldID || a.Forced != b.Forced:
		return fmt.Sprintf("%+v != %+v", *a, *b)
	case !slices.Equal(a.Legs, b.Legs):
		return fmt.Sprintf("legs %v != %v", a.Legs, b.Legs)
	case !sameMeta(a.Metadata, b.Metadata):
		return fmt.Sprintf("metadata %v != %v", a.Metadata, b.Metadata)
	case !sameTime(a.At, b.At):
		return fmt.Sprintf("at %v != %v", a.At, b.At)
	}
	return ""
}

func diffHold(a, b *ledger.Hold) string {
	x, y := *a, *b
	for _, p := range []struct {
		name string
		a, b *time.Time
	}{{"expires_at", &x.ExpiresAt, &y.ExpiresAt}, {"created_at", &x.CreatedAt, &y.CreatedAt}, {"updated_at", &x.UpdatedAt, &y.UpdatedAt}} {
		if !sameTime(*p.a, *p.b) {
			return fmt.Sprintf("hold %s: %s %v != %v", x.ID, p.name, *p.a, *p.b)
		}
		*p.a, *p.b = time.Time{}, time.Time{}
	}
	if !sameMeta(x.Metadata, y.Metadata) {
		return fmt.Sprintf("hold %s: metadata %v != %v", x.ID, x.Metadata, y.Metadata)
	}
	x.Metadata, y.Metadata = nil, nil
	if !reflect.DeepEqual(x, y) {
		return fmt.Sprintf("%+v != %+v", x, y)
	}
	return ""
}

// diffResult compares two results of ledger writes of the same type.
func diffResult(a, b any) string {
	switch x := a.(type) {
	case *ledger.Account:
		y, ok := b.(*ledger.Account)
		if !ok {
			return fmt.Sprintf("%T != %T", a, b)
		}
		return diffAccount(x, y)
	case *ledger.Transfer:
		y, ok := b.(*ledger.Transfer)
		if !ok {
			return fmt.Sprintf("%T != %T", a, b)
		}
		return diffTransfer(x, y)
	case *ledger.Hold:
		y, ok := b.(*ledger.Hold)
		if !ok {
			return fmt.Sprintf("%T != %T", a, b)
		}
		return diffHold(x, y)
	}
	return fmt.Sprintf("cannot compare %T", a)
}

// eachFreshDB runs fn on each engine with a way to get a fresh, empty
// database on it, for tests that need one per case (a property test's
// generated sequences must not see each other's writes). The caller closes
// each database when done with it, so that hundreds of cases do not hold
// hundreds of open databases; the files or databases are removed when t
// ends.
func eachFreshDB(t *testing.T, fn func(t *testing.T, fresh func() (*store.DB, error))) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, func() (*store.DB, error) {
			return sqlite.Open(context.Background(), t.TempDir(), "ledger")
		})
	})
	t.Run("postgres", func(t *testing.T) {
		// One database, a schema in it for each case: creating and
		// dropping a database costs a second; a schema, milliseconds.
		url := storetest.Database(t) // skips here, not mid-property, when there is no server
		n := 0
		fn(t, func() (*store.DB, error) {
			n++
			return postgres.Open(context.Background(), url, fmt.Sprintf("ledger_%d", n))
		})
	})
}
