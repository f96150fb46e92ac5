//! The console's API keys: every operator key of both modes, creating one (its secret
//! shown once) and revoking one.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, require_staff};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

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
    let keys = crate::core::console::api_keys(&core()).await?;
    Ok(KeysView {
        keys: keys
            .into_iter()
            .map(|k| KeyLine {
                id: k.id,
                mode: k.mode.to_string(),
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
                        <div class="table-wrap" tabindex="0"><table data-testid="keys">
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
