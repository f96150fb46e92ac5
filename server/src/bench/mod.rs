//! `tally bench`: the metering path under load, over real HTTP on loopback, beside the
//! same writes made directly through the core. Figures, never assertions: it fails only
//! when the ledger does not verify afterwards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::core::clock::{Clock, SystemClock};
use app::core::customers::{self, NewCustomer};
use app::core::error::{Error, Result};
use app::core::keys::{self, Scope};
use app::core::ledger::{Credit, Mode};
use app::core::metering::{self, UsageInput};
use app::core::money::Money;
use app::core::pricing::{Outcome, Tokens};
use app::core::Core;
use serde_json::json;

use crate::config::BenchConfig;

mod nodes;
mod profile;
mod proxy;

/// Latencies of one run, in microseconds.
struct Run {
    name: String,
    ops: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Vec<u32>,
    /// Events per operation (1000 for a batch request).
    per_op: u64,
    /// The group commits and threads of this process during the measured window.
    profile: profile::Window,
}

impl Run {
    fn per_second(&self) -> f64 {
        #[allow(clippy::float_arithmetic)]
        let v = (self.ops * self.per_op) as f64 / self.elapsed.as_secs_f64();
        v
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        #[allow(clippy::float_arithmetic)]
        let idx = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        #[allow(clippy::float_arithmetic)]
        let ms = f64::from(self.latencies[idx]) / 1000.0;
        ms
    }

    fn line(&self) -> String {
        format!(
            "{:<44} {:>12.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  ({} ops, {} errors)",
            self.name,
            self.per_second(),
            self.percentile(0.50),
            self.percentile(0.99),
            self.percentile(0.999),
            self.ops,
            self.errors
        )
    }

    /// The line, then the profile of its window: the group commits (when this process
    /// committed anything) and the CPU one event cost.
    fn report(&self) -> String {
        std::iter::once(self.line())
            .chain(self.profile.lines())
            .chain(std::iter::once(
                self.profile.cpu_per_event(self.ops * self.per_op),
            ))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// How often a run in progress reports on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Drives `op` from `clients` tasks for `duration` after `warmup`; `op(client, n)` does one
/// operation. With `rate`, operations are paced (open loop) to that many per second in all.
/// It says on stderr what it runs, then every [`PROGRESS_EVERY`] how far it is.
async fn drive<F, Fut>(
    name: &str,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    rate: Option<f64>,
    per_op: u64,
    op: F,
) -> Run
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let op = Arc::new(op);
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (op, measuring, stop, errors, seq) = (
            op.clone(),
            measuring.clone(),
            stop.clone(),
            errors.clone(),
            seq.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            #[allow(clippy::float_arithmetic)]
            let interval = rate.map(|r| Duration::from_secs_f64(clients as f64 / r));
            // Paced clients start out of step, a fraction of the interval apart, so that
            // arrivals are spread evenly instead of coming as a burst from every client at
            // once (which would measure repeated peaks, not half the load).
            let mut next = Instant::now()
                + interval.map_or(Duration::ZERO, |i| i * c as u32 / clients.max(1) as u32);
            while !stop.load(Ordering::Relaxed) {
                if let Some(i) = interval {
                    next += i;
                    let now = Instant::now();
                    if next > now {
                        tokio::time::sleep(next - now).await;
                    }
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                // Paced: latency counts from when the request was due, so a client that
                // fell behind does not hide the wait (coordinated omission).
                let started = if interval.is_some() {
                    next.min(Instant::now())
                } else {
                    Instant::now()
                };
                let ok = op(c, n).await;
                if measuring.load(Ordering::Relaxed) {
                    lat.push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    eprintln!(
        "{name}: {clients} clients, {} s of warm-up, then {} s measured",
        warmup.as_secs(),
        duration.as_secs()
    );
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let first = profile::Snapshot::take();
    let sent_before = seq.load(Ordering::Relaxed);
    let end = started + duration;
    // Progress on stderr every few seconds, so a long run shows it is alive; stdout keeps
    // only the report.
    while Instant::now() < end {
        tokio::time::sleep(PROGRESS_EVERY.min(end - Instant::now())).await;
        let so_far = started.elapsed();
        if Instant::now() < end {
            let sent = seq.load(Ordering::Relaxed) - sent_before;
            eprintln!(
                "{name}: {} s of {} s, {sent} requests sent ({} a second)",
                so_far.as_secs(),
                duration.as_secs(),
                sent * 1000 / (so_far.as_millis() as u64).max(1),
            );
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let profile = first.until(&profile::Snapshot::take());
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            latencies.extend(l);
        }
    }
    latencies.sort_unstable();
    Run {
        name: name.to_string(),
        ops: latencies.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        latencies,
        per_op,
        profile,
    }
}

/// Issue 19's goals against this run: each figure beside its goal, and as a ratio to the
/// baselines measured in the same run (the no-HTTP path, pgbench, many accounts), since
/// absolute figures move with the machine.
#[allow(clippy::float_arithmetic)]
fn goals(
    dialect: app::core::store::Dialect,
    [core_run, usage, half, batch, pairs]: [&Run; 5],
    pgbench_tps: Option<f64>,
) -> Vec<String> {
    use app::core::store::Dialect;
    let met = |ok: bool| if ok { "met" } else { "missed" };
    let single = usage.per_second();
    let no_http = single / core_run.per_second();
    let mut out = vec![format!("goals ({}):", dialect.name())];
    out.push(match (dialect, pgbench_tps) {
        (Dialect::Sqlite, _) => format!(
            "  POST /v1/usage >= 10000/s: {single:.0}/s = {:.0} % ({}); {no_http:.2}x the no-HTTP baseline",
            single / 100.0,
            met(single >= 10_000.0),
        ),
        (Dialect::Postgres, Some(tps)) => format!(
            "  POST /v1/usage >= 2x pgbench: {single:.0}/s = {:.2}x pgbench ({}); {no_http:.2}x the no-HTTP baseline",
            single / tps,
            met(single >= 2.0 * tps),
        ),
        (Dialect::Postgres, None) => format!(
            "  POST /v1/usage >= 2x pgbench: {single:.0}/s (no pgbench figure given); {no_http:.2}x the no-HTTP baseline"
        ),
    });
    let (batch_goal, p99_goal) = match dialect {
        Dialect::Sqlite => (100_000.0, 5.0),
        Dialect::Postgres => (20_000.0, 10.0),
    };
    let events = batch.per_second();
    out.push(format!(
        "  POST /v1/usage/batch >= {batch_goal:.0} events/s: {events:.0} = {:.1} % ({}); {:.2}x single events",
        100.0 * events / batch_goal,
        met(events >= batch_goal),
        events / single,
    ));
    let share = pairs.per_second() / single;
    out.push(format!(
        "  authorize + capture on one account >= 80 % of many: {:.0} % ({}), {} errors",
        100.0 * share,
        met(share >= 0.8),
        pairs.errors,
    ));
    let p99 = half.percentile(0.99);
    out.push(format!(
        "  p99 at half of peak <= {p99_goal:.0} ms: {p99:.2} ms at {:.0}/s ({})",
        half.per_second(),
        met(p99 <= p99_goal),
    ));
    out
}

async fn customers_with_credit(core: &Core, n: usize, tag: &str) -> Result<Vec<String>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let c = customers::create(
            core,
            Mode::Test,
            &NewCustomer {
                external_id: format!("{tag}-{i}"),
                ..NewCustomer::default()
            },
        )
        .await?;
        core.ledger
            .credit(&Credit::topup(
                c.account_id.clone(),
                Money::from_cents(100_000_000)?,
                format!("bench:{}", c.id),
            ))
            .await?;
        out.push(c.id);
    }
    Ok(out)
}

fn usage_body(customer: &str, request_id: String) -> serde_json::Value {
    json!({"customer": customer, "model": "claude-sonnet-4-5", "input_tokens": 1204, "output_tokens": 350,
           "cache_read_input_tokens": 2048, "request_id": request_id})
}

/// The benchmark fills its database with thousands of customers, their credit and their
/// events: on a database that holds data already (production, a demo), it stops unless
/// told otherwise.
async fn refuse_existing_data(store: &app::core::store::Store, cfg: &BenchConfig) -> Result<()> {
    if !cfg.allow_existing_data && store.holds_data().await? {
        return Err(Error::invalid(
            "database_url",
            "this database already holds customers or ledger transactions, and the benchmark \
             would add thousands more; use a fresh database, or pass --allow-existing-data",
        ));
    }
    Ok(())
}

/// The HTTP servers the scenarios drive: one inside this process, or `tally serve` child
/// processes on the same database (the load generator then runs out of their process).
enum Servers {
    InProcess(crate::Running),
    Nodes(nodes::Nodes),
}

/// Runs every scenario against one database and prints the figures; fails only when the
/// ledger does not verify afterwards.
pub async fn run(database_url: &str, cfg: &BenchConfig) -> Result<bool> {
    if cfg.proxy {
        return proxy::run(database_url, cfg).await;
    }
    let store = crate::open_store(database_url).await?;
    refuse_existing_data(&store, cfg).await?;
    let backend = store.dialect().name();
    if cfg.nodes > 1 && backend != "postgres" {
        return Err(Error::invalid(
            "nodes",
            "several nodes share one database only on PostgreSQL",
        ));
    }
    let in_process = match cfg.nodes {
        0 => Some(start_in_process(&store, |_| {}).await?),
        _ => None,
    };
    let core = match &in_process {
        Some(running) => running.core.clone(),
        None => Core::new(store.clone(), Arc::new(SystemClock)),
    };
    let (_, key) =
        keys::create(&store, Mode::Test, Scope::Usage, "bench", SystemClock.now()).await?;
    let warmup = Duration::from_secs(cfg.warmup);
    let duration = Duration::from_secs(cfg.duration);
    let tag = format!("b{}", SystemClock.now().micros());
    let served_by = match cfg.nodes {
        0 => "a server in this process".to_string(),
        1 => "one `tally serve` process".to_string(),
        n => format!("{n} `tally serve` processes"),
    };
    println!(
        "== {backend}: {} s per scenario after {} s warm-up; HTTP served by {served_by}",
        cfg.duration, cfg.warmup
    );
    // Before any load: the fixed cost of one statement on the write connection.
    let mut trips = Vec::new();
    for _ in 0..3 {
        trips.push(profile::statement_round_trip(&store, 1000).await?);
    }
    println!(
        "one statement's round trip on the write connection, idle (SAVEPOINT/RELEASE, 2,000 each): {}",
        trips
            .iter()
            .map(|t| {
                let nanos = t.as_nanos();
                format!("{}.{} us", nanos / 1000, nanos % 1000 / 100)
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    let many = Arc::new(customers_with_credit(&core, cfg.customers, &format!("{tag}-many")).await?);
    let one = Arc::new(customers_with_credit(&core, 1, &format!("{tag}-one")).await?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()
        .map_err(|e| Error::internal(e.to_string()))?;
    let mut runs = Vec::new();

    // 1. The same writes without HTTP: record_usage through the core (before any node
    //    starts, so that the core's writer has the database to itself).
    {
        let (core, many, tag) = (core.clone(), many.clone(), tag.clone());
        runs.push(
            drive(
                "core record_usage (no HTTP), many customers",
                cfg.clients,
                warmup,
                duration,
                None,
                1,
                move |c, n| {
                    let (core, many, tag) = (core.clone(), many.clone(), tag.clone());
                    async move {
                        let input = UsageInput {
                            customer: many[(c + n as usize) % many.len()].clone(),
                            model: "claude-sonnet-4-5".into(),
                            tokens: Tokens {
                                input: 1204,
                                output: 350,
                                cache_write: 0,
                                cache_read: 2048,
                                cache_write_1h: 0,
                            },
                            batch: false,
                            outcome: Outcome::Succeeded,
                            request_id: format!("{tag}-core-{n}"),
                            occurred_at: None,
                            metadata: None,
                        };
                        metering::record_usage(&core, Mode::Test, &input)
                            .await
                            .is_ok()
                    }
                },
            )
            .await,
        );
    }

    let servers = match in_process {
        Some(running) => Servers::InProcess(running),
        None => Servers::Nodes(nodes::Nodes::spawn(database_url, cfg.nodes).await?),
    };
    let bases: Vec<String> = match &servers {
        Servers::InProcess(running) => vec![format!("http://{}", running.addr)],
        Servers::Nodes(nodes) => nodes.bases.clone(),
    };
    let all = Arc::new(bases.clone());

    // 2. POST /v1/usage, one event per request.
    let usage = single_events(
        "POST /v1/usage, many customers",
        &http,
        &all,
        &key,
        &many,
        &format!("{tag}-http"),
        cfg.clients,
        (warmup, duration),
        None,
    )
    .await;
    let peak = usage.per_second();
    runs.push(usage);

    // 3. The same at half of that peak: latency under a sustainable load.
    #[allow(clippy::float_arithmetic)]
    let half = (peak / 2.0).max(1.0);
    runs.push(
        single_events(
            &format!("POST /v1/usage at half peak ({half:.0}/s)"),
            &http,
            &all,
            &key,
            &many,
            &format!("{tag}-half"),
            cfg.clients,
            (warmup, duration),
            Some(half),
        )
        .await,
    );

    // 4. POST /v1/usage/batch, 1,000 events per request.
    {
        let (http, all, key, many, tag) = (
            http.clone(),
            all.clone(),
            key.clone(),
            many.clone(),
            tag.clone(),
        );
        runs.push(
            drive("POST /v1/usage/batch (1,000 events), events", cfg.batch_clients, warmup, duration, None, 1000, move |c, n| {
                let (http, all, key, many, tag) = (http.clone(), all.clone(), key.clone(), many.clone(), tag.clone());
                async move {
                    let events: Vec<_> = (0..1000u64)
                        .map(|i| usage_body(&many[((n * 1000 + i) as usize) % many.len()], format!("{tag}-batch-{n}-{i}")))
                        .collect();
                    let base = &all[c % all.len()];
                    matches!(http.post(format!("{base}/v1/usage/batch")).bearer_auth(&key).json(&json!({"events": events})).send().await,
                        Ok(r) if r.status() == 200)
                }
            })
            .await,
        );
    }

    // 5. Authorize + capture pairs on one account.
    {
        let (http, all, key, one, tag) = (
            http.clone(),
            all.clone(),
            key.clone(),
            one.clone(),
            tag.clone(),
        );
        runs.push(
            drive(&format!("authorize+capture pairs, ONE account, {} clients", cfg.authcap_clients), cfg.authcap_clients, warmup, duration, None, 1, move |c, n| {
                let (http, all, key, one, tag) = (http.clone(), all.clone(), key.clone(), one.clone(), tag.clone());
                async move {
                    let base = &all[c % all.len()];
                    let a = http.post(format!("{base}/v1/authorizations")).bearer_auth(&key)
                        .json(&json!({"customer": one[0], "model": "claude-sonnet-4-5", "input_tokens": 1204, "max_output_tokens": 1024}))
                        .send().await;
                    let Ok(a) = a else { return false };
                    if a.status() != 201 {
                        return false;
                    }
                    let Ok(body) = a.json::<serde_json::Value>().await else { return false };
                    let Some(id) = body["id"].as_str() else { return false };
                    matches!(http.post(format!("{base}/v1/authorizations/{id}/capture")).bearer_auth(&key)
                        .json(&json!({"input_tokens": 1204, "output_tokens": 350, "request_id": format!("{tag}-cap-{n}")}))
                        .send().await, Ok(r) if r.status() == 200)
                }
            })
            .await,
        );
    }

    // 6. Scale-out: POST /v1/usage against the first 1, 2, … nodes (all of them is run 2).
    let mut scale = Vec::new();
    for k in 1..bases.len() {
        let some = Arc::new(bases[..k].to_vec());
        let run = single_events(
            &format!("POST /v1/usage, {k} of {} nodes", bases.len()),
            &http,
            &some,
            &key,
            &many,
            &format!("{tag}-scale{k}"),
            cfg.clients,
            (warmup, duration),
            None,
        )
        .await;
        scale.push(run.per_second());
        runs.push(run);
    }
    scale.push(peak);

    for r in &runs {
        println!("{}", r.report());
    }
    if cfg.usage_page_rows > 0 {
        usage_page(&core, &bases[0], cfg.usage_page_rows, &tag).await?;
    }
    if scale.len() > 1 {
        #[allow(clippy::float_arithmetic)]
        let figures: Vec<String> = scale
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{} node(s) {v:.0}/s ({:.2}x)", i + 1, v / scale[0]))
            .collect();
        println!("scale-out, POST /v1/usage: {}", figures.join(", "));
    }
    if let [core_run, usage_run, half_run, batch_run, pairs_run, ..] = runs.as_slice() {
        for line in goals(
            store.dialect(),
            [core_run, usage_run, half_run, batch_run, pairs_run],
            cfg.pgbench_tps,
        ) {
            println!("{line}");
        }
    }
    match servers {
        Servers::InProcess(running) => running
            .stop()
            .await
            .map_err(|e| Error::internal(e.to_string()))?,
        Servers::Nodes(nodes) => nodes.stop(),
    }
    let report = app::core::Core::new(store.clone(), Arc::new(SystemClock))
        .ledger
        .verify()
        .await?;
    print!("{}", report.render());
    store.close().await;
    Ok(report.is_clean())
}

/// A server inside this process on a free loopback port, with no rate limit and an hourly
/// sweep (as the nodes of `--nodes` run); `adjust` sets whatever else a scenario needs.
async fn start_in_process(
    store: &app::core::store::Store,
    adjust: impl FnOnce(&mut crate::Options),
) -> Result<crate::Running> {
    crate::start_on_loopback(store, |options| {
        options.api.rate_per_second = u32::MAX;
        options.sweep_every = Duration::from_secs(3600);
        adjust(options);
    })
    .await
    .map_err(|e| Error::Unavailable(e.to_string()))
}

/// POST /v1/usage, one event per request, each client on one of `bases` (client `c` on
/// `bases[c % len]`); paced at `rate` per second when given.
#[allow(clippy::too_many_arguments)]
async fn single_events(
    name: &str,
    http: &reqwest::Client,
    bases: &Arc<Vec<String>>,
    key: &str,
    many: &Arc<Vec<String>>,
    tag: &str,
    clients: usize,
    (warmup, duration): (Duration, Duration),
    rate: Option<f64>,
) -> Run {
    let (http, bases, key, many, tag) = (
        http.clone(),
        bases.clone(),
        key.to_string(),
        many.clone(),
        tag.to_string(),
    );
    drive(name, clients, warmup, duration, rate, 1, move |c, n| {
        let (http, bases, key, many, tag) = (
            http.clone(),
            bases.clone(),
            key.clone(),
            many.clone(),
            tag.clone(),
        );
        async move {
            let body = usage_body(&many[(c + n as usize) % many.len()], format!("{tag}-{n}"));
            let base = &bases[c % bases.len()];
            matches!(
                http.post(format!("{base}/v1/usage")).bearer_auth(&key).json(&body).send().await,
                Ok(r) if r.status() == 201
            )
        }
    })
    .await
}

/// The portal's usage page for a customer with `rows` events: the first page's query on the
/// server, and the whole page over HTTP with a signed-in session.
async fn usage_page(core: &Core, base: &str, rows: i64, tag: &str) -> Result<()> {
    let c = customers::create(
        core,
        Mode::Test,
        &NewCustomer {
            external_id: format!("{tag}-page"),
            ..NewCustomer::default()
        },
    )
    .await?;
    let started = Instant::now();
    core.store
        .insert_bench_usage(&c, rows, SystemClock.now())
        .await?;
    println!(
        "usage page: inserted {rows} events for one customer in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let filter = app::core::store::UsageFilter {
        mode: c.mode.to_string(),
        customer_id: Some(c.id.clone()),
        conversation: None,
        limit: 51,
        ..Default::default()
    };
    let mut query = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let page = core.store.list_usage(&filter).await?;
        query.push(t.elapsed().as_micros() as u32);
        if page.len() != 51 {
            return Err(Error::internal("the first page is short"));
        }
    }
    let (token, _) = customers::portal_link(core, Mode::Test, &c.id, 600).await?;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::internal(e.to_string()))?;
    browser
        .get(format!("{base}/portal/login?token={token}"))
        .send()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    let mut page = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let r = browser
            .get(format!("{base}/portal/usage"))
            .send()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        let body = r
            .text()
            .await
            .map_err(|e| Error::Unavailable(e.to_string()))?;
        page.push(t.elapsed().as_micros() as u32);
        if !body.contains("1,204") {
            return Err(Error::internal("the usage page did not show the events"));
        }
    }
    query.sort_unstable();
    page.sort_unstable();
    #[allow(clippy::float_arithmetic)]
    let ms =
        |v: &[u32], p: f64| f64::from(v[((v.len() as f64 - 1.0) * p).round() as usize]) / 1000.0;
    println!(
        "usage page, {rows} events: first-page query p50 {:.2} ms p99 {:.2} ms; whole page over HTTP p50 {:.2} ms p99 {:.2} ms",
        ms(&query, 0.5), ms(&query, 0.99), ms(&page, 0.5), ms(&page, 0.99)
    );
    Ok(())
}
