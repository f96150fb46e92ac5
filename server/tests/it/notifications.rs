//! Notifications through the real server: a balance crossing its threshold through real
//! usage gives one signed delivery (retried after a failure, same webhook-id) and one email
//! over SMTP on loopback; re-armed above the threshold; endpoints' API; an endpoint that
//! fails for the whole retry window is disabled and the staff are told.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::notify::{outbox, sign};
use app::core::vocab::{DeliveryStatus, EmailStatus, EndpointStatus};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::helpers::{spawn_with, TestApp};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Hook {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: String,
}

/// A webhook receiver on loopback: records every request and answers 500 to the first
/// `fail_first` of them.
#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Hook>>>,
    fail_first: Arc<AtomicUsize>,
    failure: StatusCode,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> (Receiver, String) {
        Receiver::start_failing_with(fail_first, StatusCode::INTERNAL_SERVER_ERROR).await
    }

    /// A receiver whose first `fail_first` answers are `failure`.
    pub async fn start_failing_with(fail_first: usize, failure: StatusCode) -> (Receiver, String) {
        let r = Receiver {
            got: Arc::default(),
            fail_first: Arc::new(AtomicUsize::new(fail_first)),
            failure,
        };
        async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let h = |k: &str| {
                headers
                    .get(k)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            r.got.lock().unwrap().push(Hook {
                id: h("webhook-id"),
                timestamp: h("webhook-timestamp"),
                signature: h("webhook-signature"),
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let failing = r
                .fail_first
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                r.failure
            } else {
                StatusCode::NO_CONTENT
            }
        }
        let app = axum::Router::new()
            .route("/hooks", axum::routing::post(hook))
            .with_state(r.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.got.lock().unwrap().clone()
    }
}

/// An email the SMTP server on loopback received.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server on loopback (EHLO, MAIL, RCPT, DATA, QUIT): enough for lettre.
pub async fn smtp_server() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<Mail>>> = Arc::default();
    let inbox = got.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let _ = smtp_session(socket, inbox).await;
            });
        }
    });
    (port, got)
}

fn address(s: &str) -> String {
    s.split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

async fn smtp_session(socket: TcpStream, inbox: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (r, mut w) = socket.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 loopback ESMTP\r\n").await?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-loopback\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&cmd[8..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            inbox.lock().unwrap().push(Mail {
                to: std::mem::take(&mut to),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper == "QUIT" {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"250 OK\r\n"
        };
        w.write_all(reply).await?;
    }
}

/// Waits (up to 30 s) until `ready` says yes.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..300 {
        if ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn app_with_smtp() -> (TestApp, Arc<Mutex<Vec<Mail>>>) {
    let (port, mails) = smtp_server().await;
    let app = spawn_with(|o| {
        o.mail.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        o.mail.from = "Tally Billing <billing@example.test>".into();
    })
    .await;
    (app, mails)
}

async fn usage(app: &TestApp, key: &str, cus: &str, request: &str, input_tokens: u64) -> Value {
    let r = app
        .post(
            key,
            "/v1/usage",
            json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": input_tokens,
                   "output_tokens": 0, "request_id": request}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

fn of_type<'a>(hooks: &'a [Hook], kind: &str) -> Vec<&'a Hook> {
    hooks
        .iter()
        .filter(|h| serde_json::from_str::<Value>(&h.body).unwrap()["type"] == kind)
        .collect()
}

#[tokio::test]
async fn a_balance_crossing_its_threshold_is_one_signed_delivery_retried_and_one_email() {
    let (app, mails) = app_with_smtp().await;
    let (receiver, url) = Receiver::start(1).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let r = app
        .post(
            &admin,
            "/v1/plans",
            json!({"id": "alerts", "name": "Alerts", "terms": {"low_balance_threshold": "5.00"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let endpoint = app
        .post(
            &admin,
            "/v1/webhook_endpoints",
            json!({"url": url, "events": ["balance.low", "balance.recovered", "balance.depleted"]}),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let secret = endpoint.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");

    let create = |external: &'static str, email: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let c = app
                .post(&admin, "/v1/customers", json!({"external_id": external, "email": email, "name": "Ada", "plan": "alerts"}))
                .await;
            assert_eq!(c.status, 201, "{}", c.body);
            let id = c.body["id"].as_str().unwrap().to_string();
            let g = app
                .post(
                    &admin,
                    &format!("/v1/customers/{id}/grants"),
                    json!({"amount": "10", "reason": "test"}),
                )
                .await;
            assert_eq!(g.status, 201, "{}", g.body);
            id
        }
    };
    let cus = create("ada", "ada@example.test").await;
    let other = create("bob", "bob@example.test").await;

    // $3 a million input tokens: 10 -> 7 (above), -> 4 (crosses), -> 1 (still low).
    usage(&app, &admin, &cus, "r1", 1_000_000).await;
    usage(&app, &admin, &other, "o1", 1_000_000).await;
    usage(&app, &admin, &cus, "r2", 1_000_000).await;
    usage(&app, &admin, &cus, "r3", 1_000_000).await;
    let balance = app
        .get(&admin, &format!("/v1/customers/{cus}/balance"))
        .await;
    assert_eq!(balance.body["status"], "low", "{}", balance.body);

    // The first attempt is refused (500); the retry 5 s later is taken, with the same id.
    until("the retried delivery", || receiver.hooks().len() >= 2).await;
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(
        hooks[0].id, hooks[1].id,
        "the same webhook-id on every attempt"
    );
    assert_eq!(hooks[0].body, hooks[1].body);
    let now = app.running.core.clock.now().micros() / 1_000_000;
    for h in &hooks {
        assert!(
            sign::verify(
                &secret,
                &h.id,
                &h.timestamp,
                &h.signature,
                h.body.as_bytes(),
                now
            ),
            "signature of {h:?}"
        );
        assert!(!sign::verify(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &h.id,
            &h.timestamp,
            &h.signature,
            h.body.as_bytes(),
            now
        ));
    }
    let body: Value = serde_json::from_str(&hooks[0].body).unwrap();
    assert_eq!(body["type"], "balance.low");
    assert_eq!(body["id"], hooks[0].id.as_str());
    assert_eq!(body["livemode"], false);
    assert_eq!(body["data"]["customer"]["id"], cus.as_str());
    assert_eq!(body["data"]["customer"]["external_id"], "ada");
    assert_eq!(body["data"]["low_balance_threshold"], "5.000000000");
    assert!(!hooks[0].body.contains(&other) && !hooks[0].body.contains("bob"));
    let deliveries = app
        .db
        .store
        .deliveries_of_event(&hooks[0].id)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    assert_eq!(deliveries[0].attempts, 2);

    // One email, to that customer only, in plain text and HTML.
    until("the low-balance email", || {
        !mails.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = mails.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].to, vec!["ada@example.test".to_string()]);
    assert!(
        got[0].data.contains("Subject: Your balance is running low"),
        "{}",
        got[0].data
    );
    assert!(got[0].data.contains("text/plain") && got[0].data.contains("text/html"));
    assert!(
        got[0]
            .data
            .lines()
            .any(|l| l.starts_with("From: ") && l.contains("<billing@example.test>")),
        "{}",
        got[0].data
    );
    assert!(!got[0].data.contains("bob"));

    // Back above the threshold: recovered, and the alert is armed again.
    let g = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/grants"),
            json!({"amount": "10", "reason": "top"}),
        )
        .await;
    assert_eq!(g.status, 201);
    usage(&app, &admin, &cus, "r4", 3_000_000).await;
    until("recovered, then low again", || {
        let hooks = receiver.hooks();
        of_type(&hooks, "balance.recovered").len() == 1 && of_type(&hooks, "balance.low").len() == 3
    })
    .await;
    let hooks = receiver.hooks();
    let lows = of_type(&hooks, "balance.low");
    assert_ne!(lows[0].id, lows[2].id, "a second crossing is a new event");
    assert!(of_type(&hooks, "balance.depleted").is_empty());
    until("the second email", || mails.lock().unwrap().len() == 2).await;

    // Into zero: depleted, once.
    usage(&app, &admin, &cus, "r5", 2_000_000).await;
    usage(&app, &admin, &cus, "r6", 1_000).await;
    until("depleted", || {
        of_type(&receiver.hooks(), "balance.depleted").len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(of_type(&receiver.hooks(), "balance.depleted").len(), 1);
    until("the depleted email", || mails.lock().unwrap().len() == 3).await;
    let last = mails.lock().unwrap()[2].clone();
    assert!(
        last.data.contains("Subject: Your balance is used up"),
        "{}",
        last.data
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn endpoints_are_validated_scoped_and_listed_without_their_secret() {
    let app = spawn_with(|_| {}).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let read = app.key(Mode::Test, Scope::Read).await;
    let live = app.key(Mode::Live, Scope::Admin).await;
    let bad = app
        .post(
            &admin,
            "/v1/webhook_endpoints",
            json!({"url": "ftp://x", "events": ["*"]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error().2.as_deref(), Some("url"));
    let bad = app
        .post(
            &admin,
            "/v1/webhook_endpoints",
            json!({"url": "https://example.test/h", "events": ["balance.lowish"]}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error().2.as_deref(), Some("events"));
    let refused = app
        .post(
            &read,
            "/v1/webhook_endpoints",
            json!({"url": "https://example.test/h", "events": ["*"]}),
        )
        .await;
    assert_eq!(refused.status, 403);
    let made = app
        .post(
            &admin,
            "/v1/webhook_endpoints",
            json!({"url": "https://example.test/h", "events": ["*"]}),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let id = made.body["id"].as_str().unwrap();
    assert!(id.starts_with("we_"));
    let list = app.get(&read, "/v1/webhook_endpoints").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert!(list.body["data"][0].get("secret").is_none());
    assert_eq!(
        app.get(&live, &format!("/v1/webhook_endpoints/{id}"))
            .await
            .status,
        404
    );
    let one = app.get(&read, &format!("/v1/webhook_endpoints/{id}")).await;
    assert_eq!(one.body["status"], "enabled");
    let gone = app
        .call(
            &admin,
            Method::DELETE,
            &format!("/v1/webhook_endpoints/{id}"),
            None,
        )
        .await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(
        app.get(&read, &format!("/v1/webhook_endpoints/{id}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_window_is_disabled_and_the_staff_told() {
    let app = spawn_with(|_| {}).await;
    let core = &app.running.core;
    app::core::admin::create_staff(
        core,
        "ops@example.test",
        "a long password 1",
        app::core::audit::Role::Admin,
    )
    .await
    .unwrap();
    let (receiver, url) = Receiver::start(usize::MAX).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let made = app
        .post(
            &admin,
            "/v1/webhook_endpoints",
            json!({"url": url, "events": ["*"]}),
        )
        .await;
    assert_eq!(made.status, 201);
    let endpoint = made.body["id"].as_str().unwrap().to_string();
    let cus = app.customer_with_credit(&admin, "c", "0").await;
    usage(&app, &admin, &cus, "into-debt", 1_000).await;
    until("a failed attempt", || !receiver.hooks().is_empty()).await;
    // Each attempt the schedule allows fails; the worker is given every one at once (the
    // schedule's waits are hours, so the test makes each due instead of waiting for it).
    let delivery = loop {
        let d = app.db.store.deliveries(None, 10).await.unwrap().remove(0);
        if d.status != DeliveryStatus::Pending {
            break d;
        }
        let mut tx = app.db.store.begin().await.unwrap();
        outbox::redeliver_in(&mut tx, core.clock.now(), &d.id)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let mut waited = 0;
        while app
            .db
            .store
            .delivery(&d.id)
            .await
            .unwrap()
            .unwrap()
            .attempts
            == d.attempts
        {
            waited += 1;
            assert!(waited < 300, "no attempt made");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.attempts, outbox::RETRY_SECONDS.len() as i64 + 1);
    // The worker disables the endpoint right after recording the last failure.
    let mut e = app.db.store.endpoint(&endpoint).await.unwrap().unwrap();
    for _ in 0..100 {
        if e.status == EndpointStatus::Disabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        e = app.db.store.endpoint(&endpoint).await.unwrap().unwrap();
    }
    assert_eq!(e.status, EndpointStatus::Disabled);
    assert!(e.disabled_reason.unwrap().contains("three days"));
    let emails = app.db.store.emails(None, 10).await.unwrap();
    let told: Vec<_> = emails
        .iter()
        .filter(|m| m.to_address == "ops@example.test")
        .collect();
    assert_eq!(told.len(), 1, "{emails:?}");
    assert_eq!(
        told[0].status,
        EmailStatus::Off,
        "no SMTP: kept to show in the console"
    );
    assert!(told[0].text_body.contains(&endpoint));
}

async fn plan(app: &TestApp, key: &str, id: &str, terms: Value) {
    let r = app
        .post(
            key,
            "/v1/plans",
            json!({"id": id, "name": id, "terms": terms}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn customer(app: &TestApp, key: &str, external: &str, email: &str, plan: &str) -> String {
    let c = app
        .post(
            key,
            "/v1/customers",
            json!({"external_id": external, "email": email, "plan": plan}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.body);
    let id = c.body["id"].as_str().unwrap().to_string();
    let g = app
        .post(
            key,
            &format!("/v1/customers/{id}/grants"),
            json!({"amount": "100", "reason": "test"}),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.body);
    id
}

fn events_of(hooks: &[Hook], kind: &str, cus: &str) -> Vec<Value> {
    hooks
        .iter()
        .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
        .filter(|b| b["type"] == kind && b["data"]["customer"]["id"] == cus)
        .collect()
}

#[tokio::test]
async fn caps_budgets_receipts_and_the_customers_choice_of_emails() {
    let (app, mails) = app_with_smtp().await;
    let (receiver, url) = Receiver::start(0).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let made = app
        .post(
            &admin,
            "/v1/webhook_endpoints",
            json!({"url": url, "events": ["*"]}),
        )
        .await;
    assert_eq!(made.status, 201);
    plan(&app, &admin, "capped", json!({"daily_spend_cap": "5"})).await;
    plan(&app, &admin, "open", json!({})).await;
    let capped = customer(&app, &admin, "capped", "capped@example.test", "capped").await;
    let budgeted = customer(&app, &admin, "budgeted", "budgeted@example.test", "open").await;

    // The plan's daily cap: reached by spend (one event), then a hold is refused (no second).
    usage(&app, &admin, &capped, "c1", 1_000_000).await;
    usage(&app, &admin, &capped, "c2", 1_000_000).await;
    let refused = app
        .post(&admin, "/v1/authorizations", json!({"customer": capped, "model": "claude-sonnet-4-5", "input_tokens": 1000, "max_output_tokens": 10}))
        .await;
    assert_eq!(refused.status, 402, "{}", refused.body);
    assert_eq!(refused.error().1, "cap_reached");
    until("usage.cap_reached", || {
        !events_of(&receiver.hooks(), "usage.cap_reached", &capped).is_empty()
    })
    .await;

    // The customer's own budget, set in the portal: an alert, then a hard stop.
    let browser = super::helpers::browser();
    super::portal::sign_in_by_link(&app, &admin, &browser, &budgeted).await;
    let (status, body) = super::helpers::server_fn(
        &app,
        &browser,
        "portal_set_alerts",
        "budget=4.00&email_budget_reached=on&email_balance_low=on",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        super::helpers::server_fn(&app, &browser, "portal_set_alerts", "budget=-1").await;
    assert_eq!(status, 400);
    usage(&app, &admin, &budgeted, "b1", 1_000_000).await;
    usage(&app, &admin, &budgeted, "b2", 1_000_000).await;
    until("budget.reached", || {
        !events_of(&receiver.hooks(), "budget.reached", &budgeted).is_empty()
    })
    .await;
    let alert = events_of(&receiver.hooks(), "budget.reached", &budgeted).remove(0);
    assert_eq!(alert["data"]["budget"], "4.000000000");
    assert_eq!(alert["data"]["hard_stop"], false);
    let (status, body) = super::helpers::server_fn(
        &app,
        &browser,
        "portal_set_alerts",
        "budget=7.00&hard_stop=on&email_budget_reached=on",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let stopped = app
        .post(&admin, "/v1/authorizations", json!({"customer": budgeted, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "max_output_tokens": 0}))
        .await;
    assert_eq!(stopped.status, 402, "{}", stopped.body);
    assert_eq!(stopped.error().1, "cap_reached");
    let small = app
        .post(&admin, "/v1/authorizations", json!({"customer": budgeted, "model": "claude-sonnet-4-5", "input_tokens": 1000, "max_output_tokens": 0}))
        .await;
    assert_eq!(
        small.status, 201,
        "what still fits the budget is held: {}",
        small.body
    );

    // Top-ups: the receipt goes to the one who did not turn receipts off.
    for cus in [&capped, &budgeted] {
        let (session, _) = super::payments::start_topup(&app, &admin, cus, "10.00").await;
        app::core::payments::simulate_payment(&app.running.core, &session)
            .await
            .unwrap();
    }
    super::payments::drain(&app).await;
    until("two topup.succeeded", || {
        let h = receiver.hooks();
        events_of(&h, "topup.succeeded", &capped).len() == 1
            && events_of(&h, "topup.succeeded", &budgeted).len() == 1
    })
    .await;
    until("the emails", || mails.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let got = mails.lock().unwrap().clone();
    let to = |who: &str, subject: &str| {
        got.iter()
            .filter(|m| m.to == vec![who.to_string()] && m.data.contains(subject))
            .count()
    };
    assert_eq!(to("capped@example.test", "Subject: Receipt"), 1, "{got:?}");
    assert_eq!(
        to("budgeted@example.test", "Subject: Receipt"),
        0,
        "receipts are off"
    );
    assert_eq!(
        to(
            "budgeted@example.test",
            "Subject: You reached your monthly budget"
        ),
        1
    );
    assert_eq!(got.len(), 2, "{got:?}");

    // Nothing twice.
    let hooks = receiver.hooks();
    assert_eq!(events_of(&hooks, "usage.cap_reached", &capped).len(), 1);
    assert_eq!(events_of(&hooks, "budget.reached", &budgeted).len(), 1);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn password_reset_by_an_emailed_one_time_link_for_customers_and_staff() {
    let (app, mails) = app_with_smtp().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let cus = customer(
        &app,
        &admin,
        "forgetful",
        "forgetful@example.test",
        "standard",
    )
    .await;
    app::core::admin::create_staff(
        &app.running.core,
        "ops@example.test",
        "the old staff password",
        app::core::audit::Role::Admin,
    )
    .await
    .unwrap();
    let browser = super::helpers::browser();
    for (who, email) in [
        ("customer", "forgetful@example.test"),
        ("staff", "ops@example.test"),
    ] {
        let (status, body) = super::helpers::server_fn(
            &app,
            &browser,
            "password_forgot",
            &format!("who={who}&email={email}"),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    // An unknown address answers the same and sends nothing.
    let (status, _) = super::helpers::server_fn(
        &app,
        &browser,
        "password_forgot",
        "who=customer&email=nobody@example.test",
    )
    .await;
    assert_eq!(status, 200);
    until("two reset emails", || mails.lock().unwrap().len() == 2).await;
    let queued = app.db.store.emails(None, 10).await.unwrap();
    assert_eq!(queued.len(), 2, "{queued:?}");
    let token_of = |to: &str| {
        let m = queued.iter().find(|m| m.to_address == to).unwrap();
        let at = m.text_body.find("token=").unwrap() + "token=".len();
        m.text_body[at..]
            .chars()
            .take_while(char::is_ascii_hexdigit)
            .collect::<String>()
    };
    let (customer_token, staff_token) = (
        token_of("forgetful@example.test"),
        token_of("ops@example.test"),
    );
    // Staff see that a link went out, never the link itself.
    let viewer =
        super::admin::staff_browser(&app, "viewer@example.test", app::core::audit::Role::Viewer)
            .await;
    let (status, view) = super::helpers::server_fn(&app, &viewer, "admin_notifications", "").await;
    assert_eq!(status, 200, "{view}");
    let shown = view["emails"].to_string();
    assert!(shown.contains("token=(hidden)"), "{shown}");
    assert!(!shown.contains(&customer_token) && !shown.contains(&staff_token));
    assert!(mails
        .lock()
        .unwrap()
        .iter()
        .all(|m| m.data.contains("Subject: Reset your password")));

    let (status, body) = super::helpers::server_fn(
        &app,
        &browser,
        "password_reset",
        &format!("who=customer&token={customer_token}&password=a+brand+new+password"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let again = super::helpers::server_fn(
        &app,
        &browser,
        "password_reset",
        &format!("who=customer&token={customer_token}&password=another+new+password"),
    )
    .await;
    assert_eq!(again.0, 400, "a link works once: {}", again.1);
    let wrong_kind = super::helpers::server_fn(
        &app,
        &browser,
        "password_reset",
        &format!("who=customer&token={staff_token}&password=another+new+password"),
    )
    .await;
    assert_eq!(wrong_kind.0, 400, "a staff link does not reset a customer");
    let core = &app.running.core;
    assert_eq!(
        app::core::portal::sign_in(core, "forgetful@example.test", "a brand new password")
            .await
            .unwrap(),
        cus
    );
    let (status, _) = super::helpers::server_fn(
        &app,
        &browser,
        "password_reset",
        &format!("who=staff&token={staff_token}&password=the+new+staff+password"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        app::core::admin::sign_in(core, "ops@example.test", "the new staff password")
            .await
            .is_ok()
    );
    assert!(
        app::core::admin::sign_in(core, "ops@example.test", "the old staff password")
            .await
            .is_err()
    );
}

/// `spend.spike` needs a week of history, so this drives the core with a manual clock
/// over a real database: seven days of $1 a day, then $3 today passes 200 % of the
/// average once.
#[tokio::test]
async fn a_spend_spike_over_the_weeks_daily_average_is_one_event_a_day() {
    use app::core::clock::{Clock, ManualClock, Timestamp};
    use app::core::metering::{self, UsageInput};
    use app::core::pricing::{Outcome, Tokens};
    let db = app::core::testing::fresh_store().await.unwrap();
    let clock = ManualClock::new(Timestamp::parse_rfc3339("2026-11-02T12:00:00Z").unwrap());
    let core = app::core::Core::new(db.store.clone(), clock.clone());
    let terms = serde_json::from_value(json!({"spend_spike_percent": 200})).unwrap();
    app::core::plans::create(
        &core.store,
        Mode::Test,
        Some("spiky"),
        "Spiky",
        &terms,
        &app::core::audit::Actor::ApiKey("key_test".into()),
        "spike test",
        clock.now(),
    )
    .await
    .unwrap();
    let c = app::core::customers::create(
        &core,
        Mode::Test,
        &app::core::customers::NewCustomer {
            external_id: "spiky".into(),
            email: None,
            name: None,
            plan: Some("spiky".into()),
        },
    )
    .await
    .unwrap();
    let record = |request: String, input: u64| UsageInput {
        customer: c.id.clone(),
        model: "claude-sonnet-4-5".into(),
        tokens: Tokens {
            input,
            ..Tokens::default()
        },
        batch: false,
        outcome: Outcome::Succeeded,
        request_id: request,
        occurred_at: None,
        metadata: None,
    };
    for day in 0..7 {
        metering::record_usage(&core, Mode::Test, &record(format!("d{day}"), 333_334))
            .await
            .unwrap();
        clock.advance_seconds(86_400);
    }
    for (i, input) in [500_000, 500_000, 1_000_000].into_iter().enumerate() {
        metering::record_usage(&core, Mode::Test, &record(format!("t{i}"), input))
            .await
            .unwrap();
    }
    let spikes: Vec<_> = db
        .store
        .events(Some(Mode::Test), Some(&c.id), None, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == app::core::vocab::EventType::SpendSpike)
        .collect();
    assert_eq!(spikes.len(), 1, "{spikes:?}");
    let data: Value = serde_json::from_str(&spikes[0].data).unwrap();
    assert_eq!(data["spent_today"], "3.000000000", "{data}");
    assert_eq!(data["percent"], 200);
}

#[tokio::test]
async fn subscription_events_and_the_renewal_failed_email_and_the_console_outbox() {
    let (app, mails) = app_with_smtp().await;
    let (receiver, url) = Receiver::start(0).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let made = app
        .post(&admin, "/v1/webhook_endpoints", json!({"url": url, "events": ["subscription.past_due", "invoice.paid", "subscription.canceled"]}))
        .await;
    assert_eq!(made.status, 201);
    plan(
        &app,
        &admin,
        "monthly",
        json!({"recurring_fee": "20.00", "included_credits": "15.00", "grace_days": 3}),
    )
    .await;
    let cus = customer(
        &app,
        &admin,
        "subscriber",
        "subscriber@example.test",
        "standard",
    )
    .await;
    let r = app
        .post(
            &admin,
            &format!("/v1/customers/{cus}/subscriptions"),
            json!({"plan": "monthly"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sub = r.body["id"].as_str().unwrap().to_string();
    let session = r.body["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    app::core::subscriptions::simulate_checkout(&app.running.core, &session)
        .await
        .unwrap();
    super::payments::drain(&app).await;
    let fail = app
        .post(
            &admin,
            &format!("/v1/test_helpers/subscriptions/{sub}/advance"),
            json!({"fail": true}),
        )
        .await;
    assert_eq!(fail.status, 200, "{}", fail.body);
    super::payments::drain(&app).await;
    until("invoice.paid and subscription.past_due", || {
        let h = receiver.hooks();
        events_of(&h, "invoice.paid", &cus).len() == 1
            && events_of(&h, "subscription.past_due", &cus).len() == 1
    })
    .await;
    let past_due = events_of(&receiver.hooks(), "subscription.past_due", &cus).remove(0);
    assert_eq!(past_due["data"]["subscription"], sub.as_str());
    assert!(past_due["data"]["grace_ends_at"].is_string(), "{past_due}");
    until("the renewal-failed email", || {
        mails
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.data.contains("Subject: Your subscription renewal failed"))
    })
    .await;

    // The console shows the outbox to staff, and only to staff.
    let staff =
        super::admin::staff_browser(&app, "ops@example.test", app::core::audit::Role::Viewer).await;
    let (status, view) = super::helpers::server_fn(&app, &staff, "admin_notifications", "").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["email_on"], true);
    let kinds: Vec<&str> = view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"subscription.past_due") && kinds.contains(&"invoice.paid"),
        "{kinds:?}"
    );
    let delivery = view["events"][0]["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = super::helpers::server_fn(
        &app,
        &staff,
        "admin_redeliver",
        &format!("id={delivery}&reason=check"),
    )
    .await;
    assert_eq!(status, 403, "a viewer cannot redeliver");
    let stranger = super::helpers::browser();
    let (status, _) = super::helpers::server_fn(&app, &stranger, "admin_notifications", "").await;
    assert_eq!(status, 403);
    let ops =
        super::admin::staff_browser(&app, "admin@example.test", app::core::audit::Role::Admin)
            .await;
    let seen = receiver.hooks().len();
    let (status, body) = super::helpers::server_fn(
        &app,
        &ops,
        "admin_redeliver",
        &format!("id={delivery}&reason=the+app+lost+it"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    until("the redelivery", || receiver.hooks().len() == seen + 1).await;
    let hooks = receiver.hooks();
    let again = hooks.last().unwrap();
    assert!(
        hooks[..seen].iter().any(|h| h.id == again.id),
        "a redelivery keeps its webhook-id"
    );
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_endpoint_that_answers_410_gone_is_disabled_at_once() {
    let app = spawn_with(|_| {}).await;
    let (receiver, url) = Receiver::start_failing_with(usize::MAX, StatusCode::GONE).await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let made = app
        .post(
            &admin,
            "/v1/webhook_endpoints",
            json!({"url": url, "events": ["*"]}),
        )
        .await;
    assert_eq!(made.status, 201);
    let endpoint = made.body["id"].as_str().unwrap().to_string();
    let cus = app.customer_with_credit(&admin, "gone", "0").await;
    usage(&app, &admin, &cus, "into-debt", 1_000).await;
    let mut e = app.db.store.endpoint(&endpoint).await.unwrap().unwrap();
    for _ in 0..200 {
        if e.status == EndpointStatus::Disabled {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        e = app.db.store.endpoint(&endpoint).await.unwrap().unwrap();
    }
    assert_eq!(e.status, EndpointStatus::Disabled);
    assert!(e.disabled_reason.unwrap().contains("410 Gone"));
    let d = app.db.store.deliveries(None, 10).await.unwrap().remove(0);
    assert_eq!((d.status, d.attempts), (DeliveryStatus::Failed, 1));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(receiver.hooks().len(), 1, "no retry after 410");
}
