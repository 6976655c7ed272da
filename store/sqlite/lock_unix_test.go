//go:build unix

package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/corebank/corebank/store/sqlite"
)

// A SQLite file takes one store at a time, in this process or another: a
// second open is refused, with the file named, until the first closes.
// (internal/filelock locks only on Unix.)
func TestSQLiteFileTakesOneStore(t *testing.T) {
	dir := t.TempDir()
	first, err := sqlite.Open(context.Background(), dir, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(context.Background(), dir, "ledger"); err == nil || !strings.Contains(err.Error(), "ledger.db is in use") {
		t.Fatalf("second open = %v, want it refused as in use", err)
	}
	other, err := sqlite.Open(context.Background(), dir, "card")
	if err != nil {
		t.Fatalf("another service's file in the same directory: %v", err)
	}
	other.Close()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := sqlite.Open(context.Background(), dir, "ledger")
	if err != nil {
		t.Fatalf("open after the first closed: %v", err)
	}
	again.Close()
}
