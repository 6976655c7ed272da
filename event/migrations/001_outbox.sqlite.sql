-- The outbox: events committed with the changes they describe, waiting for
-- the relay. AUTOINCREMENT: a seq is never reused after its row is deleted,
-- because "<service>-<seq>" is the event's id and brokers drop repeats.
CREATE TABLE outbox (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	topic      TEXT    NOT NULL,
	key        TEXT    NOT NULL DEFAULT '',
	payload    BLOB    NOT NULL,
	created_at INTEGER NOT NULL -- unix nanoseconds
);

-- The inbox: events this service's consumers have already handled.
CREATE TABLE event_inbox (
	consumer TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;
