//! Background work of `tally serve`: the sweep that expires overdue holds and grants.

use std::time::Duration;

use app::core::Core;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Starts the sweeper; it finishes its current pass and exits when `stop` turns true.
pub fn spawn(core: Core, every: Duration, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            sweep(&core).await;
        }
    })
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
    match core.ledger.expire_grants().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(accounts = n, "expired grants"),
        Err(e) => tracing::warn!(error = %e, "grant expiry sweep failed"),
    }
}
