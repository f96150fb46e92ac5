//! The console's overview: per mode, credits sold and consumed, the outstanding
//! liability, negative balances, failed webhooks and the month's top customers.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, require_staff};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

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
    let modes = crate::core::console::overview(&core()).await?;
    Ok(modes
        .into_iter()
        .map(|m| ModeFigures {
            mode: m.mode.as_str().into(),
            sold: m.figures.credits_sold.display_money(),
            consumed: m.figures.credits_consumed.display_money(),
            liability: m.figures.liability.display_money(),
            negative: m.figures.negative_balances,
            failed_webhooks: m.figures.failed_webhooks,
            top: m
                .top
                .into_iter()
                .map(|(c, spend)| {
                    (
                        c.id.clone(),
                        c.name.or(c.email).unwrap_or(c.external_id),
                        spend.display_money(),
                    )
                })
                .collect(),
        })
        .collect())
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
                            <h3>"Export for accounting"</h3>
                            // A plain GET form: the file downloads with or without JavaScript.
                            <form method="get" action="/admin/usage.csv" class="inline-form" data-testid=format!("export-{}", m.mode)>
                                <input type="hidden" name="mode" value=m.mode.clone()/>
                                <label>"From " <input type="date" name="from"/></label>
                                <label>"To " <input type="date" name="to"/></label>
                                <button type="submit">"Usage as CSV"</button>
                                <button type="submit" formaction="/admin/ledger.csv">"Ledger as CSV"</button>
                            </form>
                        </section>
                    }).collect_view()}
                }.into_any(),
            })}
        </Suspense>
    }
}
