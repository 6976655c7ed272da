-- Clearing records without the original network ids are matched by card,
-- retrieval reference number and approval code (Service.ByReference).
CREATE INDEX authorizations_reference ON authorizations (card_id, rrn, auth_code);
