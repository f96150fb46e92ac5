//! Stripe top-ups through the real server and the real async-stripe client, against the
//! Stripe imitation; and simulated payments through the real webhook path.

use std::time::Duration;

use app::core::currency::Currency;
use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::payments::{reconcile, webhooks, PaymentsConfig, Secret};
use serde_json::{json, Value};

use crate::helpers::{spawn_with, TestApp};
use crate::stripe_imitation::{deliver, StripeImitation};

pub(crate) const WHSEC: &str = "whsec_test_secret";

pub(crate) async fn stripe_app() -> (TestApp, StripeImitation) {
    stripe_app_in(Currency::default()).await
}

/// A server with Stripe (the imitation) in a deployment currency.
pub(crate) async fn stripe_app_in(currency: Currency) -> (TestApp, StripeImitation) {
    let stripe = StripeImitation::start().await;
    let base = stripe.base.clone();
    let app = spawn_with(move |o| {
        o.payments = PaymentsConfig {
            stripe_secret_key: Some(Secret::new("sk_test_imitation")),
            webhook_secret: Some(Secret::new(WHSEC)),
            stripe_api_base: Some(base),
            public_url: o.payments.public_url.clone(),
            currency,
            stripe_timeout: None,
        };
    })
    .await;
    (app, stripe)
}

pub(crate) async fn balance(app: &TestApp, key: &str, cus: &str) -> String {
    app.get(key, &format!("/v1/customers/{cus}/balance"))
        .await
        .body["available"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until the inbox has nothing left to do.
pub(crate) async fn drain(app: &TestApp) {
    for _ in 0..100 {
        let pending = app
            .db
            .store
            .count_webhook_events(app::core::vocab::InboxStatus::Pending)
            .await
            .unwrap()
            + app
                .db
                .store
                .count_webhook_events(app::core::vocab::InboxStatus::Processing)
                .await
                .unwrap();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the inbox did not drain");
}

pub(crate) async fn start_topup(
    app: &TestApp,
    key: &str,
    cus: &str,
    amount: &str,
) -> (String, String) {
    let r = app
        .post(
            key,
            &format!("/v1/customers/{cus}/checkout_sessions"),
            json!({"amount": amount}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    (
        r.body["id"].as_str().unwrap().to_string(),
        r.body["url"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_paid_topup_is_credited_once_however_often_it_is_announced() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "payer", "0").await;
    let (session, url) = start_topup(&app, &key, &cus, "25.00").await;
    assert!(url.starts_with(&stripe.base), "{url}");
    assert_eq!(stripe.sessions_created(), 1);

    let event = stripe.pay(&session);
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (http, base, event) = (app.http.clone(), app.base.clone(), event.clone());
        tasks.push(tokio::spawn(async move {
            deliver(&http, &base, WHSEC, &event, None).await.as_u16()
        }));
    }
    // The customer comes back to the success page at the same time.
    let (http, base, s) = (app.http.clone(), app.base.clone(), session.clone());
    let returned = tokio::spawn(async move {
        http.get(format!("{base}/checkout/complete?session_id={s}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let page = returned.await.unwrap();
    assert!(
        page.contains("Payment received, credits added") || page.contains("Payment processing"),
        "{page}"
    );
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "25.000000000");
    let txns = app
        .get(&key, &format!("/v1/customers/{cus}/transactions"))
        .await;
    let topups = txns.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "topup")
        .count();
    assert_eq!(topups, 1);
    // The page again, later: still one credit.
    let page = app
        .http
        .get(format!(
            "{}/checkout/complete?session_id={session}",
            app.base
        ))
        .send()
        .await
        .unwrap();
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Payment received, credits added"));
    assert_eq!(balance(&app, &key, &cus).await, "25.000000000");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn forged_stale_or_unsigned_events_are_refused_and_not_stored() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "payer", "0").await;
    let (session, _) = start_topup(&app, &key, &cus, "10.00").await;
    let event = stripe.pay(&session);
    assert_eq!(
        deliver(&app.http, &app.base, "whsec_wrong", &event, None).await,
        400
    );
    let stale = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 301;
    assert_eq!(
        deliver(&app.http, &app.base, WHSEC, &event, Some(stale)).await,
        400
    );
    let unsigned = app
        .http
        .post(format!("{}/webhooks/stripe", app.base))
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 400);
    let big = "x".repeat(600 * 1024);
    let oversized = app
        .http
        .post(format!("{}/webhooks/stripe", app.base))
        .header("stripe-signature", "t=1,v1=00")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status(), 413);
    assert!(app
        .db
        .store
        .webhook_events(None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(balance(&app, &key, &cus).await, "0.000000000");
    // Several v1 signatures: one valid is enough.
    let payload = event.to_string();
    let good = stripe_webhook::Webhook::generate_test_header(&payload, WHSEC, None);
    let header = format!("{good},v1=deadbeef");
    let r = app
        .http
        .post(format!("{}/webhooks/stripe", app.base))
        .header("stripe-signature", header)
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "10.000000000");
}

#[tokio::test]
async fn a_failing_event_is_retried_and_finally_applied() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "payer", "0").await;
    let (session, _) = start_topup(&app, &key, &cus, "5.00").await;
    app.running.core.payments.faults.fail_next_webhooks(1);
    let event = stripe.pay(&session);
    assert_eq!(
        deliver(&app.http, &app.base, WHSEC, &event, None).await,
        200
    );
    let id = event["id"].as_str().unwrap();
    let mut seen_failure = false;
    for _ in 0..100 {
        let row = app.db.store.webhook_event(id).await.unwrap().unwrap();
        if row.status == app::core::vocab::InboxStatus::Failed {
            assert_eq!(
                row.last_error.as_deref(),
                Some("storage unavailable: injected failure")
            );
            seen_failure = true;
        }
        if row.status == app::core::vocab::InboxStatus::Processed {
            assert!(row.attempts >= 2, "{row:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_failure, "the failure was visible in the inbox");
    assert_eq!(balance(&app, &key, &cus).await, "5.000000000");
    // A replay of a processed event changes nothing.
    webhooks::replay(&app.running.core, id).await.unwrap();
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "5.000000000");
}

#[tokio::test]
async fn reconciliation_recovers_an_event_that_never_arrived() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "payer", "0").await;
    let (session, _) = start_topup(&app, &key, &cus, "12.34").await;
    stripe.pay(&session); // Stripe has it; no webhook is delivered.
    assert_eq!(balance(&app, &key, &cus).await, "0.000000000");
    let report = reconcile::run(&app.running.core).await.unwrap();
    assert_eq!(report.repaired, 1, "{}", report.render());
    assert!(report.unexplained.is_empty(), "{}", report.render());
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "12.340000000");
    // A second run finds nothing new, and the report is stored.
    let again = reconcile::run(&app.running.core).await.unwrap();
    assert_eq!(again.repaired, 0);
    assert_eq!(app.db.store.reconciliations(10).await.unwrap().len(), 2);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn reconciliation_takes_a_backlog_longer_than_one_run_over_several() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "backlog", "0").await;
    // Twelve payments Stripe has and no webhook delivered; a run takes at most five.
    for _ in 0..12 {
        let (session, _) = start_topup(&app, &key, &cus, "1.00").await;
        stripe.pay(&session);
    }
    let core = &app.running.core;
    let mut runs = Vec::new();
    loop {
        let report = reconcile::run_with(core, 5).await.unwrap();
        assert!(report.unexplained.is_empty(), "{}", report.render());
        let continues = report
            .lines
            .iter()
            .any(|l| l.contains("the next run continues"));
        runs.push(report.repaired);
        if !continues {
            break;
        }
        assert!(runs.len() < 10, "the scan never ends: {runs:?}");
    }
    assert_eq!(
        runs.len(),
        3,
        "newest five, the next five, the rest: {runs:?}"
    );
    assert_eq!(runs.iter().sum::<i64>(), 12, "{runs:?}");
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "12.000000000");
    // The cursor moved past them all: the next run finds nothing new.
    let after = reconcile::run_with(core, 5).await.unwrap();
    assert_eq!(after.repaired, 0, "{}", after.render());
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn partial_then_full_refund_even_into_the_negative() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "payer", "0").await;
    let (session, _) = start_topup(&app, &key, &cus, "10.00").await;
    let paid = stripe.pay(&session);
    deliver(&app.http, &app.base, WHSEC, &paid, None).await;
    drain(&app).await;
    // Spend 4 of the 10.
    let u = app
        .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 66_667, "request_id": "spend"}))
        .await;
    assert_eq!(u.body["cost"], "4.000005000");
    let partial = stripe.refund(&session, 300);
    deliver(&app.http, &app.base, WHSEC, &partial, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "2.999995000");
    // Delivered twice: still applied once.
    deliver(&app.http, &app.base, WHSEC, &partial, None).await;
    let full = stripe.refund(&session, 1000);
    deliver(&app.http, &app.base, WHSEC, &full, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "-4.000005000");
    let kinds: Vec<Value> = app
        .get(&key, &format!("/v1/customers/{cus}/transactions"))
        .await
        .body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "refund")
        .map(|t| t["amount"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("-7.000000000"), json!("-3.000000000")]);
    app.assert_ledger_clean().await;
}

async fn reason(app: &TestApp, key: &str, cus: &str) -> Value {
    app.get(key, &format!("/v1/customers/{cus}/entitlement"))
        .await
        .body["reason"]
        .clone()
}

#[tokio::test]
async fn disputes_hold_funds_and_return_them_if_won() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "payer", "0").await;
    let (s1, _) = start_topup(&app, &key, &cus, "10.00").await;
    let (s2, _) = start_topup(&app, &key, &cus, "20.00").await;
    for s in [&s1, &s2] {
        let e = stripe.pay(s);
        deliver(&app.http, &app.base, WHSEC, &e, None).await;
    }
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "30.000000000");

    let opened = stripe.dispute(
        &s1,
        "dp_won",
        1000,
        "needs_response",
        "charge.dispute.created",
    );
    deliver(&app.http, &app.base, WHSEC, &opened, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "20.000000000");
    let won = stripe.dispute(&s1, "dp_won", 1000, "won", "charge.dispute.closed");
    deliver(&app.http, &app.base, WHSEC, &won, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "30.000000000");

    // Lost, with the events out of order: closed arrives before created.
    let lost = stripe.dispute(&s2, "dp_lost", 2000, "lost", "charge.dispute.closed");
    let opened = stripe.dispute(
        &s2,
        "dp_lost",
        2000,
        "needs_response",
        "charge.dispute.created",
    );
    deliver(&app.http, &app.base, WHSEC, &lost, None).await;
    drain(&app).await;
    deliver(&app.http, &app.base, WHSEC, &opened, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "10.000000000");
    // A lost dispute suspends the customer.
    assert_eq!(reason(&app, &key, &cus).await, "suspended");
    // Reversed in the customer's favour: the funds come back and the suspension lifts.
    let reversed = stripe.dispute(&s2, "dp_lost", 2000, "won", "charge.dispute.closed");
    deliver(&app.http, &app.base, WHSEC, &reversed, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "30.000000000");
    assert_eq!(reason(&app, &key, &cus).await, "ok");

    // Staff suspended them for another reason: a won dispute does not lift that.
    app.suspend_by_staff(&cus).await;
    let (s3, _) = start_topup(&app, &key, &cus, "5.00").await;
    deliver(&app.http, &app.base, WHSEC, &stripe.pay(&s3), None).await;
    drain(&app).await;
    for status in ["lost", "won"] {
        let e = stripe.dispute(&s3, "dp_staff", 500, status, "charge.dispute.closed");
        deliver(&app.http, &app.base, WHSEC, &e, None).await;
        drain(&app).await;
    }
    assert_eq!(reason(&app, &key, &cus).await, "suspended");
    assert_eq!(balance(&app, &key, &cus).await, "35.000000000");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn simulated_payments_run_through_the_real_webhook_path() {
    // Served behind https at a public address this process cannot reach itself: the
    // signed event is handed to the webhook inbox in process, not posted to that address.
    const PUBLIC: &str = "https://billing.example.invalid";
    let app = spawn_with(|o| {
        o.api.public_url = PUBLIC.into();
        o.payments.public_url = PUBLIC.into();
    })
    .await;
    let key = app.key(Mode::Test, Scope::Usage).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&admin, "sim", "0").await;
    let (session, url) = start_topup(&app, &key, &cus, "7.50").await;
    assert!(url.starts_with(PUBLIC), "{url}");
    assert!(url.contains("/checkout/simulated/"), "{url}");
    let url = url.replace(PUBLIC, &app.base);
    let page = app
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("SIMULATED CHECKOUT"), "{page}");
    assert!(page.contains("$7.50"));
    let paid = app
        .http
        .post(format!("{}/api/simulate_payment", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(format!("session_id={session}"))
        .send()
        .await
        .unwrap();
    assert!(
        paid.status().is_success() || paid.status().is_redirection(),
        "{}",
        paid.status()
    );
    // The event went into the inbox, signed with the generated secret and verified.
    let stored = app.db.store.webhook_events(None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "checkout.session.completed");
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "7.500000000");
    // Live mode never simulates.
    let live = app.key(Mode::Live, Scope::Admin).await;
    let live_cus = app.customer_with_credit(&live, "live", "0").await;
    let r = app
        .post(
            &live,
            &format!("/v1/customers/{live_cus}/checkout_sessions"),
            json!({"amount": "5.00"}),
        )
        .await;
    assert_eq!(r.status, 400);
    // Fractions of a cent and tiny amounts are refused.
    for amount in ["5.001", "0.50"] {
        let r = app
            .post(
                &key,
                &format!("/v1/customers/{cus}/checkout_sessions"),
                json!({"amount": amount}),
            )
            .await;
        assert_eq!(
            (r.status.as_u16(), r.error().2.as_deref()),
            (400, Some("amount"))
        );
    }
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_zero_decimal_currency_is_charged_in_whole_units() {
    let (app, stripe) = stripe_app_in(Currency::parse("JPY").unwrap()).await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "yen", "0").await;
    let b = app.get(&key, &format!("/v1/customers/{cus}/balance")).await;
    assert_eq!(b.body["currency"], "jpy");
    // Not a whole yen: refused before Stripe is asked.
    let half = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/checkout_sessions"),
            json!({"amount": "1200.5"}),
        )
        .await;
    assert_eq!(
        (half.status.as_u16(), half.error().2.as_deref()),
        (400, Some("amount"))
    );
    let (session, _) = start_topup(&app, &key, &cus, "1200").await;
    let paid = stripe.pay(&session);
    assert_eq!(paid["data"]["object"]["amount_total"], 1200);
    assert_eq!(paid["data"]["object"]["currency"], "jpy");
    deliver(&app.http, &app.base, WHSEC, &paid, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "1200.000000000");
    // A refund of 200 yen (Stripe counts yen) takes 200 yen back.
    let refund = stripe.refund(&session, 200);
    deliver(&app.http, &app.base, WHSEC, &refund, None).await;
    drain(&app).await;
    assert_eq!(balance(&app, &key, &cus).await, "1000.000000000");
    app.assert_ledger_clean().await;
}
