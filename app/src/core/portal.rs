//! The customer portal's business: who is signed in, what their overview shows, how a
//! charge is explained in plain words. Pages and server functions call only this.

use super::clock::Timestamp;
use super::customer_keys::{self, KeyWithSpend};
use super::customers;
use super::error::{Error, Result};
use super::keys;
use super::metering;
use super::money::Money;
use super::passwords;
use super::plans::{self, Plan};
use super::pricing::{LineItem, ModelPrice, Percent, Tier};
use super::store::{
    AutoTopupRow, ConversationRow, CustomerRow, DailyUsage, InvoiceRow, PlanVersionRow,
    SubscriptionRow, TopupRow, TransactionRow, UsageDay, UsageEventRow, UsageFilter,
};
use super::subscriptions::{self, ChangePreview};
use super::vocab::{Standing, TopupStatus};
use super::Core;

pub const MIN_PASSWORD_CHARS: usize = 10;

/// The customer a session belongs to; `NotFound` if it no longer exists.
pub async fn customer(core: &Core, customer_id: &str) -> Result<CustomerRow> {
    core.store
        .customer(customer_id)
        .await?
        .ok_or(Error::NotFound("customer"))
}

/// Redeems a one-time sign-in link; returns the customer it signs in.
pub async fn redeem_link(core: &Core, token: &str) -> Result<String> {
    if token.is_empty() || token.len() > 128 {
        return Err(Error::Unauthenticated);
    }
    core.store
        .redeem_portal_link(&keys::hash_secret(token), core.clock.now())
        .await?
        .ok_or(Error::Unauthenticated)
}

/// Checks an email and password (as long for an unknown email as for a wrong password).
pub async fn sign_in(core: &Core, email: &str, password: &str) -> Result<String> {
    let candidates = core.store.credentials_by_email(email.trim()).await?;
    passwords::matching(password, candidates)
        .await?
        .ok_or(Error::Unauthenticated)
}

pub async fn set_password(core: &Core, customer_id: &str, password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > 1024 {
        return Err(Error::invalid(
            "password",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    let c = customer(core, customer_id).await?;
    if c.email.is_none() {
        return Err(Error::invalid(
            "password",
            "sign-in by password needs an email on file",
        ));
    }
    let hash = passwords::hash(password).await?;
    let mut tx = core.store.begin().await?;
    tx.set_customer_password(customer_id, &hash).await?;
    tx.commit().await
}

/// Everything the overview shows.
#[derive(Clone, Debug)]
pub struct Overview {
    pub customer: CustomerRow,
    pub status: &'static str,
    pub threshold: Money,
    pub month_to_date: Money,
    /// Average daily spend over the last 7 days.
    pub burn_per_day: Money,
    /// When the available balance runs out at that rate, if it is spending.
    pub runs_out: Option<Timestamp>,
    pub daily: Vec<DailyUsage>,
    /// Days since the epoch of the first day the chart shows, and how many it shows.
    pub first_day: i64,
    pub days: i64,
    pub topup_packs: Vec<Money>,
    /// A spend cap (spent plus held) stops new requests: the customer's status says so.
    pub cap_reached: bool,
    /// Tokens used this month, the volume tier they are in, and the next tier with how
    /// many tokens are left to reach it.
    pub month_tokens: u64,
    pub tier: Option<Tier>,
    pub next_tier: Option<(Tier, u64)>,
    /// The customer's newest subscription, if they ever subscribed (its banner: a failed
    /// renewal).
    pub subscription: Option<SubscriptionRow>,
}

const DAY_MICROS: i64 = 86_400_000_000;

/// How far back the overview's charts look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChartRange {
    Week,
    #[default]
    Month,
    Quarter,
}

impl ChartRange {
    pub const ALL: [ChartRange; 3] = [ChartRange::Week, ChartRange::Month, ChartRange::Quarter];

    pub fn days(self) -> i64 {
        match self {
            ChartRange::Week => 7,
            ChartRange::Month => 30,
            ChartRange::Quarter => 90,
        }
    }

    /// "7", "30" or "90"; nothing is the month.
    pub fn parse(days: Option<&str>) -> Result<ChartRange> {
        match days.filter(|d| !d.is_empty()) {
            None => Ok(ChartRange::Month),
            Some(d) => ChartRange::ALL
                .into_iter()
                .find(|r| r.days().to_string() == d)
                .ok_or_else(|| Error::invalid("days", "the charts show 7, 30 or 90 days")),
        }
    }
}

pub async fn overview(core: &Core, customer_id: &str, range: ChartRange) -> Result<Overview> {
    let c = customer(core, customer_id).await?;
    let plan = plans::of_customer(&core.store, &c).await?;
    let threshold = customers::low_balance_threshold(&c, &plan);
    let now = core.clock.now();
    let today = now.micros().div_euclid(DAY_MICROS);
    let (first_day, since) = window_start(now, range.days());
    let daily = core.store.daily_usage(&c.id, since).await?;
    let (month_tokens, month_to_date) = core.store.period_totals(&c.id, &now.month_key()).await?;
    let reason = customers::entitlement(core, &c).await?.reason;
    let month_tokens = u64::try_from(month_tokens).unwrap_or(0);
    let tier_index = plan.terms.tier_for(month_tokens);
    let tier = tier_index.map(|i| plan.terms.tiers[i].clone());
    let next_tier = plan
        .terms
        .tiers
        .get(tier_index.map_or(0, |i| i + 1))
        .filter(|t| t.from_tokens > month_tokens)
        .map(|t| (t.clone(), t.from_tokens - month_tokens));
    let week: i64 = daily
        .iter()
        .filter(|d| d.day > today - 7)
        .map(|d| d.cost.nanos())
        .sum();
    let burn = week / 7;
    let runs_out = (burn > 0 && c.available.is_positive()).then(|| {
        let days = c.available.nanos() / burn;
        now.plus_seconds(days.saturating_mul(86_400))
    });
    let packs = if plan.terms.topup_packs.is_empty() {
        [1_000, 2_500, 5_000, 10_000]
            .iter()
            .map(|c| Money::from_cents(*c))
            .collect::<std::result::Result<Vec<_>, _>>()?
    } else {
        plan.terms.topup_packs.clone()
    };
    let subscription = subscriptions::current(core, c.mode, &c.id).await?;
    Ok(Overview {
        status: customers::balance_status(&c, threshold),
        threshold,
        month_to_date,
        burn_per_day: Money::from_nanos(burn),
        runs_out,
        daily,
        first_day,
        days: range.days(),
        topup_packs: packs,
        cap_reached: reason == Standing::CapReached,
        month_tokens,
        tier,
        next_tier,
        subscription,
        customer: c,
    })
}

/// A usage event of this customer, or `NotFound` (also for another customer's event).
pub async fn usage_event(core: &Core, customer_id: &str, event_id: &str) -> Result<UsageEventRow> {
    match core.store.usage_event(event_id).await? {
        Some(e) if e.customer_id == customer_id => Ok(e),
        _ => Err(Error::NotFound("usage event")),
    }
}

/// A paid top-up of this customer, for its receipt; `NotFound` for anything else
/// (another customer's top-up included).
pub async fn receipt(core: &Core, customer_id: &str, topup_id: &str) -> Result<TopupRow> {
    match core.store.topup(topup_id).await? {
        Some(t) if t.customer_id == customer_id && t.status == TopupStatus::Paid => Ok(t),
        _ => Err(Error::NotFound("receipt")),
    }
}

/// `1234567` → `1,234,567`.
pub fn group_digits(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn class_words(kind: &str) -> &'static str {
    match kind {
        "input" => "input tokens",
        "output" => "output tokens",
        "cache_write" => "cache-write tokens",
        "cache_write_1h" => "one-hour cache-write tokens",
        "cache_read" => "cache-read tokens",
        _ => "tokens",
    }
}

/// "20" for 20.00 %, "12.5" for 12.50 %.
pub fn percent_words(p: Percent) -> String {
    let text = p.to_string();
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// How a line's list rate became its rate, in words: "list $3.00, +20 % markup, −10 %
/// volume tier, −50 % batch". None when nothing changed it, and for events priced before
/// line items kept this.
fn how_priced(l: &LineItem) -> Option<String> {
    let list = l.list_rate_per_million?;
    let mut parts = vec![format!("list {}", list.display_money())];
    let nonzero = |p: Option<Percent>| p.filter(|p| p.0 != 0);
    if let Some(m) = nonzero(l.markup_percent) {
        parts.push(format!("+{} % markup", percent_words(m)));
    }
    if let Some(t) = nonzero(l.tier_discount_percent) {
        parts.push(format!("−{} % volume tier", percent_words(t)));
    }
    if let Some(b) = nonzero(l.batch_discount_percent) {
        parts.push(format!("−{} % batch", percent_words(b)));
    }
    // Nothing changed it: the rate is the list price, and says so alone.
    (parts.len() > 1).then(|| parts.join(", "))
}

/// The price of an event, one plain sentence per token class, e.g.
/// "1,204 input tokens at $3.60 per million = $0.004334 (list $3.00, +20 % markup)",
/// then the total, and any refund.
pub fn explain(event: &UsageEventRow) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for l in metering::line_items(event)? {
        let tokens = i64::try_from(l.tokens).unwrap_or(i64::MAX);
        if l.amount.is_positive() || l.rate_per_million.is_positive() {
            let how = how_priced(&l)
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            lines.push(format!(
                "{} {} at {} per million = {}{how}",
                group_digits(tokens),
                class_words(&l.kind),
                l.rate_per_million.display_money(),
                l.amount.display_money()
            ));
        } else {
            lines.push(format!(
                "{} {}: not charged ({} request)",
                group_digits(tokens),
                class_words(&l.kind),
                event.outcome.as_str()
            ));
        }
    }
    lines.push(format!("Total: {}", event.cost.display_money()));
    if event.authorization_expired {
        lines.push(
            "The request outlived its hold; it was charged from your balance when it finished."
                .into(),
        );
    }
    if event.refunded_amount.is_positive() {
        lines.push(format!(
            "Refunded: {} ({})",
            event.refunded_amount.display_money(),
            event.refund_reason.clone().unwrap_or_default()
        ));
        let net = event
            .cost
            .checked_sub(event.refunded_amount)
            .unwrap_or(Money::ZERO);
        lines.push(format!("You paid: {}", net.display_money()));
    }
    Ok(lines)
}

/// A page of the customer's usage, and the models it can be filtered by.
#[derive(Clone, Debug)]
pub struct Usage {
    /// The events the filter selects, newest first, as many as its limit.
    pub events: Vec<UsageEventRow>,
    /// The price book of the customer's mode.
    pub models: Vec<ModelPrice>,
}

/// The customer's usage as `filter` selects it, always of this customer and their mode
/// whatever the filter names: one customer never sees another's.
pub async fn usage(core: &Core, customer: &CustomerRow, filter: &UsageFilter) -> Result<Usage> {
    let filter = UsageFilter {
        mode: customer.mode.to_string(),
        customer_id: Some(customer.id.clone()),
        ..filter.clone()
    };
    let events = core.store.list_usage(&filter).await?;
    let models = plans::models(&core.store, customer.mode).await?;
    Ok(Usage { events, models })
}

/// One usage event of the customer with how it was priced.
#[derive(Clone, Debug)]
pub struct UsageDetail {
    pub event: UsageEventRow,
    /// The plan version the event was priced with.
    pub plan_version: PlanVersionRow,
    /// The price in plain words (see [`explain`]).
    pub explanation: Vec<String>,
}

/// `NotFound` for another customer's event, as [`usage_event`].
pub async fn usage_detail(core: &Core, customer_id: &str, event_id: &str) -> Result<UsageDetail> {
    let event = usage_event(core, customer_id, event_id).await?;
    let (plan_version, _) = plans::version(&core.store, &event.plan_version_id).await?;
    let explanation = explain(&event)?;
    Ok(UsageDetail {
        event,
        plan_version,
        explanation,
    })
}

/// Everything the billing page shows: the balance and packs of the overview, the plan
/// that bounds a top-up, the top-ups, auto top-up and the ledger history.
#[derive(Clone, Debug)]
pub struct Billing {
    pub overview: Overview,
    pub plan: Plan,
    /// The latest 50 top-ups, newest first.
    pub topups: Vec<TopupRow>,
    pub auto_topup: Option<AutoTopupRow>,
    /// The latest 100 movements of money other than usage (top-ups, grants, refunds,
    /// disputes, expiries, adjustments), newest first.
    pub transactions: Vec<TransactionRow>,
    /// Usage per day over the last 30 days, newest first: one line a day, not a line a
    /// request.
    pub usage_days: Vec<UsageDay>,
}

/// The signed-in customer's billing; `NotFound` if they no longer exist.
pub async fn billing(core: &Core, customer_id: &str) -> Result<Billing> {
    let o = overview(core, customer_id, ChartRange::Month).await?;
    let transactions = core
        .store
        .money_movements(&o.customer.account_id, 100)
        .await?;
    let usage_days = core
        .store
        .usage_by_day(
            customer_id,
            Timestamp::from_micros(o.first_day * DAY_MICROS),
        )
        .await?;
    let auto_topup = core.store.auto_topup(customer_id).await?;
    let plan = plans::of_customer(&core.store, &o.customer).await?;
    let topups = core.store.topups_of(customer_id, 50).await?;
    Ok(Billing {
        overview: o,
        plan,
        topups,
        auto_topup,
        transactions,
        usage_days,
    })
}

/// Sets the customer's own low-balance threshold, which replaces their plan's.
pub async fn set_low_balance_threshold(
    core: &Core,
    customer_id: &str,
    threshold: Money,
) -> Result<()> {
    core.store
        .set_low_balance_threshold(customer_id, Some(threshold))
        .await
}

/// The customer's alert settings: a monthly budget (None: none) that either only alerts
/// or, with `hard_stop`, refuses new work once reached like a cap; and which of the
/// optional emails they get.
pub async fn set_alert_settings(
    core: &Core,
    customer_id: &str,
    budget: Option<Money>,
    hard_stop: bool,
    emails: &[crate::core::vocab::EmailKind],
) -> Result<()> {
    use crate::core::vocab::EmailKind;
    if budget.is_some_and(|b| !b.is_positive()) {
        return Err(Error::invalid(
            "budget",
            "a budget is more than zero, or empty for none",
        ));
    }
    if hard_stop && budget.is_none() {
        return Err(Error::invalid("budget", "a hard stop needs a budget"));
    }
    let opt_out: Vec<EmailKind> = EmailKind::ALL
        .iter()
        .copied()
        .filter(|k| k.optional() && !emails.contains(k))
        .collect();
    core.store
        .set_alert_settings(customer_id, budget.map(Money::nanos), hard_stop, &opt_out)
        .await
}

/// How many days the keys page's chart looks back.
pub const KEY_CHART_DAYS: i64 = 30;

/// The series of usage recorded without a customer key (through `/v1`).
pub const WITHOUT_KEY: &str = "without a key";

/// Spend of one series (a model, a key) on one day: what a stacked chart draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailySpend {
    /// Days since the epoch (UTC).
    pub day: i64,
    pub series: String,
    pub cost: Money,
}

/// A key as its series is named: its name and the end of its id, since two keys may share
/// a name ("laptop …a1b2"). Ids are ASCII.
fn key_series(id: &str, name: &str) -> String {
    let tail = id.get(id.len().saturating_sub(4)..).unwrap_or(id);
    format!("{name} …{tail}")
}

/// The first day (days since the epoch) of a window of `days` days ending today, and the
/// moment it starts.
fn window_start(now: Timestamp, days: i64) -> (i64, Timestamp) {
    let first_day = now.micros().div_euclid(DAY_MICROS) - (days - 1);
    (first_day, Timestamp::from_micros(first_day * DAY_MICROS))
}

/// The customer's own API keys, each with its spend, what their conversations cost, and
/// spend per day by key.
#[derive(Clone, Debug)]
pub struct ApiKeys {
    /// Newest first.
    pub keys: Vec<KeyWithSpend>,
    /// The latest 50 conversations (requests sent with a `Tally-Conversation` header).
    pub conversations: Vec<ConversationRow>,
    /// Spend per day and key over the last [`KEY_CHART_DAYS`] days, from `first_day` (days
    /// since the epoch).
    pub daily_by_key: Vec<DailySpend>,
    pub first_day: i64,
}

/// The signed-in customer's keys of their own mode; `NotFound` if they no longer exist.
pub async fn api_keys(core: &Core, customer_id: &str) -> Result<ApiKeys> {
    let c = customer(core, customer_id).await?;
    let keys = customer_keys::list(core, c.mode, &c.id).await?;
    let conversations = core.store.conversations(&c.id, 50).await?;
    let (first_day, since) = window_start(core.clock.now(), KEY_CHART_DAYS);
    let daily_by_key = core
        .store
        .daily_spend_by_key(&c.id, since)
        .await?
        .into_iter()
        .map(|d| DailySpend {
            day: d.day,
            series: match &d.key {
                Some((id, name)) => key_series(id, name),
                None => WITHOUT_KEY.to_string(),
            },
            cost: d.cost,
        })
        .collect();
    Ok(ApiKeys {
        keys,
        conversations,
        daily_by_key,
        first_day,
    })
}

/// What the customer's subscription and plans look like on the billing page.
#[derive(Clone, Debug)]
pub struct SubscriptionDetail {
    /// The customer's newest subscription, a canceled one included; None if they never
    /// subscribed.
    pub subscription: Option<SubscriptionRow>,
    /// Every plan of the customer's mode: the subscription's, its pending one and the
    /// plans on offer (those with a recurring fee) are among them.
    pub plans: Vec<Plan>,
    /// The customer's subscription invoices, newest first.
    pub invoices: Vec<InvoiceRow>,
}

/// The signed-in customer's subscription; `NotFound` if they no longer exist.
pub async fn subscription_detail(core: &Core, customer_id: &str) -> Result<SubscriptionDetail> {
    let c = customer(core, customer_id).await?;
    let subscription = subscriptions::current(core, c.mode, &c.id).await?;
    let plans = plans::plans(&core.store, c.mode).await?;
    let invoices = subscriptions::invoices(core, &c.id).await?;
    Ok(SubscriptionDetail {
        subscription,
        plans,
        invoices,
    })
}

/// A plan the customer may move their subscription to, and what moving would cost.
#[derive(Clone, Debug)]
pub struct PlanChange {
    pub plan: Plan,
    pub preview: ChangePreview,
}

/// What moving the customer's subscription to `plan_id` would cost, before they confirm;
/// `NotFound` for a plan of their mode that is not sold as a subscription.
pub async fn plan_change(core: &Core, customer_id: &str, plan_id: &str) -> Result<PlanChange> {
    let c = customer(core, customer_id).await?;
    let plan = plans::plan(&core.store, c.mode, plan_id).await?;
    if !plan.terms.recurring_fee.is_positive() {
        return Err(Error::NotFound("plan"));
    }
    let preview = subscriptions::preview_change(core, c.mode, &c.id, plan_id).await?;
    Ok(PlanChange { plan, preview })
}

/// What a session of the built-in simulated checkout buys.
#[derive(Clone, Debug)]
pub enum SimulatedPurchase {
    /// Credits, once.
    Topup(TopupRow),
    /// A plan's first period; its fee recurs monthly. (The plan is boxed: it is large
    /// next to a top-up.)
    Subscription {
        subscription: SubscriptionRow,
        plan: Box<Plan>,
    },
}

/// A session of the built-in simulated checkout, and the customer it is for.
#[derive(Clone, Debug)]
pub struct SimulatedCheckout {
    pub purchase: SimulatedPurchase,
    pub customer: CustomerRow,
}

/// `NotFound` unless the session is the simulated gateway's: a real checkout is Stripe's.
pub async fn simulated_checkout(core: &Core, session_id: &str) -> Result<SimulatedCheckout> {
    let simulated = |gateway: &crate::core::vocab::GatewayKind| {
        *gateway == crate::core::vocab::GatewayKind::Simulated
    };
    let topup = core
        .store
        .topup_by_session(session_id)
        .await?
        .filter(|t| simulated(&t.gateway));
    let purchase = match topup {
        Some(t) => SimulatedPurchase::Topup(t),
        None => {
            let subscription = subscriptions::by_checkout_session(core, session_id)
                .await?
                .filter(|s| simulated(&s.gateway))
                .ok_or(Error::NotFound("checkout session"))?;
            let plan = plans::plan(&core.store, subscription.mode, &subscription.plan_id).await?;
            SimulatedPurchase::Subscription {
                subscription,
                plan: Box::new(plan),
            }
        }
    };
    let customer_id = match &purchase {
        SimulatedPurchase::Topup(t) => &t.customer_id,
        SimulatedPurchase::Subscription { subscription, .. } => &subscription.customer_id,
    };
    let customer = customer(core, customer_id).await?;
    Ok(SimulatedCheckout { purchase, customer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1_204), "1,204");
        assert_eq!(group_digits(1_234_567), "1,234,567");
        assert_eq!(group_digits(-12_345), "-12,345");
    }
}
