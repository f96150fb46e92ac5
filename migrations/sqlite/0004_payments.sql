-- Payments (SQLite): top-ups through Stripe Checkout (or simulated), the webhook inbox,
-- disputes, reconciliation reports, and small settings (cursors, generated secrets).

CREATE TABLE topups (
    id                   TEXT PRIMARY KEY,
    mode                 TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    customer_id          TEXT NOT NULL REFERENCES customers (id),
    -- What is credited when paid, and what Stripe charges (amount = cents × 10^7).
    amount               INTEGER NOT NULL CHECK (amount > 0),
    amount_cents         INTEGER NOT NULL CHECK (amount_cents > 0),
    status               TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'paid', 'failed', 'expired')),
    source               TEXT NOT NULL,
    gateway              TEXT NOT NULL CHECK (gateway IN ('stripe', 'simulated')),
    checkout_session_id  TEXT UNIQUE,
    checkout_url         TEXT,
    success_url          TEXT,
    payment_intent_id    TEXT UNIQUE,
    refunded_cents       INTEGER NOT NULL DEFAULT 0,
    simulated_paid_at    INTEGER,
    transaction_id       TEXT REFERENCES ledger_transactions (id),
    last_error           TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX topups_open ON topups (status, created_at);
CREATE INDEX topups_customer ON topups (customer_id, id);

-- Every Stripe event, stored before it is acted on. The worker claims due rows, and
-- failures stay here with their error until a retry or a replay succeeds.
CREATE TABLE webhook_events (
    id               TEXT PRIMARY KEY,
    type             TEXT NOT NULL,
    mode             TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'processed', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    claimed_at       INTEGER,
    last_error       TEXT,
    source           TEXT NOT NULL,
    received_at      INTEGER NOT NULL,
    processed_at     INTEGER
);
CREATE INDEX webhook_events_due ON webhook_events (status, next_attempt_at);

CREATE TABLE disputes (
    id          TEXT PRIMARY KEY,
    topup_id    TEXT NOT NULL REFERENCES topups (id),
    amount      INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE reconciliation_runs (
    id           TEXT PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    checked      INTEGER NOT NULL,
    repaired     INTEGER NOT NULL,
    unexplained  INTEGER NOT NULL,
    report       TEXT NOT NULL
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
