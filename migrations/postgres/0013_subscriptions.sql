-- Subscriptions through Stripe Billing (or the simulation). Tally keeps its own state and
-- grants each paid period's included credits once, by the invoice id.

-- While a subscription of the customer is past due: when the grace ends (access stops
-- then, until an invoice is paid). Read with the customer on every hold, so it lives here.
ALTER TABLE customers ADD COLUMN grace_ends_at BIGINT;

-- The Stripe Product and Price of each plan version, created when first needed.
CREATE TABLE plan_prices (
    plan_version_id  TEXT NOT NULL,
    gateway          TEXT NOT NULL CHECK (gateway IN ('stripe', 'simulated')),
    mode             TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    plan_id          TEXT NOT NULL,
    product_id       TEXT NOT NULL,
    price_id         TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (plan_version_id, gateway)
);
CREATE UNIQUE INDEX plan_prices_price ON plan_prices (price_id);

CREATE TABLE subscriptions (
    id                      TEXT PRIMARY KEY,
    mode                    TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    customer_id             TEXT NOT NULL REFERENCES customers (id),
    plan_id                 TEXT NOT NULL,
    -- A downgrade waiting for the period's end.
    pending_plan_id         TEXT,
    status                  TEXT NOT NULL CHECK (status IN ('incomplete', 'active', 'past_due', 'canceled')),
    gateway                 TEXT NOT NULL CHECK (gateway IN ('stripe', 'simulated')),
    checkout_session_id     TEXT UNIQUE,
    checkout_url            TEXT,
    stripe_subscription_id  TEXT UNIQUE,
    current_period_start    BIGINT,
    current_period_end      BIGINT,
    cancel_at_period_end    BIGINT NOT NULL DEFAULT 0,
    -- Since when it is past due, and when the grace ends.
    past_due_since          BIGINT,
    grace_ends_at           BIGINT,
    -- The creation time (Stripe's, seconds) of the newest subscription event applied:
    -- an older one arriving late changes nothing.
    last_event_created      BIGINT NOT NULL DEFAULT 0,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id, created_at);
CREATE INDEX subscriptions_status ON subscriptions (mode, status, created_at);

CREATE TABLE subscription_invoices (
    id                  TEXT PRIMARY KEY,
    subscription_id     TEXT NOT NULL REFERENCES subscriptions (id),
    customer_id         TEXT NOT NULL REFERENCES customers (id),
    amount_cents        BIGINT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('open', 'paid', 'failed', 'action_required')),
    billing_reason      TEXT NOT NULL,
    plan_id             TEXT,
    period_start        BIGINT NOT NULL,
    period_end          BIGINT NOT NULL,
    hosted_invoice_url  TEXT,
    -- The grant of the period's included credits, when the invoice was paid.
    transaction_id      TEXT REFERENCES ledger_transactions (id),
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX subscription_invoices_customer ON subscription_invoices (customer_id, created_at);
