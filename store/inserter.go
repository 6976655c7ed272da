package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// chunkSizes are the row counts of the prepared multi-row INSERTs on
// SQLite: a batch of n rows goes out as full chunks of the largest, then n's
// remainder in binary. A handful of statements, parsed once, serve every
// batch size.
var chunkSizes = [...]int{64, 32, 16, 8, 4, 2, 1}

// Inserter writes rows of one table inside a group commit's transaction.
// On SQLite it holds a prepared multi-row INSERT per chunk size; on
// PostgreSQL it sends every row of a batch in one statement, one array per
// column through unnest, which costs one round trip whatever the batch
// size.
type Inserter struct {
	db         *DB
	head, tail string
	width      int
	stmts      [len(chunkSizes)]*sql.Stmt
}

// PrepareInserter prepares head+VALUES+tail (head "INSERT INTO t (a, b)",
// tail "" or "ON CONFLICT ...", width the number of columns) for each chunk
// size on db's writer. Call it when the service opens: the SQLite writer
// has one connection, which a group's transaction holds, so nothing can be
// prepared on it mid-group.
func PrepareInserter(ctx context.Context, db *DB, head, tail string, width int) (*Inserter, error) {
	ins := &Inserter{db: db, head: head, tail: tail, width: width}
	if db.Dialect == Postgres {
		return ins, nil
	}
	for i, n := range chunkSizes {
		st, err := db.Write.PrepareContext(ctx, head+" VALUES "+Placeholders(n, width)+tail)
		if err != nil {
			ins.Close()
			return nil, fmt.Errorf("prepare %s: %w", head, err)
		}
		ins.stmts[i] = st
	}
	return ins, nil
}

// Close releases the prepared statements.
func (ins *Inserter) Close() {
	for _, st := range ins.stmts {
		if st != nil {
			st.Close()
		}
	}
}

// Exec inserts n rows in tx, row(i, args) appending the values of row i.
// Values are string, int64, bool or []byte.
func (ins *Inserter) Exec(ctx context.Context, tx *sql.Tx, n int, row func(i int, args []any) []any) error {
	if n == 0 {
		return nil
	}
	if ins.db.Dialect == Postgres {
		return ins.execUnnest(ctx, tx, n, row)
	}
	args := make([]any, 0, chunkSizes[0]*ins.width)
	for i, k := 0, 0; i < n; {
		for n-i < chunkSizes[k] {
			k++
		}
		m := chunkSizes[k]
		args = args[:0]
		for j := i; j < i+m; j++ {
			args = row(j, args)
		}
		if _, err := tx.StmtContext(ctx, ins.stmts[k]).ExecContext(ctx, args...); err != nil {
			return err
		}
		i += m
	}
	return nil
}

// execUnnest sends all n rows as one INSERT ... SELECT FROM unnest($1, $2,
// ...), one typed array per column.
func (ins *Inserter) execUnnest(ctx context.Context, tx *sql.Tx, n int, row func(i int, args []any) []any) error {
	flat := make([]any, 0, n*ins.width)
	for i := 0; i < n; i++ {
		flat = row(i, flat)
	}
	cols := make([]any, ins.width)
	casts := make([]string, ins.width)
	for c := 0; c < ins.width; c++ {
		switch flat[c].(type) {
		case string:
			cols[c], casts[c] = column[string](flat, n, ins.width, c), "text[]"
		case int64:
			cols[c], casts[c] = column[int64](flat, n, ins.width, c), "bigint[]"
		case bool:
			cols[c], casts[c] = column[bool](flat, n, ins.width, c), "boolean[]"
		case []byte:
			cols[c], casts[c] = column[[]byte](flat, n, ins.width, c), "bytea[]"
		default:
			return fmt.Errorf("insert: column %d has unsupported type %T", c, flat[c])
		}
	}
	var q strings.Builder
	q.WriteString(ins.head)
	q.WriteString(" SELECT * FROM unnest(")
	for c, cast := range casts {
		if c > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "$%d::%s", c+1, cast)
	}
	q.WriteString(")")
	q.WriteString(ins.tail)
	_, err := tx.ExecContext(ctx, q.String(), cols...)
	return err
}

// column extracts column c of n rows of width w from row-major values.
func column[T any](flat []any, n, w, c int) []T {
	v := make([]T, n)
	for r := range v {
		v[r] = flat[r*w+c].(T)
	}
	return v
}
