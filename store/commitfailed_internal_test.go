package store

import (
	"context"
	"database/sql"
	stderrors "errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// safeToRetry is an error pgconn marks as never sent to the server. pgx
// also marks so its "conn closed", which it returns for a COMMIT sent on a
// connection lost before the answer came: it cannot be trusted.
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "not sent" }
func (safeToRetry) SafeToRetry() bool { return true }

// A failed COMMIT's outcome is unknown only on PostgreSQL, and only when the
// server did not answer it and it may have been sent.
func TestCommitFailedClassifies(t *testing.T) {
	refused := &pgconn.PgError{Code: "23503", Message: "deferred foreign key"}
	cases := []struct {
		name    string
		err     error
		unknown bool
	}{
		{"refused by the server", refused, false},
		{"serialization failure at commit", fmt.Errorf("x: %w", &pgconn.PgError{Code: "40001"}), false},
		{"answered with ROLLBACK", pgx.ErrTxCommitRollback, false},
		{"already rolled back by database/sql", sql.ErrTxDone, false},
		{"marked safe to retry", safeToRetry{}, true},
		{"pgx's conn closed", pgconn.ErrConnClosed, true},
		{"connection lost", io.ErrUnexpectedEOF, true},
		{"connection reset", &net.OpError{Op: "read", Err: stderrors.New("connection reset by peer")}, true},
		{"context ended in flight", context.Canceled, true},
		{"deadline in flight", fmt.Errorf("timeout: %w", context.DeadlineExceeded), true},
	}
	for _, c := range cases {
		pg := (&DB{Dialect: Postgres}).commitFailed(c.err)
		if got := CommitOutcomeUnknown(pg); got != c.unknown {
			t.Errorf("postgres, %s: CommitOutcomeUnknown = %v, want %v", c.name, got, c.unknown)
		}
		if !stderrors.Is(pg, c.err) {
			t.Errorf("postgres, %s: %v does not wrap the original", c.name, pg)
		}
		lite := (&DB{Dialect: SQLite}).commitFailed(c.err)
		if CommitOutcomeUnknown(lite) {
			t.Errorf("sqlite, %s: outcome unknown; SQLite rolls a failed COMMIT back", c.name)
		}
	}
	if CommitOutcomeUnknown(nil) {
		t.Error("CommitOutcomeUnknown(nil) = true")
	}
}
