//! The portal's API keys page: customers create, limit and revoke their own keys for the
//! metering proxy, see what each key spent, and what each conversation cost. Like every
//! portal server function, the customer comes from the session, never from arguments.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use super::{failure_view, Amount, LocalTime, PortalNav, Shown};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, session_customer, typed_amount};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLine {
    pub id: String,
    pub name: String,
    /// "$10.00 a day", or "no limit".
    pub limit: String,
    pub limit_plain: String,
    pub period: String,
    pub spent: Shown,
    pub held: Shown,
    pub active: bool,
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationLine {
    pub conversation: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost: Shown,
    /// Its cost as a whole percent of the costliest conversation's: the width of its bar.
    pub share: u8,
    pub last: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysView {
    pub keys: Vec<KeyLine>,
    pub conversations: Vec<ConversationLine>,
    pub currency: String,
    /// Spend by day stacked by key (SVG), once the customer has a key.
    pub spend_chart: Option<String>,
    pub chart_days: i64,
}

/// `part` as a whole percent of `whole` (0 when `whole` is not positive), in integers.
#[cfg(feature = "ssr")]
fn share_of(part: crate::core::money::Money, whole: crate::core::money::Money) -> u8 {
    if !whole.is_positive() || !part.is_positive() {
        return 0;
    }
    let percent = i128::from(part.nanos()) * 100 / i128::from(whole.nanos());
    u8::try_from(percent.clamp(1, 100)).unwrap_or(100)
}

#[cfg(feature = "ssr")]
fn mode_of(
    customer: &crate::core::store::CustomerRow,
) -> Result<crate::core::ledger::Mode, AppError> {
    Ok(customer.mode)
}

#[cfg(feature = "ssr")]
fn limit_of(
    spend_limit: &str,
    period: &str,
) -> Result<
    (
        Option<crate::core::money::Money>,
        crate::core::customer_keys::LimitPeriod,
    ),
    AppError,
> {
    use crate::core::customer_keys::LimitPeriod;
    use crate::core::money::Money;
    let period = LimitPeriod::parse(period)
        .ok_or_else(|| AppError::Invalid("Choose a day, a month or in total.".into()))?;
    let text = typed_amount(spend_limit);
    let limit = if text.is_empty() {
        None
    } else {
        Some(Money::parse(&text).map_err(|_| {
            AppError::Invalid("Enter a limit like 10 or 10.00, or leave it empty.".into())
        })?)
    };
    Ok((limit, period))
}

#[server(prefix = "/api", endpoint = "portal_keys")]
pub async fn portal_keys() -> Result<KeysView, AppError> {
    let core = core();
    let crate::core::portal::ApiKeys {
        keys,
        conversations,
        daily_by_key,
        first_day,
    } = crate::core::portal::api_keys(&core, &session_customer().await?).await?;
    let now = core.clock.now();
    let days = crate::core::portal::KEY_CHART_DAYS;
    let spend_chart = (!keys.is_empty()).then(|| {
        crate::charts::or_blank(crate::charts::stacked_spend(
            &daily_by_key,
            first_day,
            usize::try_from(days).unwrap_or(30),
            "key",
        ))
    });
    let costliest = conversations
        .iter()
        .map(|c| c.cost)
        .max()
        .unwrap_or_default();
    Ok(KeysView {
        spend_chart,
        chart_days: days,
        currency: core.payments.currency().code().to_ascii_uppercase(),
        keys: keys
            .into_iter()
            .map(|k| {
                let period = k.key.limit_period.as_str();
                KeyLine {
                    limit: match k.key.spend_limit {
                        Some(l) => match period {
                            "day" => format!("{} a day", l.display_money()),
                            "month" => format!("{} a month", l.display_money()),
                            _ => format!("{} in total", l.display_money()),
                        },
                        None => "no limit".into(),
                    },
                    limit_plain: k
                        .key
                        .spend_limit
                        .map(|l| l.display_plain())
                        .unwrap_or_default(),
                    period: period.into(),
                    spent: k.spent.into(),
                    held: k.held.into(),
                    active: k.key.is_active(now),
                    created: k.key.created_at.to_rfc3339(),
                    name: k.key.name,
                    id: k.key.id,
                }
            })
            .collect(),
        conversations: conversations
            .into_iter()
            .map(|c| ConversationLine {
                conversation: c.conversation,
                requests: c.requests,
                tokens: c.tokens,
                cost: c.cost.into(),
                share: share_of(c.cost, costliest),
                last: c.last_at.to_rfc3339(),
            })
            .collect(),
    })
}

/// Makes a key and returns its secret, shown this once.
#[server(prefix = "/api", endpoint = "portal_create_key")]
pub async fn portal_create_key(
    name: String,
    spend_limit: String,
    limit_period: String,
) -> Result<String, AppError> {
    use crate::core::customer_keys::{self, NewKey};
    let core = core();
    let customer = crate::core::portal::customer(&core, &session_customer().await?).await?;
    let (limit, period) = limit_of(&spend_limit, &limit_period)?;
    let name = name.trim();
    let (_, secret) = customer_keys::create(
        &core,
        mode_of(&customer)?,
        &customer.id,
        &NewKey {
            name: (!name.is_empty()).then(|| name.to_string()),
            spend_limit: limit,
            limit_period: Some(period),
            expires_at: None,
        },
    )
    .await?;
    Ok(secret)
}

#[server(prefix = "/api", endpoint = "portal_set_key_limit")]
pub async fn portal_set_key_limit(
    id: String,
    spend_limit: String,
    limit_period: String,
) -> Result<(), AppError> {
    let core = core();
    let customer = crate::core::portal::customer(&core, &session_customer().await?).await?;
    let (limit, period) = limit_of(&spend_limit, &limit_period)?;
    crate::core::customer_keys::set_limit(
        &core,
        mode_of(&customer)?,
        &customer.id,
        &id,
        limit,
        period,
    )
    .await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "portal_revoke_key")]
pub async fn portal_revoke_key(id: String) -> Result<(), AppError> {
    let core = core();
    let customer = crate::core::portal::customer(&core, &session_customer().await?).await?;
    crate::core::customer_keys::revoke(&core, mode_of(&customer)?, &customer.id, &id).await?;
    Ok(())
}

#[component]
fn PeriodSelect(#[prop(into)] selected: String) -> impl IntoView {
    view! {
        <select name="limit_period">
            {[("day", "a day"), ("month", "a month"), ("total", "in total")].into_iter().map(|(v, label)| {
                view! { <option value=v selected=selected == v>{label}</option> }
            }).collect_view()}
        </select>
    }
}

#[component]
pub fn Keys() -> impl IntoView {
    let create = ServerAction::<PortalCreateKey>::new();
    let limit = ServerAction::<PortalSetKeyLimit>::new();
    let revoke = ServerAction::<PortalRevokeKey>::new();
    let data = Resource::new(
        move || {
            (
                create.version().get(),
                limit.version().get(),
                revoke.version().get(),
            )
        },
        |_| portal_keys(),
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure_view(e),
                Ok(v) => {
                    let code = v.currency.clone();
                    view! {
                    <PortalNav/>
                    <section class="card" aria-labelledby="new-key-title">
                        <h1 id="new-key-title">"API keys"</h1>
                        <p>"A key lets your code call the AI models through us, charged to your balance. Give each app or teammate its own key, with a limit if you like."</p>
                        <ActionForm action=create attr:class="stacked-form" attr:data-testid="create-key-form">
                            <label>"Name " <input type="text" name="name" placeholder="my app" maxlength="200" data-testid="key-name"/></label>
                            <label>{format!("Spend limit ({code}, optional) ")}
                                <input type="text" inputmode="decimal" name="spend_limit" placeholder="10.00" data-testid="key-limit"/>
                            </label>
                            <label>"Per " <PeriodSelect selected="month"/></label>
                            <button type="submit" data-testid="create-key">"Create key"</button>
                        </ActionForm>
                        {move || create.value().get().map(|r| match r {
                            Ok(secret) => view! {
                                <div class="ok" role="status">
                                    <p>"Your new key. Copy it now: it is shown only once."</p>
                                    <code class="secret" data-testid="new-key-secret">{secret}</code>
                                </div>
                            }.into_any(),
                            Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                        })}
                    </section>
                    <section class="card">
                        <h2>"Your keys"</h2>
                        <div class="table-wrap" tabindex="0">
                            <table data-testid="keys">
                                <thead><tr><th scope="col">"Name"</th><th scope="col">"Limit"</th><th scope="col" class="num">"Spent"</th><th scope="col" class="num">"Held now"</th><th scope="col">"Created"</th><th scope="col">"Change"</th></tr></thead>
                                <tbody>
                                    {v.keys.clone().into_iter().map(|k| {
                                        let id = k.id.clone();
                                        let id2 = k.id.clone();
                                        view! {
                                        <tr data-testid="key-row" data-active=k.active.to_string()>
                                            <td>{k.name.clone()} " " <span class="muted">{k.id.clone()}</span></td>
                                            <td>{k.limit.clone()}</td>
                                            <td class="num" data-testid="key-spent"><Amount shown=k.spent.clone()/></td>
                                            <td class="num"><Amount shown=k.held.clone()/></td>
                                            <td><LocalTime iso=k.created.clone()/></td>
                                            <td>{if k.active {
                                                view! {
                                                    <ActionForm action=limit attr:class="inline-form">
                                                        <input type="hidden" name="id" value=id/>
                                                        <label>"Limit " <input type="text" inputmode="decimal" name="spend_limit" value=k.limit_plain.clone() size="8"/></label>
                                                        <label>"per " <PeriodSelect selected=k.period.clone()/></label>
                                                        <button type="submit">"Save"</button>
                                                    </ActionForm>
                                                    <ActionForm action=revoke attr:class="inline-form">
                                                        <input type="hidden" name="id" value=id2/>
                                                        <button type="submit" class="danger" data-testid="revoke-key">"Revoke"</button>
                                                    </ActionForm>
                                                }.into_any()
                                            } else {
                                                view! { <span class="muted">"revoked"</span> }.into_any()
                                            }}</td>
                                        </tr>
                                    }}).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        {move || limit.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
                    </section>
                    {v.spend_chart.clone().map(|svg| view! {
                        <section class="card">
                            <h2>{format!("Spend, last {} days, by key", v.chart_days)}</h2>
                            <div class="chart" data-testid="key-spend-chart" inner_html=svg></div>
                        </section>
                    })}
                    <section class="card">
                        <h2>"Conversations"</h2>
                        <p class="muted">"Requests your app sent with a Tally-Conversation header, totalled; each bar is its cost beside the costliest."</p>
                        {if v.conversations.is_empty() {
                            view! {
                                <p class="muted" data-testid="no-conversations">"No conversations yet. Send a Tally-Conversation header with your requests to see what each one cost."</p>
                            }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap" tabindex="0">
                                    <table data-testid="conversations">
                                        <thead><tr><th scope="col">"Conversation"</th><th scope="col" class="num">"Requests"</th><th scope="col" class="num">"Tokens"</th><th scope="col" class="num">"Cost"</th><th scope="col">"Share"</th><th scope="col">"Last"</th></tr></thead>
                                        <tbody>
                                            {v.conversations.clone().into_iter().map(|c| view! {
                                                <tr data-testid="conversation-row">
                                                    <td>{c.conversation.clone()}</td>
                                                    <td class="num">{c.requests}</td>
                                                    <td class="num">{c.tokens}</td>
                                                    <td class="num"><Amount shown=c.cost.clone()/></td>
                                                    <td class="bar-cell"><span class="bar" data-testid="conversation-bar" style=format!("width: {}%", c.share)></span><span class="visually-hidden">{format!("{} % of the costliest", c.share)}</span></td>
                                                    <td><LocalTime iso=c.last.clone()/></td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }.into_any()
                        }}
                    </section>
                }.into_any() }
            })}
        </Suspense>
    }
}
