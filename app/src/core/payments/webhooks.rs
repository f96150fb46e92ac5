//! The webhook inbox. `receive` verifies the signature on the raw bytes (async-stripe's
//! `Webhook::construct_event`: HMAC-SHA256, any of several `v1` values, 300 s tolerance)
//! and stores the event by its id before anything acts on it. `process_due` claims stored
//! events and applies them, retrying failures with exponential back-off; a failure stays
//! visible with its error until a retry or a replay succeeds.
//!
//! Events are applied from their raw JSON by the few fields we need, so a Stripe API
//! version with new or changed fields can never make us drop a payment event.

use serde_json::Value;
use stripe_webhook::{Webhook, WebhookError};

use super::{auto, checkout_paid, close_expired, credit_topup, set_topup_status, Core};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::ledger::{Attribution, Credit, Debit, GrantKind, Kind, Mode, Operator};
use crate::core::subscriptions;

use crate::core::store::{TopupRow, Tx, WebhookEventRow};
use crate::core::vocab::{DisputeStatus, TopupSource, TopupStatus};

/// The largest webhook body we accept.
pub const MAX_WEBHOOK_BYTES: usize = 512 * 1024;
/// A claim older than this belongs to a worker that died; another may take it.
const STALE_CLAIM_SECONDS: i64 = 300;
/// Events claimed in one statement.
const CLAIM_BATCH: i64 = 16;
/// Events one pass applies at most, so a flood cannot hold the worker forever.
const MAX_PER_PASS: usize = 200;

/// What a verified delivery is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub event_type: String,
    pub mode: Mode,
}

/// Checks a delivery's signature on the raw bytes (async-stripe's
/// `Webhook::construct_event`: HMAC-SHA256, any of several `v1` values, 300 s tolerance)
/// and reads the few fields the inbox needs. Pure, so it is fuzzed directly.
pub fn verify(payload: &str, signature: &str, secret: &str, now_seconds: i64) -> Result<Delivery> {
    match Webhook::construct_event_with_timestamp(payload, signature, secret, now_seconds) {
        Ok(_) => {}
        // The signature checked out; only the typed parse failed (a type or shape this SDK
        // does not know). We apply events from the raw JSON, so keep it.
        Err(WebhookError::BadParse(_)) => {}
        Err(WebhookError::BadTimestamp(_)) => {
            return Err(Error::invalid(
                "Stripe-Signature",
                "the signature is too old or from the future",
            ))
        }
        Err(e) => {
            return Err(Error::invalid(
                "Stripe-Signature",
                format!("bad signature: {e}"),
            ))
        }
    }
    let event: Value = serde_json::from_str(payload)
        .map_err(|e| Error::invalid("body", format!("not JSON: {e}")))?;
    let id = event["id"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 255);
    let event_type = event["type"]
        .as_str()
        .filter(|s| !s.is_empty() && s.len() <= 255);
    let (Some(id), Some(event_type)) = (id, event_type) else {
        return Err(Error::invalid("body", "an event needs an id and a type"));
    };
    let mode = if event["livemode"].as_bool().unwrap_or(false) {
        Mode::Live
    } else {
        Mode::Test
    };
    Ok(Delivery {
        id: id.to_string(),
        event_type: event_type.to_string(),
        mode,
    })
}

/// Verifies and stores one delivery. `Ok(true)` when new, `Ok(false)` for a duplicate.
pub async fn receive(core: &Core, payload: &str, signature: Option<&str>) -> Result<bool> {
    let secret = core.payments.webhook_secret(&core.store).await?;
    let signature = signature
        .ok_or_else(|| Error::invalid("Stripe-Signature", "missing Stripe-Signature header"))?;
    let now = core.clock.now();
    let d = verify(
        payload,
        signature,
        secret.expose(),
        now.micros() / 1_000_000,
    )?;
    core.store
        .insert_webhook_event(
            &d.id,
            &d.event_type,
            d.mode.as_str(),
            payload,
            "webhook",
            now,
        )
        .await
}

/// Stores an event found by reconciliation (no signature: it came from Stripe's API).
pub async fn store_reconciled(
    core: &Core,
    id: &str,
    event_type: &str,
    mode: Mode,
    payload: &str,
) -> Result<bool> {
    core.store
        .insert_webhook_event(
            id,
            event_type,
            mode.as_str(),
            payload,
            "reconciliation",
            core.clock.now(),
        )
        .await
}

fn backoff_seconds(attempts: i64) -> i64 {
    // 2, 4, 8 … seconds, at most an hour.
    2i64.saturating_pow(attempts.clamp(1, 12) as u32).min(3_600)
}

/// Applies every due event once; returns (processed, failed). Claims a few at a time, so
/// events this worker has not reached stay free for another node's worker.
pub async fn process_due(core: &Core) -> Result<(usize, usize)> {
    let (mut ok, mut failed) = (0, 0);
    while ok + failed < MAX_PER_PASS {
        let now = core.clock.now();
        let stale = now.plus_seconds(-STALE_CLAIM_SECONDS);
        let claimed = core
            .store
            .claim_webhook_events(now, stale, CLAIM_BATCH)
            .await?;
        if claimed.is_empty() {
            break;
        }
        for id in claimed {
            let Some(event) = core.store.webhook_event(&id).await? else {
                continue;
            };
            match apply(core, &event).await {
                Ok(()) => {
                    core.store
                        .finish_webhook_event(&id, core.clock.now())
                        .await?;
                    ok += 1;
                }
                Err(e) => {
                    let retry = core
                        .clock
                        .now()
                        .plus_seconds(backoff_seconds(event.attempts));
                    tracing::warn!(event = %id, kind = %event.event_type, error = %e, "webhook event failed; will retry");
                    core.store
                        .fail_webhook_event(&id, &e.to_string(), retry)
                        .await?;
                    failed += 1;
                }
            }
        }
    }
    Ok((ok, failed))
}

/// Puts an event back in the queue at once (`tally replay-webhook`; the console does the
/// same inside its audited transaction, `admin::replay_webhook`).
pub async fn replay(core: &Core, id: &str) -> Result<()> {
    let mut tx = core.store.begin().await?;
    requeue_in(&mut tx, id, core.clock.now()).await?;
    tx.commit().await
}

/// [`replay`] inside the caller's transaction.
pub async fn requeue_in(tx: &mut Tx, id: &str, now: Timestamp) -> Result<()> {
    if tx.requeue_webhook_event(id, now).await? {
        Ok(())
    } else {
        Err(Error::NotFound("webhook event (or it is being processed)"))
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v[key].as_str().filter(|s| !s.is_empty())
}

/// An id that may be a string or an expanded object with an id.
fn id_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v[key]
        .as_str()
        .or_else(|| v[key]["id"].as_str())
        .filter(|s| !s.is_empty())
}

async fn apply(core: &Core, event: &WebhookEventRow) -> Result<()> {
    if core.payments.faults.take_webhook_failure() {
        return Err(Error::Unavailable("injected failure".into()));
    }
    let payload: Value =
        serde_json::from_str(&event.payload).map_err(|e| Error::internal(e.to_string()))?;
    let object = &payload["data"]["object"];
    let created = payload["created"].as_i64().unwrap_or(0);
    match event.event_type.as_str() {
        "checkout.session.completed" if object["mode"].as_str() == Some("subscription") => {
            subscriptions::checkout_completed(core, object).await
        }
        "customer.subscription.created" | "customer.subscription.updated" => {
            subscriptions::apply_subscription(core, created, object, false).await
        }
        "customer.subscription.deleted" => {
            subscriptions::apply_subscription(core, created, object, true).await
        }
        "invoice.paid" => subscriptions::invoice_paid(core, object).await,
        "invoice.payment_failed" => subscriptions::invoice_failed(core, object, false).await,
        "invoice.payment_action_required" => {
            subscriptions::invoice_failed(core, object, true).await
        }
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            let Some(topup) = topup_for_session(core, object).await? else {
                return Ok(());
            };
            if object["payment_status"].as_str() == Some("paid")
                || object["payment_status"].as_str() == Some("no_payment_required")
            {
                let payment_intent = id_field(object, "payment_intent");
                checkout_paid(core, &topup, payment_intent, id_field(object, "customer")).await?;
            } else {
                set_topup_status(
                    core,
                    &topup,
                    &[TopupStatus::Pending],
                    TopupStatus::Processing,
                    None,
                )
                .await?;
            }
            Ok(())
        }
        "checkout.session.async_payment_failed" => {
            let Some(topup) = topup_for_session(core, object).await? else {
                return Ok(());
            };
            set_topup_status(
                core,
                &topup,
                &[TopupStatus::Pending, TopupStatus::Processing],
                TopupStatus::Failed,
                Some("the payment failed"),
            )
            .await
        }
        "checkout.session.expired" => {
            let Some(topup) = topup_for_session(core, object).await? else {
                return Ok(());
            };
            close_expired(core, &topup).await
        }
        "charge.refunded" => refund(core, object).await,
        "payment_intent.succeeded" => {
            let Some(topup) = auto_topup_for_intent(core, object).await? else {
                return Ok(());
            };
            let pi = id_field(object, "id");
            credit_topup(core, &topup, pi).await.map(|_| ())
        }
        "payment_intent.payment_failed" => {
            let Some(topup) = auto_topup_for_intent(core, object).await? else {
                return Ok(());
            };
            if topup.status == TopupStatus::Paid {
                return Ok(()); // a later attempt on the same intent already succeeded
            }
            let reason = object["last_payment_error"]["message"]
                .as_str()
                .unwrap_or("the card was declined");
            auto::failed(core, &topup, id_field(object, "id"), reason).await
        }
        "charge.dispute.created" | "charge.dispute.updated" | "charge.dispute.closed" => {
            dispute(core, object).await
        }
        // Everything else is stored for the record and needs nothing from us.
        _ => Ok(()),
    }
}

async fn topup_for_session(core: &Core, session: &Value) -> Result<Option<TopupRow>> {
    let Some(id) = str_field(session, "id") else {
        return Err(Error::invalid(
            "data.object.id",
            "a checkout event without a session id",
        ));
    };
    if let Some(t) = core.store.topup_by_session(id).await? {
        return Ok(Some(t));
    }
    // Metadata may be absent; when present it names the top-up.
    match session["metadata"]["topup_id"].as_str() {
        Some(topup_id) => match core.store.topup(topup_id).await? {
            Some(t) => Ok(Some(t)),
            None => Err(Error::internal(format!(
                "session {id} names unknown top-up {topup_id}"
            ))),
        },
        // A session of something else on the same Stripe account: not ours to act on.
        None => Ok(None),
    }
}

/// The auto top-up a PaymentIntent event is about; None for intents that are not ours
/// or that belong to a Checkout top-up (its checkout events fulfill it).
async fn auto_topup_for_intent(core: &Core, intent: &Value) -> Result<Option<TopupRow>> {
    let by_id = match id_field(intent, "id") {
        Some(pi) => core.store.topup_by_payment_intent(pi).await?,
        None => None,
    };
    let topup = match (by_id, intent["metadata"]["topup_id"].as_str()) {
        (Some(t), _) => Some(t),
        (None, Some(id)) => core.store.topup(id).await?,
        (None, None) => None,
    };
    Ok(topup.filter(|t| t.source == TopupSource::Auto))
}

async fn topup_for_payment(core: &Core, object: &Value) -> Result<TopupRow> {
    let pi = id_field(object, "payment_intent")
        .ok_or_else(|| Error::invalid("data.object.payment_intent", "no payment intent"))?;
    match core.store.topup_by_payment_intent(pi).await? {
        Some(t) if t.status == TopupStatus::Paid => Ok(t),
        // Out of order: the payment is not fulfilled yet. Fail now; the retry will find it.
        _ => Err(Error::Unavailable(format!(
            "no fulfilled top-up for payment {pi} yet"
        ))),
    }
}

/// `charge.refunded`: `amount_refunded` is cumulative, so only the part not yet applied
/// leaves the balance, even into the negative.
async fn refund(core: &Core, charge: &Value) -> Result<()> {
    let topup = topup_for_payment(core, charge).await?;
    let total = charge["amount_refunded"]
        .as_i64()
        .ok_or_else(|| Error::invalid("data.object.amount_refunded", "missing"))?;
    let charge_id = str_field(charge, "id").unwrap_or("charge");
    let account = core
        .store
        .customer(&topup.customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))?
        .account_id;
    let reference = format!("refund:{charge_id}:{total}");
    let mut tx = core.store.begin().await?;
    let mut journal = core
        .ledger
        .journal(&mut tx, &[&account], &[&reference])
        .await?;
    let current = tx
        .topup(&topup.id)
        .await?
        .ok_or_else(|| Error::internal("top-up vanished"))?;
    if total <= current.refunded_cents {
        return tx.commit().await;
    }
    let new_cents = total - current.refunded_cents;
    if !tx
        .advance_refunded(&topup.id, current.refunded_cents, total, core.clock.now())
        .await?
    {
        return Err(Error::Unavailable("refund raced; retrying".into()));
    }
    journal.debit(&Debit {
        account_id: account,
        amount: core.payments.currency().from_minor(new_cents)?,
        counter: Operator::StripeClearing,
        kind: Kind::Refund,
        reference,
        attribution: Attribution {
            actor: Some("stripe".into()),
            reason: Some(format!("refund of top-up {}", topup.id)),
        },
    })?;
    journal.write(&mut tx).await?;
    tx.commit().await
}

/// Disputes: the disputed amount leaves the balance while the dispute is open; a won
/// dispute returns it, a lost one keeps it out. Events may come in any order.
async fn dispute(core: &Core, d: &Value) -> Result<()> {
    let topup = topup_for_payment(core, d).await?;
    let id = str_field(d, "id")
        .ok_or_else(|| Error::invalid("data.object.id", "a dispute without an id"))?;
    let amount = core.payments.currency().from_minor(
        d["amount"]
            .as_i64()
            .ok_or_else(|| Error::invalid("data.object.amount", "missing"))?,
    )?;
    let status = DisputeStatus::of_stripe(d["status"].as_str().unwrap_or(""));
    let account = core
        .store
        .customer(&topup.customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))?
        .account_id;
    let (held, returned) = (
        format!("dispute:{id}:held"),
        format!("dispute:{id}:returned"),
    );
    let mut tx = core.store.begin().await?;
    let mut journal = core
        .ledger
        .journal(&mut tx, &[&account], &[&held, &returned])
        .await?;
    let previous = tx
        .upsert_dispute(id, &topup.id, amount, status, core.clock.now())
        .await?;
    let attribution = || Attribution {
        actor: Some("stripe".into()),
        reason: Some(format!("dispute {id} on top-up {}", topup.id)),
    };
    let take = Debit {
        account_id: account.clone(),
        amount,
        counter: Operator::Disputes,
        kind: Kind::Dispute,
        reference: held,
        attribution: attribution(),
    };
    match (previous, status) {
        // New and open: hold the funds. New and already lost: remove them.
        (None, DisputeStatus::Open | DisputeStatus::Lost) => {
            journal.debit(&take)?;
        }
        // Won while the funds were held, or won after all once lost: give them back.
        (Some(DisputeStatus::Open | DisputeStatus::Lost), DisputeStatus::Won) => {
            journal.credit(&Credit {
                account_id: account.clone(),
                amount,
                grant_kind: GrantKind::Purchased,
                expires_at: None,
                source: Operator::Disputes,
                kind: Kind::Dispute,
                reference: returned,
                attribution: attribution(),
            })?;
        }
        // Lost after being held: the funds are already out. Anything else: nothing new.
        _ => {}
    }
    // A lost dispute suspends the customer (product rule: chargebacks stop usage until
    // staff look); a won one lifts that suspension if no other dispute of theirs is lost
    // and staff did not suspend them themselves.
    match status {
        DisputeStatus::Lost if previous != Some(DisputeStatus::Lost) => {
            tx.suspend_for_dispute(&account).await?;
        }
        DisputeStatus::Won
            if previous != Some(DisputeStatus::Won)
                && tx.lost_disputes(&topup.customer_id).await? == 0 =>
        {
            tx.lift_dispute_suspension(&account).await?;
        }
        _ => {}
    }
    journal.write(&mut tx).await?;
    tx.commit().await
}

/// Seconds since the epoch, for Stripe's `created`.
pub fn unix_seconds(t: Timestamp) -> i64 {
    t.micros() / 1_000_000
}
