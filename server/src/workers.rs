//! Background work of `tally serve`: the webhook inbox worker, the sweep that expires
//! holds and grants and grants included credits, and scheduled reconciliation.

use std::time::{Duration, Instant};

use app::core::payments::{reconcile, webhooks};
use app::core::Core;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Options;

/// How often the inbox is polled; new events are also picked up at once when they arrive
/// (the endpoint and the worker share nothing else).
const INBOX_EVERY: Duration = Duration::from_millis(250);

/// Starts the workers; they finish their current pass and exit when `stop` turns true.
pub fn spawn(core: Core, options: &Options, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let sweep_every = options.sweep_every;
    let reconcile_every = options.reconcile_every;
    // The providers' usage reports, daily, when the server runs its scheduled jobs and an
    // admin key is configured.
    let provider_check = (reconcile_every.is_some()
        && (options.proxy.anthropic.admin_key.is_some()
            || options.proxy.openai.admin_key.is_some()))
    .then(|| options.proxy.clone());
    tokio::spawn(async move {
        let mut last_sweep = Instant::now();
        let mut last_reconcile = Instant::now();
        let mut last_provider_check: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(INBOX_EVERY) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            inbox(&core).await;
            if last_sweep.elapsed() >= sweep_every {
                sweep(&core).await;
                last_sweep = Instant::now();
            }
            if reconcile_every.is_some_and(|every| last_reconcile.elapsed() >= every) {
                match reconcile::run(&core).await {
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
                last_reconcile = Instant::now();
            }
            if let Some(config) = &provider_check {
                if last_provider_check.is_none_or(|t| t.elapsed() >= PROVIDER_CHECK_EVERY) {
                    provider_reconciliation(&core, config).await;
                    last_provider_check = Some(Instant::now());
                }
            }
        }
    })
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
}
