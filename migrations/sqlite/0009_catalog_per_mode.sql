-- Each mode has its own price book and plans, and the price book is versioned like plans:
-- an edit appends a version effective from then on, and each usage event keeps the price
-- version it was priced with. Existing rows are copied into both modes.
--
-- Tables are rebuilt (SQLite cannot change a primary key in place). `Store::migrate` runs
-- migrations with foreign-key enforcement off and checks every reference afterwards
-- (PRAGMA foreign_key_check), the procedure SQLite documents for schema changes.

CREATE TABLE model_prices (
    id                      TEXT PRIMARY KEY,
    mode                    TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    model                   TEXT NOT NULL,
    provider                TEXT NOT NULL,
    version                 INTEGER NOT NULL CHECK (version > 0),
    -- Nano-units per million tokens.
    input_rate              INTEGER NOT NULL CHECK (input_rate >= 0),
    output_rate             INTEGER NOT NULL CHECK (output_rate >= 0),
    cache_write_rate        INTEGER NOT NULL CHECK (cache_write_rate >= 0),
    cache_read_rate         INTEGER NOT NULL CHECK (cache_read_rate >= 0),
    batch_discount_percent  INTEGER NOT NULL CHECK (batch_discount_percent BETWEEN 0 AND 100),
    created_at              INTEGER NOT NULL,
    UNIQUE (mode, model, version)
);
INSERT INTO model_prices (id, mode, model, provider, version, input_rate, output_rate,
    cache_write_rate, cache_read_rate, batch_discount_percent, created_at)
SELECT 'mpv_' || m.mode || '_' || models.id || '_1', m.mode, models.id, provider, 1, input_rate,
    output_rate, cache_write_rate, cache_read_rate, batch_discount_percent, updated_at
FROM models CROSS JOIN (SELECT 'test' AS mode UNION ALL SELECT 'live') m;
DROP TABLE models;

CREATE TABLE plans_new (
    mode        TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (mode, id)
);
INSERT INTO plans_new (mode, id, name, created_at)
SELECT m.mode, id, name, created_at FROM plans CROSS JOIN (SELECT 'test' AS mode UNION ALL SELECT 'live') m;

-- Existing versions become the test mode's (their ids stay, so test usage keeps pointing
-- at them); the live mode gets copies with ids suffixed `_live`.
CREATE TABLE plan_versions_new (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL,
    plan_id     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    terms       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (mode, plan_id, version),
    FOREIGN KEY (mode, plan_id) REFERENCES plans (mode, id)
);
INSERT INTO plan_versions_new (id, mode, plan_id, version, terms, created_at)
SELECT id, 'test', plan_id, version, terms, created_at FROM plan_versions;
INSERT INTO plan_versions_new (id, mode, plan_id, version, terms, created_at)
SELECT id || '_live', 'live', plan_id, version, terms, created_at FROM plan_versions;
UPDATE usage_events SET plan_version_id = plan_version_id || '_live' WHERE mode = 'live';

CREATE TABLE customers_new (
    id                     TEXT PRIMARY KEY,
    mode                   TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    external_id            TEXT NOT NULL,
    email                  TEXT,
    name                   TEXT,
    plan_id                TEXT NOT NULL,
    account_id             TEXT NOT NULL UNIQUE REFERENCES accounts (id),
    low_balance_threshold  INTEGER,
    included_period        TEXT,
    created_at             INTEGER NOT NULL,
    password_hash          TEXT,
    auto_topup_below       INTEGER,
    UNIQUE (mode, external_id),
    FOREIGN KEY (mode, plan_id) REFERENCES plans (mode, id)
);
INSERT INTO customers_new (id, mode, external_id, email, name, plan_id, account_id,
    low_balance_threshold, included_period, created_at, password_hash, auto_topup_below)
SELECT id, mode, external_id, email, name, plan_id, account_id, low_balance_threshold,
    included_period, created_at, password_hash, auto_topup_below FROM customers;

DROP TABLE customers;
DROP TABLE plan_versions;
DROP TABLE plans;
ALTER TABLE plans_new RENAME TO plans;
ALTER TABLE plan_versions_new RENAME TO plan_versions;
ALTER TABLE customers_new RENAME TO customers;
CREATE INDEX customers_mode ON customers (mode, id);
CREATE INDEX customers_email ON customers (email);

-- The price version each event was priced with (older events: the version 1 copied above).
ALTER TABLE usage_events ADD COLUMN price_version_id TEXT REFERENCES model_prices (id);
UPDATE usage_events SET price_version_id = 'mpv_' || mode || '_' || model || '_1'
WHERE EXISTS (SELECT 1 FROM model_prices p WHERE p.id = 'mpv_' || usage_events.mode || '_' || usage_events.model || '_1');
