//! Operational resilience: the database going away and coming back (requests fail with
//! 503 and recover, nothing half-written), graceful shutdown (in-flight requests finish,
//! no inbox row is left claimed), and a restart resuming pending work.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::core::clock::{Clock, SystemClock};
use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::payments::{Payments, PaymentsConfig, Secret};
use app::core::store::{Dialect, Store};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::{spawn_app, spawn_with, TestApp};
use crate::payments::balance;
use crate::stripe_imitation::deliver;

fn usage(cus: &str, request_id: &str) -> serde_json::Value {
    json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 0,
           "output_tokens": 50000, "request_id": request_id})
}

/// A TCP proxy in front of PostgreSQL that can cut every connection and refuse new ones
/// (the database "goes away") and let them through again.
struct Outage {
    port: u16,
    down: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Outage {
    async fn start(upstream: String) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (d, l) = (down.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(client); // refused: the connection closes at once
                    continue;
                }
                let upstream = upstream.clone();
                l.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Outage { port, down, links }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// `postgres://user@host:port/db` → (`host:port`, `postgres://user@`, `/db`).
fn split_pg(url: &str) -> (String, String, String) {
    let after_at = url.rfind('@').map(|i| i + 1).unwrap_or("postgres://".len());
    let slash = after_at + url[after_at..].find('/').unwrap();
    (
        url[after_at..slash].to_string(),
        url[..after_at].to_string(),
        url[slash..].to_string(),
    )
}

async fn status_of(app: &TestApp, key: &str, body: serde_json::Value) -> u16 {
    app.post(key, "/v1/usage", body).await.status.as_u16()
}

#[tokio::test]
async fn the_database_going_away_gives_503_and_then_recovers_with_nothing_half_written() {
    let mut app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "outage", "10").await;
    assert_eq!(status_of(&app, &key, usage(&cus, "before")).await, 201);

    match app.db.store.dialect() {
        Dialect::Postgres => {
            // Serve through a proxy that we can cut.
            app.running.stop().await.unwrap();
            let (upstream, prefix, database) = split_pg(&app.db.url);
            let outage = Outage::start(upstream).await;
            let proxied = format!("{prefix}127.0.0.1:{}{database}", outage.port);
            let store = Store::connect(&proxied).await.unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let options = server::Options::for_tests(listener.local_addr().unwrap());
            app.running = server::start(listener, store, Arc::new(SystemClock), &options)
                .await
                .unwrap();
            app.base = format!("http://{}", app.running.addr);
            assert_eq!(
                status_of(&app, &key, usage(&cus, "through-proxy")).await,
                201
            );

            outage.cut();
            assert_eq!(status_of(&app, &key, usage(&cus, "during")).await, 503);
            let ready = app
                .http
                .get(format!("{}/readyz", app.base))
                .send()
                .await
                .unwrap();
            assert_eq!(ready.status(), 503);
            let b = app.get(&key, &format!("/v1/customers/{cus}/balance")).await;
            assert_eq!(b.status, 503, "{}", b.body);
            assert_eq!(b.body["error"]["type"], "unavailable", "{}", b.body);
            outage.restore();
        }
        Dialect::Sqlite => {
            // Another process holds the write lock past the busy timeout (a backup, a
            // stuck CLI): writes fail with 503 until it lets go.
            let mut other = {
                use sqlx::Connection;
                sqlx::SqliteConnection::connect(&app.db.url).await.unwrap()
            };
            sqlx::query("BEGIN EXCLUSIVE")
                .execute(&mut other)
                .await
                .unwrap();
            assert_eq!(status_of(&app, &key, usage(&cus, "during")).await, 503);
            sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        }
    }

    // Back: the refused request was not recorded, so retrying it records it once.
    let mut recovered = false;
    for _ in 0..50 {
        if status_of(&app, &key, usage(&cus, "during")).await == 201 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the server did not recover");
    assert_eq!(
        status_of(&app, &key, usage(&cus, "during")).await,
        200,
        "a replay now"
    );
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let recorded = app
        .get(&key, &format!("/v1/usage?customer={cus}&limit=100"))
        .await;
    let n = recorded.body["data"].as_array().unwrap().len();
    // Each event costs $0.75; PostgreSQL's run made one more through the proxy.
    let (expected, left) = match app.db.store.dialect() {
        Dialect::Postgres => (3, "7.750000000"),
        Dialect::Sqlite => (2, "8.500000000"),
    };
    assert_eq!(n, expected, "{}", recorded.body);
    assert_eq!(balance(&app, &key, &cus).await, left);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn shutdown_finishes_what_it_started_and_a_restart_resumes_the_rest() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "shutdown", "100").await;
    let secret = app
        .running
        .core
        .payments
        .webhook_secret(&app.db.store)
        .await
        .unwrap();

    // Usage requests in flight while the server stops: each one either completes (and is
    // recorded) or never reached the server (and is not); none is half-done.
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let (http, base, key, body) = (
                app.http.clone(),
                app.base.clone(),
                key.clone(),
                usage(&cus, &format!("inflight-{i}")),
            );
            tokio::spawn(async move {
                http.post(format!("{base}/v1/usage"))
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    // And webhook events stored but not yet applied (unknown sessions: applied as no-ops).
    for i in 0..30 {
        let event = json!({"id": format!("evt_shutdown_{i}"), "object": "event", "type": "checkout.session.expired",
                           "created": 1, "livemode": false, "data": {"object": {"id": format!("cs_unknown_{i}"), "object": "checkout.session"}}});
        assert_eq!(
            deliver(&app.http, &app.base, secret.expose(), &event, None).await,
            200
        );
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let store = app.db.store.clone();
    let TestApp { running, db, .. } = app;
    running.stop().await.unwrap();

    let mut answered = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(201) => answered += 1,
            Ok(other) => panic!("a request in flight got {other}"),
            Err(_) => {} // refused before it was accepted
        }
    }
    let events = store
        .list_usage(&app::core::store::UsageFilter {
            mode: "test".into(),
            customer_id: Some(cus.clone()),
            conversation: None,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        answered,
        "every answered request is recorded, no other"
    );
    assert_eq!(
        store
            .count_webhook_events(app::core::vocab::InboxStatus::Processing)
            .await
            .unwrap(),
        0
    );

    // A restart on the same database finishes the inbox.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let options = server::Options::for_tests(listener.local_addr().unwrap());
    let again = server::start(listener, store.clone(), Arc::new(SystemClock), &options)
        .await
        .unwrap();
    // Wait until every event is processed: one may be claimed (processing) a moment after
    // none is pending any more.
    for _ in 0..100 {
        if store
            .count_webhook_events(app::core::vocab::InboxStatus::Processed)
            .await
            .unwrap()
            == 30
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        store
            .count_webhook_events(app::core::vocab::InboxStatus::Pending)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .count_webhook_events(app::core::vocab::InboxStatus::Processed)
            .await
            .unwrap(),
        30
    );
    let report = again.core.ledger.verify().await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
    again.stop().await.unwrap();
    drop(db);
}

/// The database's write side goes away (another process holds SQLite's write lock, so no
/// idempotency claim can be written): a retry is still answered, from memory. On
/// PostgreSQL an outage also stops API-key authentication (a read), so there the test
/// checks the same answers with the database up; the cache is the same code on both.
#[tokio::test]
async fn a_retry_is_answered_from_memory_even_while_the_database_is_away() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "retry", "10").await;
    let send = |body: serde_json::Value| {
        app.call_with(
            &key,
            reqwest::Method::POST,
            "/v1/usage",
            Some(body),
            &[("idempotency-key", "retry-1")],
        )
    };
    let first = send(usage(&cus, "retry-req")).await;
    assert_eq!(first.status, 201, "{}", first.body);

    let mut lock = None;
    if app.db.store.dialect() == Dialect::Sqlite {
        use sqlx::Connection;
        let mut other = sqlx::SqliteConnection::connect(&app.db.url).await.unwrap();
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut other)
            .await
            .unwrap();
        lock = Some(other);
    }
    let other_body = send(usage(&cus, "another-req")).await;
    assert_eq!(
        other_body.status, 409,
        "same key, other body: {}",
        other_body.body
    );
    let retry = send(usage(&cus, "retry-req")).await;
    assert_eq!(retry.status, 201, "{}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.body, first.body);
    if let Some(mut other) = lock {
        let unkeyed = app.post(&key, "/v1/usage", usage(&cus, "no-key")).await;
        assert_eq!(
            unkeyed.status, 503,
            "without a cached answer the database is needed: {}",
            unkeyed.body
        );
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    }
    app.assert_ledger_clean().await;
}

/// PostgreSQL aborts one of two deadlocked transactions (SQLSTATE 40P01). When the one
/// aborted writes money, it runs again and succeeds: the caller sees neither a 500 nor a
/// failure, and the money moves once. The deadlock is real: another session holds the
/// credit's reference (an uncommitted row under the unique index) and then asks for the
/// account row the credit has locked. SQLite has one writer and cannot deadlock.
#[tokio::test]
async fn a_deadlocked_credit_is_run_again_and_moves_the_money_once() {
    use app::core::ledger::{Credit, Operator};
    use app::core::money::Money;
    use sqlx::Connection;

    let app = spawn_app().await;
    if app.db.store.dialect() != Dialect::Postgres {
        return;
    }
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "deadlock", "0").await;
    let account = app
        .db
        .store
        .customer(&cus)
        .await
        .unwrap()
        .unwrap()
        .account_id;
    let reference = "deadlock-topup-1";

    let mut other = sqlx::AnyConnection::connect(&app.db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query(
        "INSERT INTO ledger_transactions (id, reference, fingerprint, kind, account_id, amount, created_at) \
         VALUES ('txn_other_session', $1, 'other', 'topup', $2, 0, 0)",
    )
    .bind(reference)
    .bind(Operator::StripeClearing.account_id(Mode::Test))
    .execute(&mut other)
    .await
    .unwrap();

    // The credit locks its account, then waits on the other session's row for its reference.
    let ledger = app.running.core.ledger.clone();
    let credit = tokio::spawn({
        let account = account.clone();
        async move {
            ledger
                .credit(&Credit::topup(
                    account,
                    Money::from_cents(500).unwrap(),
                    reference,
                ))
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The other session now wants the account the credit holds: a cycle. The credit waited
    // first, so its check finds the deadlock and PostgreSQL aborts it; this session gets the
    // row, and gives everything up.
    sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(&account)
        .execute(&mut other)
        .await
        .unwrap();
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();

    let credited = credit.await.unwrap();
    assert!(credited.is_ok(), "{credited:?}");
    let balance = app.get(&key, &format!("/v1/customers/{cus}/balance")).await;
    assert_eq!(balance.body["available"], "5.000000000", "{}", balance.body);
    app.assert_ledger_clean().await;
}

/// A peer that accepts connections and never answers (a hung Stripe); counts them.
async fn hung_peer() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (base, accepted)
}

/// Waits up to 10 s for `check` to hold.
async fn within_10s(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_hung_stripe_stalls_neither_the_other_workers_nor_shutdown() {
    let (base, accepted) = hung_peer().await;
    let stripe = base.clone();
    let app = spawn_with(move |o| {
        o.payments.stripe_secret_key = Some(Secret::new("sk_test_hung"));
        o.payments.webhook_secret = Some(Secret::new("whsec_hung"));
        o.payments.stripe_api_base = Some(stripe);
        o.payments.stripe_timeout = Some(Duration::from_secs(300));
        o.reconcile_every = Some(Duration::from_millis(100));
        o.shutdown_grace = Duration::from_secs(1);
    })
    .await;
    within_10s("reconciliation calls Stripe", async || {
        accepted.load(Ordering::SeqCst) > 0
    })
    .await;
    // Reconciliation now waits on Stripe. The inbox still applies what arrives ...
    app.inbox_applies("evt_while_hung").await;
    let store = app.db.store.clone();
    let now = SystemClock.now();
    // ... and the sweep still runs: it purges an expired session.
    let expired = now.plus_seconds(-60).micros();
    assert!(store.session_create("gone", "{}", expired).await.unwrap());
    within_10s("the sweep purges", async || {
        store.session_create("gone", "{}", expired).await.unwrap()
    })
    .await;
    // A stop cuts the hung call off at the end of its grace (1 s) instead of waiting.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), app.running.stop())
        .await
        .expect("the stop waited on the hung call")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Every call to Stripe has a limit: with 1 s, a hung Stripe answers Unavailable.
    let payments = Payments::new(PaymentsConfig {
        stripe_secret_key: Some(Secret::new("sk_test_hung")),
        stripe_api_base: Some(base),
        stripe_timeout: Some(Duration::from_secs(1)),
        ..PaymentsConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let answer = payments
        .gateway(Mode::Test)
        .unwrap()
        .events_between(0, None, 100)
        .await;
    assert!(
        matches!(answer, Err(app::core::error::Error::Unavailable(_))),
        "{answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
