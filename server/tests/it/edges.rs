//! Money at the edges, through the real server: late captures are charged, caps count
//! holds, batch pricing on the pre-flight path, refunds of one request, and line items
//! that explain themselves.

use app::core::keys::Scope;
use app::core::ledger::Mode;
use serde_json::{json, Value};

use app::core::admin::Role;

use crate::admin::staff_browser;
use crate::helpers::{browser, server_fn, spawn_app, TestApp};
use crate::portal::sign_in_by_link;

async fn admin(app: &TestApp) -> String {
    app.key(Mode::Test, Scope::Admin).await
}

async fn plan(app: &TestApp, key: &str, id: &str, terms: Value) {
    let p = app
        .post(
            key,
            "/v1/plans",
            json!({"id": id, "name": id, "terms": terms}),
        )
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
}

async fn customer_on(
    app: &TestApp,
    key: &str,
    external_id: &str,
    plan: &str,
    credit: &str,
) -> String {
    app.customer_on_plan(key, external_id, Some(plan), credit)
        .await
}

async fn balance(app: &TestApp, key: &str, cus: &str) -> (String, String) {
    let b = app.get(key, &format!("/v1/customers/{cus}/balance")).await;
    (
        b.body["available"].as_str().unwrap().to_string(),
        b.body["held"].as_str().unwrap().to_string(),
    )
}

async fn reason(app: &TestApp, key: &str, cus: &str) -> String {
    app.get(key, &format!("/v1/customers/{cus}/entitlement"))
        .await
        .body["reason"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_capture_after_the_hold_expired_is_charged_into_debt_and_replays() {
    let app = spawn_app().await;
    let key = admin(&app).await;
    plan(&app, &key, "short", json!({"hold_lifetime_seconds": 1})).await;
    let cus = customer_on(&app, &key, "late", "short", "0.01").await;
    let a = app
        .post(
            &key,
            "/v1/authorizations",
            json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1000, "max_output_tokens": 100}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.body["id"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
    // 10,000 input tokens at $3/M: $0.03, more than the $0.01 the customer has.
    let body = json!({"input_tokens": 10_000, "output_tokens": 0, "request_id": "msg_late"});
    let cap = app
        .post(
            &key,
            &format!("/v1/authorizations/{id}/capture"),
            body.clone(),
        )
        .await;
    assert_eq!(cap.status, 200, "{}", cap.body);
    assert_eq!(cap.body["authorization_expired"], true);
    assert_eq!(cap.body["cost"], "0.030000000");
    assert_eq!(cap.body["balance"], "-0.020000000");
    assert_eq!(cap.body["entitled"], false);
    assert_eq!(
        balance(&app, &key, &cus).await,
        ("-0.020000000".into(), "0.000000000".into())
    );
    // A second capture is a replay: the same event, no second charge.
    let again = app
        .post(&key, &format!("/v1/authorizations/{id}/capture"), body)
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["id"], cap.body["id"]);
    assert_eq!(
        balance(&app, &key, &cus).await,
        ("-0.020000000".into(), "0.000000000".into())
    );
    let listed = app.get(&key, &format!("/v1/usage?customer={cus}")).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    app.assert_ledger_clean().await;
}

/// Twelve parallel authorizations against a cap that fits two: exactly two pass.
async fn parallel_holds_against(app: &TestApp, key: &str, cus: &str) -> Vec<u16> {
    let calls = (0..12).map(|_| {
        app.post(
            key,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.025"}),
        )
    });
    let replies = futures::future::join_all(calls).await;
    let mut statuses: Vec<u16> = replies
        .iter()
        .map(|r| {
            if r.status == 402 {
                assert_eq!(r.error().1, "cap_reached", "{}", r.body);
            }
            r.status.as_u16()
        })
        .collect();
    statuses.sort();
    statuses
}

#[tokio::test]
async fn daily_and_monthly_caps_count_what_is_held() {
    let app = spawn_app().await;
    let key = admin(&app).await;
    plan(&app, &key, "daily", json!({"daily_spend_cap": "0.05"})).await;
    plan(&app, &key, "monthly", json!({"monthly_spend_cap": "0.05"})).await;
    for (name, plan_id) in [("d", "daily"), ("m", "monthly")] {
        let cus = customer_on(&app, &key, name, plan_id, "10").await;
        let statuses = parallel_holds_against(&app, &key, &cus).await;
        assert_eq!(
            statuses,
            [vec![201; 2], vec![402; 10]].concat(),
            "{plan_id}"
        );
        assert_eq!(balance(&app, &key, &cus).await.1, "0.050000000");
        // The holds fill the cap: not entitled, and the estimate says it does not fit.
        assert_eq!(reason(&app, &key, &cus).await, "cap_reached");
        let est = app
            .post(&key, "/v1/estimates", json!({"customer": cus, "model": "gpt-5-nano", "input_tokens": 10, "max_output_tokens": 10}))
            .await;
        assert_eq!(est.body["fits"], false, "{}", est.body);
        // Spent plus held counts: capture one hold for less, release nothing.
        let auths = app
            .post(
                &key,
                "/v1/authorizations",
                json!({"customer": cus, "amount": "0.001"}),
            )
            .await;
        assert_eq!(auths.error().1, "cap_reached");
        // Usage after the fact is still recorded past the cap.
        let u = app
            .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 10_000, "output_tokens": 0, "request_id": format!("{name}-1")}))
            .await;
        assert_eq!(u.status, 201, "{}", u.body);
        assert_eq!(u.body["entitled"], false);
    }
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn releasing_holds_frees_the_cap_again() {
    let app = spawn_app().await;
    let key = admin(&app).await;
    plan(&app, &key, "daily", json!({"daily_spend_cap": "0.05"})).await;
    let cus = customer_on(&app, &key, "r", "daily", "10").await;
    let a = app
        .post(
            &key,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.05"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(reason(&app, &key, &cus).await, "cap_reached");
    let id = a.body["id"].as_str().unwrap();
    app.post(&key, &format!("/v1/authorizations/{id}/release"), json!({}))
        .await;
    assert_eq!(reason(&app, &key, &cus).await, "ok");
    let b = app
        .post(
            &key,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.05"}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.body);
}

#[tokio::test]
async fn batch_requests_pay_the_batch_price_on_the_preflight_path() {
    let app = spawn_app().await;
    let key = admin(&app).await;
    let cus = app.customer_with_credit(&key, "batcher", "10").await;
    let req = json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 100_000, "max_output_tokens": 10_000});
    let full = app.post(&key, "/v1/estimates", req.clone()).await;
    assert_eq!(full.body["cost"], "0.450000000", "{}", full.body);
    let mut batch_req = req.clone();
    batch_req["batch"] = json!(true);
    let half = app.post(&key, "/v1/estimates", batch_req.clone()).await;
    assert_eq!(half.body["cost"], "0.225000000", "{}", half.body);
    let a = app.post(&key, "/v1/authorizations", batch_req).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["amount"], "0.225000000");
    let id = a.body["id"].as_str().unwrap();
    // The capture defaults to the authorization's batch pricing.
    let cap = app
        .post(
            &key,
            &format!("/v1/authorizations/{id}/capture"),
            json!({"input_tokens": 100_000, "output_tokens": 1_000}),
        )
        .await;
    assert_eq!(cap.status, 200, "{}", cap.body);
    assert_eq!(cap.body["batch"], true);
    assert_eq!(cap.body["cost"], "0.157500000");
    assert_eq!(cap.body["line_items"][0]["batch_discount_percent"], "50.00");
    // A capture may say otherwise explicitly.
    let a = app.post(&key, "/v1/authorizations", req).await;
    let id = a.body["id"].as_str().unwrap();
    let cap = app
        .post(
            &key,
            &format!("/v1/authorizations/{id}/capture"),
            json!({"input_tokens": 100_000, "output_tokens": 1_000, "batch": true}),
        )
        .await;
    assert_eq!(cap.body["cost"], "0.157500000");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn one_charged_request_is_refunded_once() {
    let app = spawn_app().await;
    let key = admin(&app).await;
    let usage_key = app.key(Mode::Test, Scope::Usage).await;
    let cus = app.customer_with_credit(&key, "refundee", "1").await;
    let e = app
        .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 100_000, "output_tokens": 0, "request_id": "r1"}))
        .await;
    assert_eq!(e.body["cost"], "0.300000000");
    assert_eq!(e.body["refunded_amount"], "0.000000000");
    let id = e.body["id"].as_str().unwrap().to_string();
    let path = format!("/v1/usage/{id}/refund");

    let forbidden = app
        .post(&usage_key, &path, json!({"reason": "bad answer"}))
        .await;
    assert_eq!(forbidden.status, 403);
    let too_much = app
        .post(
            &key,
            &path,
            json!({"reason": "bad answer", "amount": "0.31"}),
        )
        .await;
    assert_eq!(
        (too_much.status.as_u16(), too_much.error().2.as_deref()),
        (400, Some("amount"))
    );
    let no_reason = app.post(&key, &path, json!({"reason": " "})).await;
    assert_eq!(no_reason.error().2.as_deref(), Some("reason"));

    let body = json!({"reason": "the answer was cut off", "amount": "0.1"});
    let r = app.post(&key, &path, body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["refunded_amount"], "0.100000000");
    assert_eq!(r.body["refund_reason"], "the answer was cut off");
    assert_eq!(r.body["cost"], "0.300000000");
    assert_eq!(balance(&app, &key, &cus).await.0, "0.800000000");
    // The same request again is a replay; another one is refused.
    let again = app.post(&key, &path, body).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, r.body);
    let other = app.post(&key, &path, json!({"reason": "more"})).await;
    assert_eq!(
        (other.status.as_u16(), other.error().1.as_str()),
        (409, "already_refunded")
    );
    assert_eq!(balance(&app, &key, &cus).await.0, "0.800000000");
    // The event shows it; the ledger has the refund; the audit log names the key.
    let got = app.get(&key, &format!("/v1/usage/{id}")).await;
    assert_eq!(got.body["refunded_amount"], "0.100000000");
    let txns = app
        .get(&key, &format!("/v1/customers/{cus}/transactions"))
        .await;
    assert_eq!(txns.body["data"][0]["kind"], "refund");
    assert_eq!(txns.body["data"][0]["amount"], "0.100000000");
    let audit = app.db.store.audit_entries(Some(&id), 10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].actor.starts_with("api_key:"), "{:?}", audit[0]);
    assert_eq!(audit[0].action, "refund_usage");

    // An event that cost nothing has nothing to refund.
    let free = app
        .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 0, "output_tokens": 0, "request_id": "r0"}))
        .await;
    let free_id = free.body["id"].as_str().unwrap();
    let r = app
        .post(
            &key,
            &format!("/v1/usage/{free_id}/refund"),
            json!({"reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 400);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn line_items_say_how_the_list_rate_became_the_rate() {
    let app = spawn_app().await;
    let key = admin(&app).await;
    plan(
        &app,
        &key,
        "volume",
        json!({"markup_percent": "20", "tiers": [{"from_tokens": 0, "discount_percent": "10"}, {"from_tokens": 1_000_000, "discount_percent": "25"}]}),
    )
    .await;
    let cus = customer_on(&app, &key, "explained", "volume", "10").await;
    let e = app
        .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": "t1"}))
        .await;
    assert_eq!(e.status, 201, "{}", e.body);
    let item = &e.body["line_items"][0];
    assert_eq!(item["list_rate_per_million"], "3.000000000");
    assert_eq!(item["markup_percent"], "20.00");
    assert_eq!(item["tier_discount_percent"], "10.00");
    assert_eq!(item["batch_discount_percent"], "0.00");
    // 3.00 × 1.20 × 0.90 = 3.24
    assert_eq!(item["rate_per_million"], "3.240000000");
    assert_eq!(
        e.body["tier"],
        json!({"from_tokens": 0, "discount_percent": "10.00"})
    );
    // The million tokens moved the month into the next tier.
    let e2 = app
        .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": "t2"}))
        .await;
    assert_eq!(
        e2.body["tier"],
        json!({"from_tokens": 1_000_000, "discount_percent": "25.00"})
    );
    assert_eq!(e2.body["line_items"][0]["rate_per_million"], "2.700000000");
}

#[tokio::test]
async fn each_mode_has_its_own_catalog_and_every_edit_is_audited() {
    let app = spawn_app().await;
    let test = admin(&app).await;
    let live = app.key(Mode::Live, Scope::Admin).await;
    let edited = app
        .call(
            &test,
            reqwest::Method::PATCH,
            "/v1/plans/standard",
            Some(json!({"terms": {"markup_percent": "50"}, "reason": "try a margin"})),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["version"], 2);
    let m = app
        .post(&test, "/v1/models", json!({"id": "gpt-5", "provider": "openai", "input": "9", "output": "10", "cache_write": "0", "cache_read": "0.125", "batch_discount_percent": 50}))
        .await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(
        (m.body["input"].as_str(), m.body["version"].as_i64()),
        (Some("9.000000000"), Some(2))
    );
    let new_model = app
        .post(&test, "/v1/models", json!({"id": "test-only", "provider": "openai", "input": "1", "output": "1", "cache_write": "0", "cache_read": "0", "batch_discount_percent": 0}))
        .await;
    assert_eq!(new_model.status, 200, "{}", new_model.body);

    // The live catalog did not move.
    let plan = app.get(&live, "/v1/plans/standard").await;
    assert_eq!(plan.body["version"], 1);
    assert_eq!(plan.body["terms"]["markup_percent"], "0.00");
    let live_cus = app.customer_with_credit(&live, "live-user", "10").await;
    let u = app
        .post(&live, "/v1/usage", json!({"customer": live_cus, "model": "gpt-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": "l1"}))
        .await;
    assert_eq!(u.body["cost"], "1.250000000", "{}", u.body);
    let unknown = app
        .post(&live, "/v1/usage", json!({"customer": live_cus, "model": "test-only", "input_tokens": 1, "output_tokens": 0, "request_id": "l2"}))
        .await;
    assert_eq!(unknown.error().1, "unknown_model");
    // The test catalog did: 9 × 1.5.
    let test_cus = app.customer_with_credit(&test, "test-user", "100").await;
    let u = app
        .post(&test, "/v1/usage", json!({"customer": test_cus, "model": "gpt-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": "t1"}))
        .await;
    assert_eq!(u.body["cost"], "13.500000000", "{}", u.body);
    assert_eq!(
        u.body["price_version"], m.body["price_version"],
        "the event names the price version it was priced with"
    );
    // A live key cannot even see the test plan's versions, and plans are per mode.
    let created = app
        .post(
            &live,
            "/v1/plans",
            json!({"id": "live-pro", "name": "Live pro"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(app.get(&test, "/v1/plans/live-pro").await.status, 404);

    // Every change has its audit entry, naming the key that made it.
    for (target, action) in [
        ("test:standard", "edit_plan"),
        ("test:gpt-5", "edit_price"),
        ("test:test-only", "edit_price"),
        ("live:live-pro", "create_plan"),
    ] {
        let rows = app.db.store.audit_entries(Some(target), 10).await.unwrap();
        assert_eq!(rows.len(), 1, "{target}");
        assert_eq!(rows[0].action, action);
        assert!(rows[0].actor.starts_with("api_key:"), "{:?}", rows[0]);
    }
    let rows = app
        .db
        .store
        .audit_entries(Some("test:standard"), 10)
        .await
        .unwrap();
    assert_eq!(rows[0].reason, "try a margin");
    // Moving a customer to another plan is audited too, and only within its mode.
    let cross = app
        .post(
            &live,
            &format!("/v1/customers/{live_cus}/plan"),
            json!({"plan": "standard"}),
        )
        .await;
    assert_eq!(cross.status, 200, "{}", cross.body);
    let other_mode = app
        .post(
            &test,
            &format!("/v1/customers/{test_cus}/plan"),
            json!({"plan": "live-pro"}),
        )
        .await;
    assert_eq!(other_mode.error().2.as_deref(), Some("plan"));
    let moved = app
        .post(
            &live,
            &format!("/v1/customers/{live_cus}/plan"),
            json!({"plan": "live-pro", "reason": "upgrade"}),
        )
        .await;
    assert_eq!(moved.body["plan"], "live-pro");
    let rows = app
        .db
        .store
        .audit_entries(Some(&live_cus), 10)
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        ["change_plan", "change_plan"]
    );
    assert!(rows
        .iter()
        .any(|r| r.reason == "upgrade" && r.after.as_deref() == Some("live-pro")));
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn the_portal_explains_prices_in_words_and_shows_tier_cap_and_refund() {
    let app = spawn_app().await;
    let key = admin(&app).await;
    plan(
        &app,
        &key,
        "volume",
        json!({"markup_percent": "20", "tiers": [{"from_tokens": 0, "discount_percent": "10"}, {"from_tokens": 3_000_000, "discount_percent": "25"}], "daily_spend_cap": "100"}),
    )
    .await;
    let cus = customer_on(&app, &key, "worded", "volume", "10").await;
    let e = app
        .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": "w1"}))
        .await;
    let id = e.body["id"].as_str().unwrap().to_string();
    // Staff refund part of it from the console; a viewer may not.
    let viewer = staff_browser(&app, "viewer@example.com", Role::Viewer).await;
    let (status, _) = server_fn(
        &app,
        &viewer,
        "admin_refund_usage",
        &format!("id={id}&amount=1&reason=x"),
    )
    .await;
    assert_eq!(status, 403);
    let staff = staff_browser(&app, "boss@example.com", Role::Admin).await;
    let (status, body) = server_fn(
        &app,
        &staff,
        "admin_refund_usage",
        &format!("id={id}&amount=1.24&reason=slow+answer"),
    )
    .await;
    assert!(status < 400, "{body}");
    let page = staff
        .get(format!("{}/admin/customers/{cus}", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("refunded $1.24 (slow answer)"), "{page}");
    let audit = app.db.store.audit_entries(Some(&id), 10).await.unwrap();
    assert!(audit[0].actor.starts_with("staff:"), "{:?}", audit[0]);

    let customer = browser();
    sign_in_by_link(&app, &key, &customer, &cus).await;
    let get = |path: String| {
        let req = customer.get(format!("{}{path}", app.base));
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let detail = get(format!("/portal/usage/{id}")).await;
    assert!(
        detail.contains(
            "1,000,000 input tokens at $3.24 per million = $3.24 (list $3.00, +20 % markup, −10 % volume tier)"
        ),
        "{detail}"
    );
    assert!(detail.contains("Refunded: $1.24 (slow answer)"), "{detail}");
    assert!(detail.contains("You paid: $2.00"), "{detail}");
    let overview = get("/portal".into()).await;
    assert!(
        overview.contains("1,000,000 tokens this month: −10 % volume tier"),
        "{overview}"
    );
    assert!(
        overview.contains("2,000,000 tokens to the −25 % tier"),
        "{overview}"
    );
    assert!(!overview.contains("spending cap reached"));

    // Holds that fill the day's cap show as the customer's status: $3.24 spent + $0.76 held.
    let change = app
        .call(
            &key,
            reqwest::Method::PATCH,
            "/v1/plans/volume",
            Some(json!({"terms": {"daily_spend_cap": "4"}})),
        )
        .await;
    assert_eq!(change.status, 200, "{}", change.body);
    let hold = app
        .post(
            &key,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.76"}),
        )
        .await;
    assert_eq!(hold.status, 201, "{}", hold.body);
    let overview = get("/portal".into()).await;
    assert!(overview.contains("spending cap reached"), "{overview}");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn usage_is_re_rated_under_another_plan_without_changing_anything() {
    use app::core::clock::{Clock, SystemClock};
    use app::core::reprice::{reprice, RepriceRequest};
    let app = spawn_app().await;
    let key = admin(&app).await;
    plan(&app, &key, "pricier", json!({"markup_percent": "100"})).await;
    plan(
        &app,
        &key,
        "tiered",
        json!({"tiers": [{"from_tokens": 1_000_000, "discount_percent": "50"}]}),
    )
    .await;
    let cus = app.customer_with_credit(&key, "rerated", "20").await;
    let mut ids = Vec::new();
    for r in ["a", "b"] {
        let e = app
            .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": r}))
            .await;
        assert_eq!(e.body["cost"], "3.000000000");
        ids.push(e.body["id"].as_str().unwrap().to_string());
    }
    app.post(
        &key,
        &format!("/v1/usage/{}/refund", ids[0]),
        json!({"reason": "goodwill", "amount": "1"}),
    )
    .await;
    let other = app.customer_with_credit(&key, "someone-else", "20").await;
    app.post(&key, "/v1/usage", json!({"customer": other, "model": "gpt-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": "c"}))
        .await;
    let before = app
        .get(&key, &format!("/v1/customers/{cus}/balance"))
        .await
        .body;

    let now = SystemClock.now();
    let (from, to) = (now.plus_seconds(-3_600), now.plus_seconds(3_600));
    let req = |plan: &str, customer: Option<&str>| RepriceRequest {
        mode: Mode::Test,
        customer: customer.map(str::to_string),
        plan: plan.into(),
        plan_version: None,
        prices_at: None,
        from,
        to,
    };
    let core = &app.running.core;
    let mut seen = Vec::new();
    let r = reprice(core, &req("pricier", Some(&cus)), |done, total| {
        seen.push((done, total))
    })
    .await
    .unwrap();
    assert_eq!((r.events, r.customers), (2, 1));
    assert_eq!(
        r.charged.to_string(),
        "5.000000000",
        "charged less the refund"
    );
    assert_eq!(r.would_cost.to_string(), "12.000000000");
    assert_eq!(seen.last(), Some(&(2, 2)), "progress reaches the total");
    // The second request falls in the 50 % tier the first one reached.
    let r = reprice(core, &req("tiered", Some(&cus)), |_, _| {})
        .await
        .unwrap();
    assert_eq!(r.would_cost.to_string(), "4.500000000");
    // Everyone: gpt-5 too.
    let r = reprice(core, &req("standard", None), |_, _| {})
        .await
        .unwrap();
    assert_eq!((r.events, r.customers), (3, 2));
    assert_eq!(r.would_cost.to_string(), "7.250000000");
    // An older version of a plan.
    app.call(
        &key,
        reqwest::Method::PATCH,
        "/v1/plans/pricier",
        Some(json!({"terms": {"markup_percent": "0"}})),
    )
    .await;
    let mut old = req("pricier", Some(&cus));
    old.plan_version = Some(1);
    assert_eq!(
        reprice(core, &old, |_, _| {})
            .await
            .unwrap()
            .would_cost
            .to_string(),
        "12.000000000"
    );
    assert_eq!(
        reprice(core, &req("pricier", Some(&cus)), |_, _| {})
            .await
            .unwrap()
            .would_cost
            .to_string(),
        "6.000000000"
    );

    // The console page shows the same report, and nothing moved.
    let viewer = staff_browser(&app, "viewer@example.com", Role::Viewer).await;
    let day = |t: app::core::clock::Timestamp| t.day_key();
    let html = viewer
        .get(format!(
            "{}/admin/reprice?mode=test&plan=tiered&customer={cus}&from={}&to={}",
            app.base,
            day(now),
            day(now.plus_seconds(86_400))
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("2 requests of 1 customers"), "{html}");
    assert!(html.contains("$4.50"), "{html}");
    let after = app
        .get(&key, &format!("/v1/customers/{cus}/balance"))
        .await
        .body;
    assert_eq!(before, after);
    app.assert_ledger_clean().await;
}
