package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// URLEnv names the environment variable holding the test server's admin URL.
const URLEnv = "COREBANK_TEST_POSTGRES_URL"

// staleAfter is the age past which a test database left behind by a killed
// test binary is dropped. Far longer than any test run.
const staleAfter = 6 * time.Hour

// server is the one PostgreSQL server of this test binary, found or started
// on first use. It is package state because a test binary has one server,
// shared by all its tests; starting one per test would cost seconds each.
var server struct {
	once sync.Once
	url  string // admin URL; "" if none
	why  string // why there is none
	ci   bool   // no server is a failure, not a skip
}

// Database creates a new, empty database on the test server and returns its
// URL; the database is dropped when t ends. Use it for tests that open several
// services in one database; most tests want Postgres.
func Database(t testing.TB) string {
	t.Helper()
	admin := adminURL(t)
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("storetest: %s must be a postgres:// URL, got %q", URLEnv, admin)
	}
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	// The creation time in the name lets a later run drop what a killed
	// one left behind (see dropStale).
	name := fmt.Sprintf("t_%d_%s", time.Now().Unix(), hex.EncodeToString(b[:]))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a test that leaked a connection must not leak the database.
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("storetest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// adminURL returns the server's admin URL, or ends t: Fatal under CI, Skip
// elsewhere.
func adminURL(t testing.TB) string {
	t.Helper()
	server.once.Do(findServer)
	if server.url == "" {
		if server.ci {
			t.Fatalf("storetest: %s", server.why)
		}
		t.Skipf("storetest: no PostgreSQL: %s", server.why)
	}
	return server.url
}

func findServer() {
	if u := os.Getenv(URLEnv); u != "" {
		server.url = u
		dropStale(u)
		return
	}
	if os.Getenv("CI") != "" {
		server.ci = true
		server.why = URLEnv + " not set in CI"
		return
	}
	script, err := startScript()
	if err != nil {
		server.why = err.Error()
		return
	}
	// A test never installs software: only a server already installed is
	// started (.ci/run installs one for CI).
	if !serverInstalled() {
		server.why = "PostgreSQL server not installed (apt-get install postgresql), or set " + URLEnv
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, "start")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		server.why = fmt.Sprintf("%s start: %v: %s", script, err, lastLines(stderr.String(), 5))
		return
	}
	server.url = strings.TrimSpace(string(out))
	dropStale(server.url)
}

// startScript finds .ci/postgres.sh above the working directory (a test runs
// in its package's directory) or above this source file.
func startScript() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			p := filepath.Join(dir, ".ci", "postgres.sh")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New(".ci/postgres.sh not found; set " + URLEnv)
}

func serverInstalled() bool {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	return len(m) > 0
}

// dropStale drops test databases whose creation time (in their name) is
// older than staleAfter: leftovers of test binaries that were killed.
// Failures are ignored; the next run tries again.
func dropStale(admin string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 't\_%\_%'`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		parts := strings.Split(name, "_")
		if len(parts) != 3 {
			continue
		}
		sec, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || time.Since(time.Unix(sec, 0)) < staleAfter {
			continue
		}
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
}

// adminExec runs one statement on the server's admin database.
func adminExec(ctx context.Context, admin, stmt string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, stmt)
	return err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
