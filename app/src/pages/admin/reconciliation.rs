//! The console's payment reconciliation: the latest runs' reports, and a run on demand.

use leptos::prelude::*;

use super::{failure, AdminNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, require_staff};
#[cfg(feature = "ssr")]
use crate::core::admin::Role;

#[server(prefix = "/api", endpoint = "admin_reconciliations")]
pub async fn admin_reconciliations() -> Result<Vec<(String, String)>, AppError> {
    require_staff(Role::Viewer).await?;
    let rows = crate::core::console::reconciliations(&core()).await?;
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
