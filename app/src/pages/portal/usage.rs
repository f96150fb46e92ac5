//! The portal's usage: every request, filtered by dates and model, page by page (the CSV
//! export takes the same filters), and one request's price explained in plain words.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use super::{failure_view, LocalTime, PortalNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, session_customer};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub model: Option<String>,
    pub after: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub id: String,
    pub time: String,
    pub model: String,
    pub input: String,
    pub output: String,
    pub cache_write: String,
    pub cache_read: String,
    pub outcome: String,
    pub cost: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsagePage {
    pub rows: Vec<UsageRow>,
    pub next_after: Option<String>,
    pub models: Vec<String>,
}

pub const USAGE_PAGE_SIZE: i64 = 50;

/// A filter as the store takes it; dates are `YYYY-MM-DD` (UTC), `to` inclusive.
#[cfg(feature = "ssr")]
pub fn usage_filter(
    customer: &crate::core::store::CustomerRow,
    q: &UsageQuery,
) -> Result<crate::core::store::UsageFilter, AppError> {
    use crate::core::clock::Timestamp;
    let day = |s: &Option<String>, end: bool| -> Result<Option<Timestamp>, AppError> {
        match s.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(d) => {
                let t = Timestamp::parse_rfc3339(&format!("{d}T00:00:00Z")).ok_or_else(|| {
                    AppError::Invalid(format!("{d} is not a date like 2026-11-24"))
                })?;
                Ok(Some(if end { t.plus_seconds(86_400) } else { t }))
            }
        }
    };
    Ok(crate::core::store::UsageFilter {
        mode: customer.mode.to_string(),
        customer_id: Some(customer.id.clone()),
        model: q.model.clone().filter(|m| !m.is_empty()),
        from: day(&q.from, false)?,
        to: day(&q.to, true)?,
        starting_after: q.after.clone().filter(|a| !a.is_empty()),
        ending_before: None,
        conversation: None,
        limit: USAGE_PAGE_SIZE + 1,
    })
}

#[server(prefix = "/api", endpoint = "portal_usage")]
pub async fn portal_usage(
    from: Option<String>,
    to: Option<String>,
    model: Option<String>,
    after: Option<String>,
) -> Result<UsagePage, AppError> {
    use crate::core::portal::group_digits;
    let query = UsageQuery {
        from,
        to,
        model,
        after,
    };
    let core = core();
    let customer = crate::core::portal::customer(&core, &session_customer().await?).await?;
    let filter = usage_filter(&customer, &query)?;
    let crate::core::portal::Usage { mut events, models } =
        crate::core::portal::usage(&core, &customer, &filter).await?;
    let more = events.len() as i64 > USAGE_PAGE_SIZE;
    events.truncate(USAGE_PAGE_SIZE as usize);
    let models = models.into_iter().map(|m| m.id).collect();
    Ok(UsagePage {
        next_after: if more {
            events.last().map(|e| e.id.clone())
        } else {
            None
        },
        rows: events
            .iter()
            .map(|e| UsageRow {
                id: e.id.clone(),
                time: e.occurred_at.to_rfc3339(),
                model: e.model.clone(),
                input: group_digits(e.input_tokens),
                output: group_digits(e.output_tokens),
                cache_write: group_digits(e.cache_creation_input_tokens),
                cache_read: group_digits(e.cache_read_input_tokens),
                outcome: e.outcome.as_str().to_string(),
                cost: e.cost.display_money(),
            })
            .collect(),
        models,
    })
}

fn query_string(q: &UsageQuery, after: Option<&str>) -> String {
    let mut parts = Vec::new();
    for (k, v) in [("from", &q.from), ("to", &q.to), ("model", &q.model)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", v.replace(['&', '=', '#', ' '], "")));
        }
    }
    if let Some(a) = after {
        parts.push(format!("after={a}"));
    }
    parts.join("&")
}

#[component]
pub fn Usage() -> impl IntoView {
    let query = use_query_map();
    let current = move || {
        let q = query.read();
        UsageQuery {
            from: q.get("from"),
            to: q.get("to"),
            model: q.get("model"),
            after: q.get("after"),
        }
    };
    let data = Resource::new(current, |q| portal_usage(q.from, q.to, q.model, q.after));
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure_view(e),
                Ok(page) => {
                    let q = current();
                    let csv = format!("/portal/usage.csv?{}", query_string(&q, None));
                    let next = page.next_after.as_deref().map(|a| format!("/portal/usage?{}", query_string(&q, Some(a))));
                    let selected = q.model.clone().unwrap_or_default();
                    view! {
                        <PortalNav/>
                        <section class="card">
                            <h1>"Usage"</h1>
                            <Form method="GET" action="/portal/usage" attr:class="filters">
                                <label>"From" <input type="date" name="from" value=q.from.clone().unwrap_or_default()/></label>
                                <label>"To" <input type="date" name="to" value=q.to.clone().unwrap_or_default()/></label>
                                <label>"Model"
                                    <select name="model" data-testid="model-filter">
                                        <option value="">"All models"</option>
                                        {page.models.iter().map(|m| view! {
                                            <option value=m.clone() selected=*m == selected>{m.clone()}</option>
                                        }).collect_view()}
                                    </select>
                                </label>
                                <button type="submit" data-testid="apply-filters">"Apply"</button>
                                <a href=csv download="usage.csv" data-testid="csv">"Export CSV"</a>
                            </Form>
                            <div class="table-wrap" tabindex="0">
                                <table class="usage" data-testid="usage-table">
                                    <thead><tr>
                                        <th scope="col">"Time"</th><th scope="col">"Model"</th>
                                        <th scope="col" class="num">"Input"</th><th scope="col" class="num">"Output"</th>
                                        <th scope="col" class="num">"Cache write"</th><th scope="col" class="num">"Cache read"</th>
                                        <th scope="col">"Outcome"</th><th scope="col" class="num">"Cost"</th>
                                    </tr></thead>
                                    <tbody>
                                        {page.rows.iter().map(|r| view! {
                                            <tr>
                                                <td><a href=format!("/portal/usage/{}", r.id)><LocalTime iso=r.time.clone()/></a></td>
                                                <td>{r.model.clone()}</td>
                                                <td class="num">{r.input.clone()}</td><td class="num">{r.output.clone()}</td>
                                                <td class="num">{r.cache_write.clone()}</td><td class="num">{r.cache_read.clone()}</td>
                                                <td>{r.outcome.clone()}</td><td class="num">{r.cost.clone()}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                            {page.rows.is_empty().then(|| view! { <p class="muted">"No requests in this range."</p> })}
                            {next.map(|href| view! { <p><a href=href data-testid="older">"Older requests →"</a></p> })}
                        </section>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDetailView {
    pub id: String,
    pub request_id: String,
    pub time: String,
    pub model: String,
    pub outcome: String,
    pub plan_version: String,
    pub lines: Vec<String>,
}

#[server(prefix = "/api", endpoint = "portal_usage_detail")]
pub async fn portal_usage_detail(id: String) -> Result<UsageDetailView, AppError> {
    let customer = session_customer().await?;
    let crate::core::portal::UsageDetail {
        event: e,
        plan_version: version,
        explanation,
    } = crate::core::portal::usage_detail(&core(), &customer, &id).await?;
    Ok(UsageDetailView {
        lines: explanation,
        id: e.id,
        request_id: e.request_id,
        time: e.occurred_at.to_rfc3339(),
        model: e.model,
        outcome: e.outcome.as_str().to_string(),
        plan_version: format!("{} v{}", version.plan_id, version.version),
    })
}

#[component]
pub fn UsageDetail() -> impl IntoView {
    let params = use_params_map();
    let data = Resource::new(
        move || params.read().get("id").unwrap_or_default(),
        portal_usage_detail,
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure_view(e),
                Ok(d) => view! {
                    <PortalNav/>
                    <section class="card">
                        <h1>"Request " <code>{d.request_id.clone()}</code></h1>
                        <p class="muted"><LocalTime iso=d.time.clone()/> " · " {d.model.clone()} " · " {d.outcome.clone()} " · priced with plan " {d.plan_version.clone()}</p>
                        <ul class="explain" data-testid="explanation">
                            {d.lines.iter().map(|l| view! { <li>{l.clone()}</li> }).collect_view()}
                        </ul>
                        <p><a href="/portal/usage">"← All usage"</a></p>
                    </section>
                }.into_any(),
            })}
        </Suspense>
    }
}
