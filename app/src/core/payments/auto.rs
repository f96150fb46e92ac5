//! Auto top-up: "when available falls below X, buy Y, at most Z a month", charged to the
//! card the customer saved at Checkout, without them present.
//!
//! One charge per crossing: the settings row is *armed*; the first check that finds the
//! balance below the threshold disarms it (a conditional UPDATE, so exactly one caller
//! wins, and the row lock makes concurrent checks of one customer run in turn) and inserts
//! the pending top-up in the same transaction. A partial unique index allows one auto
//! top-up in flight per customer whatever happens. It is re-armed once available is back
//! at or above the threshold with nothing in flight, or when the customer saves the
//! settings again. A decline stays disarmed (no retry storm on every request) and is shown
//! to the customer and in the console.

use super::gateway::Charge;
use super::{credit_topup, gateway, send_signed, to_minor, Core};
use crate::core::customers;
use crate::core::error::{Error, Result};
use crate::core::ids;
use crate::core::ledger::Mode;
use crate::core::money::Money;
use crate::core::store::{AutoTopupRow, AutoTopupSettings, CustomerRow, TopupRow};
use crate::core::vocab::{EventType, GatewayKind, TopupSource, TopupStatus};

/// A pending auto top-up older than this is charged again (same idempotency key, so
/// Stripe never charges twice) by the sweep.
const RETRY_PENDING_AFTER_SECONDS: i64 = 60;

/// Saves the customer's settings (validated), re-arms, clears the last error.
pub async fn configure(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    settings: AutoTopupSettings,
) -> Result<AutoTopupRow> {
    let customer = customers::get(core, mode, customer_id).await?;
    if settings.threshold.is_negative() {
        return Err(Error::invalid(
            "threshold",
            "the threshold cannot be negative",
        ));
    }
    if settings.enabled {
        let plan = crate::core::plans::of_customer(&core.store, &customer).await?;
        let currency = core.payments.currency();
        currency
            .from_minor(settings.amount_cents)
            .and_then(|m| to_minor(currency, m, &plan.terms))
            .map_err(|e| rename(e, "amount"))?;
        if settings.monthly_limit_cents < settings.amount_cents {
            return Err(Error::invalid(
                "monthly_limit",
                "the monthly limit must allow at least one top-up",
            ));
        }
        let card = core.store.auto_topup(&customer.id).await?;
        if card.and_then(|c| c.payment_method_id).is_none() {
            return Err(Error::conflict(
                "no_saved_card",
                "buy credits once with a card to save it for auto top-up",
            ));
        }
    }
    let mut tx = core.store.begin().await?;
    tx.configure_auto_topup(&customer.id, &settings, core.clock.now())
        .await?;
    tx.commit().await?;
    // Already below? Then the first charge starts now rather than at the next request.
    check(core, &customer.id).await?;
    core.store
        .auto_topup(&customer.id)
        .await?
        .ok_or_else(|| Error::internal("auto top-up settings vanished"))
}

fn rename(e: Error, param: &'static str) -> Error {
    match e {
        Error::Invalid { code, message, .. } => Error::Invalid {
            code,
            message,
            param: Some(param.into()),
        },
        other => other,
    }
}

/// Remembers the card of a paid Checkout top-up, for auto top-up.
pub async fn remember_card(
    core: &Core,
    topup: &TopupRow,
    stripe_customer: Option<&str>,
    payment_intent: Option<&str>,
) -> Result<()> {
    let (Some(stripe_customer), Some(payment_intent)) = (stripe_customer, payment_intent) else {
        return Ok(());
    };
    if topup.source == TopupSource::Auto {
        return Ok(());
    }
    let mode = topup.mode;
    let gateway = core.payments.gateway(mode)?;
    let Some(method) = gateway.payment_method_of(payment_intent).await? else {
        return Ok(());
    };
    let mut tx = core.store.begin().await?;
    tx.save_card(
        &topup.customer_id,
        gateway.name(),
        stripe_customer,
        &method,
        core.clock.now(),
    )
    .await?;
    tx.commit().await
}

/// Called after usage with the balance it left: starts a check in the background when
/// the balance is under the customer's auto top-up threshold. The request does not wait.
pub fn after_usage(core: &Core, customer: &CustomerRow, available: Money) {
    if customer.auto_topup_below.is_some_and(|t| available < t) {
        let core = core.clone();
        let id = customer.id.clone();
        tokio::spawn(async move {
            if let Err(e) = check(&core, &id).await {
                tracing::warn!(customer = %id, error = %e, "auto top-up check failed");
            }
        });
    }
}

/// Starts an auto top-up when one is due; returns it. Safe to call any number of times
/// at once: at most one caller per crossing gets a top-up.
pub async fn check(core: &Core, customer_id: &str) -> Result<Option<TopupRow>> {
    let Some(settings) = core.store.auto_topup(customer_id).await? else {
        return Ok(None);
    };
    if !settings.enabled {
        return Ok(None);
    }
    let customer = core
        .store
        .customer(customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    if customer.available >= settings.threshold {
        if !settings.armed {
            rearm(core, customer_id).await?;
        }
        return Ok(None);
    }
    if !settings.armed {
        return Ok(None);
    }
    let mode = customer.mode;
    let gateway = core.payments.gateway(mode)?;
    if settings.card_gateway != Some(gateway.name()) {
        // The card was saved with another gateway (e.g. simulated before keys were set).
        return Ok(None);
    }
    let now = core.clock.now();
    let month = now.month_key();
    let mut tx = core.store.begin().await?;
    if !tx.disarm_auto_topup(customer_id, &month).await? {
        return Ok(None);
    }
    // Under the row lock: read the balance again; a top-up may have landed meanwhile.
    let account = tx.lock_account(&customer.account_id).await?;
    if account.available >= settings.threshold || tx.auto_topup_in_flight(customer_id).await? {
        return Ok(None); // dropping the transaction keeps it armed
    }
    let spent = tx
        .auto_topup_cents_since(customer_id, now.month_start())
        .await?;
    if spent + settings.amount_cents > settings.monthly_limit_cents {
        let limit = core
            .payments
            .currency()
            .from_minor(settings.monthly_limit_cents)?
            .display_money();
        tx.cap_auto_topup(
            customer_id,
            &month,
            &format!("auto top-up paused: this month's limit of {limit} is reached"),
            now,
        )
        .await?;
        tx.commit().await?;
        return Ok(None);
    }
    let topup = TopupRow {
        id: ids::new_id("top"),
        mode: customer.mode,
        customer_id: customer.id.clone(),
        amount: core.payments.currency().from_minor(settings.amount_cents)?,
        amount_cents: settings.amount_cents,
        status: TopupStatus::Pending,
        source: TopupSource::Auto,
        gateway: gateway.name(),
        checkout_session_id: None,
        checkout_url: None,
        success_url: None,
        payment_intent_id: None,
        refunded_cents: 0,
        simulated_paid_at: None,
        transaction_id: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    tx.insert_topup(&topup).await?;
    tx.commit().await?;
    tracing::info!(customer = %customer.id, topup = %topup.id, "auto top-up started");
    charge(core, &topup, &settings).await?;
    core.store.topup(&topup.id).await
}

/// Charges the saved card for a pending auto top-up and records the outcome. A network
/// failure leaves it pending for the sweep to try again with the same idempotency key.
async fn charge(core: &Core, topup: &TopupRow, card: &AutoTopupRow) -> Result<()> {
    let mode = topup.mode;
    let gateway = core.payments.gateway(mode)?;
    let outcome = gateway.charge_saved_card(topup, card).await?;
    match outcome {
        Charge::Succeeded { payment_intent } => {
            let mut paid = topup.clone();
            paid.payment_intent_id = Some(payment_intent.clone());
            credit_topup(core, &paid, Some(&payment_intent)).await?;
            Ok(())
        }
        Charge::Processing { payment_intent } => {
            let mut tx = core.store.begin().await?;
            tx.set_topup_payment_intent(&topup.id, &payment_intent, core.clock.now())
                .await?;
            tx.set_topup_status(
                &topup.id,
                &[TopupStatus::Pending],
                TopupStatus::Processing,
                None,
                core.clock.now(),
            )
            .await?;
            tx.commit().await?;
            if gateway.name() == GatewayKind::Simulated {
                // The simulation's bank says yes, through the real webhook path.
                let now = core.clock.now();
                let mut sent = topup.clone();
                sent.payment_intent_id = Some(payment_intent);
                let event = gateway::simulated_intent_event(
                    &sent,
                    core.payments.currency().code(),
                    "payment_intent.succeeded",
                    now,
                );
                send_signed(core, &event, now).await?;
            }
            Ok(())
        }
        Charge::Failed {
            payment_intent,
            reason,
        } => failed(core, topup, payment_intent.as_deref(), &reason).await,
    }
}

async fn rearm(core: &Core, customer_id: &str) -> Result<()> {
    let mut tx = core.store.begin().await?;
    tx.rearm_auto_topup(customer_id).await?;
    tx.commit().await
}

/// After any top-up is credited: an auto top-up's success clears the last error, and
/// the trigger is re-armed once the balance is back at or above the threshold.
pub(super) async fn after_credit(core: &Core, topup: &TopupRow) -> Result<()> {
    let Some(settings) = core.store.auto_topup(&topup.customer_id).await? else {
        return Ok(());
    };
    if topup.source == TopupSource::Auto && settings.last_error.is_some() {
        let mut tx = core.store.begin().await?;
        tx.set_auto_topup_error(&topup.customer_id, None, core.clock.now())
            .await?;
        tx.commit().await?;
    }
    if settings.armed {
        return Ok(());
    }
    let available = core
        .store
        .customer(&topup.customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))?
        .available;
    if available >= settings.threshold {
        rearm(core, &topup.customer_id).await?;
    }
    Ok(())
}

/// A declined auto top-up: the top-up fails, the reason is kept for the customer and the
/// console, and it stays disarmed until the balance recovers or the settings are saved.
pub(super) async fn failed(
    core: &Core,
    topup: &TopupRow,
    payment_intent: Option<&str>,
    reason: &str,
) -> Result<()> {
    let now = core.clock.now();
    let message = format!(
        "auto top-up of {} failed: {reason}",
        topup.amount.display_money()
    );
    let mut tx = core.store.begin().await?;
    if let Some(pi) = payment_intent {
        tx.set_topup_payment_intent(&topup.id, pi, now).await?;
    }
    let moved = tx
        .set_topup_status(
            &topup.id,
            &[TopupStatus::Pending, TopupStatus::Processing],
            TopupStatus::Failed,
            Some(reason),
            now,
        )
        .await?;
    if moved {
        super::topup_failed(
            core,
            &mut tx,
            topup,
            EventType::AutoTopupFailed,
            Some(reason),
        )
        .await?;
    }
    tx.set_auto_topup_error(&topup.customer_id, Some(&message), now)
        .await?;
    tx.commit().await?;
    tracing::warn!(customer = %topup.customer_id, topup = %topup.id, %reason, "auto top-up failed");
    Ok(())
}

/// The sweep: checks every customer with auto top-up on (a check lost to a crash is
/// repaired here) and charges again pending top-ups whose charge never got an answer.
pub async fn sweep(core: &Core) -> Result<usize> {
    let mut started = 0;
    for id in core.store.auto_topup_customers(10_000).await? {
        if check(core, &id).await?.is_some() {
            started += 1;
        }
    }
    let stale = core.clock.now().plus_seconds(-RETRY_PENDING_AFTER_SECONDS);
    for topup in core.store.open_topups(stale, 500).await? {
        if topup.source != TopupSource::Auto || topup.status != TopupStatus::Pending {
            continue;
        }
        if let Some(card) = core.store.auto_topup(&topup.customer_id).await? {
            charge(core, &topup, &card).await?;
        }
    }
    Ok(started)
}
