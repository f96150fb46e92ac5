-- The metering proxy: customer keys and one row per proxied request.

-- A customer's own key (`ck_test_…` / `ck_live_…`), valid only on /proxy for its customer.
-- The secret is stored as its SHA-256 hash. A spend limit, when set, counts what the key's
-- requests were charged (less refunds) in the period plus what they hold now.
CREATE TABLE customer_keys (
    id            TEXT PRIMARY KEY,
    mode          TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    customer_id   TEXT NOT NULL REFERENCES customers (id),
    name          TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    spend_limit   BIGINT CHECK (spend_limit IS NULL OR spend_limit > 0),
    limit_period  TEXT NOT NULL DEFAULT 'total' CHECK (limit_period IN ('day', 'month', 'total')),
    expires_at    BIGINT,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX customer_keys_customer ON customer_keys (customer_id, created_at);

-- Every request the proxy received for a known customer: what it held, what came back and
-- what was charged, or why nothing was. `event_id` is set once the request is settled.
CREATE TABLE proxy_requests (
    id                TEXT PRIMARY KEY,
    mode              TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    customer_id       TEXT NOT NULL REFERENCES customers (id),
    customer_key_id   TEXT REFERENCES customer_keys (id),
    authorization_id  TEXT UNIQUE REFERENCES authorizations (id),
    provider          TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    model             TEXT NOT NULL,
    streamed          BIGINT NOT NULL DEFAULT 0,
    conversation      TEXT,
    status            TEXT NOT NULL CHECK (status IN ('open', 'charged', 'failed', 'refused')),
    upstream_status   BIGINT,
    reason            TEXT,
    event_id          TEXT REFERENCES usage_events (id),
    created_at        BIGINT NOT NULL,
    finished_at       BIGINT
);
CREATE INDEX proxy_requests_key ON proxy_requests (customer_key_id, created_at);
CREATE INDEX proxy_requests_conversation ON proxy_requests (customer_id, conversation);
CREATE INDEX proxy_requests_event ON proxy_requests (event_id);
