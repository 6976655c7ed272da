package event

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"strings"

	"github.com/corebank/corebank/errors"
	"github.com/corebank/corebank/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate creates the outbox and inbox tables in db (migration set "outbox").
// Every service that appends or consumes events calls it once at start, next
// to its own migrations; it is idempotent.
func Migrate(ctx context.Context, db *store.DB) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("event: %w", err)
	}
	if err := store.Migrate(ctx, db, "outbox", sub); err != nil {
		return fmt.Errorf("event: %w", err)
	}
	return nil
}

// appendChunk is the most rows one INSERT carries. At 4 parameters a row it
// stays far below SQLite's 32766 and PostgreSQL's 65535 parameters a
// statement, and a full chunk reuses one query string (and, on PostgreSQL, one
// prepared statement).
const appendChunk = 500

// Append writes evs to the outbox inside tx, the caller's transaction, so the
// events commit or roll back with the change they describe. After the commit,
// wake the relay with Relay.Notify.
//
// Each event needs a Topic and a Time (the service's clock); Key and Payload
// may be empty. ID is ignored: the outbox assigns it ("<service>-<seq>").
// A missing topic or time, a topic that is not a subject a broker takes
// (tokens of printable ASCII joined by dots, no wildcards), a key over
// MaxKey bytes or with control characters (it travels as a message header),
// or a payload over MaxPayload, is a bug and returns an errors.Internal
// error: refused with the change, rather than
// committed and then refused by the broker, where it would stop the relay
// (which publishes in order) for good.
func Append(ctx context.Context, tx *sql.Tx, db *store.DB, evs ...Event) error {
	for len(evs) > 0 {
		n := min(len(evs), appendChunk)
		if err := appendRows(ctx, tx, db, evs[:n]); err != nil {
			return err
		}
		evs = evs[n:]
	}
	return nil
}

// MaxPayload is the largest event payload the outbox takes: NATS's default
// limit on a message (1 MiB), less room for the subject and headers.
const MaxPayload = 1<<20 - 16<<10

// MaxTopic and MaxKey bound an event's topic (the broker's subject) and
// key (a message header), in bytes.
const (
	MaxTopic = 255
	MaxKey   = 255
)

// checkEvents reports the first event a broker would refuse (see Append).
func checkEvents(evs []Event) error {
	for i := range evs {
		if evs[i].Topic == "" || evs[i].Time.IsZero() {
			return errors.Errorf(errors.Internal, "event: append: event %d (%q) has no topic or no time", i, evs[i].Topic)
		}
		if !subject(evs[i].Topic) {
			return errors.Errorf(errors.Internal, "event: append: event %d: topic %q is not a subject a broker takes", i, evs[i].Topic)
		}
		if len(evs[i].Key) > MaxKey || strings.ContainsFunc(evs[i].Key, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return errors.Errorf(errors.Internal, "event: append: event %d (%q) has a key over %d bytes or with control characters", i, evs[i].Topic, MaxKey)
		}
		if len(evs[i].Payload) > MaxPayload {
			return errors.Errorf(errors.Internal, "event: append: event %d (%q) has a payload of %d bytes, over the %d a broker takes", i, evs[i].Topic, len(evs[i].Payload), MaxPayload)
		}
	}
	return nil
}

// subject reports whether topic is a literal broker subject: at most
// MaxTopic bytes, dot-separated non-empty tokens of printable ASCII, none of
// them a wildcard.
func subject(topic string) bool {
	if len(topic) > MaxTopic {
		return false
	}
	for tok := range strings.SplitSeq(topic, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			return false
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f {
				return false
			}
		}
	}
	return true
}

// row appends the outbox columns of e to args.
func row(args []any, e *Event) []any {
	payload := e.Payload
	if payload == nil {
		payload = []byte{}
	}
	return append(args, e.Topic, e.Key, payload, e.Time.UnixNano())
}

// Outbox appends events with statements prepared once (store.Inserter):
// for services that append on a hot path, in their group commit. Prepare
// it when the service opens, after Migrate.
type Outbox struct {
	ins *store.Inserter
}

// PrepareOutbox prepares db's outbox inserts.
func PrepareOutbox(ctx context.Context, db *store.DB) (*Outbox, error) {
	ins, err := store.PrepareInserter(ctx, db, "INSERT INTO outbox (topic, key, payload, created_at)", "", 4)
	if err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	return &Outbox{ins: ins}, nil
}

// Append is the package's Append through the prepared statements.
func (o *Outbox) Append(ctx context.Context, tx *sql.Tx, evs ...Event) error {
	if err := checkEvents(evs); err != nil {
		return err
	}
	if err := o.ins.Exec(ctx, tx, len(evs), func(i int, args []any) []any { return row(args, &evs[i]) }); err != nil {
		return fmt.Errorf("event: append %d events: %w", len(evs), err)
	}
	return nil
}

// Close releases the prepared statements.
func (o *Outbox) Close() { o.ins.Close() }

func appendRows(ctx context.Context, tx *sql.Tx, db *store.DB, evs []Event) error {
	if err := checkEvents(evs); err != nil {
		return err
	}
	args := make([]any, 0, 4*len(evs))
	for i := range evs {
		args = row(args, &evs[i])
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(insertQuery(len(evs))), args...); err != nil {
		return fmt.Errorf("event: append %d events: %w", len(evs), err)
	}
	return nil
}

const insertPrefix = "INSERT INTO outbox (topic, key, payload, created_at) VALUES "

// insertQuery returns the INSERT for n rows.
func insertQuery(n int) string {
	const group = "(?,?,?,?)"
	var b strings.Builder
	b.Grow(len(insertPrefix) + n*(len(group)+1))
	b.WriteString(insertPrefix)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(group)
	}
	return b.String()
}
