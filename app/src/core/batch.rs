//! Group commit: many writes share one database transaction, and each caller is answered
//! only after that transaction is committed, so durability is never weakened.
//!
//! The batcher knows nothing of what it writes: it is generic over [`Work`], a kind of job
//! that can run many of its jobs together in one transaction. A writer task takes whatever
//! jobs are queued (up to `MAX_BATCH`), runs them all with one [`Work::run_all`], commits
//! once, and answers every job. If `run_all` fails as a whole (a statement failed), the
//! transaction starts over and each job runs alone, with the same `run_all` on a slice of
//! one, in its own savepoint, so one bad job cannot take the others down with it. One
//! fsync then covers hundreds of jobs; no lock is held across a client round trip.

use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot};

use super::error::{Error, Result};
use super::meters::{Meters, COMMIT_JOBS, COMMIT_SECONDS};
use super::store::{Dialect, Store, Tx, POSTGRES_WRITERS};

/// Jobs per transaction at most.
pub const MAX_BATCH: usize = 512;

/// What every writer of this process has committed since it started: the benchmark
/// subtracts two readings to split a run's group commits into the work before the COMMIT
/// and the COMMIT itself (see docs/benchmarks.md). Four relaxed additions per commit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterTotals {
    pub commits: u64,
    pub jobs: u64,
    /// Wall time from BEGIN to the start of the COMMIT, summed over commits.
    pub before_commit: std::time::Duration,
    /// Wall time of the COMMITs (on SQLite: the WAL's writes and its fsync).
    pub commit: std::time::Duration,
}

impl WriterTotals {
    /// The totals now.
    pub fn read() -> WriterTotals {
        use std::sync::atomic::Ordering::Relaxed;
        WriterTotals {
            commits: TOTALS[0].load(Relaxed),
            jobs: TOTALS[1].load(Relaxed),
            before_commit: std::time::Duration::from_nanos(TOTALS[2].load(Relaxed)),
            commit: std::time::Duration::from_nanos(TOTALS[3].load(Relaxed)),
        }
    }

    /// What was committed between `earlier` and `self`.
    pub fn since(self, earlier: WriterTotals) -> WriterTotals {
        WriterTotals {
            commits: self.commits.saturating_sub(earlier.commits),
            jobs: self.jobs.saturating_sub(earlier.jobs),
            before_commit: self.before_commit.saturating_sub(earlier.before_commit),
            commit: self.commit.saturating_sub(earlier.commit),
        }
    }

    fn add(jobs: usize, before_commit: std::time::Duration, commit: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        TOTALS[0].fetch_add(1, Relaxed);
        TOTALS[1].fetch_add(jobs as u64, Relaxed);
        TOTALS[2].fetch_add(nanos(before_commit), Relaxed);
        TOTALS[3].fetch_add(nanos(commit), Relaxed);
    }
}

/// Commits, jobs, nanoseconds before the COMMIT, nanoseconds in it.
static TOTALS: [std::sync::atomic::AtomicU64; 4] =
    [const { std::sync::atomic::AtomicU64::new(0) }; 4];

/// A kind of job the group commit can run many of in one transaction.
pub trait Work: Send + Sync + Sized + 'static {
    type Output: Send + 'static;
    /// What every job is run with (a clock, say); cloned into each writer.
    type Context: Clone + Send + Sync + 'static;

    /// The writer this job goes to. Jobs with one key are run in order by one writer, so
    /// everything that locks one account must share a key (its customer id).
    fn key(&self) -> &str;

    /// Runs `jobs` inside `tx`; one result per job, in order. A job's own refusal is its
    /// `Err` and must leave nothing written; an `Err` of the whole means the transaction is
    /// unusable (it is rolled back and each job is run again alone, in a savepoint).
    fn run_all<'a>(
        context: &'a Self::Context,
        tx: &'a mut Tx,
        jobs: &'a [Self],
    ) -> BoxFuture<'a, Result<Vec<Result<Self::Output>>>>;
}

type Queued<W> = (W, oneshot::Sender<Result<<W as Work>::Output>>);

/// Handles to the writer tasks. Cheap to clone.
///
/// SQLite has one writer; PostgreSQL gets several, each with its own connection, and a
/// job goes to the writer its key hashes to, so one customer's writes stay in order and
/// two writers never wait on the same account row.
pub struct Batcher<W: Work> {
    queues: std::sync::Arc<[mpsc::Sender<Queued<W>>]>,
}

impl<W: Work> Clone for Batcher<W> {
    fn clone(&self) -> Self {
        Batcher {
            queues: self.queues.clone(),
        }
    }
}

impl<W: Work> std::fmt::Debug for Batcher<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("writers", &self.queues.len())
            .finish()
    }
}

impl<W: Work> Batcher<W> {
    /// Starts the writer tasks.
    ///
    /// SQLite's one writer runs on a thread of its own (a single-threaded runtime), not
    /// among the tasks of the shared runtime: the whole store waits on its chain of
    /// statements, and on the shared runtime each step of that chain (a statement's
    /// answer waking the writer) queued behind the HTTP tasks (docs/benchmarks.md, "The
    /// CPU budget"). PostgreSQL's writers are tasks on the current runtime, beside the
    /// connections' sockets.
    /// Each commit's size and duration are recorded into `meters`.
    pub fn start(store: Store, context: W::Context, meters: Meters) -> Batcher<W> {
        let queues = match store.dialect() {
            Dialect::Sqlite => {
                tokio::spawn(checkpointer(store.clone()));
                let (queue, jobs) = mpsc::channel::<Queued<W>>(MAX_BATCH * 8);
                on_own_thread(writer(store, context, meters, jobs));
                vec![queue]
            }
            Dialect::Postgres => (0..POSTGRES_WRITERS)
                .map(|_| {
                    let (queue, jobs) = mpsc::channel::<Queued<W>>(MAX_BATCH * 8);
                    tokio::spawn(writer(store.clone(), context.clone(), meters.clone(), jobs));
                    queue
                })
                .collect(),
        };
        Batcher {
            queues: queues.into(),
        }
    }

    /// Runs `job` in the next group transaction of its key's writer; returns its result
    /// once committed.
    pub async fn run(&self, job: W) -> Result<W::Output> {
        let (done, answer) = oneshot::channel();
        let index = self.writer_of(job.key());
        self.queues[index]
            .send((job, done))
            .await
            .map_err(|_| Error::Unavailable("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the writer dropped the job".into()))?
    }

    fn writer_of(&self, key: &str) -> usize {
        // FNV-1a: stable and cheap; only the spread matters.
        let hash = key.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
        });
        (hash % self.queues.len() as u64) as usize
    }
}

/// Runs `task` to its end on a new thread named `tally-writer` with a single-threaded
/// runtime of its own. Should the runtime or the thread fail to start, the task runs on
/// the current runtime instead: slower, never lost (the task is handed to the thread only
/// once it runs).
fn on_own_thread<F: std::future::Future<Output = ()> + Send + 'static>(task: F) {
    let (hand, take) = std::sync::mpsc::channel::<F>();
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|runtime| {
            std::thread::Builder::new()
                .name("tally-writer".into())
                .spawn(move || {
                    if let Ok(task) = take.recv() {
                        runtime.block_on(task);
                    }
                })
        });
    let task = match started {
        Ok(_) => match hand.send(task) {
            Ok(()) => return,
            Err(unsent) => unsent.0,
        },
        Err(e) => {
            tracing::warn!(error = %e, "the writer's own thread did not start");
            task
        }
    };
    tokio::spawn(task);
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

async fn writer<W: Work>(
    store: Store,
    context: W::Context,
    meters: Meters,
    mut queue: mpsc::Receiver<Queued<W>>,
) {
    let mut batch: Vec<Queued<W>> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (jobs, answers): (Vec<W>, Vec<_>) = batch.drain(..).unzip();
        let started = std::time::Instant::now();
        let outcome = run_batch(&store, &context, &jobs).await;
        if let Ok((_, commit)) = &outcome {
            let took = started.elapsed();
            WriterTotals::add(jobs.len(), took.saturating_sub(*commit), *commit);
            meters.with(|| {
                metrics::histogram!(COMMIT_JOBS).record(jobs.len() as f64);
                metrics::histogram!(COMMIT_SECONDS).record(took);
            });
        }
        // The whole transaction, and of it the COMMIT alone (on SQLite: the WAL's writes
        // and fsync), which is what the profile in docs/benchmarks.md splits.
        tracing::debug!(
            jobs = jobs.len(),
            micros = started.elapsed().as_micros() as u64,
            commit_micros = outcome.as_ref().map_or(0, |(_, c)| c.as_micros() as u64),
            ok = outcome.is_ok(),
            "group commit"
        );
        match outcome {
            Ok((results, _)) => {
                for (answer, result) in answers.into_iter().zip(results) {
                    let _ = answer.send(result);
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ =
                        answer.send(Err(Error::Unavailable(format!("group commit failed: {e}"))));
                }
            }
        }
    }
}

/// [`run_batch_once`], run again whole when the database aborted it for colliding with
/// another transaction (`error::retrying`).
async fn run_batch<W: Work>(
    store: &Store,
    context: &W::Context,
    jobs: &[W],
) -> Result<(Vec<Result<W::Output>>, std::time::Duration)> {
    crate::core::error::retrying(|| run_batch_once(store, context, jobs)).await
}

/// All jobs together; if that fails, each alone in a savepoint of a fresh transaction.
/// The results count only once the commit succeeded; returned with the commit's duration.
/// A transaction conflict is not the jobs' fault: it ends the attempt (nothing is kept).
async fn run_batch_once<W: Work>(
    store: &Store,
    context: &W::Context,
    jobs: &[W],
) -> Result<(Vec<Result<W::Output>>, std::time::Duration)> {
    let mut tx = store.begin().await?;
    let results = match W::run_all(context, &mut tx, jobs).await {
        Ok(results) if results.len() == jobs.len() => results,
        Ok(_) => return Err(Error::internal("a batch answered the wrong number of jobs")),
        Err(e @ Error::Contention(_)) => return Err(e),
        Err(e) => {
            tracing::warn!(error = %e, jobs = jobs.len(), "batch failed; running its jobs one at a time");
            tx.rollback().await?;
            tx = store.begin().await?;
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs.chunks(1) {
                tx.savepoint().await?;
                let result = match W::run_all(context, &mut tx, job).await {
                    Ok(mut one) if one.len() == 1 => one.remove(0),
                    Ok(_) => Err(Error::internal(
                        "a job answered the wrong number of results",
                    )),
                    Err(e @ Error::Contention(_)) => return Err(e),
                    Err(e) => Err(e),
                };
                if result.is_ok() {
                    tx.release_savepoint().await?;
                } else {
                    tx.rollback_to_savepoint().await?;
                }
                results.push(result);
            }
            results
        }
    };
    let committing = std::time::Instant::now();
    tx.commit().await?;
    Ok((results, committing.elapsed()))
}
