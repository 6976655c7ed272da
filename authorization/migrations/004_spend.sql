-- Spend totals read only this index: every column the spend check filters
-- and sums is in it, so a card's month of records is one contiguous range
-- and no lookup of each row (the lookups were most of the check's cost).
DROP INDEX authorizations_card;
CREATE INDEX authorizations_spend ON authorizations (card_id, at, kind, status, approved, outstanding, op_amount);
