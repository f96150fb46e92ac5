-- Provider reconciliation: per run, per model and day, the tokens Tally recorded for
-- proxied requests beside those the provider's usage report shows.
CREATE TABLE provider_drift (
    id                    TEXT PRIMARY KEY,
    run_id                TEXT NOT NULL,
    provider              TEXT NOT NULL,
    day                   TEXT NOT NULL,
    model                 TEXT NOT NULL,
    tally_input           BIGINT NOT NULL,
    tally_output          BIGINT NOT NULL,
    tally_cache_write     BIGINT NOT NULL,
    tally_cache_read      BIGINT NOT NULL,
    provider_input        BIGINT NOT NULL,
    provider_output       BIGINT NOT NULL,
    provider_cache_write  BIGINT NOT NULL,
    provider_cache_read   BIGINT NOT NULL,
    created_at            BIGINT NOT NULL
);
CREATE INDEX provider_drift_run ON provider_drift (created_at, run_id);
