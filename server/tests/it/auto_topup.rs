//! Auto top-up: a card saved at Checkout is charged off-session when usage takes the
//! balance below the customer's threshold: once per crossing, never two at once, within
//! a monthly limit, with declines shown and not retried on every request.

use std::time::Duration;

use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::money::Money;
use app::core::payments::auto;
use app::core::store::{AutoTopupSettings, TopupRow};
use serde_json::json;

use crate::helpers::{spawn_app, TestApp};
use crate::payments::{balance, drain, start_topup, stripe_app, WHSEC};
use crate::stripe_imitation::{deliver, StripeImitation};

fn settings(threshold: &str, amount_cents: i64, monthly_limit_cents: i64) -> AutoTopupSettings {
    AutoTopupSettings {
        enabled: true,
        threshold: Money::parse(threshold).unwrap(),
        amount_cents,
        monthly_limit_cents,
    }
}

/// Usage of $0.75 each (50,000 output tokens of claude-sonnet-4-5 at $15 per million).
fn usage(cus: &str, request_id: &str) -> serde_json::Value {
    json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 0,
           "output_tokens": 50000, "request_id": request_id})
}

/// A customer who bought $20 through Checkout (the imitation), so a card is saved.
async fn customer_with_card(app: &TestApp, stripe: &StripeImitation, key: &str) -> String {
    let cus = app.customer_with_credit(key, "auto", "0").await;
    let (session, _) = start_topup(app, key, &cus, "20.00").await;
    let event = stripe.pay(&session);
    assert_eq!(
        deliver(&app.http, &app.base, WHSEC, &event, None).await,
        200
    );
    drain(app).await;
    assert_eq!(balance(app, key, &cus).await, "20.000000000");
    let card = app
        .db
        .store
        .auto_topup(&cus)
        .await
        .unwrap()
        .expect("card saved");
    assert_eq!(card.payment_method_id.as_deref(), Some("pm_imitation_visa"));
    assert_eq!(
        card.card_gateway,
        Some(app::core::vocab::GatewayKind::Stripe)
    );
    cus
}

async fn auto_topups(app: &TestApp, cus: &str) -> Vec<TopupRow> {
    let mut all = app.db.store.topups_of(cus, 100).await.unwrap();
    all.retain(|t| t.source.as_str() == "auto");
    all
}

/// Waits until the customer's auto top-ups satisfy `done` (the check runs in the
/// background after the usage that crossed the threshold).
async fn wait_for(app: &TestApp, cus: &str, done: impl Fn(&[TopupRow]) -> bool) -> Vec<TopupRow> {
    for _ in 0..100 {
        let all = auto_topups(app, cus).await;
        if done(&all) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "auto top-ups never got there: {:?}",
        auto_topups(app, cus).await
    );
}

async fn spend(app: &TestApp, key: &str, cus: &str, prefix: &str, n: usize) {
    let calls = (0..n).map(|i| {
        let body = usage(cus, &format!("{prefix}-{i}"));
        async move { app.post(key, "/v1/usage", body).await }
    });
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.status, 201, "{}", r.body);
    }
}

#[tokio::test]
async fn concurrent_usage_below_the_threshold_charges_the_card_exactly_once() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = customer_with_card(&app, &stripe, &key).await;
    let core = &app.running.core;
    auto::configure(core, Mode::Test, &cus, settings("10", 2500, 10_000))
        .await
        .unwrap();
    assert_eq!(
        stripe.charges(),
        0,
        "above the threshold nothing is charged"
    );

    // 20 concurrent requests of $0.75: the balance falls from 20 to 5, crossing 10 once.
    spend(&app, &key, &cus, "burst", 20).await;
    let done = wait_for(&app, &cus, |t| {
        t.iter().any(|t| t.status.as_str() == "paid")
    })
    .await;
    assert_eq!(done.len(), 1);
    // A sweep afterwards, and the event Stripe sends, change nothing.
    auto::sweep(core).await.unwrap();
    let event = stripe.last_event("payment_intent.succeeded").unwrap();
    assert_eq!(
        deliver(&app.http, &app.base, WHSEC, &event, None).await,
        200
    );
    drain(&app).await;

    assert_eq!(stripe.charges(), 1);
    assert_eq!(auto_topups(&app, &cus).await.len(), 1);
    assert_eq!(balance(&app, &key, &cus).await, "30.000000000");
    let s = app.db.store.auto_topup(&cus).await.unwrap().unwrap();
    assert!(
        s.armed,
        "back above the threshold, so armed for the next crossing"
    );
    assert_eq!(s.last_error, None);

    // The next crossing charges again: 30 - 27 × 0.75 = 9.75 < 10.
    spend(&app, &key, &cus, "second", 27).await;
    wait_for(&app, &cus, |t| {
        t.iter().filter(|t| t.status.as_str() == "paid").count() == 2
    })
    .await;
    assert_eq!(stripe.charges(), 2);
    assert_eq!(balance(&app, &key, &cus).await, "34.750000000");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_declined_card_is_shown_and_not_retried_on_every_request() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = customer_with_card(&app, &stripe, &key).await;
    let core = &app.running.core;
    auto::configure(core, Mode::Test, &cus, settings("10", 2500, 10_000))
        .await
        .unwrap();
    stripe.set_decline(true);
    spend(&app, &key, &cus, "a", 14).await; // 20 → 9.50
    let failed = wait_for(&app, &cus, |t| {
        t.iter().any(|t| t.status.as_str() == "failed")
    })
    .await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0]
        .last_error
        .as_deref()
        .unwrap()
        .contains("declined"));
    let s = app.db.store.auto_topup(&cus).await.unwrap().unwrap();
    assert!(
        s.last_error.as_deref().unwrap().contains("declined"),
        "{s:?}"
    );
    assert!(!s.armed);

    // More usage and a sweep do not hammer the card.
    spend(&app, &key, &cus, "b", 4).await;
    auto::sweep(core).await.unwrap();
    let event = stripe.last_event("payment_intent.payment_failed").unwrap();
    assert_eq!(
        deliver(&app.http, &app.base, WHSEC, &event, None).await,
        200
    );
    drain(&app).await;
    assert_eq!(stripe.charges(), 1);
    assert_eq!(balance(&app, &key, &cus).await, "6.500000000");

    // The customer fixes the card and saves the settings again: charged at once. Saving
    // re-arms, so the server's periodic sweep may be the one that wins the crossing and
    // charges beside `configure`'s own check; either way there is exactly one charge.
    stripe.set_decline(false);
    auto::configure(core, Mode::Test, &cus, settings("10", 2500, 10_000))
        .await
        .unwrap();
    wait_for(&app, &cus, |t| {
        t.iter().any(|t| t.status.as_str() == "paid")
    })
    .await;
    assert_eq!(stripe.charges(), 2);
    assert_eq!(balance(&app, &key, &cus).await, "31.500000000");
    assert_eq!(
        app.db
            .store
            .auto_topup(&cus)
            .await
            .unwrap()
            .unwrap()
            .last_error,
        None
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn the_monthly_limit_stops_further_charges() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = customer_with_card(&app, &stripe, &key).await;
    let core = &app.running.core;
    // $5 at a time, at most $5 a month.
    auto::configure(core, Mode::Test, &cus, settings("10", 500, 500))
        .await
        .unwrap();
    spend(&app, &key, &cus, "a", 14).await; // 20 → 9.50, +5 → 14.50
    wait_for(&app, &cus, |t| {
        t.iter().any(|t| t.status.as_str() == "paid")
    })
    .await;
    spend(&app, &key, &cus, "b", 8).await; // 14.50 → 8.50: a second crossing
    auto::sweep(core).await.unwrap();
    // A check started by the usage may still be finishing beside the sweep's.
    let mut s = app.db.store.auto_topup(&cus).await.unwrap().unwrap();
    for _ in 0..100 {
        if s.capped_month.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        s = app.db.store.auto_topup(&cus).await.unwrap().unwrap();
    }
    assert_eq!(stripe.charges(), 1);
    assert_eq!(balance(&app, &key, &cus).await, "8.500000000");
    assert!(s.last_error.as_deref().unwrap().contains("limit"), "{s:?}");
    assert!(s.capped_month.is_some());
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn settings_are_checked() {
    let (app, stripe) = stripe_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let core = &app.running.core;
    let bare = app.customer_with_credit(&key, "no-card", "5").await;
    let e = auto::configure(core, Mode::Test, &bare, settings("10", 2500, 10_000))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("save it"), "{e}");
    let cus = customer_with_card(&app, &stripe, &key).await;
    for bad in [
        settings("10", 50, 10_000),   // under the $1 minimum
        settings("10", 2500, 1_000),  // limit below one top-up
        settings("-1", 2500, 10_000), // negative threshold
    ] {
        assert!(auto::configure(core, Mode::Test, &cus, bad).await.is_err());
    }
    // Live-mode ids are not found from test mode.
    assert!(
        auto::configure(core, Mode::Live, &cus, settings("10", 2500, 10_000))
            .await
            .is_err()
    );
    assert_eq!(stripe.charges(), 0);
}

#[tokio::test]
async fn simulated_auto_topup_runs_through_the_real_webhook_path() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "sim-auto", "0").await;
    let (session, _) = start_topup(&app, &key, &cus, "10.00").await;
    app::core::payments::simulate_payment(&app.running.core, &session)
        .await
        .unwrap();
    drain(&app).await;
    let card = app
        .db
        .store
        .auto_topup(&cus)
        .await
        .unwrap()
        .expect("card saved");
    assert_eq!(
        card.card_gateway,
        Some(app::core::vocab::GatewayKind::Simulated)
    );
    auto::configure(
        &app.running.core,
        Mode::Test,
        &cus,
        settings("5", 1000, 5000),
    )
    .await
    .unwrap();
    spend(&app, &key, &cus, "sim", 7).await; // 10 → 4.75
    let done = wait_for(&app, &cus, |t| {
        t.iter().any(|t| t.status.as_str() == "paid")
    })
    .await;
    assert_eq!(done.len(), 1);
    // Credited by the signed payment_intent.succeeded event, through the inbox (the
    // top-up is paid a moment before the worker marks the event processed).
    drain(&app).await;
    let events = app.db.store.webhook_events(None, 10).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.event_type == "payment_intent.succeeded"
            && e.status == app::core::vocab::InboxStatus::Processed));
    assert_eq!(balance(&app, &key, &cus).await, "14.750000000");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn the_portal_saves_the_settings_and_both_sides_see_a_failure() {
    use crate::helpers::{browser, server_fn};
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "portal-auto", "0").await;
    let customer = browser();
    crate::portal::sign_in_by_link(&app, &key, &customer, &cus).await;
    let page = |b: &reqwest::Client, path: &str| {
        let req = b.get(format!("{}{path}", app.base));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let billing = page(&customer, "/portal/billing").await;
    assert!(
        billing.contains("Buy credits once with a card"),
        "no card yet"
    );
    let form = "enabled=on&threshold=5&amount=10&monthly_limit=50";
    let (status, body) = server_fn(&app, &customer, "portal_set_auto_topup", form).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("save it"), "{body}");

    let (session, _) = start_topup(&app, &key, &cus, "20.00").await;
    app::core::payments::simulate_payment(&app.running.core, &session)
        .await
        .unwrap();
    drain(&app).await;
    let (status, body) = server_fn(&app, &customer, "portal_set_auto_topup", form).await;
    assert!(status < 400, "{status} {body}");
    let s = app.db.store.auto_topup(&cus).await.unwrap().unwrap();
    assert!(s.enabled);
    assert_eq!(s.threshold, Money::parse("5").unwrap());
    assert_eq!((s.amount_cents, s.monthly_limit_cents), (1000, 5000));
    let billing = page(&customer, "/portal/billing").await;
    assert!(billing.contains("Save auto top-up") && billing.contains("value=\"5.00\""));

    // Bad input is refused with a clear message and changes nothing.
    let (status, body) = server_fn(
        &app,
        &customer,
        "portal_set_auto_topup",
        "enabled=on&threshold=five&amount=10&monthly_limit=50",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("threshold"), "{body}");
    // Someone without a session changes nobody's settings.
    let (status, _) = server_fn(
        &app,
        &browser(),
        "portal_set_auto_topup",
        "threshold=0&amount=0&monthly_limit=0",
    )
    .await;
    assert_eq!(status, 403);
    assert!(
        app.db
            .store
            .auto_topup(&cus)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );

    // A failure is shown to the customer and in the console.
    let mut tx = app.db.store.begin().await.unwrap();
    tx.set_auto_topup_error(
        &cus,
        Some("auto top-up of $10.00 failed: Your card was declined."),
        app::core::clock::Timestamp::from_micros(0),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(page(&customer, "/portal/billing")
        .await
        .contains("Your card was declined."));
    let staff =
        crate::admin::staff_browser(&app, "ops@example.com", app::core::admin::Role::Viewer).await;
    let detail = page(&staff, &format!("/admin/customers/{cus}")).await;
    assert!(
        detail.contains("Auto top-up: <!>on: below $5.00 buy $10.00")
            || detail.contains("Auto top-up: on: below $5.00 buy $10.00"),
        "{detail}"
    );
    assert!(detail.contains("Your card was declined."));
    let list = page(&staff, "/admin/topups?status=paid").await;
    assert!(list.contains(&cus) && list.contains("simulated"), "{list}");
    assert!(!page(&staff, "/admin/topups?status=failed")
        .await
        .contains(&cus));
}
