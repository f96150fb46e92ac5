//! The benchmark's own profile of a measured window: what the group commits did
//! (`app::core::batch::WriterTotals`) and how much CPU each kind of thread of this process
//! used meanwhile, from `/proc/self/task` (Linux; CPU times in ticks of 10 ms, so a window
//! of a few seconds is good to about 1 %).
//!
//! What it answers (docs/benchmarks.md, "The writer's time"): of a group commit's wall
//! time, how long was SQLite's worker thread on a core, and so how long did it wait for
//! the async side — the hand-off of each statement and row, their conversion, the
//! writer's planning — which a synchronous writer thread would not wait for. Group commits
//! are seen only in this process; with `--nodes` only the no-HTTP scenario has them.
//!
//! And the CPU budget (docs/benchmarks.md, "The CPU budget"): how many microseconds of CPU
//! one event cost the whole machine (`/proc/stat`), split into this process (the load
//! generator, and the server when it runs here), the `tally serve` nodes of `--nodes`
//! (their `/proc/<pid>/task`) and everything else (PostgreSQL's processes, the kernel's
//! own threads). A goal of N events per second on 2 cores allows at most 2 s / N of CPU
//! per event, whatever the design.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use app::core::batch::WriterTotals;
use app::core::error::Result;

/// Linux reports thread CPU times in USER_HZ ticks, 100 per second on every mainstream
/// architecture.
fn ticks(n: u64) -> Duration {
    Duration::from_millis(10 * n)
}

/// The `tally serve` nodes whose threads are counted as the servers' (set while `--nodes`
/// runs them).
static NODES: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Counts these processes' threads as the servers' in every snapshot from now on (none:
/// stop counting them).
pub fn count_nodes(pids: Vec<u32>) {
    *NODES.lock().unwrap_or_else(|e| e.into_inner()) = pids;
}

/// sqlx names its SQLite threads `sqlx-sqlite-worker-N`; the kernel keeps 15 bytes.
const SQLITE_THREAD: &str = "sqlx-sqlite-wor";
/// Tokio's worker threads.
const TOKIO_THREAD: &str = "tokio-rt-worker";
/// The thread SQLite's group-commit writer task runs on (`core::batch`).
const WRITER_TASK_THREAD: &str = "tally-writer";

#[derive(Clone, Debug, Default)]
struct Thread {
    name: String,
    cpu_ticks: u64,
    /// Of `cpu_ticks`, those in the kernel (system time).
    kernel_ticks: u64,
    switches: u64,
}

/// The writers' totals and every thread's counters at one instant.
#[derive(Clone, Debug)]
pub struct Snapshot {
    at: Instant,
    writer: WriterTotals,
    threads: HashMap<u32, Thread>,
    /// The threads of the `tally serve` nodes being counted.
    nodes: HashMap<u32, Thread>,
    /// Ticks every CPU of the machine spent busy (not idle, not waiting for I/O).
    machine_ticks: u64,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let pids = NODES.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Snapshot {
            at: Instant::now(),
            writer: WriterTotals::read(),
            threads: threads("/proc/self/task"),
            nodes: pids
                .iter()
                .flat_map(|pid| threads(&format!("/proc/{pid}/task")))
                .collect(),
            machine_ticks: machine_busy_ticks(),
        }
    }

    /// What happened between `self` and `later`.
    pub fn until(&self, later: &Snapshot) -> Window {
        let this = Split::between(&self.threads, &later.threads);
        let nodes = Split::between(&self.nodes, &later.nodes);
        Window {
            elapsed: later.at.saturating_duration_since(self.at),
            writer: later.writer.since(self.writer),
            this: Cpu::of(&this),
            writer_kernel: ticks(this.writer.kernel_ticks),
            writer_switches: this.writer.switches,
            nodes: (!later.nodes.is_empty()).then(|| Cpu::of(&nodes)),
            machine: ticks(later.machine_ticks.saturating_sub(self.machine_ticks)),
        }
    }
}

/// One process's (or a set of processes') threads between two snapshots, by kind.
#[derive(Default)]
struct Split {
    /// The busiest SQLite thread: the single writer's connection on SQLite.
    writer: Thread,
    other_sqlite: u64,
    /// The writer task's own thread (planning, and sqlx's async side of each statement).
    writer_task: u64,
    tokio: u64,
    other: u64,
}

impl Split {
    fn between(before: &HashMap<u32, Thread>, after: &HashMap<u32, Thread>) -> Split {
        let mut split = Split::default();
        for (tid, now) in after {
            let before = before.get(tid);
            let delta = Thread {
                name: now.name.clone(),
                cpu_ticks: now
                    .cpu_ticks
                    .saturating_sub(before.map_or(0, |b| b.cpu_ticks)),
                kernel_ticks: now
                    .kernel_ticks
                    .saturating_sub(before.map_or(0, |b| b.kernel_ticks)),
                switches: now
                    .switches
                    .saturating_sub(before.map_or(0, |b| b.switches)),
            };
            if delta.name.starts_with(SQLITE_THREAD) {
                if delta.cpu_ticks > split.writer.cpu_ticks {
                    split.other_sqlite += split.writer.cpu_ticks;
                    split.writer = delta;
                } else {
                    split.other_sqlite += delta.cpu_ticks;
                }
            } else if delta.name.starts_with(WRITER_TASK_THREAD) {
                split.writer_task += delta.cpu_ticks;
            } else if delta.name.starts_with(TOKIO_THREAD) {
                split.tokio += delta.cpu_ticks;
            } else {
                split.other += delta.cpu_ticks;
            }
        }
        split
    }
}

/// CPU used by a set of threads in a window, by kind.
#[derive(Clone, Copy, Debug)]
struct Cpu {
    /// The busiest SQLite thread: the single writer's connection on SQLite.
    sqlite_writer: Duration,
    other_sqlite: Duration,
    /// SQLite's writer task on its own thread (`tally-writer`).
    writer_task: Duration,
    tokio: Duration,
    other: Duration,
}

impl Cpu {
    fn of(split: &Split) -> Cpu {
        Cpu {
            sqlite_writer: ticks(split.writer.cpu_ticks),
            other_sqlite: ticks(split.other_sqlite),
            writer_task: ticks(split.writer_task),
            tokio: ticks(split.tokio),
            other: ticks(split.other),
        }
    }

    fn total(&self) -> Duration {
        self.sqlite_writer + self.other_sqlite + self.writer_task + self.tokio + self.other
    }

    /// "total = SQLite writer a + … + other e" in microseconds per event.
    fn per_event(&self, events: u64) -> String {
        let us = |d: Duration| d.as_micros() / u128::from(events.max(1));
        format!(
            "{} = SQLite writer {} + other SQLite {} + writer task {} + tokio {} + other {}",
            us(self.total()),
            us(self.sqlite_writer),
            us(self.other_sqlite),
            us(self.writer_task),
            us(self.tokio),
            us(self.other),
        )
    }
}

/// A measured window's profile.
#[derive(Clone, Debug)]
pub struct Window {
    elapsed: Duration,
    writer: WriterTotals,
    /// This process's threads by kind.
    this: Cpu,
    /// Of the busiest SQLite thread's CPU (the single writer's connection on SQLite), the
    /// time in the kernel (reads and writes of pages, fsync's CPU, futex wake-ups).
    writer_kernel: Duration,
    writer_switches: u64,
    /// The `tally serve` nodes' threads, when `--nodes` runs them.
    nodes: Option<Cpu>,
    /// Busy time summed over every CPU of the machine.
    machine: Duration,
}

impl Window {
    /// The CPU budget line: what one of `events` cost the machine, and where. At a goal of
    /// N events/s, 2 cores allow 2 s / N per event (200 us at 10,000/s).
    pub fn cpu_per_event(&self, events: u64) -> String {
        let us = |d: Duration| d.as_micros() / u128::from(events.max(1));
        let this = &self.this;
        let nodes = self.nodes.map_or(Duration::ZERO, |n| n.total());
        let rest = self.machine.saturating_sub(this.total() + nodes);
        let mut line = format!(
            "    CPU per event: machine {} us; this process {}",
            us(self.machine),
            this.per_event(events)
        );
        if let Some(n) = &self.nodes {
            line.push_str(&format!("; the nodes {}", n.per_event(events)));
        }
        line.push_str(&format!(
            "; everything else {} (PostgreSQL, the kernel's threads)",
            us(rest)
        ));
        line
    }

    /// Two indented lines for the report, or none when this process committed nothing.
    #[allow(clippy::float_arithmetic)]
    pub fn lines(&self) -> Vec<String> {
        let w = &self.writer;
        if w.commits == 0 {
            return Vec::new();
        }
        let n = w.commits as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n;
        let wall = w.before_commit + w.commit;
        let share = |part: Duration, whole: Duration| {
            100.0 * part.as_secs_f64() / whole.as_secs_f64().max(f64::MIN_POSITIVE)
        };
        let core = |d: Duration| share(d, self.elapsed);
        let first = format!(
            "    group commits: {} of {:.1} jobs, {:.2} ms each = {:.2} before COMMIT + {:.2} COMMIT ({:.0} %); writers busy {:.0} % of the window (summed over writers)",
            w.commits,
            w.jobs as f64 / n,
            ms(wall),
            ms(w.before_commit),
            ms(w.commit),
            share(w.commit, wall),
            core(wall),
        );
        if self.this.sqlite_writer.is_zero() && self.this.other_sqlite.is_zero() {
            // PostgreSQL: the statements run in its own processes, which are not ours.
            return vec![
                first,
                format!(
                    "    CPU in % of one core: tokio workers {:.0}, other threads {:.0} (PostgreSQL's processes not counted)",
                    core(self.this.tokio),
                    core(self.this.other),
                ),
            ];
        }
        vec![
            first,
            format!(
                "    per commit the writer's SQLite thread ran {:.2} ms on a core ({:.0} % of the commit's wall time; {:.0} % of it in the kernel) and switched {:.0} times, the writer task {:.2} ms; CPU in % of one core: writer's SQLite thread {:.0}, other SQLite threads {:.0}, writer task {:.0}, tokio workers {:.0}, other threads {:.0}",
                ms(self.this.sqlite_writer),
                share(self.this.sqlite_writer, wall),
                share(self.writer_kernel, self.this.sqlite_writer),
                self.writer_switches as f64 / n,
                ms(self.this.writer_task),
                core(self.this.sqlite_writer),
                core(self.this.other_sqlite),
                core(self.this.writer_task),
                core(self.this.tokio),
                core(self.this.other),
            ),
        ]
    }
}

/// Ticks all CPUs spent busy since boot, from the first line of `/proc/stat`: user, nice,
/// system, irq and softirq (not idle, iowait or time stolen by the hypervisor).
fn machine_busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(cpu) = stat.lines().next() else {
        return 0;
    };
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    [0, 1, 2, 5, 6]
        .iter()
        .map(|&i| fields.get(i).copied().unwrap_or(0))
        .sum()
}

/// Every thread under a `/proc/…/task` directory with its CPU ticks (user + system) and
/// context switches.
fn threads(task_dir: &str) -> HashMap<u32, Thread> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir(task_dir) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let (Ok(stat), Ok(status)) = (
            std::fs::read_to_string(path.join("stat")),
            std::fs::read_to_string(path.join("status")),
        ) else {
            continue;
        };
        // "tid (name) state ppid …": the name may hold spaces, so split after its ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
        let tick = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let switches = status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum();
        out.insert(
            tid,
            Thread {
                name,
                cpu_ticks: tick(11) + tick(12),
                kernel_ticks: tick(12),
                switches,
            },
        );
    }
    out
}

/// The cost of one statement's round trip on the write connection, with nothing else
/// running: `SAVEPOINT` and `RELEASE` inside one transaction, which do no I/O, so what is
/// measured is the trip itself (on SQLite the hand-off to sqlx's worker thread and back;
/// on PostgreSQL the network round trip and the backend's parse). Mean per statement.
pub async fn statement_round_trip(store: &app::core::store::Store, pairs: u32) -> Result<Duration> {
    let mut tx = store.begin().await?;
    let started = Instant::now();
    for _ in 0..pairs {
        tx.savepoint().await?;
        tx.release_savepoint().await?;
    }
    let elapsed = started.elapsed();
    tx.commit().await?;
    Ok(elapsed / (2 * pairs.max(1)))
}
