//! The console's subscriptions: every subscription of both modes, filtered by status, and,
//! for test-mode subscriptions with simulated payments, buttons that end the period now and
//! renew it paid or failed (to try renewals and past-due handling without waiting a month).

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, require_staff};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

/// The statuses the filter offers, as stored.
const STATUSES: [&str; 4] = ["incomplete", "active", "past_due", "canceled"];

/// A subscription as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionLine {
    pub id: String,
    pub customer_id: String,
    pub mode: String,
    pub plan: String,
    /// The plan it moves to when the period ends (a downgrade).
    pub pending_plan: String,
    pub status: String,
    pub gateway: String,
    pub period_end: String,
    pub cancel_at_period_end: bool,
    pub grace_ends_at: String,
    /// Test mode with simulated payments, active or past due: the period can be ended now.
    pub advanceable: bool,
}

#[cfg(feature = "ssr")]
fn subscription_line(s: &crate::core::store::SubscriptionRow) -> SubscriptionLine {
    use crate::core::ledger::Mode;
    use crate::core::vocab::SubscriptionStatus;
    let time =
        |t: Option<crate::core::clock::Timestamp>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    SubscriptionLine {
        id: s.id.clone(),
        customer_id: s.customer_id.clone(),
        mode: s.mode.to_string(),
        plan: s.plan_id.clone(),
        pending_plan: s.pending_plan_id.clone().unwrap_or_default(),
        status: s.status.to_string(),
        gateway: s.gateway.to_string(),
        period_end: time(s.current_period_end),
        cancel_at_period_end: s.cancel_at_period_end,
        grace_ends_at: time(s.grace_ends_at),
        advanceable: s.mode == Mode::Test
            && s.gateway == crate::core::vocab::GatewayKind::Simulated
            && matches!(
                s.status,
                SubscriptionStatus::Active | SubscriptionStatus::PastDue
            ),
    }
}

#[server(prefix = "/api", endpoint = "admin_subscriptions")]
pub async fn admin_subscriptions(
    status: Option<String>,
) -> Result<Vec<SubscriptionLine>, AppError> {
    use crate::core::vocab::SubscriptionStatus;
    require_staff(Role::Viewer).await?;
    let status = match status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(SubscriptionStatus::parse(s).ok_or_else(|| {
            AppError::Invalid(format!("The status is one of {}.", STATUSES.join(", ")))
        })?),
    };
    let rows = crate::core::console::subscriptions(&core(), status).await?;
    Ok(rows.iter().map(subscription_line).collect())
}

/// Ends a test-mode subscription's period now and renews it, the renewal paid or (`fail`)
/// failed. The core refuses live mode and real gateways.
#[server(prefix = "/api", endpoint = "admin_advance_subscription")]
pub async fn admin_advance_subscription(id: String, fail: bool) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    crate::core::admin::advance_subscription(&core(), &staff, &id, fail).await?;
    Ok(())
}

#[component]
pub fn AdminSubscriptions() -> impl IntoView {
    let query = use_query_map();
    let advance = ServerAction::<AdminAdvanceSubscription>::new();
    let data = Resource::new(
        move || (query.read().get("status"), advance.version().get()),
        |(s, _)| admin_subscriptions(s),
    );
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"Subscriptions"</h1>
            <Form method="GET" action="/admin/subscriptions" attr:class="filters">
                <label>"Status "
                    <select name="status" data-testid="subscription-status-filter">
                        <option value="">"all"</option>
                        {STATUSES.into_iter().map(|s| view! {
                            <option value=s selected=move || query.read().get("status").as_deref() == Some(s)>{s}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit">"Filter"</button>
            </Form>
            {move || advance.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(rows) => view! { <SubscriptionTable rows=rows advance=advance/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn SubscriptionTable(
    rows: Vec<SubscriptionLine>,
    advance: ServerAction<AdminAdvanceSubscription>,
) -> impl IntoView {
    view! {
        <div class="table-wrap" tabindex="0"><table data-testid="subscriptions">
            <thead><tr>
                <th>"Customer"</th><th>"Mode"</th><th>"Plan"</th><th>"Status"</th><th>"Period ends"</th>
                <th>"Cancels at period end"</th><th>"Grace ends"</th><th>"Gateway"</th><th></th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|s| {
                    let plan = if s.pending_plan.is_empty() {
                        s.plan.clone()
                    } else {
                        format!("{} → {}", s.plan, s.pending_plan)
                    };
                    let buttons = s.advanceable.then(|| view! { <AdvanceButtons id=s.id.clone() advance=advance/> });
                    view! {
                        <tr>
                            <td><a href=format!("/admin/customers/{}", s.customer_id)>{s.customer_id.clone()}</a></td>
                            <td>{s.mode}</td><td>{plan}</td><td>{s.status}</td><td>{s.period_end}</td>
                            <td>{if s.cancel_at_period_end { "yes" } else { "no" }}</td>
                            <td>{s.grace_ends_at}</td><td>{s.gateway}</td>
                            <td>{buttons}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table></div>
    }
}

/// "Advance (paid)" and "Advance (failed)" for one subscription.
#[component]
fn AdvanceButtons(id: String, advance: ServerAction<AdminAdvanceSubscription>) -> impl IntoView {
    [false, true]
        .into_iter()
        .map(|fail| {
            let id = id.clone();
            let outcome = if fail { "failed" } else { "paid" };
            view! {
                <ActionForm action=advance attr:class="inline-form">
                    <input type="hidden" name="id" value=id/>
                    <input type="hidden" name="fail" value=fail.to_string()/>
                    <button type="submit" data-testid=format!("advance-{outcome}")>{format!("Advance ({outcome})")}</button>
                </ActionForm>
            }
        })
        .collect_view()
}
