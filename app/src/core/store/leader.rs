//! Which node runs the periodic jobs. On PostgreSQL several `tally serve` nodes share one
//! database, and each job (the sweep, Stripe reconciliation, the providers' reconciliation)
//! should run on one of them at a time, not on every node: the node that holds the job's
//! session-level advisory lock leads it. The lock lives as long as the connection that took
//! it, so a node that dies (or loses its connection) gives its jobs up without doing
//! anything, and another node takes each one at its next attempt.
//!
//! Leading is for economy, not for correctness: every periodic job is safe to run twice at
//! once (each change it makes is its own transaction under a unique reference or a
//! conditional update), so the short overlap while a lost connection goes unnoticed costs
//! work, never money. On SQLite one server owns the file, and it always leads.

use std::collections::BTreeSet;

use sqlx::AnyConnection;

use super::{Dialect, Store};

/// A periodic job that one node at a time runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    /// Hold and grant expiry, included credits, the auto top-up sweep.
    Sweep,
    /// Stripe reconciliation.
    Reconcile,
    /// The providers' usage reports against the proxy's records.
    ProviderReconcile,
}

impl Job {
    pub const ALL: [Job; 3] = [Job::Sweep, Job::Reconcile, Job::ProviderReconcile];

    pub fn name(self) -> &'static str {
        match self {
            Job::Sweep => "sweep",
            Job::Reconcile => "reconcile",
            Job::ProviderReconcile => "provider_reconcile",
        }
    }

    /// The advisory lock's key: "tally" in ASCII, then the job's number, so that other
    /// applications' locks on the same server are unlikely to collide with ours.
    fn key(self) -> i64 {
        let n = match self {
            Job::Sweep => 1,
            Job::Reconcile => 2,
            Job::ProviderReconcile => 3,
        };
        0x7461_6c6c_7900 + n
    }
}

/// This node's leadership of the periodic jobs: one connection of its own holding the
/// locks of the jobs it leads.
pub struct Leadership {
    store: Store,
    connection: Option<AnyConnection>,
    held: BTreeSet<Job>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership")
            .field("held", &self.held)
            .finish()
    }
}

impl Store {
    /// This node's leadership, leading nothing yet.
    pub fn leadership(&self) -> Leadership {
        Leadership {
            store: self.clone(),
            connection: None,
            held: BTreeSet::new(),
        }
    }
}

impl Leadership {
    /// Whether this node leads `job` now, taking it when no node does. A job already led is
    /// confirmed by a round trip on the locks' connection; an error there means the locks
    /// are gone with it, so every job is given up and sought again at the next call.
    pub async fn leads(&mut self, job: Job) -> bool {
        if self.store.dialect == Dialect::Sqlite {
            self.held.insert(job);
            return true;
        }
        match self.try_lead(job).await {
            Ok(leads) => leads,
            Err(e) => {
                tracing::warn!(job = job.name(), error = %e, "leadership lost with its connection");
                self.connection = None;
                self.held.clear();
                false
            }
        }
    }

    /// The jobs this node leads, as last confirmed.
    pub fn held(&self) -> impl Iterator<Item = Job> + '_ {
        self.held.iter().copied()
    }

    /// Gives every job up at once (at shutdown), so that another node need not wait for
    /// this connection to time out.
    pub async fn resign(&mut self) {
        if let Some(connection) = self.connection.take() {
            use sqlx::Connection;
            let _ = connection.close().await;
        }
        self.held.clear();
    }

    async fn try_lead(&mut self, job: Job) -> sqlx::Result<bool> {
        let connection = match &mut self.connection {
            Some(c) => c,
            None => {
                // A connection of the pool's, detached: the pool opens a replacement, and
                // this one lives as long as the leadership.
                let c = self.store.writer.acquire().await?.detach();
                self.connection.insert(c)
            }
        };
        if self.held.contains(&job) {
            sqlx::query("SELECT 1").execute(&mut *connection).await?;
            return Ok(true);
        }
        let took: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(job.key())
            .fetch_one(&mut *connection)
            .await?;
        if took {
            self.held.insert(job);
        }
        Ok(took)
    }
}
