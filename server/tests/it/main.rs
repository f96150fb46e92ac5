//! Integration tests of the `tally` server: the real app on a free port against a fresh
//! database (SQLite, or the PostgreSQL that `TALLY_TEST_DATABASE_URL` names).

#![recursion_limit = "256"]

mod admin;
mod api;
mod auto_topup;
mod backup;
mod cli;
mod edges;
mod helpers;
mod nodes;
mod notifications;
mod payments;
mod portal;
mod proxy;
mod resilience;
mod security;
mod stripe_imitation;
mod subscriptions;
mod subscriptions_stripe;
mod web;
