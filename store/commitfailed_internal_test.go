package store

import (
	stderrors "errors"
	"testing"

	"github.com/corebank/corebank/errors"
)

// A failed COMMIT is unknown only when the engine says so (a nil hook:
// never, as on SQLite), keeps the original error in its chain, and reaches
// the caller as Timeout when unknown and Unavailable when not.
func TestCommitFailedAsksTheEngine(t *testing.T) {
	lost, refused := stderrors.New("connection lost"), stderrors.New("refused")
	pg := &DB{Dialect: Postgres, CommitUnknown: func(err error) bool { return err == lost }}
	lite := &DB{Dialect: SQLite}
	cases := []struct {
		name    string
		db      *DB
		err     error
		unknown bool
		code    errors.Code
	}{
		{"server did not answer", pg, lost, true, errors.Timeout},
		{"server answered", pg, refused, false, errors.Unavailable},
		{"sqlite, any failure", lite, lost, false, errors.Unavailable},
	}
	for _, c := range cases {
		err := c.db.commitFailed(c.err)
		if got := CommitOutcomeUnknown(err); got != c.unknown {
			t.Errorf("%s: CommitOutcomeUnknown = %v, want %v", c.name, got, c.unknown)
		}
		if !stderrors.Is(err, c.err) {
			t.Errorf("%s: %v does not wrap the original", c.name, err)
		}
		w := WriteFailed("group commit", err)
		if got := errors.CodeOf(w); got != c.code {
			t.Errorf("%s: WriteFailed code = %s, want %s", c.name, got, c.code)
		}
		if !stderrors.Is(w, c.err) {
			t.Errorf("%s: WriteFailed lost the original: %v", c.name, w)
		}
	}
	if CommitOutcomeUnknown(nil) {
		t.Error("CommitOutcomeUnknown(nil) = true")
	}
}
