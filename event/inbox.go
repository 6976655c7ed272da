package event

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/corebank/corebank/store"
)

// Seen records in tx that consumer has handled the event with eventID and
// reports whether it had already been recorded. A consumer calls it first in
// the transaction that applies the event; if it returns true, the change was
// made by an earlier delivery, so the consumer commits nothing new and
// acknowledges. Because the record commits with the change, a redelivered
// event is applied exactly once.
//
// The inbox lives in the consumer's own database (created by Migrate) and
// grows by one small row per handled event.
func Seen(ctx context.Context, tx *sql.Tx, db *store.DB, consumer, eventID string) (bool, error) {
	res, err := tx.ExecContext(ctx, db.Rebind(
		`INSERT INTO event_inbox (consumer, event_id) VALUES (?, ?) ON CONFLICT DO NOTHING`),
		consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("event: inbox %s %s: %w", consumer, eventID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("event: inbox %s %s: %w", consumer, eventID, err)
	}
	return n == 0, nil
}
