//! Plans sold as subscriptions through Stripe Billing, through the real server and the
//! real async-stripe client against the Stripe imitation: subscribe, a failed renewal
//! and its retry, cancel at period end; events twice, out of order, or never delivered.

use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::money::Money;
use app::core::payments::reconcile;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::payments::{balance, drain, stripe_app, WHSEC};
use crate::stripe_imitation::{deliver, StripeImitation};

/// Creates the plan `pro`: 20.00 a month, with 15.00 of credits for each paid period.
async fn create_pro_plan(app: &TestApp, key: &str) {
    let r = app
        .post(
            key,
            "/v1/plans",
            json!({"id": "pro", "name": "Pro",
                   "terms": {"recurring_fee": "20.00", "included_credits": "15.00", "grace_days": 3}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Subscribes a customer to `pro`: Tally answers with an incomplete subscription and a
/// Stripe Checkout URL. Returns Tally's subscription id and the Checkout Session's.
async fn subscribe(
    app: &TestApp,
    stripe: &StripeImitation,
    key: &str,
    cus: &str,
) -> (String, String) {
    let r = app
        .post(
            key,
            &format!("/v1/customers/{cus}/subscriptions"),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sub_"), "{}", r.body);
    assert_eq!(r.body["plan"], "pro");
    assert_eq!(r.body["status"], "incomplete");
    assert!(
        r.body["url"].as_str().unwrap().starts_with(&stripe.base),
        "{}",
        r.body
    );
    let session = stripe
        .last_session_id()
        .expect("Tally opened a Checkout Session");
    (id, session)
}

/// Delivers events in the order given and waits until the inbox has applied them.
async fn deliver_all(app: &TestApp, events: &[Value]) {
    for e in events {
        assert_eq!(
            deliver(&app.http, &app.base, WHSEC, e, None).await,
            200,
            "{}",
            e["type"]
        );
    }
    drain(app).await;
}

/// The object of the event of a type among `events`.
fn object_of(events: &[Value], event_type: &str) -> Value {
    events
        .iter()
        .find(|e| e["type"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type} among the events"))["data"]["object"]
        .clone()
}

/// The customer's subscription as Tally reports it.
async fn subscription(app: &TestApp, key: &str, cus: &str) -> Value {
    let r = app
        .get(key, &format!("/v1/customers/{cus}/subscription"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn entitled(app: &TestApp, key: &str, cus: &str) -> bool {
    let r = app
        .get(key, &format!("/v1/customers/{cus}/entitlement"))
        .await;
    r.body["entitled"]
        .as_bool()
        .unwrap_or_else(|| panic!("{}", r.body))
}

#[tokio::test]
async fn a_subscription_is_paid_rescued_after_a_failed_renewal_and_canceled() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    create_pro_plan(&app, &key).await;
    let cus = app.customer_with_credit(&key, "subscriber", "0").await;
    let (tally_id, session) = subscribe(&app, &stripe, &key, &cus).await;

    // Paid. Every event delivered twice still counts once.
    let paid = stripe.pay_subscription(&session);
    let sub = object_of(&paid, "customer.subscription.created")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        stripe.subscription(&sub).unwrap()["metadata"]["tally_subscription_id"],
        tally_id.as_str()
    );
    deliver_all(&app, &paid).await;
    deliver_all(&app, &paid).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "active", "{s}");
    assert!(!s["current_period_end"].is_null(), "{s}");
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");
    assert!(entitled(&app, &key, &cus).await);

    // The renewal's payment fails: past due, still entitled within the grace days, and
    // the unpaid period grants nothing.
    let failed = stripe.renew(&sub, true);
    deliver_all(&app, &failed).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "past_due", "{s}");
    assert!(entitled(&app, &key, &cus).await);
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");

    // Stripe's retry succeeds: active again, and the paid period's credits are granted
    // (the first period's expire only at that period's end). Twice still counts once.
    let open = object_of(&failed, "invoice.payment_failed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rescued = stripe.pay_invoice(&open);
    deliver_all(&app, &rescued).await;
    deliver_all(&app, &rescued).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "active", "{s}");
    assert_eq!(balance(&app, &key, &cus).await, "30.000000000");
    assert!(entitled(&app, &key, &cus).await);

    // Canceled at period end: Stripe is told, and the period's end ends the subscription.
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/subscription/cancel"),
            json!({}),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert_eq!(r.body["cancel_at_period_end"], json!(true), "{}", r.body);
    assert_eq!(
        stripe.subscription(&sub).unwrap()["cancel_at_period_end"],
        json!(true)
    );
    let updated = stripe
        .last_event("customer.subscription.updated")
        .expect("Stripe announced the change");
    deliver_all(&app, &[updated]).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "active", "{s}");
    assert_eq!(s["cancel_at_period_end"], json!(true), "{s}");
    let ended = stripe.renew(&sub, false);
    deliver_all(&app, &ended).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "canceled", "{s}");
    // Stripe billed the first period and the rescued renewal, nothing more.
    let invoices = stripe.invoices();
    assert_eq!(invoices.len(), 2);
    assert!(invoices.iter().all(|i| i["status"] == "paid"));
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn subscription_events_in_reverse_order_and_twice_subscribe_once() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    create_pro_plan(&app, &key).await;
    let cus = app.customer_with_credit(&key, "backwards", "0").await;
    let (_, session) = subscribe(&app, &stripe, &key, &cus).await;
    let paid = stripe.pay_subscription(&session);
    let reversed: Vec<Value> = paid.iter().rev().cloned().collect();
    deliver_all(&app, &reversed).await;
    deliver_all(&app, &paid).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "active", "{s}");
    assert!(!s["current_period_end"].is_null(), "{s}");
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");
    assert!(entitled(&app, &key, &cus).await);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn reconciliation_recovers_a_subscription_whose_events_never_arrived() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    create_pro_plan(&app, &key).await;
    let cus = app.customer_with_credit(&key, "unannounced", "0").await;
    let (_, session) = subscribe(&app, &stripe, &key, &cus).await;
    stripe.pay_subscription(&session); // Stripe has it; no webhook is delivered.
    assert_eq!(subscription(&app, &key, &cus).await["status"], "incomplete");
    let report = reconcile::run(&app.running.core).await.unwrap();
    assert!(report.unexplained.is_empty(), "{}", report.render());
    drain(&app).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "active", "{s}");
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");
    // A second run changes nothing.
    reconcile::run(&app.running.core).await.unwrap();
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_upgrade_is_prorated_now_and_a_downgrade_waits_for_the_renewal() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    create_pro_plan(&app, &key).await;
    let r = app
        .post(
            &key,
            "/v1/plans",
            json!({"id": "max", "name": "Max",
                   "terms": {"recurring_fee": "50.00", "included_credits": "40.00"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cus = app.customer_with_credit(&key, "upgrader", "0").await;
    let (_, session) = subscribe(&app, &stripe, &key, &cus).await;
    let paid = stripe.pay_subscription(&session);
    let sub = object_of(&paid, "customer.subscription.created")["id"]
        .as_str()
        .unwrap()
        .to_string();
    deliver_all(&app, &paid).await;
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");

    // Upgrade: Stripe moves the subscription to Max's price and invoices the prorated
    // difference at once; its payment brings Max's credits for the rest of the period.
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/subscription"),
            json!({"plan": "max"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["plan"], "max");
    let proration = stripe.last_event("invoice.paid").unwrap();
    assert_eq!(
        proration["data"]["object"]["billing_reason"],
        "subscription_update"
    );
    let updated = stripe.last_event("customer.subscription.updated").unwrap();
    deliver_all(&app, &[proration.clone(), updated.clone()]).await;
    deliver_all(&app, &[updated, proration]).await;
    let after = Money::parse(&balance(&app, &key, &cus).await).unwrap();
    assert!(
        (Money::parse("54.9").unwrap()..=Money::parse("55").unwrap()).contains(&after),
        "15 + about 40: {after}"
    );

    // Downgrade: Stripe bills Pro's price from the next period; Tally keeps Max until then.
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/subscription"),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["plan"], "max");
    assert_eq!(r.body["pending_plan"], "pro");
    let renewed = stripe.renew(&sub, false);
    assert_eq!(object_of(&renewed, "invoice.paid")["amount_paid"], 2000);
    deliver_all(&app, &renewed).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["plan"], "pro", "{s}");
    assert!(s["pending_plan"].is_null(), "{s}");
    let c = app.get(&key, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.body["plan"], "pro");
    let after_renewal = Money::parse(&balance(&app, &key, &cus).await).unwrap();
    assert!(
        after_renewal.checked_sub(after).unwrap() == Money::parse("15").unwrap(),
        "{after_renewal}"
    );
    app.assert_ledger_clean().await;
}
