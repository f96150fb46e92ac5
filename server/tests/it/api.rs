//! The metering API through the real server, against the contract in `api.md`.

use std::time::Duration;

use app::core::clock::{Clock, SystemClock};
use app::core::keys::{self, Scope};
use app::core::ledger::Mode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_with, TestApp};

async fn admin(app: &TestApp) -> String {
    app.key(Mode::Test, Scope::Admin).await
}

fn money(v: &Value) -> i128 {
    // Exact: "12.500000000" -> nanos.
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("not a money string: {v}"));
    let (neg, s) = s.strip_prefix('-').map(|r| (true, r)).unwrap_or((false, s));
    let (w, f) = s.split_once('.').unwrap();
    assert_eq!(f.len(), 9, "money has 9 decimals: {s}");
    let n = w.parse::<i128>().unwrap() * 1_000_000_000 + f.parse::<i128>().unwrap();
    if neg {
        -n
    } else {
        n
    }
}

#[tokio::test]
async fn a_request_priced_held_captured_and_listed() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let usage = app.key(Mode::Test, Scope::Usage).await;
    let cus = app.customer_with_credit(&admin, "user-1", "10").await;

    let c = app.get(&usage, &format!("/v1/customers/{cus}")).await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["plan"], "standard");
    assert_eq!(c.body["status"], "active");
    assert_eq!(c.body["balance"], "10.000000000");

    // Worst case of 1,000 input + 2,000 output on Sonnet 4.5: 0.003 + 0.030 = 0.033.
    let a = app
        .post(&usage, "/v1/authorizations", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1000, "max_output_tokens": 2000}))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["amount"], "0.033000000");
    assert_eq!(a.body["status"], "pending");
    let auth = a.body["id"].as_str().unwrap().to_string();
    assert!(auth.starts_with("auth_"));

    let b = app
        .get(&usage, &format!("/v1/customers/{cus}/balance"))
        .await;
    assert_eq!(b.body["available"], "9.967000000");
    assert_eq!(b.body["held"], "0.033000000");
    assert_eq!(b.body["currency"], "usd");

    let cap = app
        .post(
            &usage,
            &format!("/v1/authorizations/{auth}/capture"),
            json!({"input_tokens": 1204, "output_tokens": 350, "request_id": "req_1"}),
        )
        .await;
    assert_eq!(cap.status, 200, "{}", cap.body);
    assert_eq!(cap.body["cost"], "0.008862000");
    assert_eq!(
        cap.body["line_items"][0],
        json!({"kind": "input", "tokens": 1204, "rate_per_million": "3.000000000", "amount": "0.003612000",
               "list_rate_per_million": "3.000000000", "markup_percent": "0.00",
               "tier_discount_percent": "0.00", "batch_discount_percent": "0.00"})
    );
    assert_eq!(cap.body["balance"], "9.991138000");
    assert_eq!(cap.body["entitled"], true);
    assert!(cap.body["plan_version"]
        .as_str()
        .unwrap()
        .starts_with("plv_"));

    // Capturing again returns the same event; releasing it now is a conflict.
    let again = app
        .post(
            &usage,
            &format!("/v1/authorizations/{auth}/capture"),
            json!({"input_tokens": 1, "output_tokens": 1}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["id"], cap.body["id"]);
    let rel = app
        .post(
            &usage,
            &format!("/v1/authorizations/{auth}/release"),
            json!({}),
        )
        .await;
    assert_eq!(rel.status, 409);
    assert_eq!(rel.error().1, "authorization_not_pending");

    let list = app.get(&usage, &format!("/v1/usage?customer={cus}")).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["has_more"], false);

    let txns = app
        .get(&usage, &format!("/v1/customers/{cus}/transactions"))
        .await;
    let kinds: Vec<&str> = txns.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["usage", "hold", "grant"]);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn usage_is_recorded_once_per_request_id_even_into_the_negative() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "user-1", "0.01").await;
    let body = json!({"customer": cus, "model": "claude-opus-4-1", "input_tokens": 1000, "output_tokens": 1000, "request_id": "msg_1"});
    let first = app.post(&admin, "/v1/usage", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    // 1000 × 15 + 1000 × 75 per million = 0.09
    assert_eq!(first.body["cost"], "0.090000000");
    assert_eq!(first.body["balance"], "-0.080000000");
    assert_eq!(first.body["entitled"], false);

    let dup = app.post(&admin, "/v1/usage", body).await;
    assert_eq!(dup.status, 200);
    assert_eq!(dup.body["id"], first.body["id"]);
    // Same request id, other content: still the original (dedupe is by request id).
    let other = app
        .post(&admin, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": 1, "output_tokens": 1, "request_id": "msg_1"}))
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body["id"], first.body["id"]);
    let e = app
        .get(&admin, &format!("/v1/customers/{cus}/entitlement"))
        .await;
    assert_eq!(
        e.body,
        json!({"object": "entitlement", "entitled": false, "reason": "insufficient_credits", "available": "-0.080000000"})
    );
    let b = app
        .get(&admin, &format!("/v1/customers/{cus}/balance"))
        .await;
    assert_eq!(b.body["status"], "depleted");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn failed_and_batch_and_cached_requests_are_priced_by_the_rules() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "user-1", "100").await;
    let failed = app
        .post(&admin, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 1_000_000, "outcome": "failed", "request_id": "f"}))
        .await;
    assert_eq!(failed.body["cost"], "3.000000000", "{}", failed.body);
    let batch = app
        .post(&admin, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "batch": true, "request_id": "b"}))
        .await;
    assert_eq!(batch.body["cost"], "1.500000000");
    let cached = app
        .post(&admin, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 0, "output_tokens": 0,
            "cache_creation_input_tokens": 1_000_000, "cache_read_input_tokens": 1_000_000, "request_id": "c"}))
        .await;
    assert_eq!(cached.body["cost"], "4.050000000");
    let kinds: Vec<&str> = cached.body["line_items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["cache_write", "cache_read"]);
}

#[tokio::test]
async fn concurrent_authorizations_never_overdraw_one_customer() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "busy", "1").await;
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let http = app.http.clone();
            let url = format!("{}/v1/authorizations", app.base);
            let key = admin.clone();
            let cus = cus.clone();
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&json!({"customer": cus, "amount": "0.05"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 20);
    assert_eq!(statuses.iter().filter(|s| **s == 402).count(), 40);
    let b = app
        .get(&admin, &format!("/v1/customers/{cus}/balance"))
        .await;
    assert_eq!(b.body["available"], "0.000000000");
    assert_eq!(b.body["held"], "1.000000000");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn batch_records_each_event_on_its_own() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "user-1", "5").await;
    let ev = |rid: &str| json!({"customer": cus, "model": "gpt-5-mini", "input_tokens": 1000, "output_tokens": 100, "request_id": rid});
    app.post(&admin, "/v1/usage", ev("r0")).await;
    let r = app
        .post(&admin, "/v1/usage/batch", json!({"events": [
            ev("r1"), ev("r0"), ev("r1"),
            {"customer": cus, "model": "no-such-model", "input_tokens": 1, "output_tokens": 1, "request_id": "r2"},
            {"customer": cus, "model": "gpt-5-mini", "input_tokens": -1, "output_tokens": 1, "request_id": "r3"},
            {"customer": "cus_nobody", "model": "gpt-5-mini", "input_tokens": 1, "output_tokens": 1, "request_id": "r4"},
            ev("r5"),
        ]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        vec![
            "created",
            "duplicate",
            "duplicate",
            "error",
            "error",
            "error",
            "created"
        ]
    );
    assert_eq!(r.body["data"][3]["error"]["code"], "unknown_model");
    assert_eq!(
        r.body["data"][4]["error"]["param"],
        "events[4].input_tokens"
    );
    assert_eq!(r.body["data"][5]["error"]["type"], "not_found");
    let list = app
        .get(&admin, &format!("/v1/usage?customer={cus}&limit=2"))
        .await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["has_more"], true);
    let last = list.body["data"][1]["id"].as_str().unwrap();
    let next = app
        .get(
            &admin,
            &format!("/v1/usage?customer={cus}&limit=2&starting_after={last}"),
        )
        .await;
    assert_eq!(next.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(next.body["has_more"], false);

    let empty = app
        .post(&admin, "/v1/usage/batch", json!({"events": []}))
        .await;
    assert_eq!(empty.status, 400);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn modes_are_separate_worlds() {
    let app = spawn_app().await;
    let test_admin = admin(&app).await;
    let live_admin = app.key(Mode::Live, Scope::Admin).await;
    let cus = app
        .customer_with_credit(&test_admin, "same-user", "1")
        .await;
    assert_eq!(
        app.get(&live_admin, &format!("/v1/customers/{cus}"))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&live_admin, &format!("/v1/customers/{cus}/balance"))
            .await
            .status,
        404
    );
    let u = app
        .post(&live_admin, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": 1, "output_tokens": 1, "request_id": "x"}))
        .await;
    assert_eq!(u.status, 404);
    let a = app
        .post(
            &live_admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.1"}),
        )
        .await;
    assert_eq!(a.status, 404);
    // The same external id is free in the other mode.
    let live = app
        .post(
            &live_admin,
            "/v1/customers",
            json!({"external_id": "same-user"}),
        )
        .await;
    assert_eq!(live.status, 201);
    let found = app
        .get(&live_admin, "/v1/customers?external_id=same-user")
        .await;
    assert_eq!(found.body["data"][0]["id"], live.body["id"]);
    let listed = app.get(&live_admin, "/v1/usage").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 0);
    // A test authorization cannot be captured with a live key.
    let auth = app
        .post(
            &test_admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.1"}),
        )
        .await;
    let id = auth.body["id"].as_str().unwrap();
    let cap = app
        .post(
            &live_admin,
            &format!("/v1/authorizations/{id}/capture"),
            json!({"model": "gpt-5", "input_tokens": 1, "output_tokens": 1}),
        )
        .await;
    assert_eq!(cap.status, 404);
}

#[tokio::test]
async fn every_error_row_of_the_contract() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let read = app.key(Mode::Test, Scope::Read).await;
    let cus = app.customer_with_credit(&admin, "user-1", "1").await;

    // 400: malformed JSON, wrong types, out of range, unknown model.
    let r = app
        .http
        .post(format!("{}/v1/usage", app.base))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request");
    let r = app.post(&admin, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": "ten", "output_tokens": 1, "request_id": "a"})).await;
    assert_eq!(
        (
            r.status.as_u16(),
            r.error().0.as_str(),
            r.error().2.as_deref()
        ),
        (400, "invalid_request", Some("input_tokens"))
    );
    let r = app.post(&admin, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": 1u64 << 41, "output_tokens": 1, "request_id": "a"})).await;
    assert_eq!(
        (r.status.as_u16(), r.error().2.as_deref()),
        (400, Some("input_tokens"))
    );
    let r = app.post(&admin, "/v1/usage", json!({"customer": cus, "model": "gpt-9", "input_tokens": 1, "output_tokens": 1, "request_id": "a"})).await;
    assert_eq!(
        (r.status.as_u16(), r.error().1.as_str()),
        (400, "unknown_model")
    );
    let r = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/grants"),
            json!({"amount": 1.5, "reason": "x"}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error().2.as_deref()),
        (400, Some("amount"))
    );
    let r = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/grants"),
            json!({"amount": "1.0000000001", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/grants"),
            json!({"amount": "1e3", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/grants"),
            json!({"amount": "-1", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 400);
    let r = app.get(&admin, "/v1/usage?limit=0").await;
    assert_eq!(
        (r.status.as_u16(), r.error().2.as_deref()),
        (400, Some("limit"))
    );
    let r = app
        .post(
            &admin,
            "/v1/customers",
            json!({"external_id": "x", "unexpected": 1}),
        )
        .await;
    assert_eq!(r.status, 400);

    // 401, 403, 404.
    let r = app.get("sk_test_nope", "/v1/models").await;
    assert_eq!(
        (r.status.as_u16(), r.error().0.as_str()),
        (401, "authentication")
    );
    let r = app
        .http
        .get(format!("{}/v1/models", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .post(&read, "/v1/customers", json!({"external_id": "y"}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error().0.as_str()),
        (403, "permission")
    );
    let r = app
        .post(
            &read,
            &format!("/v1/customers/{cus}/grants"),
            json!({"amount": "1", "reason": "x"}),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = app.get(&admin, "/v1/customers/cus_missing").await;
    assert_eq!(
        (r.status.as_u16(), r.error().0.as_str()),
        (404, "not_found")
    );

    // 409: external_id taken, idempotency key reused.
    let r = app
        .post(&admin, "/v1/customers", json!({"external_id": "user-1"}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error().1.as_str()),
        (409, "external_id_taken")
    );

    // 402: does not fit.
    let r = app
        .post(
            &admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "2"}),
        )
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error().0.as_str()),
        (402, "insufficient_credits")
    );

    // 413: over 1 MiB.
    let big = "x".repeat(1024 * 1024 + 10);
    let r = app
        .post(&admin, "/v1/customers", json!({"external_id": big}))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.error().0.as_str()),
        (413, "invalid_request")
    );
}

#[tokio::test]
async fn each_key_is_rate_limited_with_retry_after() {
    let app = spawn_with(|o| o.api.rate_per_second = 3).await;
    let read = app.key(Mode::Test, Scope::Read).await;
    let other = app.key(Mode::Test, Scope::Read).await;
    let mut limited = None;
    for _ in 0..20 {
        let r = app.get(&read, "/v1/models").await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the rate limit answers 429");
    assert_eq!(r.error().0, "rate_limited");
    assert!(r.headers.get("retry-after").is_some());
    // Another key has its own budget.
    assert_eq!(app.get(&other, "/v1/models").await.status, 200);
}

#[tokio::test]
async fn idempotency_keys_replay_and_refuse_reuse() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let body = json!({"external_id": "idem-user"});
    let h = [("Idempotency-Key", "key-1")];
    let first = app
        .call_with(
            &admin,
            Method::POST,
            "/v1/customers",
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(first.status, 201);
    assert!(first.headers.get("idempotent-replayed").is_none());
    let again = app
        .call_with(
            &admin,
            Method::POST,
            "/v1/customers",
            Some(body.clone()),
            &h,
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.body, first.body);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    let other = app
        .call_with(
            &admin,
            Method::POST,
            "/v1/customers",
            Some(json!({"external_id": "other"})),
            &h,
        )
        .await;
    assert_eq!(
        (other.status.as_u16(), other.error().1.as_str()),
        (409, "idempotency_key_reused")
    );
    // Keys are per mode: the same key in live mode is a new request.
    let live = app.key(Mode::Live, Scope::Admin).await;
    let l = app
        .call_with(&live, Method::POST, "/v1/customers", Some(body), &h)
        .await;
    assert_eq!(l.status, 201);
    assert_ne!(l.body["id"], first.body["id"]);
    let bad = app
        .call_with(
            &admin,
            Method::POST,
            "/v1/customers",
            Some(json!({"external_id": "z"})),
            &[("Idempotency-Key", "")],
        )
        .await;
    assert_eq!(bad.status, 400);
    // Errors are replayed too: the same failing request gives the same answer.
    let cus = first.body["id"].as_str().unwrap();
    let h2 = [("Idempotency-Key", "key-2")];
    let e1 = app
        .call_with(
            &admin,
            Method::POST,
            "/v1/authorizations",
            Some(json!({"customer": cus, "amount": "5"})),
            &h2,
        )
        .await;
    let e2 = app
        .call_with(
            &admin,
            Method::POST,
            "/v1/authorizations",
            Some(json!({"customer": cus, "amount": "5"})),
            &h2,
        )
        .await;
    assert_eq!((e1.status.as_u16(), e2.status.as_u16()), (402, 402));
    assert_eq!(e2.headers.get("idempotent-replayed").unwrap(), "true");
}

#[tokio::test]
async fn plans_version_on_edit_and_old_usage_keeps_its_price() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let p = app
        .post(&admin, "/v1/plans", json!({"id": "pro", "name": "Pro", "terms": {"markup_percent": "20", "low_balance_threshold": "2"}}))
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    assert_eq!(p.body["version"], 1);
    let cus = app.customer_with_credit(&admin, "pro-user", "10").await;
    let set = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/plan"),
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(set.body["plan"], "pro");
    let ev = |rid: &str| json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": rid});
    let before = app.post(&admin, "/v1/usage", ev("one")).await;
    assert_eq!(before.body["cost"], "3.600000000");

    let patched = app
        .call(
            &admin,
            Method::PATCH,
            "/v1/plans/pro",
            Some(json!({"terms": {"markup_percent": "50"}})),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["version"], 2);
    assert_eq!(
        patched.body["terms"]["low_balance_threshold"],
        "2.000000000"
    );
    let after = app.post(&admin, "/v1/usage", ev("two")).await;
    assert_eq!(after.body["cost"], "4.500000000");
    assert_ne!(after.body["plan_version"], before.body["plan_version"]);
    let old = app
        .get(
            &admin,
            &format!("/v1/usage/{}", before.body["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(old.body["cost"], "3.600000000");

    let prices = app
        .get(&admin, &format!("/v1/customers/{cus}/prices"))
        .await;
    let sonnet = prices.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "claude-sonnet-4-5")
        .unwrap()
        .clone();
    assert_eq!(sonnet["input"], "4.500000000");
    let models = app.get(&admin, "/v1/models").await;
    let listed = models.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "claude-sonnet-4-5")
        .unwrap()
        .clone();
    assert_eq!(listed["input"], "3.000000000");
    assert_eq!(listed["batch_discount_percent"], 50);

    let est = app
        .post(&admin, "/v1/estimates", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "max_output_tokens": 0}))
        .await;
    assert_eq!(est.body["cost"], "4.500000000");
    assert_eq!(est.body["fits"], false);
    let bad = app
        .call(
            &admin,
            Method::PATCH,
            "/v1/plans/pro",
            Some(json!({"terms": {"markup_percent": "abc"}})),
        )
        .await;
    assert_eq!(bad.status, 400);
    let list = app.get(&admin, "/v1/plans").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
}

/// Schemathesis found a customer's prices answering 400 "the cost is out of range": a
/// plan could set a rate and a markup whose price per million tokens does not fit. Rates
/// are bounded now, and the dearest rate under the largest markup still prices.
#[tokio::test]
async fn the_dearest_rate_under_the_largest_markup_still_prices() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let dearest = "9999999.999999999";
    let too_dear =
        json!({"input": "10000000", "output": "1", "cache_write": "1", "cache_read": "1"});
    let r = app
        .post(
            &admin,
            "/v1/plans",
            json!({"id": "too-dear", "name": "Too dear", "terms": {"rates": {"gpt-5": too_dear}}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error().2.as_deref(), Some("rates.gpt-5"));
    let r = app
        .post(&admin, "/v1/models", json!({"id": "gilded", "provider": "openai", "input": "1", "output": "10000000", "cache_write": "1", "cache_read": "1", "batch_discount_percent": 0}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.error().2.as_deref(), Some("rates"));
    let r = app
        .post(&admin, "/v1/models", json!({"id": "gilded", "provider": "openai", "input": dearest, "output": "1", "cache_write": "1", "cache_read": "1", "batch_discount_percent": 0}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(&admin, "/v1/plans", json!({"id": "dearest", "name": "Dearest", "terms": {"markup_percent": "1000", "rates": {"gpt-5": {"input": dearest, "output": dearest, "cache_write": dearest, "cache_read": dearest, "cache_write_1h": dearest}}}}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cus = app.customer_with_credit(&admin, "dear", "1").await;
    app.post(
        &admin,
        &format!("/v1/customers/{cus}/plan"),
        json!({"plan": "dearest"}),
    )
    .await;
    let prices = app
        .get(&admin, &format!("/v1/customers/{cus}/prices"))
        .await;
    assert_eq!(prices.status, 200, "{}", prices.body);
    let rate = |id: &str| {
        prices.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["input"]
            .clone()
    };
    // The plan's own rate for gpt-5 replaces list prices and takes no markup; the
    // price book's dearest model takes the markup: 11 times, exactly.
    assert_eq!(rate("gpt-5"), dearest);
    assert_eq!(rate("gilded"), "109999999.999999989");
}

#[tokio::test]
async fn authorizations_expire_and_release() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    app.post(
        &admin,
        "/v1/plans",
        json!({"id": "short", "name": "Short holds", "terms": {"hold_lifetime_seconds": 1}}),
    )
    .await;
    let cus = app.customer_with_credit(&admin, "u", "1").await;
    app.post(
        &admin,
        &format!("/v1/customers/{cus}/plan"),
        json!({"plan": "short"}),
    )
    .await;
    let a = app
        .post(
            &admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.5"}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_string();
    let b = app
        .post(
            &admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.25"}),
        )
        .await;
    let released = app
        .post(
            &admin,
            &format!(
                "/v1/authorizations/{}/release",
                b.body["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(released.body["status"], "released");
    let mut status = String::new();
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        status = app
            .get(&admin, &format!("/v1/authorizations/{id}"))
            .await
            .body["status"]
            .as_str()
            .unwrap()
            .to_string();
        if status == "expired" {
            break;
        }
    }
    assert_eq!(status, "expired");
    // The call outlived its hold: the usage is charged all the same (from available).
    let cap = app
        .post(
            &admin,
            &format!("/v1/authorizations/{id}/capture"),
            json!({"model": "gpt-5", "input_tokens": 1000, "output_tokens": 100}),
        )
        .await;
    assert_eq!(cap.status, 200, "{}", cap.body);
    assert_eq!(cap.body["authorization_expired"], true);
    assert_eq!(cap.body["cost"], "0.002250000");
    let late_cost = money(&cap.body["cost"]);
    let by_amount = app
        .post(
            &admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.1"}),
        )
        .await;
    let cap = app
        .post(
            &admin,
            &format!(
                "/v1/authorizations/{}/capture",
                by_amount.body["id"].as_str().unwrap()
            ),
            json!({"input_tokens": 1, "output_tokens": 1}),
        )
        .await;
    assert_eq!(
        (cap.status.as_u16(), cap.error().2.as_deref()),
        (400, Some("model"))
    );
    let bal = app
        .get(&admin, &format!("/v1/customers/{cus}/balance"))
        .await;
    assert_eq!(
        money(&bal.body["available"]) + money(&bal.body["held"]),
        1_000_000_000 - late_cost
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn portal_sessions_and_grants() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "u", "0").await;
    let g = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/grants"),
            json!({"amount": "2.5", "reason": "welcome", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.body);
    assert!(g.body["id"].as_str().unwrap().starts_with("grt_"));
    assert_eq!(g.body["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(g.body["reason"], "welcome");
    let s = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/portal_sessions"),
            json!({}),
        )
        .await;
    assert_eq!(s.status, 200);
    let url = s.body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/portal/login?token=", app.base)),
        "{url}"
    );
    let page = app.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn openapi_document_describes_what_the_server_answers() {
    let app = spawn_app().await;
    let doc = app.openapi().await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_refs_resolve(&doc, &doc);
    let mut operation_ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let count = operation_ids.len();
    operation_ids.sort();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), count, "operation ids are unique");
    for path in [
        "/v1/customers",
        "/v1/customers/{id}",
        "/v1/customers/{id}/balance",
        "/v1/customers/{id}/entitlement",
        "/v1/customers/{id}/grants",
        "/v1/customers/{id}/portal_sessions",
        "/v1/customers/{id}/transactions",
        "/v1/customers/{id}/prices",
        "/v1/customers/{id}/plan",
        "/v1/authorizations",
        "/v1/authorizations/{id}/capture",
        "/v1/authorizations/{id}/release",
        "/v1/usage",
        "/v1/usage/batch",
        "/v1/estimates",
        "/v1/models",
        "/v1/plans",
        "/v1/plans/{id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    // The fields the server sends are the fields the schema names.
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "u", "1").await;
    let ev = app.post(&admin, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": 5, "output_tokens": 5, "request_id": "r"})).await;
    let customer = app.get(&admin, &format!("/v1/customers/{cus}")).await;
    let bal = app
        .get(&admin, &format!("/v1/customers/{cus}/balance"))
        .await;
    for (schema, object) in [
        ("UsageEventView", &ev.body),
        ("CustomerView", &customer.body),
        ("BalanceView", &bal.body),
    ] {
        let props = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} in components"));
        let mut documented: Vec<&String> = props.keys().collect();
        let mut sent: Vec<&String> = object.as_object().unwrap().keys().collect();
        documented.sort();
        sent.sort();
        assert_eq!(sent, documented, "{schema}");
    }
    // Each list names its items' schema instead of a copy of it (one client type each).
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let lists: Vec<&String> = schemas
        .keys()
        .filter(|k| k.starts_with("List_") || k.starts_with("DataList_"))
        .collect();
    assert!(lists.len() >= 8, "{lists:?}");
    for list in lists {
        let item = list.split_once('_').unwrap().1;
        assert_eq!(
            schemas[list]["properties"]["data"]["items"],
            json!({"$ref": format!("#/components/schemas/{item}")}),
            "{list}"
        );
    }
}

/// Every `$ref` in the document points at a schema it defines.
fn assert_refs_resolve(doc: &Value, node: &Value) {
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    let name = v
                        .as_str()
                        .unwrap()
                        .trim_start_matches("#/components/schemas/");
                    assert!(
                        doc["components"]["schemas"].get(name).is_some(),
                        "dangling $ref {v}"
                    );
                } else {
                    assert_refs_resolve(doc, v);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(doc, v)),
        _ => {}
    }
}

#[tokio::test]
async fn spend_caps_and_included_credits_follow_the_plan() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let p = app
        .post(&admin, "/v1/plans", json!({"id": "capped", "name": "Capped", "terms": {"daily_spend_cap": "0.05", "included_credits": "1"}}))
        .await;
    assert_eq!(p.status, 201, "{}", p.body);
    let c = app
        .post(
            &admin,
            "/v1/customers",
            json!({"external_id": "capped-user", "plan": "capped"}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.body);
    // Included credits are granted at creation for the current month.
    assert_eq!(c.body["balance"], "1.000000000");
    let cus = c.body["id"].as_str().unwrap();
    let txns = app
        .get(&admin, &format!("/v1/customers/{cus}/transactions"))
        .await;
    assert_eq!(txns.body["data"][0]["kind"], "grant");

    let spend = app
        .post(&admin, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 20_000, "output_tokens": 0, "request_id": "r1"}))
        .await;
    assert_eq!(spend.body["cost"], "0.060000000");
    assert_eq!(spend.body["entitled"], false);
    let e = app
        .get(&admin, &format!("/v1/customers/{cus}/entitlement"))
        .await;
    assert_eq!(e.body["reason"], "cap_reached");
    let a = app
        .post(
            &admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.01"}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.error().1.as_str()),
        (402, "cap_reached")
    );
}

#[tokio::test]
async fn revoked_keys_and_keys_of_the_other_mode_are_refused() {
    let app = spawn_app().await;
    let other_node = app.another_node(|_| {}).await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    assert_eq!(app.get(&key, "/v1/models").await.status, 200);
    assert_eq!(other_node.get(&key, "/v1/models").await.status, 200);
    let id = format!("key_{}", &key["sk_test_".len().."sk_test_".len() + 16]);
    app::core::keys::revoke(
        &app.db.store,
        &id,
        app::core::clock::Timestamp::from_micros(0),
    )
    .await
    .unwrap();
    // Revoked by another process (here: straight in the database, as the CLI does), the
    // key stops working on every node within a second (each node's cached answer expires).
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(app.get(&key, "/v1/models").await.status, 401);
    assert_eq!(other_node.get(&key, "/v1/models").await.status, 401);
    // A test key's secret relabelled as live does not authenticate.
    let other = app.key(Mode::Test, Scope::Admin).await;
    let forged = other.replacen("sk_test_", "sk_live_", 1);
    assert_eq!(app.get(&forged, "/v1/models").await.status, 401);
    assert_eq!(app.get("Bearer", "/v1/models").await.status, 401);
}

#[tokio::test]
async fn suspended_customers_cannot_authorize_but_usage_is_still_recorded() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "s", "1").await;
    app.suspend_by_staff(&cus).await;
    let e = app
        .get(&admin, &format!("/v1/customers/{cus}/entitlement"))
        .await;
    assert_eq!(e.body["reason"], "suspended");
    assert_eq!(
        app.get(&admin, &format!("/v1/customers/{cus}")).await.body["status"],
        "suspended"
    );
    let a = app
        .post(
            &admin,
            "/v1/authorizations",
            json!({"customer": cus, "amount": "0.01"}),
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.error().1.as_str()),
        (402, "suspended")
    );
    let u = app
        .post(&admin, "/v1/usage", json!({"customer": cus, "model": "gpt-5", "input_tokens": 10, "output_tokens": 10, "request_id": "late"}))
        .await;
    assert_eq!(u.status, 201);
    assert_eq!(u.body["entitled"], false);
}

/// A released authorization cannot be captured, and trying changes nothing; the check is
/// made under the account's lock, not before the job is queued.
#[tokio::test]
async fn a_released_authorization_is_not_captured() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "r", "1").await;
    let a = app
        .post(&admin, "/v1/authorizations", json!({"customer": cus, "model": "gpt-5", "input_tokens": 100, "max_output_tokens": 100}))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let auth = a.body["id"].as_str().unwrap().to_string();
    let rel = app
        .post(
            &admin,
            &format!("/v1/authorizations/{auth}/release"),
            json!({}),
        )
        .await;
    assert_eq!(rel.status, 200, "{}", rel.body);
    for _ in 0..2 {
        let cap = app
            .post(
                &admin,
                &format!("/v1/authorizations/{auth}/capture"),
                json!({"input_tokens": 10, "output_tokens": 10}),
            )
            .await;
        assert_eq!(
            (cap.status.as_u16(), cap.error().1.as_str()),
            (409, "authorization_not_pending"),
            "{}",
            cap.body
        );
    }
    let b = app
        .get(&admin, &format!("/v1/customers/{cus}/balance"))
        .await;
    assert_eq!(
        (b.body["available"].as_str(), b.body["held"].as_str()),
        (Some("1.000000000"), Some("0.000000000"))
    );
    let list = app.get(&admin, &format!("/v1/usage?customer={cus}")).await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 0);
    let unknown = app
        .post(
            &admin,
            "/v1/authorizations/auth_nope/capture",
            json!({"input_tokens": 1, "output_tokens": 1}),
        )
        .await;
    assert_eq!(unknown.status, 404);
}

/// Whatever arrives, the answer is never a 500 and the ledger stays whole.
#[tokio::test]
async fn no_input_causes_a_server_error() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "fuzz", "1").await;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        Just(Value::from(cus.clone())),
        Just(Value::from("gpt-5")),
        Just(Value::from("1.5")),
        Just(Value::from(u64::MAX)),
    ];
    let fields = [
        "customer",
        "model",
        "input_tokens",
        "output_tokens",
        "max_output_tokens",
        "amount",
        "request_id",
        "outcome",
        "batch",
        "occurred_at",
        "metadata",
        "external_id",
        "plan",
        "events",
        "cache_read_input_tokens",
        "reason",
        "expires_at",
        "terms",
        "name",
    ];
    let body =
        proptest::collection::btree_map(proptest::sample::select(fields.to_vec()), leaf, 0..8)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    let paths = [
        "/v1/customers".to_string(),
        "/v1/usage".to_string(),
        "/v1/usage/batch".to_string(),
        "/v1/authorizations".to_string(),
        "/v1/estimates".to_string(),
        "/v1/plans".to_string(),
        format!("/v1/customers/{cus}/grants"),
        format!("/v1/customers/{cus}/plan"),
    ];
    let mut runner = TestRunner::deterministic();
    for i in 0..300 {
        let b = body.new_tree(&mut runner).unwrap().current();
        let path = &paths[i % paths.len()];
        let r = app.post(&admin, path, b.clone()).await;
        assert!(
            r.status.as_u16() < 500,
            "{path} {b} -> {} {}",
            r.status,
            r.body
        );
        if !r.status.is_success() {
            assert!(
                r.body["error"]["type"].is_string(),
                "{path} {b} -> {}",
                r.body
            );
        }
    }
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn idempotency_answers_expire_but_usage_request_ids_do_not() {
    let app = spawn_with(|o| o.api.idempotency_ttl = Duration::from_secs(1)).await;
    let (key, admin) = keys::create(
        &app.db.store,
        Mode::Test,
        Scope::Admin,
        "ttl",
        SystemClock.now(),
    )
    .await
    .unwrap();
    let post = |path: &'static str, body: Value, idem: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            app.call_with(
                admin,
                Method::POST,
                path,
                Some(body),
                &[("Idempotency-Key", idem)],
            )
            .await
        }
    };
    let first = post(
        "/v1/customers",
        json!({"external_id": "ttl-a", "name": "A"}),
        "ttl-1",
    )
    .await;
    assert_eq!(first.status, 201);
    let cus = first.body["id"].as_str().unwrap().to_string();
    let reused = post("/v1/customers", json!({"external_id": "ttl-b"}), "ttl-1").await;
    assert_eq!(
        reused.status, 409,
        "within its time to live the key is taken"
    );
    app.post(
        &admin,
        &format!("/v1/customers/{cus}/grants"),
        json!({"amount": "10", "reason": "t"}),
    )
    .await;
    let usage = json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1000,
                       "output_tokens": 100, "request_id": "ttl-usage"});
    assert_eq!(post("/v1/usage", usage.clone(), "ttl-u").await.status, 201);
    let charged = balance_of(&app, &admin, &cus).await;

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // The answer has expired: the key is new again ...
    let later = post("/v1/customers", json!({"external_id": "ttl-b"}), "ttl-1").await;
    assert_eq!(later.status, 201, "{:?}", later.body);
    assert_ne!(later.body["id"], first.body["id"]);
    // ... but a usage event's request_id is its ledger reference, forever: the same event
    // sent again under the expired key is recognised, not charged twice.
    let again = post("/v1/usage", usage, "ttl-u").await;
    assert!(
        again.headers.get("idempotent-replayed").is_none(),
        "ran again"
    );
    assert_eq!(balance_of(&app, &admin, &cus).await, charged);
    // The sweep deletes expired answers: probing the first key finds it free.
    let record = format!("{}/ttl-1", key.id);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let probe = app
            .db
            .store
            .claim_idempotency_key("test", &record, "probe", SystemClock.now())
            .await
            .unwrap();
        if probe.is_none() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never purged");
    }
}

async fn balance_of(app: &TestApp, admin: &str, cus: &str) -> String {
    app.get(admin, &format!("/v1/customers/{cus}/balance"))
        .await
        .body["available"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn every_operation_documents_its_error_answers() {
    let app = spawn_app().await;
    let doc = app.openapi().await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["400", "401", "403", "429", "500", "503"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
            assert!(responses["429"]["headers"].get("Retry-After").is_some());
            if method == "post" {
                assert!(responses.contains_key("409"), "{method} {path}: 409");
                let params = op["parameters"].as_array().unwrap();
                assert!(params.iter().any(|p| p["name"] == "Idempotency-Key"));
            }
        }
    }
    // An error as sent has exactly the documented fields, and a documented type.
    let schema = &doc["components"]["schemas"]["ErrorObject"];
    let admin = admin(&app).await;
    let missing = app.get(&admin, "/v1/customers/cus_nobody").await;
    assert_eq!(missing.status, 404);
    let error = missing.body["error"].as_object().unwrap();
    for field in error.keys() {
        assert!(
            schema["properties"].get(field).is_some(),
            "{field} undocumented"
        );
    }
    let kinds = doc["components"]["schemas"]["ErrorType"]["enum"]
        .as_array()
        .unwrap();
    assert!(kinds.contains(&error["type"]), "{error:?}");
}

#[tokio::test]
async fn whole_numbers_may_be_written_with_a_fraction_and_lengths_count_characters() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    // 200 characters of two bytes each: within "1-255 characters".
    let name = "é".repeat(200);
    let created = app
        .post(&admin, "/v1/customers", json!({"external_id": name}))
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let too_long = app
        .post(
            &admin,
            "/v1/customers",
            json!({"external_id": "é".repeat(256)}),
        )
        .await;
    assert_eq!(too_long.status, 400);
    let cus = app.customer_with_credit(&admin, "floats", "10").await;
    // JSON has one number type: 1000.0 is the integer 1000 (as the OpenAPI document,
    // JSON Schema 2020-12, says); metadata is kept exactly as sent.
    let r = app
        .post(
            &admin,
            "/v1/usage",
            json!({"customer": cus, "model": "claude-sonnet-4-5",
            "input_tokens": 1000.0, "output_tokens": 100, "request_id": "f-1",
            "metadata": {"ratio": 2.0}}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["input_tokens"], 1000);
    assert_eq!(r.body["metadata"]["ratio"], json!(2.0));
    for bad in [json!(1000.5), json!(-1.0), json!(1e300)] {
        let r = app
            .post(
                &admin,
                "/v1/usage",
                json!({"customer": cus, "model": "claude-sonnet-4-5",
                "input_tokens": bad, "output_tokens": 100, "request_id": "f-2"}),
            )
            .await;
        assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
        assert_eq!(r.error().2.as_deref(), Some("input_tokens"));
    }
}

#[tokio::test]
async fn unknown_fields_inside_plan_terms_are_refused() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    for terms in [
        json!({"tiers": [{"from_tokens": 1, "discount_percent": "1", "bogus": 1}]}),
        json!({"rates": {"m1": {"input": "1", "output": "1", "cache_write": "1",
                                "cache_read": "1", "bogus": true}}}),
    ] {
        let r = app
            .post(
                &admin,
                "/v1/plans",
                json!({"name": "strict", "terms": terms}),
            )
            .await;
        assert_eq!(r.status, 400, "{terms}: {:?}", r.body);
        assert!(
            r.error().2.unwrap_or_default().starts_with("terms."),
            "{:?}",
            r.body
        );
    }
    // The document describes the terms field by field, closed to others.
    let doc = app.openapi().await;
    let schemas = &doc["components"]["schemas"];
    for name in ["PlanTerms", "Tier", "Rates"] {
        assert_eq!(
            schemas[name]["additionalProperties"],
            json!(false),
            "{name}"
        );
    }
    assert!(schemas["PlanTerms"]["properties"]["tiers"].is_object());
}

#[tokio::test]
async fn lists_page_both_ways_and_objects_say_what_they_are() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let cus = app.customer_with_credit(&admin, "pager", "10").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = app
            .post(
                &admin,
                "/v1/usage",
                json!({"customer": cus, "model": "gpt-5",
                "input_tokens": 10, "output_tokens": 10, "request_id": format!("p-{i}")}),
            )
            .await;
        assert_eq!(r.body["object"], "usage_event");
        ids.push(r.body["id"].as_str().unwrap().to_string());
    }
    let id = |i: usize| ids[i].clone();
    // Newest first, then older after a cursor, then newer before one.
    assert_eq!(
        page(&app, &admin, &cus, String::new()).await,
        (vec![id(4), id(3)], true)
    );
    assert_eq!(
        page(&app, &admin, &cus, format!("&starting_after={}", id(3))).await,
        (vec![id(2), id(1)], true)
    );
    assert_eq!(
        page(&app, &admin, &cus, format!("&ending_before={}", id(1))).await,
        (vec![id(3), id(2)], true)
    );
    assert_eq!(
        page(&app, &admin, &cus, format!("&ending_before={}", id(2))).await,
        (vec![id(4), id(3)], false)
    );
    let both = app
        .get(
            &admin,
            &format!("/v1/usage?starting_after={}&ending_before={}", id(1), id(3)),
        )
        .await;
    assert_eq!(both.status, 400);
    // The ledger's list pages the same way.
    let txns = app
        .get(&admin, &format!("/v1/customers/{cus}/transactions?limit=2"))
        .await;
    let first = txns.body["data"][1]["id"].as_str().unwrap().to_string();
    let newer = app
        .get(
            &admin,
            &format!("/v1/customers/{cus}/transactions?limit=2&ending_before={first}"),
        )
        .await;
    assert_eq!(newer.body["data"][0]["object"], "transaction");
    assert_eq!(newer.body["data"][0]["id"], txns.body["data"][0]["id"]);
    assert_eq!(newer.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(newer.body["has_more"], false);
    for (path, object) in [
        (format!("/v1/customers/{cus}"), "customer"),
        (format!("/v1/customers/{cus}/balance"), "balance"),
        (format!("/v1/customers/{cus}/entitlement"), "entitlement"),
        ("/v1/plans/standard".to_string(), "plan"),
    ] {
        assert_eq!(
            app.get(&admin, &path).await.body["object"],
            object,
            "{path}"
        );
    }
}

/// One page of a customer's usage, two at a time: (ids, has_more).
async fn page(app: &TestApp, admin: &str, cus: &str, query: String) -> (Vec<String>, bool) {
    let r = app
        .get(admin, &format!("/v1/usage?customer={cus}&limit=2{query}"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["object"], "list");
    let got = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    (got, r.body["has_more"].as_bool().unwrap())
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let doc = app.openapi().await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "none").replace("{key_id}", "none");
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app
                .http
                .request(method.clone(), format!("{}{concrete}", app.base))
                .bearer_auth(&admin)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert_ne!(
                body["error"]["message"], "no such route",
                "{method} {path} is documented but not routed"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked} operations");
}

#[tokio::test]
async fn text_holding_nul_is_refused_on_every_way_in() {
    // PostgreSQL cannot store U+0000: before, such text reached a query and answered 500.
    let app = spawn_app().await;
    let admin = admin(&app).await;
    let r = app
        .post(
            &admin,
            "/v1/models",
            json!({"id": "m", "provider": "a\u{0}b", "input": "1",
            "output": "1", "cache_write": "1", "cache_read": "1", "batch_discount_percent": 0}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.error().2.as_deref(), Some("provider"));
    let r = app
        .post(
            &admin,
            "/v1/usage/batch",
            json!({"events": [{"customer": "x\u{0}",
            "model": "m", "input_tokens": 1, "output_tokens": 1, "request_id": "n"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.error().2.as_deref(), Some("events[0].customer"));
    for path in ["/v1/customers/cus%00x", "/v1/usage?customer=%00"] {
        let r = app.get(&admin, path).await;
        assert_eq!(r.status, 400, "{path}: {:?}", r.body);
    }
}
