-- The authorization service's records. Times are unix nanoseconds (UTC).
-- No card number and no CVC is stored: a record names its card by id.
--
-- One row per network message (network_key is unique: the idempotency of
-- retransmissions). A row is first written 'pending' with the ledger
-- operation it is about to make (op_*), then 'done' with the decision, so a
-- crash between the ledger and this database is completed by replaying the
-- recorded operation with its idempotency key.
CREATE TABLE authorizations (
	id               TEXT PRIMARY KEY,
	network_key      TEXT NOT NULL UNIQUE,
	kind             TEXT NOT NULL,
	acquirer         TEXT NOT NULL,
	stan             TEXT NOT NULL,
	rrn              TEXT NOT NULL,
	transmission     TEXT NOT NULL,
	original_key     TEXT NOT NULL, -- the network key of the original, or ''
	original_id      TEXT NOT NULL, -- the record it resolved to, or ''
	status           TEXT NOT NULL, -- pending, done
	approved         INTEGER NOT NULL,
	reason           TEXT NOT NULL,
	detail           TEXT NOT NULL,
	auth_code        TEXT NOT NULL,
	requested        INTEGER NOT NULL,
	amount           INTEGER NOT NULL,
	outstanding      INTEGER NOT NULL,
	currency         TEXT NOT NULL,
	card_id          TEXT NOT NULL,
	account_id       TEXT NOT NULL,
	hold_id          TEXT NOT NULL,
	transfer_id      TEXT NOT NULL,
	forced           INTEGER NOT NULL,
	mcc              TEXT NOT NULL,
	channel          TEXT NOT NULL,
	merchant_name    TEXT NOT NULL,
	merchant_city    TEXT NOT NULL,
	merchant_country TEXT NOT NULL,
	op               TEXT NOT NULL, -- the pending ledger operation: place, incr, transfer, or ''
	op_key           TEXT NOT NULL,
	op_amount        INTEGER NOT NULL,
	op_target        TEXT NOT NULL, -- incr: the hold id; place/transfer: the destination account
	op_expires       INTEGER NOT NULL,
	op_force         INTEGER NOT NULL,
	op_partial       INTEGER NOT NULL, -- partial approvals allowed
	at               INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL
) WITHOUT ROWID;

-- Spend totals: a card's approved records by time.
CREATE INDEX authorizations_card ON authorizations (card_id, at);
-- A reversal that arrived before its original is found by the original's key.
CREATE INDEX authorizations_original ON authorizations (original_key);
