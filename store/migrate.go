package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Migrate applies the migrations in fsys that db has not yet applied, in
// order, each in its own transaction, and records them in schema_migrations
// under set (a name such as "ledger" or "outbox", so several sets can share
// one database).
//
// A migration is a file NNN_name.sql, or NNN_name.sqlite.sql and
// NNN_name.postgres.sql where the dialects need different SQL. Statements are
// separated by lines holding only ";" or by ";" at the end of a line.
func Migrate(ctx context.Context, db *DB, set string, fsys fs.FS) error {
	if _, err := db.Write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		set_name TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
		PRIMARY KEY (set_name, version))`); err != nil {
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	files, err := migrationFiles(fsys, db.Dialect)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	for _, m := range files {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE set_name = ? AND version = ?`), set, m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			body, err := fs.ReadFile(fsys, m.file)
			if err != nil {
				return err
			}
			for _, stmt := range splitStatements(string(body)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", m.file, err)
				}
			}
			_, err = tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (set_name, version, name) VALUES (?, ?, ?)`), set, m.version, m.file)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", set, err)
		}
	}
	return nil
}

type migration struct {
	version int
	file    string
}

func migrationFiles(fsys fs.FS, d Dialect) ([]migration, error) {
	entries, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	chosen := map[int]string{}
	specific := map[int]bool{}
	for _, f := range entries {
		base := path.Base(f)
		num, rest, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.sql", f)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNN_name.sql", f)
		}
		switch {
		case strings.HasSuffix(rest, ".sqlite.sql"), strings.HasSuffix(rest, ".postgres.sql"):
			if strings.HasSuffix(rest, "."+string(d)+".sql") {
				chosen[v], specific[v] = f, true
			}
		default:
			if !specific[v] {
				chosen[v] = f
			}
		}
	}
	var out []migration
	for v, f := range chosen {
		out = append(out, migration{v, f})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

func splitStatements(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			if stmt := strings.TrimSpace(cur.String()); stmt != ";" {
				out = append(out, stmt)
			}
			cur.Reset()
		}
	}
	if stmt := strings.TrimSpace(cur.String()); stmt != "" {
		out = append(out, stmt)
	}
	return out
}
