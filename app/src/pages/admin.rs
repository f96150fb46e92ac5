//! The admin console: the operator's figures, customers (search, detail, grants,
//! corrections, suspension, plan), plans, the webhook inbox with replay, reconciliation.
//! Every server function checks the staff member's role itself; every action is audited.
//! Actions that stay on their page do not redirect: without JavaScript the server sends
//! the browser back to the page, with it the page's data reloads when the action is done.

// Server functions take one argument per form field, so forms and functions share names
// (the price preview has eight); the macro's generated client code needs the allowance too.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use leptos_router::components::{Form, A};
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

pub const SESSION_ADMIN: &str = "admin";

#[cfg(feature = "ssr")]
pub(crate) fn core() -> crate::core::Core {
    expect_context::<crate::core::Core>()
}

/// The signed-in staff member, if they have `needed`; `Forbidden` otherwise (customers
/// included: a customer session carries no staff id).
#[cfg(feature = "ssr")]
pub async fn require_staff(
    needed: crate::core::admin::Role,
) -> Result<crate::core::admin::Staff, AppError> {
    let session: tower_sessions::Session = leptos_axum::extract()
        .await
        .map_err(|_| AppError::Forbidden)?;
    let id = session
        .get::<String>(SESSION_ADMIN)
        .await
        .map_err(|_| AppError::Unavailable)?
        .ok_or(AppError::Forbidden)?;
    let staff = crate::core::admin::staff(&core(), &id)
        .await
        .map_err(|_| AppError::Forbidden)?;
    staff.require(needed)?;
    Ok(staff)
}

#[cfg(feature = "ssr")]
use crate::core::admin::Role;

#[server(prefix = "/api", endpoint = "admin_sign_in")]
pub async fn admin_sign_in(email: String, password: String) -> Result<(), AppError> {
    let id = match crate::core::admin::sign_in(&core(), &email, &password).await {
        Ok(id) => id,
        Err(crate::core::error::Error::Unauthenticated) => {
            return Err(AppError::Invalid("Wrong email or password.".into()))
        }
        Err(e) => return Err(e.into()),
    };
    super::start_session(SESSION_ADMIN, id).await?;
    leptos_axum::redirect("/admin");
    Ok(())
}

#[component]
pub fn AdminSignIn() -> impl IntoView {
    let action = ServerAction::<AdminSignIn>::new();
    view! {
        <section class="card narrow">
            <h1>"Admin sign-in"</h1>
            <ActionForm action=action>
                <label>"Email" <input type="email" name="email" autocomplete="username" required/></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required/></label>
                <button type="submit" data-testid="admin-sign-in">"Sign in"</button>
            </ActionForm>
            {move || action.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
        </section>
    }
}

#[component]
pub(crate) fn AdminNav() -> impl IntoView {
    view! {
        <nav class="portal-nav" aria-label="Admin">
            <A href="/admin" exact=true>"Overview"</A>
            <A href="/admin/customers">"Customers"</A>
            <A href="/admin/plans">"Plans"</A>
            <A href="/admin/prices">"Prices"</A>
            <A href="/admin/reprice">"What if"</A>
            <A href="/admin/keys">"API keys"</A>
            <A href="/admin/topups">"Top-ups"</A>
            <A href="/admin/webhooks">"Webhooks"</A>
            <A href="/admin/reconciliation">"Reconciliation"</A>
            <A href="/admin/proxy">"Proxy"</A>
            <form method="post" action="/portal/signout" class="inline">
                <button type="submit" class="link">"Sign out"</button>
            </form>
        </nav>
    }
}

/// The catalog (plans and prices) a console page shows: each mode has its own; live unless
/// the page asks for test.
#[cfg(feature = "ssr")]
fn catalog_mode(mode: Option<&str>) -> Result<crate::core::ledger::Mode, AppError> {
    match mode.unwrap_or("live") {
        "" | "live" => Ok(crate::core::ledger::Mode::Live),
        "test" => Ok(crate::core::ledger::Mode::Test),
        _ => Err(AppError::Invalid("The mode is test or live.".into())),
    }
}

/// Links between the live and the test catalog of a console page.
#[component]
fn CatalogModes(page: &'static str) -> impl IntoView {
    let query = use_query_map();
    let current = move || query.read().get("mode").unwrap_or_else(|| "live".into());
    view! {
        <p class="modes" data-testid="catalog-modes">
            "Catalog: "
            {["live", "test"].into_iter().map(|m| view! {
                <a href=format!("{page}?mode={m}") aria-current=move || (current() == m).then_some("page")
                    data-testid=format!("catalog-{m}")>{format!("{m} mode")}</a>
                " "
            }).collect_view()}
        </p>
    }
}

pub(crate) fn failure(e: AppError) -> AnyView {
    match e {
        AppError::Forbidden => view! {
            <section class="card narrow">
                <h1>"Staff only"</h1>
                <p><a href="/admin/signin">"Sign in"</a> " with a staff account that may see this."</p>
            </section>
        }
        .into_any(),
        other => view! { <p class="error" role="alert">{other.to_string()}</p> }.into_any(),
    }
}

// ---- overview ----

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeFigures {
    pub mode: String,
    pub sold: String,
    pub consumed: String,
    pub liability: String,
    pub negative: i64,
    pub failed_webhooks: i64,
    pub top: Vec<(String, String, String)>,
}

#[server(prefix = "/api", endpoint = "admin_overview")]
pub async fn admin_overview() -> Result<Vec<ModeFigures>, AppError> {
    require_staff(Role::Viewer).await?;
    let core = core();
    let period = core.clock.now().month_key();
    let mut out = Vec::new();
    for mode in ["live", "test"] {
        let f = core.store.operator_figures(mode).await?;
        let top = core.store.top_spenders(mode, &period, 5).await?;
        out.push(ModeFigures {
            mode: mode.into(),
            sold: f.credits_sold.display_money(),
            consumed: f.credits_consumed.display_money(),
            liability: f.liability.display_money(),
            negative: f.negative_balances,
            failed_webhooks: f.failed_webhooks,
            top: top
                .into_iter()
                .map(|(c, spend)| {
                    (
                        c.id.clone(),
                        c.name.or(c.email).unwrap_or(c.external_id),
                        spend.display_money(),
                    )
                })
                .collect(),
        });
    }
    Ok(out)
}

#[component]
pub fn AdminHome() -> impl IntoView {
    let data = Resource::new(|| (), |_| admin_overview());
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure(e),
                Ok(modes) => view! {
                    <AdminNav/>
                    {modes.into_iter().map(|m| view! {
                        <section class="card">
                            <h2>{format!("{} mode", m.mode)}</h2>
                            <dl class="stats">
                                <div><dt>"Credits sold"</dt><dd>{m.sold}</dd></div>
                                <div><dt>"Credits consumed"</dt><dd>{m.consumed}</dd></div>
                                <div><dt>"Outstanding liability"</dt><dd data-testid=format!("liability-{}", m.mode)>{m.liability}</dd></div>
                                <div><dt>"Negative balances"</dt><dd>{m.negative}</dd></div>
                                <div><dt>"Failed webhooks"</dt><dd>{m.failed_webhooks}</dd></div>
                            </dl>
                            <h3>"Top customers this month"</h3>
                            <ul>
                                {m.top.into_iter().map(|(id, name, spend)| view! {
                                    <li><a href=format!("/admin/customers/{id}")>{name}</a> " — " {spend}</li>
                                }).collect_view()}
                            </ul>
                        </section>
                    }).collect_view()}
                }.into_any(),
            })}
        </Suspense>
    }
}

// ---- customers ----

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
) -> Result<Vec<CustomerLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let mode = mode
        .filter(|m| m == "live")
        .unwrap_or_else(|| "test".into());
    let rows = core()
        .store
        .search_customers(&mode, q.as_deref().unwrap_or("").trim(), 100)
        .await?;
    Ok(rows
        .into_iter()
        .map(|c| CustomerLine {
            id: c.id,
            mode: c.mode,
            name: c.name.unwrap_or_default(),
            email: c.email.unwrap_or_default(),
            external_id: c.external_id,
            available: c.available.display_money(),
            status: c.account_status,
        })
        .collect())
}

#[component]
pub fn AdminCustomers() -> impl IntoView {
    let query = use_query_map();
    let args = move || (query.read().get("q"), query.read().get("mode"));
    let data = Resource::new(args, |(q, mode)| admin_search(q, mode));
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
                <button type="submit">"Search"</button>
            </Form>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! {
                        <div class="table-wrap"><table data-testid="customers">
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

/// A top-up as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopupLine {
    pub id: String,
    pub customer_id: String,
    pub mode: String,
    pub created: String,
    pub amount: String,
    pub status: String,
    pub source: String,
    pub gateway: String,
    pub refunded: String,
    pub error: String,
}

#[cfg(feature = "ssr")]
fn topup_line(t: &crate::core::store::TopupRow) -> TopupLine {
    TopupLine {
        id: t.id.clone(),
        customer_id: t.customer_id.clone(),
        mode: t.mode.clone(),
        created: t.created_at.to_rfc3339(),
        amount: t.amount.display_money(),
        status: t.status.clone(),
        source: t.source.clone(),
        gateway: t.gateway.clone(),
        refunded: core()
            .payments
            .currency()
            .from_minor(t.refunded_cents)
            .map(|m| m.display_money())
            .unwrap_or_default(),
        error: t.last_error.clone().unwrap_or_default(),
    }
}

#[component]
fn TopupTable(rows: Vec<TopupLine>, with_customer: bool) -> impl IntoView {
    view! {
        <div class="table-wrap"><table data-testid="topups">
            <thead><tr>
                <th>"Created"</th>
                {with_customer.then(|| view! { <th>"Customer"</th><th>"Mode"</th> })}
                <th class="num">"Amount"</th><th>"Status"</th><th>"Source"</th><th>"Gateway"</th><th class="num">"Refunded"</th><th>"Error"</th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|t| view! {
                    <tr>
                        <td>{t.created}</td>
                        {with_customer.then(|| view! {
                            <td><a href=format!("/admin/customers/{}", t.customer_id)>{t.customer_id.clone()}</a></td>
                            <td>{t.mode.clone()}</td>
                        })}
                        <td class="num">{t.amount}</td><td>{t.status}</td><td>{t.source}</td><td>{t.gateway}</td>
                        <td class="num">{t.refunded}</td><td>{t.error}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table></div>
    }
}

#[server(prefix = "/api", endpoint = "admin_customer")]
pub async fn admin_customer(id: String) -> Result<CustomerDetail, AppError> {
    require_staff(Role::Viewer).await?;
    let core = core();
    let c = core.store.customer(&id).await?.ok_or(AppError::NotFound)?;
    let grants = core.store.grants_of(&c.account_id).await?;
    let txns = core
        .store
        .list_transactions(&c.account_id, None, 50)
        .await?;
    let usage = core
        .store
        .list_usage(&crate::core::store::UsageFilter {
            mode: c.mode.clone(),
            customer_id: Some(c.id.clone()),
            conversation: None,
            limit: 20,
            ..Default::default()
        })
        .await?;
    let topups = core.store.topups_of(&c.id, 20).await?;
    let auto = core.store.auto_topup(&c.id).await?;
    let (auto_topup, auto_topup_error) = match auto {
        None => ("off; no card saved".to_string(), None),
        Some(a) => {
            let card = if a.payment_method_id.is_some() {
                format!("card saved ({})", a.card_gateway.as_deref().unwrap_or("?"))
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
    let audit = core.store.audit_entries(Some(&c.id), 50).await?;
    let plans = crate::core::plans::plans(&core.store, crate::core::plans::mode_of(&c.mode)?)
        .await?
        .into_iter()
        .map(|p| p.id)
        .collect();
    Ok(CustomerDetail {
        name: c
            .name
            .clone()
            .or(c.email.clone())
            .unwrap_or(c.external_id.clone()),
        mode: c.mode.clone(),
        plan: c.plan_id.clone(),
        plans,
        available: c.available.display_money(),
        held: c.held.display_money(),
        status: c.account_status.clone(),
        grants: grants
            .iter()
            .map(|g| {
                (
                    g.kind.clone(),
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
                    t.kind.clone(),
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
                            <h1>{c.name.clone()} " " <small class="muted">{c.id.clone()} " · " {c.mode.clone()}</small></h1>
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
                            <table><thead><tr><th>"Kind"</th><th class="num">"Amount"</th><th class="num">"Remaining"</th><th>"Expires"</th></tr></thead>
                            <tbody>{c.grants.iter().map(|(k, a, r, e)| view! { <tr><td>{k.clone()}</td><td class="num">{a.clone()}</td><td class="num">{r.clone()}</td><td>{e.clone()}</td></tr> }).collect_view()}</tbody></table>
                            <h2>"Ledger"</h2>
                            <table data-testid="admin-ledger"><thead><tr><th>"Time"</th><th>"Kind"</th><th class="num">"Amount"</th><th>"Reason"</th></tr></thead>
                            <tbody>{c.transactions.iter().map(|(t, k, a, r)| view! { <tr><td>{t.clone()}</td><td>{k.clone()}</td><td class="num">{a.clone()}</td><td>{r.clone()}</td></tr> }).collect_view()}</tbody></table>
                            <h2>"Recent usage"</h2>
                            <table data-testid="admin-usage"><thead><tr><th>"Time"</th><th>"Model"</th><th class="num">"Cost"</th><th>"Refund"</th></tr></thead>
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
                            }).collect_view()}</tbody></table>
                            <h2>"Top-ups"</h2>
                            <p data-testid="admin-auto-topup">"Auto top-up: " {c.auto_topup.clone()}</p>
                            {c.auto_topup_error.clone().map(|e| view! { <p class="banner-low" role="alert">{e}</p> })}
                            <TopupTable rows=c.topups.clone() with_customer=false/>
                            <h2>"Audit"</h2>
                            <table data-testid="admin-audit"><tbody>{c.audit.iter().map(|(t, who, what, why)| view! { <tr><td>{t.clone()}</td><td>{who.clone()}</td><td>{what.clone()}</td><td>{why.clone()}</td></tr> }).collect_view()}</tbody></table>
                        </section>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}

// ---- plans ----

/// A plan as the console shows it: terms in force, history, and a price preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub terms: String,
    /// (version, since, terms), newest first.
    pub history: Vec<(i64, String, String)>,
    /// The preview asked for on this plan, or why it could not be made.
    pub preview: Option<Result<String, String>>,
}

/// Tokens from a form field: digits with optional separators; empty means `default`.
#[cfg(feature = "ssr")]
fn tokens_field(text: Option<&str>, default: u64, what: &str) -> Result<u64, AppError> {
    let t: String = text
        .unwrap_or("")
        .chars()
        .filter(|c| !matches!(c, ',' | '_' | ' '))
        .collect();
    if t.is_empty() {
        return Ok(default);
    }
    t.parse()
        .map_err(|_| AppError::Invalid(format!("{what} must be a whole number of tokens")))
}

#[cfg(feature = "ssr")]
fn sample_tokens(
    input: Option<&str>,
    output: Option<&str>,
) -> Result<crate::core::pricing::Tokens, AppError> {
    Ok(crate::core::pricing::Tokens {
        input: tokens_field(input, 10_000, "input tokens")?,
        output: tokens_field(output, 2_000, "output tokens")?,
        cache_write: 0,
        cache_read: 0,
        cache_write_1h: 0,
    })
}

#[server(prefix = "/api", endpoint = "admin_plans")]
pub async fn admin_plans(
    mode: Option<String>,
    plan: Option<String>,
    changes: Option<String>,
    model: Option<String>,
    input: Option<String>,
    output: Option<String>,
) -> Result<Vec<PlanView>, AppError> {
    require_staff(Role::Viewer).await?;
    let core = core();
    let mode = catalog_mode(mode.as_deref())?;
    let plans = crate::core::plans::plans(&core.store, mode).await?;
    let mut out = Vec::new();
    for p in plans {
        let history = core
            .store
            .plan_versions(mode.as_str(), &p.id)
            .await?
            .into_iter()
            .map(|v| (v.version, v.created_at.to_rfc3339(), v.terms))
            .collect();
        let preview = if plan.as_deref() == Some(p.id.as_str()) {
            let made: Result<String, AppError> = async {
                let changes: serde_json::Map<String, serde_json::Value> =
                    serde_json::from_str(changes.as_deref().unwrap_or("{}")).map_err(|e| {
                        AppError::Invalid(format!("The changes must be a JSON object: {e}"))
                    })?;
                let model = model.clone().unwrap_or_default();
                let tokens = sample_tokens(input.as_deref(), output.as_deref())?;
                let v =
                    crate::core::admin::preview_plan(&core, mode, &p.id, &changes, &model, &tokens)
                        .await?;
                Ok(format!(
                    "A request of {} input and {} output tokens of {model} costs {} under version {} (in force) and {} with these changes.",
                    tokens.input,
                    tokens.output,
                    v.before.display_money(),
                    v.version,
                    v.after.display_money()
                ))
            }
            .await;
            Some(made.map_err(|e| e.to_string()))
        } else {
            None
        };
        out.push(PlanView {
            terms: serde_json::to_string_pretty(&p.terms).unwrap_or_default(),
            id: p.id,
            name: p.name,
            version: p.version,
            history,
            preview,
        });
    }
    Ok(out)
}

/// An exact amount without the dollar sign ("0.075"), as forms take it.
#[cfg(feature = "ssr")]
fn plain(m: crate::core::money::Money) -> String {
    m.display_plain()
}

/// The price book's models, for pickers.
#[server(prefix = "/api", endpoint = "admin_models")]
pub async fn admin_models(mode: Option<String>) -> Result<Vec<ModelLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let mode = catalog_mode(mode.as_deref())?;
    let models = crate::core::plans::models(&core().store, mode).await?;
    Ok(models
        .into_iter()
        .map(|m| ModelLine {
            id: m.id,
            provider: m.provider,
            input: plain(m.rates.input),
            output: plain(m.rates.output),
            cache_write: plain(m.rates.cache_write),
            cache_read: plain(m.rates.cache_read),
            batch_discount: m.batch_discount_percent,
        })
        .collect())
}

/// A model of the price book; rates are USD per million tokens, exact decimals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelLine {
    pub id: String,
    pub provider: String,
    pub input: String,
    pub output: String,
    pub cache_write: String,
    pub cache_read: String,
    pub batch_discount: u32,
}

#[server(prefix = "/api", endpoint = "admin_edit_plan")]
pub async fn admin_edit_plan(
    mode: Option<String>,
    id: String,
    changes: String,
    reason: String,
) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    let mode = catalog_mode(mode.as_deref())?;
    let changes: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&changes)
        .map_err(|e| AppError::Invalid(format!("The changes must be a JSON object: {e}")))?;
    crate::core::admin::edit_plan(&core(), &staff, mode, &id, &changes, &reason).await?;
    Ok(())
}

#[component]
pub fn AdminPlans() -> impl IntoView {
    let query = use_query_map();
    let edit = ServerAction::<AdminEditPlan>::new();
    let data = Resource::new(
        move || {
            let q = query.read();
            (
                edit.version().get(),
                q.get("mode"),
                q.get("plan"),
                q.get("changes"),
                q.get("model"),
                q.get("input"),
                q.get("output"),
            )
        },
        |(_, mode, plan, changes, model, input, output)| {
            admin_plans(mode, plan, changes, model, input, output)
        },
    );
    let mode = move || query.read().get("mode").unwrap_or_else(|| "live".into());
    let models = Resource::new(move || query.read().get("mode"), admin_models);
    view! {
        <AdminNav/>
        <CatalogModes page="/admin/plans"/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure(e),
                Ok(plans) => plans.into_iter().map(|p| {
                    let id = p.id.clone();
                    let pid = id.clone();
                    let eid = id.clone();
                    let model_options = models
                        .get()
                        .and_then(Result::ok)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|m| view! { <option value=m.id.clone()>{m.id.clone()}</option> })
                        .collect_view();
                    view! {
                    <section class="card">
                        <h2>{p.name.clone()} " " <small class="muted">{id.clone()} " · version " {p.version}</small></h2>
                        <pre class="report">{p.terms.clone()}</pre>
                        <details data-testid=format!("plan-history-{id}")>
                            <summary>{format!("History ({} versions)", p.history.len())}</summary>
                            <ol reversed>
                                {p.history.iter().map(|(v, since, terms)| view! {
                                    <li><strong>{format!("v{v}")}</strong> " from " {since.clone()} <pre class="report">{terms.clone()}</pre></li>
                                }).collect_view()}
                            </ol>
                        </details>
                        <h3>"Preview a change"</h3>
                        <Form method="GET" action="/admin/plans" attr:class="stacked-form">
                            <input type="hidden" name="mode" value=mode/>
                            <input type="hidden" name="plan" value=pid.clone()/>
                            <label>"Changes (JSON) " <textarea name="changes" rows="2" cols="60" data-testid=format!("preview-changes-{pid}")>"{\"markup_percent\": \"10\"}"</textarea></label>
                            <label>"Model " <select name="model" data-testid=format!("preview-model-{pid}")>{model_options}</select></label>
                            <label>"Input tokens " <input type="text" inputmode="numeric" name="input" value="10000"/></label>
                            <label>"Output tokens " <input type="text" inputmode="numeric" name="output" value="2000"/></label>
                            <button type="submit" data-testid=format!("preview-{pid}")>"Preview"</button>
                        </Form>
                        {p.preview.clone().map(|r| match r {
                            Ok(text) => view! { <p class="ok" role="status" data-testid="plan-preview">{text}</p> }.into_any(),
                            Err(e) => view! { <p class="error" role="alert" data-testid="plan-preview">{e}</p> }.into_any(),
                        })}
                        <h3>"Save a new version"</h3>
                        <ActionForm action=edit>
                            <input type="hidden" name="mode" value=mode/>
                            <input type="hidden" name="id" value=eid.clone()/>
                            <label>"Changes (JSON; a new version, effective now) "
                                <textarea name="changes" rows="3" cols="60" data-testid=format!("plan-changes-{eid}")>"{\"markup_percent\": \"0\"}"</textarea>
                            </label>
                            <label>"Reason " <input type="text" name="reason" required data-testid=format!("plan-reason-{eid}")/></label>
                            <button type="submit" data-testid=format!("plan-save-{eid}")>"Save new version"</button>
                        </ActionForm>
                    </section>
                }}).collect_view().into_any(),
            })}
        </Suspense>
        {move || edit.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
    }
}

// ---- the price book ----

#[server(prefix = "/api", endpoint = "admin_price_preview")]
pub async fn admin_price_preview(
    mode: Option<String>,
    model: String,
    input_rate: String,
    output_rate: String,
    cache_write_rate: String,
    cache_read_rate: String,
    batch_discount: String,
    input: Option<String>,
    output: Option<String>,
) -> Result<String, AppError> {
    require_staff(Role::Viewer).await?;
    let core = core();
    let proposed = proposed_model(
        &model,
        &input_rate,
        &output_rate,
        &cache_write_rate,
        &cache_read_rate,
        &batch_discount,
    )?;
    let tokens = sample_tokens(input.as_deref(), output.as_deref())?;
    let mode = catalog_mode(mode.as_deref())?;
    let v = crate::core::admin::preview_model(&core, mode, &proposed, &tokens).await?;
    Ok(format!(
        "A request of {} input and {} output tokens of {model} costs {} at today's price and {} at the new one.",
        tokens.input,
        tokens.output,
        v.before.display_money(),
        v.after.display_money()
    ))
}

#[cfg(feature = "ssr")]
fn proposed_model(
    model: &str,
    input_rate: &str,
    output_rate: &str,
    cache_write_rate: &str,
    cache_read_rate: &str,
    batch_discount: &str,
) -> Result<crate::core::pricing::ModelPrice, AppError> {
    use crate::core::money::Money;
    let rate = |t: &str, what: &str| {
        Money::parse_non_negative(t.trim().trim_start_matches('$')).map_err(|_| {
            AppError::Invalid(format!(
                "The {what} rate is an amount per million tokens, like 3 or 0.30."
            ))
        })
    };
    Ok(crate::core::pricing::ModelPrice::proposed(
        model,
        "",
        crate::core::pricing::Rates {
            input: rate(input_rate, "input")?,
            output: rate(output_rate, "output")?,
            cache_write: rate(cache_write_rate, "cache-write")?,
            cache_read: rate(cache_read_rate, "cache-read")?,
            cache_write_1h: None,
        },
        batch_discount.trim().parse().map_err(|_| {
            AppError::Invalid("The batch discount is a whole percentage, 0-100.".into())
        })?,
    ))
}

#[server(prefix = "/api", endpoint = "admin_edit_price")]
pub async fn admin_edit_price(
    mode: Option<String>,
    model: String,
    input_rate: String,
    output_rate: String,
    cache_write_rate: String,
    cache_read_rate: String,
    batch_discount: String,
    reason: String,
) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    let proposed = proposed_model(
        &model,
        &input_rate,
        &output_rate,
        &cache_write_rate,
        &cache_read_rate,
        &batch_discount,
    )?;
    let mode = catalog_mode(mode.as_deref())?;
    crate::core::admin::edit_model(&core(), &staff, mode, &proposed, &reason).await?;
    Ok(())
}

/// One version of the price book, with who made it and why (from its audit entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceVersionLine {
    pub since: String,
    pub model: String,
    pub version: i64,
    pub rates: String,
    pub who: String,
    pub why: String,
}

/// Every version of a mode's price book, newest first.
#[server(prefix = "/api", endpoint = "admin_price_history")]
pub async fn admin_price_history(mode: Option<String>) -> Result<Vec<PriceVersionLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let mode = catalog_mode(mode.as_deref())?;
    let core = core();
    let rows = crate::core::plans::price_history(&core.store, mode, None).await?;
    Ok(rows
        .into_iter()
        .map(|v| {
            let m = v.price;
            PriceVersionLine {
                who: v.actor.unwrap_or_else(|| "(seeded)".into()),
                why: v.reason.unwrap_or_default(),
                since: m.since.to_rfc3339(),
                model: m.id,
                version: m.version,
                rates: format!(
                    "input {} · output {} · cache write {} · cache read {} · batch −{}%",
                    plain(m.rates.input),
                    plain(m.rates.output),
                    plain(m.rates.cache_write),
                    plain(m.rates.cache_read),
                    m.batch_discount_percent
                ),
            }
        })
        .collect())
}

#[component]
pub fn AdminPrices() -> impl IntoView {
    let query = use_query_map();
    let save = ServerAction::<AdminEditPrice>::new();
    let models = Resource::new(
        move || (save.version().get(), query.read().get("mode")),
        |(_, mode)| admin_models(mode),
    );
    let history = Resource::new(
        move || (save.version().get(), query.read().get("mode")),
        |(_, mode)| admin_price_history(mode),
    );
    let preview = Resource::new(
        move || {
            let q = query.read();
            q.get("model").map(|m| {
                (
                    q.get("mode"),
                    m,
                    q.get("input_rate").unwrap_or_default(),
                    q.get("output_rate").unwrap_or_default(),
                    q.get("cache_write_rate").unwrap_or_default(),
                    q.get("cache_read_rate").unwrap_or_default(),
                    q.get("batch_discount").unwrap_or_default(),
                    q.get("input"),
                    q.get("output"),
                )
            })
        },
        |args| async move {
            match args {
                None => None,
                Some((mode, m, i, o, cw, cr, b, ti, to)) => {
                    Some(admin_price_preview(mode, m, i, o, cw, cr, b, ti, to).await)
                }
            }
        },
    );
    let q = move |k: &str| query.read().get(k).unwrap_or_default();
    let mode = move || query.read().get("mode").unwrap_or_else(|| "live".into());
    view! {
        <AdminNav/>
        <CatalogModes page="/admin/prices"/>
        <section class="card">
            <h1>"Price book " <small class="muted">{move || format!("{} mode", mode())}</small></h1>
            <p>"List prices per million tokens. Each mode has its own price book. A new price is a new version, applied to usage recorded from now on; recorded usage keeps the version it was charged."</p>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || models.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! {
                        <div class="table-wrap"><table data-testid="price-book">
                            <thead><tr><th>"Model"</th><th>"Provider"</th><th class="num">"Input"</th><th class="num">"Output"</th><th class="num">"Cache write"</th><th class="num">"Cache read"</th><th class="num">"Batch"</th><th></th></tr></thead>
                            <tbody>{rows.into_iter().map(|m| {
                                let edit = format!(
                                    "/admin/prices?mode={}&model={}&input_rate={}&output_rate={}&cache_write_rate={}&cache_read_rate={}&batch_discount={}",
                                    mode(), m.id, m.input, m.output, m.cache_write, m.cache_read, m.batch_discount
                                );
                                view! {
                                    <tr>
                                        <td><code>{m.id.clone()}</code></td><td>{m.provider}</td>
                                        <td class="num">{m.input}</td><td class="num">{m.output}</td>
                                        <td class="num">{m.cache_write}</td><td class="num">{m.cache_read}</td>
                                        <td class="num">{format!("{}%", m.batch_discount)}</td>
                                        <td><a href=edit data-testid=format!("edit-price-{}", m.id)>"Edit"</a></td>
                                    </tr>
                                }
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                })}
            </Suspense>
        </section>
        <Show when=move || query.read().get("model").is_some()>
            <section class="card">
                <h2>"Change " <code>{move || q("model")}</code></h2>
                <Form method="GET" action="/admin/prices" attr:class="stacked-form">
                    <input type="hidden" name="mode" value=mode/>
                    <input type="hidden" name="model" value=move || q("model")/>
                    <label>"Input " <input type="text" inputmode="decimal" name="input_rate" value=move || q("input_rate") data-testid="rate-input"/></label>
                    <label>"Output " <input type="text" inputmode="decimal" name="output_rate" value=move || q("output_rate") data-testid="rate-output"/></label>
                    <label>"Cache write " <input type="text" inputmode="decimal" name="cache_write_rate" value=move || q("cache_write_rate")/></label>
                    <label>"Cache read " <input type="text" inputmode="decimal" name="cache_read_rate" value=move || q("cache_read_rate")/></label>
                    <label>"Batch discount (%) " <input type="text" inputmode="numeric" name="batch_discount" value=move || q("batch_discount")/></label>
                    <label>"Sample input tokens " <input type="text" inputmode="numeric" name="input" value=move || { let v = q("input"); if v.is_empty() { "10000".to_string() } else { v } }/></label>
                    <label>"Sample output tokens " <input type="text" inputmode="numeric" name="output" value=move || { let v = q("output"); if v.is_empty() { "2000".to_string() } else { v } }/></label>
                    <button type="submit" data-testid="price-preview">"Preview"</button>
                </Form>
                <Suspense fallback=|| ()>
                    {move || preview.get().flatten().map(|r| match r {
                        Ok(text) => view! { <p class="ok" role="status" data-testid="price-preview-text">{text}</p> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert" data-testid="price-preview-text">{e.to_string()}</p> }.into_any(),
                    })}
                </Suspense>
                <ActionForm action=save attr:class="stacked-form">
                    <input type="hidden" name="mode" value=mode/>
                    <input type="hidden" name="model" value=move || q("model")/>
                    <input type="hidden" name="input_rate" value=move || q("input_rate")/>
                    <input type="hidden" name="output_rate" value=move || q("output_rate")/>
                    <input type="hidden" name="cache_write_rate" value=move || q("cache_write_rate")/>
                    <input type="hidden" name="cache_read_rate" value=move || q("cache_read_rate")/>
                    <input type="hidden" name="batch_discount" value=move || q("batch_discount")/>
                    <label>"Reason " <input type="text" name="reason" required data-testid="price-reason"/></label>
                    <button type="submit" data-testid="price-save">"Save this price, effective now"</button>
                </ActionForm>
                <Show when=move || matches!(save.value().get(), Some(Ok(())))>
                    <p class="ok" role="status">"Saved."</p>
                </Show>
                {move || save.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            </section>
        </Show>
        <section class="card">
            <h2>"History"</h2>
            <Suspense fallback=|| ()>
                {move || history.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! {
                        <div class="table-wrap"><table data-testid="price-history">
                            <thead><tr><th>"Since"</th><th>"Model"</th><th class="num">"Version"</th><th>"Rates"</th><th>"Who"</th><th>"Reason"</th></tr></thead>
                            <tbody>{rows.into_iter().map(|v| view! {
                                <tr><td>{v.since}</td><td><code>{v.model}</code></td><td class="num">{format!("v{}", v.version)}</td><td>{v.rates}</td><td>{v.who}</td><td>{v.why}</td></tr>
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

// ---- API keys ----

/// The session key under which a new key's secret waits to be shown, once.
#[cfg(feature = "ssr")]
const SESSION_NEW_SECRET: &str = "new_api_key_secret";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLine {
    pub id: String,
    pub mode: String,
    pub scope: String,
    pub name: String,
    pub created: String,
    pub revoked: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysView {
    pub keys: Vec<KeyLine>,
    /// The secret of the key just created: shown this once, then gone from the session.
    pub new_secret: Option<String>,
}

#[server(prefix = "/api", endpoint = "admin_keys")]
pub async fn admin_keys() -> Result<KeysView, AppError> {
    require_staff(Role::Viewer).await?;
    let session: tower_sessions::Session = leptos_axum::extract()
        .await
        .map_err(|_| AppError::Forbidden)?;
    let new_secret = session
        .remove::<String>(SESSION_NEW_SECRET)
        .await
        .map_err(|_| AppError::Unavailable)?;
    let keys = core().store.api_keys().await?;
    Ok(KeysView {
        keys: keys
            .into_iter()
            .map(|k| KeyLine {
                id: k.id,
                mode: k.mode,
                scope: k.scope,
                name: k.name,
                created: k.created_at.to_rfc3339(),
                revoked: k.revoked_at.map(|t| t.to_rfc3339()),
            })
            .collect(),
        new_secret,
    })
}

#[server(prefix = "/api", endpoint = "admin_create_key")]
pub async fn admin_create_key(
    mode: String,
    scope: String,
    name: String,
    reason: String,
) -> Result<(), AppError> {
    use crate::core::keys::Scope;
    use crate::core::ledger::Mode;
    let staff = require_staff(Role::Admin).await?;
    let mode =
        Mode::parse(&mode).ok_or_else(|| AppError::Invalid("Mode is test or live.".into()))?;
    let scope = Scope::parse(&scope)
        .ok_or_else(|| AppError::Invalid("Scope is read, usage or admin.".into()))?;
    let (_, secret) =
        crate::core::admin::create_key(&core(), &staff, mode, scope, &name, &reason).await?;
    // Kept in the session (server side) until the keys page shows it once.
    let session: tower_sessions::Session = leptos_axum::extract()
        .await
        .map_err(|_| AppError::Forbidden)?;
    session
        .insert(SESSION_NEW_SECRET, secret)
        .await
        .map_err(|_| AppError::Unavailable)?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "admin_revoke_key")]
pub async fn admin_revoke_key(id: String, reason: String) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    crate::core::admin::revoke_key(&core(), &staff, &id, &reason).await?;
    Ok(())
}

#[component]
pub fn AdminKeys() -> impl IntoView {
    let create = ServerAction::<AdminCreateKey>::new();
    let revoke = ServerAction::<AdminRevokeKey>::new();
    let data = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| admin_keys(),
    );
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"API keys"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(v) => view! {
                        {v.new_secret.map(|s| view! {
                            <div class="banner-low" role="status">
                                <p>"The new key's secret, shown this once. Copy it now; Tally keeps only its hash."</p>
                                <code data-testid="new-secret">{s}</code>
                            </div>
                        })}
                        <div class="table-wrap"><table data-testid="keys">
                            <thead><tr><th>"Key"</th><th>"Mode"</th><th>"Scope"</th><th>"Name"</th><th>"Created"</th><th>"State"</th><th></th></tr></thead>
                            <tbody>{v.keys.into_iter().map(|k| {
                                let live = k.revoked.is_none();
                                view! {
                                    <tr>
                                        <td><code>{k.id.clone()}</code></td><td>{k.mode}</td><td>{k.scope}</td><td>{k.name}</td><td>{k.created}</td>
                                        <td>{k.revoked.map(|t| format!("revoked {t}")).unwrap_or_else(|| "active".into())}</td>
                                        <td>{live.then(|| view! {
                                            <ActionForm action=revoke attr:class="inline-form">
                                                <input type="hidden" name="id" value=k.id.clone()/>
                                                <input type="text" name="reason" required placeholder="reason" aria-label="Reason"/>
                                                <button type="submit" data-testid=format!("revoke-{}", k.id)>"Revoke"</button>
                                            </ActionForm>
                                        })}</td>
                                    </tr>
                                }
                            }).collect_view()}</tbody>
                        </table></div>
                    }.into_any(),
                })}
            </Suspense>
            {move || revoke.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
        </section>
        <section class="card">
            <h2>"Create a key"</h2>
            <ActionForm action=create attr:class="stacked-form">
                <label>"Mode " <select name="mode"><option value="test">"test"</option><option value="live">"live"</option></select></label>
                <label>"Scope " <select name="scope"><option value="usage">"usage"</option><option value="read">"read"</option><option value="admin">"admin"</option></select></label>
                <label>"Name " <input type="text" name="name" required data-testid="key-name"/></label>
                <label>"Reason " <input type="text" name="reason" required data-testid="key-reason"/></label>
                <button type="submit" data-testid="key-create">"Create key"</button>
            </ActionForm>
            {move || create.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
        </section>
    }
}

// ---- top-ups, webhooks and reconciliation ----

#[server(prefix = "/api", endpoint = "admin_topups")]
pub async fn admin_topups(status: Option<String>) -> Result<Vec<TopupLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let status = status.filter(|s| !s.is_empty());
    let mut rows = Vec::new();
    for mode in ["live", "test"] {
        rows.extend(core().store.topups(mode, status.as_deref(), 200).await?);
    }
    rows.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    rows.truncate(200);
    Ok(rows.iter().map(topup_line).collect())
}

#[component]
pub fn AdminTopups() -> impl IntoView {
    let query = use_query_map();
    let data = Resource::new(move || query.read().get("status"), admin_topups);
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"Top-ups"</h1>
            <Form method="GET" action="/admin/topups" attr:class="filters">
                <label>"Status "
                    <select name="status">
                        <option value="">"all"</option>
                        {["pending", "processing", "paid", "failed", "expired"].into_iter().map(|s| view! {
                            <option value=s selected=move || query.read().get("status").as_deref() == Some(s)>{s}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit">"Filter"</button>
            </Form>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! { <TopupTable rows=rows with_customer=true/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookLine {
    pub id: String,
    pub kind: String,
    pub received: String,
    pub attempts: i64,
    pub status: String,
    pub error: String,
}

#[server(prefix = "/api", endpoint = "admin_webhooks")]
pub async fn admin_webhooks(status: Option<String>) -> Result<Vec<WebhookLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let rows = core()
        .store
        .webhook_events(status.as_deref().filter(|s| !s.is_empty()), 200)
        .await?;
    Ok(rows
        .into_iter()
        .map(|e| WebhookLine {
            id: e.id,
            kind: e.event_type,
            received: e.received_at.to_rfc3339(),
            attempts: e.attempts,
            status: e.status,
            error: e.last_error.unwrap_or_default(),
        })
        .collect())
}

#[server(prefix = "/api", endpoint = "admin_replay")]
pub async fn admin_replay(id: String, reason: String) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    crate::core::admin::replay_webhook(&core(), &staff, &id, &reason).await?;
    Ok(())
}

#[component]
pub fn AdminWebhooks() -> impl IntoView {
    let query = use_query_map();
    let replay = ServerAction::<AdminReplay>::new();
    let data = Resource::new(
        move || (query.read().get("status"), replay.version().get()),
        |(s, _)| admin_webhooks(s),
    );
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"Webhook inbox"</h1>
            <Form method="GET" action="/admin/webhooks" attr:class="filters">
                <label>"Status "
                    <select name="status">
                        <option value="">"all"</option>
                        {["pending", "processing", "processed", "failed"].into_iter().map(|s| view! {
                            <option value=s selected=move || query.read().get("status").as_deref() == Some(s)>{s}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit">"Filter"</button>
            </Form>
            {move || replay.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! {
                        <div class="table-wrap"><table data-testid="webhooks">
                            <thead><tr><th>"Event"</th><th>"Type"</th><th>"Received"</th><th class="num">"Attempts"</th><th>"Status"</th><th>"Last error"</th><th></th></tr></thead>
                            <tbody>
                                {rows.into_iter().map(|w| view! {
                                    <tr>
                                        <td><code>{w.id.clone()}</code></td><td>{w.kind}</td><td>{w.received}</td>
                                        <td class="num">{w.attempts}</td><td>{w.status}</td><td>{w.error}</td>
                                        <td>
                                            <ActionForm action=replay attr:class="inline-form">
                                                <input type="hidden" name="id" value=w.id.clone()/>
                                                <input type="text" name="reason" required placeholder="reason" aria-label="Reason"/>
                                                <button type="submit" data-testid="replay">"Replay"</button>
                                            </ActionForm>
                                        </td>
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

#[server(prefix = "/api", endpoint = "admin_reconciliations")]
pub async fn admin_reconciliations() -> Result<Vec<(String, String)>, AppError> {
    require_staff(Role::Viewer).await?;
    let rows = core().store.reconciliations(20).await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.started_at.to_rfc3339(), r.report))
        .collect())
}

#[server(prefix = "/api", endpoint = "admin_reconcile_now")]
pub async fn admin_reconcile_now() -> Result<(), AppError> {
    require_staff(Role::Admin).await?;
    crate::core::payments::reconcile::run(&core()).await?;
    Ok(())
}

#[component]
pub fn AdminReconciliation() -> impl IntoView {
    let run = ServerAction::<AdminReconcileNow>::new();
    let data = Resource::new(move || run.version().get(), |_| admin_reconciliations());
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"Reconciliation"</h1>
            <ActionForm action=run><button type="submit" data-testid="reconcile-now">"Run reconciliation now"</button></ActionForm>
            {move || run.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => rows.into_iter().map(|(when, report)| view! {
                        <h3>{when}</h3><pre class="report">{report}</pre>
                    }).collect_view().into_any(),
                })}
            </Suspense>
        </section>
    }
}

// ---- what-if re-rating ----

/// A re-rating report as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepriceView {
    pub summary: String,
    pub charged: String,
    pub would_cost: String,
    pub difference: String,
    /// (model, events, charged, would cost)
    pub by_model: Vec<(String, u64, String, String)>,
    pub unpriced: u64,
}

/// Re-rates usage (read-only) when the form names a plan and a period.
#[server(prefix = "/api", endpoint = "admin_reprice")]
pub async fn admin_reprice(
    mode: Option<String>,
    plan: Option<String>,
    version: Option<String>,
    customer: Option<String>,
    from: Option<String>,
    to: Option<String>,
) -> Result<Option<RepriceView>, AppError> {
    use crate::core::clock::Timestamp;
    require_staff(Role::Viewer).await?;
    let nonempty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    let (Some(plan), Some(from), Some(to)) = (nonempty(plan), nonempty(from), nonempty(to)) else {
        return Ok(None);
    };
    let day = |text: &str, what: &str| {
        Timestamp::parse_rfc3339(&format!("{text}T00:00:00Z"))
            .ok_or_else(|| AppError::Invalid(format!("The {what} date is like 2026-11-01.")))
    };
    let version = match nonempty(version) {
        None => None,
        Some(v) => Some(
            v.trim_start_matches('v')
                .parse::<i64>()
                .map_err(|_| AppError::Invalid("The version is a number, like 2.".into()))?,
        ),
    };
    let req = crate::core::reprice::RepriceRequest {
        mode: catalog_mode(mode.as_deref())?,
        customer: nonempty(customer),
        plan,
        plan_version: version,
        prices_at: None,
        from: day(&from, "start")?,
        to: day(&to, "end")?,
    };
    let r = crate::core::reprice::reprice(&core(), &req, |_, _| {}).await?;
    Ok(Some(RepriceView {
        summary: format!(
            "{} requests of {} customers from {} to {} under plan {} v{}",
            r.events, r.customers, from, to, r.plan, r.plan_version
        ),
        charged: r.charged.display_money(),
        would_cost: r.would_cost.display_money(),
        difference: r.difference().display_money(),
        by_model: r
            .by_model
            .iter()
            .map(|(m, l)| {
                (
                    m.clone(),
                    l.events,
                    l.charged.display_money(),
                    l.would_cost.display_money(),
                )
            })
            .collect(),
        unpriced: r.unpriced,
    }))
}

#[component]
pub fn AdminReprice() -> impl IntoView {
    let query = use_query_map();
    let report = Resource::new(
        move || {
            let q = query.read();
            (
                q.get("mode"),
                q.get("plan"),
                q.get("version"),
                q.get("customer"),
                q.get("from"),
                q.get("to"),
            )
        },
        |(mode, plan, version, customer, from, to)| {
            admin_reprice(mode, plan, version, customer, from, to)
        },
    );
    let q = move |k: &str| query.read().get(k).unwrap_or_default();
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"What if"</h1>
            <p>"What usage would have cost under another plan or plan version, against what was charged. Nothing is changed."</p>
            <Form method="GET" action="/admin/reprice" attr:class="stacked-form">
                <label>"Mode " <select name="mode">
                    <option value="live" selected=move || q("mode") != "test">"live"</option>
                    <option value="test" selected=move || q("mode") == "test">"test"</option>
                </select></label>
                <label>"Plan " <input type="text" name="plan" required value=move || q("plan") data-testid="reprice-plan"/></label>
                <label>"Version (blank: in force) " <input type="text" name="version" value=move || q("version")/></label>
                <label>"Customer (blank: everyone) " <input type="text" name="customer" value=move || q("customer") data-testid="reprice-customer"/></label>
                <label>"From " <input type="date" name="from" required value=move || q("from") data-testid="reprice-from"/></label>
                <label>"To (exclusive) " <input type="date" name="to" required value=move || q("to") data-testid="reprice-to"/></label>
                <button type="submit" data-testid="reprice-run">"Re-rate"</button>
            </Form>
        </section>
        <Suspense fallback=|| view! { <p>"Re-rating…"</p> }>
            {move || report.get().map(|r| match r {
                Err(e) => failure(e),
                Ok(None) => ().into_any(),
                Ok(Some(r)) => view! {
                    <section class="card" data-testid="reprice-report">
                        <h2>{r.summary.clone()}</h2>
                        <dl class="stats">
                            <div><dt>"Charged"</dt><dd data-testid="reprice-charged">{r.charged.clone()}</dd></div>
                            <div><dt>"Would have cost"</dt><dd data-testid="reprice-would">{r.would_cost.clone()}</dd></div>
                            <div><dt>"Difference"</dt><dd>{r.difference.clone()}</dd></div>
                        </dl>
                        <div class="table-wrap"><table>
                            <thead><tr><th>"Model"</th><th class="num">"Requests"</th><th class="num">"Charged"</th><th class="num">"Would cost"</th></tr></thead>
                            <tbody>{r.by_model.iter().map(|(m, n, c, w)| view! {
                                <tr><td><code>{m.clone()}</code></td><td class="num">{*n}</td><td class="num">{c.clone()}</td><td class="num">{w.clone()}</td></tr>
                            }).collect_view()}</tbody>
                        </table></div>
                        {(r.unpriced > 0).then(|| view! { <p class="muted">{format!("{} requests left out: their model has no price.", r.unpriced)}</p> })}
                    </section>
                }.into_any(),
            })}
        </Suspense>
    }
}
