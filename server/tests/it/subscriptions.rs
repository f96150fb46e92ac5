//! Subscriptions through the real server with simulated payments: subscribe, renew paid
//! and failed, grace then refusal then recovery, gating by plan, upgrade, downgrade,
//! cancel; every event applied again and in reverse order changes nothing.

use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::money::Money;
use app::core::payments::webhooks;
use app::core::subscriptions;
use serde_json::{json, Value};

use super::helpers::{spawn_app, TestApp};
use super::payments::{balance, drain};

async fn plan(app: &TestApp, key: &str, id: &str, terms: Value) {
    let r = app
        .post(
            key,
            "/v1/plans",
            json!({"id": id, "name": id.to_uppercase(), "terms": terms}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A customer subscribed to `plan` through the simulated checkout.
async fn subscribed(app: &TestApp, key: &str, external_id: &str, plan: &str) -> (String, String) {
    let cus = app.customer_with_credit(key, external_id, "0").await;
    let r = app
        .post(
            key,
            &format!("/v1/customers/{cus}/subscriptions"),
            json!({"plan": plan}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "incomplete");
    let url = r.body["url"].as_str().unwrap();
    let session = url.rsplit('/').next().unwrap();
    assert!(url.contains("/checkout/simulated/cs_sim_"), "{url}");
    subscriptions::simulate_checkout(&app.running.core, session)
        .await
        .unwrap();
    drain(app).await;
    let id = r.body["id"].as_str().unwrap().to_string();
    (cus, id)
}

async fn subscription(app: &TestApp, key: &str, cus: &str) -> Value {
    let r = app
        .get(key, &format!("/v1/customers/{cus}/subscription"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn entitlement(app: &TestApp, key: &str, cus: &str) -> Value {
    app.get(key, &format!("/v1/customers/{cus}/entitlement"))
        .await
        .body
}

async fn advance(app: &TestApp, key: &str, sub: &str, fail: bool) -> Value {
    let r = app
        .post(
            key,
            &format!("/v1/test_helpers/subscriptions/{sub}/advance"),
            json!({"fail": fail}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    drain(app).await;
    r.body
}

/// An authorization of $1 for the customer: its status code and error code.
async fn hold(app: &TestApp, key: &str, cus: &str, model: Option<&str>) -> (u16, String) {
    let body = match model {
        Some(m) => {
            json!({"customer": cus, "model": m, "input_tokens": 10, "max_output_tokens": 10})
        }
        None => json!({"customer": cus, "amount": "1.00"}),
    };
    let r = app.post(key, "/v1/authorizations", body).await;
    (
        r.status.as_u16(),
        r.body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

/// Every stored event applied once more, newest first.
async fn replay_everything_backwards(app: &TestApp) {
    let core = &app.running.core;
    let events = app.db.store.webhook_events(None, 1000).await.unwrap();
    assert!(!events.is_empty());
    for e in events {
        webhooks::replay(core, &e.id).await.unwrap();
        webhooks::process_due(core).await.unwrap();
    }
    drain(app).await;
}

#[tokio::test]
async fn subscribe_renew_fail_grace_refuse_and_recover() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    plan(
        &app,
        &key,
        "pro",
        json!({"recurring_fee": "20.00", "included_credits": "15.00", "grace_days": 3}),
    )
    .await;
    plan(
        &app,
        &key,
        "strict",
        json!({"recurring_fee": "5.00", "included_credits": "4.00", "grace_days": 0,
               "allowed_models": ["claude-haiku-4-5"]}),
    )
    .await;

    // Subscribe: active, the first period's credits, on the plan.
    let (cus, sub) = subscribed(&app, &key, "sub-a", "pro").await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "active", "{s}");
    assert_eq!(s["plan"], "pro");
    assert!(s["current_period_end"].is_string());
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");
    let c = app.get(&key, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.body["plan"], "pro");

    // A second subscription while one runs is refused.
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/subscriptions"),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);

    // A paid renewal grants the next period's credits.
    let renewed = advance(&app, &key, &sub, false).await;
    assert!(renewed["current_period_end"].as_str() > s["current_period_end"].as_str());
    assert_eq!(balance(&app, &key, &cus).await, "30.000000000");

    // A failed renewal: past due, still entitled for the grace days.
    advance(&app, &key, &sub, true).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "past_due", "{s}");
    assert!(s["grace_ends_at"].is_string());
    assert_eq!(balance(&app, &key, &cus).await, "30.000000000");
    assert_eq!(entitlement(&app, &key, &cus).await["entitled"], true);
    assert_eq!(hold(&app, &key, &cus, None).await.0, 201);

    // Paid after all: active again, that period's credits arrive.
    advance(&app, &key, &sub, false).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "active", "{s}");
    assert!(s["grace_ends_at"].is_null());
    // 30 + 15 for the failed period paid late + 15 for the new one, less the $1 held.
    assert_eq!(balance(&app, &key, &cus).await, "59.000000000");

    // Every event again, newest first: nothing changes.
    replay_everything_backwards(&app).await;
    assert_eq!(subscription(&app, &key, &cus).await["status"], "active");
    assert_eq!(balance(&app, &key, &cus).await, "59.000000000");

    // No grace: refused at once after a failed renewal, with the reason; usage that
    // already happened is still recorded; paying restores access.
    let (strict, strict_sub) = subscribed(&app, &key, "sub-b", "strict").await;
    assert_eq!(
        hold(&app, &key, &strict, Some("claude-sonnet-4-5")).await,
        (402, "model_not_in_plan".to_string())
    );
    assert_eq!(
        hold(&app, &key, &strict, Some("claude-haiku-4-5")).await.0,
        201
    );
    advance(&app, &key, &strict_sub, true).await;
    let e = entitlement(&app, &key, &strict).await;
    assert_eq!(e["entitled"], false, "{e}");
    assert_eq!(e["reason"], "past_due");
    assert_eq!(
        hold(&app, &key, &strict, None).await,
        (402, "past_due".to_string())
    );
    let u = app
        .post(
            &key,
            "/v1/usage",
            json!({"customer": strict, "model": "claude-haiku-4-5", "input_tokens": 100,
                   "output_tokens": 100, "request_id": "after-grace"}),
        )
        .await;
    assert_eq!(u.status, 201, "{}", u.body);
    assert_eq!(u.body["entitled"], false);
    let paid = subscriptions::pay_open_invoice(&app.running.core, Mode::Test, &strict)
        .await
        .unwrap();
    assert!(paid.is_none());
    drain(&app).await;
    assert_eq!(entitlement(&app, &key, &strict).await["entitled"], true);
    assert_eq!(hold(&app, &key, &strict, None).await.0, 201);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn upgrade_now_downgrade_at_period_end_cancel_and_resume() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    plan(
        &app,
        &key,
        "pro",
        json!({"recurring_fee": "20.00", "included_credits": "15.00"}),
    )
    .await;
    plan(
        &app,
        &key,
        "max",
        json!({"recurring_fee": "50.00", "included_credits": "40.00", "rollover": true}),
    )
    .await;
    let (cus, sub) = subscribed(&app, &key, "sub-c", "pro").await;
    assert_eq!(balance(&app, &key, &cus).await, "15.000000000");

    // Upgrade: now, with the new plan's credits for (nearly all of) the period.
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/subscription"),
            json!({"plan": "max"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    drain(&app).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["plan"], "max", "{s}");
    let c = app.get(&key, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.body["plan"], "max");
    let after_upgrade = Money::parse(&balance(&app, &key, &cus).await).unwrap();
    assert!(
        (Money::parse("54.9").unwrap()..=Money::parse("55").unwrap()).contains(&after_upgrade),
        "15 + about 40 for the rest of the period: {after_upgrade}"
    );

    // Downgrade: pending until the period ends, then the cheaper plan and its credits.
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
    advance(&app, &key, &sub, false).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["plan"], "pro", "{s}");
    assert!(s["pending_plan"].is_null());
    let c = app.get(&key, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.body["plan"], "pro");

    // Cancel at period end, resume, cancel again; the period's end cancels it.
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/subscription/cancel"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cancel_at_period_end"], true);
    let r = app
        .post(
            &key,
            &format!("/v1/customers/{cus}/subscription/resume"),
            json!({}),
        )
        .await;
    assert_eq!(r.body["cancel_at_period_end"], false);
    app.post(
        &key,
        &format!("/v1/customers/{cus}/subscription/cancel"),
        json!({}),
    )
    .await;
    advance(&app, &key, &sub, false).await;
    let s = subscription(&app, &key, &cus).await;
    assert_eq!(s["status"], "canceled", "{s}");
    let c = app.get(&key, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.body["plan"], "standard");

    // Replayed backwards, the canceled subscription stays canceled.
    replay_everything_backwards(&app).await;
    assert_eq!(subscription(&app, &key, &cus).await["status"], "canceled");
    // A live key sees nothing of it; the test helper is not there for it.
    let live = app.key(Mode::Live, Scope::Admin).await;
    let r = app
        .post(
            &live,
            &format!("/v1/test_helpers/subscriptions/{sub}/advance"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    app.assert_ledger_clean().await;
}
