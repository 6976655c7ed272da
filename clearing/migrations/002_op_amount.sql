-- What a plan's ledger operation moves when it is not the record's billing
-- amount (0: the billing amount): the part of a single-message (0200)
-- transaction's clearing beyond what was debited when it was authorized.
ALTER TABLE clearing_records ADD COLUMN op_amount BIGINT NOT NULL DEFAULT 0;
-- The clearings of an authorization, for those of a 0200.
CREATE INDEX clearing_records_authorization ON clearing_records (authorization_id) WHERE authorization_id <> '';
