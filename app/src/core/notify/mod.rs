//! Notifications: signed webhooks to the operator's app and emails to customers, from a
//! transactional outbox.
//!
//! A change that others must hear of writes its event into `outbox_events` inside its own
//! database transaction ([`outbox::emit`]), so there is no event without its change and no
//! change without its event. A worker then hands each event out ([`outbox::dispatch`]):
//! one delivery per endpoint that wants it, and the customer's email when the event has
//! one. Deliveries are signed ([`sign`]) and retried with back-off for three days under
//! the same `webhook-id` (the event's id); an endpoint that fails for the whole window is
//! disabled and the staff are emailed. Balance alerts are decided where balances change:
//! the journal's write calls [`alerts::balances_changed`].
//!
//! This module sits between the store and the ledger: it imports the store, pricing and
//! the vocabulary, never the ledger or the domain modules above it.

pub mod alerts;
pub mod email;
pub mod endpoints;
pub mod outbox;
pub mod sign;

pub use outbox::{emit, Mailing};
