//! Checkout pages: the built-in simulated checkout (used when no Stripe key is
//! configured) of a top-up or of a subscription's first payment, the return page that
//! fulfills a top-up's session, and the cancel page.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// A simulated session as its page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatedSessionView {
    pub session_id: String,
    /// What is paid now: the top-up, or the plan's monthly fee.
    pub amount: String,
    pub customer: String,
    pub status: String,
    /// The plan's name when the session starts a subscription.
    pub plan: Option<String>,
    /// Whether the session can still be paid.
    pub open: bool,
}

#[server(prefix = "/api", endpoint = "simulated_session")]
pub async fn simulated_session(session_id: String) -> Result<SimulatedSessionView, AppError> {
    use crate::core::portal::{SimulatedCheckout, SimulatedPurchase};
    use crate::core::vocab::{SubscriptionStatus, TopupStatus};
    use crate::core::Core;
    let core = expect_context::<Core>();
    let SimulatedCheckout { purchase, customer } =
        crate::core::portal::simulated_checkout(&core, &session_id).await?;
    let (amount, status, plan, open) = match purchase {
        SimulatedPurchase::Topup(t) => (
            t.amount.display_money(),
            t.status.to_string(),
            None,
            matches!(t.status, TopupStatus::Pending | TopupStatus::Processing),
        ),
        SimulatedPurchase::Subscription { subscription, plan } => (
            plan.terms.recurring_fee.display_money(),
            subscription.status.to_string(),
            Some(plan.name),
            subscription.status == SubscriptionStatus::Incomplete,
        ),
    };
    Ok(SimulatedSessionView {
        session_id,
        amount,
        customer: customer
            .email
            .or(customer.name)
            .unwrap_or(customer.external_id),
        status,
        plan,
        open,
    })
}

/// The simulated Pay button: a signed `checkout.session.completed` goes to our own webhook
/// endpoint, then the customer returns to the success URL.
#[server(prefix = "/api", endpoint = "simulate_payment")]
pub async fn simulate_payment(session_id: String) -> Result<(), AppError> {
    use crate::core::{payments, Core};
    let core = expect_context::<Core>();
    let topup = payments::simulate_payment(&core, &session_id).await?;
    let target = topup
        .success_url
        .unwrap_or_else(|| "/checkout/complete?session_id={CHECKOUT_SESSION_ID}".into())
        .replace("{CHECKOUT_SESSION_ID}", &session_id);
    leptos_axum::redirect(&target);
    Ok(())
}

/// The simulated Pay button of a subscription's first payment: the simulated gateway pays
/// the first invoice, then the customer returns to the portal's billing page (the session
/// keeps no success URL of its own).
#[server(prefix = "/api", endpoint = "simulate_subscription_payment")]
pub async fn simulate_subscription_payment(session_id: String) -> Result<(), AppError> {
    use crate::core::{subscriptions, Core};
    let core = expect_context::<Core>();
    subscriptions::simulate_checkout(&core, &session_id).await?;
    leptos_axum::redirect("/portal/billing");
    Ok(())
}

#[component]
pub fn SimulatedCheckout() -> impl IntoView {
    let params = use_params_map();
    let session_id = move || params.read().get("session").unwrap_or_default();
    let session = Resource::new(session_id, simulated_session);
    let pay = ServerAction::<SimulatePayment>::new();
    let subscribe = ServerAction::<SimulateSubscriptionPayment>::new();
    let error = move || {
        [
            pay.value().get().and_then(|r| r.err()),
            subscribe.value().get().and_then(|r| r.err()),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|e| view! { <p class="error">{e.to_string()}</p> })
    };
    view! {
        <section class="card simulated">
            <p class="banner-simulated" role="alert">
                "SIMULATED CHECKOUT — no card is charged and no real money moves. "
                "This page exists because no Stripe key is configured."
            </p>
            <Suspense fallback=|| view! { <h1>"Checkout"</h1><p>"Loading…"</p> }>
                {move || session.get().map(|s| match s {
                    Ok(s) => {
                        let heading = match &s.plan {
                            Some(plan) => view! {
                                <h1 data-testid="checkout-subscription">
                                    {format!("Subscribe to {plan} — {} per month (simulated)", s.amount)}
                                </h1>
                            }
                            .into_any(),
                            None => view! { <h1>"Buy credits"</h1> }.into_any(),
                        };
                        let form = s.open.then(|| {
                            let session_id = s.session_id.clone();
                            let label = format!("Pay {} (simulated)", s.amount);
                            if s.plan.is_some() {
                                view! {
                                    <ActionForm action=subscribe>
                                        <input type="hidden" name="session_id" value=session_id/>
                                        <button type="submit" data-testid="simulated-pay">{label}</button>
                                    </ActionForm>
                                }
                                .into_any()
                            } else {
                                view! {
                                    <ActionForm action=pay>
                                        <input type="hidden" name="session_id" value=session_id/>
                                        <button type="submit" data-testid="simulated-pay">{label}</button>
                                    </ActionForm>
                                }
                                .into_any()
                            }
                        });
                        view! {
                            {heading}
                            <dl class="stats">
                                <div><dt>{if s.plan.is_some() { "Per month" } else { "Amount" }}</dt><dd data-testid="checkout-amount">{s.amount.clone()}</dd></div>
                                <div><dt>"Customer"</dt><dd>{s.customer.clone()}</dd></div>
                                <div><dt>"Status"</dt><dd>{s.status.clone()}</dd></div>
                            </dl>
                            {form}
                            {(!s.open).then(|| view! { <p>"This session is closed."</p> })}
                        }
                        .into_any()
                    }
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                })}
            </Suspense>
            {error}
        </section>
    }
}

/// What the return page found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutResult {
    /// `credited`, `processing` or `failed`.
    pub state: String,
    pub amount: String,
}

#[server(prefix = "/api", endpoint = "complete_checkout")]
pub async fn complete_checkout(session_id: String) -> Result<CheckoutResult, AppError> {
    use crate::core::payments::{self, Fulfillment};
    use crate::core::Core;
    let core = expect_context::<Core>();
    let (state, topup) = match payments::fulfill_session(&core, &session_id).await? {
        Fulfillment::Credited(t) => ("credited", t),
        Fulfillment::Processing(t) => ("processing", t),
        Fulfillment::Failed(t) => ("failed", t),
    };
    Ok(CheckoutResult {
        state: state.into(),
        amount: topup.amount.display_money(),
    })
}

#[component]
pub fn CheckoutComplete() -> impl IntoView {
    let query = use_query_map();
    let session_id = move || query.read().get("session_id").unwrap_or_default();
    let result = Resource::new(session_id, complete_checkout);
    view! {
        <section class="card">
            <Suspense fallback=|| view! { <p>"Checking your payment…"</p> }>
                {move || result.get().map(|r| match r {
                    Ok(r) if r.state == "credited" => view! {
                        <h1 data-testid="checkout-result">"Payment received, credits added"</h1>
                        <p>{r.amount} " is now in your balance."</p>
                    }.into_any(),
                    Ok(r) if r.state == "processing" => view! {
                        <h1 data-testid="checkout-result">"Payment processing"</h1>
                        <p>"We will add " {r.amount} " as soon as the payment is confirmed."</p>
                    }.into_any(),
                    Ok(_) => view! {
                        <h1 data-testid="checkout-result">"Payment not completed"</h1>
                        <p>"No credits were added. You can start a new top-up."</p>
                    }.into_any(),
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
pub fn CheckoutCancelled() -> impl IntoView {
    view! {
        <section class="card">
            <h1>"Checkout cancelled"</h1>
            <p>"Nothing was charged."</p>
        </section>
    }
}
