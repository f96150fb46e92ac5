//! What the core measures, recorded through the `metrics` facade into the recorder its
//! server gives it.
//!
//! Each server has a recorder of its own rather than the process-wide one the `metrics`
//! macros use by default: one test process runs many servers, and `tally bench --nodes`
//! three, and each `/metrics` must show its own node's figures. So the macros are called
//! inside [`Meters::with`], which makes this server's recorder theirs for the call. A core
//! built without one (the CLI, the benchmark's reports) records into nothing.

use std::sync::Arc;

/// A server's recorder, shared by everything that measures (cheap to clone).
#[derive(Clone)]
pub struct Meters(Arc<dyn metrics::Recorder + Send + Sync>);

impl Meters {
    pub fn new(recorder: Arc<dyn metrics::Recorder + Send + Sync>) -> Meters {
        Meters(recorder)
    }

    /// Runs `f` with this server's recorder as the one the `metrics` macros record to.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&*self.0, f)
    }
}

impl Default for Meters {
    /// Records nothing.
    fn default() -> Meters {
        Meters(Arc::new(metrics::NoopRecorder))
    }
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Meters")
    }
}

/// Jobs in one group commit (`core::batch`).
pub const COMMIT_JOBS: &str = "tally_group_commit_jobs";
/// Seconds of one group commit, from BEGIN to the end of its COMMIT.
pub const COMMIT_SECONDS: &str = "tally_group_commit_seconds";
/// Seconds from sending a proxied request upstream to its answer's headers (or the
/// failure), by provider and outcome.
pub const UPSTREAM_SECONDS: &str = "tally_proxy_upstream_seconds";
/// Seconds from a request's arrival to its response's headers, by method, route and
/// status class.
pub const HTTP_SECONDS: &str = "tally_http_request_duration_seconds";

/// Describes every histogram the core and its server record (HELP and unit lines).
pub fn describe(meters: &Meters) {
    use metrics::{describe_histogram, Unit};
    meters.with(|| {
        describe_histogram!(COMMIT_JOBS, Unit::Count, "Jobs in each group commit.");
        describe_histogram!(
            COMMIT_SECONDS,
            Unit::Seconds,
            "Each group commit, from BEGIN to the end of its COMMIT."
        );
        describe_histogram!(
            UPSTREAM_SECONDS,
            Unit::Seconds,
            "Proxied requests: from sending upstream to the answer's headers, or the failure."
        );
        describe_histogram!(
            HTTP_SECONDS,
            Unit::Seconds,
            "Requests: from arrival to the response's headers."
        );
    });
}
