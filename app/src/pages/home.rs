//! The landing page: where customers and staff sign in, and for signed-in staff the
//! state of the ledger and the check `tally verify` runs (a full scan, so staff only).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What the landing page shows about the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerStats {
    pub database: String,
    pub accounts: i64,
    pub transactions: i64,
    pub postings: i64,
}

#[server(prefix = "/api", endpoint = "ledger_summary")]
pub async fn ledger_summary() -> Result<LedgerStats, AppError> {
    use crate::core::Core;
    crate::pages::admin::require_staff(crate::core::admin::Role::Viewer).await?;
    let core = expect_context::<Core>();
    let s = crate::core::console::ledger_size(&core).await?;
    Ok(LedgerStats {
        database: s.database.to_string(),
        accounts: s.accounts,
        transactions: s.transactions,
        postings: s.postings,
    })
}

/// The outcome of `tally verify`, run on demand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyOutcome {
    pub clean: bool,
    pub report: String,
}

#[server(prefix = "/api", endpoint = "verify_ledger")]
pub async fn verify_ledger() -> Result<VerifyOutcome, AppError> {
    use crate::core::Core;
    crate::pages::admin::require_staff(crate::core::admin::Role::Viewer).await?;
    let core = expect_context::<Core>();
    let report = core.ledger.verify().await?;
    Ok(VerifyOutcome {
        clean: report.is_clean(),
        report: report.render(),
    })
}

#[component]
pub fn HomePage() -> impl IntoView {
    let summary = Resource::new(|| (), |_| ledger_summary());
    let verify = ServerAction::<VerifyLedger>::new();
    let (show_invariants, set_show_invariants) = signal(false);

    view! {
        <section class="card">
            <h1>"Ledger"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || summary.get().map(|s| match s {
                    Ok(s) => view! {
                        <dl class="stats">
                            <div><dt>"Database"</dt><dd data-testid="database">{s.database}</dd></div>
                            <div><dt>"Accounts"</dt><dd>{s.accounts}</dd></div>
                            <div><dt>"Transactions"</dt><dd>{s.transactions}</dd></div>
                            <div><dt>"Postings"</dt><dd>{s.postings}</dd></div>
                        </dl>
                    }.into_any(),
                    Err(AppError::Forbidden) => view! {
                        <p data-testid="sign-in-hint">
                            "Customers: open the link your provider sent, or "
                            <a href="/portal/signin">"sign in to your portal"</a>
                            ". Staff: " <a href="/admin/signin">"sign in to the console"</a>
                            " to see the ledger's state and verify it."
                        </p>
                    }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                })}
            </Suspense>
        </section>
        <section class="card">
            <h2>"Verify"</h2>
            <p>"Every transaction sums to zero and every cached balance equals its postings."</p>
            <button
                type="button"
                class="link"
                data-testid="toggle-invariants"
                aria-expanded=move || show_invariants.get().to_string()
                on:click=move |_| set_show_invariants.update(|v| *v = !*v)
            >
                {move || if show_invariants.get() { "Hide the invariants" } else { "Show the invariants" }}
            </button>
            <Show when=move || show_invariants.get()>
                <ul data-testid="invariants">
                    <li>"Postings of every transaction sum to zero."</li>
                    <li>"Each cached balance equals the sum of its postings."</li>
                    <li>"Each hold is pending, captured, released or expired: never two."</li>
                    <li>"No reference is used twice."</li>
                </ul>
            </Show>
            <ActionForm action=verify>
                <button type="submit" data-testid="verify">"Verify the ledger now"</button>
            </ActionForm>
            {move || verify.value().get().map(|r| match r {
                Ok(v) => view! {
                    <pre class=if v.clean { "report ok" } else { "report bad" } data-testid="verify-report">{v.report}</pre>
                }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}
