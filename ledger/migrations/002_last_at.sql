-- The time of each account's newest entry. A group commit's time is never
-- before it, so an account's entries' times follow their seqs even when a
-- clock steps back or another process's clock is behind ours: Balance at a
-- past time relies on that. Existing accounts start from their newest
-- entry's time.
ALTER TABLE accounts ADD COLUMN last_at BIGINT NOT NULL DEFAULT 0;
UPDATE accounts SET last_at = COALESCE((SELECT MAX(e.at) FROM entries e WHERE e.account_id = accounts.id), 0);
