//! The console's proxy page: the latest proxied requests with what each was charged or why
//! nothing was, and the last provider reconciliation's drift per model and day.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, require_staff};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyRequestLine {
    pub time: String,
    pub mode: String,
    pub customer: String,
    pub key: String,
    pub endpoint: String,
    pub model: String,
    pub status: String,
    pub upstream: String,
    pub reason: String,
    pub event: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftLine {
    pub provider: String,
    pub day: String,
    pub model: String,
    /// (class, Tally, provider, whether they differ)
    pub classes: Vec<(String, i64, i64, bool)>,
    pub checked: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyView {
    pub requests: Vec<ProxyRequestLine>,
    pub drift: Vec<DriftLine>,
}

#[server(prefix = "/api", endpoint = "admin_proxy")]
pub async fn admin_proxy() -> Result<ProxyView, AppError> {
    require_staff(crate::core::admin::Role::Viewer).await?;
    let core = core();
    let now = core.clock.now();
    let crate::core::console::ProxyActivity { requests, drift } =
        crate::core::console::proxy_activity(&core).await?;
    Ok(ProxyView {
        requests: requests
            .into_iter()
            .map(|r| ProxyRequestLine {
                time: r.created_at.to_rfc3339(),
                mode: r.mode.to_string(),
                customer: r.customer_id,
                key: r.customer_key_id.unwrap_or_else(|| "operator key".into()),
                endpoint: format!("{} {}", r.provider, r.endpoint),
                model: r.model,
                // Open for longer than any hold lives: the process stopped mid-request; the
                // sweep released the hold.
                status: if r.status == crate::core::store::ProxyStatus::Open
                    && r.created_at < now.plus_seconds(-7 * 86_400)
                {
                    "interrupted".into()
                } else {
                    r.status.as_str().into()
                },
                upstream: r.upstream_status.map(|s| s.to_string()).unwrap_or_default(),
                reason: r.reason.unwrap_or_default(),
                event: r.event_id,
            })
            .collect(),
        drift: drift
            .into_iter()
            .map(|d| DriftLine {
                classes: vec![
                    (
                        "input".into(),
                        d.tally_input,
                        d.provider_input,
                        d.tally_input != d.provider_input,
                    ),
                    (
                        "output".into(),
                        d.tally_output,
                        d.provider_output,
                        d.tally_output != d.provider_output,
                    ),
                    (
                        "cache write".into(),
                        d.tally_cache_write,
                        d.provider_cache_write,
                        d.tally_cache_write != d.provider_cache_write,
                    ),
                    (
                        "cache read".into(),
                        d.tally_cache_read,
                        d.provider_cache_read,
                        d.tally_cache_read != d.provider_cache_read,
                    ),
                ],
                provider: d.provider,
                day: d.day,
                model: d.model,
                checked: d.created_at.to_rfc3339(),
            })
            .collect(),
    })
}

#[component]
pub fn AdminProxy() -> impl IntoView {
    let data = Resource::new(|| (), |_| admin_proxy());
    view! {
        <AdminNav/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure(e),
                Ok(v) => view! {
                    <section class="card">
                        <h1>"Provider reconciliation"</h1>
                        <p class="muted">"Tokens Tally charged for proxied requests (live mode) beside the providers' own usage reports, per model and day (`tally reconcile-provider`, and daily when ANTHROPIC_ADMIN_KEY or OPENAI_ADMIN_KEY is set)."</p>
                        {if v.drift.is_empty() {
                            view! { <p>"No reconciliation has run yet."</p> }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap" tabindex="0">
                                    <table data-testid="drift">
                                        <thead><tr><th scope="col">"Provider"</th><th scope="col">"Day"</th><th scope="col">"Model"</th><th scope="col">"Tokens: Tally / provider"</th></tr></thead>
                                        <tbody>
                                            {v.drift.clone().into_iter().map(|d| view! {
                                                <tr>
                                                    <td>{d.provider}</td><td>{d.day}</td><td>{d.model}</td>
                                                    <td>{d.classes.into_iter().map(|(class, t, p, differs)| view! {
                                                        <span class=if differs { "drift" } else { "" }>{format!("{class} {t} / {p}")}</span>" "
                                                    }).collect_view()}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }.into_any()
                        }}
                    </section>
                    <section class="card">
                        <h2>"Latest proxied requests"</h2>
                        <div class="table-wrap" tabindex="0">
                            <table data-testid="proxy-requests">
                                <thead><tr><th scope="col">"Time"</th><th scope="col">"Mode"</th><th scope="col">"Customer"</th><th scope="col">"Key"</th><th scope="col">"Endpoint"</th><th scope="col">"Model"</th><th scope="col">"Status"</th><th scope="col">"Upstream"</th><th scope="col">"Why"</th></tr></thead>
                                <tbody>
                                    {v.requests.clone().into_iter().map(|r| view! {
                                        <tr>
                                            <td>{r.time}</td><td>{r.mode}</td>
                                            <td><a href=format!("/admin/customers/{}", r.customer)>{r.customer.clone()}</a></td>
                                            <td>{r.key}</td><td>{r.endpoint}</td><td>{r.model}</td>
                                            <td>{r.status}</td><td>{r.upstream}</td><td>{r.reason}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    </section>
                }.into_any(),
            })}
        </Suspense>
    }
}
