//! The two ways to take a payment: Stripe (the real async-stripe client, with a
//! configurable API base) and the built-in simulation used when no key is configured.

use std::collections::HashMap;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, CreateCheckoutSessionPaymentIntentDataSetupFutureUsage,
    ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{CheckoutSessionMode, CheckoutSessionStatus};
use stripe_core::event::ListEvent;
use stripe_types::{Currency, RangeQueryTs};

use super::Secret;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::ids;
use crate::core::store::TopupRow;

/// The event types reconciliation asks Stripe for.
pub const HANDLED_EVENTS: [&str; 7] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
];

#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeGateway")
    }
}

impl StripeGateway {
    pub fn new(secret: &Secret, api_base: Option<&str>) -> Result<StripeGateway> {
        let mut builder = ClientBuilder::new(secret.expose());
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        let client = builder.build().map_err(|e| {
            Error::invalid(
                "STRIPE_API_BASE",
                format!("cannot build the Stripe client: {e}"),
            )
        })?;
        Ok(StripeGateway { client })
    }
}

fn stripe_error(e: StripeError) -> Error {
    match e {
        StripeError::Stripe(err, status) if (400..500).contains(&status) && status != 429 => {
            Error::Invalid {
                code: "payment_provider_refused",
                message: format!(
                    "Stripe refused the request: {}",
                    err.message.as_deref().unwrap_or(err.type_.as_str())
                ),
                param: None,
            }
        }
        other => Error::Unavailable(format!("Stripe: {other}")),
    }
}

/// Where a Checkout Session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    Open,
    Paid { payment_intent: Option<String> },
    Expired,
}

/// An event as Stripe's list returns it.
#[derive(Clone, Debug)]
pub struct RemoteEvent {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    /// The whole event as JSON, like a webhook body.
    pub payload: String,
}

pub enum Gateway<'a> {
    Stripe(&'a StripeGateway),
    Simulated,
}

impl Gateway<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Gateway::Stripe(_) => "stripe",
            Gateway::Simulated => "simulated",
        }
    }

    /// Creates the Checkout Session of a top-up; returns (session id, URL to send the
    /// customer to). Idempotent on the top-up id.
    pub async fn create_session(
        &self,
        topup: &TopupRow,
        email: Option<&str>,
        success_url: &str,
        cancel_url: &str,
        public_url: &str,
    ) -> Result<(String, String)> {
        match self {
            Gateway::Simulated => {
                let id = ids::new_id("cs_sim");
                let url = format!("{public_url}/checkout/simulated/{id}");
                Ok((id, url))
            }
            Gateway::Stripe(g) => {
                let meta: HashMap<String, String> =
                    HashMap::from([("topup_id".to_string(), topup.id.clone())]);
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(Currency::USD);
                price.unit_amount = Some(topup.amount_cents);
                price.product_data = Some(ProductData::new("Credits"));
                let mut item = CreateCheckoutSessionLineItems::new();
                item.price_data = Some(price);
                item.quantity = Some(1);
                let mut intent = CreateCheckoutSessionPaymentIntentData::new();
                intent.metadata = Some(meta.clone());
                intent.setup_future_usage =
                    Some(CreateCheckoutSessionPaymentIntentDataSetupFutureUsage::OffSession);
                let mut req = CreateCheckoutSession::new()
                    .mode(CheckoutSessionMode::Payment)
                    .line_items(vec![item])
                    .success_url(success_url)
                    .cancel_url(cancel_url)
                    .metadata(meta)
                    .payment_intent_data(intent);
                if let Some(email) = email {
                    req = req.customer_email(email);
                }
                let key = IdempotencyKey::new(format!("topup-{}", topup.id))
                    .map_err(|e| Error::internal(e.to_string()))?;
                let session = req
                    .customize()
                    .request_strategy(RequestStrategy::Idempotent(key))
                    .send(&g.client)
                    .await
                    .map_err(stripe_error)?;
                let url = session.url.clone().ok_or_else(|| {
                    Error::Unavailable("Stripe returned a session without a URL".into())
                })?;
                Ok((session.id.as_str().to_string(), url))
            }
        }
    }

    pub async fn session_state(&self, session_id: &str, topup: &TopupRow) -> Result<SessionState> {
        match self {
            Gateway::Simulated => Ok(if topup.simulated_paid_at.is_some() {
                SessionState::Paid {
                    payment_intent: Some(simulated_payment_intent(topup)),
                }
            } else {
                SessionState::Open
            }),
            Gateway::Stripe(g) => {
                let s = RetrieveCheckoutSession::new(session_id)
                    .send(&g.client)
                    .await
                    .map_err(stripe_error)?;
                let paid = matches!(s.payment_status.as_str(), "paid" | "no_payment_required");
                Ok(if paid {
                    SessionState::Paid {
                        payment_intent: s
                            .payment_intent
                            .as_ref()
                            .map(|e| e.id().as_str().to_string()),
                    }
                } else if matches!(s.status, Some(CheckoutSessionStatus::Expired)) {
                    SessionState::Expired
                } else {
                    SessionState::Open
                })
            }
        }
    }

    /// Events of the types we handle created after `since` (unix seconds), oldest first.
    pub async fn events_since(&self, since: i64) -> Result<Vec<RemoteEvent>> {
        let Gateway::Stripe(g) = self else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListEvent::new()
                .created(RangeQueryTs::gt(since))
                .types(
                    HANDLED_EVENTS
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
                .limit(100);
            if let Some(a) = &after {
                req = req.starting_after(a.clone());
            }
            let page = req.send(&g.client).await.map_err(stripe_error)?;
            for e in &page.data {
                let object = miniserde::json::to_string(&e.data.object);
                let object: serde_json::Value =
                    serde_json::from_str(&object).map_err(|e| Error::internal(e.to_string()))?;
                let payload = serde_json::json!({
                    "id": e.id.as_str(),
                    "object": "event",
                    "type": e.type_.as_str(),
                    "created": e.created,
                    "livemode": e.livemode,
                    "data": {"object": object},
                });
                out.push(RemoteEvent {
                    id: e.id.as_str().to_string(),
                    event_type: e.type_.as_str().to_string(),
                    created: e.created,
                    payload: payload.to_string(),
                });
            }
            after = page.data.last().map(|e| e.id.as_str().to_string());
            if !page.has_more || after.is_none() || out.len() >= 10_000 {
                break;
            }
        }
        out.sort_by_key(|e| e.created);
        Ok(out)
    }
}

fn simulated_payment_intent(topup: &TopupRow) -> String {
    format!("pi_sim_{}", topup.id.trim_start_matches("top_"))
}

/// A real-format Stripe event about a simulated top-up's session.
pub fn simulated_event(topup: &TopupRow, event_type: &str, now: Timestamp) -> String {
    let created = now.micros() / 1_000_000;
    let session = topup.checkout_session_id.clone().unwrap_or_default();
    serde_json::json!({
        "id": ids::new_id("evt_sim"),
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": {
            "id": session,
            "object": "checkout.session",
            "created": topup.created_at.micros() / 1_000_000,
            "expires_at": created + 86_400,
            "livemode": false,
            "mode": "payment",
            "payment_status": "paid",
            "status": "complete",
            "amount_total": topup.amount_cents,
            "amount_subtotal": topup.amount_cents,
            "currency": "usd",
            "payment_intent": simulated_payment_intent(topup),
            "metadata": {"topup_id": topup.id},
            "automatic_tax": {"enabled": false},
            "custom_fields": [],
            "custom_text": {},
            "payment_method_types": ["card"],
            "shipping_options": [],
        }},
    })
    .to_string()
}
