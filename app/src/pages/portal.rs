//! The customer portal: sign-in, overview (balance, spend, charts), usage (every request,
//! filters, CSV, a plain-words price explanation) and billing (buy credits, history,
//! settings). Every server function finds the customer in the session, never in its
//! arguments, so one customer can never ask for another's data.

use leptos::prelude::*;
use leptos_router::components::{Form, A};
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// The session key of the signed-in customer.
pub const SESSION_CUSTOMER: &str = "customer";

/// The signed-in customer's id, or `Forbidden`.
#[cfg(feature = "ssr")]
pub async fn session_customer() -> Result<String, AppError> {
    let session: tower_sessions::Session = leptos_axum::extract()
        .await
        .map_err(|_| AppError::Forbidden)?;
    session
        .get::<String>(SESSION_CUSTOMER)
        .await
        .map_err(|_| AppError::Unavailable)?
        .ok_or(AppError::Forbidden)
}

/// An amount as a person types it: "$1,250.00" → "1250.00" (the exact parser does the rest).
#[cfg(feature = "ssr")]
pub(crate) fn typed_amount(text: &str) -> String {
    text.trim().trim_start_matches('$').replace(',', "")
}

#[cfg(feature = "ssr")]
pub(crate) fn core() -> crate::core::Core {
    expect_context::<crate::core::Core>()
}

// ---- sign-in ----

#[cfg(feature = "ssr")]
fn sign_in_limiter() -> &'static governor::DefaultKeyedRateLimiter<String> {
    use std::sync::OnceLock;
    static LIMITER: OnceLock<governor::DefaultKeyedRateLimiter<String>> = OnceLock::new();
    LIMITER.get_or_init(|| {
        governor::RateLimiter::keyed(governor::Quota::per_minute(
            std::num::NonZeroU32::new(5).unwrap_or(std::num::NonZeroU32::MIN),
        ))
    })
}

#[server(prefix = "/api", endpoint = "portal_sign_in")]
pub async fn portal_sign_in(email: String, password: String) -> Result<(), AppError> {
    let key = email.trim().to_lowercase();
    if sign_in_limiter().check_key(&key).is_err() {
        return Err(AppError::Invalid(
            "Too many attempts; wait a minute and try again.".into(),
        ));
    }
    let customer = match crate::core::portal::sign_in(&core(), &email, &password).await {
        Ok(c) => c,
        Err(crate::core::error::Error::Unauthenticated) => {
            return Err(AppError::Invalid("Wrong email or password.".into()))
        }
        Err(e) => return Err(e.into()),
    };
    super::start_session(SESSION_CUSTOMER, customer).await?;
    leptos_axum::redirect("/portal");
    Ok(())
}

#[component]
pub fn SignIn() -> impl IntoView {
    let action = ServerAction::<PortalSignIn>::new();
    let query = use_query_map();
    let link_error = move || query.read().get("error").is_some();
    view! {
        <section class="card narrow">
            <h1>"Sign in to your billing portal"</h1>
            <Show when=link_error>
                <p class="error" role="alert">"That sign-in link is invalid, used or expired. Ask for a new one."</p>
            </Show>
            <ActionForm action=action>
                <label>"Email" <input type="email" name="email" autocomplete="username" required/></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required/></label>
                <button type="submit" data-testid="sign-in">"Sign in"</button>
            </ActionForm>
            {move || action.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            <p class="muted">"You can also sign in with a one-time link from the app you use."</p>
        </section>
    }
}

/// Shown instead of a page when nobody is signed in.
#[component]
fn NeedSignIn() -> impl IntoView {
    view! {
        <section class="card narrow">
            <h1>"Please sign in"</h1>
            <p><a href="/portal/signin">"Sign in"</a> " to see your balance and usage."</p>
        </section>
    }
}

#[component]
pub(crate) fn PortalNav() -> impl IntoView {
    view! {
        <nav class="portal-nav" aria-label="Portal">
            <A href="/portal" exact=true>"Overview"</A>
            <A href="/portal/usage">"Usage"</A>
            <A href="/portal/billing">"Billing"</A>
            <A href="/portal/keys">"API keys"</A>
            <form method="post" action="/portal/signout" class="inline">
                <button type="submit" class="link" data-testid="sign-out">"Sign out"</button>
            </form>
        </nav>
    }
}

pub(crate) fn failure_view(e: AppError) -> AnyView {
    match e {
        AppError::Forbidden => view! { <NeedSignIn/> }.into_any(),
        other => view! { <p class="error" role="alert">{other.to_string()}</p> }.into_any(),
    }
}

// ---- overview ----

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
}

#[server(prefix = "/api", endpoint = "portal_overview")]
pub async fn portal_overview() -> Result<OverviewView, AppError> {
    let customer = session_customer().await?;
    let o = crate::core::portal::overview(&core(), &customer).await?;
    let charts = |r: Result<String, String>| {
        r.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "chart failed");
            String::new()
        })
    };
    Ok(OverviewView {
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
    let data = Resource::new(|| (), |_| portal_overview());
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
                Ok(o) => view! {
                    <PortalNav/>
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
                }.into_any(),
            })}
        </Suspense>
    }
}

// ---- usage ----

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
        mode: customer.mode.clone(),
        customer_id: Some(customer.id.clone()),
        model: q.model.clone().filter(|m| !m.is_empty()),
        from: day(&q.from, false)?,
        to: day(&q.to, true)?,
        starting_after: q.after.clone().filter(|a| !a.is_empty()),
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
    let mut events = core.store.list_usage(&filter).await?;
    let more = events.len() as i64 > USAGE_PAGE_SIZE;
    events.truncate(USAGE_PAGE_SIZE as usize);
    let models =
        crate::core::plans::models(&core.store, crate::core::plans::mode_of(&customer.mode)?)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
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
                outcome: e.outcome.clone(),
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
                            <div class="table-wrap">
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
    let core = core();
    let customer = session_customer().await?;
    let e = crate::core::portal::usage_event(&core, &customer, &id).await?;
    let (version, _) = crate::core::plans::version(&core.store, &e.plan_version_id).await?;
    Ok(UsageDetailView {
        lines: crate::core::portal::explain(&e)?,
        id: e.id,
        request_id: e.request_id,
        time: e.occurred_at.to_rfc3339(),
        model: e.model,
        outcome: e.outcome,
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

/// A moment in the reader's time zone. The server renders it in UTC (what a page without
/// JavaScript shows, labelled so); once hydrated, the browser rewrites it in its own zone.
#[component]
pub fn LocalTime(#[prop(into)] iso: String) -> impl IntoView {
    let utc = {
        let t: String = iso.replace('T', " ").chars().take(16).collect();
        format!("{t} UTC")
    };
    let (text, set_text) = signal(utc);
    #[cfg(feature = "hydrate")]
    {
        let iso = iso.clone();
        Effect::new(move |_| {
            let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(&iso));
            if !date.get_time().is_nan() {
                let local = date.to_locale_string("default", &wasm_bindgen::JsValue::UNDEFINED);
                set_text.set(String::from(local));
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = set_text;
    view! { <time datetime=iso>{text}</time> }
}

// ---- billing ----

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionLine {
    pub time: String,
    pub kind: String,
    pub amount: String,
    pub note: String,
}

/// Auto top-up as the billing page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoTopupView {
    pub card_saved: bool,
    pub enabled: bool,
    pub threshold: String,
    pub amount: String,
    pub monthly_limit: String,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingView {
    pub available: String,
    pub packs: Vec<(String, String)>,
    pub threshold: String,
    pub transactions: Vec<TransactionLine>,
    pub has_email: bool,
    pub auto: AutoTopupView,
    /// "between $1.00 and $10,000.00", from the customer's plan.
    pub topup_range: String,
    pub topups: Vec<TopupLine>,
    /// The deployment currency's code, as the amount fields' labels name it ("USD").
    pub currency: String,
    /// The low-balance threshold as the form takes it back ("5.00").
    pub threshold_plain: String,
}

/// A top-up as the customer sees it; paid ones have a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopupLine {
    pub id: String,
    pub time: String,
    pub amount: String,
    pub status: String,
    pub automatic: bool,
}

#[server(prefix = "/api", endpoint = "portal_billing")]
pub async fn portal_billing() -> Result<BillingView, AppError> {
    let core = core();
    let customer_id = session_customer().await?;
    let o = crate::core::portal::overview(&core, &customer_id).await?;
    let txns = core
        .store
        .list_transactions(&o.customer.account_id, None, 100)
        .await?;
    let plain = |m: crate::core::money::Money| m.display_plain();
    let cents = |c: i64| {
        core.payments
            .currency()
            .from_minor(c)
            .map(plain)
            .unwrap_or_default()
    };
    let auto = match core.store.auto_topup(&customer_id).await? {
        Some(a) => AutoTopupView {
            card_saved: a.payment_method_id.is_some(),
            enabled: a.enabled,
            threshold: plain(a.threshold),
            amount: cents(a.amount_cents),
            monthly_limit: cents(a.monthly_limit_cents),
            last_error: a.last_error,
        },
        None => AutoTopupView {
            card_saved: false,
            enabled: false,
            threshold: String::new(),
            amount: String::new(),
            monthly_limit: String::new(),
            last_error: None,
        },
    };
    let plan = crate::core::plans::of_customer(&core.store, &o.customer).await?;
    let topups = core.store.topups_of(&customer_id, 50).await?;
    Ok(BillingView {
        auto,
        currency: core.payments.currency().code().to_ascii_uppercase(),
        threshold_plain: o.threshold.display_plain(),
        topups: topups
            .into_iter()
            .filter(|t| t.status != "pending" || t.checkout_url.is_none())
            .map(|t| TopupLine {
                time: t.created_at.to_rfc3339(),
                amount: t.amount.display_money(),
                automatic: t.source == "auto",
                status: match t.status.as_str() {
                    "paid" if t.refunded_cents > 0 => "paid, partly refunded".into(),
                    "pending" | "processing" => "processing".into(),
                    other => other.to_string(),
                },
                id: t.id,
            })
            .collect(),
        topup_range: format!(
            "between {} and {}",
            plan.terms.min_topup.display_money(),
            plan.terms.max_topup.display_money()
        ),
        available: o.customer.available.display_money(),
        packs: o
            .topup_packs
            .iter()
            .map(|p| (p.to_string(), p.display_money()))
            .collect(),
        threshold: o.threshold.display_plain(),
        transactions: txns
            .iter()
            .filter(|t| t.kind != "hold" && t.kind != "release")
            .map(|t| TransactionLine {
                time: t.created_at.to_rfc3339(),
                kind: t.kind.clone(),
                amount: t.amount.display_money(),
                note: t.reason.clone().unwrap_or_default(),
            })
            .collect(),
        has_email: o.customer.email.is_some(),
    })
}

#[server(prefix = "/api", endpoint = "portal_buy_credits")]
pub async fn portal_buy_credits(amount: String) -> Result<(), AppError> {
    use crate::core::ledger::Mode;
    use crate::core::money::Money;
    use crate::core::payments::{self, TopupSource};
    let core = core();
    let customer = crate::core::portal::customer(&core, &session_customer().await?).await?;
    let amount = Money::parse(&typed_amount(&amount))
        .map_err(|_| AppError::Invalid("Enter an amount like 25 or 25.00.".into()))?;
    let mode = Mode::parse(&customer.mode).ok_or(AppError::Internal)?;
    let topup = payments::create_topup(
        &core,
        mode,
        &customer.id,
        amount,
        TopupSource::Portal,
        None,
        None,
    )
    .await?;
    leptos_axum::redirect(
        &topup
            .checkout_url
            .unwrap_or_else(|| "/portal/billing".into()),
    );
    Ok(())
}

#[server(prefix = "/api", endpoint = "portal_set_threshold")]
pub async fn portal_set_threshold(threshold: String) -> Result<(), AppError> {
    use crate::core::money::Money;
    let core = core();
    let customer = session_customer().await?;
    let t = Money::parse_non_negative(&typed_amount(&threshold))
        .map_err(|_| AppError::Invalid("Enter an amount like 5 or 5.00.".into()))?;
    core.store
        .set_low_balance_threshold(&customer, Some(t))
        .await?;
    Ok(())
}

/// A receipt for one paid top-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptView {
    pub id: String,
    pub time: String,
    pub customer: String,
    pub amount: String,
    pub method: String,
    pub payment_reference: String,
    pub refunded: Option<String>,
    pub ledger_transaction: String,
}

#[server(prefix = "/api", endpoint = "portal_receipt")]
pub async fn portal_receipt(id: String) -> Result<ReceiptView, AppError> {
    let core = core();
    let customer_id = session_customer().await?;
    let customer = crate::core::portal::customer(&core, &customer_id).await?;
    let t = crate::core::portal::receipt(&core, &customer_id, &id).await?;
    Ok(ReceiptView {
        time: t.updated_at.to_rfc3339(),
        customer: customer
            .name
            .clone()
            .or(customer.email.clone())
            .unwrap_or(customer.external_id.clone()),
        amount: t.amount.display_money(),
        method: match (t.gateway.as_str(), t.source.as_str()) {
            ("simulated", _) => "simulated payment (test mode)".into(),
            (_, "auto") => "saved card, auto top-up".into(),
            _ => "card, through Stripe Checkout".into(),
        },
        payment_reference: t.payment_intent_id.clone().unwrap_or_default(),
        refunded: (t.refunded_cents > 0).then(|| {
            core.payments
                .currency()
                .from_minor(t.refunded_cents)
                .map(|m| m.display_money())
                .unwrap_or_default()
        }),
        ledger_transaction: t.transaction_id.clone().unwrap_or_default(),
        id: t.id,
    })
}

#[component]
pub fn Receipt() -> impl IntoView {
    let params = use_params_map();
    let data = Resource::new(
        move || params.read().get("id").unwrap_or_default(),
        portal_receipt,
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure_view(e),
                Ok(r) => view! {
                    <PortalNav/>
                    <section class="card receipt" data-testid="receipt">
                        <h1>"Receipt"</h1>
                        <dl class="receipt-lines">
                            <div><dt>"Receipt number"</dt><dd><code>{r.id.clone()}</code></dd></div>
                            <div><dt>"Paid"</dt><dd><LocalTime iso=r.time.clone()/></dd></div>
                            <div><dt>"Customer"</dt><dd>{r.customer.clone()}</dd></div>
                            <div><dt>"Credits bought"</dt><dd data-testid="receipt-amount">{r.amount.clone()}</dd></div>
                            <div><dt>"Paid with"</dt><dd>{r.method.clone()}</dd></div>
                            <div><dt>"Payment reference"</dt><dd><code>{r.payment_reference.clone()}</code></dd></div>
                            <div><dt>"Ledger transaction"</dt><dd><code>{r.ledger_transaction.clone()}</code></dd></div>
                            {r.refunded.clone().map(|x| view! { <div><dt>"Refunded"</dt><dd>{x}</dd></div> })}
                        </dl>
                        <p class="muted">"Credits are prepaid and used by your requests."</p>
                        <p><a href="/portal/billing">"← Billing"</a></p>
                    </section>
                }.into_any(),
            })}
        </Suspense>
    }
}

/// Saves auto top-up: "when available falls below `threshold`, buy `amount`, at most
/// `monthly_limit` a month". `enabled` is the checkbox (absent when unticked).
#[server(prefix = "/api", endpoint = "portal_set_auto_topup")]
pub async fn portal_set_auto_topup(
    enabled: Option<String>,
    threshold: String,
    amount: String,
    monthly_limit: String,
) -> Result<(), AppError> {
    use crate::core::ledger::Mode;
    use crate::core::money::Money;
    use crate::core::store::AutoTopupSettings;
    let core = core();
    let customer = crate::core::portal::customer(&core, &session_customer().await?).await?;
    let enabled = enabled.is_some();
    let money = |text: &str, what: &str| -> Result<Money, AppError> {
        let text = typed_amount(text);
        if text.is_empty() && !enabled {
            return Ok(Money::ZERO);
        }
        Money::parse_non_negative(&text)
            .map_err(|_| AppError::Invalid(format!("Enter the {what} like 10 or 10.00.")))
    };
    let currency = core.payments.currency().clone();
    let whole_cents = |m: Money, what: &str| -> Result<i64, AppError> {
        currency.to_minor(m).ok_or_else(|| {
            AppError::Invalid(format!(
                "The {what} is a whole number of the currency's smallest unit."
            ))
        })
    };
    let settings = AutoTopupSettings {
        enabled,
        threshold: money(&threshold, "threshold")?,
        amount_cents: whole_cents(money(&amount, "amount")?, "amount")?,
        monthly_limit_cents: whole_cents(money(&monthly_limit, "monthly limit")?, "monthly limit")?,
    };
    let mode = Mode::parse(&customer.mode).ok_or(AppError::Internal)?;
    crate::core::payments::auto::configure(&core, mode, &customer.id, settings).await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "portal_set_password")]
pub async fn portal_set_password(password: String) -> Result<(), AppError> {
    let customer = session_customer().await?;
    crate::core::portal::set_password(&core(), &customer, &password).await?;
    Ok(())
}

#[component]
pub fn Billing() -> impl IntoView {
    let buy = ServerAction::<PortalBuyCredits>::new();
    let threshold = ServerAction::<PortalSetThreshold>::new();
    let auto = ServerAction::<PortalSetAutoTopup>::new();
    let password = ServerAction::<PortalSetPassword>::new();
    let data = Resource::new(
        move || (threshold.version().get(), auto.version().get()),
        |_| portal_billing(),
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure_view(e),
                Ok(b) => {
                    let custom_label = format!("Custom amount ({}) ", b.currency);
                    let warn_label = format!("Warn me when my balance is below ({}) ", b.currency);
                    let code = b.currency.clone();
                    view! {
                    <PortalNav/>
                    <section class="card">
                        <h1>"Buy credits"</h1>
                        <p>"Available now: " <strong data-testid="billing-available">{b.available.clone()}</strong></p>
                        <div class="packs">
                            {b.packs.clone().into_iter().map(|(value, label)| view! {
                                <ActionForm action=buy>
                                    <input type="hidden" name="amount" value=value/>
                                    <button type="submit" data-testid="pack">{label}</button>
                                </ActionForm>
                            }).collect_view()}
                        </div>
                        <ActionForm action=buy attr:class="inline-form">
                            <label>{custom_label} <input type="text" inputmode="decimal" name="amount" placeholder="25.00" required data-testid="custom-amount" aria-describedby="topup-range"/></label>
                            <button type="submit" data-testid="buy-custom">"Buy"</button>
                        </ActionForm>
                        <p class="muted" id="topup-range">"Any amount " {b.topup_range.clone()} "."</p>
                        {move || buy.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                    </section>
                    <section class="card" aria-labelledby="auto-topup-title">
                        <h2 id="auto-topup-title">"Auto top-up"</h2>
                        {b.auto.last_error.clone().map(|e| view! {
                            <p class="banner-low" role="alert" data-testid="auto-topup-error">{e}</p>
                        })}
                        {if b.auto.card_saved {
                            let a = b.auto.clone();
                            view! {
                                <p>"Your card from your last purchase is saved. We charge it when your balance falls below the threshold, once each time, and never more than your monthly limit."</p>
                                <ActionForm action=auto attr:class="stacked-form" attr:data-testid="auto-topup-form">
                                    <label class="check"><input type="checkbox" name="enabled" value="on" checked=a.enabled/>" Top up automatically"</label>
                                    <label>{format!("When available falls below ({code}) ")}
                                        <input type="text" inputmode="decimal" name="threshold" value=a.threshold placeholder="10.00"/>
                                    </label>
                                    <label>{format!("Buy ({code}) ")}
                                        <input type="text" inputmode="decimal" name="amount" value=a.amount placeholder="25.00"/>
                                    </label>
                                    <label>{format!("At most per month ({code}) ")}
                                        <input type="text" inputmode="decimal" name="monthly_limit" value=a.monthly_limit placeholder="100.00"/>
                                    </label>
                                    <button type="submit">"Save auto top-up"</button>
                                </ActionForm>
                            }.into_any()
                        } else {
                            view! { <p>"Buy credits once with a card to save it; then you can have us top up automatically when your balance runs low."</p> }.into_any()
                        }}
                        <Show when=move || matches!(auto.value().get(), Some(Ok(())))>
                            <p class="ok" role="status">"Auto top-up saved."</p>
                        </Show>
                        {move || auto.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                    </section>
                    <section class="card">
                        <h2>"Top-ups"</h2>
                        <div class="table-wrap">
                            <table data-testid="topups">
                                <thead><tr><th scope="col">"Date"</th><th scope="col" class="num">"Amount"</th><th scope="col">"How"</th><th scope="col">"Status"</th><th scope="col">"Receipt"</th></tr></thead>
                                <tbody>
                                    {b.topups.iter().map(|t| view! {
                                        <tr>
                                            <td><LocalTime iso=t.time.clone()/></td>
                                            <td class="num">{t.amount.clone()}</td>
                                            <td>{if t.automatic { "auto top-up" } else { "card" }}</td>
                                            <td>{t.status.clone()}</td>
                                            <td>{t.status.starts_with("paid").then(|| view! {
                                                <a href=format!("/portal/receipts/{}", t.id) data-testid="receipt-link">"Receipt"</a>
                                            })}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    </section>
                    <section class="card">
                        <h2>"History"</h2>
                        <div class="table-wrap">
                            <table data-testid="history">
                                <thead><tr><th scope="col">"Date"</th><th scope="col">"Kind"</th><th scope="col" class="num">"Amount"</th><th scope="col">"Note"</th></tr></thead>
                                <tbody>
                                    {b.transactions.iter().map(|t| view! {
                                        <tr><td><LocalTime iso=t.time.clone()/></td><td>{t.kind.clone()}</td><td class="num">{t.amount.clone()}</td><td>{t.note.clone()}</td></tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    </section>
                    <section class="card">
                        <h2>"Settings"</h2>
                        <ActionForm action=threshold attr:class="inline-form">
                            <label>{warn_label}
                                <input type="text" inputmode="decimal" name="threshold" value=b.threshold_plain.clone()/>
                            </label>
                            <button type="submit">"Save"</button>
                        </ActionForm>
                        {move || threshold.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                        {b.has_email.then(|| view! {
                            <ActionForm action=password attr:class="inline-form">
                                <label>"Set a password for email sign-in "
                                    <input type="password" name="password" autocomplete="new-password" minlength="10" required/>
                                </label>
                                <button type="submit">"Set password"</button>
                            </ActionForm>
                        })}
                        <Show when=move || matches!(password.value().get(), Some(Ok(())))>
                            <p class="ok" role="status">"Password set."</p>
                        </Show>
                        {move || password.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                    </section>
                }.into_any() }
            })}
        </Suspense>
    }
}
