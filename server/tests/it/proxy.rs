//! The metering proxy through the real server, against the provider imitation on its own
//! loopback port (the simulated provider: the providers' real JSON and event shapes, with
//! scripted failures).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::store::{ProxyRequestRow, ProxyStatus};
use reqwest::StatusCode;
use serde_json::{json, Value};
use server::proxy::simulated::{self, SimStats};
use server::proxy::{OnDisconnect, Upstream};

use crate::helpers::{spawn_with, TestApp};

const OPERATOR_ANTHROPIC_KEY: &str = "sk-ant-operator-secret";
const OPERATOR_OPENAI_KEY: &str = "sk-openai-operator-secret";

struct Proxied {
    app: TestApp,
    stats: Arc<SimStats>,
    admin: String,
}

/// The provider imitation on its own port; returns its base URL.
async fn imitation(stats: Arc<SimStats>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, simulated::router(stats)).await;
    });
    format!("http://{addr}")
}

async fn spawn_proxied(on_disconnect: OnDisconnect) -> Proxied {
    let stats = Arc::new(SimStats::default());
    let base = imitation(stats.clone()).await;
    let app = spawn_with(|o| {
        o.proxy.anthropic = Upstream {
            base_url: format!("{base}/anthropic"),
            api_key: Some(OPERATOR_ANTHROPIC_KEY.into()),
            admin_key: None,
        };
        o.proxy.openai = Upstream {
            base_url: format!("{base}/openai"),
            api_key: Some(OPERATOR_OPENAI_KEY.into()),
            admin_key: None,
        };
        o.proxy.first_byte_timeout = Duration::from_millis(1_500);
        o.proxy.idle_timeout = Duration::from_millis(1_500);
        o.proxy.on_disconnect = on_disconnect;
    })
    .await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    Proxied { app, stats, admin }
}

impl Proxied {
    async fn customer(&self, name: &str, credit: &str) -> String {
        self.app
            .customer_with_credit(&self.admin, name, credit)
            .await
    }

    async fn customer_key(&self, customer: &str, body: Value) -> String {
        let r = self
            .app
            .post(&self.admin, &format!("/v1/customers/{customer}/keys"), body)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["secret"].as_str().unwrap().to_string()
    }

    fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
        self.app
            .http
            .post(format!("{}/proxy{path}", self.app.base))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(body)
    }

    /// A request with the key as `Authorization: Bearer` (the OpenAI SDKs' way).
    fn openai(&self, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
        self.app
            .http
            .post(format!("{}/proxy{path}", self.app.base))
            .bearer_auth(key)
            .json(body)
    }

    async fn available(&self, customer: &str) -> String {
        let b = self
            .app
            .get(&self.admin, &format!("/v1/customers/{customer}/balance"))
            .await;
        b.body["available"].as_str().unwrap().to_string()
    }

    async fn held(&self, customer: &str) -> String {
        let b = self
            .app
            .get(&self.admin, &format!("/v1/customers/{customer}/balance"))
            .await;
        b.body["held"].as_str().unwrap().to_string()
    }

    async fn events(&self, customer: &str) -> Vec<Value> {
        let r = self
            .app
            .get(&self.admin, &format!("/v1/usage?customer={customer}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["data"].as_array().unwrap().clone()
    }

    async fn requests(&self, customer: &str) -> Vec<ProxyRequestRow> {
        self.app
            .db
            .store
            .proxy_requests(customer, 100)
            .await
            .unwrap()
    }

    /// Waits until the customer's proxied requests are all settled (streams settle in
    /// their own task).
    async fn settled(&self, customer: &str, count: usize) -> Vec<ProxyRequestRow> {
        for _ in 0..200 {
            let rows = self.requests(customer).await;
            if rows.len() >= count && rows.iter().all(|r| r.status != ProxyStatus::Open) {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "requests of {customer} never settled: {:?}",
            self.requests(customer).await
        );
    }
}

fn messages(text: &str, max_tokens: u64, stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": max_tokens, "stream": stream,
        "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn anthropic_messages_are_held_forwarded_and_charged_exactly() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("ant-whole", "10").await;
    let key = p.customer_key(&cus, json!({"name": "app"})).await;
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("Hello there", 200, false),
        )
        .header("tally-metadata", r#"{"feature":"chat"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let auth = r.headers()["tally-authorization"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(auth.starts_with("auth_"));
    let cost = r.headers()["tally-cost"].to_str().unwrap().to_string();
    let balance = r.headers()["tally-balance"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert!(body["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("simulated provider"));
    // The operator's provider key went upstream, never the customer's key.
    assert_eq!(
        p.stats.last_key.lock().unwrap().as_deref(),
        Some(OPERATOR_ANTHROPIC_KEY)
    );
    let events = p.events(&cus).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e["request_id"], body["id"]);
    assert_eq!(e["outcome"], "succeeded");
    assert_eq!(e["input_tokens"], body["usage"]["input_tokens"]);
    assert_eq!(e["output_tokens"], body["usage"]["output_tokens"]);
    assert_eq!(e["cost"].as_str().unwrap(), cost);
    assert_eq!(e["metadata"]["feature"], "chat");
    // The hold is gone; the balance is the grant less the exact cost.
    assert_eq!(p.held(&cus).await, "0.000000000");
    assert_eq!(p.available(&cus).await, balance);
    let expected = app::core::money::Money::parse("10")
        .unwrap()
        .checked_sub(app::core::money::Money::parse(&cost).unwrap())
        .unwrap();
    assert_eq!(p.available(&cus).await, expected.to_string());
    let rows = p.settled(&cus, 1).await;
    assert_eq!(rows[0].status, ProxyStatus::Charged);
    assert_eq!(rows[0].upstream_status, Some(200));
    p.app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_stream_passes_through_unchanged_and_is_charged_from_its_usage_events() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("ant-stream", "10").await;
    let operator = p.app.key(Mode::Test, Scope::Usage).await;
    // The OpenAI-style bearer header works on the Anthropic route too (SDK auth_token).
    let r = p
        .app
        .http
        .post(format!("{}/proxy/anthropic/v1/messages", p.app.base))
        .bearer_auth(&operator)
        .header("tally-customer", &cus)
        .json(&messages(
            "[sim words=30 cache_read=500 cache_write=100 cache_write_1h=40] Stream please",
            300,
            true,
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    assert!(text.starts_with("event: message_start\n"));
    assert!(text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    assert_eq!(text.matches("event: content_block_delta").count(), 30);
    let rows = p.settled(&cus, 1).await;
    assert_eq!(rows[0].status, ProxyStatus::Charged);
    assert!(rows[0].streamed);
    let e = &p.events(&cus).await[0];
    assert_eq!(e["output_tokens"], 30);
    assert_eq!(e["cache_read_input_tokens"], 500);
    assert_eq!(e["cache_creation_input_tokens"], 140);
    // The one-hour writes are priced apart, at their own rate (twice Sonnet's $3 input).
    assert_eq!(e["cache_creation_1h_input_tokens"], 40);
    let items = e["line_items"].as_array().unwrap();
    let one_hour = items
        .iter()
        .find(|i| i["kind"] == "cache_write_1h")
        .unwrap();
    assert_eq!(one_hour["tokens"], 40);
    assert_eq!(one_hour["rate_per_million"], "6.000000000");
    assert!(text.contains(e["request_id"].as_str().unwrap()));
    assert_eq!(p.held(&cus).await, "0.000000000");
}

#[tokio::test]
async fn openai_chat_streams_get_usage_added_and_hidden_unless_asked() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("oai-chat", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    let chat = |include: bool| {
        let mut b = json!({"model": "gpt-4.1", "max_completion_tokens": 100, "stream": true,
            "messages": [{"role": "user", "content": "[sim words=12 cache_read=64] hi"}]});
        if include {
            b["stream_options"] = json!({"include_usage": true});
        }
        b
    };
    for (i, include) in [false, true].into_iter().enumerate() {
        let r = p
            .openai("/openai/v1/chat/completions", &key, &chat(include))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert_eq!(text.contains("\"prompt_tokens\""), include, "{text}");
        let rows = p.settled(&cus, i + 1).await;
        assert!(rows.iter().all(|r| r.status == ProxyStatus::Charged));
    }
    let events = p.events(&cus).await;
    assert_eq!(events.len(), 2);
    for e in &events {
        assert_eq!(e["output_tokens"], 12);
        assert_eq!(e["cache_read_input_tokens"], 64);
        assert!(e["request_id"].as_str().unwrap().starts_with("chatcmpl-"));
    }
    // Not streamed: the whole answer and the cost in headers.
    let r = p
        .openai(
            "/openai/v1/chat/completions",
            &key,
            &json!({"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("tally-cost"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
}

#[tokio::test]
async fn openai_responses_streamed_and_not() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("oai-resp", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    for stream in [false, true] {
        let r = p.openai("/openai/v1/responses", &key, &json!({"model": "gpt-5-mini", "input": "[sim words=7] hello", "stream": stream, "max_output_tokens": 64})).send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        if stream {
            assert!(text.contains("event: response.completed"));
        } else {
            assert!(text.contains("\"object\":\"response\""));
        }
    }
    p.settled(&cus, 2).await;
    let events = p.events(&cus).await;
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e["output_tokens"] == 7
                && e["request_id"].as_str().unwrap().starts_with("resp_"))
    );
}

#[tokio::test]
async fn upstream_errors_charge_nothing_and_pass_through_with_retry_after() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("errors", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("[sim status=429 retry_after=7]", 100, false),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("[sim status=529]", 100, true),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("[sim status=400]", 100, false),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let rows = p.settled(&cus, 3).await;
    let mut statuses: Vec<_> = rows.iter().map(|r| r.upstream_status).collect();
    statuses.sort();
    assert_eq!(statuses, vec![Some(400), Some(429), Some(529)]);
    assert!(rows
        .iter()
        .all(|r| r.status == ProxyStatus::Failed && r.reason.as_deref() == Some("upstream_error")));
    // Each left a failed event of cost 0; nothing is held or charged.
    let events = p.events(&cus).await;
    assert_eq!(events.len(), 3);
    assert!(events
        .iter()
        .all(|e| e["outcome"] == "failed" && e["cost"] == "0.000000000"));
    assert_eq!(p.available(&cus).await, "10.000000000");
    assert_eq!(p.held(&cus).await, "0.000000000");
}

#[tokio::test]
async fn refused_connections_and_slow_first_bytes_release_the_hold() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("down", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    // Slower than the first-byte timeout (1.5 s here).
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("[sim delay_ms=4000]", 100, false),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["tally_code"], "upstream_timeout");

    // A provider that refuses connections.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let down = spawn_with(|o| {
        o.proxy.openai = Upstream {
            base_url: format!("http://{dead}"),
            api_key: Some(OPERATOR_OPENAI_KEY.into()),
            admin_key: None,
        };
    })
    .await;
    let admin = down.key(Mode::Test, Scope::Admin).await;
    let c2 = down.customer_with_credit(&admin, "down2", "10").await;
    let r = down
        .http
        .post(format!("{}/proxy/openai/v1/chat/completions", down.base))
        .bearer_auth(&admin)
        .header("tally-customer", &c2)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_unreachable");
    let rows = down.db.store.proxy_requests(&c2, 10).await.unwrap();
    assert_eq!(rows[0].status, ProxyStatus::Failed);
    assert_eq!(rows[0].reason.as_deref(), Some("upstream_unreachable"));

    let rows = p.settled(&cus, 1).await;
    assert_eq!(rows[0].reason.as_deref(), Some("upstream_timeout"));
    assert_eq!(p.available(&cus).await, "10.000000000");
    assert_eq!(p.held(&cus).await, "0.000000000");
}

#[tokio::test]
async fn a_stream_that_breaks_half_way_is_charged_by_the_failed_request_policy() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("broken", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("[sim words=50 break_after=5 slow_ms=20] go", 500, true),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The client sees the stream end early.
    let _ = r.text().await;
    let rows = p.settled(&cus, 1).await;
    assert_eq!(rows[0].reason.as_deref(), Some("stream_broken"));
    let e = &p.events(&cus).await[0];
    assert_eq!(e["outcome"], "failed");
    // Input is known from message_start; the standard plan charges input, not output.
    assert!(e["input_tokens"].as_u64().unwrap() > 0);
    let items = e["line_items"].as_array().unwrap();
    let output = items.iter().find(|i| i["kind"] == "output");
    assert!(
        output.is_none_or(|o| o["amount"] == "0.000000000"),
        "{items:?}"
    );
    assert_ne!(e["cost"], "0.000000000");
    assert_eq!(p.held(&cus).await, "0.000000000");
}

#[tokio::test]
async fn a_slow_stream_within_the_idle_timeout_completes() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("slow", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("[sim words=6 slow_ms=300] go", 100, true),
        )
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("message_stop"));
    let rows = p.settled(&cus, 1).await;
    assert_eq!(rows[0].status, ProxyStatus::Charged);
    assert_eq!(p.events(&cus).await[0]["outcome"], "succeeded");
}

/// Reads the first chunk of a stream, then drops the connection.
async fn read_one_chunk_and_leave(p: &Proxied, key: &str, text: &str) {
    let mut r = p
        .post("/anthropic/v1/messages", key, &messages(text, 500, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap();
    assert!(first.is_some());
    drop(r);
}

#[tokio::test]
async fn a_client_that_leaves_is_drained_and_charged_exactly() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("leaver", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    read_one_chunk_and_leave(&p, &key, "[sim words=20 slow_ms=50] go").await;
    let rows = p.settled(&cus, 1).await;
    assert_eq!(rows[0].reason.as_deref(), Some("client_disconnected"));
    let e = &p.events(&cus).await[0];
    assert_eq!(e["outcome"], "cancelled");
    // The whole answer was read upstream: its exact usage.
    assert_eq!(e["output_tokens"], 20);
    assert_eq!(p.stats.completed.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_client_that_leaves_with_abort_stops_the_upstream_and_pays_what_streamed() {
    let p = spawn_proxied(OnDisconnect::Abort).await;
    let cus = p.customer("aborter", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    read_one_chunk_and_leave(&p, &key, "[sim words=40 slow_ms=50] go").await;
    let rows = p.settled(&cus, 1).await;
    assert_eq!(rows[0].reason.as_deref(), Some("client_disconnected"));
    let e = &p.events(&cus).await[0];
    assert_eq!(e["outcome"], "cancelled");
    let out = e["output_tokens"].as_u64().unwrap();
    assert!(out < 40, "stopped early: {out}");
    for _ in 0..100 {
        if p.stats.abandoned.load(Ordering::Relaxed) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(p.stats.abandoned.load(Ordering::Relaxed), 1);
    assert_eq!(p.stats.completed.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn no_credit_is_refused_in_the_providers_format_before_anything_is_sent() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("poor", "0.0001").await;
    let key = p.customer_key(&cus, json!({})).await;
    let r = p
        .post("/anthropic/v1/messages", &key, &messages("hi", 1000, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["tally_code"], "insufficient_credits");
    let r = p
        .openai(
            "/openai/v1/chat/completions",
            &key,
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_credits");
    assert_eq!(p.stats.requests.load(Ordering::Relaxed), 0);
    let rows = p.requests(&cus).await;
    assert_eq!(rows.len(), 2);
    assert!(rows
        .iter()
        .all(|r| r.status == ProxyStatus::Refused
            && r.reason.as_deref() == Some("insufficient_credits")));
    assert!(p.events(&cus).await.is_empty());
}

#[tokio::test]
async fn a_keys_spend_limit_holds_against_parallel_requests() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("limited", "10").await;
    // Each request holds about 0.0047 (1,174 input tokens at most, 100 output, Sonnet).
    let key = p
        .customer_key(
            &cus,
            json!({"name": "capped", "spend_limit": "0.012", "limit_period": "day"}),
        )
        .await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let req = p.post(
            "/anthropic/v1/messages",
            &key,
            &messages("[sim delay_ms=400] hi", 100, false),
        );
        tasks.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status() {
            StatusCode::OK => ok += 1,
            StatusCode::PAYMENT_REQUIRED => {
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["error"]["tally_code"], "key_limit_reached");
                limited += 1;
            }
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(ok + limited, 8);
    assert!(
        (1..=2).contains(&ok),
        "{ok} passed a limit that fits two holds"
    );
    let keys = p
        .app
        .get(&p.admin, &format!("/v1/customers/{cus}/keys"))
        .await;
    let k = &keys.body["data"][0];
    let spent = app::core::money::Money::parse(k["spent"].as_str().unwrap()).unwrap();
    assert!(spent <= app::core::money::Money::parse("0.012").unwrap());
    assert!(spent.is_positive());
    assert!(k.get("secret").is_none());
    // The operator's app hears of it once per limit period, however many were refused.
    let events = p
        .app
        .db
        .store
        .events(None, Some(&cus), None, 50)
        .await
        .unwrap();
    let limits: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == app::core::vocab::EventType::KeyLimitReached)
        .collect();
    assert_eq!(limits.len(), 1, "{events:?}");
    let data: Value = serde_json::from_str(&limits[0].data).unwrap();
    assert_eq!(data["key"], k["id"]);
    assert_eq!(data["customer"]["id"], cus.as_str());
    assert_eq!(data["spend_limit"], "0.012000000");
}

#[tokio::test]
async fn revoked_keys_and_customer_keys_outside_the_proxy_are_refused() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("revoker", "10").await;
    let created = p
        .app
        .post(
            &p.admin,
            &format!("/v1/customers/{cus}/keys"),
            json!({"name": "old"}),
        )
        .await;
    let secret = created.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("ck_test_"));
    let id = created.body["id"].as_str().unwrap();
    // A customer key is not an API key.
    assert_eq!(p.app.get(&secret, "/v1/usage").await.status, 401);
    let r = p
        .app
        .post(
            &p.admin,
            &format!("/v1/customers/{cus}/keys/{id}/revoke"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["revoked"], true);
    let r = p
        .post(
            "/anthropic/v1/messages",
            &secret,
            &messages("hi", 10, false),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
}

#[tokio::test]
async fn the_request_cost_guard_names_the_estimate() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let plan = p
        .app
        .post(
            &p.admin,
            "/v1/plans",
            json!({"id": "guarded", "name": "Guarded", "terms": {"max_request_cost": "0.05"}}),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.body);
    let cus = p
        .app
        .customer_on_plan(&p.admin, "guarded-cus", Some("guarded"), "100")
        .await;
    let key = p.customer_key(&cus, json!({})).await;
    // 100,000 output tokens of Sonnet at most: 1.50, far over 0.05.
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &messages("hi", 100_000, false),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("1.5"), "{message}");
    assert!(message.contains("0.05"), "{message}");
    assert_eq!(
        p.requests(&cus).await[0].reason.as_deref(),
        Some("max_request_cost")
    );
    // A small request passes.
    let r = p
        .post("/anthropic/v1/messages", &key, &messages("hi", 100, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn conversations_group_requests_and_models_list_the_price_book() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let cus = p.customer("talker", "10").await;
    let key = p.customer_key(&cus, json!({})).await;
    for conv in ["c-1", "c-1", "c-2"] {
        let r = p
            .post("/anthropic/v1/messages", &key, &messages("hi", 50, false))
            .header("tally-conversation", conv)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = p
        .app
        .get(
            &p.admin,
            &format!("/v1/usage?customer={cus}&conversation=c-1"),
        )
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 2);
    let convs = p.app.db.store.conversations(&cus, 10).await.unwrap();
    assert_eq!(convs.len(), 2);
    let c1 = convs.iter().find(|c| c.conversation == "c-1").unwrap();
    assert_eq!(c1.requests, 2);
    assert!(c1.cost.is_positive());

    let r = p
        .app
        .http
        .get(format!("{}/proxy/anthropic/v1/models", p.app.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let ids: Vec<_> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"claude-sonnet-4-5".to_string()));
    assert!(!ids.iter().any(|i| i.starts_with("gpt")));
    let r = p
        .app
        .http
        .get(format!("{}/proxy/openai/v1/models", p.app.base))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| !m["id"].as_str().unwrap().starts_with("claude")));

    // count_tokens passes through and is never charged.
    let r = p
        .post(
            "/anthropic/v1/messages/count_tokens",
            &key,
            &json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(p.events(&cus).await.len(), 3);

    // An unpriced model is refused before anything is held.
    let r = p
        .post(
            "/anthropic/v1/messages",
            &key,
            &json!({"model": "claude-unknown", "max_tokens": 5, "messages": []}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["tally_code"], "unknown_model");
}

#[tokio::test]
async fn test_mode_without_provider_keys_uses_the_simulated_provider_live_mode_refuses() {
    let app = spawn_with(|_| {}).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&admin, "sim", "5").await;
    let r = app
        .http
        .post(format!("{}/proxy/anthropic/v1/messages", app.base))
        .header("x-api-key", &admin)
        .header("tally-customer", &cus)
        .json(&messages("hello", 64, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("simulated"));
    let live = app.key(Mode::Live, Scope::Admin).await;
    let lcus = app.customer_with_credit(&live, "sim-live", "5").await;
    let r = app
        .http
        .post(format!("{}/proxy/anthropic/v1/messages", app.base))
        .header("x-api-key", &live)
        .header("tally-customer", &lcus)
        .json(&messages("hello", 64, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let rows = app.db.store.proxy_requests(&lcus, 10).await.unwrap();
    assert_eq!(rows[0].reason.as_deref(), Some("no_provider_key"));
    let b = app
        .get(&live, &format!("/v1/customers/{lcus}/balance"))
        .await;
    assert_eq!(b.body["available"], "5.000000000");
}

#[tokio::test]
async fn provider_reconciliation_reports_the_drift_per_model_and_day() {
    let stats = Arc::new(SimStats::default());
    let base = imitation(stats.clone()).await;
    let app = spawn_with(|o| {
        o.proxy.anthropic = Upstream {
            base_url: format!("{base}/anthropic"),
            api_key: Some(OPERATOR_ANTHROPIC_KEY.into()),
            admin_key: Some("sk-ant-admin-test".into()),
        };
        o.proxy.openai = Upstream {
            base_url: format!("{base}/openai"),
            api_key: Some(OPERATOR_OPENAI_KEY.into()),
            admin_key: Some("sk-admin-openai-test".into()),
        };
    })
    .await;
    let live = app.key(Mode::Live, Scope::Admin).await;
    let cus = app.customer_with_credit(&live, "reconciled", "10").await;
    let http = &app.http;
    for _ in 0..3 {
        let r = http
            .post(format!("{}/proxy/anthropic/v1/messages", app.base))
            .header("x-api-key", &live)
            .header("tally-customer", &cus)
            .json(&messages("[sim words=10 cache_read=20] hi", 50, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http
        .post(format!("{}/proxy/openai/v1/chat/completions", app.base))
        .bearer_auth(&live)
        .header("tally-customer", &cus)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "[sim words=5 cache_read=8] hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A call made with the operator's provider key outside Tally: the provider counts it,
    // Tally never charged it.
    let r = http
        .post(format!("{base}/anthropic/v1/messages"))
        .header("x-api-key", OPERATOR_ANTHROPIC_KEY)
        .json(&messages("[sim words=7] behind Tally's back", 50, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let direct: Value = r.json().await.unwrap();

    let today = app::core::clock::Clock::now(&app::core::clock::SystemClock).day_start();
    let config = server::proxy::ProxyConfig {
        anthropic: Upstream {
            base_url: format!("{base}/anthropic"),
            api_key: None,
            admin_key: Some("sk-ant-admin-test".into()),
        },
        openai: Upstream {
            base_url: format!("{base}/openai"),
            api_key: None,
            admin_key: Some("sk-admin-openai-test".into()),
        },
        ..server::proxy::ProxyConfig::new(None)
    };
    let results = server::proxy::reconcile::run(
        &app.running.core,
        &config,
        today.plus_seconds(-86_400),
        today.plus_seconds(86_400),
    )
    .await;
    assert_eq!(results.len(), 2);
    for (provider, rows) in results {
        let rows = rows.unwrap();
        assert_eq!(rows.len(), 1, "{provider:?}: {rows:?}");
        let r = &rows[0];
        assert_eq!(r.day, today.day_key());
        match provider {
            app::core::proxy::Provider::Anthropic => {
                assert_eq!(r.model, "claude-sonnet-4-5");
                // Output: three proxied answers of 10 words, plus the 7 Tally never saw.
                assert_eq!(r.tally_output, 30);
                assert_eq!(r.provider_output, 37);
                assert_eq!(r.tally_cache_read, r.provider_cache_read);
                assert_eq!(
                    r.provider_input - r.tally_input,
                    direct["usage"]["input_tokens"].as_i64().unwrap()
                );
            }
            app::core::proxy::Provider::OpenAi => {
                assert_eq!(r.model, "gpt-4o");
                assert_eq!(
                    (r.tally_input, r.tally_output, r.tally_cache_read),
                    (r.provider_input, r.provider_output, r.provider_cache_read)
                );
            }
        }
    }
    let latest = app.db.store.latest_drift().await.unwrap();
    assert_eq!(latest.len(), 2);
}

#[tokio::test]
async fn each_key_has_its_own_rate_limit_and_provider_keys_stay_hidden() {
    let stats = Arc::new(SimStats::default());
    let base = imitation(stats.clone()).await;
    let app = spawn_with(|o| {
        o.proxy.anthropic = Upstream {
            base_url: format!("{base}/anthropic"),
            api_key: Some(OPERATOR_ANTHROPIC_KEY.into()),
            admin_key: Some("sk-ant-admin-secret".into()),
        };
        o.proxy.rate_per_second = 2;
        // Nothing of the provider's keys shows in the configuration's debug form (logs).
        let shown = format!("{:?}", o.proxy);
        assert!(!shown.contains(OPERATOR_ANTHROPIC_KEY) && !shown.contains("sk-ant-admin-secret"));
    })
    .await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&admin, "rate", "10").await;
    let make = |name: &str| {
        let (http, base, admin, cus) = (
            app.http.clone(),
            app.base.clone(),
            admin.clone(),
            cus.clone(),
        );
        let name = name.to_string();
        async move {
            let r = http
                .post(format!("{base}/v1/customers/{cus}/keys"))
                .bearer_auth(&admin)
                .json(&json!({"name": name}))
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["secret"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (first, second) = (make("a").await, make("b").await);
    let call = |key: String| {
        app.http
            .post(format!("{}/proxy/anthropic/v1/messages", app.base))
            .header("x-api-key", key)
            .json(&messages("hi", 10, false))
            .send()
    };
    let mut limited = None;
    for _ in 0..4 {
        let r = call(first.clone()).await.unwrap();
        if r.status() == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status(), 200);
        // The provider's key never comes back in an answer.
        let headers = format!("{:?}", r.headers());
        let text = format!("{headers}{}", r.text().await.unwrap());
        assert!(!text.contains(OPERATOR_ANTHROPIC_KEY));
    }
    let limited = limited.expect("the third quick request of one key is limited");
    assert!(limited.headers().contains_key("retry-after"));
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // Another key of the same customer is not limited by the first.
    assert_eq!(call(second).await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_plans_models_and_a_lapsed_subscription_gate_the_proxy() {
    let p = spawn_proxied(OnDisconnect::Drain).await;
    let r = p
        .app
        .post(
            &p.admin,
            "/v1/plans",
            json!({"id": "haiku-only", "name": "Haiku only", "terms": {
                "recurring_fee": "5.00", "included_credits": "4.00", "grace_days": 0,
                "allowed_models": ["claude-haiku-4-5"]}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cus = p.customer("gated", "0").await;
    let r = p
        .app
        .post(
            &p.admin,
            &format!("/v1/customers/{cus}/subscriptions"),
            json!({"plan": "haiku-only"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = r.body["id"].as_str().unwrap().to_string();
    let session = r.body["url"].as_str().unwrap().rsplit('/').next().unwrap();
    app::core::subscriptions::simulate_checkout(&p.app.running.core, session)
        .await
        .unwrap();
    let key = p.customer_key(&cus, json!({})).await;

    // A model outside the plan: 403 in Anthropic's format, nothing sent upstream.
    let r = p
        .post("/anthropic/v1/messages", &key, &messages("hi", 100, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["tally_code"], "model_not_in_plan", "{body}");
    assert_eq!(p.stats.requests.load(Ordering::Relaxed), 0);

    // The plan's model goes through and is charged from the included credits.
    let mut haiku = messages("hi", 100, false);
    haiku["model"] = json!("claude-haiku-4-5");
    let r = p
        .post("/anthropic/v1/messages", &key, &haiku)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(p.stats.requests.load(Ordering::Relaxed), 1);

    // A failed renewal with no grace: refused with the reason until paid.
    let r = p
        .app
        .post(
            &p.admin,
            &format!("/v1/test_helpers/subscriptions/{sub}/advance"),
            json!({"fail": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "past_due");
    let r = p
        .post("/anthropic/v1/messages", &key, &haiku)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYMENT_REQUIRED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["tally_code"], "past_due", "{body}");
    assert_eq!(p.stats.requests.load(Ordering::Relaxed), 1);
    let refused = p.requests(&cus).await;
    assert!(refused
        .iter()
        .any(|r| r.reason.as_deref() == Some("past_due")));
    assert!(refused
        .iter()
        .any(|r| r.reason.as_deref() == Some("model_not_in_plan")));
    p.app.assert_ledger_clean().await;
}
