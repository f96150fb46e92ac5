//! The console's Notifications page: whether email is on, the operator's webhook
//! endpoints (create, delete, enable again), the outbox's newest events with each
//! delivery (redeliver), and the newest emails with what they say.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, require_staff};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointLine {
    pub id: String,
    pub mode: String,
    pub url: String,
    pub events: String,
    pub status: String,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryLine {
    pub id: String,
    pub endpoint: String,
    pub status: String,
    pub attempts: i64,
    pub next: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    pub id: String,
    pub mode: String,
    pub kind: String,
    pub customer: String,
    pub created: String,
    pub data: String,
    pub deliveries: Vec<DeliveryLine>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailLine {
    pub id: String,
    pub to: String,
    pub kind: String,
    pub subject: String,
    pub status: String,
    pub created: String,
    pub text: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationsView {
    pub email_on: bool,
    pub endpoints: Vec<EndpointLine>,
    pub events: Vec<EventLine>,
    pub emails: Vec<EmailLine>,
}

#[server(prefix = "/api", endpoint = "admin_notifications")]
pub async fn admin_notifications() -> Result<NotificationsView, AppError> {
    require_staff(Role::Viewer).await?;
    let n = crate::core::console::notifications(&core()).await?;
    let time =
        |t: Option<crate::core::clock::Timestamp>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    Ok(NotificationsView {
        email_on: n.email_on,
        endpoints: n
            .endpoints
            .into_iter()
            .map(|e| EndpointLine {
                id: e.id,
                mode: e.mode.to_string(),
                url: e.url,
                events: e.events.join(", "),
                status: e.status.to_string(),
                reason: e.disabled_reason.unwrap_or_default(),
            })
            .collect(),
        events: n
            .events
            .into_iter()
            .map(|(e, ds)| EventLine {
                id: e.id,
                mode: e.mode.to_string(),
                kind: e.event_type.to_string(),
                customer: e.customer_id.unwrap_or_default(),
                created: e.created_at.to_rfc3339(),
                data: e.data,
                deliveries: ds
                    .into_iter()
                    .map(|d| DeliveryLine {
                        id: d.id,
                        endpoint: d.endpoint_id,
                        status: d.status.to_string(),
                        attempts: d.attempts,
                        next: time(d.next_attempt_at),
                        error: d.last_error.unwrap_or_default(),
                    })
                    .collect(),
            })
            .collect(),
        emails: n
            .emails
            .into_iter()
            .map(|m| EmailLine {
                id: m.id,
                to: m.to_address,
                kind: m.kind.to_string(),
                subject: m.subject,
                status: m.status.to_string(),
                created: m.created_at.to_rfc3339(),
                text: m.text_body,
                error: m.last_error.unwrap_or_default(),
            })
            .collect(),
    })
}

/// Creates an endpoint; answers its signing secret (shown once).
#[server(prefix = "/api", endpoint = "admin_create_endpoint")]
pub async fn admin_create_endpoint(
    mode: String,
    url: String,
    events: String,
    reason: String,
) -> Result<String, AppError> {
    let staff = require_staff(Role::Admin).await?;
    let mode = crate::core::ledger::Mode::parse(&mode)
        .ok_or_else(|| AppError::Invalid("mode is test or live".into()))?;
    let new = crate::core::notify::endpoints::NewEndpoint {
        url,
        events: events
            .split([',', ' '])
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect(),
    };
    let row = crate::core::admin::create_endpoint(&core(), &staff, mode, &new, &reason).await?;
    Ok(format!("{} {}", row.id, row.secret))
}

#[server(prefix = "/api", endpoint = "admin_endpoint_action")]
pub async fn admin_endpoint_action(
    id: String,
    enable: bool,
    reason: String,
) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    crate::core::admin::endpoint_action(&core(), &staff, &id, enable, &reason).await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "admin_redeliver")]
pub async fn admin_redeliver(id: String, reason: String) -> Result<(), AppError> {
    let staff = require_staff(Role::Admin).await?;
    crate::core::admin::redeliver(&core(), &staff, &id, &reason).await?;
    Ok(())
}

#[component]
pub fn AdminNotifications() -> impl IntoView {
    let create = ServerAction::<AdminCreateEndpoint>::new();
    let act = ServerAction::<AdminEndpointAction>::new();
    let redeliver = ServerAction::<AdminRedeliver>::new();
    let data = Resource::new(
        move || {
            (
                create.version().get(),
                act.version().get(),
                redeliver.version().get(),
            )
        },
        |_| admin_notifications(),
    );
    let error = move || {
        [
            act.value().get().and_then(|r| r.err()),
            redeliver.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
    };
    view! {
        <AdminNav/>
        <section class="card">
            <h1>"Notifications"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || data.get().map(|r| match r {
                    Err(e) => failure(e),
                    Ok(n) => view! {
                        {(!n.email_on).then(|| view! {
                            <p class="notice" role="status" data-testid="email-off">
                                "Email is off: no SMTP server is configured (TALLY_SMTP_URL). The emails below were not sent; they show what would have been."
                            </p>
                        })}
                        <h2>"Webhook endpoints"</h2>
                        <div class="table-wrap" tabindex="0"><table data-testid="endpoints">
                            <thead><tr><th>"Endpoint"</th><th>"Mode"</th><th>"URL"</th><th>"Events"</th><th>"Status"</th><th></th></tr></thead>
                            <tbody>
                                {n.endpoints.into_iter().map(|e| {
                                    let disabled = e.status == "disabled";
                                    view! {
                                        <tr>
                                            <td><code>{e.id.clone()}</code></td><td>{e.mode}</td><td>{e.url}</td><td>{e.events}</td>
                                            <td>{e.status}{(!e.reason.is_empty()).then(|| view! { <br/><small>{e.reason.clone()}</small> })}</td>
                                            <td>
                                                <ActionForm action=act attr:class="inline-form">
                                                    <input type="hidden" name="id" value=e.id.clone()/>
                                                    <input type="hidden" name="enable" value=if disabled { "true" } else { "false" }/>
                                                    <input type="text" name="reason" required placeholder="reason" aria-label="Reason"/>
                                                    <button type="submit">{if disabled { "Enable" } else { "Delete" }}</button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table></div>
                        <h2>"Events"</h2>
                        <div class="table-wrap" tabindex="0"><table data-testid="outbox">
                            <thead><tr><th>"Event"</th><th>"Type"</th><th>"Customer"</th><th>"Created"</th><th>"Deliveries"</th></tr></thead>
                            <tbody>
                                {n.events.into_iter().map(|e| view! {
                                    <tr>
                                        <td><code>{e.id}</code><br/><small>{e.mode}</small></td>
                                        <td>{e.kind}<details><summary>"data"</summary><pre>{e.data}</pre></details></td>
                                        <td>{e.customer}</td><td>{e.created}</td>
                                        <td>
                                            {e.deliveries.into_iter().map(|d| view! {
                                                <div class="delivery">
                                                    <code>{d.endpoint}</code>" "{d.status}" · "{d.attempts}" attempts"
                                                    {(!d.next.is_empty()).then(|| format!(" · next {}", d.next))}
                                                    {(!d.error.is_empty()).then(|| format!(" · {}", d.error))}
                                                    <ActionForm action=redeliver attr:class="inline-form">
                                                        <input type="hidden" name="id" value=d.id.clone()/>
                                                        <input type="text" name="reason" required placeholder="reason" aria-label="Reason"/>
                                                        <button type="submit" data-testid="redeliver">"Redeliver"</button>
                                                    </ActionForm>
                                                </div>
                                            }).collect_view()}
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table></div>
                        <h2>"Emails"</h2>
                        <div class="table-wrap" tabindex="0"><table data-testid="emails">
                            <thead><tr><th>"To"</th><th>"Kind"</th><th>"Subject"</th><th>"Status"</th><th>"Created"</th></tr></thead>
                            <tbody>
                                {n.emails.into_iter().map(|m| view! {
                                    <tr>
                                        <td>{m.to}</td><td>{m.kind}</td>
                                        <td>{m.subject}<details><summary>"text"</summary><pre>{m.text}</pre></details></td>
                                        <td>{m.status}{(!m.error.is_empty()).then(|| view! { <br/><small>{m.error.clone()}</small> })}</td>
                                        <td>{m.created}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table></div>
                    }.into_any(),
                })}
            </Suspense>
            {error}
        </section>
        <section class="card">
            <h2>"New endpoint"</h2>
            <ActionForm action=create>
                <label>"Mode "
                    <select name="mode"><option value="test">"test"</option><option value="live">"live"</option></select>
                </label>
                <label>"URL" <input type="url" name="url" required placeholder="https://app.example.com/tally-webhooks"/></label>
                <label>"Events (comma-separated, * for all)" <input type="text" name="events" required value="*"/></label>
                <label>"Reason" <input type="text" name="reason" required/></label>
                <button type="submit" data-testid="create-endpoint">"Create endpoint"</button>
            </ActionForm>
            {move || create.value().get().map(|r| match r {
                Ok(made) => {
                    let (id, secret) = made.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).unwrap_or_default();
                    view! {
                        <p role="status" data-testid="endpoint-secret">
                            "Created "<code>{id}</code>". Its signing secret, shown once: "<code>{secret}</code>
                        </p>
                    }.into_any()
                }
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}
