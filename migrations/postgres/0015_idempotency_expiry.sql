-- Stored Idempotency-Key answers expire: the sweep deletes those first used before the
-- time to live, by this index.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
