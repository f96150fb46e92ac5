//! The console's webhook inbox: Stripe's events as received, filtered by status, each
//! replayable with a reason.

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
    let rows = crate::core::console::webhook_events(
        &core(),
        status
            .as_deref()
            .and_then(crate::core::vocab::InboxStatus::parse),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|e| WebhookLine {
            id: e.id,
            kind: e.event_type,
            received: e.received_at.to_rfc3339(),
            attempts: e.attempts,
            status: e.status.to_string(),
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
                        <div class="table-wrap" tabindex="0"><table data-testid="webhooks">
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
