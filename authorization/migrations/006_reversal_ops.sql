-- Reversals are written the way decisions are: first 'pending' with the
-- ledger operation they are about to make (op void, replace or refund),
-- then 'done' with their outcome and their effect on the record they
-- change, so that a reversal whose ledger answer was lost is completed by
-- replaying its operation under its own keys before anything else acts on
-- that record. op_original is the network key of the record whose
-- outstanding amount a pending reversal changes: its original, or for a
-- reversal of an incremental authorization the incremental's original.
-- Records written before this migration are all decided: '' is right.
ALTER TABLE authorizations ADD COLUMN op_original TEXT NOT NULL DEFAULT '';
-- The reversals pending on a record, found before anything acts on it.
-- Only pending rows are in it.
CREATE INDEX authorizations_pending_reversal ON authorizations (op_original) WHERE status = 'pending';
