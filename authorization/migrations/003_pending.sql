-- Records left pending (a crash between the ledger and the record, or a
-- decision answered before its record was finished) are found and completed
-- by Authorizer.RecoverPending. Only pending rows are in this index: a row
-- enters it when written pending and leaves when finished.
CREATE INDEX authorizations_pending ON authorizations (updated_at) WHERE status = 'pending';
