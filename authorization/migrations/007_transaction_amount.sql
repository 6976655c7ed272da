-- The request's own transaction amount (DE4, in DE49's currency) beside
-- requested (the billing amount, DE6 when present): the record's rate, by
-- which a partial reversal without DE6 (its DE95 in the transaction
-- currency) is converted, whatever DE4 the reversal carries (the amount
-- requested, or the amount partially approved). Records written before
-- this migration have 0: their reversals are converted at the rate the
-- reversal's own DE4 gives, as before.
ALTER TABLE authorizations ADD COLUMN txn_amount BIGINT NOT NULL DEFAULT 0;
