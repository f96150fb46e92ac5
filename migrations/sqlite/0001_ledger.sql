-- The ledger (SQLite). Amounts are nano-units in INTEGER (64-bit); times are
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
    available   INTEGER NOT NULL DEFAULT 0,
    held        INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    created_at  INTEGER NOT NULL
);

CREATE TABLE ledger_transactions (
    id           TEXT PRIMARY KEY,
    reference    TEXT NOT NULL UNIQUE,
    fingerprint  TEXT NOT NULL,
    kind         TEXT NOT NULL,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    amount       INTEGER NOT NULL,
    actor        TEXT,
    reason       TEXT,
    created_at   INTEGER NOT NULL
);
CREATE INDEX ledger_transactions_account ON ledger_transactions (account_id, created_at DESC, id DESC);

CREATE TABLE postings (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id  TEXT NOT NULL REFERENCES ledger_transactions (id),
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    grant_id        TEXT,
    bucket          TEXT NOT NULL CHECK (bucket IN ('available', 'held')),
    amount          INTEGER NOT NULL CHECK (amount <> 0)
);
CREATE INDEX postings_transaction ON postings (transaction_id);
CREATE INDEX postings_account ON postings (account_id);
CREATE INDEX postings_grant ON postings (grant_id) WHERE grant_id IS NOT NULL;

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    kind            TEXT NOT NULL CHECK (kind IN ('purchased', 'promotional', 'included', 'adjustment')),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    -- Cached remainder of this grant, split like the account's balance.
    available       INTEGER NOT NULL CHECK (available >= 0),
    held            INTEGER NOT NULL DEFAULT 0 CHECK (held >= 0),
    expires_at      INTEGER,
    created_at      INTEGER NOT NULL,
    transaction_id  TEXT NOT NULL REFERENCES ledger_transactions (id)
);
CREATE INDEX grants_live ON grants (account_id) WHERE available > 0 OR held > 0;
CREATE INDEX grants_expiring ON grants (expires_at) WHERE expires_at IS NOT NULL AND available > 0;

CREATE TABLE holds (
    id                     TEXT PRIMARY KEY,
    account_id             TEXT NOT NULL REFERENCES accounts (id),
    amount                 INTEGER NOT NULL CHECK (amount > 0),
    status                 TEXT NOT NULL CHECK (status IN ('pending', 'captured', 'released', 'expired')),
    expires_at             INTEGER NOT NULL,
    created_at             INTEGER NOT NULL,
    hold_transaction_id    TEXT NOT NULL REFERENCES ledger_transactions (id),
    settle_transaction_id  TEXT REFERENCES ledger_transactions (id),
    captured_amount        INTEGER,
    CHECK ((status = 'pending') = (settle_transaction_id IS NULL))
);
CREATE INDEX holds_pending ON holds (expires_at) WHERE status = 'pending';

CREATE TRIGGER postings_append_only_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;
CREATE TRIGGER postings_append_only_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'postings are append-only'); END;
CREATE TRIGGER transactions_append_only_update BEFORE UPDATE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'ledger transactions are append-only'); END;
CREATE TRIGGER transactions_append_only_delete BEFORE DELETE ON ledger_transactions
BEGIN SELECT RAISE(ABORT, 'ledger transactions are append-only'); END;

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
