-- The ledger's tables. Amounts are integer minor units; times are unix
-- nanoseconds (UTC). Balances on accounts are a cache of the entries, kept
-- in the same transaction; ledger.Verify checks they agree.
CREATE TABLE accounts (
	id              TEXT PRIMARY KEY,
	currency        TEXT NOT NULL,
	owner           TEXT NOT NULL,
	rule            TEXT NOT NULL,
	overdraft_limit BIGINT NOT NULL,
	status          TEXT NOT NULL,
	posted          BIGINT NOT NULL,
	pending         BIGINT NOT NULL,
	last_seq        BIGINT NOT NULL,
	created_at      BIGINT NOT NULL
);

-- One row per write of any kind: the journal, and the idempotency record.
CREATE TABLE transfers (
	id         TEXT PRIMARY KEY,
	key        TEXT NOT NULL UNIQUE,
	req_hash   BYTEA NOT NULL,
	kind       TEXT NOT NULL,
	hold_id    TEXT NOT NULL,
	account_id TEXT NOT NULL,
	forced     BOOLEAN NOT NULL,
	legs       TEXT NOT NULL,
	metadata   TEXT NOT NULL,
	result     TEXT NOT NULL,
	at         BIGINT NOT NULL
);

CREATE TABLE entries (
	account_id    TEXT NOT NULL,
	seq           BIGINT NOT NULL,
	transfer_id   TEXT NOT NULL,
	kind          TEXT NOT NULL,
	posted        BIGINT NOT NULL,
	pending       BIGINT NOT NULL,
	posted_after  BIGINT NOT NULL,
	pending_after BIGINT NOT NULL,
	at            BIGINT NOT NULL,
	PRIMARY KEY (account_id, seq)
);

CREATE TABLE holds (
	id          TEXT PRIMARY KEY,
	account_id  TEXT NOT NULL,
	destination TEXT NOT NULL,
	currency    TEXT NOT NULL,
	amount      BIGINT NOT NULL,
	authorized  BIGINT NOT NULL,
	posted      BIGINT NOT NULL,
	status      TEXT NOT NULL,
	expires_at  BIGINT NOT NULL,
	metadata    TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	updated_at  BIGINT NOT NULL
);

CREATE INDEX holds_pending_expiry ON holds (expires_at) WHERE status = 'pending';
