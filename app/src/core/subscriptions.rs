//! Subscriptions: plans with a recurring fee, sold through Stripe Billing (or the built-in
//! simulation without Stripe keys), with the plan's included credits granted once per paid
//! invoice and access that follows Tally's own state.
//!
//! - Subscribing creates an `incomplete` subscription and a Checkout Session in
//!   `subscription` mode; the webhook inbox does the rest.
//! - Events may come twice and in any order. A paid invoice grants its period's credits
//!   once (the ledger reference is the invoice id); a failed one makes the subscription
//!   `past_due` and starts the grace (once); `past_due` ends only when no invoice of the
//!   subscription is left unpaid; a canceled subscription stays canceled; the period only
//!   moves forward; and an older subscription event than the last one applied changes
//!   nothing else.
//! - Past the grace, the customer's row carries `grace_ends_at`, which every hold reads
//!   under the account's lock (`metering::write`): nothing new is held, while usage that
//!   already happened is still recorded and charged.
//! - Upgrades happen now (Stripe prorates and invoices at once; the new plan's included
//!   credits for the rest of the period come with that invoice); downgrades at the
//!   period's end; cancel and resume set `cancel_at_period_end`.

use serde_json::{json, Value};

use super::clock::Timestamp;
use super::customers;
use super::error::{Error, Result};
use super::ids;
use super::ledger::{Attribution, Credit, GrantKind, Kind, Mode, Operator};
use super::money::Money;
use super::notify;
use super::payments::billing::SubscriptionCheckout;
use super::payments::{self, webhooks, Gateway};
use super::plans::{self, Plan};
use super::store::{CustomerRow, PlanPriceRow, Tx};
use super::vocab::{EventType, GatewayKind};
use super::Core;

pub use super::store::{InvoiceRow, SubscriptionRow};
pub use super::vocab::{InvoiceStatus, SubscriptionStatus};

/// The length of a simulated billing period.
const SIMULATED_PERIOD_SECONDS: i64 = 30 * 86_400;

// ----- Reading Stripe's objects (webhook payloads and API answers alike) -----

fn from_seconds(v: &Value) -> Option<Timestamp> {
    v.as_i64().map(|s| Timestamp::from_micros(s * 1_000_000))
}

fn text(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// An id that may be a string or an expanded object.
fn id_of(v: &Value) -> Option<&str> {
    text(v).or_else(|| text(&v["id"]))
}

/// What Tally reads from a Stripe subscription.
#[derive(Clone, Debug)]
struct SubscriptionFacts {
    stripe_id: String,
    tally_id: Option<String>,
    status: SubscriptionStatus,
    period_start: Option<Timestamp>,
    period_end: Option<Timestamp>,
    cancel_at_period_end: bool,
}

fn subscription_facts(o: &Value) -> Result<SubscriptionFacts> {
    let stripe_id = text(&o["id"])
        .ok_or_else(|| Error::invalid("data.object.id", "a subscription without an id"))?;
    // Newer API versions keep the period on the items.
    let item = &o["items"]["data"][0];
    let status = match o["status"].as_str().unwrap_or("") {
        "active" | "trialing" => SubscriptionStatus::Active,
        "past_due" | "unpaid" | "paused" => SubscriptionStatus::PastDue,
        "canceled" | "incomplete_expired" => SubscriptionStatus::Canceled,
        _ => SubscriptionStatus::Incomplete,
    };
    Ok(SubscriptionFacts {
        stripe_id: stripe_id.to_string(),
        tally_id: text(&o["metadata"]["tally_subscription_id"]).map(str::to_string),
        status,
        period_start: from_seconds(&item["current_period_start"])
            .or_else(|| from_seconds(&o["current_period_start"])),
        period_end: from_seconds(&item["current_period_end"])
            .or_else(|| from_seconds(&o["current_period_end"])),
        cancel_at_period_end: o["cancel_at_period_end"].as_bool().unwrap_or(false),
    })
}

/// What Tally reads from a Stripe invoice.
#[derive(Clone, Debug)]
struct InvoiceFacts {
    id: String,
    stripe_subscription: Option<String>,
    tally_subscription: Option<String>,
    amount_cents: i64,
    billing_reason: String,
    period_start: Timestamp,
    period_end: Timestamp,
    hosted_invoice_url: Option<String>,
    price_id: Option<String>,
}

fn invoice_facts(o: &Value) -> Result<InvoiceFacts> {
    let id = text(&o["id"])
        .ok_or_else(|| Error::invalid("data.object.id", "an invoice without an id"))?;
    let details = &o["parent"]["subscription_details"];
    let line = &o["lines"]["data"][0];
    let period_start = from_seconds(&line["period"]["start"])
        .or_else(|| from_seconds(&o["period_start"]))
        .ok_or_else(|| Error::invalid("data.object.period_start", "an invoice without a period"))?;
    let period_end = from_seconds(&line["period"]["end"])
        .or_else(|| from_seconds(&o["period_end"]))
        .unwrap_or(period_start);
    let paid = o["amount_paid"].as_i64().unwrap_or(0);
    Ok(InvoiceFacts {
        id: id.to_string(),
        stripe_subscription: id_of(&details["subscription"])
            .or_else(|| id_of(&o["subscription"]))
            .map(str::to_string),
        tally_subscription: text(&details["metadata"]["tally_subscription_id"])
            .or_else(|| text(&o["subscription_details"]["metadata"]["tally_subscription_id"]))
            .map(str::to_string),
        amount_cents: if paid > 0 {
            paid
        } else {
            o["amount_due"].as_i64().unwrap_or(0)
        },
        billing_reason: text(&o["billing_reason"])
            .unwrap_or("subscription_cycle")
            .to_string(),
        period_start,
        period_end,
        hosted_invoice_url: text(&o["hosted_invoice_url"]).map(str::to_string),
        price_id: text(&line["pricing"]["price_details"]["price"])
            .or_else(|| id_of(&line["price"]))
            .map(str::to_string),
    })
}

// ----- Reads -----

/// The customer's newest subscription.
pub async fn current(
    core: &Core,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<SubscriptionRow>> {
    let customer = customers::get(core, mode, customer_id).await?;
    core.store.current_subscription(&customer.id).await
}

/// The customer's subscription that is running (active or past due).
async fn running(core: &Core, mode: Mode, customer_id: &str) -> Result<SubscriptionRow> {
    current(core, mode, customer_id)
        .await?
        .filter(|s| {
            matches!(
                s.status,
                SubscriptionStatus::Active | SubscriptionStatus::PastDue
            )
        })
        .ok_or(Error::NotFound("subscription"))
}

pub async fn by_checkout_session(core: &Core, session_id: &str) -> Result<Option<SubscriptionRow>> {
    core.store.subscription_by_session(session_id).await
}

/// A customer's subscription invoices, newest first.
pub async fn invoices(core: &Core, customer_id: &str) -> Result<Vec<InvoiceRow>> {
    core.store.invoices_of(customer_id).await
}

/// A mode's subscriptions for the console, newest first.
pub async fn list(
    core: &Core,
    mode: Mode,
    status: Option<SubscriptionStatus>,
    limit: i64,
) -> Result<Vec<SubscriptionRow>> {
    core.store
        .subscriptions(mode, status, limit.clamp(1, 1000))
        .await
}

/// Whether the portal shows the failed-renewal banner.
pub fn past_due_banner(sub: &SubscriptionRow) -> bool {
    sub.status == SubscriptionStatus::PastDue
}

fn subscription_plan(store_plan: Result<Plan>, plan_id: &str) -> Result<Plan> {
    let plan = store_plan.map_err(|e| match e {
        Error::NotFound(_) => Error::invalid("plan", format!("no such plan: {plan_id}")),
        other => other,
    })?;
    if !plan.terms.is_subscription() {
        return Err(Error::invalid(
            "plan",
            format!("plan {plan_id} has no recurring_fee; it is not sold as a subscription"),
        ));
    }
    Ok(plan)
}

/// The Stripe (or simulated) Price of a plan's version in force, created when first needed.
async fn price_of(core: &Core, gateway: &Gateway<'_>, plan: &Plan) -> Result<PlanPriceRow> {
    if let Some(p) = core
        .store
        .plan_price(&plan.version_id, gateway.name())
        .await?
    {
        return Ok(p);
    }
    let (product_id, price_id) = match gateway {
        Gateway::Stripe(g) => {
            let fee = fee_minor(core, plan)?;
            g.create_plan_price(&plan.version_id, &plan.name, fee)
                .await?
        }
        Gateway::Simulated => (
            format!("prod_sim_{}", plan.version_id),
            format!("price_sim_{}", plan.version_id),
        ),
    };
    let row = PlanPriceRow {
        plan_version_id: plan.version_id.clone(),
        gateway: gateway.name(),
        mode: plan.mode,
        plan_id: plan.id.clone(),
        product_id,
        price_id,
    };
    let mut tx = core.store.begin().await?;
    tx.insert_plan_price(&row, core.clock.now()).await?;
    tx.commit().await?;
    core.store
        .plan_price(&plan.version_id, gateway.name())
        .await?
        .ok_or_else(|| Error::internal("plan price vanished"))
}

fn fee_minor(core: &Core, plan: &Plan) -> Result<i64> {
    core.payments
        .currency()
        .to_minor(plan.terms.recurring_fee)
        .ok_or_else(|| Error::invalid("recurring_fee", "not a whole number of minor units"))
}

// ----- Actions -----

/// Starts a subscription: an `incomplete` row and a Checkout Session in `subscription`
/// mode (the simulated checkout page without Stripe keys).
pub async fn subscribe(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    plan_id: &str,
    success_url: Option<&str>,
    cancel_url: Option<&str>,
) -> Result<SubscriptionRow> {
    let customer = customers::get(core, mode, customer_id).await?;
    let plan = subscription_plan(plans::plan(&core.store, mode, plan_id).await, plan_id)?;
    if let Some(s) = core.store.current_subscription(&customer.id).await? {
        if matches!(
            s.status,
            SubscriptionStatus::Active | SubscriptionStatus::PastDue
        ) {
            return Err(Error::conflict(
                "subscription_exists",
                format!(
                    "the customer already has subscription {}; change its plan instead",
                    s.id
                ),
            ));
        }
    }
    let gateway = core.payments.gateway(mode)?;
    let price = price_of(core, &gateway, &plan).await?;
    let now = core.clock.now();
    let mut row = SubscriptionRow {
        id: ids::new_id("sub"),
        mode,
        customer_id: customer.id.clone(),
        plan_id: plan.id.clone(),
        pending_plan_id: None,
        status: SubscriptionStatus::Incomplete,
        gateway: gateway.name(),
        checkout_session_id: None,
        checkout_url: None,
        stripe_subscription_id: None,
        current_period_start: None,
        current_period_end: None,
        cancel_at_period_end: false,
        past_due_since: None,
        grace_ends_at: None,
        last_event_created: 0,
        created_at: now,
        updated_at: now,
    };
    let mut tx = core.store.begin().await?;
    tx.insert_subscription(&row).await?;
    tx.commit().await?;

    let base = core.payments.public_url().to_string();
    let success = success_url
        .map(str::to_string)
        .unwrap_or_else(|| format!("{base}/portal/billing?subscribed=1"));
    let cancel = cancel_url
        .map(str::to_string)
        .unwrap_or_else(|| format!("{base}/portal/billing"));
    let created = match &gateway {
        Gateway::Simulated => {
            let id = ids::new_id("cs_sim");
            Ok((id.clone(), format!("{base}/checkout/simulated/{id}")))
        }
        Gateway::Stripe(g) => {
            g.create_subscription_session(&SubscriptionCheckout {
                subscription_id: &row.id,
                price_id: &price.price_id,
                email: customer.email.as_deref(),
                stripe_customer: None,
                success_url: &success,
                cancel_url: &cancel,
            })
            .await
        }
    };
    let mut tx = core.store.begin().await?;
    match created {
        Ok((session, url)) => {
            row.checkout_session_id = Some(session);
            row.checkout_url = Some(url);
            row.updated_at = core.clock.now();
            tx.update_subscription(&row).await?;
            tx.commit().await?;
            Ok(row)
        }
        Err(e) => {
            row.status = SubscriptionStatus::Canceled;
            row.updated_at = core.clock.now();
            tx.update_subscription(&row).await?;
            tx.commit().await?;
            Err(e)
        }
    }
}

/// What a plan change would do now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangePreview {
    /// An upgrade happens now; a downgrade at the period's end.
    pub upgrade: bool,
    /// Charged now (Stripe's proration of the fee difference for the rest of the period).
    pub due_now: Money,
    /// Included credits granted now, for the rest of the period.
    pub credits_now: Money,
    pub effective_at: Timestamp,
    /// The new plan's monthly fee.
    pub recurring_fee: Money,
}

/// `value` × (end − from) / (end − start), rounded half up; the whole value without a
/// known period.
fn prorate(value: i128, start: Timestamp, end: Timestamp, from: Timestamp) -> i128 {
    let whole = i128::from(end.micros() - start.micros());
    let rest = i128::from(end.micros() - from.micros()).clamp(0, whole.max(0));
    if whole <= 0 {
        return value;
    }
    (value * rest * 2 + whole) / (2 * whole)
}

pub async fn preview_change(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    plan_id: &str,
) -> Result<ChangePreview> {
    let sub = running(core, mode, customer_id).await?;
    let old = plans::plan(&core.store, mode, &sub.plan_id).await?;
    let new = subscription_plan(plans::plan(&core.store, mode, plan_id).await, plan_id)?;
    if new.id == old.id {
        return Err(Error::invalid(
            "plan",
            "the subscription is on this plan already",
        ));
    }
    let now = core.clock.now();
    let (start, end) = (
        sub.current_period_start.unwrap_or(now),
        sub.current_period_end.unwrap_or(now),
    );
    let upgrade = new.terms.recurring_fee >= old.terms.recurring_fee;
    let currency = core.payments.currency();
    let (due_now, credits_now, effective_at) = if upgrade {
        let difference = i128::from(fee_minor(core, &new)? - fee_minor(core, &old)?);
        let minor = i64::try_from(prorate(difference, start, end, now))
            .map_err(|_| Error::internal("proration out of range"))?;
        let credits = i64::try_from(prorate(
            i128::from(new.terms.included_credits.nanos()),
            start,
            end,
            now,
        ))
        .map_err(|_| Error::internal("proration out of range"))?;
        (
            currency.from_minor(minor.max(0))?,
            Money::from_nanos(credits),
            now,
        )
    } else {
        (Money::ZERO, Money::ZERO, end)
    };
    Ok(ChangePreview {
        upgrade,
        due_now,
        credits_now,
        effective_at,
        recurring_fee: new.terms.recurring_fee,
    })
}

/// Changes the plan: an upgrade now (prorated, invoiced at once), a downgrade at the
/// period's end.
pub async fn change_plan(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    plan_id: &str,
) -> Result<SubscriptionRow> {
    let preview = preview_change(core, mode, customer_id, plan_id).await?;
    let sub = running(core, mode, customer_id).await?;
    let plan = plans::plan(&core.store, mode, plan_id).await?;
    let gateway = core.payments.gateway(mode)?;
    let price = price_of(core, &gateway, &plan).await?;
    let now = core.clock.now();
    match &gateway {
        Gateway::Stripe(g) => {
            let stripe_id = stripe_id(&sub)?;
            g.change_price(
                stripe_id,
                &price.price_id,
                preview.upgrade,
                &format!("{}-{}", sub.id, plan.version_id),
            )
            .await?;
        }
        Gateway::Simulated => {
            if preview.upgrade {
                let (start, end) = (
                    sub.current_period_start.unwrap_or(now),
                    sub.current_period_end.unwrap_or(now),
                );
                let invoice = simulated_invoice(
                    core,
                    &sub,
                    &ids::new_id("in_sim"),
                    "paid",
                    "subscription_update",
                    core.payments
                        .currency()
                        .to_minor(preview.due_now)
                        .unwrap_or(0),
                    (now.max(start), end),
                    &price,
                );
                post(core, "invoice.paid", invoice).await?;
            }
        }
    }
    let changed = update(core, &sub.id, |row, _| {
        if preview.upgrade {
            row.plan_id = plan.id.clone();
            row.pending_plan_id = None;
        } else {
            row.pending_plan_id = Some(plan.id.clone());
        }
        Ok(())
    })
    .await?;
    settle_simulated(core, &gateway).await?;
    Ok(changed)
}

fn stripe_id(sub: &SubscriptionRow) -> Result<&str> {
    sub.stripe_subscription_id
        .as_deref()
        .ok_or_else(|| Error::Unavailable("the subscription is not known to Stripe yet".into()))
}

/// Cancels at the period's end (`resume` undoes it before then).
pub async fn cancel(core: &Core, mode: Mode, customer_id: &str) -> Result<SubscriptionRow> {
    set_cancel(core, mode, customer_id, true).await
}

pub async fn resume(core: &Core, mode: Mode, customer_id: &str) -> Result<SubscriptionRow> {
    set_cancel(core, mode, customer_id, false).await
}

async fn set_cancel(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    cancel: bool,
) -> Result<SubscriptionRow> {
    let sub = running(core, mode, customer_id).await?;
    let gateway = core.payments.gateway(mode)?;
    if let Gateway::Stripe(g) = &gateway {
        g.set_cancel_at_period_end(stripe_id(&sub)?, cancel).await?;
    }
    let now_seconds = webhooks::unix_seconds(core.clock.now());
    update(core, &sub.id, |row, _| {
        row.cancel_at_period_end = cancel;
        // An event older than this change must not undo it.
        row.last_event_created = row.last_event_created.max(now_seconds);
        Ok(())
    })
    .await
}

/// The portal's "update your card": Stripe's hosted page of the oldest unpaid invoice;
/// with simulated payments the open invoices are paid at once (None).
pub async fn pay_open_invoice(
    core: &Core,
    mode: Mode,
    customer_id: &str,
) -> Result<Option<String>> {
    let sub = running(core, mode, customer_id).await?;
    let unpaid = core.store.unpaid_invoices(&sub.id).await?;
    let gateway = core.payments.gateway(mode)?;
    match &gateway {
        Gateway::Stripe(_) => Ok(unpaid.into_iter().find_map(|i| i.hosted_invoice_url)),
        Gateway::Simulated => {
            pay_simulated(core, &sub, &unpaid).await?;
            settle_simulated(core, &gateway).await?;
            Ok(None)
        }
    }
}

// ----- The simulation: real-format events through our own webhook endpoint -----

/// Applies the simulated events just posted, so the caller sees their effect.
async fn settle_simulated(core: &Core, gateway: &Gateway<'_>) -> Result<()> {
    if matches!(gateway, Gateway::Simulated) {
        webhooks::process_due(core).await?;
    }
    Ok(())
}

async fn post(core: &Core, event_type: &str, object: Value) -> Result<()> {
    let now = core.clock.now();
    let event = json!({
        "id": ids::new_id("evt_sim"),
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": webhooks::unix_seconds(now),
        "livemode": false,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": object},
    });
    payments::send_signed(core, &event.to_string(), now).await
}

fn simulated_stripe_id(sub: &SubscriptionRow) -> String {
    format!("sub_sim_{}", sub.id.trim_start_matches("sub_"))
}

fn simulated_subscription(
    sub: &SubscriptionRow,
    status: &str,
    period: (Timestamp, Timestamp),
    price: &PlanPriceRow,
) -> Value {
    let id = simulated_stripe_id(sub);
    json!({
        "id": id,
        "object": "subscription",
        "status": status,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "customer": format!("cus_sim_{}", sub.customer_id.trim_start_matches("cus_")),
        "created": webhooks::unix_seconds(sub.created_at),
        "livemode": false,
        "metadata": {"tally_subscription_id": sub.id},
        "items": {"object": "list", "has_more": false, "data": [{
            "id": format!("si_sim_{}", sub.id.trim_start_matches("sub_")),
            "object": "subscription_item",
            "subscription": id,
            "quantity": 1,
            "price": {"id": price.price_id, "object": "price", "product": price.product_id},
            "current_period_start": webhooks::unix_seconds(period.0),
            "current_period_end": webhooks::unix_seconds(period.1),
        }]},
    })
}

#[allow(clippy::too_many_arguments)]
fn simulated_invoice(
    core: &Core,
    sub: &SubscriptionRow,
    id: &str,
    status: &str,
    reason: &str,
    amount_minor: i64,
    period: (Timestamp, Timestamp),
    price: &PlanPriceRow,
) -> Value {
    let paid = status == "paid";
    json!({
        "id": id,
        "object": "invoice",
        "status": status,
        "billing_reason": reason,
        "amount_due": amount_minor,
        "amount_paid": if paid { amount_minor } else { 0 },
        "currency": core.payments.currency().code(),
        "customer": format!("cus_sim_{}", sub.customer_id.trim_start_matches("cus_")),
        "created": webhooks::unix_seconds(core.clock.now()),
        "livemode": false,
        "hosted_invoice_url": null,
        "period_start": webhooks::unix_seconds(period.0),
        "period_end": webhooks::unix_seconds(period.1),
        "parent": {"type": "subscription_details", "subscription_details": {
            "subscription": simulated_stripe_id(sub),
            "metadata": {"tally_subscription_id": sub.id},
        }},
        "lines": {"object": "list", "has_more": false, "data": [{
            "id": format!("il_sim_{}", id.trim_start_matches("in_sim_")),
            "object": "line_item",
            "amount": amount_minor,
            "period": {"start": webhooks::unix_seconds(period.0), "end": webhooks::unix_seconds(period.1)},
            "pricing": {"type": "price_details", "price_details": {
                "price": price.price_id, "product": price.product_id,
            }},
        }]},
    })
}

fn simulated_only(core: &Core, mode: Mode, sub: &SubscriptionRow) -> Result<()> {
    if mode != Mode::Test
        || sub.gateway != GatewayKind::Simulated
        || !core.payments.is_simulated(mode)
    {
        return Err(Error::NotFound("simulated subscription"));
    }
    Ok(())
}

/// The simulated checkout's Pay button for a subscription: the session completes, the
/// subscription starts and its first invoice is paid, as three signed events.
pub async fn simulate_checkout(core: &Core, session_id: &str) -> Result<SubscriptionRow> {
    let sub = core
        .store
        .subscription_by_session(session_id)
        .await?
        .ok_or(Error::NotFound("simulated checkout session"))?;
    simulated_only(core, sub.mode, &sub)?;
    match sub.status {
        SubscriptionStatus::Incomplete => {}
        SubscriptionStatus::Canceled => {
            return Err(Error::conflict(
                "session_closed",
                "this checkout session is closed",
            ))
        }
        _ => return Ok(sub),
    }
    let plan = plans::plan(&core.store, sub.mode, &sub.plan_id).await?;
    let price = price_of(core, &Gateway::Simulated, &plan).await?;
    let now = core.clock.now();
    let period = (now, now.plus_seconds(SIMULATED_PERIOD_SECONDS));
    post(
        core,
        "checkout.session.completed",
        json!({
            "id": session_id,
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "livemode": false,
            "subscription": simulated_stripe_id(&sub),
            "customer": format!("cus_sim_{}", sub.customer_id.trim_start_matches("cus_")),
            "metadata": {"tally_subscription_id": sub.id},
        }),
    )
    .await?;
    post(
        core,
        "customer.subscription.created",
        simulated_subscription(&sub, "active", period, &price),
    )
    .await?;
    let invoice = simulated_invoice(
        core,
        &sub,
        &ids::new_id("in_sim"),
        "paid",
        "subscription_create",
        fee_minor(core, &plan)?,
        period,
        &price,
    );
    post(core, "invoice.paid", invoice).await?;
    settle_simulated(core, &Gateway::Simulated).await?;
    core.store
        .subscription(&sub.id)
        .await?
        .ok_or_else(|| Error::internal("subscription vanished"))
}

async fn pay_simulated(core: &Core, sub: &SubscriptionRow, unpaid: &[InvoiceRow]) -> Result<()> {
    for invoice in unpaid {
        let plan_id = invoice.plan_id.as_deref().unwrap_or(&sub.plan_id);
        let plan = plans::plan(&core.store, sub.mode, plan_id).await?;
        let price = price_of(core, &Gateway::Simulated, &plan).await?;
        let object = simulated_invoice(
            core,
            sub,
            &invoice.id,
            "paid",
            &invoice.billing_reason,
            invoice.amount_cents,
            (invoice.period_start, invoice.period_end),
            &price,
        );
        post(core, "invoice.paid", object).await?;
    }
    Ok(())
}

/// Ends the current period now and renews it, paid or failed, through the webhook path
/// (test mode with simulated payments only). A past-due subscription renewed as paid
/// first has its open invoices paid (the card was updated); one set to cancel at the
/// period's end is canceled instead.
pub async fn advance(
    core: &Core,
    mode: Mode,
    subscription_id: &str,
    fail: bool,
) -> Result<SubscriptionRow> {
    let sub = core
        .store
        .subscription(subscription_id)
        .await?
        .filter(|s| s.mode == mode)
        .ok_or(Error::NotFound("subscription"))?;
    simulated_only(core, mode, &sub)?;
    if !matches!(
        sub.status,
        SubscriptionStatus::Active | SubscriptionStatus::PastDue
    ) {
        return Err(Error::conflict(
            "subscription_not_running",
            format!("the subscription is {}", sub.status),
        ));
    }
    let now = core.clock.now();
    let plan = plans::plan(
        &core.store,
        mode,
        sub.pending_plan_id.as_deref().unwrap_or(&sub.plan_id),
    )
    .await?;
    let price = price_of(core, &Gateway::Simulated, &plan).await?;
    if sub.cancel_at_period_end {
        let period = (
            sub.current_period_start.unwrap_or(now),
            sub.current_period_end.unwrap_or(now),
        );
        post(
            core,
            "customer.subscription.deleted",
            simulated_subscription(&sub, "canceled", period, &price),
        )
        .await?;
    } else {
        if sub.status == SubscriptionStatus::PastDue && !fail {
            let unpaid = core.store.unpaid_invoices(&sub.id).await?;
            pay_simulated(core, &sub, &unpaid).await?;
        }
        // The period ends now and the next one runs a period past the old end, so the
        // period always moves forward however quickly renewals follow each other.
        let next_end = sub.current_period_end.unwrap_or(now).max(now);
        let period = (now, next_end.plus_seconds(SIMULATED_PERIOD_SECONDS));
        let (status, event_type, sub_status) = if fail {
            ("open", "invoice.payment_failed", "past_due")
        } else {
            ("paid", "invoice.paid", "active")
        };
        let invoice = simulated_invoice(
            core,
            &sub,
            &ids::new_id("in_sim"),
            status,
            "subscription_cycle",
            fee_minor(core, &plan)?,
            period,
            &price,
        );
        post(core, event_type, invoice).await?;
        post(
            core,
            "customer.subscription.updated",
            simulated_subscription(&sub, sub_status, period, &price),
        )
        .await?;
    }
    settle_simulated(core, &Gateway::Simulated).await?;
    core.store
        .subscription(&sub.id)
        .await?
        .ok_or_else(|| Error::internal("subscription vanished"))
}

// ----- Applying what Stripe says (the webhook inbox and reconciliation) -----

/// What an update does besides the subscription row.
#[derive(Default)]
struct Effects {
    /// Credits to grant in the same transaction.
    credits: Vec<Credit>,
    /// An invoice to store in the same transaction (with the grant of its credits).
    invoice: Option<InvoiceRow>,
}

/// Changes a subscription under its customer's account lock, then brings the customer's
/// plan and access state in line with it, all in one transaction.
async fn update(
    core: &Core,
    id: &str,
    change: impl FnOnce(&mut SubscriptionRow, &mut Effects) -> Result<()>,
) -> Result<SubscriptionRow> {
    update_with(core, id, &[], |row, effects, _| change(row, effects)).await
}

/// [`update`] whose change may read the stored invoices and names the references its
/// credits use (so a replay is recognised).
async fn update_with(
    core: &Core,
    id: &str,
    references: &[&str],
    change: impl FnOnce(&mut SubscriptionRow, &mut Effects, &[InvoiceRow]) -> Result<()>,
) -> Result<SubscriptionRow> {
    let before = core
        .store
        .subscription(id)
        .await?
        .ok_or(Error::NotFound("subscription"))?;
    let customer = core
        .store
        .customer(&before.customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    let mut tx = core.store.begin().await?;
    let mut journal = core
        .ledger
        .journal(&mut tx, &[&customer.account_id], references)
        .await?;
    let before = tx
        .subscription(id)
        .await?
        .ok_or(Error::NotFound("subscription"))?;
    let unpaid = tx.unpaid_invoices(id).await?;
    let mut row = before.clone();
    let mut effects = Effects::default();
    change(&mut row, &mut effects, &unpaid)?;
    for credit in &effects.credits {
        journal.credit(credit)?;
    }
    journal.write(&mut tx).await?;
    let now = core.clock.now();
    if let Some(mut invoice) = effects.invoice.take() {
        let reference = format!("invoice:{}", invoice.id);
        if let Some(t) = tx.transaction_by_reference(&reference).await? {
            invoice.transaction_id = Some(t.id);
        }
        tx.upsert_invoice(&invoice).await?;
        if invoice.status == InvoiceStatus::Paid {
            let data = json!({
                "customer": notify::outbox::customer_ref(&customer),
                "subscription": row.id,
                "invoice": invoice.id,
                "amount_cents": invoice.amount_cents,
                "currency": crate::core::currency::shown().code(),
                "billing_reason": invoice.billing_reason,
                "period_end": invoice.period_end.to_rfc3339(),
            });
            let key = format!("invoice.paid:{}", invoice.id);
            notify::emit(
                &mut tx,
                now,
                row.mode,
                EventType::InvoicePaid,
                Some(&customer),
                data,
                Some(key),
            )
            .await?;
        }
    }
    row.updated_at = now;
    tx.update_subscription(&row).await?;
    align_customer(&mut tx, &customer, &before, &row).await?;
    announce(&mut tx, now, &customer, &before, &row).await?;
    tx.commit().await?;
    Ok(row)
}

/// The subscription events of a change, written with it: `subscription.past_due` when a
/// renewal failed (with the grace's end), `subscription.canceled` when it ended.
async fn announce(
    tx: &mut Tx,
    now: Timestamp,
    customer: &CustomerRow,
    before: &SubscriptionRow,
    row: &SubscriptionRow,
) -> Result<()> {
    let event = match (before.status, row.status) {
        (a, b) if a == b => return Ok(()),
        (_, SubscriptionStatus::PastDue) => EventType::SubscriptionPastDue,
        (_, SubscriptionStatus::Canceled) => EventType::SubscriptionCanceled,
        _ => return Ok(()),
    };
    let data = json!({
        "customer": notify::outbox::customer_ref(customer),
        "subscription": row.id,
        "plan": row.plan_id,
        "status": row.status.as_str(),
        "grace_ends_at": row.grace_ends_at.map(Timestamp::to_rfc3339),
        "current_period_end": row.current_period_end.map(Timestamp::to_rfc3339),
    });
    notify::emit(tx, now, row.mode, event, Some(customer), data, None).await?;
    Ok(())
}

/// The customer's plan and access follow the subscription: its plan while it runs, the
/// default plan once it is canceled, and the grace's end while it is past due.
async fn align_customer(
    tx: &mut Tx,
    customer: &CustomerRow,
    before: &SubscriptionRow,
    row: &SubscriptionRow,
) -> Result<()> {
    let plan = match row.status {
        SubscriptionStatus::Active | SubscriptionStatus::PastDue => Some(row.plan_id.as_str()),
        SubscriptionStatus::Canceled if before.status != SubscriptionStatus::Canceled => {
            Some(plans::DEFAULT_PLAN)
        }
        _ => None,
    };
    if let Some(plan) = plan.filter(|p| *p != customer.plan_id) {
        tx.set_customer_plan(&customer.id, plan).await?;
    }
    let grace = match row.status {
        SubscriptionStatus::PastDue => row.grace_ends_at,
        _ => None,
    };
    if grace != customer.grace_ends_at {
        tx.set_customer_grace(&customer.id, grace).await?;
    }
    Ok(())
}

/// Moves the period forward only; a period ending later than the current one is a new
/// period, which is when a downgrade takes effect.
fn advance_period(row: &mut SubscriptionRow, start: Option<Timestamp>, end: Option<Timestamp>) {
    let (Some(start), Some(end)) = (start, end) else {
        return;
    };
    match row.current_period_end {
        Some(old) if end <= old => {}
        old => {
            if old.is_some() {
                if let Some(plan) = row.pending_plan_id.take() {
                    row.plan_id = plan;
                }
            }
            row.current_period_start = Some(start);
            row.current_period_end = Some(end);
        }
    }
}

fn start_grace(row: &mut SubscriptionRow, grace_days: u32, now: Timestamp) {
    if row.status == SubscriptionStatus::Canceled {
        return;
    }
    row.status = SubscriptionStatus::PastDue;
    if row.past_due_since.is_none() {
        row.past_due_since = Some(now);
        row.grace_ends_at = Some(now.plus_seconds(i64::from(grace_days) * 86_400));
    }
}

fn end_grace(row: &mut SubscriptionRow) {
    if row.status != SubscriptionStatus::Canceled {
        row.status = SubscriptionStatus::Active;
    }
    row.past_due_since = None;
    row.grace_ends_at = None;
}

/// Finds the subscription an event is about: by Stripe's id, else by the id Tally put in
/// its metadata. None: not one of ours. An error (retried later): ours, but not known yet.
async fn find(
    core: &Core,
    stripe_id: Option<&str>,
    tally_id: Option<&str>,
) -> Result<Option<SubscriptionRow>> {
    if let Some(s) = stripe_id {
        if let Some(row) = core.store.subscription_by_stripe_id(s).await? {
            return Ok(Some(row));
        }
    }
    match tally_id {
        Some(t) => match core.store.subscription(t).await? {
            Some(row) => Ok(Some(row)),
            None => Err(Error::internal(format!(
                "an event names unknown subscription {t}"
            ))),
        },
        None => Ok(None),
    }
}

/// `checkout.session.completed` of a `subscription`-mode session: remembers Stripe's
/// subscription id, and with Stripe asks for the subscription's state at once.
pub(crate) async fn checkout_completed(core: &Core, session: &Value) -> Result<()> {
    let session_id = text(&session["id"]).unwrap_or_default();
    let row = match core.store.subscription_by_session(session_id).await? {
        Some(row) => Some(row),
        None => {
            find(
                core,
                None,
                text(&session["metadata"]["tally_subscription_id"]),
            )
            .await?
        }
    };
    let Some(row) = row else {
        return Ok(());
    };
    let Some(stripe_id) = id_of(&session["subscription"]).map(str::to_string) else {
        return Ok(());
    };
    update(core, &row.id, |r, _| {
        r.stripe_subscription_id.get_or_insert(stripe_id.clone());
        Ok(())
    })
    .await?;
    if let Gateway::Stripe(g) = core.payments.gateway(row.mode)? {
        let object = g.retrieve_subscription(&stripe_id).await?;
        apply_subscription(core, i64::MAX, &object, false).await?;
    }
    Ok(())
}

/// `customer.subscription.created|updated|deleted` (and a subscription read from Stripe,
/// with `created` = `i64::MAX`: it is the state now).
pub(crate) async fn apply_subscription(
    core: &Core,
    created: i64,
    object: &Value,
    deleted: bool,
) -> Result<()> {
    let facts = subscription_facts(object)?;
    let Some(row) = find(core, Some(&facts.stripe_id), facts.tally_id.as_deref()).await? else {
        return Ok(());
    };
    let plan = plans::plan(&core.store, row.mode, &row.plan_id).await?;
    let now = core.clock.now();
    update(core, &row.id, |r, _| {
        r.stripe_subscription_id
            .get_or_insert(facts.stripe_id.clone());
        advance_period(r, facts.period_start, facts.period_end);
        if created < r.last_event_created {
            return Ok(()); // older than what we know: only the period may move on
        }
        if created != i64::MAX {
            r.last_event_created = created;
        }
        r.cancel_at_period_end = facts.cancel_at_period_end;
        match facts.status {
            _ if deleted => {
                r.status = SubscriptionStatus::Canceled;
                r.past_due_since = None;
                r.grace_ends_at = None;
            }
            SubscriptionStatus::Canceled => {
                r.status = SubscriptionStatus::Canceled;
                r.past_due_since = None;
                r.grace_ends_at = None;
            }
            SubscriptionStatus::PastDue => start_grace(r, plan.terms.grace_days, now),
            // Active after a failure waits for the invoice: past due ends when it is paid.
            SubscriptionStatus::Active if r.status == SubscriptionStatus::Incomplete => {
                r.status = SubscriptionStatus::Active;
            }
            _ => {}
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// The plan an invoice is for: the plan version of its price, else the subscription's.
async fn invoice_plan(core: &Core, row: &SubscriptionRow, facts: &InvoiceFacts) -> Result<Plan> {
    if let Some(price) = &facts.price_id {
        if let Some(p) = core.store.plan_price_by_price_id(price).await? {
            let (version, terms) = plans::version(&core.store, &p.plan_version_id).await?;
            let mut plan = plans::plan(&core.store, row.mode, &p.plan_id).await?;
            plan.terms = terms;
            plan.version_id = version.id;
            plan.version = version.version;
            return Ok(plan);
        }
    }
    plans::plan(
        &core.store,
        row.mode,
        row.pending_plan_id.as_deref().unwrap_or(&row.plan_id),
    )
    .await
}

/// `invoice.paid`: the period's included credits, once; past due ends when nothing is
/// left unpaid.
pub(crate) async fn invoice_paid(core: &Core, object: &Value) -> Result<()> {
    invoice_event(core, object, InvoiceStatus::Paid).await
}

/// `invoice.payment_failed` / `invoice.payment_action_required`: past due, the grace
/// starts (once); an invoice already paid stays paid.
pub(crate) async fn invoice_failed(core: &Core, object: &Value, action: bool) -> Result<()> {
    let status = if action {
        InvoiceStatus::ActionRequired
    } else {
        InvoiceStatus::Failed
    };
    invoice_event(core, object, status).await
}

async fn invoice_event(core: &Core, object: &Value, status: InvoiceStatus) -> Result<()> {
    let facts = invoice_facts(object)?;
    let Some(row) = find(
        core,
        facts.stripe_subscription.as_deref(),
        facts.tally_subscription.as_deref(),
    )
    .await?
    else {
        return Ok(());
    };
    let plan = invoice_plan(core, &row, &facts).await?;
    let customer = core
        .store
        .customer(&row.customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    let reference = format!("invoice:{}", facts.id);
    let now = core.clock.now();
    let gateway = row.gateway;
    let stored = core.store.invoice(&facts.id).await?;
    let already_paid = stored
        .as_ref()
        .is_some_and(|i| i.status == InvoiceStatus::Paid);
    let credit = (status == InvoiceStatus::Paid && !already_paid)
        .then(|| included_credit(&customer, &row, &plan, &facts, &reference, &gateway))
        .flatten();
    let invoice_status = if already_paid {
        InvoiceStatus::Paid
    } else {
        status
    };
    let invoice = InvoiceRow {
        id: facts.id.clone(),
        subscription_id: row.id.clone(),
        customer_id: row.customer_id.clone(),
        amount_cents: facts.amount_cents,
        status: invoice_status,
        billing_reason: facts.billing_reason.clone(),
        plan_id: Some(plan.id.clone()),
        period_start: facts.period_start,
        period_end: facts.period_end,
        hosted_invoice_url: facts
            .hosted_invoice_url
            .clone()
            .or_else(|| stored.as_ref().and_then(|i| i.hosted_invoice_url.clone())),
        transaction_id: stored.as_ref().and_then(|i| i.transaction_id.clone()),
        created_at: stored.as_ref().map_or(now, |i| i.created_at),
        updated_at: now,
    };
    let references: Vec<&str> = credit.iter().map(|c| c.reference.as_str()).collect();
    let this_invoice = facts.id.clone();
    let grace_days = plan.terms.grace_days;
    let is_cycle = facts.billing_reason != "subscription_update";
    update_with(core, &row.id, &references, |r, effects, unpaid| {
        effects.invoice = Some(invoice);
        if is_cycle {
            advance_period(r, Some(facts.period_start), Some(facts.period_end));
        }
        match invoice_status {
            InvoiceStatus::Paid => {
                effects.credits.extend(credit.clone());
                let others_unpaid = unpaid.iter().any(|i| i.id != this_invoice);
                if !others_unpaid
                    && matches!(
                        r.status,
                        SubscriptionStatus::PastDue | SubscriptionStatus::Incomplete
                    )
                {
                    end_grace(r);
                }
            }
            _ => start_grace(r, grace_days, now),
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// The included credits a paid invoice brings: the plan's for a new or renewed period;
/// for an upgrade's proration invoice, the new plan's for the rest of the period.
fn included_credit(
    customer: &CustomerRow,
    row: &SubscriptionRow,
    plan: &Plan,
    facts: &InvoiceFacts,
    reference: &str,
    gateway: &GatewayKind,
) -> Option<Credit> {
    let full = plan.terms.included_credits;
    let amount = if facts.billing_reason == "subscription_update" {
        match (row.current_period_start, row.current_period_end) {
            (Some(start), Some(end)) => Money::from_nanos(
                i64::try_from(prorate(
                    i128::from(full.nanos()),
                    start,
                    end,
                    facts.period_start,
                ))
                .ok()?,
            ),
            _ => full,
        }
    } else {
        full
    };
    if !amount.is_positive() {
        return None;
    }
    Some(Credit {
        account_id: customer.account_id.clone(),
        amount,
        grant_kind: GrantKind::Included,
        expires_at: (!plan.terms.rollover).then_some(facts.period_end),
        source: Operator::Promotions,
        kind: Kind::Grant,
        reference: reference.to_string(),
        attribution: Attribution {
            actor: Some(format!("stripe:{gateway}")),
            reason: Some(format!(
                "included credits of plan {} for invoice {}",
                plan.id, facts.id
            )),
        },
    })
}

/// Reconciliation of subscriptions against Stripe: each running subscription's state and
/// its invoices are read and applied as if their events had arrived. Returns (checked,
/// report lines).
pub async fn reconcile(core: &Core) -> Result<(i64, Vec<String>)> {
    let mut checked = 0;
    let mut report = Vec::new();
    for row in core.store.live_subscriptions(500).await? {
        let Ok(Gateway::Stripe(g)) = core.payments.gateway(row.mode) else {
            continue;
        };
        if row.gateway != GatewayKind::Stripe {
            continue;
        }
        let Some(stripe_id) = row.stripe_subscription_id.clone() else {
            continue;
        };
        checked += 1;
        let object = g.retrieve_subscription(&stripe_id).await?;
        apply_subscription(core, i64::MAX, &object, false).await?;
        for invoice in g.invoices(&stripe_id).await? {
            let status = invoice["status"].as_str().unwrap_or("");
            let id = text(&invoice["id"]).unwrap_or_default().to_string();
            let known = core.store.invoice(&id).await?;
            let known_paid = known
                .as_ref()
                .is_some_and(|i| i.status == InvoiceStatus::Paid);
            if status == "paid" && !known_paid {
                invoice_paid(core, &invoice).await?;
                report.push(format!("invoice {id} of {} was paid; applied", row.id));
            }
        }
        let after = core
            .store
            .subscription(&row.id)
            .await?
            .ok_or_else(|| Error::internal("subscription vanished"))?;
        if after.status != row.status || after.current_period_end != row.current_period_end {
            report.push(format!(
                "subscription {}: {} → {} from Stripe's state",
                row.id, row.status, after.status
            ));
        }
    }
    Ok((checked, report))
}
