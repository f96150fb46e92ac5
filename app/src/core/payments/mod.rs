//! Payments: top-ups through Stripe Checkout (or the built-in simulated checkout when no
//! Stripe key is configured), fulfilled exactly once by whichever comes first of the
//! webhook and the customer's return; refunds and disputes from the webhook inbox; and
//! reconciliation that repairs what webhooks missed.

pub mod auto;
pub mod billing;
mod gateway;
pub mod reconcile;
pub mod webhooks;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

pub use gateway::{Charge, Gateway, SessionState, StripeGateway};

use super::clock::Timestamp;
use super::currency::Currency;
use super::customers;
use super::error::{Error, Result};
use super::ids;
use super::keys;
use super::ledger::{Attribution, Credit, Mode, Posted};
use super::money::Money;
use super::notify;
use super::plans;
use super::pricing::PlanTerms;
use super::store::{Store, TopupRow};
use super::vocab::{EventType, GatewayKind, TopupStatus};
use super::Core;

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Faults injected on purpose by tests and simulations: the next N webhook events fail.
#[derive(Debug, Default)]
pub struct Faults {
    webhook_failures: AtomicU32,
}

impl Faults {
    pub fn fail_next_webhooks(&self, n: u32) {
        self.webhook_failures.store(n, Ordering::SeqCst);
    }

    fn take_webhook_failure(&self) -> bool {
        self.webhook_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// How this deployment takes payments.
#[derive(Clone, Debug, Default)]
pub struct PaymentsConfig {
    /// `sk_test_…` or `sk_live_…`; none means simulated payments (test mode only).
    pub stripe_secret_key: Option<Secret>,
    /// The webhook endpoint's signing secret; when none, one is generated and kept in the
    /// database so every process agrees.
    pub webhook_secret: Option<Secret>,
    /// Stripe's API base (a local imitation in tests).
    pub stripe_api_base: Option<String>,
    /// This server's public base URL, for return links and the simulated checkout.
    pub public_url: String,
    /// The deployment currency (`TALLY_CURRENCY`): Stripe amounts are in its minor unit.
    pub currency: Currency,
    /// How long one attempt of a call to Stripe may take, connection included (None:
    /// [`gateway::STRIPE_TIMEOUT`]).
    pub stripe_timeout: Option<std::time::Duration>,
}

#[derive(Clone, Debug)]
pub struct Payments {
    config: PaymentsConfig,
    stripe: Option<(Mode, gateway::StripeGateway)>,
    pub faults: Arc<Faults>,
}

impl Payments {
    /// The deployment currency.
    pub fn currency(&self) -> &Currency {
        &self.config.currency
    }

    pub fn new(config: PaymentsConfig) -> Result<Payments> {
        let stripe = match &config.stripe_secret_key {
            Some(key) => {
                let mode = if key.expose().starts_with("sk_live_")
                    || key.expose().starts_with("rk_live_")
                {
                    Mode::Live
                } else {
                    Mode::Test
                };
                Some((
                    mode,
                    gateway::StripeGateway::new(
                        key,
                        config.stripe_api_base.as_deref(),
                        &config.currency,
                        config.stripe_timeout.unwrap_or(gateway::STRIPE_TIMEOUT),
                    )?,
                ))
            }
            None => None,
        };
        Ok(Payments {
            config,
            stripe,
            faults: Arc::new(Faults::default()),
        })
    }

    /// Simulated payments only (the CLI, tests that do not pay).
    pub fn simulated(public_url: &str) -> Payments {
        Payments {
            config: PaymentsConfig {
                public_url: public_url.to_string(),
                ..PaymentsConfig::default()
            },
            stripe: None,
            faults: Arc::new(Faults::default()),
        }
    }

    pub fn public_url(&self) -> &str {
        self.config.public_url.trim_end_matches('/')
    }

    pub fn is_simulated(&self, mode: Mode) -> bool {
        !matches!(&self.stripe, Some((m, _)) if *m == mode)
    }

    /// The gateway that serves `mode`. Live mode never falls back to simulation.
    pub fn gateway(&self, mode: Mode) -> Result<Gateway<'_>> {
        match (&self.stripe, mode) {
            (Some((m, g)), _) if *m == mode => Ok(Gateway::Stripe(g)),
            (_, Mode::Test) => Ok(Gateway::Simulated),
            (_, Mode::Live) => Err(Error::invalid(
                "mode",
                "live payments need a live Stripe key (STRIPE_SECRET_KEY=sk_live_…)",
            )),
        }
    }

    /// The secret webhooks are verified with (and simulated events signed with).
    pub async fn webhook_secret(&self, store: &Store) -> Result<Secret> {
        if let Some(s) = &self.config.webhook_secret {
            return Ok(s.clone());
        }
        let generated = format!("whsec_{}", keys::random_token()?);
        Ok(Secret(
            store
                .setting_or_insert("webhook_secret", &generated)
                .await?,
        ))
    }
}

pub use super::vocab::TopupSource;

/// Converts an amount to whole cents, refusing fractions of a cent and sums outside the
/// plan's `min_topup`..=`max_topup`.
pub fn to_minor(currency: &Currency, amount: Money, terms: &PlanTerms) -> Result<i64> {
    let Some(minor) = currency.to_minor(amount) else {
        return Err(Error::invalid(
            "amount",
            format!(
                "a top-up is a whole number of the currency's smallest unit ({})",
                currency.display(Money::from_nanos(currency.nanos_per_minor()))
            ),
        ));
    };
    if amount < terms.min_topup || amount > terms.max_topup {
        return Err(Error::invalid(
            "amount",
            format!(
                "a top-up is between {} and {}",
                terms.min_topup.display_money(),
                terms.max_topup.display_money()
            ),
        ));
    }
    Ok(minor)
}

/// Starts a top-up: a pending row, then a Checkout Session (idempotent on the top-up id).
pub async fn create_topup(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    amount: Money,
    source: TopupSource,
    success_url: Option<&str>,
    cancel_url: Option<&str>,
) -> Result<TopupRow> {
    let customer = customers::get(core, mode, customer_id).await?;
    let plan = plans::of_customer(&core.store, &customer).await?;
    let cents = to_minor(core.payments.currency(), amount, &plan.terms)?;
    let gateway = core.payments.gateway(mode)?;
    let now = core.clock.now();
    let row = TopupRow {
        id: ids::new_id("top"),
        mode,
        customer_id: customer.id.clone(),
        amount,
        amount_cents: cents,
        status: TopupStatus::Pending,
        source,
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
    let mut tx = core.store.begin().await?;
    tx.insert_topup(&row).await?;
    tx.commit().await?;

    let base = core.payments.public_url().to_string();
    let success = success_url
        .map(str::to_string)
        .unwrap_or_else(|| format!("{base}/checkout/complete?session_id={{CHECKOUT_SESSION_ID}}"));
    let cancel = cancel_url
        .map(str::to_string)
        .unwrap_or_else(|| format!("{base}/checkout/cancelled"));
    let saved_customer = core
        .store
        .auto_topup(&customer.id)
        .await?
        .filter(|a| a.card_gateway == Some(gateway.name()))
        .and_then(|a| a.stripe_customer_id);
    let created = gateway
        .create_session(
            &row,
            customer.email.as_deref(),
            saved_customer.as_deref(),
            &success,
            &cancel,
            &base,
        )
        .await;
    let mut tx = core.store.begin().await?;
    match created {
        Ok((session_id, url)) => {
            tx.set_topup_session(&row.id, &session_id, &url, &success, core.clock.now())
                .await?;
            tx.commit().await?;
        }
        Err(e) => {
            tx.set_topup_status(
                &row.id,
                &[TopupStatus::Pending],
                TopupStatus::Failed,
                Some(&e.to_string()),
                core.clock.now(),
            )
            .await?;
            tx.commit().await?;
            return Err(e);
        }
    }
    core.store
        .topup(&row.id)
        .await?
        .ok_or_else(|| Error::internal("top-up vanished"))
}

/// Credits a paid top-up exactly once, keyed on its Checkout Session. Safe to call from
/// any number of webhooks and success-page returns at once.
pub async fn credit_topup(
    core: &Core,
    topup: &TopupRow,
    payment_intent: Option<&str>,
) -> Result<Posted> {
    let customer = core
        .store
        .customer(&topup.customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    // Checkout top-ups are keyed on their session (as before auto top-up existed);
    // off-session ones on the top-up itself, which is one charge.
    let reference = match &topup.checkout_session_id {
        Some(session) => format!("topup:{session}"),
        None => format!("topup:{}", topup.id),
    };
    let mut tx = core.store.begin().await?;
    let mut journal = core
        .ledger
        .journal(&mut tx, &[&customer.account_id], &[&reference])
        .await?;
    let posted = journal.credit(&Credit {
        attribution: Attribution {
            actor: Some(format!("stripe:{}", topup.gateway)),
            reason: Some(format!("top-up {}", topup.id)),
        },
        ..Credit::topup(customer.account_id.clone(), topup.amount, reference.clone())
    })?;
    journal.write(&mut tx).await?;
    let newly_paid = tx
        .mark_topup_paid(
            &topup.id,
            payment_intent,
            &posted.transaction.id,
            core.clock.now(),
        )
        .await?;
    if newly_paid {
        notify::emit(
            &mut tx,
            core.clock.now(),
            topup.mode,
            EventType::TopupSucceeded,
            Some(&customer),
            topup_data(&customer, topup, None),
            Some(format!("topup.succeeded:{}", topup.id)),
        )
        .await?;
    }
    tx.commit().await?;
    auto::after_credit(core, topup).await?;
    Ok(posted)
}

/// A Checkout top-up found paid (by its webhook, the return page or reconciliation):
/// credited exactly once, and the card kept for auto top-up when Stripe saved one.
pub(crate) async fn checkout_paid(
    core: &Core,
    topup: &TopupRow,
    payment_intent: Option<&str>,
    customer: Option<&str>,
) -> Result<()> {
    credit_topup(core, topup, payment_intent).await?;
    auto::remember_card(core, topup, customer, payment_intent).await
}

/// A top-up whose Checkout Session expired unpaid is closed as `expired` (if it was still
/// open; a paid or failed one stays as it is).
pub(crate) async fn close_expired(core: &Core, topup: &TopupRow) -> Result<()> {
    set_topup_status(
        core,
        topup,
        &[TopupStatus::Pending, TopupStatus::Processing],
        TopupStatus::Expired,
        None,
    )
    .await
}

/// Moves a top-up from one of `from` to `to` (nothing when it is in another state).
pub(crate) async fn set_topup_status(
    core: &Core,
    topup: &TopupRow,
    from: &[TopupStatus],
    to: TopupStatus,
    error: Option<&str>,
) -> Result<()> {
    let mut tx = core.store.begin().await?;
    let moved = tx
        .set_topup_status(&topup.id, from, to, error, core.clock.now())
        .await?;
    if moved && to == TopupStatus::Failed {
        topup_failed(core, &mut tx, topup, EventType::TopupFailed, error).await?;
    }
    tx.commit().await
}

/// What top-up events say: the customer, the top-up, its amount and, when it failed, why.
pub(crate) fn topup_data(
    customer: &crate::core::store::CustomerRow,
    topup: &TopupRow,
    reason: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "customer": notify::outbox::customer_ref(customer),
        "topup": topup.id,
        "amount": topup.amount.to_string(),
        "currency": crate::core::currency::shown().code(),
        "source": topup.source.as_str(),
        "reason": reason,
    })
}

/// Writes `topup.failed` or `auto_topup.failed` for a top-up that just failed (in the
/// transaction that failed it).
pub(crate) async fn topup_failed(
    core: &Core,
    tx: &mut crate::core::store::Tx,
    topup: &TopupRow,
    event: EventType,
    reason: Option<&str>,
) -> Result<()> {
    let customer = tx
        .customers(&[topup.customer_id.as_str()])
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound("customer"))?;
    notify::emit(
        tx,
        core.clock.now(),
        topup.mode,
        event,
        Some(&customer),
        topup_data(&customer, topup, reason),
        Some(format!("{event}:{}", topup.id)),
    )
    .await?;
    Ok(())
}

/// What a return to the success page found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fulfillment {
    /// Paid and credited (now or earlier).
    Credited(TopupRow),
    /// Not paid yet (an asynchronous payment method, or the webhook is on its way).
    Processing(TopupRow),
    Failed(TopupRow),
}

/// Fulfills a Checkout Session by asking the gateway whether it is paid.
pub async fn fulfill_session(core: &Core, session_id: &str) -> Result<Fulfillment> {
    let topup = core
        .store
        .topup_by_session(session_id)
        .await?
        .ok_or(Error::NotFound("checkout session"))?;
    if topup.status == TopupStatus::Paid {
        return Ok(Fulfillment::Credited(topup));
    }
    let mode = topup.mode;
    let state = core
        .payments
        .gateway(mode)?
        .session_state(session_id, &topup)
        .await?;
    match state {
        SessionState::Paid {
            payment_intent,
            customer,
        } => {
            checkout_paid(core, &topup, payment_intent.as_deref(), customer.as_deref()).await?;
        }
        SessionState::Expired => close_expired(core, &topup).await?,
        SessionState::Open => {}
    }
    let topup = core
        .store
        .topup(&topup.id)
        .await?
        .ok_or_else(|| Error::internal("top-up vanished"))?;
    Ok(match topup.status {
        TopupStatus::Paid => Fulfillment::Credited(topup),
        TopupStatus::Failed | TopupStatus::Expired => Fulfillment::Failed(topup),
        TopupStatus::Pending | TopupStatus::Processing => Fulfillment::Processing(topup),
    })
}

/// The simulated checkout's Pay button: marks the session paid and hands a real-format,
/// signed `checkout.session.completed` to the webhook inbox, as Stripe's delivery would.
pub async fn simulate_payment(core: &Core, session_id: &str) -> Result<TopupRow> {
    let topup = core
        .store
        .topup_by_session(session_id)
        .await?
        .filter(|t| t.gateway == GatewayKind::Simulated)
        .ok_or(Error::NotFound("simulated checkout session"))?;
    if topup.status == TopupStatus::Expired || topup.status == TopupStatus::Failed {
        return Err(Error::conflict(
            "session_closed",
            "this checkout session is closed",
        ));
    }
    let now = core.clock.now();
    let mut tx = core.store.begin().await?;
    tx.mark_simulated_paid(&topup.id, now).await?;
    tx.commit().await?;
    let event = gateway::simulated_event(
        &topup,
        core.payments.currency().code(),
        "checkout.session.completed",
        now,
    );
    send_signed(core, &event, now).await?;
    core.store
        .topup(&topup.id)
        .await?
        .ok_or_else(|| Error::internal("top-up vanished"))
}

/// Signs a payload with the webhook secret, as Stripe does, and hands it to the webhook
/// endpoint's own entry ([`webhooks::receive`]: the signature is checked and the event
/// stored in the inbox) inside this process: no request to our public URL, which behind
/// https or a proxy this process may not be able to reach.
pub async fn send_signed(core: &Core, payload: &str, now: Timestamp) -> Result<()> {
    let secret = core.payments.webhook_secret(&core.store).await?;
    let header = stripe_webhook::Webhook::generate_test_header(
        payload,
        secret.expose(),
        Some(now.micros() / 1_000_000),
    );
    webhooks::receive(core, payload, Some(&header)).await?;
    Ok(())
}
