-- Each mode has its own price book and plans, and the price book is versioned like plans:
-- an edit appends a version effective from then on, and each usage event keeps the price
-- version it was priced with. Existing rows are copied into both modes.

CREATE TABLE model_prices (
    id                      TEXT PRIMARY KEY,
    mode                    TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    model                   TEXT NOT NULL,
    provider                TEXT NOT NULL,
    version                 BIGINT NOT NULL CHECK (version > 0),
    -- Nano-units per million tokens.
    input_rate              BIGINT NOT NULL CHECK (input_rate >= 0),
    output_rate             BIGINT NOT NULL CHECK (output_rate >= 0),
    cache_write_rate        BIGINT NOT NULL CHECK (cache_write_rate >= 0),
    cache_read_rate         BIGINT NOT NULL CHECK (cache_read_rate >= 0),
    batch_discount_percent  BIGINT NOT NULL CHECK (batch_discount_percent BETWEEN 0 AND 100),
    created_at              BIGINT NOT NULL,
    UNIQUE (mode, model, version)
);
INSERT INTO model_prices (id, mode, model, provider, version, input_rate, output_rate,
    cache_write_rate, cache_read_rate, batch_discount_percent, created_at)
SELECT 'mpv_' || m.mode || '_' || models.id || '_1', m.mode, models.id, provider, 1, input_rate,
    output_rate, cache_write_rate, cache_read_rate, batch_discount_percent, updated_at
FROM models CROSS JOIN (VALUES ('test'), ('live')) AS m (mode);
DROP TABLE models;

-- Plans: keyed by (mode, id); existing plans are copied into both modes.
ALTER TABLE customers DROP CONSTRAINT customers_plan_id_fkey;
ALTER TABLE plan_versions DROP CONSTRAINT plan_versions_plan_id_fkey;
ALTER TABLE plan_versions DROP CONSTRAINT plan_versions_plan_id_version_key;
ALTER TABLE plans ADD COLUMN mode TEXT NOT NULL DEFAULT 'test' CHECK (mode IN ('test', 'live'));
ALTER TABLE plans ALTER COLUMN mode DROP DEFAULT;
ALTER TABLE plans DROP CONSTRAINT plans_pkey;
ALTER TABLE plans ADD PRIMARY KEY (mode, id);
INSERT INTO plans (mode, id, name, created_at) SELECT 'live', id, name, created_at FROM plans;

-- Existing versions become the test mode's (their ids stay, so test usage keeps pointing
-- at them); the live mode gets copies with ids suffixed `_live`.
ALTER TABLE plan_versions ADD COLUMN mode TEXT NOT NULL DEFAULT 'test';
ALTER TABLE plan_versions ALTER COLUMN mode DROP DEFAULT;
INSERT INTO plan_versions (id, mode, plan_id, version, terms, created_at)
SELECT id || '_live', 'live', plan_id, version, terms, created_at FROM plan_versions;
UPDATE usage_events SET plan_version_id = plan_version_id || '_live' WHERE mode = 'live';
ALTER TABLE plan_versions ADD UNIQUE (mode, plan_id, version);
ALTER TABLE plan_versions ADD FOREIGN KEY (mode, plan_id) REFERENCES plans (mode, id);
ALTER TABLE customers ADD FOREIGN KEY (mode, plan_id) REFERENCES plans (mode, id);

-- The price version each event was priced with (older events: the version 1 copied above).
ALTER TABLE usage_events ADD COLUMN price_version_id TEXT REFERENCES model_prices (id);
UPDATE usage_events e SET price_version_id = p.id FROM model_prices p
WHERE p.id = 'mpv_' || e.mode || '_' || e.model || '_1';
