//! The web side: health, readiness, server-rendered pages, server functions, shutdown.

use std::time::Duration;

use app::core::admin::Role;
use app::core::clock::{Clock, SystemClock};
use app::core::ids;
use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::store::QueueLags;

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
    let cus = app.customer_with_credit(&admin, "metered", "5").await;
    app.inbox_applies("evt_metrics").await;
    // Two usage events (group commits) and one call through the proxy, which test mode
    // answers with the simulated provider.
    for id in ["m-1", "m-2"] {
        let r = app
            .post(
                &admin,
                "/v1/usage",
                serde_json::json!({"customer": cus, "model": "claude-sonnet-4-5",
                    "input_tokens": 10, "output_tokens": 5, "request_id": id}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app
        .http
        .post(format!("{}/proxy/anthropic/v1/messages", app.base))
        .header("x-api-key", &admin)
        .header("tally-customer", &cus)
        .json(
            &serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        app.http
            .get(format!("{}/no-such-page-{}", app.base, ids::new_id("x")))
            .send()
            .await
            .unwrap();
    }
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
    let value = |series: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{series} in {text}"))
    };
    // Latency per route, as the route was registered: the two usage events under one
    // series, the balance-less 404s under `unmatched` (three paths, one series).
    let usage = "tally_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/usage\",status=\"2xx\"}";
    assert_eq!(value(usage), 2.0);
    assert_eq!(
        value("tally_http_request_duration_seconds_count{method=\"GET\",route=\"unmatched\",status=\"4xx\"}"),
        3.0
    );
    assert_eq!(
        value("tally_http_request_duration_seconds_count{method=\"GET\",route=\"/healthz\",status=\"2xx\"}"),
        1.0
    );
    assert!(
        text.contains("# TYPE tally_http_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("tally_http_request_duration_seconds_bucket{method=\"POST\",route=\"/v1/usage\",status=\"2xx\",le=\"60\"} 2"),
        "{text}"
    );
    // Group commits: at least the two usage events' (the credit and the proxy's hold and
    // capture write through the ledger too), each with its size and duration.
    assert!(value("tally_group_commit_jobs_count") >= 2.0);
    assert!(value("tally_group_commit_jobs_sum") >= 2.0);
    assert_eq!(
        value("tally_group_commit_seconds_count"),
        value("tally_group_commit_jobs_count")
    );
    // The proxy's wait for its provider.
    assert_eq!(
        value("tally_proxy_upstream_seconds_count{provider=\"anthropic\",outcome=\"2xx\"}"),
        1.0
    );
    // Queues: nothing waits.
    for queue in ["stripe_inbox", "outbox", "webhook_deliveries", "emails"] {
        let lag = value(&format!("tally_queue_lag_seconds{{queue=\"{queue}\"}}"));
        assert!(lag < 60.0, "{queue}: {lag}");
    }
    assert_eq!(value("tally_webhook_events{status=\"failed\"}"), 0.0);
    assert!(
        !text.contains("status=\"processed\""),
        "processed events are a counter, not a count of rows"
    );
    // Counted as they commit, not by counting rows.
    assert_eq!(value("tally_webhook_events_processed_total"), 1.0);
    assert!(value("tally_ledger_transactions_total") >= 1.0);
    app.running.stop().await.unwrap();
}

/// A Stripe event received and not applied shows as the inbox's lag: how long the oldest
/// due event has waited. (A store without a server, so no worker applies it meanwhile.)
#[tokio::test]
async fn the_inbox_lag_is_the_wait_of_its_oldest_due_event() {
    let db = app::core::testing::fresh_store().await.unwrap();
    let now = SystemClock.now();
    let lags = db.store.queue_lags(now).await.unwrap();
    assert_eq!(
        lags,
        QueueLags::default(),
        "an empty database waits for nothing"
    );
    // One event received ten minutes ago, one a minute ago; neither applied.
    for (id, ago) in [("evt_older", -600), ("evt_newer", -60)] {
        db.store
            .insert_webhook_event(
                id,
                "payment_intent.created",
                "test",
                "{}",
                "stripe",
                now.plus_seconds(ago),
            )
            .await
            .unwrap();
    }
    let lags = db.store.queue_lags(now).await.unwrap();
    assert_eq!(lags.stripe_inbox, Duration::from_secs(600), "{lags:?}");
    assert_eq!(lags.outbox, Duration::ZERO);
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
        .contains("tally_http_request_duration_seconds"));
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
