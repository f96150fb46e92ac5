-- The portal (PostgreSQL): customer passwords, browser sessions.

ALTER TABLE customers ADD COLUMN password_hash TEXT;
CREATE INDEX customers_email ON customers (email);

-- tower-sessions records, stored by our own store so one pool serves everything.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    data         TEXT NOT NULL,
    expiry_date  BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry_date);
