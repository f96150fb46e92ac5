-- Provider reconciliation: per run, per model and day, the tokens Tally recorded for
-- proxied requests beside those the provider's usage report shows.
CREATE TABLE provider_drift (
    id                    TEXT PRIMARY KEY,
    run_id                TEXT NOT NULL,
    provider              TEXT NOT NULL,
    day                   TEXT NOT NULL,
    model                 TEXT NOT NULL,
    tally_input           INTEGER NOT NULL,
    tally_output          INTEGER NOT NULL,
    tally_cache_write     INTEGER NOT NULL,
    tally_cache_read      INTEGER NOT NULL,
    provider_input        INTEGER NOT NULL,
    provider_output       INTEGER NOT NULL,
    provider_cache_write  INTEGER NOT NULL,
    provider_cache_read   INTEGER NOT NULL,
    created_at            INTEGER NOT NULL
);
CREATE INDEX provider_drift_run ON provider_drift (created_at, run_id);
