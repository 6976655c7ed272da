-- The card service's tables. Times are unix nanoseconds (UTC).
--
-- The full card number is never stored in clear: pan_ct is nonce‖AES-256-GCM
-- ciphertext‖tag under the keyring key pan_key_id, and pan_hash is its
-- HMAC-SHA256 under the hash key, by which the network's number finds its
-- card. The CVC is derived, never stored.
CREATE TABLE cards (
	id           TEXT PRIMARY KEY,
	account_id   TEXT NOT NULL,
	customer_id  TEXT NOT NULL,
	currency     TEXT NOT NULL,
	pan_hash     BYTEA NOT NULL UNIQUE,
	pan_key_id   TEXT NOT NULL,
	pan_ct       BYTEA NOT NULL,
	pan_first6   TEXT NOT NULL,
	pan_last4    TEXT NOT NULL,
	expiry_month INTEGER NOT NULL,
	expiry_year  INTEGER NOT NULL,
	state        TEXT NOT NULL, -- active, frozen, blocked, closed (expired is derived)
	block_reason TEXT NOT NULL, -- lost, stolen, or ''
	controls     TEXT NOT NULL, -- Controls as JSON
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL
);

CREATE INDEX cards_customer ON cards (customer_id, created_at);
CREATE INDEX cards_key_id ON cards (pan_key_id);

-- Idempotency: one row per write that succeeded, with its answer.
CREATE TABLE card_requests (
	key      TEXT PRIMARY KEY,
	method   TEXT NOT NULL,
	req_hash BYTEA NOT NULL,
	card_id  TEXT NOT NULL,
	result   TEXT NOT NULL, -- the Card answered, as JSON
	at       BIGINT NOT NULL
);

-- The audit trail of Reveal: who saw which card's full details, and why.
CREATE TABLE card_reveals (
	id          TEXT PRIMARY KEY,
	card_id     TEXT NOT NULL,
	customer_id TEXT NOT NULL,
	reason      TEXT NOT NULL,
	caller      TEXT NOT NULL,
	at          BIGINT NOT NULL
);

CREATE INDEX card_reveals_card ON card_reveals (card_id, at);
