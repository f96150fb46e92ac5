//! The customer portal's business: who is signed in, what their overview shows, how a
//! charge is explained in plain words. Pages and server functions call only this.

use super::clock::Timestamp;
use super::customers;
use super::error::{Error, Result};
use super::keys;
use super::metering;
use super::money::Money;
use super::plans;
use super::pricing::{LineItem, Percent, Tier};
use super::store::{CustomerRow, DailyUsage, TopupRow, UsageEventRow};
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

/// Checks an email and password; argon2 runs off the async threads.
pub async fn sign_in(core: &Core, email: &str, password: &str) -> Result<String> {
    let candidates = core.store.credentials_by_email(email.trim()).await?;
    let password = password.to_string();
    let found = tokio::task::spawn_blocking(move || {
        candidates
            .into_iter()
            .find(|(_, hash)| password_auth::verify_password(&password, hash).is_ok())
            .map(|(id, _)| id)
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))?;
    found.ok_or(Error::Unauthenticated)
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
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || password_auth::generate_hash(password))
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
    core.store.set_password_hash(customer_id, &hash).await
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
    /// Days since the epoch of the first day the chart shows.
    pub first_day: i64,
    pub topup_packs: Vec<Money>,
    /// A spend cap (spent plus held) stops new requests: the customer's status says so.
    pub cap_reached: bool,
    /// Tokens used this month, the volume tier they are in, and the next tier with how
    /// many tokens are left to reach it.
    pub month_tokens: u64,
    pub tier: Option<Tier>,
    pub next_tier: Option<(Tier, u64)>,
}

const DAY_MICROS: i64 = 86_400_000_000;

pub async fn overview(core: &Core, customer_id: &str) -> Result<Overview> {
    let c = customer(core, customer_id).await?;
    let plan = plans::of_customer(&core.store, &c).await?;
    let threshold = customers::low_balance_threshold(&c, &plan);
    let now = core.clock.now();
    let today = now.micros().div_euclid(DAY_MICROS);
    let first_day = today - 29;
    let daily = core
        .store
        .daily_usage(&c.id, Timestamp::from_micros(first_day * DAY_MICROS))
        .await?;
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
    Ok(Overview {
        status: customers::balance_status(&c, threshold),
        threshold,
        month_to_date,
        burn_per_day: Money::from_nanos(burn),
        runs_out,
        daily,
        first_day,
        topup_packs: packs,
        cap_reached: reason == "cap_reached",
        month_tokens,
        tier,
        next_tier,
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
        Some(t) if t.customer_id == customer_id && t.status == "paid" => Ok(t),
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
                event.outcome
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
