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
use super::ledger::Mode;
use super::metering::bulk::{self, UsageDone, UsageJob};
use super::metering::UsageInput;
use super::store::{Store, Tx};
use super::Core;

/// Jobs per transaction at most.
pub const MAX_BATCH: usize = 512;

/// Called once the group transaction has committed (`Ok`) or failed (`Err`).
pub(crate) type Completion = Box<dyn FnOnce(std::result::Result<(), String>) + Send>;
type Work = Box<dyn for<'a> FnOnce(&'a mut Tx) -> BoxFuture<'a, (bool, Completion)> + Send>;

/// What a writer runs: any work in its own savepoint, or a usage event, which the writer
/// records together with the batch's other usage events in a few set-based statements.
enum Job {
    Work(Work),
    Usage(Box<UsageJob>),
}

/// Handles to the writer tasks. Cheap to clone.
///
/// SQLite has one writer; PostgreSQL gets several, each with its own connection, and a
/// job goes to the writer its key (the customer) hashes to, so one customer's writes stay
/// in order and two writers never wait on the same account row.
#[derive(Clone, Debug)]
pub struct Batcher {
    queues: Vec<mpsc::Sender<Job>>,
}

/// Writers on PostgreSQL. Fewer writers make bigger batches, so fewer statements per
/// event: on 2 cores, where PostgreSQL's per-statement CPU is the limit, 2 writers recorded
/// single events fastest and 4 batches of 1,000 (8 was slower at both; see
/// docs/benchmarks.md). Each writer has its own connection in the writer pool.
pub const POSTGRES_WRITERS: usize = 4;

impl Batcher {
    /// Starts the writer tasks on the current tokio runtime.
    pub fn start(store: Store) -> Batcher {
        let writers = match store.dialect() {
            super::store::Dialect::Sqlite => {
                tokio::spawn(checkpointer(store.clone()));
                1
            }
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
        self.submit(self.writer_of(key), work).await
    }

    /// The writer for a key. Every write of one customer must use the same key (its
    /// customer id), so that one customer's account is only ever locked by one writer.
    fn writer_of(&self, key: &str) -> usize {
        // FNV-1a: stable and cheap; only the spread matters.
        let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        (hash % self.queues.len() as u64) as usize
    }

    /// Records a usage event in the next group transaction of its customer's writer;
    /// returns once committed.
    pub(crate) async fn record_usage(
        &self,
        core: Core,
        mode: Mode,
        input: UsageInput,
    ) -> Result<UsageDone> {
        let (done, answer) = oneshot::channel::<Result<UsageDone>>();
        let index = self.writer_of(&input.customer);
        self.queues[index]
            .send(Job::Usage(Box::new(UsageJob {
                core,
                mode,
                input,
                done,
            })))
            .await
            .map_err(|_| Error::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the writer dropped the job".into()))?
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
        let job: Work = Box::new(move |tx: &mut Tx| {
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
            .send(Job::Work(job))
            .await
            .map_err(|_| Error::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the writer dropped the job".into()))?
    }
}

/// SQLite: checkpoints the WAL every 100 ms beside the writer, so the writer's commits
/// never pay for it (see `Store::checkpoint`). Ends when the store is closed.
async fn checkpointer(store: Store) {
    let mut every = tokio::time::interval(std::time::Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if store.is_closed() {
            return;
        }
        if let Err(e) = store.checkpoint().await {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
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
    let jobs = batch.len();
    let mut usage = Vec::new();
    let mut work = Vec::new();
    for job in batch.drain(..) {
        match job {
            Job::Usage(u) => usage.push(*u),
            Job::Work(w) => work.push(w),
        }
    }
    // Where a batch's time goes, for `RUST_LOG=app::core::batch=debug`.
    let started = std::time::Instant::now();
    let micros = || started.elapsed().as_micros() as u64;
    let tx = match store.begin().await {
        Ok(tx) => tx,
        Err(e) => {
            // Nobody ran; every job gets the error through its completion.
            completions.extend(usage.into_iter().map(UsageJob::unrun));
            return Err(e);
        }
    };
    // Usage events first, together; then every other job in its own savepoint. Jobs of
    // one batch are all answered after the same commit, so none of them could have seen
    // another's answer: any order among them is one a client could have observed.
    let begun = micros();
    let mut tx = bulk::record_all(store, tx, usage, completions).await?;
    let usage_done = micros();
    let mut broken = None;
    for job in work {
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
    let work_done = micros();
    let committed = tx.commit().await;
    tracing::debug!(
        jobs,
        begin = begun,
        usage = usage_done - begun,
        work = work_done - usage_done,
        commit = micros() - work_done,
        "group commit (phases in µs)"
    );
    committed
}
