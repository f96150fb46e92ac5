//! The console's customers: search, and a customer's page (balance, grants, ledger, usage
//! with refunds, top-ups, audit) with its actions: grant, refund a request, correct,
//! suspend or resume, change plan.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use super::topups::{TopupLine, TopupTable};
use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::topups::topup_line;
#[cfg(feature = "ssr")]
use super::{core, require_staff};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerLine {
    pub id: String,
    pub mode: String,
    pub name: String,
    pub email: String,
    pub external_id: String,
    pub available: String,
    pub status: String,
}

#[server(prefix = "/api", endpoint = "admin_search")]
pub async fn admin_search(
    q: Option<String>,
    mode: Option<String>,
    status: Option<String>,
    plan: Option<String>,
    below: Option<String>,
) -> Result<Vec<CustomerLine>, AppError> {
    use crate::core::ledger::Mode;
    use crate::core::store::CustomerFilters;
    use crate::core::vocab::AccountStatus;
    require_staff(Role::Viewer).await?;
    let mode = if mode.as_deref() == Some("live") {
        Mode::Live
    } else {
        Mode::Test
    };
    let given = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let filters =
        CustomerFilters {
            status: match given(status) {
                None => None,
                Some(s) => Some(AccountStatus::parse(&s).ok_or_else(|| {
                    AppError::Invalid(format!("status {s:?}: active or suspended"))
                })?),
            },
            plan: given(plan),
            available_below: match given(below) {
                None => None,
                Some(b) => Some(
                    crate::core::money::Money::parse(&b)
                        .map_err(|e| AppError::Invalid(format!("available below {b:?}: {e}")))?,
                ),
            },
        };
    let rows = crate::core::console::search_customers(
        &core(),
        mode,
        q.as_deref().unwrap_or("").trim(),
        &filters,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|c| CustomerLine {
            id: c.id,
            mode: c.mode.to_string(),
            name: c.name.unwrap_or_default(),
            email: c.email.unwrap_or_default(),
            external_id: c.external_id,
            available: c.available.display_money(),
            status: c.account_status.to_string(),
        })
        .collect())
}

#[component]
pub fn AdminCustomers() -> impl IntoView {
    let query = use_query_map();
    let args = move || {
        let q = query.read();
        (
            q.get("q"),
            q.get("mode"),
            q.get("status"),
            q.get("plan"),
            q.get("below"),
        )
    };
    let data = Resource::new(args, |(q, mode, status, plan, below)| {
        admin_search(q, mode, status, plan, below)
    });
    let picked = move |key: &'static str| query.read().get(key).unwrap_or_default();
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"Customers"</h1>
            <Form method="GET" action="/admin/customers" attr:class="filters">
                <label>"Search " <input type="search" name="q" value=move || query.read().get("q").unwrap_or_default() placeholder="email, name or external id" data-testid="customer-search"/></label>
                <label>"Mode "
                    <select name="mode">
                        <option value="test">"test"</option>
                        <option value="live" selected=move || query.read().get("mode").as_deref() == Some("live")>"live"</option>
                    </select>
                </label>
                <label>"Status "
                    <select name="status" data-testid="status-filter">
                        <option value="">"any"</option>
                        <option value="active" selected=move || picked("status") == "active">"active"</option>
                        <option value="suspended" selected=move || picked("status") == "suspended">"suspended"</option>
                    </select>
                </label>
                <label>"Plan " <input type="text" name="plan" size="10" value=move || picked("plan") placeholder="any" data-testid="plan-filter"/></label>
                <label>"Available below " <input type="text" inputmode="decimal" name="below" size="8" value=move || picked("below") placeholder="any" data-testid="below-filter"/></label>
                <button type="submit">"Search"</button>
            </Form>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! {
                        <div class="table-wrap" tabindex="0"><table data-testid="customers">
                            <thead><tr><th>"Customer"</th><th>"Email"</th><th>"External id"</th><th class="num">"Available"</th><th>"Status"</th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|c| view! {
                                    <tr>
                                        <td><a href=format!("/admin/customers/{}", c.id)>{if c.name.is_empty() { c.id.clone() } else { c.name.clone() }}</a></td>
                                        <td>{c.email}</td><td>{c.external_id}</td><td class="num">{c.available}</td><td>{c.status}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table></div>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// One charged request on the customer page, with what was refunded of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    pub id: String,
    pub time: String,
    pub model: String,
    pub cost: String,
    /// "$0.10 (reason)" once refunded.
    pub refunded: Option<String>,
    pub refundable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerDetail {
    pub id: String,
    pub name: String,
    pub mode: String,
    pub plan: String,
    pub plans: Vec<String>,
    pub available: String,
    pub held: String,
    pub status: String,
    pub grants: Vec<(String, String, String, String)>,
    pub transactions: Vec<(String, String, String, String)>,
    pub usage: Vec<UsageLine>,
    pub topups: Vec<TopupLine>,
    /// Auto top-up in one line, with its last failure if any.
    pub auto_topup: String,
    pub auto_topup_error: Option<String>,
    pub audit: Vec<(String, String, String, String)>,
}

#[server(prefix = "/api", endpoint = "admin_customer")]
pub async fn admin_customer(id: String) -> Result<CustomerDetail, AppError> {
    require_staff(Role::Viewer).await?;
    let core = core();
    let crate::core::console::CustomerDetail {
        customer: c,
        grants,
        transactions: txns,
        usage,
        topups,
        auto_topup: auto,
        audit,
        plans,
    } = crate::core::console::customer_detail(&core, &id).await?;
    let (auto_topup, auto_topup_error) = match auto {
        None => ("off; no card saved".to_string(), None),
        Some(a) => {
            let card = if a.payment_method_id.is_some() {
                format!(
                    "card saved ({})",
                    a.card_gateway.map(|g| g.as_str()).unwrap_or("?")
                )
            } else {
                "no card saved".to_string()
            };
            let state = if a.enabled {
                format!(
                    "on: below {} buy {}, at most {} a month{}",
                    a.threshold.display_money(),
                    core.payments
                        .currency()
                        .from_minor(a.amount_cents)
                        .map(|m| m.display_money())
                        .unwrap_or_default(),
                    core.payments
                        .currency()
                        .from_minor(a.monthly_limit_cents)
                        .map(|m| m.display_money())
                        .unwrap_or_default(),
                    if a.armed {
                        ""
                    } else {
                        " (waiting for the balance to recover)"
                    }
                )
            } else {
                "off".to_string()
            };
            (format!("{state}; {card}"), a.last_error)
        }
    };
    let plans = plans.into_iter().map(|p| p.id).collect();
    Ok(CustomerDetail {
        name: c
            .name
            .clone()
            .or(c.email.clone())
            .unwrap_or(c.external_id.clone()),
        mode: c.mode.to_string(),
        plan: c.plan_id.clone(),
        plans,
        available: c.available.display_money(),
        held: c.held.display_money(),
        status: c.account_status.to_string(),
        grants: grants
            .iter()
            .map(|g| {
                (
                    g.kind.to_string(),
                    g.amount.display_money(),
                    (g.available.checked_add(g.held).unwrap_or(g.available)).display_money(),
                    g.expires_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_else(|| "never".into()),
                )
            })
            .collect(),
        transactions: txns
            .iter()
            .map(|t| {
                (
                    t.created_at.to_rfc3339(),
                    t.kind.to_string(),
                    t.amount.display_money(),
                    t.reason.clone().unwrap_or_default(),
                )
            })
            .collect(),
        usage: usage
            .iter()
            .map(|e| UsageLine {
                id: e.id.clone(),
                time: e.occurred_at.to_rfc3339(),
                model: e.model.clone(),
                cost: e.cost.display_money(),
                refunded: e.refunded_amount.is_positive().then(|| {
                    format!(
                        "{} ({})",
                        e.refunded_amount.display_money(),
                        e.refund_reason.clone().unwrap_or_default()
                    )
                }),
                refundable: e.cost.is_positive() && !e.refunded_amount.is_positive(),
            })
            .collect(),
        topups: topups.iter().map(topup_line).collect(),
        auto_topup,
        auto_topup_error,
        audit: audit
            .iter()
            .map(|a| {
                (
                    a.created_at.to_rfc3339(),
                    a.actor.clone(),
                    a.action.clone(),
                    a.reason.clone(),
                )
            })
            .collect(),
        id: c.id,
    })
}

#[server(prefix = "/api", endpoint = "admin_grant")]
pub async fn admin_grant(
    id: String,
    amount: String,
    expires_on: Option<String>,
    reason: String,
) -> Result<(), AppError> {
    use crate::core::clock::Timestamp;
    use crate::core::money::Money;
    let staff = require_staff(Role::Admin).await?;
    let amount = Money::parse_non_negative(amount.trim())
        .map_err(|_| AppError::Invalid("Enter an amount like 5.00.".into()))?;
    let expires_at = match expires_on.filter(|d| !d.is_empty()) {
        Some(d) => Some(
            Timestamp::parse_rfc3339(&format!("{d}T00:00:00Z"))
                .ok_or_else(|| AppError::Invalid("Enter a date like 2027-01-31.".into()))?,
        ),
        None => None,
    };
    crate::core::admin::grant(&core(), &staff, &id, amount, expires_at, &reason).await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "admin_refund_usage")]
pub async fn admin_refund_usage(
    id: String,
    amount: Option<String>,
    reason: String,
) -> Result<(), AppError> {
    use crate::core::money::Money;
    let staff = require_staff(Role::Admin).await?;
    let amount = match amount.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        None => None,
        Some(a) => Some(
            Money::parse_non_negative(a.trim_start_matches('$')).map_err(|_| {
                AppError::Invalid("Enter an amount like 0.10, or nothing to refund it all.".into())
            })?,
        ),
    };
    crate::core::admin::refund_usage(&core(), &staff, &id, amount, &reason).await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "admin_correct")]
pub async fn admin_correct(id: String, amount: String, reason: String) -> Result<(), AppError> {
    use crate::core::money::Money;
    let staff = require_staff(Role::Admin).await?;
    let amount = Money::parse(amount.trim())
        .map_err(|_| AppError::Invalid("Enter a signed amount like -2.50.".into()))?;
    crate::core::admin::correct(&core(), &staff, &id, amount, &reason).await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "admin_suspend")]
pub async fn admin_suspend(id: String, suspend: bool, reason: String) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    crate::core::admin::set_suspended(&core(), &staff, &id, suspend, &reason).await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "admin_change_plan")]
pub async fn admin_change_plan(id: String, plan: String, reason: String) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    crate::core::admin::change_plan(&core(), &staff, &id, &plan, &reason).await?;
    Ok(())
}

#[component]
pub fn AdminCustomer() -> impl IntoView {
    let params = use_params_map();
    let grant = ServerAction::<AdminGrant>::new();
    let correct = ServerAction::<AdminCorrect>::new();
    let suspend = ServerAction::<AdminSuspend>::new();
    let plan = ServerAction::<AdminChangePlan>::new();
    let refund = ServerAction::<AdminRefundUsage>::new();
    // Reloads after every action.
    let data = Resource::new(
        move || {
            (
                params.read().get("id").unwrap_or_default(),
                grant.version().get()
                    + correct.version().get()
                    + suspend.version().get()
                    + plan.version().get()
                    + refund.version().get(),
            )
        },
        |(id, _)| admin_customer(id),
    );
    let error = move || {
        [
            grant.value().get().and_then(|r| r.err()),
            correct.value().get().and_then(|r| r.err()),
            suspend.value().get().and_then(|r| r.err()),
            plan.value().get().and_then(|r| r.err()),
            refund.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
    };
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure(e),
                Ok(c) => {
                    let suspended = c.status == "suspended";
                    let ids = [c.id.clone(), c.id.clone(), c.id.clone(), c.id.clone()];
                    let [id_grant, id_correct, id_suspend, id_plan] = ids;
                    let plan_options = c.plans.clone();
                    let current_plan = c.plan.clone();
                    view! {
                        <AdminNav/>
                        <section class="card">
                            <h1>{c.name.clone()} " " <small class="muted">{c.id.clone()} " · " {c.mode}</small></h1>
                            <dl class="stats">
                                <div><dt>"Available"</dt><dd data-testid="admin-available">{c.available.clone()}</dd></div>
                                <div><dt>"Held"</dt><dd>{c.held.clone()}</dd></div>
                                <div><dt>"Status"</dt><dd data-testid="admin-status">{c.status.clone()}</dd></div>
                                <div><dt>"Plan"</dt><dd>{c.plan.clone()}</dd></div>
                            </dl>
                            {error}
                        </section>
                        <section class="card">
                            <h2>"Actions"</h2>
                            <ActionForm action=grant attr:class="inline-form">
                                <input type="hidden" name="id" value=id_grant/>
                                <label>"Grant amount " <input type="text" name="amount" required data-testid="grant-amount"/></label>
                                <label>"Expires on " <input type="date" name="expires_on"/></label>
                                <label>"Reason " <input type="text" name="reason" required data-testid="grant-reason"/></label>
                                <button type="submit" data-testid="grant">"Grant credits"</button>
                            </ActionForm>
                            <ActionForm action=correct attr:class="inline-form">
                                <input type="hidden" name="id" value=id_correct/>
                                <label>"Correct by (signed) " <input type="text" name="amount" required data-testid="correct-amount"/></label>
                                <label>"Reason " <input type="text" name="reason" required data-testid="correct-reason"/></label>
                                <button type="submit" data-testid="correct">"Post correction"</button>
                            </ActionForm>
                            <ActionForm action=suspend attr:class="inline-form">
                                <input type="hidden" name="id" value=id_suspend/>
                                <input type="hidden" name="suspend" value=(!suspended).to_string()/>
                                <label>"Reason " <input type="text" name="reason" required/></label>
                                <button type="submit">{if suspended { "Resume" } else { "Suspend" }}</button>
                            </ActionForm>
                            <ActionForm action=plan attr:class="inline-form">
                                <input type="hidden" name="id" value=id_plan/>
                                <label>"Plan "
                                    <select name="plan">
                                        {plan_options.into_iter().map(|p| {
                                            let selected = p == current_plan;
                                            let label = p.clone();
                                            view! { <option value=p selected=selected>{label}</option> }
                                        }).collect_view()}
                                    </select>
                                </label>
                                <label>"Reason " <input type="text" name="reason" required/></label>
                                <button type="submit">"Change plan"</button>
                            </ActionForm>
                        </section>
                        <section class="card">
                            <h2>"Grants"</h2>
                            <div class="table-wrap" tabindex="0"><table><thead><tr><th>"Kind"</th><th class="num">"Amount"</th><th class="num">"Remaining"</th><th>"Expires"</th></tr></thead>
                            <tbody>{c.grants.iter().map(|(k, a, r, e)| view! { <tr><td>{k.clone()}</td><td class="num">{a.clone()}</td><td class="num">{r.clone()}</td><td>{e.clone()}</td></tr> }).collect_view()}</tbody></table></div>
                            <h2>"Ledger"</h2>
                            <div class="table-wrap" tabindex="0"><table data-testid="admin-ledger"><thead><tr><th>"Time"</th><th>"Kind"</th><th class="num">"Amount"</th><th>"Reason"</th></tr></thead>
                            <tbody>{c.transactions.iter().map(|(t, k, a, r)| view! { <tr><td>{t.clone()}</td><td>{k.clone()}</td><td class="num">{a.clone()}</td><td>{r.clone()}</td></tr> }).collect_view()}</tbody></table></div>
                            <h2>"Recent usage"</h2>
                            <div class="table-wrap" tabindex="0"><table data-testid="admin-usage"><thead><tr><th>"Time"</th><th>"Model"</th><th class="num">"Cost"</th><th>"Refund"</th></tr></thead>
                            <tbody>{c.usage.clone().into_iter().map(|u| {
                                let refund_id = u.id.clone();
                                let refund_form = u.refundable.then(move || view! {
                                    <ActionForm action=refund attr:class="inline-form">
                                        <input type="hidden" name="id" value=refund_id.clone()/>
                                        <input type="text" name="amount" inputmode="decimal" placeholder="all" size="6" aria-label="Amount to refund"/>
                                        <input type="text" name="reason" placeholder="reason" required aria-label="Reason"/>
                                        <button type="submit" data-testid=format!("refund-{refund_id}")>"Refund"</button>
                                    </ActionForm>
                                });
                                view! {
                                    <tr>
                                        <td>{u.time}</td><td>{u.model}</td><td class="num">{u.cost}</td>
                                        <td>{u.refunded.map(|r| format!("refunded {r}"))}{refund_form}</td>
                                    </tr>
                                }
                            }).collect_view()}</tbody></table></div>
                            <h2>"Top-ups"</h2>
                            <p data-testid="admin-auto-topup">"Auto top-up: " {c.auto_topup.clone()}</p>
                            {c.auto_topup_error.clone().map(|e| view! { <p class="banner-low" role="alert">{e}</p> })}
                            <TopupTable rows=c.topups.clone() with_customer=false/>
                            <h2>"Audit"</h2>
                            <div class="table-wrap" tabindex="0"><table data-testid="admin-audit"><tbody>{c.audit.iter().map(|(t, who, what, why)| view! { <tr><td>{t.clone()}</td><td>{who.clone()}</td><td>{what.clone()}</td><td>{why.clone()}</td></tr> }).collect_view()}</tbody></table></div>
                        </section>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}
