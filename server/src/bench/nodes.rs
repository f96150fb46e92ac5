//! `tally bench --nodes N`: the HTTP scenarios served by N `tally serve` child processes on
//! the bench's own database, so that the load generator runs outside the servers' process
//! and several nodes share one PostgreSQL (the scale-out figure).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use app::core::error::{Error, Result};

/// Running `tally serve` processes and their base URLs; killed when dropped.
pub(super) struct Nodes {
    children: Vec<Child>,
    pub bases: Vec<String>,
}

impl Nodes {
    /// Starts `n` nodes of this same binary on free loopback ports and waits until each
    /// answers `/readyz`. They run with no per-key rate limit and an hourly sweep, like the
    /// in-process server of the benchmark.
    pub async fn spawn(database_url: &str, n: usize) -> Result<Nodes> {
        let exe = std::env::current_exe().map_err(|e| Error::internal(e.to_string()))?;
        let mut nodes = Nodes {
            children: Vec::with_capacity(n),
            bases: Vec::with_capacity(n),
        };
        for _ in 0..n {
            // A port the kernel just handed out and we released: free unless another
            // process takes it in the instant between, which the readiness wait reports.
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| Error::Unavailable(e.to_string()))?;
            let child = Command::new(&exe)
                .arg("--database-url")
                .arg(database_url)
                .arg("serve")
                .env("TALLY_ADDR", addr.to_string())
                .env("TALLY_API_RATE_PER_SECOND", u32::MAX.to_string())
                .env("TALLY_SWEEP_SECONDS", "3600")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .map_err(|e| Error::Unavailable(format!("cannot start a node: {e}")))?;
            nodes.children.push(child);
            nodes.bases.push(format!("http://{addr}"));
        }
        super::profile::count_nodes(nodes.children.iter().map(Child::id).collect());
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        for base in &nodes.bases {
            loop {
                let ready = http.get(format!("{base}/readyz")).send().await;
                if matches!(&ready, Ok(r) if r.status().is_success()) {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(Error::Unavailable(format!(
                        "the node at {base} never became ready"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(nodes)
    }

    /// Kills the nodes. Every answer they gave was committed first, so nothing acknowledged
    /// is lost; the ledger is verified afterwards.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        super::profile::count_nodes(Vec::new());
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.kill();
    }
}
