//! The price book and plans. A plan's terms are versioned: an edit appends a new version,
//! effective from then on, and every usage event keeps the version it was priced with.

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::ids;
use super::pricing::{ModelPrice, PlanTerms};
use super::store::{PlanRow, PlanVersionRow, Store, Tx};

pub const DEFAULT_PLAN: &str = "standard";

/// A plan with the version in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
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

pub async fn plan(store: &Store, id: &str) -> Result<Plan> {
    let row = store.plan(id).await?.ok_or(Error::NotFound("plan"))?;
    let version = store
        .current_plan_version(id)
        .await?
        .ok_or_else(|| Error::internal("plan without a version"))?;
    from_rows(row, version)
}

/// A plan from its row and the version in force.
pub fn from_rows(row: PlanRow, version: PlanVersionRow) -> Result<Plan> {
    Ok(Plan {
        id: row.id,
        name: row.name,
        version: version.version,
        terms: parse_terms(&version.terms)?,
        version_id: version.id,
        created_at: row.created_at,
        version_created_at: version.created_at,
    })
}

pub async fn plans(store: &Store) -> Result<Vec<Plan>> {
    let mut out = Vec::new();
    for row in store.plans().await? {
        out.push(plan(store, &row.id).await?);
    }
    Ok(out)
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

pub async fn create(
    store: &Store,
    id: Option<&str>,
    name: &str,
    terms: &PlanTerms,
    now: Timestamp,
) -> Result<Plan> {
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
    if name.trim().is_empty() || name.len() > 200 {
        return Err(Error::invalid("name", "name must be 1-200 characters"));
    }
    terms.validate()?;
    let json = serde_json::to_string(terms).map_err(|e| Error::internal(e.to_string()))?;
    let mut tx = store.begin().await?;
    if !tx.insert_plan(&id, name, now).await? {
        return Err(Error::conflict(
            "plan_exists",
            format!("plan {id} already exists"),
        ));
    }
    tx.insert_plan_version(&ids::new_id("plv"), &id, &json, now)
        .await?;
    tx.commit().await?;
    plan(store, &id).await
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
    id: &str,
    name: Option<&str>,
    terms: &PlanTerms,
    now: Timestamp,
) -> Result<i64> {
    if let Some(name) = name {
        if name.trim().is_empty() || name.len() > 200 {
            return Err(Error::invalid("name", "name must be 1-200 characters"));
        }
        tx.rename_plan(id, name).await?;
    }
    let json = serde_json::to_string(terms).map_err(|e| Error::internal(e.to_string()))?;
    tx.insert_plan_version(&ids::new_id("plv"), id, &json, now)
        .await
}

/// Applies a partial edit (see [`merge_terms`]) as a new version, effective now.
pub async fn update(
    store: &Store,
    id: &str,
    name: Option<&str>,
    changes: &serde_json::Map<String, serde_json::Value>,
    now: Timestamp,
) -> Result<Plan> {
    let current = plan(store, id).await?;
    let terms = merge_terms(&current.terms, changes)?;
    let mut tx = store.begin().await?;
    write_version(&mut tx, id, name, &terms, now).await?;
    tx.commit().await?;
    plan(store, id).await
}

pub async fn models(store: &Store) -> Result<Vec<ModelPrice>> {
    store.models().await
}

pub async fn model(store: &Store, id: &str) -> Result<ModelPrice> {
    store.model(id).await?.ok_or_else(|| Error::Invalid {
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
    let r = m.rates;
    if [r.input, r.output, r.cache_write, r.cache_read]
        .iter()
        .any(|x| x.is_negative())
    {
        return Err(Error::invalid("rates", "rates must not be negative"));
    }
    Ok(())
}

/// Adds or replaces a model of the price book.
pub async fn upsert_model(store: &Store, m: &ModelPrice, now: Timestamp) -> Result<ModelPrice> {
    check_model(m)?;
    let mut tx = store.begin().await?;
    tx.upsert_model(m, now).await?;
    tx.commit().await?;
    model(store, &m.id).await
}
