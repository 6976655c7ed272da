-- The ledger's tables. Amounts are integer minor units; times are unix
-- nanoseconds (UTC). Balances on accounts are a cache of the entries, kept
-- in the same transaction; ledger.Verify checks they agree.
CREATE TABLE accounts (
	id              TEXT PRIMARY KEY,
	currency        TEXT NOT NULL,
	owner           TEXT NOT NULL,
	rule            TEXT NOT NULL,
	overdraft_limit INTEGER NOT NULL,
	status          TEXT NOT NULL,
	posted          INTEGER NOT NULL,
	pending         INTEGER NOT NULL,
	last_seq        INTEGER NOT NULL,
	created_at      INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per write of any kind: the journal, and the idempotency record.
CREATE TABLE transfers (
	id         TEXT PRIMARY KEY,
	key        TEXT NOT NULL UNIQUE,
	req_hash   BLOB NOT NULL,
	kind       TEXT NOT NULL,
	hold_id    TEXT NOT NULL,
	account_id TEXT NOT NULL,
	forced     INTEGER NOT NULL,
	legs       TEXT NOT NULL,
	metadata   TEXT NOT NULL,
	result     TEXT NOT NULL,
	at         INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE entries (
	account_id    TEXT NOT NULL,
	seq           INTEGER NOT NULL,
	transfer_id   TEXT NOT NULL,
	kind          TEXT NOT NULL,
	posted        INTEGER NOT NULL,
	pending       INTEGER NOT NULL,
	posted_after  INTEGER NOT NULL,
	pending_after INTEGER NOT NULL,
	at            INTEGER NOT NULL,
	PRIMARY KEY (account_id, seq)
) WITHOUT ROWID;

CREATE TABLE holds (
	id          TEXT PRIMARY KEY,
	account_id  TEXT NOT NULL,
	destination TEXT NOT NULL,
	currency    TEXT NOT NULL,
	amount      INTEGER NOT NULL,
	authorized  INTEGER NOT NULL,
	posted      INTEGER NOT NULL,
	status      TEXT NOT NULL,
	expires_at  INTEGER NOT NULL,
	metadata    TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);

CREATE INDEX holds_pending_expiry ON holds (expires_at) WHERE status = 'pending';
