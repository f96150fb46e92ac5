//! The console's "What if": recorded usage re-rated under another plan or plan version,
//! against what was charged (read-only).

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{catalog_mode, core, require_staff};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

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
                        <div class="table-wrap" tabindex="0"><table>
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
