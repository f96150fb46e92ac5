-- Anthropic's one-hour cache writes have their own price (twice the input price; the
-- five-minute write is 1.25 times). NULL means "twice the input rate".
ALTER TABLE model_prices ADD COLUMN cache_write_1h_rate BIGINT CHECK (cache_write_1h_rate IS NULL OR cache_write_1h_rate >= 0);
