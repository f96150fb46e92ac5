//! The portal's plan, a section of the billing page: the customer's subscription (plan,
//! status, renewal, fee, a downgrade waiting for the period's end), subscribing through
//! Checkout, changing plan after a preview of what it costs, cancelling and resuming, the
//! invoices, and the banner of a failed renewal that the overview shows too.

use leptos::prelude::*;
use leptos_router::components::Form;
use serde::{Deserialize, Serialize};

use super::LocalTime;
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, session_customer};
#[cfg(feature = "ssr")]
use crate::core::{
    plans::Plan, portal, store::InvoiceRow, store::SubscriptionRow, subscriptions, Core,
};

/// A failed renewal: the customer keeps access until the grace days are over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastDue {
    /// When access stops unless the invoice is paid (RFC 3339), if the subscription says.
    pub grace_ends_at: Option<String>,
}

/// A plan sold as a subscription, as the portal offers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOffer {
    pub id: String,
    pub name: String,
    /// "$20.00", a month.
    pub fee: String,
    /// The credits each paid month brings.
    pub credits: String,
}

/// The customer's subscription as the plan section shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionView {
    pub plan_id: String,
    pub plan: String,
    /// `incomplete`, `active` or `past_due` (a canceled one is not shown).
    pub status: String,
    /// The current period's end (RFC 3339): the next renewal, or the end when cancelling.
    pub period_end: Option<String>,
    /// The plan's fee, a month.
    pub fee: String,
    pub cancel_at_period_end: bool,
    /// The plan it moves to when the period ends (a downgrade), by name.
    pub pending_plan: Option<String>,
    /// Where an incomplete subscription's first payment is made.
    pub checkout_url: Option<String>,
}

/// What moving to another plan costs, shown before the customer confirms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeView {
    pub plan_id: String,
    pub plan: String,
    /// An upgrade takes effect now; a downgrade at the period's end.
    pub upgrade: bool,
    pub due_now: String,
    pub credits_now: String,
    /// RFC 3339.
    pub effective_at: String,
    /// The new plan's fee, a month.
    pub recurring_fee: String,
}

/// A subscription invoice as the customer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// RFC 3339.
    pub time: String,
    /// "2026-05-01 – 2026-06-01" (UTC days).
    pub period: String,
    pub amount: String,
    /// `open`, `paid`, `failed` or `action_required`.
    pub status: String,
    /// The gateway's page of the invoice, when it has one.
    pub url: Option<String>,
}

/// Everything the plan section shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanView {
    /// None when the customer never subscribed or their subscription is canceled.
    pub subscription: Option<SubscriptionView>,
    /// The plans with a recurring fee, in catalog order.
    pub offers: Vec<PlanOffer>,
    /// The change the page asks about (`?change=plan`): its preview, or why there is none.
    pub change: Option<Result<ChangeView, String>>,
    pub invoices: Vec<InvoiceLine>,
}

/// The banner of a failed renewal, if `sub` is past due.
#[cfg(feature = "ssr")]
pub(super) fn past_due(sub: Option<&SubscriptionRow>) -> Option<PastDue> {
    sub.filter(|s| subscriptions::past_due_banner(s))
        .map(|s| PastDue {
            grace_ends_at: s.grace_ends_at.map(|t| t.to_rfc3339()),
        })
}

/// The plan section of the signed-in customer's billing page; `change` is the plan the
/// customer asks to preview a move to.
#[cfg(feature = "ssr")]
pub(super) async fn plan_view(
    core: &Core,
    customer_id: &str,
    change: Option<&str>,
) -> Result<PlanView, AppError> {
    use crate::core::vocab::SubscriptionStatus;
    let portal::SubscriptionDetail {
        subscription,
        plans,
        invoices,
    } = portal::subscription_detail(core, customer_id).await?;
    let current = subscription.filter(|s| s.status != SubscriptionStatus::Canceled);
    let change = match (change.filter(|c| !c.is_empty()), &current) {
        (Some(plan_id), Some(s)) if plan_id != s.plan_id => {
            Some(change_view(core, customer_id, plan_id).await)
        }
        _ => None,
    };
    Ok(PlanView {
        subscription: current.as_ref().map(|s| subscription_view(s, &plans)),
        offers: plans
            .iter()
            .filter(|p| p.terms.recurring_fee.is_positive())
            .map(|p| PlanOffer {
                id: p.id.clone(),
                name: p.name.clone(),
                fee: p.terms.recurring_fee.display_money(),
                credits: p.terms.included_credits.display_money(),
            })
            .collect(),
        change,
        invoices: invoices.iter().map(|i| invoice_line(core, i)).collect(),
    })
}

#[cfg(feature = "ssr")]
fn subscription_view(s: &SubscriptionRow, plans: &[Plan]) -> SubscriptionView {
    let plan = |id: &str| plans.iter().find(|p| p.id == id);
    // A plan removed from the catalog still has its id to show.
    let name = |id: &str| plan(id).map_or_else(|| id.to_string(), |p| p.name.clone());
    SubscriptionView {
        plan_id: s.plan_id.clone(),
        plan: name(&s.plan_id),
        status: s.status.to_string(),
        period_end: s.current_period_end.map(|t| t.to_rfc3339()),
        fee: plan(&s.plan_id)
            .map(|p| p.terms.recurring_fee.display_money())
            .unwrap_or_default(),
        cancel_at_period_end: s.cancel_at_period_end,
        pending_plan: s.pending_plan_id.as_deref().map(name),
        checkout_url: s.checkout_url.clone(),
    }
}

/// The preview of a move to `plan_id`, or the reason it cannot be made, in words.
#[cfg(feature = "ssr")]
async fn change_view(core: &Core, customer_id: &str, plan_id: &str) -> Result<ChangeView, String> {
    let portal::PlanChange { plan, preview: p } = portal::plan_change(core, customer_id, plan_id)
        .await
        .map_err(|e| AppError::from(e).to_string())?;
    Ok(ChangeView {
        plan_id: plan.id,
        plan: plan.name,
        upgrade: p.upgrade,
        due_now: p.due_now.display_money(),
        credits_now: p.credits_now.display_money(),
        effective_at: p.effective_at.to_rfc3339(),
        recurring_fee: p.recurring_fee.display_money(),
    })
}

#[cfg(feature = "ssr")]
fn invoice_line(core: &Core, i: &InvoiceRow) -> InvoiceLine {
    InvoiceLine {
        time: i.created_at.to_rfc3339(),
        period: format!("{} – {}", i.period_start.day_key(), i.period_end.day_key()),
        amount: core
            .payments
            .currency()
            .from_minor(i.amount_cents)
            .map(|m| m.display_money())
            .unwrap_or_default(),
        status: i.status.to_string(),
        url: i.hosted_invoice_url.clone(),
    }
}

/// The signed-in customer, with their mode.
#[cfg(feature = "ssr")]
async fn signed_in(core: &Core) -> Result<crate::core::store::CustomerRow, AppError> {
    Ok(portal::customer(core, &session_customer().await?).await?)
}

/// Subscribes to `plan`: the browser goes on to the Checkout of the first payment, and
/// comes back to the billing page.
#[server(prefix = "/api", endpoint = "portal_subscribe")]
pub async fn portal_subscribe(plan: String) -> Result<(), AppError> {
    let core = core();
    let customer = signed_in(&core).await?;
    let back = format!("{}/portal/billing", core.payments.public_url());
    let sub = subscriptions::subscribe(
        &core,
        customer.mode,
        &customer.id,
        &plan,
        Some(&back),
        Some(&back),
    )
    .await?;
    leptos_axum::redirect(&sub.checkout_url.unwrap_or_else(|| "/portal/billing".into()));
    Ok(())
}

/// Moves the subscription to `plan` (an upgrade now, a downgrade at the period's end),
/// then back to the billing page without the preview.
#[server(prefix = "/api", endpoint = "portal_change_plan")]
pub async fn portal_change_plan(plan: String) -> Result<(), AppError> {
    let core = core();
    let customer = signed_in(&core).await?;
    subscriptions::change_plan(&core, customer.mode, &customer.id, &plan).await?;
    leptos_axum::redirect("/portal/billing");
    Ok(())
}

/// Cancels the subscription at the period's end.
#[server(prefix = "/api", endpoint = "portal_cancel_subscription")]
pub async fn portal_cancel_subscription() -> Result<(), AppError> {
    let core = core();
    let customer = signed_in(&core).await?;
    subscriptions::cancel(&core, customer.mode, &customer.id).await?;
    Ok(())
}

/// Takes back a cancellation before the period ends.
#[server(prefix = "/api", endpoint = "portal_resume_subscription")]
pub async fn portal_resume_subscription() -> Result<(), AppError> {
    let core = core();
    let customer = signed_in(&core).await?;
    subscriptions::resume(&core, customer.mode, &customer.id).await?;
    Ok(())
}

/// Pays the open invoice of a failed renewal: Stripe's page of the invoice takes a new
/// card; the simulated gateway pays it at once and the page stays.
#[server(prefix = "/api", endpoint = "portal_pay_open_invoice")]
pub async fn portal_pay_open_invoice() -> Result<(), AppError> {
    let core = core();
    let customer = signed_in(&core).await?;
    if let Some(url) = subscriptions::pay_open_invoice(&core, customer.mode, &customer.id).await? {
        leptos_axum::redirect(&url);
    }
    Ok(())
}

/// The plan section's actions; the billing page reloads its data after each.
#[derive(Clone, Copy)]
pub struct PlanActions {
    pub subscribe: ServerAction<PortalSubscribe>,
    pub change: ServerAction<PortalChangePlan>,
    pub cancel: ServerAction<PortalCancelSubscription>,
    pub resume: ServerAction<PortalResumeSubscription>,
    pub pay: ServerAction<PortalPayOpenInvoice>,
}

impl PlanActions {
    pub fn new() -> PlanActions {
        PlanActions {
            subscribe: ServerAction::new(),
            change: ServerAction::new(),
            cancel: ServerAction::new(),
            resume: ServerAction::new(),
            pay: ServerAction::new(),
        }
    }

    /// Grows with every finished action (tracked, for a resource's source).
    pub fn version(&self) -> usize {
        self.subscribe.version().get()
            + self.change.version().get()
            + self.cancel.version().get()
            + self.resume.version().get()
            + self.pay.version().get()
    }

    /// The failure of the latest action that failed, if any.
    fn error(&self) -> Option<AppError> {
        [
            self.subscribe.value().get().and_then(|r| r.err()),
            self.change.value().get().and_then(|r| r.err()),
            self.cancel.value().get().and_then(|r| r.err()),
            self.resume.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
    }
}

impl Default for PlanActions {
    fn default() -> Self {
        PlanActions::new()
    }
}

/// "past_due" → "past due".
fn status_words(status: &str) -> String {
    status.replace('_', " ")
}

/// The banner of a failed renewal, with the button that pays the open invoice.
#[component]
pub fn PastDueBanner(past_due: PastDue, pay: ServerAction<PortalPayOpenInvoice>) -> impl IntoView {
    let until = match past_due.grace_ends_at {
        Some(t) => view! {
            "Access continues until " <LocalTime iso=t/> "; update your card to keep using the service."
        }
        .into_any(),
        None => view! { "Update your card to keep using the service." }.into_any(),
    };
    view! {
        <div class="banner-low past-due-banner" role="alert" data-testid="past-due-banner">
            <p>"Your renewal payment failed. " {until}</p>
            <ActionForm action=pay attr:class="inline-form">
                <button type="submit" data-testid="pay-open-invoice">"Update card and pay"</button>
            </ActionForm>
            {move || pay.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error">{e.to_string()}</p> })}
        </div>
    }
}

/// The plan section of the billing page; shown only when the deployment sells plans as
/// subscriptions or the customer has one.
#[component]
pub fn PlanSection(plan: PlanView, actions: PlanActions) -> impl IntoView {
    let shown = plan.subscription.is_some() || !plan.offers.is_empty() || !plan.invoices.is_empty();
    let PlanView {
        subscription,
        offers,
        change,
        invoices,
    } = plan;
    shown.then(|| view! {
        <section class="card" aria-labelledby="plan-title" data-testid="plan-section">
            <h2 id="plan-title">"Plan"</h2>
            {match subscription {
                Some(s) => view! { <CurrentSubscription sub=s offers=offers actions=actions/> }.into_any(),
                None => view! { <PlanOffers offers=offers actions=actions/> }.into_any(),
            }}
            {change.map(|c| view! { <ChangePreview change=c actions=actions/> })}
            {move || actions.error().map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            {(!invoices.is_empty()).then(|| view! { <Invoices invoices=invoices/> })}
        </section>
    })
}

/// The subscription in force, with its plan change, cancel and resume.
#[component]
fn CurrentSubscription(
    sub: SubscriptionView,
    offers: Vec<PlanOffer>,
    actions: PlanActions,
) -> impl IntoView {
    let incomplete = sub.status == "incomplete";
    let others: Vec<PlanOffer> = offers.into_iter().filter(|o| o.id != sub.plan_id).collect();
    let period_end = sub.period_end.clone();
    view! {
        <dl class="stats">
            <div><dt>"Plan"</dt><dd data-testid="plan-name">{sub.plan.clone()}</dd></div>
            <div><dt>"Status"</dt><dd data-testid="plan-status">
                <span class=format!("status status-{}", sub.status)>{status_words(&sub.status)}</span>
            </dd></div>
            <div><dt>"Amount"</dt><dd data-testid="plan-fee">{sub.fee.clone()} " / month"</dd></div>
            <div><dt>{if sub.cancel_at_period_end { "Ends on" } else { "Next renewal" }}</dt>
                <dd data-testid="plan-renews">{match period_end.clone() {
                    Some(t) => view! { <LocalTime iso=t/> }.into_any(),
                    None => view! { "—" }.into_any(),
                }}</dd></div>
        </dl>
        {sub.cancel_at_period_end.then(|| view! {
            <p class="muted" data-testid="plan-cancels">"Cancels at the end of the period; you keep the plan and its credits until then."</p>
        })}
        {sub.pending_plan.clone().map(|p| view! {
            <p data-testid="plan-pending">"Moves to " {p} " when this period ends"
                {period_end.clone().map(|t| view! { ", on " <LocalTime iso=t/> })} "."</p>
        })}
        {incomplete.then(|| view! {
            <p>"Waiting for the first payment. "
                {sub.checkout_url.clone().map(|u| view! { <a class="button" href=u data-testid="finish-checkout">"Finish checkout"</a> })}
            </p>
        })}
        {(!incomplete && !others.is_empty()).then(|| view! {
            <Form method="GET" action="/portal/billing" attr:class="inline-form">
                <label>"Change plan to "
                    <select name="change" data-testid="change-plan-select">
                        {others.into_iter().map(|o| view! {
                            <option value=o.id>{format!("{} — {} / month", o.name, o.fee)}</option>
                        }).collect_view()}
                    </select>
                </label>
                <button type="submit" data-testid="change-plan-preview">"Preview the change"</button>
            </Form>
        })}
        {(!incomplete).then(|| if sub.cancel_at_period_end {
            view! {
                <ActionForm action=actions.resume attr:class="inline-form">
                    <button type="submit" data-testid="resume-subscription">"Resume subscription"</button>
                </ActionForm>
            }.into_any()
        } else {
            view! {
                <ActionForm action=actions.cancel attr:class="inline-form">
                    <button type="submit" data-testid="cancel-subscription">"Cancel at period end"</button>
                </ActionForm>
            }.into_any()
        })}
    }
}

/// The plans on offer, each with its Subscribe button.
#[component]
fn PlanOffers(offers: Vec<PlanOffer>, actions: PlanActions) -> impl IntoView {
    view! {
        <p>"Subscribe to a plan for credits every month."</p>
        <div class="table-wrap" tabindex="0">
            <table data-testid="plan-offers">
                <thead><tr><th scope="col">"Plan"</th><th scope="col" class="num">"Per month"</th><th scope="col" class="num">"Credits each month"</th><th scope="col"></th></tr></thead>
                <tbody>
                    {offers.into_iter().map(|o| {
                        let testid = format!("subscribe-{}", o.id);
                        let label = format!("Subscribe to {}", o.name);
                        let plan_id = o.id;
                        view! {
                            <tr>
                                <td>{o.name}</td>
                                <td class="num">{o.fee}</td>
                                <td class="num">{o.credits}</td>
                                <td>
                                    <ActionForm action=actions.subscribe>
                                        <input type="hidden" name="plan" value=plan_id/>
                                        <button type="submit" data-testid=testid>{label}</button>
                                    </ActionForm>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// What a plan change costs, and the button that makes it.
#[component]
fn ChangePreview(change: Result<ChangeView, String>, actions: PlanActions) -> impl IntoView {
    match change {
        Err(e) => {
            view! { <p class="error" role="alert" data-testid="change-preview-error">{e}</p> }
                .into_any()
        }
        Ok(c) => {
            let terms = if c.upgrade {
                let words = format!(
                    "You pay {} now and get {} credits now, then {} a month.",
                    c.due_now, c.credits_now, c.recurring_fee
                );
                view! { {words} }.into_any()
            } else {
                let words = format!(" you pay {} a month.", c.recurring_fee);
                view! { "From " <LocalTime iso=c.effective_at/> {words} }.into_any()
            };
            let heading = format!("Change to {}", c.plan);
            let confirm = format!("Switch to {}", c.plan);
            let plan_id = c.plan_id;
            view! {
                <div data-testid="change-preview">
                    <h3>{heading}</h3>
                    <p data-testid="change-preview-terms">{terms}</p>
                    <ActionForm action=actions.change attr:class="inline-form">
                        <input type="hidden" name="plan" value=plan_id/>
                        <button type="submit" data-testid="change-plan-confirm">{confirm}</button>
                        <a href="/portal/billing" data-testid="keep-plan">"Keep my plan"</a>
                    </ActionForm>
                </div>
            }
            .into_any()
        }
    }
}

/// The subscription's invoices, newest first.
#[component]
fn Invoices(invoices: Vec<InvoiceLine>) -> impl IntoView {
    view! {
        <h3>"Invoices"</h3>
        <div class="table-wrap" tabindex="0">
            <table data-testid="invoices">
                <thead><tr><th scope="col">"Date"</th><th scope="col">"Period"</th><th scope="col" class="num">"Amount"</th><th scope="col">"Status"</th><th scope="col">"Invoice"</th></tr></thead>
                <tbody>
                    {invoices.into_iter().map(|i| view! {
                        <tr>
                            <td><LocalTime iso=i.time/></td>
                            <td>{i.period}</td>
                            <td class="num">{i.amount}</td>
                            <td>{status_words(&i.status)}</td>
                            <td>{i.url.map(|u| view! { <a href=u rel="noopener" data-testid="invoice-link">"View"</a> })}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
