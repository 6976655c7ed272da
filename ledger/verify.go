package ledger

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/corebank/corebank/store"
)

// Verify checks the ledger's stored invariants and returns an error naming
// the first violation found:
//
//   - every transfer's posted entries sum to zero per currency;
//   - each account's posted and pending balances equal the sums of its
//     entries, and its last entry's running balances;
//   - each account's entries are numbered 1..last_seq without gaps, and each
//     entry's running balances follow from the one before;
//   - each account's entries' times follow their seqs, and its last_at is
//     its last entry's time (Balance at a past time relies on both);
//   - each account's pending balance equals the amounts its pending holds
//     still reserve, and no hold reserves a negative amount.
//
// It reads a consistent snapshot but scans every row: an operator's and a
// test's tool, not a request path.
func Verify(ctx context.Context, db *store.DB) error {
	checks := []struct{ what, q string }{
		{"transfer does not balance", `SELECT e.transfer_id || ' ' || a.currency || ' ' || CAST(SUM(e.posted) AS TEXT)
			FROM entries e JOIN accounts a ON a.id = e.account_id
			GROUP BY e.transfer_id, a.currency HAVING SUM(e.posted) <> 0 LIMIT 1`},
		{"account balance differs from its entries", `SELECT a.id || ' posted=' || CAST(a.posted AS TEXT) || ' entries=' || CAST(COALESCE(s.p, 0) AS TEXT) || ' pending=' || CAST(a.pending AS TEXT) || ' entries=' || CAST(COALESCE(s.q, 0) AS TEXT)
			FROM accounts a LEFT JOIN (SELECT account_id, SUM(posted) AS p, SUM(pending) AS q, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS m FROM entries GROUP BY account_id) s ON s.account_id = a.id
			WHERE a.posted <> COALESCE(s.p, 0) OR a.pending <> COALESCE(s.q, 0) OR a.last_seq <> COALESCE(s.n, 0) OR a.last_seq <> COALESCE(s.m, 0) OR COALESCE(s.lo, 1) <> 1 LIMIT 1`},
		{"entry running balance is inconsistent", `SELECT account_id || ' seq ' || CAST(seq AS TEXT) FROM (
			SELECT account_id, seq, posted, pending, posted_after, pending_after,
				LAG(posted_after, 1, 0) OVER w AS prev_posted, LAG(pending_after, 1, 0) OVER w AS prev_pending
			FROM entries WINDOW w AS (PARTITION BY account_id ORDER BY seq)) x
			WHERE posted_after <> prev_posted + posted OR pending_after <> prev_pending + pending LIMIT 1`},
		{"account's last entry disagrees with its balance", `SELECT a.id FROM accounts a JOIN entries e ON e.account_id = a.id AND e.seq = a.last_seq
			WHERE e.posted_after <> a.posted OR e.pending_after <> a.pending LIMIT 1`},
		{"account's last_at is not its last entry's time", `SELECT a.id FROM accounts a JOIN entries e ON e.account_id = a.id AND e.seq = a.last_seq
			WHERE e.at <> a.last_at LIMIT 1`},
		{"account with no entries has a last entry time", `SELECT id FROM accounts WHERE last_seq = 0 AND last_at <> 0 LIMIT 1`},
		{"entry is timed before the entry before it", `SELECT e.account_id || ' seq ' || CAST(e.seq AS TEXT) FROM entries e
			JOIN entries p ON p.account_id = e.account_id AND p.seq = e.seq - 1 WHERE e.at < p.at LIMIT 1`},
		{"pending balance differs from its pending holds", `SELECT a.id || ' pending=' || CAST(a.pending AS TEXT) || ' holds=' || CAST(COALESCE(h.s, 0) AS TEXT)
			FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount) AS s FROM holds WHERE status = 'pending' GROUP BY account_id) h ON h.account_id = a.id
			WHERE a.pending <> COALESCE(h.s, 0) LIMIT 1`},
		{"hold reserves a negative amount or a finished hold still reserves", `SELECT id FROM holds WHERE amount < 0 OR (status <> 'pending' AND amount <> 0) LIMIT 1`},
	}
	// One snapshot for every check: SQLite's read transactions are one;
	// PostgreSQL's default (read committed) takes one per statement.
	var opts *sql.TxOptions
	if db.Dialect == store.Postgres {
		opts = &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	tx, err := db.Read.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer tx.Rollback()
	for _, c := range checks {
		rows, err := tx.QueryContext(ctx, c.q)
		if err != nil {
			return fmt.Errorf("verify %s: %w", c.what, err)
		}
		var bad string
		found := rows.Next()
		if found {
			err = rows.Scan(&bad)
		}
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("verify %s: %w", c.what, err)
		}
		if found {
			return fmt.Errorf("ledger invariant violated: %s: %s", c.what, bad)
		}
	}
	return nil
}
