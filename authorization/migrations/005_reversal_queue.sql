-- Reversals promised but not yet carried out. The gateway queues one before
-- it answers a request per its timeout policy (Service.QueueReversal), so
-- that a late approval is released even if the process dies before it
-- reverses it: RecoverQueued, at start and every RecoverEvery, carries out
-- what is left. An original that arrives after its queued reversal is
-- declined, as after a recorded one. A row leaves once its reversal is
-- recorded.
CREATE TABLE reversal_queue (
	network_key  TEXT PRIMARY KEY, -- the reversal's
	original_key TEXT NOT NULL,
	request      TEXT NOT NULL,    -- the ReversalRequest, JSON
	queued_at    BIGINT NOT NULL   -- unix nanoseconds
);
CREATE INDEX reversal_queue_original ON reversal_queue (original_key);
