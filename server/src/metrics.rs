//! `GET /metrics`: Prometheus text. Request counters kept in memory by a middleware, what
//! the store counted as it committed (ledger transactions, applied events), and the inbox
//! backlog read at scrape time (index ranges as large as the backlog, never a count of a
//! growing table). With
//! `TALLY_METRICS_TOKEN` set it answers only requests bearing that token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Responses by status class, and the time spent answering them.
#[derive(Debug, Default)]
pub struct RequestCounters {
    by_class: [AtomicU64; 5],
    micros: AtomicU64,
}

pub type Counters = Arc<RequestCounters>;

pub async fn count(State(counters): State<Counters>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    counters.by_class[class].fetch_add(1, Ordering::Relaxed);
    counters
        .micros
        .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    response
}

/// The bearer token `/metrics` asks for; never printed.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    pub fn new(token: String) -> Token {
        Token(token.into())
    }

    /// Whether `header` (an `Authorization` value) bears this token, compared in constant
    /// time.
    fn admits(&self, header: Option<&str>) -> bool {
        use subtle::ConstantTimeEq;
        let given = header.and_then(|h| h.strip_prefix("Bearer ")).unwrap_or("");
        bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<set>)")
    }
}

pub async fn render(State(state): State<AppState>, headers: header::HeaderMap) -> Response {
    use std::fmt::Write as _;
    if let Some(token) = &state.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok());
        if !token.admits(given) {
            return (
                axum::http::StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a bearer token is required",
            )
                .into_response();
        }
    }
    let mut out = String::new();
    let c = &state.counters;
    let _ = writeln!(
        out,
        "# HELP tally_http_responses_total HTTP responses by status class."
    );
    let _ = writeln!(out, "# TYPE tally_http_responses_total counter");
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let _ = writeln!(
            out,
            "tally_http_responses_total{{class=\"{class}\"}} {}",
            c.by_class[i].load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP tally_http_response_seconds_total Time spent answering."
    );
    let _ = writeln!(out, "# TYPE tally_http_response_seconds_total counter");
    let micros = c.micros.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "tally_http_response_seconds_total {}.{:06}",
        micros / 1_000_000,
        micros % 1_000_000
    );
    let _ = writeln!(
        out,
        "# HELP tally_leader Whether this node runs the periodic job (one node per job on a shared PostgreSQL)."
    );
    let _ = writeln!(out, "# TYPE tally_leader gauge");
    let leading = state
        .leading
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for job in [
        app::core::store::Job::Sweep,
        app::core::store::Job::Reconcile,
        app::core::store::Job::ProviderReconcile,
    ] {
        let _ = writeln!(
            out,
            "tally_leader{{job=\"{}\"}} {}",
            job.name(),
            u8::from(leading.contains(&job))
        );
    }
    let store = &state.core.store;
    let _ = writeln!(
        out,
        "# HELP tally_db_pool_max_connections The most connections each database pool of this node may open."
    );
    let _ = writeln!(out, "# TYPE tally_db_pool_max_connections gauge");
    let (readers, writers) = store.pool_sizes();
    for (pool, n) in [("reader", readers), ("writer", writers)] {
        let _ = writeln!(out, "tally_db_pool_max_connections{{pool=\"{pool}\"}} {n}");
    }
    // Only the statuses that drain: each is an index range as large as the backlog. The
    // processed ones grow forever, so they are a counter of this process instead.
    let _ = writeln!(
        out,
        "# HELP tally_webhook_events Stored Stripe events waiting, being applied, or failed and to be retried."
    );
    let _ = writeln!(out, "# TYPE tally_webhook_events gauge");
    for status in app::core::vocab::InboxStatus::ALL.iter().copied() {
        if status == app::core::vocab::InboxStatus::Processed {
            continue;
        }
        match store.count_webhook_events(status).await {
            Ok(n) => {
                let _ = writeln!(out, "tally_webhook_events{{status=\"{status}\"}} {n}");
            }
            Err(e) => tracing::warn!(error = %e, "metrics: inbox count failed"),
        }
    }
    let written = store.written();
    for (name, help, n) in [
        (
            "tally_webhook_events_processed_total",
            "Stripe events this process applied.",
            written.webhook_events_processed(),
        ),
        (
            "tally_ledger_transactions_total",
            "Ledger transactions this process committed.",
            written.ledger_transactions(),
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} counter");
        let _ = writeln!(out, "{name} {n}");
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
