-- Ledger operations this service owes back. When two processes sharing a
-- database complete one pending record and their ledger calls under its
-- key are answered differently (the ledger does not remember a refusal:
-- one process's hold or 0200 transfer was refused for want of funds,
-- money arrived, the other's went through), the record keeps the outcome
-- finished first, and the loser must undo what its call did. The loser
-- writes the undo here in the same transaction in which it finds the
-- record finished, then carries it out; RecoverUndos, at start and every
-- RecoverEvery, carries out what is left, under the same idempotency key,
-- so that a ledger away for that one call does not leave the money held
-- or moved. A row leaves once the ledger has done (or refused for good)
-- the undo.
CREATE TABLE undos (
	ledger_key       TEXT PRIMARY KEY, -- the undo's idempotency key: <op_key>:undo
	authorization_id TEXT NOT NULL,
	op               TEXT NOT NULL,    -- 'void' (hold_id) or 'refund' (amount from target back to account_id)
	hold_id          TEXT NOT NULL,
	account_id       TEXT NOT NULL,
	target           TEXT NOT NULL,
	amount           BIGINT NOT NULL,
	currency         TEXT NOT NULL,
	queued_at        BIGINT NOT NULL   -- unix nanoseconds
);
CREATE INDEX undos_queued ON undos (queued_at);
