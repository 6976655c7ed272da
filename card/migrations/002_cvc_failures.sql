-- Wrong CVCs per card: after Config.MaxCVCFailures within CVCFailureWindow
-- of one another, every CVC is refused until the window has passed since
-- the last failure, so the 1,000 possible CVCs cannot be tried through the
-- API. A right CVC (while not locked) deletes the row.
CREATE TABLE card_cvc_failures (
	card_id  TEXT PRIMARY KEY,
	failures BIGINT NOT NULL,
	last_at  BIGINT NOT NULL -- unix nanoseconds
);
