// Package postgres opens a corebank store on PostgreSQL through pgx: one
// schema per service in a shared database (or a database per service: the
// URL decides), with search_path set on every connection so service SQL never
// names its schema.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/corebank/corebank/store"
)

// Open connects to the database at url (postgres://...) and creates, if
// needed, the schema named service, which every connection then uses.
func Open(ctx context.Context, url, service string) (*store.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	schema := pgx.Identifier{service}.Sanitize()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	// Quoted like the schema, or a name such as "Ledger" would be folded to
	// "ledger" and miss it.
	cfg.RuntimeParams["search_path"] = schema
	// Every commit waits for its WAL flush: acknowledged means durable.
	cfg.RuntimeParams["synchronous_commit"] = "on"
	// The services take an advisory lock and then read what the lock's
	// last holder committed (migrations, a card's spend across
	// processes): each statement must see the latest commits, whatever
	// default a DBA set on the database or role. Verify asks for
	// REPEATABLE READ where it wants one snapshot.
	cfg.RuntimeParams["default_transaction_isolation"] = "read committed"
	cfg.DefaultQueryExecMode = pgx.QueryExecModeCacheStatement

	boot, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	_, err = boot.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema)
	boot.Close(ctx)
	if err != nil {
		// Concurrent creators race on the catalog; the schema exists either way.
		if !schemaExists(ctx, cfg, service) {
			return nil, fmt.Errorf("postgres: create schema %s: %w", service, err)
		}
	}
	pool := sql.OpenDB(stdlib.GetConnector(*cfg))
	pool.SetMaxOpenConns(16)
	pool.SetMaxIdleConns(16)
	if err := pool.PingContext(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &store.DB{Write: pool, Read: pool, Dialect: store.Postgres, Service: service, CommitUnknown: commitUnknown}, nil
}

// commitUnknown reports whether err, the failure of a COMMIT, may have
// left it stored: true unless the server answered it (refused it with a
// SQLSTATE, a deferred constraint or a serialization failure, or answered
// ROLLBACK) or database/sql had already rolled the transaction back.
//
// Not pgconn.SafeToRetry: pgx marks "conn closed" safe to retry, and
// returns it for a COMMIT sent on a connection lost before the answer.
func commitUnknown(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// The server answered: it refused the COMMIT, unless the answer
		// is that the session ended (an administrator's shutdown, say),
		// which the server should not send after writing the commit but
		// is no proof that it did not.
		// SeverityUnlocalized: Severity is in the server's lc_messages
		// ("ВАЖНО", "PANIK"); the unlocalized one is sent since 9.6.
		sev := pe.SeverityUnlocalized
		if sev == "" {
			sev = pe.Severity
		}
		return sev == "FATAL" || sev == "PANIC"
	}
	// Rolled back (the server's answer, or database/sql's), or else
	// unanswered.
	return !errors.Is(err, pgx.ErrTxCommitRollback) && !errors.Is(err, sql.ErrTxDone)
}

func schemaExists(ctx context.Context, cfg *pgx.ConnConfig, name string) bool {
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false
	}
	defer c.Close(ctx)
	var n int
	_ = c.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", name).Scan(&n)
	return n == 1
}
