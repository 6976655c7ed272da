package card_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/corebank/corebank/store"
)

// dbLog records the statements and transactions run through a DB that
// recorded wraps.
type dbLog struct {
	mu      sync.Mutex
	queries []string
	txs     int
}

func (l *dbLog) query(q string) {
	l.mu.Lock()
	l.queries = append(l.queries, q)
	l.mu.Unlock()
}

// matching returns the statements run since the last reset that contain s.
func (l *dbLog) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, q := range l.queries {
		if strings.Contains(q, s) {
			out = append(out, q)
		}
	}
	return out
}

// transactions returns how many transactions began since the last reset.
func (l *dbLog) transactions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.txs
}

func (l *dbLog) reset() {
	l.mu.Lock()
	l.queries, l.txs = nil, 0
	l.mu.Unlock()
}

// recorded returns a DB on db's database whose pools record in the log every
// statement and transaction run through them. Its connections are db's,
// borrowed for each use and given back at once (no idle connections are
// kept), so db stays usable beside it.
func recorded(t testing.TB, db *store.DB) (*store.DB, *dbLog) {
	t.Helper()
	l := new(dbLog)
	wrap := func(inner *sql.DB) *sql.DB {
		out := sql.OpenDB(&logConnector{db: inner, log: l})
		out.SetMaxOpenConns(inner.Stats().MaxOpenConnections)
		out.SetMaxIdleConns(0)
		t.Cleanup(func() { out.Close() })
		return out
	}
	w := wrap(db.Write)
	r := w
	if db.Read != db.Write {
		r = wrap(db.Read)
	}
	return &store.DB{Write: w, Read: r, Dialect: db.Dialect, Service: db.Service, CommitUnknown: db.CommitUnknown}, l
}

type logConnector struct {
	db  *sql.DB
	log *dbLog
}

func (c *logConnector) Connect(ctx context.Context) (driver.Conn, error) {
	cn, err := c.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &logConn{c: cn, log: c.log}, nil
}

func (c *logConnector) Driver() driver.Driver { return c.db.Driver() }

// logConn is a driver connection made of a borrowed *sql.Conn.
type logConn struct {
	c   *sql.Conn
	tx  *sql.Tx // the transaction in progress, if any
	log *dbLog
}

var (
	_ driver.QueryerContext    = (*logConn)(nil)
	_ driver.ExecerContext     = (*logConn)(nil)
	_ driver.ConnBeginTx       = (*logConn)(nil)
	_ driver.NamedValueChecker = (*logConn)(nil)
)

func (c *logConn) Prepare(q string) (driver.Stmt, error) { return &logStmt{c: c, q: q}, nil }

func (c *logConn) Close() error {
	if c.tx != nil {
		c.tx.Rollback()
	}
	return c.c.Close()
}

func (c *logConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *logConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.c.BeginTx(ctx, &sql.TxOptions{Isolation: sql.IsolationLevel(opts.Isolation), ReadOnly: opts.ReadOnly})
	if err != nil {
		return nil, err
	}
	c.log.mu.Lock()
	c.log.txs++
	c.log.mu.Unlock()
	c.tx = tx
	return logTx{c}, nil
}

// CheckNamedValue passes every argument through as it is: the borrowed
// connection's pool converts it.
func (c *logConn) CheckNamedValue(*driver.NamedValue) error { return nil }

func args(nvs []driver.NamedValue) []any {
	out := make([]any, len(nvs))
	for i, nv := range nvs {
		if nv.Name != "" {
			out[i] = sql.Named(nv.Name, nv.Value)
		} else {
			out[i] = nv.Value
		}
	}
	return out
}

func (c *logConn) QueryContext(ctx context.Context, q string, nvs []driver.NamedValue) (driver.Rows, error) {
	c.log.query(q)
	var rows *sql.Rows
	var err error
	if c.tx != nil {
		rows, err = c.tx.QueryContext(ctx, q, args(nvs)...)
	} else {
		rows, err = c.c.QueryContext(ctx, q, args(nvs)...)
	}
	if err != nil {
		return nil, err
	}
	return &logRows{rows: rows}, nil
}

func (c *logConn) ExecContext(ctx context.Context, q string, nvs []driver.NamedValue) (driver.Result, error) {
	c.log.query(q)
	if c.tx != nil {
		return c.tx.ExecContext(ctx, q, args(nvs)...)
	}
	return c.c.ExecContext(ctx, q, args(nvs)...)
}

type logTx struct{ c *logConn }

func (t logTx) Commit() error {
	tx := t.c.tx
	t.c.tx = nil
	return tx.Commit()
}

func (t logTx) Rollback() error {
	tx := t.c.tx
	t.c.tx = nil
	return tx.Rollback()
}

// logStmt is a statement "prepared" by remembering it: each use runs it
// on the connection, and is logged.
type logStmt struct {
	c *logConn
	q string
}

func (s *logStmt) Close() error  { return nil }
func (s *logStmt) NumInput() int { return -1 }

func (s *logStmt) Exec([]driver.Value) (driver.Result, error) {
	panic("logStmt: Exec without context")
}

func (s *logStmt) Query([]driver.Value) (driver.Rows, error) {
	panic("logStmt: Query without context")
}

func (s *logStmt) ExecContext(ctx context.Context, nvs []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.q, nvs)
}

func (s *logStmt) QueryContext(ctx context.Context, nvs []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.q, nvs)
}

type logRows struct{ rows *sql.Rows }

func (r *logRows) Columns() []string {
	cols, _ := r.rows.Columns()
	return cols
}

func (r *logRows) Close() error { return r.rows.Close() }

func (r *logRows) Next(dest []driver.Value) error {
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return io.EOF
	}
	vals := make([]any, len(dest))
	ptrs := make([]any, len(dest))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		return err
	}
	for i, v := range vals {
		dest[i] = v
	}
	return nil
}
