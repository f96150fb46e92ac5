//! Customer keys: `ck_test_…` / `ck_live_…`, made by the operator (API) or by the customer
//! (portal), valid only on the metering proxy and only for their customer. Stored as a
//! SHA-256 hash; the secret is shown once. A key may carry a spend limit per day, month or
//! in total, checked by `metering` under the account's lock together with the hold.

use serde::Serialize;

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::keys::{self, hash_secret};
use super::ledger::Mode;
use super::money::Money;
use super::store::{CustomerKeyRow, Store};
use super::Core;

/// The period a key's spend limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitPeriod {
    Day,
    Month,
    Total,
}

impl LimitPeriod {
    pub fn parse(s: &str) -> Option<LimitPeriod> {
        match s {
            "day" => Some(LimitPeriod::Day),
            "month" => Some(LimitPeriod::Month),
            "total" => Some(LimitPeriod::Total),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LimitPeriod::Day => "day",
            LimitPeriod::Month => "month",
            LimitPeriod::Total => "total",
        }
    }

    /// The first instant the period counts from, seen at `now`.
    pub fn start(self, now: Timestamp) -> Timestamp {
        match self {
            LimitPeriod::Day => now.day_start(),
            LimitPeriod::Month => now.month_start(),
            LimitPeriod::Total => Timestamp::from_micros(0),
        }
    }
}

/// A customer key as shown (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerKey {
    pub id: String,
    pub mode: Mode,
    pub customer_id: String,
    pub name: String,
    pub spend_limit: Option<Money>,
    pub limit_period: LimitPeriod,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

impl CustomerKey {
    fn from_row(r: CustomerKeyRow) -> Result<CustomerKey> {
        Ok(CustomerKey {
            mode: r.mode,
            limit_period: LimitPeriod::parse(&r.limit_period)
                .ok_or_else(|| Error::internal("customer key limit period"))?,
            id: r.id,
            customer_id: r.customer_id,
            name: r.name,
            spend_limit: r.spend_limit,
            expires_at: r.expires_at,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }

    /// Usable at `now`: neither revoked nor expired.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }
}

/// A key with what it spent in its limit's period (charged less refunds) and holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyWithSpend {
    pub key: CustomerKey,
    pub spent: Money,
    pub held: Money,
}

/// What a new key is made with.
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    pub name: Option<String>,
    pub spend_limit: Option<Money>,
    pub limit_period: Option<LimitPeriod>,
    pub expires_at: Option<Timestamp>,
}

fn check_limit(limit: Option<Money>) -> Result<()> {
    match limit {
        Some(m) if !m.is_positive() => Err(Error::invalid(
            "spend_limit",
            "spend_limit must be positive (leave it out for no limit)",
        )),
        _ => Ok(()),
    }
}

/// Makes a key for a customer of `mode`; returns it with its secret, shown only now.
pub async fn create(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    new: &NewKey,
) -> Result<(KeyWithSpend, String)> {
    let customer = super::customers::get(core, mode, customer_id).await?;
    let now = core.clock.now();
    let name = new.name.clone().unwrap_or_else(|| "key".into());
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "a key name is 1-200 characters without control characters",
        ));
    }
    check_limit(new.spend_limit)?;
    if new.expires_at.is_some_and(|t| t <= now) {
        return Err(Error::invalid(
            "expires_at",
            "expires_at must be in the future",
        ));
    }
    let (secret, public) = keys::new_secret("ck", mode)?;
    let row = CustomerKeyRow {
        id: format!("ck_{public}"),
        mode,
        customer_id: customer.id.clone(),
        name,
        secret_hash: hash_secret(&secret),
        spend_limit: new.spend_limit,
        limit_period: new
            .limit_period
            .unwrap_or(LimitPeriod::Total)
            .as_str()
            .into(),
        expires_at: new.expires_at,
        created_at: now,
        revoked_at: None,
    };
    let mut tx = core.store.begin().await?;
    tx.insert_customer_key(&row).await?;
    tx.commit().await?;
    let key = CustomerKey::from_row(row)?;
    Ok((
        KeyWithSpend {
            key,
            spent: Money::ZERO,
            held: Money::ZERO,
        },
        secret,
    ))
}

async fn with_spend(store: &Store, key: CustomerKey, now: Timestamp) -> Result<KeyWithSpend> {
    let (spent, held) = store
        .customer_key_spend(&key.id, key.limit_period.start(now))
        .await?;
    Ok(KeyWithSpend { key, spent, held })
}

/// A customer's keys, newest first, each with its spend.
pub async fn list(core: &Core, mode: Mode, customer_id: &str) -> Result<Vec<KeyWithSpend>> {
    let customer = super::customers::get(core, mode, customer_id).await?;
    let now = core.clock.now();
    let mut out = Vec::new();
    for row in core.store.customer_keys(&customer.id).await? {
        out.push(with_spend(&core.store, CustomerKey::from_row(row)?, now).await?);
    }
    Ok(out)
}

/// One key of a customer (404 for another customer's or another mode's).
pub async fn get(core: &Core, mode: Mode, customer_id: &str, key_id: &str) -> Result<KeyWithSpend> {
    let key = match core.store.customer_key(key_id).await? {
        Some(r) if r.customer_id == customer_id && r.mode == mode => CustomerKey::from_row(r)?,
        _ => return Err(Error::NotFound("customer key")),
    };
    with_spend(&core.store, key, core.clock.now()).await
}

/// Revokes a key (again: the same answer).
pub async fn revoke(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    key_id: &str,
) -> Result<KeyWithSpend> {
    get(core, mode, customer_id, key_id).await?;
    let mut tx = core.store.begin().await?;
    tx.revoke_customer_key(key_id, core.clock.now()).await?;
    tx.commit().await?;
    get(core, mode, customer_id, key_id).await
}

/// Sets (or with None clears) a key's spend limit and its period.
pub async fn set_limit(
    core: &Core,
    mode: Mode,
    customer_id: &str,
    key_id: &str,
    spend_limit: Option<Money>,
    period: LimitPeriod,
) -> Result<KeyWithSpend> {
    check_limit(spend_limit)?;
    get(core, mode, customer_id, key_id).await?;
    let mut tx = core.store.begin().await?;
    tx.update_customer_key_limit(key_id, spend_limit, period.as_str())
        .await?;
    tx.commit().await?;
    get(core, mode, customer_id, key_id).await
}

/// Whether a secret looks like a customer key (so the proxy knows which table to ask).
pub fn is_customer_secret(secret: &str) -> bool {
    secret.starts_with("ck_")
}

/// The active key a secret belongs to, or `Unauthenticated`.
pub async fn authenticate(core: &Core, secret: &str) -> Result<CustomerKey> {
    let (mode, public) = keys::parse_secret("ck", secret)?;
    let row = core
        .store
        .customer_key(&format!("ck_{public}"))
        .await?
        .ok_or(Error::Unauthenticated)?;
    if !keys::secret_matches(secret, &row.secret_hash) || row.mode != mode {
        return Err(Error::Unauthenticated);
    }
    let key = CustomerKey::from_row(row)?;
    if !key.is_active(core.clock.now()) {
        return Err(Error::Unauthenticated);
    }
    Ok(key)
}
