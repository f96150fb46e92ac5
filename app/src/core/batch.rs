//! Group commit: many writes share one database transaction, and each caller is answered
//! only after that transaction is committed, so durability is never weakened.
//!
//! A single writer task takes whatever jobs are queued (up to `MAX_BATCH`), runs each inside
//! a savepoint of one transaction (a failing job rolls back alone), commits once, and then
//! answers every job: with its own result if the commit succeeded, with an error if it did
//! not. One fsync then covers hundreds of events; no lock is held across a client round trip.

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::error::{Error, Result};
use super::store::{Store, Tx};

/// Jobs per transaction at most.
pub const MAX_BATCH: usize = 512;

type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
type Job = Box<dyn for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, (bool, Completion)> + Send>;

/// Handles to the writer tasks. Cheap to clone.
///
/// SQLite has one writer; PostgreSQL gets several, each with its own connection, and a
/// job goes to the writer its key (the customer) hashes to, so one customer's writes stay
/// in order and two writers never wait on the same account row.
#[derive(Clone, Debug)]
pub struct Batcher {
    queues: Vec<mpsc::Sender<Job>>,
}

/// Writers on PostgreSQL.
pub const POSTGRES_WRITERS: usize = 8;

impl Batcher {
    /// Starts the writer tasks on the current tokio runtime.
    pub fn start(store: Store) -> Batcher {
        let writers = match store.dialect() {
            super::store::Dialect::Sqlite => 1,
            super::store::Dialect::Postgres => POSTGRES_WRITERS,
        };
        let queues = (0..writers)
            .map(|_| {
                let (queue, jobs) = mpsc::channel::<Job>(MAX_BATCH * 8);
                tokio::spawn(writer(store.clone(), jobs));
                queue
            })
            .collect();
        Batcher { queues }
    }

    /// Runs `work` inside the next group transaction of the writer for `key`; returns its
    /// result once committed.
    pub async fn run_keyed<T, F>(&self, key: &str, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        // FNV-1a: stable and cheap; only the spread matters.
        let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        let index = (hash % self.queues.len() as u64) as usize;
        self.submit(index, work).await
    }

    /// Runs `work` inside the next group transaction; returns its result once committed.
    pub async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        self.submit(0, work).await
    }

    async fn submit<T, F>(&self, index: usize, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        let (done, answer) = oneshot::channel::<Result<T>>();
        let job: Job = Box::new(move |tx: &mut Tx| {
            Box::pin(async move {
                let result = work(tx).await;
                let ok = result.is_ok();
                let completion: Completion = Box::new(move |committed| {
                    let _ = done.send(match committed {
                        Ok(()) => result,
                        Err(e) => Err(Error::Unavailable(format!("group commit failed: {e}"))),
                    });
                });
                (ok, completion)
            })
        });
        self.queues[index]
            .send(job)
            .await
            .map_err(|_| Error::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the writer dropped the job".into()))?
    }
}

async fn writer(store: Store, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut completions: Vec<Completion> = Vec::with_capacity(batch.len());
        let outcome = run_batch(&store, &mut batch, &mut completions).await;
        let shared = outcome.map_err(|e| e.to_string());
        for c in completions {
            c(shared.clone());
        }
        batch.clear();
    }
}

async fn run_batch(
    store: &Store,
    batch: &mut Vec<Job>,
    completions: &mut Vec<Completion>,
) -> Result<()> {
    let mut tx = match store.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            // Nobody ran; every job gets the error through an empty run.
            for _ in batch.drain(..) {}
            return Err(e);
        }
    };
    let mut broken = None;
    for job in batch.drain(..) {
        if broken.is_some() {
            // The transaction is unusable; the remaining jobs fail with it.
            continue;
        }
        if let Err(e) = tx.savepoint().await {
            broken = Some(e);
            continue;
        }
        let (ok, completion) = job(&mut tx).await;
        completions.push(completion);
        let step = if ok {
            tx.release_savepoint().await
        } else {
            tx.rollback_to_savepoint().await
        };
        if let Err(e) = step {
            broken = Some(e);
        }
    }
    if let Some(e) = broken {
        let _ = tx.rollback().await;
        return Err(e);
    }
    tx.commit().await
}
