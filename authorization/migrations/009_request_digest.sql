-- What identifies the request a record answers, beside its network ids:
-- a digest of its kind, its card number as displays show it (first six,
-- last four, length: never more), and its transaction and billing
-- amounts and currencies. A message under recorded ids is a
-- retransmission only if its digest is the record's; anything else is
-- conflict (94), never the recorded answer. Records written before this
-- migration have '' and are compared by kind and amount, as before.
ALTER TABLE authorizations ADD COLUMN request_digest TEXT NOT NULL DEFAULT '';
