-- Late captures, per-request refunds and batch pricing on the pre-flight path.

-- The event was captured after its authorization expired: charged from available.
ALTER TABLE usage_events ADD COLUMN authorization_expired BIGINT NOT NULL DEFAULT 0;
-- What was given back of this event's cost (POST /v1/usage/{id}/refund), once.
ALTER TABLE usage_events ADD COLUMN refunded_amount BIGINT NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0);
ALTER TABLE usage_events ADD COLUMN refund_reason TEXT;
ALTER TABLE usage_events ADD COLUMN refund_transaction_id TEXT REFERENCES ledger_transactions (id);

-- The authorization was priced as a batch request; its capture defaults to the same.
ALTER TABLE authorizations ADD COLUMN batch BIGINT NOT NULL DEFAULT 0;

-- Who suspended an account: 'staff' (the console) or 'dispute' (a lost Stripe dispute).
-- A won dispute lifts only a suspension that a dispute made.
ALTER TABLE accounts ADD COLUMN suspended_by TEXT CHECK (suspended_by IN ('staff', 'dispute'));
