//! The admin console's rules: staff accounts with roles, and every action done together
//! with its audit entry (who, when, what, before, after, why) in one database transaction.

pub use super::audit::{audit_entry, reason_of, Actor, Role, Staff};
use super::clock::Timestamp;
use super::error::{Error, Result};
use super::ids;
use super::keys::{self, ApiKey, Scope};
use super::ledger::{Attribution, Credit, Debit, GrantKind, Journal, Kind, Mode, Operator, Posted};
use super::money::Money;
use super::passwords;
use super::plans;
use super::portal::MIN_PASSWORD_CHARS;
use super::pricing::{self, ModelPrice, Outcome, PlanTerms as PricingTerms, Tokens};
use super::store::{AccountRow, AuditRow, CustomerRow};
use super::Core;

pub async fn create_staff(core: &Core, email: &str, password: &str, role: Role) -> Result<String> {
    let email = email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 320 {
        return Err(Error::invalid("email", "an email address is needed"));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::invalid(
            "password",
            format!("a password has at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    let hash = passwords::hash(password).await?;
    let id = ids::new_id("adm");
    core.store
        .upsert_admin(&id, &email, &hash, role.as_str(), core.clock.now())
        .await?;
    Ok(core
        .store
        .admin_by_email(&email)
        .await?
        .map(|a| a.id)
        .unwrap_or(id))
}

/// Checks a staff email and password (as long for an unknown email as for a wrong one).
pub async fn sign_in(core: &Core, email: &str, password: &str) -> Result<String> {
    let candidates = core
        .store
        .admin_by_email(&email.trim().to_lowercase())
        .await?
        .map(|a| (a.id, a.password_hash))
        .into_iter()
        .collect();
    passwords::matching(password, candidates)
        .await?
        .ok_or(Error::Unauthenticated)
}

pub async fn staff(core: &Core, id: &str) -> Result<Staff> {
    let a = core.store.admin(id).await?.ok_or(Error::Unauthenticated)?;
    Ok(Staff {
        role: Role::parse(&a.role).ok_or_else(|| Error::internal("bad role"))?,
        id: a.id,
        email: a.email,
    })
}

fn audit(
    staff: &Staff,
    action: &str,
    target: &str,
    reason: &str,
    before: Option<String>,
    after: Option<String>,
    now: Timestamp,
) -> AuditRow {
    audit_entry(
        &Actor::Staff(staff.clone()),
        action,
        target,
        reason,
        before,
        after,
        now,
    )
}

async fn customer(core: &Core, id: &str) -> Result<CustomerRow> {
    core.store
        .customer(id)
        .await?
        .ok_or(Error::NotFound("customer"))
}

fn balance_text(c: &CustomerRow) -> String {
    format!(
        "available {} held {} status {}",
        c.available, c.held, c.account_status
    )
}

/// Grants promotional credits, optionally expiring.
pub async fn grant(
    core: &Core,
    staff: &Staff,
    customer_id: &str,
    amount: Money,
    expires_at: Option<Timestamp>,
    reason: &str,
) -> Result<Posted> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let c = customer(core, customer_id).await?;
    let mut tx = core.store.begin().await?;
    let mut journal = core.ledger.journal(&mut tx, &[&c.account_id], &[]).await?;
    let posted = journal.credit(&Credit {
        account_id: c.account_id.clone(),
        amount,
        grant_kind: GrantKind::Promotional,
        expires_at,
        source: Operator::Promotions,
        kind: Kind::Grant,
        reference: ids::new_id("admin_grant"),
        attribution: Attribution {
            actor: Some(staff.actor()),
            reason: Some(reason.clone()),
        },
    })?;
    let after = after_of(&journal, &c.account_id)?;
    journal.write(&mut tx).await?;
    tx.insert_audit(&audit(
        staff,
        "grant",
        &c.id,
        &reason,
        Some(balance_text(&c)),
        Some(format!(
            "available {} held {} (+{amount}, transaction {})",
            after.available, after.held, posted.transaction.id
        )),
        core.clock.now(),
    ))
    .await?;
    tx.commit().await?;
    Ok(posted)
}

/// Gives back all (no amount) or part of one charged request, once, with a reason: the
/// same rule as `POST /v1/usage/{id}/refund` (`metering::refund`), made by staff.
pub async fn refund_usage(
    core: &Core,
    staff: &Staff,
    event_id: &str,
    amount: Option<Money>,
    reason: &str,
) -> Result<crate::core::store::UsageEventRow> {
    staff.require(Role::Admin)?;
    let event = core
        .store
        .usage_event(event_id)
        .await?
        .ok_or(Error::NotFound("usage event"))?;
    crate::core::metering::refund(
        core,
        event.mode,
        event_id,
        &crate::core::metering::RefundRequest {
            amount,
            reason: reason.to_string(),
            actor: Actor::Staff(staff.clone()),
        },
    )
    .await
}

/// Corrects a balance by a signed amount: a new adjusting transaction, never an edit.
pub async fn correct(
    core: &Core,
    staff: &Staff,
    customer_id: &str,
    amount: Money,
    reason: &str,
) -> Result<Posted> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let c = customer(core, customer_id).await?;
    let attribution = Attribution {
        actor: Some(staff.actor()),
        reason: Some(reason.clone()),
    };
    let reference = ids::new_id("correction");
    let mut tx = core.store.begin().await?;
    let mut journal = core.ledger.journal(&mut tx, &[&c.account_id], &[]).await?;
    let posted = if amount.is_positive() {
        journal.credit(&Credit {
            account_id: c.account_id.clone(),
            amount,
            grant_kind: GrantKind::Adjustment,
            expires_at: None,
            source: Operator::Corrections,
            kind: Kind::Adjustment,
            reference,
            attribution,
        })?
    } else if amount.is_negative() {
        journal.debit(&Debit {
            account_id: c.account_id.clone(),
            amount: amount.checked_neg()?,
            counter: Operator::Corrections,
            kind: Kind::Adjustment,
            reference,
            attribution,
        })?
    } else {
        return Err(Error::invalid("amount", "a correction must not be zero"));
    };
    let after = after_of(&journal, &c.account_id)?;
    journal.write(&mut tx).await?;
    tx.insert_audit(&audit(
        staff,
        "correct",
        &c.id,
        &reason,
        Some(balance_text(&c)),
        Some(format!(
            "available {} held {} ({amount}, transaction {})",
            after.available, after.held, posted.transaction.id
        )),
        core.clock.now(),
    ))
    .await?;
    tx.commit().await?;
    Ok(posted)
}

pub async fn set_suspended(
    core: &Core,
    staff: &Staff,
    customer_id: &str,
    suspended: bool,
    reason: &str,
) -> Result<()> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let c = customer(core, customer_id).await?;
    let to = if suspended { "suspended" } else { "active" };
    let mut tx = core.store.begin().await?;
    let before = tx.lock_account(&c.account_id).await?;
    tx.set_account_status(&c.account_id, suspended.then_some("staff"))
        .await?;
    tx.insert_audit(&audit(
        staff,
        if suspended { "suspend" } else { "resume" },
        &c.id,
        &reason,
        Some(before.status.to_string()),
        Some(to.to_string()),
        core.clock.now(),
    ))
    .await?;
    tx.commit().await
}

pub async fn change_plan(
    core: &Core,
    staff: &Staff,
    customer_id: &str,
    plan_id: &str,
    reason: &str,
) -> Result<()> {
    staff.require(Role::Admin)?;
    let c = customer(core, customer_id).await?;
    crate::core::customers::set_plan(
        core,
        c.mode,
        &c.id,
        plan_id,
        &Actor::Staff(staff.clone()),
        reason,
    )
    .await?;
    Ok(())
}

/// Edits a plan of a mode's catalog (a new version effective now) and records who and why.
pub async fn edit_plan(
    core: &Core,
    staff: &Staff,
    mode: Mode,
    plan_id: &str,
    changes: &serde_json::Map<String, serde_json::Value>,
    reason: &str,
) -> Result<plans::Plan> {
    staff.require(Role::Admin)?;
    plans::update(
        &core.store,
        mode,
        plan_id,
        None,
        changes,
        &Actor::Staff(staff.clone()),
        reason,
        core.clock.now(),
    )
    .await
}

/// What one sample request costs under the plan now and under proposed changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    pub version: i64,
    pub before: Money,
    pub after: Money,
}

/// A proposed change to a plan: what it changes and what a sample request would cost.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanPreview {
    /// The version in force, which the change would follow.
    pub version: i64,
    pub before: Money,
    pub after: Money,
    /// Only the terms that differ from the version in force, with their proposed values
    /// (the changes to save; empty: the change changes nothing).
    pub changed: serde_json::Map<String, serde_json::Value>,
    /// The same terms' values in force, for showing "from → to".
    pub was: serde_json::Map<String, serde_json::Value>,
}

/// Prices a sample request under a plan's version in force and under `changes`, and
/// names the terms that would change (nothing is saved).
pub async fn preview_plan(
    core: &Core,
    mode: Mode,
    plan_id: &str,
    changes: &serde_json::Map<String, serde_json::Value>,
    model_id: &str,
    tokens: &Tokens,
) -> Result<PlanPreview> {
    let plan = plans::plan(&core.store, mode, plan_id).await?;
    let model = plans::model(&core.store, mode, model_id).await?;
    let proposed = plans::merge_terms(&plan.terms, changes)?;
    let price = |terms: &PricingTerms| {
        pricing::price(&model, terms, tokens, Outcome::Succeeded, false, 0).map(|p| p.cost)
    };
    let as_map = |terms: &PricingTerms| match serde_json::to_value(terms) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        _ => Err(Error::internal("plan terms are not an object")),
    };
    let (now, next) = (as_map(&plan.terms)?, as_map(&proposed)?);
    let mut changed = serde_json::Map::new();
    let mut was = serde_json::Map::new();
    for (key, value) in next {
        let old = now.get(&key).cloned().unwrap_or(serde_json::Value::Null);
        if old != value {
            was.insert(key.clone(), old);
            changed.insert(key, value);
        }
    }
    Ok(PlanPreview {
        version: plan.version,
        before: price(&plan.terms)?,
        after: price(&proposed)?,
        changed,
        was,
    })
}

/// Prices a sample request at a model's list price now and at proposed rates.
pub async fn preview_model(
    core: &Core,
    mode: Mode,
    proposed: &ModelPrice,
    tokens: &Tokens,
) -> Result<Preview> {
    let current = plans::model(&core.store, mode, &proposed.id).await?;
    plans::check_model(proposed)?;
    let list = PricingTerms::default();
    let price = |m: &ModelPrice| {
        pricing::price(m, &list, tokens, Outcome::Succeeded, false, 0).map(|p| p.cost)
    };
    Ok(Preview {
        version: 0,
        before: price(&current)?,
        after: price(proposed)?,
    })
}

/// Changes a model's list prices in a mode's price book: a new price version, effective
/// now. Recorded usage keeps the version it was charged at.
pub async fn edit_model(
    core: &Core,
    staff: &Staff,
    mode: Mode,
    proposed: &ModelPrice,
    reason: &str,
) -> Result<ModelPrice> {
    staff.require(Role::Admin)?;
    let before = plans::model(&core.store, mode, &proposed.id).await?;
    let after = ModelPrice {
        provider: before.provider.clone(),
        ..proposed.clone()
    };
    plans::upsert_model(
        &core.store,
        mode,
        &after,
        &Actor::Staff(staff.clone()),
        reason,
        core.clock.now(),
    )
    .await
}

/// Creates an API key; the secret is returned once and stored only as a hash.
pub async fn create_key(
    core: &Core,
    staff: &Staff,
    mode: Mode,
    scope: Scope,
    name: &str,
    reason: &str,
) -> Result<(ApiKey, String)> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let now = core.clock.now();
    let mut tx = core.store.begin().await?;
    let (key, secret) = keys::create_in(&mut tx, mode, scope, name, now).await?;
    tx.insert_audit(&audit(
        staff,
        "create_key",
        &key.id,
        &reason,
        None,
        Some(format!(
            "{} {} {:?}",
            mode.as_str(),
            scope.as_str(),
            key.name
        )),
        now,
    ))
    .await?;
    tx.commit().await?;
    Ok((key, secret))
}

/// Revokes an API key at once.
pub async fn revoke_key(core: &Core, staff: &Staff, id: &str, reason: &str) -> Result<()> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let now = core.clock.now();
    let mut tx = core.store.begin().await?;
    if !tx.revoke_api_key(id, now).await? {
        return Err(Error::NotFound("api key (or it is revoked already)"));
    }
    tx.insert_audit(&audit(
        staff,
        "revoke_key",
        id,
        &reason,
        Some("active".into()),
        Some("revoked".into()),
        now,
    ))
    .await?;
    tx.commit().await?;
    core.keys.clear();
    Ok(())
}

/// Queues a stored webhook event again.
pub async fn replay_webhook(
    core: &Core,
    staff: &Staff,
    event_id: &str,
    reason: &str,
) -> Result<()> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let before = core
        .store
        .webhook_event(event_id)
        .await?
        .ok_or(Error::NotFound("webhook event"))?;
    let mut tx = core.store.begin().await?;
    super::payments::webhooks::requeue_in(&mut tx, event_id, core.clock.now()).await?;
    tx.insert_audit(&audit(
        staff,
        "replay_webhook",
        event_id,
        &reason,
        Some(before.status.to_string()),
        Some("pending".into()),
        core.clock.now(),
    ))
    .await?;
    tx.commit().await
}

/// Renews a test-mode simulated subscription now, paid or failed (the console's "Advance"
/// buttons), with its audit entry.
pub async fn advance_subscription(
    core: &Core,
    staff: &Staff,
    subscription_id: &str,
    fail: bool,
) -> Result<()> {
    staff.require(Role::Admin)?;
    let before = core
        .store
        .subscription(subscription_id)
        .await?
        .ok_or(Error::NotFound("subscription"))?;
    // The renewal goes through the webhook path over HTTP, so it cannot share the audit
    // entry's transaction; the entry is written once it is done.
    let after = super::subscriptions::advance(core, Mode::Test, subscription_id, fail).await?;
    let mut tx = core.store.begin().await?;
    let reason = if fail {
        "simulated renewal, failed"
    } else {
        "simulated renewal, paid"
    };
    tx.insert_audit(&audit(
        staff,
        "advance_subscription",
        subscription_id,
        reason,
        Some(before.status.to_string()),
        Some(after.status.to_string()),
        core.clock.now(),
    ))
    .await?;
    tx.commit().await
}

/// An account as a journal will leave it, for the audit entry's "after".
fn after_of(journal: &Journal, account_id: &str) -> Result<AccountRow> {
    journal
        .account(account_id)
        .cloned()
        .ok_or_else(|| Error::internal("account outside its journal"))
}

/// Creates an operator webhook endpoint from the console; the row carries its secret.
pub async fn create_endpoint(
    core: &Core,
    staff: &Staff,
    mode: Mode,
    new: &super::notify::endpoints::NewEndpoint,
    reason: &str,
) -> Result<super::store::EndpointRow> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let now = core.clock.now();
    let mut tx = core.store.begin().await?;
    let row = super::notify::endpoints::create_in(&mut tx, now, mode, new).await?;
    tx.insert_audit(&audit(
        staff,
        "create_webhook_endpoint",
        &row.id,
        &reason,
        None,
        Some(format!("{} {}", row.url, row.events.join(","))),
        now,
    ))
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes an endpoint, or enables a disabled one again, from the console.
pub async fn endpoint_action(
    core: &Core,
    staff: &Staff,
    id: &str,
    enable: bool,
    reason: &str,
) -> Result<()> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let now = core.clock.now();
    let before = core
        .store
        .endpoint(id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))?;
    let mut tx = core.store.begin().await?;
    let (action, after) = if enable {
        super::notify::endpoints::enable_in(&mut tx, id).await?;
        ("enable_webhook_endpoint", "enabled")
    } else {
        super::notify::endpoints::delete_in(&mut tx, now, id).await?;
        ("delete_webhook_endpoint", "deleted")
    };
    tx.insert_audit(&audit(
        staff,
        action,
        id,
        &reason,
        Some(before.status.to_string()),
        Some(after.into()),
        now,
    ))
    .await?;
    tx.commit().await
}

/// Sends one delivery of an event again at once.
pub async fn redeliver(core: &Core, staff: &Staff, delivery_id: &str, reason: &str) -> Result<()> {
    staff.require(Role::Admin)?;
    let reason = reason_of(reason)?;
    let now = core.clock.now();
    let before = core
        .store
        .delivery(delivery_id)
        .await?
        .ok_or(Error::NotFound("delivery"))?;
    let mut tx = core.store.begin().await?;
    super::notify::outbox::redeliver_in(&mut tx, now, delivery_id).await?;
    tx.insert_audit(&audit(
        staff,
        "redeliver_webhook",
        delivery_id,
        &reason,
        Some(before.status.to_string()),
        Some("pending".into()),
        now,
    ))
    .await?;
    tx.commit().await
}
