-- The clearing service's tables. Times are unix nanoseconds (UTC); amounts
-- integer minor units. No full card number is stored: a record keeps the
-- masked number (first six, last four) and the card's id.

-- One row per clearing file, keyed by the header's file id. fence is the
-- largest lock token a processor of the file has presented; a write with a
-- smaller one is refused (the holder lost its lease).
CREATE TABLE clearing_files (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	network       TEXT NOT NULL,
	file_date     TEXT NOT NULL,
	sha256        TEXT NOT NULL,
	record_count  BIGINT NOT NULL,
	control_total BIGINT NOT NULL,
	status        TEXT NOT NULL, -- processing, completed
	fence         BIGINT NOT NULL,
	report        TEXT NOT NULL, -- JSON Report when completed, else ''
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);

-- One row per detail record, written 'pending' with its file. op_* is the
-- ledger operation chosen for it, recorded before it is made, so a run that
-- stops part-way is completed by replaying it with the same key.
CREATE TABLE clearing_records (
	file_id          TEXT NOT NULL,
	record_id        TEXT NOT NULL,
	seq              BIGINT NOT NULL,
	kind             TEXT NOT NULL,
	pan_masked       TEXT NOT NULL,
	card_id          TEXT NOT NULL,
	amount           BIGINT NOT NULL,
	currency         TEXT NOT NULL,
	billing_amount   BIGINT NOT NULL,
	billing_currency TEXT NOT NULL,
	arn              TEXT NOT NULL,
	rrn              TEXT NOT NULL,
	auth_code        TEXT NOT NULL,
	acquirer         TEXT NOT NULL,
	stan             TEXT NOT NULL,
	transmission     TEXT NOT NULL,
	merchant_name    TEXT NOT NULL,
	merchant_city    TEXT NOT NULL,
	merchant_country TEXT NOT NULL,
	mcc              TEXT NOT NULL,
	presentment      BIGINT NOT NULL,
	final            BIGINT NOT NULL,
	status           TEXT NOT NULL,
	reason           TEXT NOT NULL,
	detail           TEXT NOT NULL,
	suspicious       TEXT NOT NULL, -- comma-separated reasons
	authorization_id TEXT NOT NULL,
	hold_id          TEXT NOT NULL,
	transfer_id      TEXT NOT NULL,
	duplicate_of     TEXT NOT NULL,
	op               TEXT NOT NULL, -- '', post, debit, credit
	op_account       TEXT NOT NULL, -- the card's ledger account
	op_settlement    TEXT NOT NULL, -- the settlement account
	updated_at       BIGINT NOT NULL,
	PRIMARY KEY (file_id, record_id)
);
CREATE UNIQUE INDEX clearing_records_seq ON clearing_records (file_id, seq);

-- Which record applied each presentment: a presentment the network sends
-- again, in this file or another, is skipped as a duplicate.
CREATE TABLE clearing_presentments (
	arn         TEXT NOT NULL,
	presentment BIGINT NOT NULL,
	kind        TEXT NOT NULL,
	file_id     TEXT NOT NULL,
	record_id   TEXT NOT NULL,
	PRIMARY KEY (arn, presentment, kind)
);
