//! `GET /metrics`: Prometheus text, rendered by the `metrics` crate's Prometheus exporter
//! from this server's own recorder (`app::core::meters`, one per server).
//!
//! Recorded as they happen: every request's latency by method, route and status class (the
//! middleware here), every group commit's size and duration (`core::batch`), and every
//! proxied request's wait for its provider (`proxy`). Read at scrape time, each from an
//! index range or a counter, never a scan of a growing table: the periodic jobs this node
//! leads, its pool sizes, the Stripe inbox's backlog, how long the oldest due item of each
//! queue has waited (inbox, outbox, webhook deliveries, emails), and what the store
//! committed. With `TALLY_METRICS_TOKEN` set it answers only requests bearing that token.

use std::sync::Arc;
use std::time::Instant;

use ::metrics::{counter, gauge, histogram};
use app::core::meters::{self, Meters};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// Bucket bounds of the durations, in seconds: a millisecond to a minute.
const SECONDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Bucket bounds of the group commits' sizes, in jobs, up to `batch::MAX_BATCH`.
const JOBS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A new recorder for one server: the core records through the [`Meters`], `/metrics`
/// renders through the handle.
pub fn recorder() -> Result<(Meters, PrometheusHandle), BuildError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)?
        .set_buckets_for_metric(Matcher::Full(meters::COMMIT_JOBS.into()), &JOBS)?
        .build_recorder();
    let handle = recorder.handle();
    let meters = Meters::new(Arc::new(recorder));
    meters::describe(&meters);
    describe(&meters);
    Ok((meters, handle))
}

/// HELP lines of what `/metrics` reads at scrape time.
fn describe(meters: &Meters) {
    use ::metrics::{describe_counter, describe_gauge, Unit};
    meters.with(|| {
        describe_gauge!(
            "tally_leader",
            "Whether this node runs the periodic job (one node per job on a shared PostgreSQL)."
        );
        describe_gauge!(
            "tally_db_pool_max_connections",
            "The most connections each database pool of this node may open."
        );
        describe_gauge!(
            "tally_webhook_events",
            "Stored Stripe events waiting, being applied, or failed and to be retried."
        );
        describe_gauge!(
            "tally_queue_lag_seconds",
            Unit::Seconds,
            "How long the oldest item due in each queue has waited (0: none waiting)."
        );
        describe_counter!(
            "tally_webhook_events_processed_total",
            "Stripe events this process applied."
        );
        describe_counter!(
            "tally_ledger_transactions_total",
            "Ledger transactions this process committed."
        );
    });
}

/// The route that answered a request, as it was registered ("/v1/customers/{id}").
#[derive(Clone)]
struct Route(Arc<str>);

/// Inside the router (a route layer, so after routing): copies the matched route onto the
/// response for [`time`], which runs outside the router and cannot see it.
pub async fn route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| Route(p.as_str().into()));
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// Outside everything: times each request to its response's headers, labelled by method,
/// route (`unmatched` for what no route took, so scans of unknown paths add no series) and
/// status class.
pub async fn time(State(meters): State<Meters>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let response = next.run(req).await;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or_else(|| "unmatched".to_string(), |r| r.0.to_string());
    let class = status_class(response.status().as_u16());
    meters.with(|| {
        histogram!(meters::HTTP_SECONDS, "method" => method, "route" => route, "status" => class)
            .record(started.elapsed());
    });
    response
}

/// A status as a label: its class ("2xx").
pub fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// The method as a label: the usual ones by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
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
    let core = &state.core;
    let store = &core.store;
    let leading = state
        .leading
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // Only the statuses that drain: each is an index range as large as the backlog. The
    // processed ones grow forever, so they are a counter of this process instead.
    let mut inbox = Vec::new();
    for status in app::core::vocab::InboxStatus::ALL.iter().copied() {
        if status == app::core::vocab::InboxStatus::Processed {
            continue;
        }
        match store.count_webhook_events(status).await {
            Ok(n) => inbox.push((status.as_str(), n)),
            Err(e) => tracing::warn!(error = %e, "metrics: inbox count failed"),
        }
    }
    let lags = match store.queue_lags(core.clock.now()).await {
        Ok(lags) => lags.named().to_vec(),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: queue lags failed");
            Vec::new()
        }
    };
    let (readers, writers) = store.pool_sizes();
    let written = store.written();
    core.meters.with(|| {
        for job in app::core::store::Job::ALL {
            gauge!("tally_leader", "job" => job.name()).set(u8::from(leading.contains(&job)));
        }
        gauge!("tally_db_pool_max_connections", "pool" => "reader").set(readers);
        gauge!("tally_db_pool_max_connections", "pool" => "writer").set(writers);
        for (status, n) in inbox {
            gauge!("tally_webhook_events", "status" => status).set(n as f64);
        }
        for (queue, lag) in lags {
            gauge!("tally_queue_lag_seconds", "queue" => queue).set(lag.as_secs_f64());
        }
        counter!("tally_webhook_events_processed_total")
            .absolute(written.webhook_events_processed());
        counter!("tally_ledger_transactions_total").absolute(written.ledger_transactions());
    });
    state.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
