package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"hash/fnv"
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
// NNN_name.postgres.sql where the dialects need different SQL; a dialect's own
// file replaces the common one of the same number. Each file is executed
// whole, so it may hold several statements, triggers and PL/pgSQL bodies. A
// failing migration is rolled back and the error names its file.
//
// Processes may migrate the same database at once (replicas starting
// together): on PostgreSQL they take turns on an advisory lock, on SQLite on
// the write lock, and each migration is applied exactly once.
//
// A migration recorded under a different file name than its number's file
// now has, a new migration numbered below one already applied, or an
// applied file edited since (schema_migrations keeps each file's SHA-256)
// is an error: the schema would not be what the code expects. Never edit an
// applied migration; add another. (Migrations recorded before checksums
// were kept get the file's checksum the first time they are seen.)
func Migrate(ctx context.Context, db *DB, set string, fsys fs.FS) error {
	files, err := migrationFiles(fsys, db.Dialect)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	err = db.InTx(ctx, func(tx *sql.Tx) error {
		if err := migrationLock(ctx, db, tx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			set_name TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,
			checksum TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (set_name, version))`); err != nil {
			return err
		}
		// A table from before checksums were kept gains the column.
		var has int
		if err := tx.QueryRowContext(ctx, db.Rebind(hasChecksum[db.Dialect])).Scan(&has); err != nil {
			return err
		}
		if has == 0 {
			_, err := tx.ExecContext(ctx, `ALTER TABLE schema_migrations ADD COLUMN checksum TEXT NOT NULL DEFAULT ''`)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate %s: %w", set, err)
	}
	for _, m := range files {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if err := migrationLock(ctx, db, tx); err != nil {
				return err
			}
			body, err := fs.ReadFile(fsys, m.file)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			checksum := hex.EncodeToString(sum[:])
			var applied, appliedSum string
			switch err := tx.QueryRowContext(ctx, db.Rebind(`SELECT name, checksum FROM schema_migrations WHERE set_name = ? AND version = ?`), set, m.version).Scan(&applied, &appliedSum); {
			case err == nil && applied == m.file && appliedSum == checksum:
				return nil
			case err == nil && applied == m.file && appliedSum == "":
				// Recorded before checksums were kept.
				_, err := tx.ExecContext(ctx, db.Rebind(`UPDATE schema_migrations SET checksum = ? WHERE set_name = ? AND version = ?`), checksum, set, m.version)
				return err
			case err == nil && applied == m.file:
				return fmt.Errorf("migration %s was edited after it was applied (checksum %.12s, applied %.12s): add a new migration instead", m.file, checksum, appliedSum)
			case err == nil:
				// Renamed, or another file took its number: what was
				// applied is not what the code expects.
				return fmt.Errorf("migration %d was applied as %s, but the file is now %s", m.version, applied, m.file)
			case err != sql.ErrNoRows:
				return err
			}
			var highest int
			if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE set_name = ?`), set).Scan(&highest); err != nil {
				return err
			}
			if highest > m.version {
				return fmt.Errorf("%s is new but migration %d is already applied: add migrations after the last one", m.file, highest)
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return fmt.Errorf("%s: %w", m.file, err)
			}
			_, err = tx.ExecContext(ctx, db.Rebind(`INSERT INTO schema_migrations (set_name, version, name, checksum) VALUES (?, ?, ?, ?)`), set, m.version, m.file, checksum)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", set, err)
		}
	}
	return nil
}

// hasChecksum counts schema_migrations' checksum column, per dialect.
var hasChecksum = map[Dialect]string{
	SQLite:   `SELECT COUNT(*) FROM pragma_table_info('schema_migrations') WHERE name = 'checksum'`,
	Postgres: `SELECT COUNT(*) FROM information_schema.columns WHERE table_name = 'schema_migrations' AND column_name = 'checksum' AND table_schema = current_schema()`,
}

// migrationLock serializes migrations of db's schema across processes until
// tx ends. SQLite needs nothing: a write transaction holds the database lock.
func migrationLock(ctx context.Context, db *DB, tx *sql.Tx) error {
	if db.Dialect != Postgres {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("corebank migrate " + db.Service))
	_, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64()))
	return err
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
	// Glob sorts, so for one number the .postgres.sql file comes before the
	// common .sql file and the .sqlite.sql file after it.
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
		dialectOnly := strings.HasSuffix(rest, ".sqlite.sql") || strings.HasSuffix(rest, ".postgres.sql")
		if dialectOnly && !strings.HasSuffix(rest, "."+string(d)+".sql") {
			continue // the other dialect's file
		}
		if prev, ok := chosen[v]; ok && specific[v] == dialectOnly {
			return nil, fmt.Errorf("migrations %s and %s have the same number %d", prev, f, v)
		}
		if dialectOnly || !specific[v] {
			chosen[v], specific[v] = f, dialectOnly
		}
	}
	var out []migration
	for v, f := range chosen {
		out = append(out, migration{v, f})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}
