//! The portal's overview: the balance, what is held, the status and volume tier, the
//! month's spend and burn rate, and the last 30 days' charts; it refreshes itself. A failed
//! subscription renewal shows its banner here as on the billing page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::plan::{PastDue, PastDueBanner, PortalPayOpenInvoice};
use super::{failure_view, PortalNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, session_customer};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewView {
    pub name: String,
    pub available: String,
    pub held: String,
    pub status: String,
    pub threshold: String,
    pub low: bool,
    pub month_to_date: String,
    pub burn_per_day: String,
    pub runs_out: Option<String>,
    pub spend_chart: String,
    pub tokens_chart: String,
    /// "1,200,000 tokens this month: −10 % volume tier" (None without tiers).
    pub tier: Option<String>,
    /// "800,000 tokens to the −25 % tier".
    pub next_tier: Option<String>,
    /// Set while a subscription renewal payment has failed.
    pub past_due: Option<PastDue>,
}

#[server(prefix = "/api", endpoint = "portal_overview")]
pub async fn portal_overview() -> Result<OverviewView, AppError> {
    let core = core();
    let customer = session_customer().await?;
    let o = crate::core::portal::overview(&core, &customer).await?;
    let charts = |r: Result<String, String>| {
        r.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "chart failed");
            String::new()
        })
    };
    Ok(OverviewView {
        past_due: super::plan::past_due(o.subscription.as_ref()),
        name: o
            .customer
            .name
            .clone()
            .or(o.customer.email.clone())
            .unwrap_or(o.customer.external_id.clone()),
        available: o.customer.available.display_money(),
        held: o.customer.held.display_money(),
        status: if o.cap_reached && o.status != "suspended" {
            "cap_reached".to_string()
        } else {
            o.status.to_string()
        },
        tier: (o.tier.is_some() || o.next_tier.is_some()).then(|| {
            let used = crate::core::portal::group_digits(
                i64::try_from(o.month_tokens).unwrap_or(i64::MAX),
            );
            match &o.tier {
                Some(t) => format!(
                    "{used} tokens this month: −{} % volume tier",
                    crate::core::portal::percent_words(t.discount_percent)
                ),
                None => format!("{used} tokens this month: list prices"),
            }
        }),
        next_tier: o.next_tier.as_ref().map(|(t, left)| {
            format!(
                "{} tokens to the −{} % tier",
                crate::core::portal::group_digits(i64::try_from(*left).unwrap_or(i64::MAX)),
                crate::core::portal::percent_words(t.discount_percent)
            )
        }),
        threshold: o.threshold.display_money(),
        low: matches!(o.status, "low" | "depleted"),
        month_to_date: o.month_to_date.display_money(),
        burn_per_day: o.burn_per_day.display_money(),
        runs_out: o.runs_out.map(|t| t.day_key()),
        spend_chart: charts(crate::charts::spend_by_model(&o.daily, o.first_day)),
        tokens_chart: charts(crate::charts::tokens_by_class(&o.daily, o.first_day)),
    })
}

#[component]
pub fn Overview() -> impl IntoView {
    let pay = ServerAction::<PortalPayOpenInvoice>::new();
    let data = Resource::new(move || pay.version().get(), |_| portal_overview());
    // Once hydrated, the balance refreshes itself while the page is open.
    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = leptos::prelude::set_interval_with_handle(
            move || data.refetch(),
            std::time::Duration::from_secs(5),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure_view(e),
                Ok(o) => {
                    // A `Show`, not an `Option`, so hydration finds the same nodes.
                    let shown = o.past_due.is_some();
                    let past_due = o.past_due.clone().unwrap_or_default();
                    view! {
                    <PortalNav/>
                    <Show when=move || shown>
                        <PastDueBanner past_due=past_due.clone() pay=pay/>
                    </Show>
                    <Show when={let low = o.low; move || low}>
                        <p class="banner-low" role="alert" data-testid="low-balance">
                            "Your balance is low. " <a href="/portal/billing">"Buy credits"</a> " to keep going."
                        </p>
                    </Show>
                    <section class="card">
                        <h1>"Hello, " {o.name.clone()}</h1>
                        <dl class="stats">
                            <div><dt>"Available"</dt><dd data-testid="available">{o.available.clone()}</dd></div>
                            <div><dt>"Held for requests in flight"</dt><dd>{o.held.clone()}</dd></div>
                            <div><dt>"Status"</dt><dd data-testid="status"><span class=format!("status status-{}", o.status)>{
                                if o.status == "cap_reached" { "spending cap reached".to_string() } else { o.status.clone() }
                            }</span></dd></div>
                            <div><dt>"Spent this month"</dt><dd data-testid="mtd">{o.month_to_date.clone()}</dd></div>
                            <div><dt>"Burn rate (7-day average)"</dt><dd>{o.burn_per_day.clone()} " / day"</dd></div>
                            <div><dt>"Runs out around"</dt><dd>{o.runs_out.clone().unwrap_or_else(|| "—".into())}</dd></div>
                            {o.tier.clone().map(|t| view! {
                                <div><dt>"Volume tier"</dt><dd data-testid="tier">{t}
                                    {o.next_tier.clone().map(|n| view! { <br/><small class="muted" data-testid="next-tier">{n}</small> })}
                                </dd></div>
                            })}
                        </dl>
                        <p><a class="button" href="/portal/billing">"Buy credits"</a></p>
                    </section>
                    <section class="card">
                        <h2>"Spend, last 30 days, by model"</h2>
                        <div class="chart" data-testid="spend-chart" inner_html=o.spend_chart.clone()></div>
                    </section>
                    <section class="card">
                        <h2>"Tokens, last 30 days, by class"</h2>
                        <div class="chart" inner_html=o.tokens_chart.clone()></div>
                    </section>
                }.into_any()
                }
            })}
        </Suspense>
    }
}
