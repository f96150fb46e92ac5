//! Background work of `tally serve`: the webhook inbox worker, the sweep that expires
//! holds and grants, grants included credits, purges expired sessions and idempotency
//! answers, and scheduled reconciliation. Every node
//! works the inbox (each event is claimed by one of them); each periodic job runs on the
//! one node that leads it (`app::core::store::Leadership`: on PostgreSQL an advisory lock
//! per job).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::core::clock::{Clock, SystemClock};
use app::core::payments::{reconcile, webhooks};
use app::core::store::Job;
use app::core::Core;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::Options;

/// How often the inbox is polled; new events are also picked up at once when they arrive
/// (the endpoint and the worker share nothing else).
const INBOX_EVERY: Duration = Duration::from_millis(250);

/// The periodic jobs this node leads, as last confirmed (`tally_leader` in `/metrics`).
pub type Leading = Arc<Mutex<BTreeSet<Job>>>;

/// Starts the workers, each a task of its own so that one slow or hung call (Stripe,
/// a provider) delays only its own job: the inbox, and each periodic job on the node that
/// leads it. They finish their current pass and exit when `stop` turns true, giving up
/// the jobs they lead. The returned task ends when they all have; aborting it aborts them
/// (the bounded shutdown of [`crate::start`]).
pub fn spawn(
    core: Core,
    options: &Options,
    leading: Leading,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(every(
        INBOX_EVERY,
        stop.clone(),
        core.clone(),
        |core| async move { inbox(&core).await },
    ));
    let led = Led {
        core: core.clone(),
        leading: leading.clone(),
        stop: stop.clone(),
    };
    let idempotency_ttl = options.api.idempotency_ttl;
    tasks.spawn(
        led.clone()
            .run(Job::Sweep, options.sweep_every, move |core| async move {
                sweep(&core, idempotency_ttl).await
            }),
    );
    if let Some(every) = options.reconcile_every {
        tasks.spawn(led.clone().run(Job::Reconcile, every, |core| async move {
            stripe_reconciliation(&core).await
        }));
        // The providers' usage reports, daily, when an admin key is configured.
        let proxy = &options.proxy;
        if proxy.anthropic.admin_key.is_some() || proxy.openai.admin_key.is_some() {
            let config = Arc::new(proxy.clone());
            tasks.spawn(
                led.run(Job::ProviderReconcile, PROVIDER_CHECK_EVERY, move |core| {
                    let config = config.clone();
                    async move { provider_reconciliation(&core, &config).await }
                }),
            );
        }
    }
    tokio::spawn(async move { while tasks.join_next().await.is_some() {} })
}

/// Runs `pass` every `period` until `stop` turns true.
async fn every<F, Fut>(period: Duration, mut stop: watch::Receiver<bool>, core: Core, pass: F)
where
    F: Fn(Core) -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        pass(core.clone()).await;
    }
}

/// What a periodic job led by one node at a time needs.
#[derive(Clone)]
struct Led {
    core: Core,
    leading: Leading,
    stop: watch::Receiver<bool>,
}

impl Led {
    /// Every `period`, runs `pass` if this node leads `job` (a node that does not lead it
    /// asks again at the next period: a leader that died is replaced within one). Each job
    /// holds its leadership on a connection of its own.
    async fn run<F, Fut>(self, job: Job, period: Duration, pass: F)
    where
        F: Fn(Core) -> Fut,
        Fut: Future<Output = ()>,
    {
        let Led {
            core,
            leading,
            mut stop,
        } = self;
        let mut leadership = core.store.leadership();
        let mark = |leads: bool| {
            let mut set = leading.lock().unwrap_or_else(|e| e.into_inner());
            if leads {
                set.insert(job);
            } else {
                set.remove(&job);
            }
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            let leads = leadership.leads(job).await;
            mark(leads);
            if leads {
                pass(core.clone()).await;
            }
        }
        leadership.resign().await;
        mark(false);
    }
}

/// Reconciles with Stripe; findings and failures are logged.
async fn stripe_reconciliation(core: &Core) {
    match reconcile::run(core).await {
        Ok(r) if r.repaired > 0 || !r.unexplained.is_empty() => {
            tracing::warn!(
                repaired = r.repaired,
                unexplained = r.unexplained.len(),
                "reconciliation found work"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "reconciliation failed"),
    }
}

/// How often the worker asks whether a provider reconciliation is due (one a day is).
const PROVIDER_CHECK_EVERY: Duration = Duration::from_secs(3600);

/// Reconciles yesterday and today with the providers' usage reports when the last run is
/// more than a day old.
async fn provider_reconciliation(core: &Core, config: &crate::proxy::ProxyConfig) {
    let now = core.clock.now();
    match app::core::proxy::reconcile::due(core).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "provider reconciliation: cannot read the last run");
            return;
        }
    }
    let today = now.day_start();
    for (provider, result) in crate::proxy::reconcile::run(
        core,
        config,
        today.plus_seconds(-86_400),
        today.plus_seconds(86_400),
    )
    .await
    {
        match result {
            Ok(rows) => tracing::info!(
                provider = provider.as_str(),
                model_days = rows.len(),
                "provider reconciliation"
            ),
            Err(e) => {
                tracing::warn!(provider = provider.as_str(), error = %e, "provider reconciliation failed")
            }
        }
    }
}

/// Applies due webhook events.
pub async fn inbox(core: &Core) {
    match webhooks::process_due(core).await {
        Ok((0, 0)) => {}
        Ok((ok, failed)) => tracing::info!(processed = ok, failed, "webhook inbox"),
        Err(e) => tracing::warn!(error = %e, "webhook inbox pass failed"),
    }
}

/// One pass; errors are logged and the next pass tries again.
pub async fn sweep(core: &Core, idempotency_ttl: Duration) {
    match core.ledger.expire_holds().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(expired = n, "expired overdue holds"),
        Err(e) => tracing::warn!(error = %e, "hold expiry sweep failed"),
    }
    match app::core::customers::grant_all_included_credits(core).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(customers = n, "granted included credits"),
        Err(e) => tracing::warn!(error = %e, "included credits sweep failed"),
    }
    match app::core::payments::auto::sweep(core).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(started = n, "auto top-ups started by the sweep"),
        Err(e) => tracing::warn!(error = %e, "auto top-up sweep failed"),
    }
    match core.ledger.expire_grants().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(accounts = n, "expired grants"),
        Err(e) => tracing::warn!(error = %e, "grant expiry sweep failed"),
    }
    // Browser sessions expire by the wall clock (tower-sessions sets their expiry), not
    // the core's clock; a session past it is refused at load and deleted here.
    match core.store.delete_expired_sessions(SystemClock.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "purged expired sessions"),
        Err(e) => tracing::warn!(error = %e, "session purge failed"),
    }
    let now = core.clock.now();
    match app::core::idempotency::purge_expired(&core.store, now, idempotency_ttl).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(answers = n, "purged expired idempotency answers"),
        Err(e) => tracing::warn!(error = %e, "idempotency purge failed"),
    }
}
