//! The portal's overview: the balance, what is held, the status and volume tier, the
//! month's spend and burn rate, and the last 30 days' charts; it refreshes itself. A failed
//! subscription renewal shows its banner here as on the billing page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::plan::{PastDue, PastDueBanner, PortalPayOpenInvoice};
use super::{failure_view, Amount, PortalNav, Shown};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, session_customer};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewView {
    pub name: String,
    pub available: Shown,
    pub held: Shown,
    pub status: String,
    pub threshold: String,
    pub low: bool,
    pub month_to_date: Shown,
    pub burn_per_day: Shown,
    pub runs_out: Option<String>,
    /// How many days the charts show (7, 30 or 90).
    pub days: i64,
    pub spend_chart: String,
    pub tokens_chart: String,
    /// The charts' figures as a table, newest day first, days with spend only: what the
    /// charts say, readable without seeing them.
    pub spend_days: Vec<SpendDay>,
    /// "1,200,000 tokens this month: −10 % volume tier" (None without tiers).
    pub tier: Option<String>,
    /// "800,000 tokens to the −25 % tier".
    pub next_tier: Option<String>,
    /// Set while a subscription renewal payment has failed.
    pub past_due: Option<PastDue>,
}

/// One day of the spend table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendDay {
    pub day: String,
    pub total: Shown,
    /// "claude-sonnet-4-5 $1.20 · gpt-5 $0.31"
    pub by_model: String,
}

/// The overview; `days` is how far back its charts look ("7", "30" or "90"; 30 if none).
#[server(prefix = "/api", endpoint = "portal_overview")]
pub async fn portal_overview(days: Option<String>) -> Result<OverviewView, AppError> {
    use crate::core::money::Money;
    use crate::core::portal::ChartRange;
    let core = core();
    let customer = session_customer().await?;
    let range = ChartRange::parse(days.as_deref())?;
    let o = crate::core::portal::overview(&core, &customer, range).await?;
    // (day, total, "model $x" parts), newest first; `daily` is ordered by day.
    let mut by_day: Vec<(i64, Money, Vec<String>)> = Vec::new();
    for d in o.daily.iter().rev().filter(|d| d.cost.is_positive()) {
        let part = format!("{} {}", d.model, d.cost.display_rounded());
        match by_day.last_mut() {
            Some((day, total, parts)) if *day == d.day => {
                *total = total.checked_add(d.cost).unwrap_or(*total);
                parts.push(part);
            }
            _ => by_day.push((d.day, d.cost, vec![part])),
        }
    }
    let spend_days = by_day
        .into_iter()
        .map(|(day, total, parts)| SpendDay {
            day: crate::core::clock::Timestamp::from_micros(day * 86_400_000_000).day_key(),
            total: total.into(),
            by_model: parts.join(" · "),
        })
        .collect();
    Ok(OverviewView {
        past_due: super::plan::past_due(o.subscription.as_ref()),
        name: o
            .customer
            .name
            .clone()
            .or(o.customer.email.clone())
            .unwrap_or(o.customer.external_id.clone()),
        available: o.customer.available.into(),
        held: o.customer.held.into(),
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
        month_to_date: o.month_to_date.into(),
        burn_per_day: o.burn_per_day.into(),
        runs_out: o.runs_out.map(|t| t.day_key()),
        days: o.days,
        spend_chart: crate::charts::or_blank(crate::charts::spend_by_model(
            &o.daily,
            o.first_day,
            days_len(o.days),
        )),
        tokens_chart: crate::charts::or_blank(crate::charts::tokens_by_class(
            &o.daily,
            o.first_day,
            days_len(o.days),
        )),
        spend_days,
    })
}

/// The ranges the charts offer (`core::portal::ChartRange`), as links.
const CHART_DAYS: [i64; 3] = [7, 30, 90];

#[cfg(feature = "ssr")]
fn days_len(days: i64) -> usize {
    usize::try_from(days).unwrap_or(30)
}

#[component]
pub fn Overview() -> impl IntoView {
    let pay = ServerAction::<PortalPayOpenInvoice>::new();
    let query = leptos_router::hooks::use_query_map();
    let data = Resource::new(
        move || (pay.version().get(), query.read().get("days")),
        |(_, days)| portal_overview(days),
    );
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
                            <div><dt>"Available"</dt><dd data-testid="available"><Amount shown=o.available.clone()/></dd></div>
                            <div><dt>"Held for requests in flight"</dt><dd><Amount shown=o.held.clone()/></dd></div>
                            <div><dt>"Status"</dt><dd data-testid="status"><span class=format!("status status-{}", o.status)>{
                                if o.status == "cap_reached" { "spending cap reached".to_string() } else { o.status.clone() }
                            }</span></dd></div>
                            <div><dt>"Spent this month"</dt><dd data-testid="mtd"><Amount shown=o.month_to_date.clone()/></dd></div>
                            <div><dt>"Burn rate (7-day average)"</dt><dd><Amount shown=o.burn_per_day.clone()/> " / day"</dd></div>
                            <div><dt>"Runs out around"</dt><dd class="nowrap">{o.runs_out.clone().unwrap_or_else(|| "—".into())}</dd></div>
                            {o.tier.clone().map(|t| view! {
                                <div><dt>"Volume tier"</dt><dd data-testid="tier">{t}
                                    {o.next_tier.clone().map(|n| view! { <br/><small class="muted" data-testid="next-tier">{n}</small> })}
                                </dd></div>
                            })}
                        </dl>
                        <p><a class="button" href="/portal/billing">"Buy credits"</a></p>
                    </section>
                    <nav class="ranges" aria-label="How far back the charts look">
                        {CHART_DAYS.iter().map(|d| {
                            let current = (*d == o.days).then_some("page");
                            view! { <a href=format!("/portal?days={d}") aria-current=current data-testid=format!("range-{d}")>{format!("{d} days")}</a> }
                        }).collect_view()}
                    </nav>
                    <section class="card">
                        <h2>{format!("Spend, last {} days, by model", o.days)}</h2>
                        <div class="chart" data-testid="spend-chart" inner_html=o.spend_chart.clone()></div>
                        <details data-testid="spend-table">
                            <summary>"The figures, day by day"</summary>
                            {if o.spend_days.is_empty() {
                                view! { <p class="muted">"No spend in these days yet."</p> }.into_any()
                            } else {
                                view! {
                                    <div class="table-wrap" tabindex="0">
                                        <table>
                                            <thead><tr><th scope="col">"Day (UTC)"</th><th scope="col" class="num">"Spend"</th><th scope="col">"By model"</th></tr></thead>
                                            <tbody>
                                                {o.spend_days.iter().map(|d| view! {
                                                    <tr><td>{d.day.clone()}</td><td class="num"><Amount shown=d.total.clone()/></td><td class="wrap">{d.by_model.clone()}</td></tr>
                                                }).collect_view()}
                                            </tbody>
                                        </table>
                                    </div>
                                }.into_any()
                            }}
                        </details>
                    </section>
                    <section class="card">
                        <h2>{format!("Tokens, last {} days, by class", o.days)}</h2>
                        <div class="chart" inner_html=o.tokens_chart.clone()></div>
                    </section>
                }.into_any()
                }
            })}
        </Suspense>
    }
}
