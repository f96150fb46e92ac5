//! The price book and plans, one of each per mode (test and live never share a price).
//! Both are versioned: an edit appends a new version, effective from then on, and every
//! usage event keeps the plan version and the price version it was priced with. Every edit,
//! whoever makes it (staff in the console, an API key through `/v1`), writes an audit entry
//! in the same transaction.

use super::audit::{self, Actor};
use super::clock::Timestamp;
use super::error::{Error, Result};
use super::ids;
use super::ledger::Mode;
use super::pricing::{ModelPrice, PlanTerms};
use super::store::{CustomerRow, PlanRow, PlanVersionRow, Store, Tx};

pub const DEFAULT_PLAN: &str = "standard";

/// A plan with the version in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub id: String,
    pub name: String,
    pub version: i64,
    pub version_id: String,
    pub terms: PlanTerms,
    pub created_at: Timestamp,
    pub version_created_at: Timestamp,
}

pub fn parse_terms(json: &str) -> Result<PlanTerms> {
    serde_json::from_str(json).map_err(|e| Error::internal(format!("stored plan terms: {e}")))
}

fn valid_plan_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The mode of a stored row.
pub fn mode_of(mode: &str) -> Result<Mode> {
    Mode::parse(mode).ok_or_else(|| Error::internal(format!("a row with mode {mode}")))
}

/// A plan with the version in force. Every plan is created with its first version in the
/// same transaction, so a plan without one does not exist.
pub async fn plan(store: &Store, mode: Mode, id: &str) -> Result<Plan> {
    let (row, version) = store
        .current_plan(mode.as_str(), id)
        .await?
        .ok_or(Error::NotFound("plan"))?;
    from_rows(row, version)
}

/// The plan a customer is on, from their mode's catalog.
pub async fn of_customer(store: &Store, c: &CustomerRow) -> Result<Plan> {
    plan(store, c.mode, &c.plan_id).await
}

/// A plan from its row and the version in force.
pub fn from_rows(row: PlanRow, version: PlanVersionRow) -> Result<Plan> {
    Ok(Plan {
        mode: row.mode,
        id: row.id,
        name: row.name,
        version: version.version,
        terms: parse_terms(&version.terms)?,
        version_id: version.id,
        created_at: row.created_at,
        version_created_at: version.created_at,
    })
}

pub async fn plans(store: &Store, mode: Mode) -> Result<Vec<Plan>> {
    let mut out = Vec::new();
    for row in store.plans(mode.as_str()).await? {
        out.push(plan(store, mode, &row.id).await?);
    }
    Ok(out)
}

fn terms_text(version: i64, terms: &PlanTerms) -> String {
    format!(
        "v{version} {}",
        serde_json::to_string(terms).unwrap_or_default()
    )
}

/// The terms a usage event was priced with.
pub async fn version(store: &Store, version_id: &str) -> Result<(PlanVersionRow, PlanTerms)> {
    let row = store
        .plan_version(version_id)
        .await?
        .ok_or(Error::NotFound("plan version"))?;
    let terms = parse_terms(&row.terms)?;
    Ok((row, terms))
}

/// Creates a plan in a mode's catalog, with its audit entry.
#[allow(clippy::too_many_arguments)]
pub async fn create(
    store: &Store,
    mode: Mode,
    id: Option<&str>,
    name: &str,
    terms: &PlanTerms,
    actor: &Actor,
    reason: &str,
    now: Timestamp,
) -> Result<Plan> {
    let reason = audit::reason_of(reason)?;
    let id = match id {
        Some(id) if valid_plan_id(id) => id.to_string(),
        Some(_) => {
            return Err(Error::invalid(
                "id",
                "a plan id is 1-64 lowercase letters, digits, '_' or '-'",
            ))
        }
        None => ids::new_id("plan"),
    };
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(Error::invalid("name", "name must be 1-200 characters"));
    }
    terms.validate()?;
    let json = serde_json::to_string(terms).map_err(|e| Error::internal(e.to_string()))?;
    let mut tx = store.begin().await?;
    if !tx.insert_plan(mode.as_str(), &id, name, now).await? {
        return Err(Error::conflict(
            "plan_exists",
            format!("plan {id} already exists"),
        ));
    }
    let version = tx
        .insert_plan_version(mode.as_str(), &ids::new_id("plv"), &id, &json, now)
        .await?;
    tx.insert_audit(&audit::audit_entry(
        actor,
        "create_plan",
        &audit_target(mode, &id),
        &reason,
        None,
        Some(terms_text(version, terms)),
        now,
    ))
    .await?;
    tx.commit().await?;
    plan(store, mode, &id).await
}

/// The terms after a partial edit: top-level fields of `changes` replace the current
/// ones; the result is validated.
pub fn merge_terms(
    current: &PlanTerms,
    changes: &serde_json::Map<String, serde_json::Value>,
) -> Result<PlanTerms> {
    let mut merged = match serde_json::to_value(current) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => return Err(Error::internal("plan terms are not an object")),
    };
    for (k, v) in changes {
        merged.insert(k.clone(), v.clone());
    }
    let terms: PlanTerms = serde_json::from_value(serde_json::Value::Object(merged))
        .map_err(|e| Error::invalid("terms", e.to_string()))?;
    terms.validate()?;
    Ok(terms)
}

/// Writes a new version of a plan (and its new name) inside the caller's transaction;
/// returns its version number.
pub async fn write_version(
    tx: &mut Tx,
    mode: Mode,
    id: &str,
    name: Option<&str>,
    terms: &PlanTerms,
    now: Timestamp,
) -> Result<i64> {
    if let Some(name) = name {
        if name.trim().is_empty() || name.chars().count() > 200 {
            return Err(Error::invalid("name", "name must be 1-200 characters"));
        }
        tx.rename_plan(mode.as_str(), id, name).await?;
    }
    let json = serde_json::to_string(terms).map_err(|e| Error::internal(e.to_string()))?;
    tx.insert_plan_version(mode.as_str(), &ids::new_id("plv"), id, &json, now)
        .await
}

/// Applies a partial edit (see [`merge_terms`]) as a new version, effective now, with its
/// audit entry in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    store: &Store,
    mode: Mode,
    id: &str,
    name: Option<&str>,
    changes: &serde_json::Map<String, serde_json::Value>,
    actor: &Actor,
    reason: &str,
    now: Timestamp,
) -> Result<Plan> {
    let reason = audit::reason_of(reason)?;
    let current = plan(store, mode, id).await?;
    let terms = merge_terms(&current.terms, changes)?;
    let mut tx = store.begin().await?;
    let version = write_version(&mut tx, mode, id, name, &terms, now).await?;
    tx.insert_audit(&audit::audit_entry(
        actor,
        "edit_plan",
        &audit_target(mode, id),
        &reason,
        Some(terms_text(current.version, &current.terms)),
        Some(terms_text(version, &terms)),
        now,
    ))
    .await?;
    tx.commit().await?;
    plan(store, mode, id).await
}

/// A mode's price book: each model at its version in force.
pub async fn models(store: &Store, mode: Mode) -> Result<Vec<ModelPrice>> {
    store.models(mode.as_str()).await
}

pub async fn model(store: &Store, mode: Mode, id: &str) -> Result<ModelPrice> {
    store
        .model(mode.as_str(), id)
        .await?
        .ok_or_else(|| Error::Invalid {
            code: "unknown_model",
            message: format!("unknown model: {id}"),
            param: Some("model".into()),
        })
}

/// Checks a model of the price book before it is written.
pub fn check_model(m: &ModelPrice) -> Result<()> {
    if m.id.is_empty() || m.id.len() > 128 {
        return Err(Error::invalid("id", "a model id is 1-128 characters"));
    }
    if m.batch_discount_percent > 100 {
        return Err(Error::invalid("batch_discount_percent", "at most 100"));
    }
    m.rates.check("rates")
}

fn model_text(m: &ModelPrice) -> String {
    format!(
        "v{} input {} output {} cache_write {} cache_read {} per million, batch -{}%",
        m.version,
        m.rates.input,
        m.rates.output,
        m.rates.cache_write,
        m.rates.cache_read,
        m.batch_discount_percent
    )
}

/// Adds a model to a mode's price book or gives it new rates: a new price version,
/// effective now, with its audit entry (action `edit_price`) in the same transaction.
/// Recorded usage keeps the version it was priced with.
pub async fn upsert_model(
    store: &Store,
    mode: Mode,
    m: &ModelPrice,
    actor: &Actor,
    reason: &str,
    now: Timestamp,
) -> Result<ModelPrice> {
    let reason = audit::reason_of(reason)?;
    check_model(m)?;
    let before = store.model(mode.as_str(), &m.id).await?;
    let mut tx = store.begin().await?;
    let version = tx
        .insert_model_price(mode.as_str(), &ids::new_id("mpv"), m, now)
        .await?;
    let after = ModelPrice {
        version,
        ..m.clone()
    };
    tx.insert_audit(&audit::audit_entry(
        actor,
        "edit_price",
        &audit_target(mode, &m.id),
        &reason,
        before.as_ref().map(model_text),
        Some(model_text(&after)),
        now,
    ))
    .await?;
    tx.commit().await?;
    model(store, mode, &m.id).await
}

/// What the audit log names a catalog entry: `<mode>:<id>`.
fn audit_target(mode: Mode, id: &str) -> String {
    format!("{}:{id}", mode.as_str())
}

/// One version of the price book, with who made it and why (none for seeded prices).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceVersion {
    pub price: ModelPrice,
    pub actor: Option<String>,
    pub reason: Option<String>,
}

/// Every version of a mode's price book, newest first (of one model, if given), each with
/// its `edit_price` audit entry (whose `after` starts with `v<version> `).
pub async fn price_history(
    store: &Store,
    mode: Mode,
    model: Option<&str>,
) -> Result<Vec<PriceVersion>> {
    let mut made_by: std::collections::HashMap<(String, String), (String, String)> = store
        .audit_entries(None, 1000)
        .await?
        .into_iter()
        .filter(|a| a.action == "edit_price")
        .filter_map(|a| {
            let version = a.after.as_deref()?.split(' ').next()?.to_string();
            Some(((a.target, version), (a.actor, a.reason)))
        })
        .collect();
    Ok(store
        .model_versions(mode.as_str(), model)
        .await?
        .into_iter()
        .map(|price| {
            let key = (audit_target(mode, &price.id), format!("v{}", price.version));
            let (actor, reason) = made_by.remove(&key).unzip();
            PriceVersion {
                price,
                actor,
                reason,
            }
        })
        .collect())
}
