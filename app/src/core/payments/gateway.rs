//! The two ways to take a payment: Stripe (the real async-stripe client, with a
//! configurable API base) and the built-in simulation used when no key is configured.

use std::collections::HashMap;

use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionCustomerCreation, CreateCheckoutSessionLineItems,
    CreateCheckoutSessionLineItemsPriceData, CreateCheckoutSessionPaymentIntentData,
    CreateCheckoutSessionPaymentIntentDataSetupFutureUsage, ProductData, RetrieveCheckoutSession,
};
use stripe_checkout::{CheckoutSessionMode, CheckoutSessionStatus};
use stripe_core::event::ListEvent;
use stripe_core::payment_intent::{
    CreatePaymentIntent, CreatePaymentIntentOffSession, RetrievePaymentIntent,
};
use stripe_core::PaymentIntentStatus;
use stripe_types::{Currency, RangeBoundsTs, RangeQueryTs};

use super::Secret;
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::ids;
use crate::core::store::{AutoTopupRow, TopupRow};
use crate::core::vocab::GatewayKind;

/// The event types reconciliation asks Stripe for.
pub const HANDLED_EVENTS: [&str; 15] = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.payment_action_required",
];

#[derive(Clone)]
pub struct StripeGateway {
    pub(super) client: Client,
    /// The deployment's currency as Stripe names it.
    pub(super) currency: Currency,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeGateway")
    }
}

/// How long one attempt of a call to Stripe may take by default, connecting included
/// (async-stripe has no limit of its own): a hung Stripe answers `Unavailable` then.
pub const STRIPE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl StripeGateway {
    pub fn new(
        secret: &Secret,
        api_base: Option<&str>,
        currency: &crate::core::currency::Currency,
        timeout: std::time::Duration,
    ) -> Result<StripeGateway> {
        let currency = currency.code().parse::<Currency>().map_err(|_| {
            Error::invalid(
                "TALLY_CURRENCY",
                format!("Stripe does not know the currency {}", currency.code()),
            )
        })?;
        let mut builder = ClientBuilder::new(secret.expose()).timeout(timeout);
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        let client = builder.build().map_err(|e| {
            Error::invalid(
                "STRIPE_API_BASE",
                format!("cannot build the Stripe client: {e}"),
            )
        })?;
        Ok(StripeGateway { client, currency })
    }
}

pub(super) fn stripe_error(e: StripeError) -> Error {
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
    Paid {
        payment_intent: Option<String>,
        /// The Stripe customer Checkout saved the card on.
        customer: Option<String>,
    },
    Expired,
}

/// Where an off-session payment stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Charge {
    Succeeded {
        payment_intent: String,
    },
    /// Not settled yet; a `payment_intent.*` event will tell.
    Processing {
        payment_intent: String,
    },
    /// Declined, or the bank wants the customer present.
    Failed {
        payment_intent: Option<String>,
        reason: String,
    },
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
    pub fn name(&self) -> GatewayKind {
        match self {
            Gateway::Stripe(_) => GatewayKind::Stripe,
            Gateway::Simulated => GatewayKind::Simulated,
        }
    }

    /// Creates the Checkout Session of a top-up; returns (session id, URL to send the
    /// customer to). Idempotent on the top-up id.
    pub async fn create_session(
        &self,
        topup: &TopupRow,
        email: Option<&str>,
        stripe_customer: Option<&str>,
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
                let mut price = CreateCheckoutSessionLineItemsPriceData::new(g.currency.clone());
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
                // Reuse the Stripe customer that holds the saved card; otherwise have
                // Checkout create one so the card can be saved for auto top-up.
                match (stripe_customer, email) {
                    (Some(c), _) => req = req.customer(c),
                    (None, Some(email)) => {
                        req = req
                            .customer_email(email)
                            .customer_creation(CreateCheckoutSessionCustomerCreation::Always)
                    }
                    (None, None) => {
                        req = req.customer_creation(CreateCheckoutSessionCustomerCreation::Always)
                    }
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
                    customer: Some(simulated_customer(topup)),
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
                        customer: s.customer.as_ref().map(|e| e.id().as_str().to_string()),
                    }
                } else if matches!(s.status, Some(CheckoutSessionStatus::Expired)) {
                    SessionState::Expired
                } else {
                    SessionState::Open
                })
            }
        }
    }

    /// The card a paid payment used, to save it for auto top-up.
    pub async fn payment_method_of(&self, payment_intent: &str) -> Result<Option<String>> {
        match self {
            Gateway::Simulated => Ok(Some(SIMULATED_CARD.to_string())),
            Gateway::Stripe(g) => {
                let pi = RetrievePaymentIntent::new(payment_intent)
                    .send(&g.client)
                    .await
                    .map_err(stripe_error)?;
                Ok(pi.payment_method.map(|m| m.id().as_str().to_string()))
            }
        }
    }

    /// Charges a saved card without the customer present: an off-session, confirmed
    /// PaymentIntent, idempotent on the top-up id. The simulation answers "processing"
    /// and its caller posts the signed `payment_intent.succeeded` event itself.
    pub async fn charge_saved_card(&self, topup: &TopupRow, card: &AutoTopupRow) -> Result<Charge> {
        match self {
            Gateway::Simulated => Ok(Charge::Processing {
                payment_intent: simulated_payment_intent(topup),
            }),
            Gateway::Stripe(g) => {
                let (Some(customer), Some(method)) =
                    (&card.stripe_customer_id, &card.payment_method_id)
                else {
                    return Ok(Charge::Failed {
                        payment_intent: None,
                        reason: "no saved card".into(),
                    });
                };
                let key = IdempotencyKey::new(format!("topup-{}", topup.id))
                    .map_err(|e| Error::internal(e.to_string()))?;
                let sent = CreatePaymentIntent::new(topup.amount_cents, g.currency.clone())
                    .customer(customer)
                    .payment_method(method)
                    .off_session(CreatePaymentIntentOffSession::Bool(true))
                    .confirm(true)
                    .description("Credits (auto top-up)")
                    .metadata(HashMap::from([("topup_id".to_string(), topup.id.clone())]))
                    .customize()
                    .request_strategy(RequestStrategy::Idempotent(key))
                    .send(&g.client)
                    .await;
                match sent {
                    Ok(pi) => Ok(charge_from_status(pi.id.as_str(), &pi.status)),
                    // A decline: Stripe answers 402 with the card error.
                    Err(StripeError::Stripe(err, status))
                        if (400..500).contains(&status) && status != 429 =>
                    {
                        Ok(Charge::Failed {
                            payment_intent: err
                                .payment_intent
                                .as_ref()
                                .map(|p| p.id.as_str().to_string()),
                            reason: err
                                .message
                                .clone()
                                .unwrap_or_else(|| "the card was declined".into()),
                        })
                    }
                    Err(e) => Err(stripe_error(e)),
                }
            }
        }
    }

    /// Where a PaymentIntent stands now (reconciliation of auto top-ups).
    pub async fn payment_intent_state(&self, payment_intent: &str) -> Result<Charge> {
        match self {
            // The simulated bank approved the charge when it was made.
            Gateway::Simulated => Ok(Charge::Succeeded {
                payment_intent: payment_intent.to_string(),
            }),
            Gateway::Stripe(g) => {
                let pi = RetrievePaymentIntent::new(payment_intent)
                    .send(&g.client)
                    .await
                    .map_err(stripe_error)?;
                Ok(charge_from_status(pi.id.as_str(), &pi.status))
            }
        }
    }

    /// Events of the types we handle created after `since` and, when given, at or before
    /// `upto` (unix seconds), oldest first, with whether that is all of them. Stripe lists
    /// newest first, so when there are more than `max` these are the newest `max` (page
    /// by page, whole pages): the caller asks again with `upto` at the oldest returned.
    pub async fn events_between(
        &self,
        since: i64,
        upto: Option<i64>,
        max: usize,
    ) -> Result<(Vec<RemoteEvent>, bool)> {
        let Gateway::Stripe(g) = self else {
            return Ok((Vec::new(), true));
        };
        let created = RangeQueryTs::Bounds(RangeBoundsTs {
            gt: Some(since),
            lte: upto,
            ..RangeBoundsTs::default()
        });
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut req = ListEvent::new()
                .created(created)
                .types(
                    HANDLED_EVENTS
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
                .limit(i64::try_from(max.clamp(1, 100)).unwrap_or(100));
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
            if !page.has_more || after.is_none() {
                out.sort_by_key(|e| e.created);
                return Ok((out, true));
            }
            if out.len() >= max {
                out.sort_by_key(|e| e.created);
                return Ok((out, false));
            }
        }
    }
}

fn charge_from_status(id: &str, status: &PaymentIntentStatus) -> Charge {
    let payment_intent = id.to_string();
    match status {
        PaymentIntentStatus::Succeeded => Charge::Succeeded { payment_intent },
        PaymentIntentStatus::Processing => Charge::Processing { payment_intent },
        PaymentIntentStatus::RequiresAction => Charge::Failed {
            payment_intent: Some(payment_intent),
            reason: "the bank asks for the cardholder to confirm; buy credits in the portal once"
                .into(),
        },
        other => Charge::Failed {
            payment_intent: Some(payment_intent),
            reason: format!("the payment is {}", other.as_str()),
        },
    }
}

/// The card the simulation "saves" at checkout.
pub const SIMULATED_CARD: &str = "pm_sim_card_4242";

fn simulated_payment_intent(topup: &TopupRow) -> String {
    format!("pi_sim_{}", topup.id.trim_start_matches("top_"))
}

fn simulated_customer(topup: &TopupRow) -> String {
    format!("cus_sim_{}", topup.customer_id.trim_start_matches("cus_"))
}

/// A real-format `payment_intent.*` event about a simulated off-session charge.
pub fn simulated_intent_event(
    topup: &TopupRow,
    currency: &str,
    event_type: &str,
    now: Timestamp,
) -> String {
    let created = now.micros() / 1_000_000;
    let succeeded = event_type == "payment_intent.succeeded";
    serde_json::json!({
        "id": ids::new_id("evt_sim"),
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": {
            "id": simulated_payment_intent(topup),
            "object": "payment_intent",
            "amount": topup.amount_cents,
            "amount_capturable": 0,
            "amount_received": if succeeded { topup.amount_cents } else { 0 },
            "capture_method": "automatic",
            "confirmation_method": "automatic",
            "created": topup.created_at.micros() / 1_000_000,
            "currency": currency,
            "customer": simulated_customer(topup),
            "livemode": false,
            "metadata": {"topup_id": topup.id},
            "payment_method": SIMULATED_CARD,
            "payment_method_types": ["card"],
            "status": if succeeded { "succeeded" } else { "requires_payment_method" },
        }},
    })
    .to_string()
}

/// A real-format Stripe event about a simulated top-up's session.
pub fn simulated_event(
    topup: &TopupRow,
    currency: &str,
    event_type: &str,
    now: Timestamp,
) -> String {
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
            "currency": currency,
            "payment_intent": simulated_payment_intent(topup),
            "customer": simulated_customer(topup),
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
