//! The customer portal's business: who is signed in, what their overview shows, how a
//! charge is explained in plain words. Pages and server functions call only this.

use super::clock::Timestamp;
use super::customers;
use super::error::{Error, Result};
use super::keys;
use super::metering;
use super::money::Money;
use super::plans;
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
    let (_, month_to_date) = core.store.period_totals(&c.id, &now.month_key()).await?;
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
        "cache_read" => "cache-read tokens",
        _ => "tokens",
    }
}

/// The price of an event, one plain sentence per token class, e.g.
/// "1,204 input tokens at $3.00 per million = $0.003612".
pub fn explain(event: &UsageEventRow) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    for l in metering::line_items(event)? {
        let tokens = i64::try_from(l.tokens).unwrap_or(i64::MAX);
        if l.amount.is_positive() || l.rate_per_million.is_positive() {
            lines.push(format!(
                "{} {} at {} per million = {}",
                group_digits(tokens),
                class_words(&l.kind),
                l.rate_per_million.display_usd(),
                l.amount.display_usd()
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
    lines.push(format!("Total: {}", event.cost.display_usd()));
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
