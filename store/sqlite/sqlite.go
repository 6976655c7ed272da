// Package sqlite opens a corebank store on SQLite: one database file per
// service, WAL journal, synchronous=FULL (a commit is on disk when it
// returns), one writer connection and a pool of readers.
//
// The driver is modernc.org/sqlite, a cgo-free translation of SQLite's C
// source: `go run` works on a machine with no C compiler. docs/benchmarks.md
// records the measurement behind the choice.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/corebank/corebank/internal/filelock"
	"github.com/corebank/corebank/store"

	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// Open opens (creating if needed) the database of service in directory dir.
// The special dir ":memory:" is not supported: durability is the point.
func Open(ctx context.Context, dir, service string) (*store.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return OpenFile(ctx, filepath.Join(dir, service+".db"), service)
}

// OpenFile opens the database file at path for service. One store at a
// time may have a file open: a second open, in this process or another, is
// refused until the first is closed (a lock on path+".lock"). The services
// count on it: a group committer decides against what it read in its own
// transaction, but an authorization answered before its record is
// finished (AnswerEarly) assumes no other process is deciding on the card.
func OpenFile(ctx context.Context, path, service string) (*store.DB, error) {
	lock, err := filelock.Lock(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s is in use (another corebank process on the same --data?): %w", path, err)
	}
	db, err := openFile(ctx, path, service)
	if err != nil {
		if lock != nil {
			lock.Close()
		}
		return nil, err
	}
	if lock != nil {
		db.Release = func() { lock.Close() }
	}
	return db, nil
}

func openFile(ctx context.Context, path, service string) (*store.DB, error) {
	pragmas := url.Values{}
	for _, p := range []string{
		// Page size stays SQLite's 4 KiB: 8 KiB measured no better, and
		// the driver applies its pragmas after journal_mode, which fixes
		// the page size of a new WAL database anyway.
		"journal_mode(WAL)",
		// The writer never checkpoints: checkpoint runs them from its own
		// connection, off the commit path.
		"wal_autocheckpoint(0)",
		"synchronous(FULL)",
		"busy_timeout(10000)",
		"foreign_keys(ON)",
		"cache_size(-65536)", // 64 MiB page cache per connection
		"temp_store(MEMORY)",
	} {
		pragmas.Add("_pragma", p)
	}
	w := pragmas
	w.Set("_txlock", "immediate")
	// The name is a URI: a '?', '#' or '%' in the path must be escaped or
	// SQLite would open a different file.
	name := "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	write, err := sql.Open("sqlite", name+"?"+w.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)

	r := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(ON)", "cache_size(-16384)", "query_only(ON)"} {
		r.Add("_pragma", p)
	}
	read, err := sql.Open("sqlite", name+"?"+r.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(n)
	read.SetMaxIdleConns(n)

	db := &store.DB{Write: write, Read: read, Dialect: store.SQLite, Service: service}
	// Open the writer first so the WAL switch happens before any reader.
	if err := write.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	var mode string
	if err := write.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: journal_mode is %q, want wal (%v)", path, mode, err)
	}
	stop := make(chan struct{})
	stopped := make(chan struct{})
	go checkpoint(name, stop, stopped)
	var once sync.Once
	db.Cleanup = func() { once.Do(func() { close(stop); <-stopped }) }
	return db, nil
}

// checkpointEvery is how often the checkpointer copies the WAL back into the
// database file.
const checkpointEvery = 250 * time.Millisecond

// checkpoint runs PASSIVE checkpoints on a connection of its own until stop
// closes. A passive checkpoint never blocks the writer or readers; it copies
// what it can, and the writer starts the WAL over once a checkpoint has
// caught up. Keeping this off the writer's connection takes the copying and
// the database file's fsync out of every commit's latency.
func checkpoint(name string, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	conn, err := sql.Open("sqlite", name+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			// A last, complete checkpoint leaves a small WAL behind.
			conn.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			return
		case <-t.C:
			conn.Exec("PRAGMA wal_checkpoint(PASSIVE)")
		}
	}
}
