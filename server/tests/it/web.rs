//! The web side: health, readiness, server-rendered pages, server functions, shutdown.

use std::time::Duration;

use app::core::admin::Role;
use app::core::keys::Scope;
use app::core::ledger::Mode;

use crate::helpers::{spawn_app, spawn_with};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_gone() {
    let app = spawn_app().await;
    app.db.store.close().await;
    let r = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn pages_are_rendered_on_the_server_with_a_request_id() {
    let app = spawn_app().await;
    let r = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = r
        .headers()
        .get("x-request-id")
        .expect("request id")
        .to_str()
        .unwrap()
        .to_string();
    assert!(!id.is_empty());
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>Ledger</h1>"), "{html}");
    assert!(html.contains("/pkg/tally.js"));
    // A visitor is sent to sign in; the ledger's state is for staff.
    assert!(html.contains(r#"data-testid="sign-in-hint""#), "{html}");
    assert!(!html.contains(r#"data-testid="database""#));
    let staff = crate::admin::staff_browser(&app, "ops@example.com", Role::Viewer).await;
    let html = staff
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The summary came from the database during SSR, not after hydration.
    assert!(html.contains(r#"data-testid="database""#), "{html}");

    let r = app
        .http
        .get(format!("{}/no-such-page", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn server_functions_reach_the_core() {
    let app = spawn_app().await;
    let staff = crate::admin::staff_browser(&app, "ops@example.com", Role::Viewer).await;
    let r = staff
        .post(format!("{}/api/verify_ledger", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["clean"], true);
    assert!(body["report"].as_str().unwrap().contains("ledger is clean"));
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn stop_waits_for_in_flight_requests() {
    let app = spawn_app().await;
    let url = format!("{}/", app.base);
    let http = app.http.clone();
    let in_flight = tokio::spawn(async move { http.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    app.running.stop().await.unwrap();
    let r = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = spawn_app().await;
    // One credit (a ledger transaction) and one Stripe event applied by the inbox.
    let admin = app.key(Mode::Test, Scope::Admin).await;
    app.customer_with_credit(&admin, "metered", "5").await;
    app.inbox_applies("evt_metrics").await;
    app.http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    app.http
        .get(format!("{}/no-such-page", app.base))
        .send()
        .await
        .unwrap();
    let r = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    };
    assert!(value("tally_http_responses_total{class=\"2xx\"}") >= 1.0);
    assert!(value("tally_http_responses_total{class=\"4xx\"}") >= 1.0);
    assert_eq!(value("tally_webhook_events{status=\"failed\"}"), 0.0);
    assert!(
        !text.contains("status=\"processed\""),
        "processed events are a counter, not a count of rows"
    );
    // Counted as they commit, not by counting rows.
    assert_eq!(value("tally_ledger_transactions_total"), 1.0);
    assert_eq!(value("tally_webhook_events_processed_total"), 1.0);
    app.running.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_ask_for_the_bearer_token_when_one_is_set() {
    let app = crate::helpers::spawn_with(|o| {
        o.metrics_token = Some(server::metrics::Token::new("scrape-me".into()))
    })
    .await;
    let scrape = |auth: Option<&'static str>| {
        let mut r = app.http.get(format!("{}/metrics", app.base));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send()
    };
    for refused in [
        None,
        Some("Bearer wrong"),
        Some("scrape-me"),
        Some("Bearer scrape-m"),
    ] {
        let r = scrape(refused).await.unwrap();
        assert_eq!(r.status(), 401, "{refused:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let r = scrape(Some("Bearer scrape-me")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("tally_http_responses_total"));
}

#[tokio::test]
async fn past_its_in_flight_limit_a_node_sheds_requests_and_keeps_its_probes() {
    let app = spawn_with(|o| o.max_in_flight = 2).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    // Two slow requests take both slots: the simulated provider waits before answering.
    let slow = || {
        let http = app.http.clone();
        let url = format!("{}/simulated/anthropic/v1/messages", app.base);
        tokio::spawn(async move {
            http.post(url)
                .json(
                    &serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 10,
                    "messages": [{"role": "user", "content": "[sim delay_ms=1500] hello"}]}),
                )
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    let (a, b) = (slow(), slow());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shed = app.get(&admin, "/v1/models").await;
    assert_eq!(shed.status, 503, "{:?}", shed.body);
    assert_eq!(shed.error().1, "overloaded");
    assert_eq!(shed.headers["retry-after"], "1");
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let r = app
            .http
            .get(format!("{}{probe}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{probe} is never shed");
    }
    assert!(a.await.unwrap().is_success());
    assert!(b.await.unwrap().is_success());
    assert_eq!(
        app.get(&admin, "/v1/models").await.status,
        200,
        "slots freed"
    );
}
