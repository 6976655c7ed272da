-- The outbox: events committed with the changes they describe, waiting for
-- the relay. A sequence never hands out a value twice, so "<service>-<seq>"
-- stays unique after rows are deleted. Sequence values are taken before
-- commit, so a lower seq can become visible after a higher one: the relay
-- deletes what it published instead of keeping a cursor.
CREATE TABLE outbox (
	seq        BIGSERIAL PRIMARY KEY,
	topic      TEXT   NOT NULL,
	key        TEXT   NOT NULL DEFAULT '',
	payload    BYTEA  NOT NULL,
	created_at BIGINT NOT NULL -- unix nanoseconds
);

-- The inbox: events this service's consumers have already handled.
CREATE TABLE event_inbox (
	consumer TEXT NOT NULL,
	event_id TEXT NOT NULL,
	PRIMARY KEY (consumer, event_id)
);
