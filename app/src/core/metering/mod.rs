//! Metering: usage events (post-hoc), authorizations (hold, then capture the actual cost),
//! estimates and listings. Each event is priced by the pure `pricing` module with the plan
//! version in force, stored with its line items, and charged through the ledger in the same
//! database transaction, under the customer's account lock.

mod write;

use std::collections::HashMap;

pub(crate) use write::Op;
use write::{CaptureOp, Done, HoldOp};

use super::audit::{self, Actor};
use super::clock::Timestamp;
use super::customer_keys::CustomerKey;
use super::customers;
use super::error::{Error, Result};
use super::ids;
use super::ledger::{Attribution, Credit, GrantKind, Kind, Mode, Operator};
use super::money::Money;
use super::payments;
use super::plans::{self, Plan};
use super::pricing::{self, LineItem, ModelPrice, Outcome, Priced, Tokens};
use super::store::{
    AuthorizationRow, CustomerRow, HoldRow, ProxyRequestRow, ProxyStatus, UsageEventRow,
    UsageFilter,
};
use super::vocab::AccountStatus;
use super::Core;

/// A usage event as reported by the caller.
#[derive(Clone, Debug)]
pub struct UsageInput {
    pub customer: String,
    pub model: String,
    pub tokens: Tokens,
    pub batch: bool,
    pub outcome: Outcome,
    pub request_id: String,
    pub occurred_at: Option<Timestamp>,
    pub metadata: Option<serde_json::Value>,
}

/// A recorded event with the customer's state right after it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub event: UsageEventRow,
    /// False when `(customer, request_id)` was already recorded: `event` is the original.
    pub created: bool,
    pub balance: Money,
    pub entitled: bool,
}

pub const MAX_METADATA_BYTES: usize = 16 * 1024;

fn check_request_id(request_id: &str) -> Result<()> {
    if request_id.is_empty()
        || request_id.chars().count() > 255
        || request_id.chars().any(char::is_control)
    {
        return Err(Error::invalid(
            "request_id",
            "request_id must be 1-255 characters without control characters",
        ));
    }
    Ok(())
}

fn line_items_json(items: &[LineItem]) -> Result<String> {
    serde_json::to_string(items).map_err(|e| Error::internal(e.to_string()))
}

pub fn line_items(event: &UsageEventRow) -> Result<Vec<LineItem>> {
    serde_json::from_str(&event.line_items).map_err(|e| Error::internal(e.to_string()))
}

/// The tokens an event was priced for; the one-hour part of its cache writes is kept in its
/// line items (the event's columns hold the four contract classes).
pub fn tokens_of(event: &UsageEventRow) -> Result<Tokens> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Tokens {
        input: count(event.input_tokens),
        output: count(event.output_tokens),
        cache_write: count(event.cache_creation_input_tokens),
        cache_read: count(event.cache_read_input_tokens),
        cache_write_1h: line_items(event)?
            .iter()
            .filter(|l| l.kind == "cache_write_1h")
            .map(|l| l.tokens)
            .sum(),
    })
}

fn tokens_i64(t: u64) -> i64 {
    // Below 2^40 by validation.
    i64::try_from(t).unwrap_or(i64::MAX)
}

struct Priced2 {
    priced: Priced,
    plan: Plan,
    /// The price-book version the model was priced at.
    model_version_id: String,
}

/// The row of a priced event.
fn event_row(
    now: Timestamp,
    customer: &CustomerRow,
    input: &UsageInput,
    p: &Priced2,
    authorization_id: Option<&str>,
    transaction_id: Option<String>,
) -> Result<UsageEventRow> {
    Ok(UsageEventRow {
        id: ids::new_id("evt"),
        mode: customer.mode,
        customer_id: customer.id.clone(),
        request_id: input.request_id.clone(),
        model: input.model.clone(),
        outcome: input.outcome,
        batch: input.batch,
        input_tokens: tokens_i64(input.tokens.input),
        output_tokens: tokens_i64(input.tokens.output),
        cache_creation_input_tokens: tokens_i64(input.tokens.cache_write),
        cache_read_input_tokens: tokens_i64(input.tokens.cache_read),
        cost: p.priced.cost,
        line_items: line_items_json(&p.priced.line_items)?,
        plan_version_id: p.plan.version_id.clone(),
        price_version_id: (!p.model_version_id.is_empty()).then(|| p.model_version_id.clone()),
        tier: p.priced.tier.map(|t| t as i64).unwrap_or(0),
        authorization_id: authorization_id.map(str::to_string),
        transaction_id,
        metadata: input
            .metadata
            .as_ref()
            .map(|m| serde_json::to_string(m).unwrap_or_default()),
        occurred_at: input.occurred_at.unwrap_or(now),
        created_at: now,
        authorization_expired: false,
        refunded_amount: Money::ZERO,
        refund_reason: None,
    })
}

/// Records usage that happened: always recorded and charged, even into a negative
/// balance. Deduplicated forever by `(customer, request_id)`. The write joins the next
/// group commit; the answer comes after it is durable.
pub async fn record_usage(core: &Core, mode: Mode, input: &UsageInput) -> Result<Recorded> {
    check_request_id(&input.request_id)?;
    if let Some(m) = &input.metadata {
        let size = serde_json::to_string(m)
            .map(|s| s.len())
            .unwrap_or(usize::MAX);
        if size > MAX_METADATA_BYTES || !m.is_object() {
            return Err(Error::invalid(
                "metadata",
                "metadata must be a JSON object of at most 16 KiB",
            ));
        }
    }
    let done = core
        .batcher
        .run(Op::Usage {
            mode,
            input: input.clone(),
        })
        .await?;
    let Done::Usage(done) = done else {
        return Err(Error::internal("a usage job answered something else"));
    };
    let (recorded, customer) = *done;
    payments::auto::after_usage(core, &customer, recorded.balance);
    Ok(recorded)
}

/// The outcome of one item of a usage batch.
#[derive(Debug)]
pub enum BatchItem {
    /// Recorded now, or found recorded before (`created` says which).
    Recorded(Box<Recorded>),
    /// The same `(customer, request_id)` as the earlier item `first` of this batch: it
    /// shares that item's outcome and is not recorded again.
    Repeat { first: usize },
    /// This item alone was refused (it did not parse, an unknown customer or model, …).
    Refused(Error),
}

/// Records a batch of usage events (each already parsed, or the error that stopped it):
/// all submitted together so they share group commits, a request id repeated inside the
/// batch recorded by its first occurrence only. A failure on our side (the database)
/// fails the whole batch, so the caller retries it; items already recorded are then
/// deduplicated by their request ids.
pub async fn record_batch(
    core: &Core,
    mode: Mode,
    items: Vec<Result<UsageInput>>,
) -> Result<Vec<BatchItem>> {
    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let repeats: Vec<Option<usize>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let input = item.as_ref().ok()?;
            let key = (input.customer.as_str(), input.request_id.as_str());
            match first_of.get(&key) {
                Some(first) => Some(*first),
                None => {
                    first_of.insert(key, i);
                    None
                }
            }
        })
        .collect();
    let outcomes =
        futures::future::join_all(items.iter().zip(&repeats).map(|(item, repeat)| async move {
            match (item, repeat) {
                (Ok(input), None) => Some(record_usage(core, mode, input).await),
                _ => None,
            }
        }))
        .await;
    let mut out = Vec::with_capacity(items.len());
    for ((item, repeat), outcome) in items.into_iter().zip(repeats).zip(outcomes) {
        out.push(match (item, repeat, outcome) {
            (_, Some(first), _) => BatchItem::Repeat { first },
            (Err(e), _, _) => BatchItem::Refused(e),
            (Ok(_), None, Some(Ok(recorded))) => BatchItem::Recorded(Box::new(recorded)),
            (
                Ok(_),
                None,
                Some(Err(e @ (Error::Internal(_) | Error::Unavailable(_) | Error::Contention(_)))),
            ) => return Err(e),
            (Ok(_), None, Some(Err(e))) => BatchItem::Refused(e),
            (Ok(_), None, None) => return Err(Error::internal("a batch item was not recorded")),
        });
    }
    Ok(out)
}

/// What an authorization asks to hold.
#[derive(Clone, Debug)]
pub enum HoldFor {
    /// The worst-case price of a request: `tokens.output` is `max_output_tokens`.
    Request {
        model: String,
        tokens: Tokens,
        /// Priced with the model's batch discount.
        batch: bool,
    },
    Amount(Money),
}

/// What the metering proxy records with its hold: the key that pays (whose spend limit is
/// checked in the same step as the balance) and the request, so that every proxied request
/// leaves a row saying what it was charged or why nothing was.
#[derive(Clone, Debug)]
pub struct ProxyTag {
    pub key: Option<CustomerKey>,
    pub provider: String,
    pub endpoint: String,
    pub streamed: bool,
    pub conversation: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Authorization {
    pub row: AuthorizationRow,
    pub hold: HoldRow,
}

/// Holds the worst-case cost of a request (or an amount) until capture, release or expiry.
pub async fn authorize(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    what: &HoldFor,
) -> Result<Authorization> {
    // Suspension, a failed renewal past its grace, the caps and the balance are checked
    // under the account's lock, in that order (see the planner's `hold`): checking them
    // here too would read the customer's state twice for every hold.
    let customer = customers::get(core, mode, customer_id).await?;
    let plan = plans::of_customer(&core.store, &customer).await?;
    let model = match what {
        HoldFor::Request { model, .. } => Some(plans::model(&core.store, mode, model).await?),
        HoldFor::Amount(_) => None,
    };
    hold_job(core, mode, customer, plan, model, what, None).await
}

/// [`authorize`] for the metering proxy, with the customer, plan and price its edge has
/// already read: also checks the key's spend limit under the same lock and records the
/// proxied request beside the hold. Suspension, caps and the balance are checked under
/// the account's lock as always (no quick pre-check: it would read them twice).
pub async fn authorize_prepared(
    core: &Core,
    mode: Mode,
    customer: CustomerRow,
    plan: Plan,
    model: ModelPrice,
    what: &HoldFor,
    tag: &ProxyTag,
) -> Result<Authorization> {
    hold_job(core, mode, customer, plan, Some(model), what, Some(tag)).await
}

/// Queues the hold on the customer's writer (group commit).
async fn hold_job(
    core: &Core,
    mode: Mode,
    customer: CustomerRow,
    plan: Plan,
    model: Option<ModelPrice>,
    what: &HoldFor,
    tag: Option<&ProxyTag>,
) -> Result<Authorization> {
    let done = core
        .batcher
        .run(Op::Hold(Box::new(HoldOp {
            mode,
            customer,
            plan,
            model,
            what: what.clone(),
            tag: tag.cloned(),
        })))
        .await?;
    match done {
        Done::Held(authorization) => Ok(authorization),
        _ => Err(Error::internal("a hold job answered something else")),
    }
}

/// The proxy's record of a request (`status` open when held, refused when not).
#[allow(clippy::too_many_arguments)]
pub(crate) fn proxy_row(
    mode: Mode,
    customer_id: &str,
    tag: &ProxyTag,
    model: &str,
    authorization_id: Option<&str>,
    status: ProxyStatus,
    reason: Option<&str>,
    now: Timestamp,
) -> ProxyRequestRow {
    ProxyRequestRow {
        id: authorization_id
            .map(|a| a.replacen("auth", "preq", 1))
            .unwrap_or_else(|| ids::new_id("preq")),
        mode,
        customer_id: customer_id.into(),
        customer_key_id: tag.key.as_ref().map(|k| k.id.clone()),
        authorization_id: authorization_id.map(str::to_string),
        provider: tag.provider.clone(),
        endpoint: tag.endpoint.clone(),
        model: model.into(),
        streamed: tag.streamed,
        conversation: tag.conversation.clone(),
        status,
        upstream_status: None,
        reason: reason.map(str::to_string),
        event_id: None,
        created_at: now,
        finished_at: (status != ProxyStatus::Open).then_some(now),
    }
}

pub async fn authorization(core: &Core, mode: Mode, id: &str) -> Result<Authorization> {
    let row = match core.store.authorization(id).await? {
        Some(a) if a.mode == mode => a,
        _ => return Err(Error::NotFound("authorization")),
    };
    let hold = core.store.hold(id).await?;
    Ok(Authorization { row, hold })
}

/// What actually happened, reported at capture.
#[derive(Clone, Debug)]
pub struct CaptureInput {
    pub model: Option<String>,
    pub tokens: Tokens,
    pub outcome: Outcome,
    pub request_id: Option<String>,
    pub metadata: Option<serde_json::Value>,
    /// Priced with the batch discount; defaults to what the authorization said.
    pub batch: Option<bool>,
    /// Set by the metering proxy: what the provider answered, recorded on the request.
    pub proxied: Option<ProxyFinish>,
}

/// How a proxied request ended, beside its usage.
#[derive(Clone, Debug, Default)]
pub struct ProxyFinish {
    pub upstream_status: Option<u16>,
    /// Why nothing or less than the full answer was charged (`upstream_error`, `timeout`,
    /// `stream_broken`, `client_disconnected`, …).
    pub reason: Option<String>,
}

/// Charges the actual cost against the hold (more if it exceeds it) and records the usage
/// event. Capturing again returns the same event; a released authorization is a conflict.
/// An expired one is still charged (the usage happened): from available, into debt if need
/// be, and the event says `authorization_expired`.
///
/// Only the authorization is read before queueing: whether it was captured already (a
/// replay), released (a conflict) or expired is decided under the account's lock, from the
/// hold and the events read there.
pub async fn capture(core: &Core, mode: Mode, id: &str, input: &CaptureInput) -> Result<Recorded> {
    let row = match core.store.authorization(id).await? {
        Some(a) if a.mode == mode => a,
        _ => return Err(Error::NotFound("authorization")),
    };
    let model_id = match (&input.model, &row.model) {
        (Some(m), _) => m.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => {
            return Err(Error::invalid(
                "model",
                "model is required when the authorization was made by amount",
            ))
        }
    };
    let usage = captured_usage(id, &row.customer_id, &model_id, input, row.batch)?;
    let customer = customers::get(core, mode, &row.customer_id).await?;
    let model = plans::model(&core.store, mode, &model_id).await?;

    let plan = plans::of_customer(&core.store, &customer).await?;
    capture_job(
        core,
        id,
        customer,
        plan,
        model,
        usage,
        input.proxied.clone(),
    )
    .await
}

/// [`capture`] for the metering proxy, with the customer, plan and price read when the
/// request was held (a plan edited mid-request does not change its price). The checks
/// `capture` makes before queueing are made in the transaction all the same: a second
/// capture is a replay, a released hold a conflict.
pub async fn capture_prepared(
    core: &Core,
    id: &str,
    customer: CustomerRow,
    plan: Plan,
    model: ModelPrice,
    input: &CaptureInput,
) -> Result<Recorded> {
    let usage = captured_usage(id, &customer.id, &model.id, input, false)?;
    capture_job(
        core,
        id,
        customer,
        plan,
        model,
        usage,
        input.proxied.clone(),
    )
    .await
}

/// The usage a capture of authorization `id` records: the request id defaults to the
/// authorization's, batch to what the authorization said.
fn captured_usage(
    id: &str,
    customer_id: &str,
    model_id: &str,
    input: &CaptureInput,
    batch_default: bool,
) -> Result<UsageInput> {
    let request_id = input.request_id.clone().unwrap_or_else(|| id.to_string());
    check_request_id(&request_id)?;
    Ok(UsageInput {
        customer: customer_id.to_string(),
        model: model_id.to_string(),
        tokens: input.tokens,
        batch: input.batch.unwrap_or(batch_default),
        outcome: input.outcome,
        request_id,
        occurred_at: None,
        metadata: input.metadata.clone(),
    })
}

/// Queues the capture on the customer's writer (group commit).
async fn capture_job(
    core: &Core,
    id: &str,
    customer: CustomerRow,
    plan: Plan,
    model: ModelPrice,
    usage: UsageInput,
    proxied: Option<ProxyFinish>,
) -> Result<Recorded> {
    let watched = customer.clone();
    let done = core
        .batcher
        .run(Op::Capture(Box::new(CaptureOp {
            id: id.to_string(),
            customer,
            plan,
            model,
            usage,
            proxied,
        })))
        .await?;
    let Done::Captured(recorded) = done else {
        return Err(Error::internal("a capture job answered something else"));
    };
    payments::auto::after_usage(core, &watched, recorded.balance);
    Ok(recorded)
}

pub async fn release(core: &Core, mode: Mode, id: &str) -> Result<Authorization> {
    authorization(core, mode, id).await?;
    core.ledger.release(id).await?;
    authorization(core, mode, id).await
}

/// The worst-case cost of a request and whether it fits the available balance now.
pub async fn estimate(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    model: &str,
    tokens: &Tokens,
    batch: bool,
) -> Result<(Money, Money, bool)> {
    let customer = customers::get(core, mode, customer_id).await?;
    let m = plans::model(&core.store, mode, model).await?;
    let plan = plans::of_customer(&core.store, &customer).await?;
    let (period_tokens, _) = core
        .store
        .period_totals(&customer.id, &core.clock.now().month_key())
        .await?;
    let priced = pricing::price(
        &m,
        &plan.terms,
        tokens,
        Outcome::Succeeded,
        batch,
        u64::try_from(period_tokens).unwrap_or(0),
    )?;
    let now = core.clock.now();
    let (_, day) = core
        .store
        .period_totals(&customer.id, &now.day_key())
        .await?;
    let (_, month) = core
        .store
        .period_totals(&customer.id, &now.month_key())
        .await?;
    let within_caps = customers::check_caps(
        &plan,
        customer.hard_budget(),
        day,
        month,
        customer.held,
        priced.cost,
    )
    .is_ok();
    let fits = priced.cost <= customer.available
        && customer.account_status != AccountStatus::Suspended
        && within_caps;
    Ok((priced.cost, customer.available, fits))
}

/// Usage events, newest first, with the mode's isolation applied.
pub async fn list_usage(core: &Core, filter: &UsageFilter) -> Result<Vec<UsageEventRow>> {
    core.store.list_usage(filter).await
}

pub async fn usage_event(core: &Core, mode: Mode, id: &str) -> Result<UsageEventRow> {
    match core.store.usage_event(id).await? {
        Some(e) if e.mode == mode => Ok(e),
        _ => Err(Error::NotFound("usage event")),
    }
}

/// The rates a customer's plan applies to each model now (markup and current tier).
pub async fn customer_prices(core: &Core, mode: Mode, id: &str) -> Result<Vec<ModelPrice>> {
    let customer = customers::get(core, mode, id).await?;
    let plan = plans::of_customer(&core.store, &customer).await?;
    let (period_tokens, _) = core
        .store
        .period_totals(&customer.id, &core.clock.now().month_key())
        .await?;
    let mut out = Vec::new();
    for m in plans::models(&core.store, mode).await? {
        let rate = |class: fn(&mut Tokens)| -> Result<Money> {
            let mut t = Tokens::default();
            class(&mut t);
            Ok(pricing::price(
                &m,
                &plan.terms,
                &t,
                Outcome::Succeeded,
                false,
                u64::try_from(period_tokens).unwrap_or(0),
            )?
            .line_items
            .first()
            .map(|l| l.rate_per_million)
            .unwrap_or(Money::ZERO))
        };
        let rates = pricing::Rates {
            input: rate(|t| t.input = 1_000_000)?,
            output: rate(|t| t.output = 1_000_000)?,
            cache_write: rate(|t| t.cache_write = 1_000_000)?,
            cache_read: rate(|t| t.cache_read = 1_000_000)?,
            cache_write_1h: None,
        };
        out.push(ModelPrice { rates, ..m });
    }
    Ok(out)
}

/// A refund of one charged request: all of it (no amount) or part, once, with a reason.
#[derive(Clone, Debug)]
pub struct RefundRequest {
    pub amount: Option<Money>,
    pub reason: String,
    pub actor: Actor,
}

/// Gives back all or part of one usage event's cost, once: a credit to the customer from
/// revenue (reference `usage_refund:<event>`), the refund on the event and an audit entry,
/// in one transaction under the account's lock. The same request again is a replay; a
/// different one after the first is a conflict; more than was charged is invalid.
pub async fn refund(
    core: &Core,
    mode: Mode,
    event_id: &str,
    req: &RefundRequest,
) -> Result<UsageEventRow> {
    let reason = audit::reason_of(&req.reason)?;
    let event = usage_event(core, mode, event_id).await?;
    let amount = req.amount.unwrap_or(event.cost);
    if !amount.is_positive() {
        return Err(Error::invalid(
            "amount",
            if event.cost.is_positive() {
                "amount must be positive"
            } else {
                "this event was not charged: there is nothing to refund"
            },
        ));
    }
    if amount > event.cost {
        return Err(Error::invalid(
            "amount",
            format!("at most the event's cost, {}, can be refunded", event.cost),
        ));
    }
    let customer = customers::get(core, mode, &event.customer_id).await?;
    let reference = format!("usage_refund:{event_id}");
    let mut tx = core.store.begin().await?;
    let mut journal = core
        .ledger
        .journal(&mut tx, &[&customer.account_id], &[&reference])
        .await?;
    let current = tx
        .usage_event(event_id)
        .await?
        .ok_or(Error::NotFound("usage event"))?;
    if current.refunded_amount.is_positive() {
        if current.refunded_amount == amount && current.refund_reason.as_deref() == Some(&reason) {
            return Ok(current);
        }
        return Err(Error::conflict(
            "already_refunded",
            format!(
                "this event was already refunded ({})",
                current.refunded_amount
            ),
        ));
    }
    let posted = journal.credit(&Credit {
        account_id: customer.account_id.clone(),
        amount,
        grant_kind: GrantKind::Adjustment,
        expires_at: None,
        source: Operator::Revenue,
        kind: Kind::Refund,
        reference,
        attribution: Attribution {
            actor: Some(req.actor.name()),
            reason: Some(reason.clone()),
        },
    })?;
    journal.write(&mut tx).await?;
    if !tx
        .set_usage_refund(event_id, amount, &reason, &posted.transaction.id)
        .await?
    {
        return Err(Error::internal(
            "usage event changed under its account lock",
        ));
    }
    let now = core.clock.now();
    tx.insert_audit(&audit::audit_entry(
        &req.actor,
        "refund_usage",
        event_id,
        &reason,
        Some(format!("cost {} refunded 0", event.cost)),
        Some(format!(
            "refunded {amount} (transaction {})",
            posted.transaction.id
        )),
        now,
    ))
    .await?;
    let refunded = tx
        .usage_event(event_id)
        .await?
        .ok_or(Error::NotFound("usage event"))?;
    tx.commit().await?;
    Ok(refunded)
}
