//! The `tally` binary itself, run as a process against a test database: `reprice` (the
//! report on stdout, progress on stderr, `--prices-at`) and `verify` (exit status and what
//! it names when an event's cost or a period counter is tampered with).

use std::process::Command;

use app::core::keys::Scope;
use app::core::ledger::Mode;
use serde_json::json;

use super::helpers::{spawn_app, TestApp};

/// Runs `tally` with the test database; (exit code, stdout, stderr).
fn tally(app: &TestApp, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .env("DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "off")
        .output()
        .expect("tally runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs one statement on the test database, as someone with its file or password might.
async fn tamper(app: &TestApp, sql: &str) {
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&app.db.url)
        .await
        .unwrap();
    let done = sqlx::query(sql).execute(&pool).await.unwrap();
    assert_eq!(done.rows_affected(), 1, "{sql}");
    pool.close().await;
}

#[tokio::test]
async fn tally_reprice_prints_its_report_and_progress() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let r = app
        .post(
            &key,
            "/v1/plans",
            json!({"id": "double", "name": "Double", "terms": {"markup_percent": "100"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let cus = app.customer_with_credit(&key, "cli", "50").await;
    for id in ["a", "b", "c"] {
        let e = app
            .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1_000_000, "output_tokens": 0, "request_id": id}))
            .await;
        assert_eq!(e.status, 201);
    }
    let today = app.running.core.clock.now();
    let (from, to) = (
        today.plus_seconds(-86_400).day_key(),
        today.plus_seconds(86_400).day_key(),
    );
    let (code, out, err) = tally(
        &app,
        &[
            "reprice",
            "--mode",
            "test",
            "--plan",
            "double",
            "--customer",
            &cus,
            "--from",
            &from,
            "--to",
            &to,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("re-rated 3 of 3 events"),
        "progress on stderr: {err}"
    );
    assert!(
        out.contains("re-rated 3 events of 1 customers under plan double v1"),
        "{out}"
    );
    assert!(out.contains("charged     9.000000000"), "{out}");
    assert!(out.contains("would cost  18.000000000"), "{out}");
    // The price book as it stood before any of it: the same list prices, so the same.
    let (code, out2, _) = tally(
        &app,
        &[
            "reprice",
            "--mode",
            "test",
            "--plan",
            "double",
            "--from",
            &from,
            "--to",
            &to,
            "--prices-at",
            &today.to_rfc3339(),
        ],
    );
    assert_eq!(code, 0, "{out2}");
    assert!(out2.contains("would cost  18.000000000"), "{out2}");
    // Bad input: a clear error and a failing exit.
    let (code, _, err) = tally(
        &app,
        &[
            "reprice",
            "--mode",
            "test",
            "--plan",
            "double",
            "--from",
            "yesterday",
            "--to",
            &to,
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("yesterday"), "{err}");
}

#[tokio::test]
async fn tally_verify_names_a_tampered_event_and_a_tampered_counter() {
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&key, "tampered", "10").await;
    let e = app
        .post(&key, "/v1/usage", json!({"customer": cus, "model": "claude-sonnet-4-5", "input_tokens": 1000, "output_tokens": 0, "request_id": "t"}))
        .await;
    assert_eq!(e.status, 201);
    let event = e.body["id"].as_str().unwrap().to_string();
    let (code, out, err) = tally(&app, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ledger is clean"), "{out}");

    tamper(
        &app,
        &format!("UPDATE usage_events SET cost = cost + 1 WHERE id = '{event}'"),
    )
    .await;
    let (code, out, _) = tally(&app, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&event), "the event is named: {out}");
    assert!(out.contains("LEDGER HAS ERRORS"));
    tamper(
        &app,
        &format!("UPDATE usage_events SET cost = cost - 1 WHERE id = '{event}'"),
    )
    .await;

    let day = app.running.core.clock.now().day_key();
    tamper(
        &app,
        &format!("UPDATE usage_periods SET spend = spend + 5 WHERE customer_id = '{cus}' AND period = '{day}'"),
    )
    .await;
    let (code, out, _) = tally(&app, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("{cus} {day}")),
        "the counter is named: {out}"
    );
    assert!(!out.contains(&event), "{out}");
}

/// `tally serve` in yen, as its own process (the currency pages show is process-wide):
/// the portal shows balances with the yen sign and no minor unit.
#[tokio::test]
async fn tally_serve_in_yen_shows_yen_on_the_portal() {
    let app = spawn_app().await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .env("DATABASE_URL", &app.db.url)
        .env("TALLY_CURRENCY", "jpy");
    let (_server, base) = serve(command).await;
    let http = super::helpers::browser();
    {
        let key = app.key(Mode::Test, Scope::Admin).await;
        let c: serde_json::Value = http
            .post(format!("{base}/v1/customers"))
            .bearer_auth(&key)
            .json(&json!({"external_id": "yen"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = c["id"].as_str().unwrap().to_string();
        let g = http
            .post(format!("{base}/v1/customers/{id}/grants"))
            .bearer_auth(&key)
            .json(&json!({"amount": "1200", "reason": "yen test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(g.status(), 201);
        let balance: serde_json::Value = http
            .get(format!("{base}/v1/customers/{id}/balance"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(balance["currency"], "jpy", "{balance}");
        let link: serde_json::Value = http
            .post(format!("{base}/v1/customers/{id}/portal_sessions"))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = http
            .get(link["url"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        let page = http
            .get(format!("{base}/portal"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("¥1,200"), "the balance in yen: {page}");
        assert!(!page.contains("$1,200"), "{page}");
    }
}

#[tokio::test]
async fn tally_bench_refuses_a_database_that_holds_data() {
    use app::core::store::LedgerTable;
    let app = spawn_app().await;
    let key = app.key(Mode::Test, Scope::Admin).await;
    app.customer_with_credit(&key, "precious", "5").await;
    let before = app.db.store.count(LedgerTable::Accounts).await.unwrap();
    let (code, _, stderr) = tally(&app, &["bench", "--duration", "1", "--warmup", "0"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--allow-existing-data"), "{stderr}");
    // Nothing was added: not one account more.
    assert_eq!(
        app.db.store.count(LedgerTable::Accounts).await.unwrap(),
        before
    );
}

#[tokio::test]
async fn tally_demo_seeds_sixty_days_of_usage_with_a_weekday_rhythm() {
    let app = spawn_app().await;
    let (code, out, err) = tally(&app, &["demo"]);
    assert_eq!(code, 0, "{out}{err}");
    // Progress: one line per customer.
    for n in ["(1/3)", "(2/3)", "(3/3)"] {
        assert!(out.contains(n), "{out}");
    }
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&app.db.url)
        .await
        .unwrap();
    let times: Vec<i64> = sqlx::query_scalar("SELECT occurred_at FROM usage_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    let day = |t: &i64| t.div_euclid(86_400_000_000);
    let mut days: Vec<i64> = times.iter().map(day).collect();
    days.sort_unstable();
    days.dedup();
    assert!(days.len() >= 58, "{} days with usage", days.len());
    assert!(days.last().unwrap() - days.first().unwrap() >= 59);
    // Weekdays are busier than weekends (1970-01-01 was a Thursday).
    let weekend = |t: &i64| (day(t) + 3).rem_euclid(7) >= 5;
    let (ends, works) = times.iter().fold(
        (0, 0),
        |(e, w), t| {
            if weekend(t) {
                (e + 1, w)
            } else {
                (e, w + 1)
            }
        },
    );
    assert!(
        works > 4 * ends,
        "{works} weekday and {ends} weekend requests"
    );
    let models: Vec<String> = sqlx::query_scalar("SELECT DISTINCT model FROM usage_events")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(models.len() >= 4, "{models:?}");
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM customers").await, 3);
    assert_eq!(
        count("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'refund'").await,
        1
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'topup'").await,
        4
    );
    assert!(count("SELECT COUNT(*) FROM usage_events WHERE outcome = 'failed'").await >= 1);
    // Today's requests through the proxy: under both of Ada's keys, three conversations,
    // each charged by its own usage event.
    assert!(out.contains("sent 7 of today's requests"), "{out}");
    assert_eq!(
        count("SELECT COUNT(*) FROM proxy_requests p JOIN usage_events e ON e.id = p.event_id WHERE e.cost > 0").await,
        7
    );
    assert_eq!(
        count("SELECT COUNT(DISTINCT customer_key_id) FROM proxy_requests").await,
        2
    );
    assert_eq!(
        count("SELECT COUNT(DISTINCT conversation) FROM proxy_requests").await,
        3
    );
    pool.close().await;
    // The books balance, and a second run seeds nothing.
    let (code, out, _) = tally(&app, &["verify"]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = tally(&app, &["demo"]);
    assert_eq!(code, 0);
    assert!(out.contains("already has data"), "{out}");
}

#[tokio::test]
async fn tally_serve_carries_its_site_and_runs_from_any_directory() {
    assert!(
        server::site::embedded_files() >= 3,
        "the server was built without the browser bundle: build it first \
         (scripts/lib.sh build_site), then the server embeds target/site/pkg"
    );
    let app = spawn_app().await;
    let dir = std::env::temp_dir().join(format!("tally-anywhere-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A directory with nothing in it, and no TALLY_SITE_ROOT: only the binary.
    let mut command = Command::new(env!("CARGO_BIN_EXE_tally"));
    command
        .current_dir(&dir)
        .env("DATABASE_URL", &app.db.url)
        .env_remove("TALLY_SITE_ROOT");
    let (_server, base) = serve(command).await;
    let http = super::helpers::browser();
    let css = http
        .get(format!("{base}/pkg/tally.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css");
    let etag = css.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(
        css.text().await.unwrap(),
        include_str!("../../../style/main.css"),
        "the stylesheet the binary carries is the repository's"
    );
    let again = http
        .get(format!("{base}/pkg/tally.css"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    let wasm = http
        .get(format!("{base}/pkg/tally_bg.wasm"))
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert_eq!(wasm.headers()["vary"], "accept-encoding");
    let wasm_etag = wasm.headers()["etag"].clone();
    let wasm = wasm.bytes().await.unwrap();
    assert!(wasm.starts_with(b"\0asm"));
    // A browser that takes gzip gets the compressed copy of the same bytes.
    let gzipped = http
        .get(format!("{base}/pkg/tally_bg.wasm"))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.status(), 200);
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    assert_eq!(gzipped.headers()["content-type"], "application/wasm");
    assert_ne!(gzipped.headers()["etag"], wasm_etag);
    let gzipped = gzipped.bytes().await.unwrap();
    assert!(
        gzipped.len() * 2 < wasm.len(),
        "{} of {}",
        gzipped.len(),
        wasm.len()
    );
    let gz = dir.join("tally_bg.wasm.gz");
    std::fs::write(&gz, &gzipped).unwrap();
    let unzipped = Command::new("gzip").arg("-dc").arg(&gz).output().unwrap();
    assert!(unzipped.status.success());
    assert!(unzipped.stdout == wasm, "the gzipped wasm is the wasm");
    let home = http.get(&base).send().await.unwrap().text().await.unwrap();
    assert!(home.contains("/pkg/tally.js"), "{home}");
    let missing = http
        .get(format!("{base}/pkg/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Stops a `tally serve` process however the test ends.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `command` as `tally serve` on a free port and waits until it is ready; the
/// process lives as long as the returned guard. (guard, base URL)
async fn serve(mut command: Command) -> (Stop, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = Stop(
        command
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "off")
            .spawn()
            .expect("tally serve starts"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = super::helpers::browser();
    for _ in 0..100 {
        if http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (server, base);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("tally serve did not come up");
}
