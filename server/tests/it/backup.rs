//! Backups and restores: `tally backup` copies a SQLite database while it takes writes;
//! on PostgreSQL `pg_dump`/`pg_restore` as the README says. The copy, restored, verifies
//! clean, holds every event acknowledged before the backup began and none that nobody
//! sent, and serves.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::store::Dialect;

use crate::helpers::spawn_app;
use crate::nodes::{recorded, usage, Node};

/// Runs a program to its end; panics with its output unless it succeeds.
fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A PostgreSQL client program: beside the server the tests start (`PG_BIN`), or on PATH.
fn pg_program(name: &str) -> String {
    match std::env::var("PG_BIN") {
        Ok(dir) if !dir.is_empty() => format!("{dir}/{name}"),
        _ => name.to_string(),
    }
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_whole_and_verifies() {
    let app = spawn_app().await;
    let admin = app.key(Mode::Test, Scope::Admin).await;
    let cus = app.customer_with_credit(&admin, "backed-up", "1000").await;
    // A client records usage one event after another until told to stop.
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, base, admin, cus) = (
            acked.clone(),
            stop.clone(),
            app.base.clone(),
            admin.clone(),
            cus.clone(),
        );
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let id = format!("b-{n}");
                n += 1;
                let r = http
                    .post(format!("{base}/v1/usage"))
                    .bearer_auth(&admin)
                    .json(&usage(&cus, &id))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                acked.lock().unwrap().push(id);
            }
        })
    };
    while acked.lock().unwrap().len() < 50 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let restored = match app.db.store.dialect() {
        Dialect::Sqlite => {
            // `tally backup` while the writes go on; then the restore: the copy becomes
            // the database file of a fresh directory.
            let copy = dir.path().join("backup.db");
            let url = app.db.url.clone();
            let copy_arg = copy.display().to_string();
            let out = tokio::task::spawn_blocking(move || {
                run(
                    env!("CARGO_BIN_EXE_tally"),
                    &["--database-url", &url, "backup", &copy_arg],
                )
            })
            .await
            .unwrap();
            assert!(out.contains("ledger verified clean"), "{out}");
            let again = Command::new(env!("CARGO_BIN_EXE_tally"))
                .args(["--database-url", &app.db.url, "backup"])
                .arg(&copy)
                .output()
                .unwrap();
            assert!(!again.status.success(), "a backup never overwrites a file");
            assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
            let place = dir.path().join("restored");
            std::fs::create_dir(&place).unwrap();
            std::fs::copy(&copy, place.join("tally.db")).unwrap();
            format!("sqlite://{}/tally.db", place.display())
        }
        Dialect::Postgres => {
            let dump = dir.path().join("tally.dump").display().to_string();
            let url = app.db.url.clone();
            let admin_url = std::env::var("TALLY_TEST_DATABASE_URL").unwrap();
            let name = format!("restored_{}", std::process::id());
            let target = format!("{}/{name}", &url[..url.rfind('/').unwrap()]);
            let target2 = target.clone();
            tokio::task::spawn_blocking(move || {
                run(
                    &pg_program("pg_dump"),
                    &["--format=custom", "--file", &dump, "--dbname", &url],
                );
                run(
                    &pg_program("psql"),
                    &[&admin_url, "-qc", &format!("CREATE DATABASE {name}")],
                );
                run(
                    &pg_program("pg_restore"),
                    &["--no-owner", "--dbname", &target2, &dump],
                );
            })
            .await
            .unwrap();
            target
        }
    };
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let all: Vec<String> = acked.lock().unwrap().clone();

    // The restored database verifies clean and serves.
    let url = restored.clone();
    let verified = tokio::task::spawn_blocking(move || {
        run(
            env!("CARGO_BIN_EXE_tally"),
            &["--database-url", &url, "verify"],
        )
    })
    .await
    .unwrap();
    assert!(verified.contains("clean"), "{verified}");
    let node = Node::start(&restored, &[]).await;
    let http = reqwest::Client::new();
    let mut held = recorded(&http, &node.base, &admin, &cus).await;
    held.sort();
    for id in &before {
        assert!(
            held.binary_search(id).is_ok(),
            "{id} was acknowledged before the backup"
        );
    }
    for id in &held {
        assert!(all.contains(id), "{id} was never sent");
    }
    assert!(held.len() >= before.len() && held.len() <= all.len());
    // Its balance is the credit less exactly the events it holds, each at the price the
    // original charged.
    let nanos = |base: String| {
        let (http, admin, cus) = (http.clone(), admin.clone(), cus.clone());
        async move {
            let b: serde_json::Value = http
                .get(format!("{base}/v1/customers/{cus}/balance"))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            b["available"]
                .as_str()
                .unwrap()
                .replace('.', "")
                .parse::<i64>()
                .unwrap()
        }
    };
    let credit = 1_000 * 1_000_000_000;
    let spent_in_original = credit - nanos(app.base.clone()).await;
    let each = spent_in_original / all.len() as i64;
    assert_eq!(each * all.len() as i64, spent_in_original);
    assert_eq!(
        nanos(node.base.clone()).await,
        credit - each * held.len() as i64
    );
}
