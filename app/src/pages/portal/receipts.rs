//! The portal's receipt for one paid top-up.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use super::{failure_view, LocalTime, PortalNav};
use crate::error::AppError;

#[cfg(feature = "ssr")]
use super::{core, session_customer};

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
        method: match (t.gateway, t.source) {
            (crate::core::vocab::GatewayKind::Simulated, _) => {
                "simulated payment (test mode)".into()
            }
            (_, crate::core::vocab::TopupSource::Auto) => "saved card, auto top-up".into(),
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
