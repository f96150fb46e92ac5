-- The ledger (PostgreSQL). Amounts are nano-units in BIGINT; times are
-- microseconds since the epoch. History tables are append-only, enforced by triggers.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    mode        TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    kind        TEXT NOT NULL CHECK (kind IN ('customer', 'operator')),
    name        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    -- Cached balances of customer accounts, kept in the same transaction as the
    -- postings. Operator accounts are hot (every usage event touches revenue), so
    -- their balances are never cached: they stay 0 here and are summed on demand.
    available   BIGINT NOT NULL DEFAULT 0,
    held        BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    created_at  BIGINT NOT NULL
);

CREATE TABLE ledger_transactions (
    id           TEXT PRIMARY KEY,
    reference    TEXT NOT NULL UNIQUE,
    fingerprint  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    amount       BIGINT NOT NULL,
    actor        TEXT,
    reason       TEXT,
    created_at   BIGINT NOT NULL
);
CREATE INDEX ledger_transactions_account ON ledger_transactions (account_id, created_at DESC, id DESC);

CREATE TABLE postings (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  TEXT NOT NULL REFERENCES ledger_transactions (id),
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    grant_id        TEXT,
    bucket          TEXT NOT NULL CHECK (bucket IN ('available', 'held')),
    amount          BIGINT NOT NULL CHECK (amount <> 0)
);
CREATE INDEX postings_transaction ON postings (transaction_id);
CREATE INDEX postings_account ON postings (account_id);
CREATE INDEX postings_grant ON postings (grant_id) WHERE grant_id IS NOT NULL;

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    kind            TEXT NOT NULL CHECK (kind IN ('purchased', 'promotional', 'included', 'adjustment')),
    amount          BIGINT NOT NULL CHECK (amount > 0),
    -- Cached remainder of this grant, split like the account's balance.
    available       BIGINT NOT NULL CHECK (available >= 0),
    held            BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0),
    expires_at      BIGINT,
    created_at      BIGINT NOT NULL,
    transaction_id  TEXT NOT NULL REFERENCES ledger_transactions (id)
);
CREATE INDEX grants_live ON grants (account_id) WHERE available > 0 OR held > 0;
CREATE INDEX grants_expiring ON grants (expires_at) WHERE expires_at IS NOT NULL AND available > 0;

CREATE TABLE holds (
    id                     TEXT PRIMARY KEY,
    account_id             TEXT NOT NULL REFERENCES accounts (id),
    amount                 BIGINT NOT NULL CHECK (amount > 0),
    status                 TEXT NOT NULL CHECK (status IN ('pending', 'captured', 'released', 'expired')),
    expires_at             BIGINT NOT NULL,
    created_at             BIGINT NOT NULL,
    hold_transaction_id    TEXT NOT NULL REFERENCES ledger_transactions (id),
    settle_transaction_id  TEXT REFERENCES ledger_transactions (id),
    captured_amount        BIGINT,
    CHECK ((status = 'pending') = (settle_transaction_id IS NULL))
);
CREATE INDEX holds_pending ON holds (expires_at) WHERE status = 'pending';

CREATE FUNCTION tally_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION tally_append_only();
CREATE TRIGGER transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
    FOR EACH ROW EXECUTE FUNCTION tally_append_only();

-- The operator's side of every transaction, one set per mode.
INSERT INTO accounts (id, mode, kind, name, created_at) VALUES
    ('op_test_stripe_clearing', 'test', 'operator', 'stripe_clearing', 0),
    ('op_test_revenue',         'test', 'operator', 'revenue', 0),
    ('op_test_promotions',      'test', 'operator', 'promotions', 0),
    ('op_test_breakage',        'test', 'operator', 'breakage', 0),
    ('op_test_corrections',     'test', 'operator', 'corrections', 0),
    ('op_test_disputes',        'test', 'operator', 'disputes', 0),
    ('op_live_stripe_clearing', 'live', 'operator', 'stripe_clearing', 0),
    ('op_live_revenue',         'live', 'operator', 'revenue', 0),
    ('op_live_promotions',      'live', 'operator', 'promotions', 0),
    ('op_live_breakage',        'live', 'operator', 'breakage', 0),
    ('op_live_corrections',     'live', 'operator', 'corrections', 0),
    ('op_live_disputes',        'live', 'operator', 'disputes', 0);
