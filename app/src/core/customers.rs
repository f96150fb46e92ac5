//! Customers: the operator's users, each with a credit account in the ledger, a plan, and
//! a balance status. Every lookup is scoped to a mode: another mode's customer is "not found".

use super::audit::{self, Actor};
use super::clock::Timestamp;
use super::error::{Error, Result};
use super::ids;
use super::keys;
use super::ledger::{Attribution, Credit, GrantKind, Kind, Mode, Operator, Posted};
use super::money::Money;
use super::plans::{self, Plan};
use super::store::CustomerRow;
use super::vocab::{AccountStatus, Standing};
use super::Core;

/// What a new customer is created with.
#[derive(Clone, Debug, Default)]
pub struct NewCustomer {
    pub external_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub plan: Option<String>,
}

/// `active`, `low` (under the alert threshold), `depleted` (nothing available) or
/// `suspended`.
pub fn balance_status(c: &CustomerRow, threshold: Money) -> &'static str {
    if c.account_status == AccountStatus::Suspended {
        "suspended"
    } else if !c.available.is_positive() {
        "depleted"
    } else if c.available < threshold {
        "low"
    } else {
        "active"
    }
}

/// The customer's own threshold, or else their plan's.
pub fn low_balance_threshold(c: &CustomerRow, plan: &Plan) -> Money {
    c.low_balance_threshold
        .unwrap_or(plan.terms.low_balance_threshold)
}

/// Whether the customer may start new usage, and why not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntitlementView {
    pub entitled: bool,
    pub reason: Standing,
    pub available: Money,
}

fn check_text(param: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(Error::invalid(
            param,
            format!("{param} must be 1-{max} characters without control characters"),
        ));
    }
    Ok(())
}

pub async fn create(core: &Core, mode: Mode, new: &NewCustomer) -> Result<CustomerRow> {
    check_text("external_id", &new.external_id, 255)?;
    if let Some(email) = &new.email {
        check_text("email", email, 320)?;
        let valid = email.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty() && host.contains('.') && !host.ends_with('.')
        });
        if !valid {
            return Err(Error::invalid("email", "email is not an email address"));
        }
    }
    if let Some(name) = &new.name {
        check_text("name", name, 255)?;
    }
    let plan_id = new.plan.as_deref().unwrap_or(plans::DEFAULT_PLAN);
    let plan = plans::plan(&core.store, mode, plan_id)
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => Error::invalid("plan", format!("no such plan: {plan_id}")),
            other => other,
        })?;
    let id = ids::new_id("cus");
    let now = core.clock.now();
    let mut tx = core.store.begin().await?;
    let label = new.name.as_deref().unwrap_or(&new.external_id);
    let account = core.ledger.open_account_in(&mut tx, mode, label).await?;
    let inserted = tx
        .insert_customer(
            &id,
            mode,
            &new.external_id,
            new.email.as_deref(),
            new.name.as_deref(),
            &plan.id,
            &account,
            now,
        )
        .await?;
    if !inserted {
        return Err(Error::Conflict {
            code: "external_id_taken",
            message: format!("a customer with external_id {} exists", new.external_id),
        });
    }
    tx.commit().await?;
    let customer = get(core, mode, &id).await?;
    grant_included_credits(core, &customer).await?;
    get(core, mode, &id).await
}

pub async fn get(core: &Core, mode: Mode, id: &str) -> Result<CustomerRow> {
    match core.store.customer(id).await? {
        Some(c) if c.mode == mode => Ok(c),
        _ => Err(Error::NotFound("customer")),
    }
}

pub async fn by_external_id(core: &Core, mode: Mode, external_id: &str) -> Result<CustomerRow> {
    core.store
        .customer_by_external_id(mode.as_str(), external_id)
        .await?
        .ok_or(Error::NotFound("customer"))
}

/// Moves a customer to another plan of their mode, with its audit entry (who and why) in the
/// same transaction.
pub async fn set_plan(
    core: &Core,
    mode: Mode,
    id: &str,
    plan_id: &str,
    actor: &Actor,
    reason: &str,
) -> Result<CustomerRow> {
    let reason = audit::reason_of(reason)?;
    let customer = get(core, mode, id).await?;
    let plan = plans::plan(&core.store, mode, plan_id)
        .await
        .map_err(|e| match e {
            Error::NotFound(_) => Error::invalid("plan", format!("no such plan: {plan_id}")),
            other => other,
        })?;
    let mut tx = core.store.begin().await?;
    tx.lock_account(&customer.account_id).await?;
    tx.set_customer_plan(&customer.id, &plan.id).await?;
    tx.insert_audit(&audit::audit_entry(
        actor,
        "change_plan",
        &customer.id,
        &reason,
        Some(customer.plan_id.clone()),
        Some(plan.id.clone()),
        core.clock.now(),
    ))
    .await?;
    tx.commit().await?;
    get(core, mode, id).await
}

/// Entitlement: suspended beats everything, then the spend caps, then the balance.
pub async fn entitlement(core: &Core, c: &CustomerRow) -> Result<EntitlementView> {
    let plan = plans::of_customer(&core.store, c).await?;
    let now = core.clock.now();
    let (_, day) = core.store.period_totals(&c.id, &now.day_key()).await?;
    let (_, month) = core.store.period_totals(&c.id, &now.month_key()).await?;
    let reason = entitlement_reason(
        c.account_status,
        c.past_grace(now),
        c.available,
        c.held,
        &plan,
        c.hard_budget(),
        Spent { day, month },
    );
    Ok(EntitlementView {
        entitled: reason == Standing::Ok,
        reason,
        available: c.available,
    })
}

/// What a customer has spent in the current day and month (from the period counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spent {
    pub day: Money,
    pub month: Money,
}

/// Suspended beats everything, then a failed renewal past its grace, then the spend caps
/// (spent plus held), then the balance.
pub fn entitlement_reason(
    account_status: AccountStatus,
    past_grace: bool,
    available: Money,
    held: Money,
    plan: &Plan,
    budget: Option<Money>,
    spent: Spent,
) -> Standing {
    let (day_spend, month_spend) = (spent.day, spent.month);
    if account_status == AccountStatus::Suspended {
        Standing::Suspended
    } else if past_grace {
        Standing::PastDue
    } else if cap_room(plan, budget, day_spend, month_spend, held).is_some_and(|room| room <= 0) {
        Standing::CapReached
    } else if !available.is_positive() {
        Standing::InsufficientCredits
    } else {
        Standing::Ok
    }
}

/// Refuses a hold of `amount` that would take the day's or the month's spend plus what is
/// already held past the plan's cap (or the customer's own monthly budget, when it is a
/// hard stop). Called under the account's lock, with the counters read in the same
/// transaction, so it is one atomic step with the balance check.
pub fn check_caps(
    plan: &Plan,
    budget: Option<Money>,
    day_spend: Money,
    month_spend: Money,
    held: Money,
    amount: Money,
) -> Result<()> {
    let fits = cap_room(plan, budget, day_spend, month_spend, held)
        .is_none_or(|room| i128::from(amount.nanos()) <= room);
    if !fits {
        return Err(Error::CapReached);
    }
    Ok(())
}

/// Which limit a hold of `amount` would pass, if any: the period (`day` or `month`), the
/// cap, and whether it is the customer's own budget (a hard stop) rather than the plan's.
pub fn binding_cap(
    plan: &Plan,
    budget: Option<Money>,
    day_spend: Money,
    month_spend: Money,
    held: Money,
    amount: Money,
) -> Option<(&'static str, Money, bool)> {
    let over = |cap: Option<Money>, spent: Money| {
        cap.filter(|c| {
            i128::from(amount.nanos())
                > i128::from(c.nanos()) - i128::from(spent.nanos()) - i128::from(held.nanos())
        })
    };
    if let Some(c) = over(plan.terms.daily_spend_cap, day_spend) {
        return Some(("day", c, false));
    }
    if let Some(c) = over(plan.terms.monthly_spend_cap, month_spend) {
        return Some(("month", c, false));
    }
    over(budget, month_spend).map(|c| ("month", c, true))
}

/// What the plan's daily and monthly caps (and a hard monthly budget) leave after what is
/// spent and held, in nano-units (≤ 0: nothing more fits); None when there is no cap.
fn cap_room(
    plan: &Plan,
    budget: Option<Money>,
    day_spend: Money,
    month_spend: Money,
    held: Money,
) -> Option<i128> {
    let room = |cap: Option<Money>, spent: Money| {
        cap.map(|c| i128::from(c.nanos()) - i128::from(spent.nanos()) - i128::from(held.nanos()))
    };
    [
        room(plan.terms.daily_spend_cap, day_spend),
        room(plan.terms.monthly_spend_cap, month_spend),
        room(budget, month_spend),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// Grants the plan's included credits for the current month once, expiring at its end.
/// Safe to call any number of times: the reference names customer and month. A
/// subscription plan's credits come with each paid invoice instead (`subscriptions`).
pub async fn grant_included_credits(core: &Core, c: &CustomerRow) -> Result<()> {
    let now = core.clock.now();
    let period = now.month_key();
    let plan = plans::of_customer(&core.store, c).await?;
    let reference = format!("included:{}:{period}", c.id);
    let mut tx = core.store.begin().await?;
    if plan.terms.included_credits.is_positive() && !plan.terms.is_subscription() {
        let mut journal = core
            .ledger
            .journal(&mut tx, &[&c.account_id], &[&reference])
            .await?;
        journal.credit(&Credit {
            account_id: c.account_id.clone(),
            amount: plan.terms.included_credits,
            grant_kind: GrantKind::Included,
            expires_at: Some(now.next_month_start()),
            source: Operator::Promotions,
            kind: Kind::Grant,
            reference,
            attribution: Attribution {
                actor: Some("plan".into()),
                reason: Some(format!("included credits of plan {} for {period}", plan.id)),
            },
        })?;
        journal.write(&mut tx).await?;
    }
    tx.set_included_period(&c.id, &period).await?;
    tx.commit().await
}

/// Included credits for every customer who has not had this month's yet.
pub async fn grant_all_included_credits(core: &Core) -> Result<usize> {
    let period = core.clock.now().month_key();
    let mut done = 0;
    loop {
        let due = core
            .store
            .customers_due_included_credits(&period, 500)
            .await?;
        if due.is_empty() {
            return Ok(done);
        }
        for c in &due {
            grant_included_credits(core, c).await?;
            done += 1;
        }
    }
}

/// A grant made by an operator (API or console): promotional credits, optionally expiring.
#[derive(Clone, Debug)]
pub struct GrantRequest {
    pub amount: Money,
    pub reason: String,
    pub expires_at: Option<Timestamp>,
    pub actor: String,
    /// Makes the grant exactly-once; a fresh one is made when absent.
    pub reference: Option<String>,
}

pub async fn grant(core: &Core, mode: Mode, id: &str, g: &GrantRequest) -> Result<Posted> {
    let customer = get(core, mode, id).await?;
    if !g.amount.is_positive() {
        return Err(Error::invalid("amount", "amount must be positive"));
    }
    check_text("reason", g.reason.trim(), 500)?;
    let reference = g.reference.clone().unwrap_or_else(|| ids::new_id("grant"));
    core.ledger
        .credit(&Credit {
            account_id: customer.account_id,
            amount: g.amount,
            grant_kind: GrantKind::Promotional,
            expires_at: g.expires_at,
            source: Operator::Promotions,
            kind: Kind::Grant,
            reference,
            attribution: Attribution {
                actor: Some(g.actor.clone()),
                reason: Some(g.reason.clone()),
            },
        })
        .await
}

/// [`grant`], answering the grant it made with its transaction (the API shows both).
pub async fn grant_with_row(
    core: &Core,
    mode: Mode,
    id: &str,
    g: &GrantRequest,
) -> Result<(Posted, crate::core::store::GrantRow)> {
    let posted = grant(core, mode, id, g).await?;
    let row = core
        .store
        .grant_by_transaction(&posted.transaction.id)
        .await?
        .ok_or_else(|| Error::internal("grant without its row"))?;
    Ok((posted, row))
}

/// Creates a one-time sign-in link token for the portal, valid for `ttl_seconds`.
pub async fn portal_link(
    core: &Core,
    mode: Mode,
    id: &str,
    ttl_seconds: i64,
) -> Result<(String, Timestamp)> {
    let customer = get(core, mode, id).await?;
    let token = keys::random_token()?;
    let now = core.clock.now();
    let expires_at = now.plus_seconds(ttl_seconds);
    let mut tx = core.store.begin().await?;
    tx.insert_portal_link(&keys::hash_secret(&token), &customer.id, expires_at, now)
        .await?;
    tx.commit().await?;
    Ok((token, expires_at))
}
