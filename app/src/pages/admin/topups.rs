//! The console's top-ups: every top-up of both modes, filtered by status, and the table the
//! customer page shows a customer's in.

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
pub(crate) fn topup_line(t: &crate::core::store::TopupRow) -> TopupLine {
    TopupLine {
        id: t.id.clone(),
        customer_id: t.customer_id.clone(),
        mode: t.mode.to_string(),
        created: t.created_at.to_rfc3339(),
        amount: t.amount.display_money(),
        status: t.status.to_string(),
        source: t.source.to_string(),
        gateway: t.gateway.to_string(),
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
pub(crate) fn TopupTable(rows: Vec<TopupLine>, with_customer: bool) -> impl IntoView {
    view! {
        <div class="table-wrap" tabindex="0"><table data-testid="topups">
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
                            <td>{t.mode}</td>
                        })}
                        <td class="num">{t.amount}</td><td>{t.status}</td><td>{t.source}</td><td>{t.gateway}</td>
                        <td class="num">{t.refunded}</td><td>{t.error}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table></div>
    }
}

#[server(prefix = "/api", endpoint = "admin_topups")]
pub async fn admin_topups(status: Option<String>) -> Result<Vec<TopupLine>, AppError> {
    require_staff(Role::Viewer).await?;
    let status = status.filter(|s| !s.is_empty());
    let rows = crate::core::console::topups(&core(), status.as_deref()).await?;
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
