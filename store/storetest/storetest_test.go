package storetest_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/corebank/corebank/store"
	"github.com/corebank/corebank/store/storetest"
)

func TestEachGivesFreshStores(t *testing.T) {
	var seen []store.Dialect
	for range 2 {
		storetest.Each(t, "ledger", func(t *testing.T, db *store.DB) {
			seen = append(seen, db.Dialect)
			if db.Service != "ledger" {
				t.Errorf("Service = %q", db.Service)
			}
			// A table left by the first round would make this fail.
			if _, err := db.Write.ExecContext(t.Context(), "CREATE TABLE t (a INTEGER)"); err != nil {
				t.Fatalf("fresh store already has table t: %v", err)
			}
		})
	}
	// Postgres may be skipped outside CI; SQLite always runs, first.
	got := fmt.Sprint(seen)
	if got != "[sqlite postgres sqlite postgres]" && got != "[sqlite sqlite]" {
		t.Errorf("engines seen in order: %s, want sqlite, postgres twice", got)
	}
}

func TestDatabaseIsDroppedAfterTheTest(t *testing.T) {
	var u string
	t.Run("uses", func(t *testing.T) {
		u = storetest.Database(t)
		conn, err := pgx.Connect(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(t.Context(), "CREATE TABLE t (a INTEGER)"); err != nil {
			t.Fatal(err)
		}
	})
	if u == "" {
		t.Skip("no PostgreSQL")
	}
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(parsed.Path, "/")
	if !strings.HasPrefix(name, "t_") {
		t.Errorf("database name %q, want a t_ prefix", name)
	}
	parsed.Path = "/postgres"
	conn, err := pgx.Connect(t.Context(), parsed.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT COUNT(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// Under CI a missing server is a failure, never a silent skip.
func TestNoServerFailsInCI(t *testing.T) {
	if os.Getenv("STORETEST_CHILD") == "1" {
		storetest.Postgres(t, "ledger")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoServerFailsInCI$", "-test.v")
	cmd.Env = append(os.Environ(), "STORETEST_CHILD=1", "CI=true", storetest.URLEnv+"=")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child passed without a server under CI:\n%s", out)
	}
	if !strings.Contains(string(out), storetest.URLEnv+" not set in CI") {
		t.Errorf("child output does not give the reason:\n%s", out)
	}
}
