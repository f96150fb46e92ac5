//! A small imitation of Stripe's API on loopback, for the real async-stripe client to
//! talk to: Checkout Sessions (create with idempotency keys, retrieve), PaymentIntents
//! (create off-session with idempotency keys, retrieve) and the events list. Tests drive
//! it to "pay", refund, dispute and decline, and to deliver signed events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
struct Inner {
    sessions: HashMap<String, Value>,
    by_idempotency_key: HashMap<String, String>,
    intents: HashMap<String, Value>,
    intent_keys: HashMap<String, String>,
    /// Every create-PaymentIntent call that reached the bank (idempotent replays excluded).
    charges: usize,
    decline: bool,
    events: Vec<Value>,
    seq: u64,
    clock: i64,
}

#[derive(Clone)]
pub struct StripeImitation {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

fn form(body: &str) -> HashMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn create_session(
    State(s): State<StripeImitation>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let f = form(&body);
    let mut inner = s.inner.lock().unwrap();
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        if let Some(id) = inner.by_idempotency_key.get(key).cloned() {
            return (StatusCode::OK, Json(inner.sessions[&id].clone()));
        }
    }
    let (Some(amount), Some(mode)) = (
        f.get("line_items[0][price_data][unit_amount]"),
        f.get("mode"),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"type": "invalid_request_error", "message": "missing line item or mode"}}),
            ),
        );
    };
    inner.seq += 1;
    let id = format!("cs_test_imitation_{}", inner.seq);
    let created = now();
    let metadata: serde_json::Map<String, Value> = f
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|r| r.strip_suffix(']'))
                .map(|name| (name.to_string(), Value::from(v.clone())))
        })
        .collect();
    let session = json!({
        "id": id, "object": "checkout.session", "created": created, "expires_at": created + 86_400,
        "livemode": false, "mode": mode, "payment_status": "unpaid", "status": "open",
        "payment_method_types": ["card"], "custom_fields": [], "custom_text": {}, "shipping_options": [],
        "automatic_tax": {"enabled": false},
        "url": format!("{}/pay/{id}", s.base),
        "amount_total": amount.parse::<i64>().unwrap_or(0),
        "currency": f.get("line_items[0][price_data][currency]").cloned().unwrap_or_else(|| "usd".into()),
        "customer_email": f.get("customer_email"), "metadata": metadata, "payment_intent": null,
        "customer": f.get("customer"),
        "success_url": f.get("success_url"), "cancel_url": f.get("cancel_url"),
    });
    inner.sessions.insert(id.clone(), session.clone());
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        inner.by_idempotency_key.insert(key.to_string(), id);
    }
    (StatusCode::OK, Json(session))
}

async fn retrieve_session(
    State(s): State<StripeImitation>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let inner = s.inner.lock().unwrap();
    match inner.sessions.get(&id) {
        Some(v) => (StatusCode::OK, Json(v.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": {"type": "invalid_request_error", "message": "No such checkout.session"}}),
            ),
        ),
    }
}

fn intent(
    id: &str,
    amount: i64,
    status: &str,
    customer: Value,
    method: Value,
    metadata: Value,
) -> Value {
    json!({
        "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_received": if status == "succeeded" { amount } else { 0 },
        "capture_method": "automatic", "confirmation_method": "automatic", "created": now(),
        "currency": "usd", "livemode": false, "metadata": metadata, "customer": customer,
        "payment_method": method, "payment_method_types": ["card"], "status": status,
    })
}

async fn create_intent(
    State(s): State<StripeImitation>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let f = form(&body);
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let decline = {
        let mut inner = s.inner.lock().unwrap();
        if let Some(id) = key.as_ref().and_then(|k| inner.intent_keys.get(k).cloned()) {
            return (StatusCode::OK, Json(inner.intents[&id].clone()));
        }
        inner.charges += 1;
        inner.seq += 1;
        inner.decline
    };
    let (Some(amount), Some(customer), Some(method)) =
        (f.get("amount"), f.get("customer"), f.get("payment_method"))
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"type": "invalid_request_error", "message": "missing amount, customer or payment_method"}}),
            ),
        );
    };
    if f.get("off_session").map(String::as_str) != Some("true")
        || f.get("confirm").map(String::as_str) != Some("true")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": {"type": "invalid_request_error", "message": "expected off_session=true&confirm=true"}}),
            ),
        );
    }
    let metadata: serde_json::Map<String, Value> = f
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("metadata[")
                .and_then(|r| r.strip_suffix(']'))
                .map(|name| (name.to_string(), Value::from(v.clone())))
        })
        .collect();
    let id = format!("pi_imitation_{}", s.inner.lock().unwrap().seq);
    let status = if decline {
        "requires_payment_method"
    } else {
        "succeeded"
    };
    let mut pi = intent(
        &id,
        amount.parse().unwrap_or(0),
        status,
        json!(customer),
        json!(method),
        Value::Object(metadata),
    );
    {
        let mut inner = s.inner.lock().unwrap();
        inner.intents.insert(id.clone(), pi.clone());
        if let Some(k) = key {
            inner.intent_keys.insert(k, id.clone());
        }
    }
    if decline {
        pi["last_payment_error"] = json!({"type": "card_error", "code": "card_declined", "message": "Your card was declined."});
        s.record_event("payment_intent.payment_failed", pi);
        return (
            StatusCode::PAYMENT_REQUIRED,
            Json(
                json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "generic_decline",
                                   "message": "Your card was declined."}}),
            ),
        );
    }
    s.record_event("payment_intent.succeeded", pi.clone());
    (StatusCode::OK, Json(pi))
}

async fn retrieve_intent(
    State(s): State<StripeImitation>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let inner = s.inner.lock().unwrap();
    match inner.intents.get(&id) {
        Some(v) => (StatusCode::OK, Json(v.clone())),
        None => (
            StatusCode::NOT_FOUND,
            Json(
                json!({"error": {"type": "invalid_request_error", "message": "No such payment_intent"}}),
            ),
        ),
    }
}

async fn list_events(State(s): State<StripeImitation>, RawQuery(q): RawQuery) -> Json<Value> {
    let f = form(&q.unwrap_or_default());
    let gt: i64 = f
        .get("created[gt]")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let types: Vec<&String> = f
        .iter()
        .filter(|(k, _)| k.starts_with("types["))
        .map(|(_, v)| v)
        .collect();
    let inner = s.inner.lock().unwrap();
    // Stripe lists newest first.
    let data: Vec<Value> = inner
        .events
        .iter()
        .rev()
        .filter(|e| e["created"].as_i64().unwrap_or(0) > gt)
        .filter(|e| {
            types.is_empty() || types.iter().any(|t| e["type"].as_str() == Some(t.as_str()))
        })
        .cloned()
        .collect();
    Json(json!({"object": "list", "url": "/v1/events", "has_more": false, "data": data}))
}

impl StripeImitation {
    pub async fn start() -> StripeImitation {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let imitation = StripeImitation {
            base,
            inner: Arc::new(Mutex::new(Inner::default())),
        };
        let app = Router::new()
            .route("/v1/checkout/sessions", post(create_session))
            .route("/v1/checkout/sessions/{id}", get(retrieve_session))
            .route("/v1/events", get(list_events))
            .route("/v1/payment_intents", post(create_intent))
            .route("/v1/payment_intents/{id}", get(retrieve_intent))
            .with_state(imitation.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        imitation
    }

    pub fn sessions_created(&self) -> usize {
        self.inner.lock().unwrap().sessions.len()
    }

    /// Off-session charges that reached the bank.
    pub fn charges(&self) -> usize {
        self.inner.lock().unwrap().charges
    }

    /// From now on every off-session charge is declined (or accepted again).
    pub fn set_decline(&self, decline: bool) {
        self.inner.lock().unwrap().decline = decline;
    }

    /// The last event recorded of a type.
    pub fn last_event(&self, event_type: &str) -> Option<Value> {
        let inner = self.inner.lock().unwrap();
        inner
            .events
            .iter()
            .rev()
            .find(|e| e["type"].as_str() == Some(event_type))
            .cloned()
    }

    /// Records an event as Stripe would (it appears in the events list) and returns it.
    pub fn record_event(&self, event_type: &str, object: Value) -> Value {
        let mut inner = self.inner.lock().unwrap();
        inner.seq += 1;
        // Strictly increasing `created`, so cursors behave as with Stripe.
        inner.clock = inner.clock.max(now()) + 1;
        let event = json!({
            "id": format!("evt_imitation_{}", inner.seq), "object": "event", "api_version": "2026-09-30.endive",
            "created": inner.clock, "livemode": false, "pending_webhooks": 1, "type": event_type,
            "data": {"object": object},
        });
        inner.events.push(event.clone());
        event
    }

    /// The customer pays: the session becomes paid (its card saved on a Stripe customer,
    /// as `setup_future_usage` asks) and a completed event is recorded.
    pub fn pay(&self, session_id: &str) -> Value {
        let session = {
            let mut inner = self.inner.lock().unwrap();
            let s = inner.sessions.get_mut(session_id).expect("known session");
            let customer = s["customer"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("cus_for_{session_id}"));
            let pi_id = format!("pi_for_{session_id}");
            s["payment_status"] = json!("paid");
            s["status"] = json!("complete");
            s["payment_intent"] = json!(pi_id);
            s["customer"] = json!(customer);
            let amount = s["amount_total"].as_i64().unwrap_or(0);
            let session = s.clone();
            let pi = intent(
                &pi_id,
                amount,
                "succeeded",
                json!(customer),
                json!("pm_imitation_visa"),
                session["metadata"].clone(),
            );
            inner.intents.insert(pi_id, pi);
            session
        };
        self.record_event("checkout.session.completed", session)
    }

    pub fn refund(&self, session_id: &str, amount_refunded_cents: i64) -> Value {
        self.record_event(
            "charge.refunded",
            json!({"id": format!("ch_for_{session_id}"), "object": "charge", "payment_intent": format!("pi_for_{session_id}"),
                   "amount_refunded": amount_refunded_cents, "refunded": true, "currency": "usd"}),
        )
    }

    pub fn dispute(
        &self,
        session_id: &str,
        dispute_id: &str,
        cents: i64,
        status: &str,
        event_type: &str,
    ) -> Value {
        self.record_event(
            event_type,
            json!({"id": dispute_id, "object": "dispute", "payment_intent": format!("pi_for_{session_id}"),
                   "charge": format!("ch_for_{session_id}"), "amount": cents, "status": status, "currency": "usd"}),
        )
    }
}

/// Posts an event to Tally's webhook endpoint, signed like Stripe (optionally with a
/// wrong secret or an old timestamp).
pub async fn deliver(
    http: &reqwest::Client,
    tally: &str,
    secret: &str,
    event: &Value,
    timestamp: Option<i64>,
) -> reqwest::StatusCode {
    let payload = event.to_string();
    let header = stripe_webhook::Webhook::generate_test_header(&payload, secret, timestamp);
    http.post(format!("{tally}/webhooks/stripe"))
        .header("stripe-signature", header)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap()
        .status()
}
