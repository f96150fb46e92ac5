//! Several nodes on one database: each periodic job runs on one node at a time and moves to
//! another when its node stops; a key revoked anywhere stops working everywhere (see
//! `api::revoked_keys_and_keys_of_the_other_mode_are_refused`); a node runs beside a newer
//! version's migrations (a rolling deploy). On SQLite one server owns the file, so it leads
//! every job.

use std::future::Future;
use std::time::{Duration, Instant};

use app::core::store::{Dialect, Job};
use app::core::testing::{execute, fresh_store};

use crate::helpers::{spawn_app, TestApp};

/// Waits up to 10 s for `check` to hold.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node's `/metrics`, or None while it does not answer.
async fn metrics(base: &str) -> Option<String> {
    let r = reqwest::get(format!("{base}/metrics")).await.ok()?;
    r.text().await.ok()
}

/// Whether the node says, in `/metrics`, that it leads `job`.
async fn leads(app: &TestApp, job: Job) -> bool {
    let line = format!("tally_leader{{job=\"{}\"}} 1", job.name());
    metrics(&app.base)
        .await
        .is_some_and(|text| text.lines().any(|l| l == line))
}

/// The body of a usage event the kill test sends (and sends again).
pub(crate) fn usage(customer: &str, request_id: &str) -> serde_json::Value {
    serde_json::json!({"customer": customer, "model": "claude-sonnet-4-5",
        "input_tokens": 1000, "output_tokens": 100, "request_id": request_id})
}

#[tokio::test]
async fn a_job_has_one_leader_and_a_lost_connection_hands_it_over() {
    let db = fresh_store().await.unwrap();
    let other = db.another_store().await.unwrap();
    let mut a = db.store.leadership();
    let mut b = other.store.leadership();
    assert!(a.leads(Job::Sweep).await);
    if db.store.dialect() == Dialect::Sqlite {
        assert!(b.leads(Job::Sweep).await, "SQLite: every server leads");
        return;
    }
    assert!(
        !b.leads(Job::Sweep).await,
        "a second node does not take a led job"
    );
    assert!(
        b.leads(Job::Reconcile).await,
        "each job has a leader of its own"
    );
    assert!(a.leads(Job::Sweep).await, "the leader keeps its job");
    assert!(!a.leads(Job::Reconcile).await);
    // The leader's connection goes (a node killed): PostgreSQL ends its session and its
    // locks with it, and the other node takes the job at its next attempt.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b.leads(Job::Sweep).await {
        assert!(
            Instant::now() < deadline,
            "the other node never took the sweep"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(b.held().collect::<Vec<_>>(), [Job::Sweep, Job::Reconcile]);
}

#[tokio::test]
async fn the_sweep_runs_on_one_node_and_moves_when_that_node_stops() {
    let a = spawn_app().await;
    let b = a.another_node(|_| {}).await;
    // The tests' sweep period is 200 ms; within it each node has asked for the job.
    eventually("a node leads the sweep", || async {
        leads(&a, Job::Sweep).await || leads(&b, Job::Sweep).await
    })
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (on_a, on_b) = (leads(&a, Job::Sweep).await, leads(&b, Job::Sweep).await);
    if a.db.store.dialect() == Dialect::Sqlite {
        assert!(on_a && on_b, "SQLite: every server leads");
        return;
    }
    assert!(
        on_a != on_b,
        "exactly one node sweeps (a: {on_a}, b: {on_b})"
    );
    let (leader, follower) = if on_a { (a, b) } else { (b, a) };
    assert!(
        !leads(&follower, Job::Reconcile).await,
        "reconciliation is off in tests"
    );
    // A node stopping gives its jobs up at once; the other takes the sweep within a period.
    let TestApp {
        running, db: _db, ..
    } = leader;
    running.stop().await.unwrap();
    eventually("the other node takes the sweep", || {
        leads(&follower, Job::Sweep)
    })
    .await;
}

#[tokio::test]
async fn a_node_starts_on_a_database_that_a_newer_version_has_migrated() {
    let app = spawn_app().await;
    let checksum = match app.db.store.dialect() {
        Dialect::Sqlite => "X'00'",
        Dialect::Postgres => "decode('00', 'hex')",
    };
    execute(
        &app.db,
        &format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999, 'from a newer tally', TRUE, {checksum}, 0)"
        ),
    )
    .await
    .unwrap();
    // What every start does (`tally serve` migrates first): the newer migration is left
    // alone, and the database is ready for this version.
    let other = app.db.another_store().await.unwrap();
    other.store.migrate().await.unwrap();
    other.store.ready().await.unwrap();
    let node = app.another_node(|_| {}).await;
    let ready = node
        .http
        .get(format!("{}/readyz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

/// `tally serve` in a process of its own on `url`; killed (SIGKILL) when dropped.
pub(crate) struct Node {
    child: std::process::Child,
    pub(crate) base: String,
}

impl Node {
    /// Starts a node with `env` beside its address, and waits until it is ready.
    pub(crate) async fn start(url: &str, env: &[(&str, &str)]) -> Node {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
            .arg("--database-url")
            .arg(url)
            .arg("serve")
            .env("TALLY_ADDR", addr.to_string())
            .env("TALLY_API_RATE_PER_SECOND", "1000000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let node = Node {
            child,
            base: format!("http://{addr}"),
        };
        let http = reqwest::Client::new();
        eventually("the node is ready", || async {
            http.get(format!("{}/readyz", node.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        node
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every usage event of `customer`, by request id, through the list's pages.
pub(crate) async fn recorded(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    customer: &str,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/usage?customer={customer}&limit=100");
        if let Some(a) = &after {
            url.push_str(&format!("&starting_after={a}"));
        }
        let page: serde_json::Value = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().unwrap();
        ids.extend(
            data.iter()
                .map(|e| e["request_id"].as_str().unwrap().to_string()),
        );
        after = data.last().map(|e| e["id"].as_str().unwrap().to_string());
        if page["has_more"] != true {
            return ids;
        }
    }
}

/// Nodes killed with SIGKILL in the middle of their group commits: every event a node
/// acknowledged is recorded once, an event whose answer was lost is recorded at most once
/// and its retry elsewhere answers without charging twice, and the ledger verifies. On
/// PostgreSQL three nodes share the database and one is killed; on SQLite the one node is
/// killed and started again on the same file.
#[tokio::test]
async fn nodes_killed_under_load_lose_nothing_they_acknowledged() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    // Customers, credit and a key, through a server that then stops.
    let setup = spawn_app().await;
    let admin = setup
        .key(app::core::ledger::Mode::Test, app::core::keys::Scope::Admin)
        .await;
    let mut customers = Vec::new();
    for i in 0..8 {
        customers.push(
            setup
                .customer_with_credit(&admin, &format!("kill-{i}"), "1000")
                .await,
        );
    }
    let TestApp { running, db, .. } = setup;
    running.stop().await.unwrap();

    let postgres = db.store.dialect() == Dialect::Postgres;
    let mut nodes = Vec::new();
    for _ in 0..if postgres { 3 } else { 1 } {
        nodes.push(Node::start(&db.url, &[]).await);
    }
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = reqwest::Client::new();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // request id → (customer, acknowledged)
    let sent: Arc<Mutex<BTreeMap<String, (String, bool)>>> = Arc::default();
    let mut clients = Vec::new();
    for c in 0..16 {
        let (http, bases, stop, sent, admin) = (
            http.clone(),
            bases.clone(),
            stop.clone(),
            sent.clone(),
            admin.clone(),
        );
        let customer = customers[c % customers.len()].clone();
        clients.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let request_id = format!("kill-{c}-{n}");
                let base = &bases[(c + n) % bases.len()];
                sent.lock()
                    .unwrap()
                    .insert(request_id.clone(), (customer.clone(), false));
                let answer = http
                    .post(format!("{base}/v1/usage"))
                    .bearer_auth(&admin)
                    .json(&usage(&customer, &request_id))
                    .send()
                    .await;
                match answer {
                    Ok(r) if r.status().is_success() => {
                        sent.lock().unwrap().get_mut(&request_id).unwrap().1 = true;
                    }
                    // A killed node refuses at once: do not spin on it.
                    _ => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nodes[0].kill();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    if !postgres {
        nodes[0] = Node::start(&db.url, &[]).await;
    }
    let survivor = nodes.last().unwrap().base.clone();

    let sent = sent.lock().unwrap().clone();
    let acknowledged = sent.values().filter(|(_, ack)| *ack).count();
    assert!(
        acknowledged > 50,
        "too little load to mean anything: {acknowledged}"
    );
    eprintln!(
        "{} nodes, one killed: {acknowledged} events acknowledged, {} not (cut off or refused)",
        bases.len(),
        sent.len() - acknowledged
    );
    for customer in &customers {
        let ids = recorded(&http, &survivor, &admin, customer).await;
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "an event recorded twice");
        for (request_id, (owner, ack)) in &sent {
            if owner == customer && *ack {
                assert!(
                    unique.contains(request_id),
                    "acknowledged {request_id} lost"
                );
            }
        }
        assert!(
            unique.iter().all(|id| sent.contains_key(*id)),
            "an event nobody sent"
        );
    }
    // Retries of the requests whose answers were lost, on a node that is up: each answers,
    // and none is charged twice.
    for (request_id, (customer, _)) in sent.iter().filter(|(_, (_, ack))| !ack) {
        let r = http
            .post(format!("{survivor}/v1/usage"))
            .bearer_auth(&admin)
            .json(&usage(customer, request_id))
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "retry of {request_id}: {}",
            r.status()
        );
    }
    let total: usize = {
        let mut n = 0;
        for customer in &customers {
            n += recorded(&http, &survivor, &admin, customer).await.len();
        }
        n
    };
    assert_eq!(
        total,
        sent.len(),
        "each request recorded exactly once after the retries"
    );
    drop(nodes);
    let core = app::core::Core::new(
        db.store.clone(),
        std::sync::Arc::new(app::core::clock::SystemClock),
    );
    let report = core.ledger.verify().await.unwrap();
    assert!(report.is_clean(), "{}", report.render());
}

#[tokio::test]
async fn a_node_opens_the_pools_it_is_told() {
    let setup = spawn_app().await;
    let writers = match setup.db.store.dialect() {
        Dialect::Postgres => "6",
        Dialect::Sqlite => "1",
    };
    let node = Node::start(
        &setup.db.url,
        &[("TALLY_DB_READERS", "3"), ("TALLY_DB_WRITERS", writers)],
    )
    .await;
    let text = metrics(&node.base).await.unwrap();
    assert!(
        text.contains("tally_db_pool_max_connections{pool=\"reader\"} 3"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "tally_db_pool_max_connections{{pool=\"writer\"}} {writers}"
        )),
        "{text}"
    );
    // Too few writers for the group commit is refused at start, with the reason.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["--database-url", &setup.db.url, "serve"])
        .env("TALLY_ADDR", "127.0.0.1:0")
        .env("TALLY_DB_WRITERS", "2")
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("writer"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn nodes_claiming_the_inbox_at_once_take_each_event_once() {
    let db = fresh_store().await.unwrap();
    let other = db.another_store().await.unwrap();
    let start = app::core::clock::Timestamp::from_micros(1_800_000_000_000_000);
    let mut sent = Vec::new();
    for i in 0..60 {
        let id = format!("evt_claim_{i:03}");
        let stored = db
            .store
            .insert_webhook_event(
                &id,
                "charge.refunded",
                "test",
                "{}",
                "webhook",
                start.plus_seconds(i),
            )
            .await
            .unwrap();
        assert!(stored);
        sent.push(id);
    }
    // Two nodes' workers claim side by side, a few at a time, until the inbox is empty.
    let now = start.plus_seconds(100);
    let stale = now.plus_seconds(-300);
    let claim_all = |store: app::core::store::Store| async move {
        let mut mine = Vec::new();
        loop {
            let claimed = store.claim_webhook_events(now, stale, 7).await.unwrap();
            if claimed.is_empty() {
                return mine;
            }
            mine.extend(claimed);
        }
    };
    let (a, b) = tokio::join!(claim_all(db.store.clone()), claim_all(other.store.clone()));
    let mut all: Vec<String> = a.iter().chain(&b).cloned().collect();
    all.sort();
    assert_eq!(all, sent, "every event claimed, none twice");
    assert!(
        a.windows(2).all(|w| w[0] < w[1]),
        "each claim hands out the oldest first"
    );
    // A claim is not taken again until it is stale (its worker died).
    assert!(db
        .store
        .claim_webhook_events(now, stale, 100)
        .await
        .unwrap()
        .is_empty());
    let later = now.plus_seconds(301);
    let retaken = other
        .store
        .claim_webhook_events(later, later.plus_seconds(-300), 100)
        .await
        .unwrap();
    assert_eq!(retaken.len(), sent.len());
}
