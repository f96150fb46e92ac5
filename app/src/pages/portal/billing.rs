//! The portal's billing: the plan and its subscription (see `plan`), buying credits (packs
//! or any amount), auto top-up, the top-ups and ledger history, the low-balance warning and
//! a password for email sign-in.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::plan::{PastDue, PastDueBanner, PlanActions, PlanSection, PlanView};
use super::{failure_view, Amount, LocalTime, PortalNav, Shown};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, session_customer, typed_amount};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionLine {
    pub time: String,
    pub kind: String,
    pub amount: Shown,
    pub note: String,
}

/// One day of usage on the billing page: its requests in one line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageDayLine {
    /// `YYYY-MM-DD` (UTC), also the usage page's filter.
    pub day: String,
    pub requests: String,
    pub spend: Shown,
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
    pub available: Shown,
    pub packs: Vec<(String, String)>,
    pub threshold: String,
    pub transactions: Vec<TransactionLine>,
    /// The last 30 days of usage, a line a day, newest first.
    pub usage_days: Vec<UsageDayLine>,
    pub has_email: bool,
    pub auto: AutoTopupView,
    /// "between $1.00 and $10,000.00", from the customer's plan.
    pub topup_range: String,
    pub topups: Vec<TopupLine>,
    /// The deployment currency's code, as the amount fields' labels name it ("USD").
    pub currency: String,
    /// The low-balance threshold as the form takes it back ("5.00").
    pub threshold_plain: String,
    /// The plan section: the subscription, the plans on offer, a change's preview.
    pub plan: PlanView,
    /// Set while a renewal payment has failed.
    pub past_due: Option<PastDue>,
    /// The monthly budget as the form takes it back ("" for none), and its hard stop.
    pub budget_plain: String,
    pub budget_hard_stop: bool,
    /// The optional emails: (form field, label, on).
    pub emails: Vec<(String, String, bool)>,
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

/// The billing page; `change` is the plan the customer asks to preview a move to.
#[server(prefix = "/api", endpoint = "portal_billing")]
pub async fn portal_billing(change: Option<String>) -> Result<BillingView, AppError> {
    use crate::core::vocab::{TopupSource, TopupStatus};
    let core = core();
    let customer_id = session_customer().await?;
    let plan_section = super::plan::plan_view(&core, &customer_id, change.as_deref()).await?;
    let crate::core::portal::Billing {
        overview: o,
        plan,
        topups,
        auto_topup,
        transactions: txns,
        usage_days,
    } = crate::core::portal::billing(&core, &customer_id).await?;
    let plain = |m: crate::core::money::Money| m.display_plain();
    let cents = |c: i64| {
        core.payments
            .currency()
            .from_minor(c)
            .map(plain)
            .unwrap_or_default()
    };
    let auto = match auto_topup {
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
    Ok(BillingView {
        auto,
        plan: plan_section,
        past_due: super::plan::past_due(o.subscription.as_ref()),
        currency: core.payments.currency().code().to_ascii_uppercase(),
        threshold_plain: o.threshold.display_plain(),
        topups: topups
            .into_iter()
            .filter(|t| t.status != TopupStatus::Pending || t.checkout_url.is_none())
            .map(|t| TopupLine {
                time: t.created_at.to_rfc3339(),
                amount: t.amount.display_money(),
                automatic: t.source == TopupSource::Auto,
                status: match t.status {
                    TopupStatus::Paid if t.refunded_cents > 0 => "paid, partly refunded".into(),
                    TopupStatus::Pending | TopupStatus::Processing => "processing".into(),
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
        available: o.customer.available.into(),
        packs: o
            .topup_packs
            .iter()
            .map(|p| (p.to_string(), p.display_money()))
            .collect(),
        threshold: o.threshold.display_plain(),
        transactions: txns
            .iter()
            .map(|t| TransactionLine {
                time: t.created_at.to_rfc3339(),
                kind: t.kind.to_string(),
                amount: t.amount.into(),
                note: t.reason.clone().unwrap_or_default(),
            })
            .collect(),
        usage_days: usage_days
            .iter()
            .map(|d| UsageDayLine {
                day: crate::core::clock::Timestamp::from_micros(d.day * 86_400_000_000).day_key(),
                requests: crate::core::portal::group_digits(d.requests),
                spend: d.cost.into(),
            })
            .collect(),
        has_email: o.customer.email.is_some(),
        budget_plain: o
            .customer
            .budget_monthly
            .map(|b| b.display_plain())
            .unwrap_or_default(),
        budget_hard_stop: o.customer.budget_hard_stop,
        emails: crate::core::vocab::EmailKind::ALL
            .iter()
            .filter(|k| k.optional())
            .map(|k| {
                let label = match k {
                    crate::core::vocab::EmailKind::BalanceLow => "Balance low",
                    crate::core::vocab::EmailKind::BalanceDepleted => "Balance used up",
                    crate::core::vocab::EmailKind::BudgetReached => "Budget reached",
                    _ => "Receipts of top-ups",
                };
                (
                    format!("email_{}", k.as_str()),
                    label.to_string(),
                    !o.customer.email_opt_out.contains(k),
                )
            })
            .collect(),
    })
}

/// Saves the budget and which optional emails the customer gets (a checkbox each).
#[server(prefix = "/api", endpoint = "portal_set_alerts")]
pub async fn portal_set_alerts(
    budget: String,
    hard_stop: Option<String>,
    email_balance_low: Option<String>,
    email_balance_depleted: Option<String>,
    email_budget_reached: Option<String>,
    email_receipt: Option<String>,
) -> Result<(), AppError> {
    use crate::core::vocab::EmailKind;
    let core = core();
    let customer = session_customer().await?;
    let budget = match budget.trim() {
        "" => None,
        text => Some(
            crate::core::money::Money::parse_non_negative(&typed_amount(text))
                .map_err(|_| AppError::Invalid("The budget is an amount like 50.00.".into()))?,
        ),
    };
    let emails: Vec<EmailKind> = [
        (email_balance_low, EmailKind::BalanceLow),
        (email_balance_depleted, EmailKind::BalanceDepleted),
        (email_budget_reached, EmailKind::BudgetReached),
        (email_receipt, EmailKind::Receipt),
    ]
    .into_iter()
    .filter_map(|(on, kind)| on.map(|_| kind))
    .collect();
    crate::core::portal::set_alert_settings(&core, &customer, budget, hard_stop.is_some(), &emails)
        .await?;
    Ok(())
}

#[server(prefix = "/api", endpoint = "portal_buy_credits")]
pub async fn portal_buy_credits(amount: String) -> Result<(), AppError> {
    use crate::core::money::Money;
    use crate::core::payments::{self, TopupSource};
    let core = core();
    let customer = crate::core::portal::customer(&core, &session_customer().await?).await?;
    let amount = Money::parse(&typed_amount(&amount))
        .map_err(|_| AppError::Invalid("Enter an amount like 25 or 25.00.".into()))?;
    let mode = customer.mode;
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
    crate::core::portal::set_low_balance_threshold(&core, &customer, t).await?;
    Ok(())
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
    let mode = customer.mode;
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
    let alerts = ServerAction::<PortalSetAlerts>::new();
    let auto = ServerAction::<PortalSetAutoTopup>::new();
    let password = ServerAction::<PortalSetPassword>::new();
    let plan_actions = PlanActions::new();
    let query = use_query_map();
    let data = Resource::new(
        move || {
            (
                query.read().get("change"),
                threshold.version().get(),
                alerts.version().get(),
                auto.version().get(),
                plan_actions.version(),
            )
        },
        |(change, ..)| portal_billing(change),
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => failure_view(e),
                Ok(b) => {
                    let custom_label = format!("Custom amount ({}) ", b.currency);
                    let warn_label = format!("Warn me when my balance is below ({}) ", b.currency);
                    let code = b.currency.clone();
                    let past_due = b.past_due.clone();
                    view! {
                    <PortalNav/>
                    <Show when={let shown = past_due.is_some(); move || shown}>
                        <PastDueBanner past_due=past_due.clone().unwrap_or_default() pay=plan_actions.pay/>
                    </Show>
                    <section class="card">
                        <h1>"Buy credits"</h1>
                        <p>"Available now: " <strong data-testid="billing-available"><Amount shown=b.available.clone()/></strong></p>
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
                    <PlanSection plan=b.plan.clone() actions=plan_actions/>
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
                        {b.topups.is_empty().then(|| view! { <p class="muted">"No card top-ups yet: the buttons above start one."</p> })}
                        <div class="table-wrap" tabindex="0" hidden=b.topups.is_empty()>
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
                        <h2>"Usage by day"</h2>
                        <p class="muted">"The last 30 days, a line a day; a day opens its requests."</p>
                        {if b.usage_days.is_empty() {
                            view! { <p class="muted" data-testid="usage-days-empty">"No usage in the last 30 days."</p> }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap" tabindex="0">
                                    <table data-testid="usage-days">
                                        <thead><tr><th scope="col">"Day (UTC)"</th><th scope="col" class="num">"Requests"</th><th scope="col" class="num">"Spend"</th></tr></thead>
                                        <tbody>
                                            {b.usage_days.iter().map(|d| view! {
                                                <tr>
                                                    <td><a href=format!("/portal/usage?from={0}&to={0}", d.day)>{d.day.clone()}</a></td>
                                                    <td class="num">{d.requests.clone()}</td>
                                                    <td class="num"><Amount shown=d.spend.clone()/></td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }.into_any()
                        }}
                    </section>
                    <section class="card">
                        <h2>"Payments and credits"</h2>
                        {if b.transactions.is_empty() {
                            view! { <p class="muted">"No payments or credits yet."</p> }.into_any()
                        } else {
                            view! {
                                <div class="table-wrap" tabindex="0">
                                    <table data-testid="history">
                                        <thead><tr><th scope="col">"Date"</th><th scope="col">"Kind"</th><th scope="col" class="num">"Amount"</th><th scope="col">"Note"</th></tr></thead>
                                        <tbody>
                                            {b.transactions.iter().map(|t| view! {
                                                <tr><td><LocalTime iso=t.time.clone()/></td><td>{t.kind.clone()}</td><td class="num"><Amount shown=t.amount.clone()/></td><td>{t.note.clone()}</td></tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }.into_any()
                        }}
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
                        <ActionForm action=alerts attr:class="alerts-form">
                            <fieldset>
                                <legend>"Monthly budget"</legend>
                                <label>{format!("Budget ({}) ", b.currency)}
                                    <input type="text" inputmode="decimal" name="budget" value=b.budget_plain.clone() placeholder="none"/>
                                </label>
                                <label>
                                    <input type="checkbox" name="hard_stop" value="on" checked=b.budget_hard_stop/>
                                    " Stop new requests when it is reached (otherwise an alert only)"
                                </label>
                            </fieldset>
                            <fieldset>
                                <legend>"Emails I get"</legend>
                                {b.emails.iter().map(|(name, label, on)| view! {
                                    <label><input type="checkbox" name=name.clone() value="on" checked=*on/>" "{label.clone()}</label>
                                }).collect_view()}
                                <p class="hint">"Payment problems, renewal failures and password links are always sent."</p>
                            </fieldset>
                            <button type="submit" data-testid="save-alerts">"Save alerts"</button>
                        </ActionForm>
                        <Show when=move || matches!(alerts.value().get(), Some(Ok(())))>
                            <p class="ok" role="status">"Alerts saved."</p>
                        </Show>
                        {move || alerts.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
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
