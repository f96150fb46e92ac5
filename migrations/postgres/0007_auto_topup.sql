-- Auto top-up (PostgreSQL): the card a customer saved at Checkout, and "when available falls
-- below X, buy Y, at most Z a month". `armed` makes it one charge per crossing: a trigger
-- disarms it and it is re-armed only once available is back at or above the threshold.

CREATE TABLE auto_topups (
    customer_id          TEXT PRIMARY KEY REFERENCES customers (id),
    enabled              BIGINT NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    threshold            BIGINT NOT NULL DEFAULT 0 CHECK (threshold >= 0),
    amount_cents         BIGINT NOT NULL DEFAULT 0 CHECK (amount_cents >= 0),
    monthly_limit_cents  BIGINT NOT NULL DEFAULT 0 CHECK (monthly_limit_cents >= 0),
    armed                BIGINT NOT NULL DEFAULT 1 CHECK (armed IN (0, 1)),
    -- The month ('2026-11') whose limit was reached; no charge until the next one.
    capped_month         TEXT,
    -- Where the card is saved: 'stripe' or 'simulated'; NULL while no card is saved.
    card_gateway         TEXT,
    stripe_customer_id   TEXT,
    payment_method_id    TEXT,
    last_error           TEXT,
    last_error_at        BIGINT,
    updated_at           BIGINT NOT NULL
);

-- The threshold, copied on the customer while auto top-up is on, so the metering path
-- knows from the row it already reads whether a charge may need to start.
ALTER TABLE customers ADD COLUMN auto_topup_below BIGINT;

-- Never two auto top-ups in flight for one customer.
CREATE UNIQUE INDEX topups_one_auto_in_flight ON topups (customer_id)
    WHERE source = 'auto' AND status IN ('pending', 'processing');
