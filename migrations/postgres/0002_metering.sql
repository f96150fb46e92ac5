-- Metering (PostgreSQL): price book, versioned plans, customers, API keys, usage events,
-- authorizations, per-period counters, idempotency records, portal sign-in links.

CREATE TABLE models (
    id                      TEXT PRIMARY KEY,
    provider                TEXT NOT NULL,
    -- Nano-units per million tokens.
    input_rate              BIGINT NOT NULL CHECK (input_rate >= 0),
    output_rate             BIGINT NOT NULL CHECK (output_rate >= 0),
    cache_write_rate        BIGINT NOT NULL CHECK (cache_write_rate >= 0),
    cache_read_rate         BIGINT NOT NULL CHECK (cache_read_rate >= 0),
    batch_discount_percent  BIGINT NOT NULL CHECK (batch_discount_percent BETWEEN 0 AND 100),
    updated_at              BIGINT NOT NULL
);

CREATE TABLE plans (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Each edit of a plan is a new row; the newest is in force. Terms are JSON (see
-- core::plans::PlanTerms) so that a version is immutable and self-contained.
CREATE TABLE plan_versions (
    id          TEXT PRIMARY KEY,
    plan_id     TEXT NOT NULL REFERENCES plans (id),
    version     BIGINT NOT NULL,
    terms       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (plan_id, version)
);

CREATE TABLE customers (
    id                     TEXT PRIMARY KEY,
    mode                   TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    external_id            TEXT NOT NULL,
    email                  TEXT,
    name                   TEXT,
    plan_id                TEXT NOT NULL REFERENCES plans (id),
    account_id             TEXT NOT NULL UNIQUE REFERENCES accounts (id),
    low_balance_threshold  BIGINT,
    included_period        TEXT,
    created_at             BIGINT NOT NULL,
    UNIQUE (mode, external_id)
);
CREATE INDEX customers_mode ON customers (mode, id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    mode         TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'usage', 'admin')),
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE authorizations (
    id                           TEXT PRIMARY KEY REFERENCES holds (id),
    mode                         TEXT NOT NULL,
    customer_id                  TEXT NOT NULL REFERENCES customers (id),
    model                        TEXT,
    input_tokens                 BIGINT,
    max_output_tokens            BIGINT,
    cache_creation_input_tokens  BIGINT,
    cache_read_input_tokens      BIGINT,
    created_at                   BIGINT NOT NULL
);

CREATE TABLE usage_events (
    id                           TEXT PRIMARY KEY,
    mode                         TEXT NOT NULL,
    customer_id                  TEXT NOT NULL REFERENCES customers (id),
    request_id                   TEXT NOT NULL,
    model                        TEXT NOT NULL,
    outcome                      TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'cancelled')),
    batch                        BIGINT NOT NULL,
    input_tokens                 BIGINT NOT NULL,
    output_tokens                BIGINT NOT NULL,
    cache_creation_input_tokens  BIGINT NOT NULL,
    cache_read_input_tokens      BIGINT NOT NULL,
    cost                         BIGINT NOT NULL,
    line_items                   TEXT NOT NULL,
    plan_version_id              TEXT NOT NULL REFERENCES plan_versions (id),
    tier                         BIGINT NOT NULL,
    authorization_id             TEXT UNIQUE,
    transaction_id               TEXT REFERENCES ledger_transactions (id),
    metadata                     TEXT,
    occurred_at                  BIGINT NOT NULL,
    created_at                   BIGINT NOT NULL,
    UNIQUE (customer_id, request_id)
);
CREATE INDEX usage_events_mode ON usage_events (mode, id);
CREATE INDEX usage_events_customer ON usage_events (customer_id, id);
CREATE INDEX usage_events_customer_time ON usage_events (customer_id, occurred_at);

-- Running totals per customer and period ('2026-11' for a month, '2026-11-24' for a day),
-- written in the same transaction as the usage event they count.
CREATE TABLE usage_periods (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    period       TEXT NOT NULL,
    tokens       BIGINT NOT NULL,
    spend        BIGINT NOT NULL,
    PRIMARY KEY (customer_id, period)
);

CREATE TABLE idempotency_keys (
    mode          TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   BIGINT,
    response      TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (mode, key)
);

CREATE TABLE portal_links (
    token_hash   TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT,
    created_at   BIGINT NOT NULL
);
