-- Notifications: operator webhook endpoints, the transactional outbox of events, their
-- deliveries, customers' emails, password resets, and the customer's own alert settings.

-- The customer's balance alert state as last notified: an event is written when it
-- changes ('ok' -> 'low' is balance.low, -> 'depleted' balance.depleted, back to 'ok'
-- balance.recovered), in the transaction that changed the balance.
ALTER TABLE customers ADD COLUMN balance_alert TEXT NOT NULL DEFAULT 'ok'
    CHECK (balance_alert IN ('ok', 'low', 'depleted'));
-- A monthly budget the customer sets: an alert when the month's spend reaches it, and,
-- with budget_hard_stop, a cap on new work like the plan's monthly cap.
ALTER TABLE customers ADD COLUMN budget_monthly BIGINT;
ALTER TABLE customers ADD COLUMN budget_hard_stop BIGINT NOT NULL DEFAULT 0;
-- The daily grace reminder looks for customers whose grace ends within a day.
CREATE INDEX customers_grace_ends ON customers (grace_ends_at) WHERE grace_ends_at IS NOT NULL;
-- The non-essential email kinds the customer does not want (a JSON array).
ALTER TABLE customers ADD COLUMN email_opt_out TEXT NOT NULL DEFAULT '[]';

CREATE TABLE webhook_endpoints (
    id              TEXT PRIMARY KEY,
    mode            TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    url             TEXT NOT NULL,
    -- The event types sent to it (a JSON array; ["*"] is every type).
    events          TEXT NOT NULL,
    secret          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason TEXT,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
CREATE INDEX webhook_endpoints_mode ON webhook_endpoints (mode, created_at);

-- The outbox: written in the transaction of the change that causes it. `dedupe_key`
-- makes "once per period" events (a cap reached today) a unique row.
CREATE TABLE outbox_events (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    type        TEXT NOT NULL,
    customer_id TEXT,
    data        TEXT NOT NULL,
    dedupe_key  TEXT UNIQUE,
    dispatched  BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL
);
CREATE INDEX outbox_events_undispatched ON outbox_events (dispatched, id);
CREATE INDEX outbox_events_customer ON outbox_events (customer_id, id);

-- One event to one endpoint: the same webhook-id (the event id) on every attempt.
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    event_id        TEXT NOT NULL REFERENCES outbox_events (id),
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at);

-- Emails to customers (and staff), rendered when queued; 'off' when no SMTP server is
-- configured (kept so the console shows what would have been sent).
CREATE TABLE emails (
    id              TEXT PRIMARY KEY,
    mode            TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    customer_id     TEXT,
    kind            TEXT NOT NULL,
    to_address      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    event_id        TEXT,
    dedupe_key      TEXT UNIQUE,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'off')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    sent_at         BIGINT
);
CREATE INDEX emails_due ON emails (status, next_attempt_at);
CREATE INDEX emails_customer ON emails (customer_id, created_at);

-- One-time password reset links: only the hash of the token is kept.
CREATE TABLE password_resets (
    token_hash  TEXT PRIMARY KEY,
    subject     TEXT NOT NULL CHECK (subject IN ('customer', 'staff')),
    subject_id  TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    created_at  BIGINT NOT NULL
);
