//! Background work of `tally serve`: the webhook inbox worker, the sweep that expires
//! holds and grants, grants included credits and purges expired sessions, and scheduled reconciliation. Every node
//! works the inbox (each event is claimed by one of them); each periodic job runs on the
//! one node that leads it (`app::core::store::Leadership`: on PostgreSQL an advisory lock
//! per job).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::core::clock::{Clock, SystemClock};
use app::core::payments::{reconcile, webhooks};
use app::core::store::Job;
use app::core::Core;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Options;

/// How often the inbox is polled; new events are also picked up at once when they arrive
/// (the endpoint and the worker share nothing else).
const INBOX_EVERY: Duration = Duration::from_millis(250);

/// The periodic jobs this node leads, as last confirmed (`tally_leader` in `/metrics`).
pub type Leading = Arc<Mutex<BTreeSet<Job>>>;

/// Starts the workers; they finish their current pass and exit when `stop` turns true,
/// giving up the jobs they lead.
pub fn spawn(
    core: Core,
    options: &Options,
    leading: Leading,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let sweep_every = options.sweep_every;
    let reconcile_every = options.reconcile_every;
    // The providers' usage reports, daily, when the server runs its scheduled jobs and an
    // admin key is configured.
    let provider_check = (reconcile_every.is_some()
        && (options.proxy.anthropic.admin_key.is_some()
            || options.proxy.openai.admin_key.is_some()))
    .then(|| options.proxy.clone());
    tokio::spawn(async move {
        let mut leadership = core.store.leadership();
        let mut last_sweep = Instant::now();
        let mut last_reconcile = Instant::now();
        let mut last_provider_check: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(INBOX_EVERY) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            inbox(&core).await;
            // A node that does not lead a job asks again at the job's next period: a
            // leader that died is replaced within one period.
            if last_sweep.elapsed() >= sweep_every {
                if leadership.leads(Job::Sweep).await {
                    sweep(&core).await;
                }
                last_sweep = Instant::now();
            }
            if reconcile_every.is_some_and(|every| last_reconcile.elapsed() >= every) {
                if leadership.leads(Job::Reconcile).await {
                    stripe_reconciliation(&core).await;
                }
                last_reconcile = Instant::now();
            }
            if let Some(config) = &provider_check {
                if last_provider_check.is_none_or(|t| t.elapsed() >= PROVIDER_CHECK_EVERY) {
                    if leadership.leads(Job::ProviderReconcile).await {
                        provider_reconciliation(&core, config).await;
                    }
                    last_provider_check = Some(Instant::now());
                }
            }
            *leading.lock().unwrap_or_else(|e| e.into_inner()) = leadership.held().collect();
        }
        leadership.resign().await;
        leading.lock().unwrap_or_else(|e| e.into_inner()).clear();
    })
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
pub async fn sweep(core: &Core) {
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
}
