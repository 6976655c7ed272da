package postgres

import (
	"context"
	"database/sql"
	"errors"
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

// A failed COMMIT's outcome is unknown only when the server did not answer
// it and it may have been sent.
func TestCommitUnknownClassifies(t *testing.T) {
	cases := []struct {
		name    string
		err     error
		unknown bool
	}{
		{"refused by the server", &pgconn.PgError{Code: "23503", Message: "deferred foreign key"}, false},
		{"the session ended (administrator shutdown)", &pgconn.PgError{Severity: "FATAL", Code: "57P01"}, true},
		{"the server panicked", &pgconn.PgError{Severity: "PANIC", Code: "XX000"}, true},
		// A server whose lc_messages is not English translates Severity;
		// SeverityUnlocalized (9.6+) is not.
		{"the session ended, in Russian", &pgconn.PgError{Severity: "ВАЖНО", SeverityUnlocalized: "FATAL", Code: "57P01"}, true},
		{"the server panicked, in German", &pgconn.PgError{Severity: "PANIK", SeverityUnlocalized: "PANIC", Code: "XX000"}, true},
		{"refused, in German", &pgconn.PgError{Severity: "FEHLER", SeverityUnlocalized: "ERROR", Code: "23503"}, false},
		{"serialization failure at commit", fmt.Errorf("x: %w", &pgconn.PgError{Code: "40001"}), false},
		{"answered with ROLLBACK", pgx.ErrTxCommitRollback, false},
		{"already rolled back by database/sql", sql.ErrTxDone, false},
		{"marked safe to retry", safeToRetry{}, true},
		{"pgx's conn closed", pgconn.ErrConnClosed, true},
		{"connection lost", io.ErrUnexpectedEOF, true},
		{"connection reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, true},
		{"context ended in flight", context.Canceled, true},
		{"deadline in flight", fmt.Errorf("timeout: %w", context.DeadlineExceeded), true},
	}
	for _, c := range cases {
		if got := commitUnknown(c.err); got != c.unknown {
			t.Errorf("%s: commitUnknown = %v, want %v", c.name, got, c.unknown)
		}
	}
}
