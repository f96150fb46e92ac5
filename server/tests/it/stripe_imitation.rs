//! A small imitation of Stripe's API on loopback, for the real async-stripe client to
//! talk to: Checkout Sessions (create with idempotency keys, in payment or subscription
//! mode; retrieve), PaymentIntents (create off-session with idempotency keys, retrieve),
//! Products and Prices (create with idempotency keys, retrieve), Subscriptions (retrieve,
//! update), Invoices (list, retrieve) and the events list. Tests drive it to "pay",
//! subscribe, renew, refund, dispute and decline, and to deliver signed events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

/// A create call's parameters and its answer.
type Replay = (HashMap<String, String>, Value);

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
    /// The last Checkout Session created (idempotent replays excluded).
    last_session: Option<String>,
    products: HashMap<String, Value>,
    prices: HashMap<String, Value>,
    /// Create calls by (path, idempotency key): the parameters and the answer, replayed as
    /// Stripe replays them.
    replays: HashMap<(&'static str, String), Replay>,
    /// What each subscription-mode session subscribes to, by session id.
    subscribes: HashMap<String, Subscribe>,
    subscriptions: HashMap<String, Value>,
    /// Every invoice, oldest first.
    invoices: Vec<Value>,
}

impl Inner {
    /// A fresh id with a prefix (`sub_imitation`, `in_imitation`, ...).
    fn next_id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_{}", self.seq)
    }
}

/// What a subscription-mode Checkout Session subscribes to once paid.
#[derive(Clone)]
struct Subscribe {
    price: String,
    quantity: i64,
    /// `subscription_data[metadata]`, copied onto the subscription.
    metadata: serde_json::Map<String, Value>,
}

/// A subscription's billing period: thirty days.
const PERIOD: i64 = 30 * 86_400;

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

/// The `prefix[name]` fields of a form as a JSON object: Stripe's encoding of metadata
/// (`metadata[k]`, `subscription_data[metadata][k]`).
fn bracketed(f: &HashMap<String, String>, prefix: &str) -> serde_json::Map<String, Value> {
    f.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.strip_suffix(']'))
                .map(|name| (name.to_string(), Value::from(v.clone())))
        })
        .collect()
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Stripe's answer to a request it refuses.
fn refuse(status: StatusCode, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"error": {"type": "invalid_request_error", "message": message}})),
    )
}

/// An object, or Stripe's 404 naming what is missing.
fn found(object: Option<&Value>, what: &str) -> (StatusCode, Json<Value>) {
    match object {
        Some(v) => (StatusCode::OK, Json(v.clone())),
        None => refuse(StatusCode::NOT_FOUND, &format!("No such {what}")),
    }
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
    let Some(mode) = f.get("mode") else {
        return refuse(StatusCode::BAD_REQUEST, "missing line item or mode");
    };
    // Payment mode prices its line inline; subscription mode names a recurring price.
    let (amount, currency, subscribe) = if mode == "subscription" {
        let Some((price_id, price)) = f
            .get("line_items[0][price]")
            .and_then(|p| inner.prices.get_key_value(p))
        else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "missing or unknown line_items[0][price]",
            );
        };
        if price["type"] != "recurring" {
            return refuse(
                StatusCode::BAD_REQUEST,
                "subscription mode needs a recurring price",
            );
        }
        let quantity: i64 = f
            .get("line_items[0][quantity]")
            .and_then(|q| q.parse().ok())
            .unwrap_or(1);
        let subscribe = Subscribe {
            price: price_id.clone(),
            quantity,
            metadata: bracketed(&f, "subscription_data[metadata]"),
        };
        (
            price["unit_amount"].as_i64().unwrap_or(0) * quantity,
            price["currency"].as_str().unwrap_or("usd").to_string(),
            Some(subscribe),
        )
    } else {
        let Some(amount) = f.get("line_items[0][price_data][unit_amount]") else {
            return refuse(StatusCode::BAD_REQUEST, "missing line item or mode");
        };
        (
            amount.parse::<i64>().unwrap_or(0),
            f.get("line_items[0][price_data][currency]")
                .cloned()
                .unwrap_or_else(|| "usd".into()),
            None,
        )
    };
    let id = inner.next_id("cs_test_imitation");
    let created = now();
    let session = json!({
        "id": id, "object": "checkout.session", "created": created, "expires_at": created + 86_400,
        "livemode": false, "mode": mode, "payment_status": "unpaid", "status": "open",
        "payment_method_types": ["card"], "custom_fields": [], "custom_text": {}, "shipping_options": [],
        "automatic_tax": {"enabled": false},
        "url": format!("{}/pay/{id}", s.base),
        "amount_total": amount, "currency": currency,
        "customer_email": f.get("customer_email"), "metadata": bracketed(&f, "metadata"), "payment_intent": null,
        "subscription": null, "invoice": null,
        "customer": f.get("customer"),
        "success_url": f.get("success_url"), "cancel_url": f.get("cancel_url"),
    });
    inner.sessions.insert(id.clone(), session.clone());
    if let Some(subscribe) = subscribe {
        inner.subscribes.insert(id.clone(), subscribe);
    }
    inner.last_session = Some(id.clone());
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
    let metadata = bracketed(&f, "metadata");
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

/// A create call's idempotent replay: the first answer for the same parameters, a 400 for
/// other parameters under the same key (as Stripe does), None for a fresh call.
fn replay(
    inner: &Inner,
    path: &'static str,
    key: Option<&String>,
    f: &HashMap<String, String>,
) -> Option<(StatusCode, Json<Value>)> {
    let (params, answer) = inner.replays.get(&(path, key?.clone()))?;
    if params != f {
        return Some((
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters they were first used with."}})),
        ));
    }
    Some((StatusCode::OK, Json(answer.clone())))
}

/// Keeps a create call's answer for replays under its idempotency key.
fn remember(
    inner: &mut Inner,
    path: &'static str,
    key: Option<String>,
    f: HashMap<String, String>,
    answer: &Value,
) {
    if let Some(key) = key {
        inner.replays.insert((path, key), (f, answer.clone()));
    }
}

async fn create_product(
    State(s): State<StripeImitation>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let f = form(&body);
    let key = idempotency_key(&headers);
    let mut inner = s.inner.lock().unwrap();
    if let Some(answer) = replay(&inner, "products", key.as_ref(), &f) {
        return answer;
    }
    let Some(name) = f.get("name") else {
        return refuse(StatusCode::BAD_REQUEST, "Missing required param: name.");
    };
    let id = inner.next_id("prod_imitation");
    let created = now();
    // Every field async-stripe's typed Product requires, and the optional ones as null.
    let product = json!({
        "id": id, "object": "product", "active": true, "created": created, "updated": created,
        "default_price": null, "description": f.get("description"), "images": [], "livemode": false,
        "marketing_features": [], "metadata": bracketed(&f, "metadata"), "name": name,
        "package_dimensions": null, "shippable": null, "statement_descriptor": null, "tax_code": null,
        "type": "service", "unit_label": null, "url": null,
    });
    inner.products.insert(id, product.clone());
    remember(&mut inner, "products", key, f, &product);
    (StatusCode::OK, Json(product))
}

async fn retrieve_product(
    State(s): State<StripeImitation>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let inner = s.inner.lock().unwrap();
    found(inner.products.get(&id), "product")
}

async fn create_price(
    State(s): State<StripeImitation>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let f = form(&body);
    let key = idempotency_key(&headers);
    let mut inner = s.inner.lock().unwrap();
    if let Some(answer) = replay(&inner, "prices", key.as_ref(), &f) {
        return answer;
    }
    let (Some(currency), Some(unit_amount), Some(product)) = (
        f.get("currency"),
        f.get("unit_amount").and_then(|a| a.parse::<i64>().ok()),
        f.get("product"),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "missing currency, unit_amount or product",
        );
    };
    if !inner.products.contains_key(product) {
        return refuse(
            StatusCode::BAD_REQUEST,
            &format!("No such product: '{product}'"),
        );
    }
    let recurring = f.get("recurring[interval]").map(|interval| {
        json!({
            "interval": interval,
            "interval_count": f.get("recurring[interval_count]").and_then(|c| c.parse::<u64>().ok()).unwrap_or(1),
            "meter": null, "trial_period_days": null, "usage_type": "licensed",
        })
    });
    let id = inner.next_id("price_imitation");
    // Every field async-stripe's typed Price requires, and the optional ones as null.
    let price = json!({
        "id": id, "object": "price", "active": true, "billing_scheme": "per_unit", "created": now(),
        "currency": currency, "currency_options": null, "custom_unit_amount": null, "livemode": false,
        "lookup_key": null, "metadata": bracketed(&f, "metadata"), "nickname": null, "product": product,
        "type": if recurring.is_some() { "recurring" } else { "one_time" }, "recurring": recurring,
        "tax_behavior": "unspecified", "tiers_mode": null, "transform_quantity": null,
        "unit_amount": unit_amount, "unit_amount_decimal": unit_amount.to_string(),
    });
    inner.prices.insert(id, price.clone());
    remember(&mut inner, "prices", key, f, &price);
    (StatusCode::OK, Json(price))
}

async fn retrieve_price(
    State(s): State<StripeImitation>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let inner = s.inner.lock().unwrap();
    found(inner.prices.get(&id), "price")
}

/// A subscription with one item, active from `start` to `start + PERIOD`; its latest
/// invoice is set when it is billed. Periods live on the item (Stripe's newest API).
fn subscription_object(
    id: &str,
    item_id: &str,
    customer: &str,
    subscribe: &Subscribe,
    price: &Value,
    start: i64,
) -> Value {
    json!({
        "id": id, "object": "subscription", "status": "active",
        "cancel_at_period_end": false, "cancel_at": null, "canceled_at": null, "ended_at": null,
        "customer": customer, "created": start, "start_date": start, "billing_cycle_anchor": start,
        "collection_method": "charge_automatically", "livemode": false, "currency": price["currency"],
        "metadata": subscribe.metadata, "latest_invoice": null,
        "items": {
            "object": "list", "has_more": false, "url": format!("/v1/subscription_items?subscription={id}"),
            "data": [{
                "id": item_id, "object": "subscription_item", "created": start, "metadata": {},
                "price": price, "quantity": subscribe.quantity,
                "current_period_start": start, "current_period_end": start + PERIOD,
                "subscription": id,
            }],
        },
    })
}

/// What an invoice bills.
struct Bill<'a> {
    /// `subscription_create`, `subscription_cycle` or `subscription_update`.
    reason: &'a str,
    amount: i64,
    /// The invoice's own `period_start`/`period_end`. As with Stripe, this is not the
    /// service period: it looks back (the period just ended, for a cycle invoice) or is
    /// the moment of billing (first and proration invoices).
    period: (i64, i64),
    /// The period the line pays for (`lines.data[0].period`).
    service: (i64, i64),
    paid: bool,
}

impl Inner {
    /// Bills a subscription: a new invoice, kept, made the subscription's latest, and
    /// returned.
    fn bill(&mut self, base: &str, subscription_id: &str, bill: Bill) -> Value {
        let id = self.next_id("in_imitation");
        let line = self.next_id("il_imitation");
        let created = now();
        let sub = &self.subscriptions[subscription_id];
        let item = &sub["items"]["data"][0];
        let invoice = json!({
            "id": id, "object": "invoice", "status": if bill.paid { "paid" } else { "open" },
            "amount_due": bill.amount, "amount_paid": if bill.paid { bill.amount } else { 0 },
            "amount_remaining": if bill.paid { 0 } else { bill.amount },
            "subtotal": bill.amount, "total": bill.amount, "attempted": true, "attempt_count": 1,
            "currency": sub["currency"], "billing_reason": bill.reason,
            "collection_method": "charge_automatically", "customer": sub["customer"],
            "created": created, "livemode": false,
            "hosted_invoice_url": format!("{base}/invoice/{id}"),
            "period_start": bill.period.0, "period_end": bill.period.1,
            "status_transitions": {"paid_at": if bill.paid { Some(created) } else { None }},
            "parent": {
                "type": "subscription_details", "quote_details": null,
                "subscription_details": {"subscription": subscription_id, "metadata": sub["metadata"]},
            },
            "lines": {
                "object": "list", "has_more": false, "url": format!("/v1/invoices/{id}/lines"),
                "data": [{
                    "id": line, "object": "line_item", "invoice": id, "amount": bill.amount,
                    "currency": sub["currency"], "quantity": item["quantity"],
                    "period": {"start": bill.service.0, "end": bill.service.1},
                    "pricing": {
                        "type": "price_details",
                        "price_details": {"price": item["price"]["id"], "product": item["price"]["product"]},
                    },
                    "parent": {
                        "type": "subscription_item_details",
                        "subscription_item_details": {
                            "subscription": subscription_id, "subscription_item": item["id"],
                            "proration": bill.reason == "subscription_update",
                        },
                    },
                }],
            },
        });
        self.invoices.push(invoice.clone());
        if let Some(sub) = self.subscriptions.get_mut(subscription_id) {
            sub["latest_invoice"] = json!(id);
        }
        invoice
    }
}

async fn retrieve_subscription(
    State(s): State<StripeImitation>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let inner = s.inner.lock().unwrap();
    found(inner.subscriptions.get(&id), "subscription")
}

/// Changes a subscription: its one item's price (`items[0][id]` must name the item, or
/// Stripe would add a second item), `cancel_at_period_end` and metadata. With
/// `proration_behavior=always_invoice` a move to a pricier price bills the difference for
/// the rest of the period at once, paid; other proration behaviours bill nothing here.
/// Records `invoice.paid` for such an invoice, then `customer.subscription.updated`.
async fn update_subscription(
    State(s): State<StripeImitation>,
    Path(id): Path<String>,
    body: String,
) -> (StatusCode, Json<Value>) {
    let f = form(&body);
    let (invoice, sub, changed) = {
        let mut inner = s.inner.lock().unwrap();
        let Some(mut sub) = inner.subscriptions.get(&id).cloned() else {
            return refuse(StatusCode::NOT_FOUND, "No such subscription");
        };
        if sub["status"] == "canceled" {
            return refuse(
                StatusCode::BAD_REQUEST,
                "A canceled subscription can only update its cancellation_details and metadata.",
            );
        }
        let proration = f
            .get("proration_behavior")
            .map(String::as_str)
            .unwrap_or("create_prorations");
        if !["create_prorations", "none", "always_invoice"].contains(&proration) {
            return refuse(StatusCode::BAD_REQUEST, "Invalid proration_behavior");
        }
        let item = sub["items"]["data"][0].clone();
        let mut changed = false;
        let mut proration_amount = 0;
        if let Some(price_id) = f.get("items[0][price]") {
            if f.get("items[0][id]").map(String::as_str) != item["id"].as_str() {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    "items[0][id] must name the subscription's item (this imitation replaces it)",
                );
            }
            let Some(price) = inner.prices.get(price_id).cloned() else {
                return refuse(
                    StatusCode::BAD_REQUEST,
                    &format!("No such price: '{price_id}'"),
                );
            };
            if item["price"]["id"] != price["id"] {
                let quantity = item["quantity"].as_i64().unwrap_or(1);
                let difference = (price["unit_amount"].as_i64().unwrap_or(0)
                    - item["price"]["unit_amount"].as_i64().unwrap_or(0))
                    * quantity;
                let (start, end) = (
                    item["current_period_start"].as_i64().unwrap_or(0),
                    item["current_period_end"].as_i64().unwrap_or(0),
                );
                // The difference for the rest of the period, rounded half up.
                let (rest, whole) = (end - now().clamp(start, end), (end - start).max(1));
                if proration == "always_invoice" {
                    proration_amount = (difference * rest * 2 + whole) / (2 * whole);
                }
                sub["items"]["data"][0]["price"] = price;
                changed = true;
            }
        }
        if let Some(cancel) = f.get("cancel_at_period_end") {
            let cancel = cancel == "true";
            if sub["cancel_at_period_end"] != cancel {
                sub["cancel_at_period_end"] = json!(cancel);
                sub["cancel_at"] = if cancel {
                    item["current_period_end"].clone()
                } else {
                    Value::Null
                };
                changed = true;
            }
        }
        for (k, v) in bracketed(&f, "metadata") {
            // An empty value unsets a key, as with Stripe.
            if v.as_str() == Some("") {
                changed |= sub["metadata"]
                    .as_object_mut()
                    .is_some_and(|m| m.remove(&k).is_some());
            } else if sub["metadata"][&k] != v {
                sub["metadata"][&k] = v;
                changed = true;
            }
        }
        inner.subscriptions.insert(id.clone(), sub);
        let invoice = (proration_amount > 0).then(|| {
            let t = now();
            let end = item["current_period_end"].as_i64().unwrap_or(t);
            inner.bill(
                &s.base,
                &id,
                Bill {
                    reason: "subscription_update",
                    amount: proration_amount,
                    period: (t, t),
                    service: (t, end),
                    paid: true,
                },
            )
        });
        (invoice, inner.subscriptions[&id].clone(), changed)
    };
    if let Some(invoice) = invoice {
        s.record_event("invoice.paid", invoice);
    }
    if changed {
        s.record_event("customer.subscription.updated", sub.clone());
    }
    (StatusCode::OK, Json(sub))
}

/// Invoices newest first, optionally of one `subscription`, `customer` or `status`.
async fn list_invoices(State(s): State<StripeImitation>, RawQuery(q): RawQuery) -> Json<Value> {
    let f = form(&q.unwrap_or_default());
    let inner = s.inner.lock().unwrap();
    let data: Vec<Value> = inner
        .invoices
        .iter()
        .rev()
        .filter(|i| {
            f.get("subscription").is_none_or(|sub| {
                i["parent"]["subscription_details"]["subscription"].as_str() == Some(sub.as_str())
            })
        })
        .filter(|i| {
            f.get("customer")
                .is_none_or(|c| i["customer"].as_str() == Some(c.as_str()))
        })
        .filter(|i| {
            f.get("status")
                .is_none_or(|st| i["status"].as_str() == Some(st.as_str()))
        })
        .cloned()
        .collect();
    Json(json!({"object": "list", "url": "/v1/invoices", "has_more": false, "data": data}))
}

async fn retrieve_invoice(
    State(s): State<StripeImitation>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let inner = s.inner.lock().unwrap();
    found(
        inner.invoices.iter().find(|i| i["id"] == id.as_str()),
        "invoice",
    )
}

async fn list_events(State(s): State<StripeImitation>, RawQuery(q): RawQuery) -> Json<Value> {
    let f = form(&q.unwrap_or_default());
    let bound = |name: &str| f.get(name).and_then(|v| v.parse::<i64>().ok());
    let gt = bound("created[gt]").unwrap_or(0);
    let lte = bound("created[lte]").unwrap_or(i64::MAX);
    let limit = bound("limit").unwrap_or(10).clamp(1, 100) as usize;
    let starting_after = f.get("starting_after");
    let types: Vec<&String> = f
        .iter()
        .filter(|(k, _)| k.starts_with("types["))
        .map(|(_, v)| v)
        .collect();
    let inner = s.inner.lock().unwrap();
    // Stripe lists newest first, a page of `limit` after `starting_after`.
    let matching: Vec<&Value> = inner
        .events
        .iter()
        .rev()
        .filter(|e| (gt + 1..=lte).contains(&e["created"].as_i64().unwrap_or(0)))
        .filter(|e| {
            types.is_empty() || types.iter().any(|t| e["type"].as_str() == Some(t.as_str()))
        })
        .collect();
    let start = match starting_after {
        Some(id) => matching
            .iter()
            .position(|e| e["id"].as_str() == Some(id.as_str()))
            .map_or(matching.len(), |i| i + 1),
        None => 0,
    };
    let page: Vec<Value> = matching[start..]
        .iter()
        .take(limit)
        .map(|e| (*e).clone())
        .collect();
    let has_more = start + page.len() < matching.len();
    Json(json!({"object": "list", "url": "/v1/events", "has_more": has_more, "data": page}))
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
            .route("/v1/products", post(create_product))
            .route("/v1/products/{id}", get(retrieve_product))
            .route("/v1/prices", post(create_price))
            .route("/v1/prices/{id}", get(retrieve_price))
            .route(
                "/v1/subscriptions/{id}",
                get(retrieve_subscription).post(update_subscription),
            )
            .route("/v1/invoices", get(list_invoices))
            .route("/v1/invoices/{id}", get(retrieve_invoice))
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

    /// The last Checkout Session created (idempotent replays excluded).
    pub fn last_session_id(&self) -> Option<String> {
        self.inner.lock().unwrap().last_session.clone()
    }

    /// A subscription as Stripe has it now.
    pub fn subscription(&self, id: &str) -> Option<Value> {
        self.inner.lock().unwrap().subscriptions.get(id).cloned()
    }

    /// Every invoice, oldest first.
    pub fn invoices(&self) -> Vec<Value> {
        self.inner.lock().unwrap().invoices.clone()
    }

    /// The customer subscribes through a subscription-mode session: the subscription
    /// starts now, active for one period, on the session's price and with its
    /// `subscription_data[metadata]`; its first invoice is paid; the session is complete.
    /// Records and returns, in order, `checkout.session.completed`,
    /// `customer.subscription.created` and `invoice.paid`.
    pub fn pay_subscription(&self, session_id: &str) -> Vec<Value> {
        let (session, subscription, invoice) = {
            let mut inner = self.inner.lock().unwrap();
            let subscribe = inner
                .subscribes
                .get(session_id)
                .cloned()
                .expect("a subscription-mode session");
            let price = inner.prices[&subscribe.price].clone();
            let customer = inner.sessions[session_id]["customer"]
                .as_str()
                .map(str::to_string);
            let customer = match customer {
                Some(c) => c,
                None => inner.next_id("cus_imitation"),
            };
            let id = inner.next_id("sub_imitation");
            let item = inner.next_id("si_imitation");
            let start = now();
            let subscription =
                subscription_object(&id, &item, &customer, &subscribe, &price, start);
            inner.subscriptions.insert(id.clone(), subscription);
            let invoice = inner.bill(
                &self.base,
                &id,
                Bill {
                    reason: "subscription_create",
                    amount: price["unit_amount"].as_i64().unwrap_or(0) * subscribe.quantity,
                    period: (start, start),
                    service: (start, start + PERIOD),
                    paid: true,
                },
            );
            let s = inner.sessions.get_mut(session_id).expect("known session");
            s["payment_status"] = json!("paid");
            s["status"] = json!("complete");
            s["customer"] = json!(customer);
            s["subscription"] = json!(id);
            s["invoice"] = invoice["id"].clone();
            let session = s.clone();
            (session, inner.subscriptions[&id].clone(), invoice)
        };
        vec![
            self.record_event("checkout.session.completed", session),
            self.record_event("customer.subscription.created", subscription),
            self.record_event("invoice.paid", invoice),
        ]
    }

    /// The period ends now. A subscription set to cancel at period end is canceled
    /// (records `customer.subscription.deleted` only). Otherwise the next period starts
    /// (now .. now + one period) and its invoice is paid (`invoice.paid`) or, with `fail`,
    /// left open (`invoice.payment_failed`) with the subscription `past_due`; then
    /// `customer.subscription.updated`. Returns the recorded events in order.
    pub fn renew(&self, subscription_id: &str, fail: bool) -> Vec<Value> {
        let (invoice, subscription) = {
            let mut inner = self.inner.lock().unwrap();
            let sub = inner
                .subscriptions
                .get_mut(subscription_id)
                .expect("known subscription");
            let t = now();
            if sub["cancel_at_period_end"].as_bool() == Some(true) {
                sub["status"] = json!("canceled");
                sub["canceled_at"] = json!(t);
                sub["ended_at"] = json!(t);
                (None, sub.clone())
            } else {
                let status = if fail { "past_due" } else { "active" };
                sub["status"] = json!(status);
                let item = &mut sub["items"]["data"][0];
                let previous_start = item["current_period_start"].as_i64().unwrap_or(t);
                // The next period runs a period past the old end, so it always moves on
                // however quickly a test renews.
                let next_end = item["current_period_end"].as_i64().unwrap_or(t).max(t) + PERIOD;
                item["current_period_start"] = json!(t);
                item["current_period_end"] = json!(next_end);
                let amount = item["price"]["unit_amount"].as_i64().unwrap_or(0)
                    * item["quantity"].as_i64().unwrap_or(1);
                let invoice = inner.bill(
                    &self.base,
                    subscription_id,
                    Bill {
                        reason: "subscription_cycle",
                        amount,
                        period: (previous_start, t),
                        service: (t, next_end),
                        paid: !fail,
                    },
                );
                (Some(invoice), inner.subscriptions[subscription_id].clone())
            }
        };
        match invoice {
            None => vec![self.record_event("customer.subscription.deleted", subscription)],
            Some(invoice) => vec![
                self.record_event(
                    if fail {
                        "invoice.payment_failed"
                    } else {
                        "invoice.paid"
                    },
                    invoice,
                ),
                self.record_event("customer.subscription.updated", subscription),
            ],
        }
    }

    /// Stripe retries an open invoice and the payment succeeds: the invoice is paid and
    /// its past-due subscription active again. Records and returns `invoice.paid`, then
    /// `customer.subscription.updated`.
    pub fn pay_invoice(&self, invoice_id: &str) -> Vec<Value> {
        let (invoice, subscription) = {
            let mut inner = self.inner.lock().unwrap();
            let invoice = inner
                .invoices
                .iter_mut()
                .find(|i| i["id"] == invoice_id)
                .expect("known invoice");
            assert_eq!(invoice["status"], "open", "only an open invoice is retried");
            let t = now();
            invoice["status"] = json!("paid");
            invoice["amount_paid"] = invoice["amount_due"].clone();
            invoice["amount_remaining"] = json!(0);
            invoice["attempt_count"] = json!(invoice["attempt_count"].as_i64().unwrap_or(1) + 1);
            invoice["status_transitions"]["paid_at"] = json!(t);
            let invoice = invoice.clone();
            let sub_id = invoice["parent"]["subscription_details"]["subscription"]
                .as_str()
                .expect("a subscription's invoice");
            let sub = inner
                .subscriptions
                .get_mut(sub_id)
                .expect("known subscription");
            if sub["status"] == "past_due" {
                sub["status"] = json!("active");
            }
            let subscription = sub.clone();
            (invoice, subscription)
        };
        vec![
            self.record_event("invoice.paid", invoice),
            self.record_event("customer.subscription.updated", subscription),
        ]
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
