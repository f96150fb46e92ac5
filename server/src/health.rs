//! `/healthz` (the process is up) and `/readyz` (the database answers and is migrated).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.core.store.ready().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": state.core.store.dialect().name()})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
    }
}

/// The node's limit on requests handled at once (`TALLY_MAX_IN_FLIGHT`).
#[derive(Clone)]
pub struct InFlight(std::sync::Arc<tokio::sync::Semaphore>);

impl InFlight {
    pub fn new(max: usize) -> InFlight {
        InFlight(std::sync::Arc::new(tokio::sync::Semaphore::new(max)))
    }
}

/// Sheds load past the node's limit: a request that finds every slot taken is answered
/// 503 `overloaded` with `Retry-After: 1` at once, so a burst cannot pile up memory and
/// latency behind it (a client retries, another node may take it). The slot is held until
/// the handler has answered (a streamed body's rest is bounded by the proxy's own
/// timeouts). Health checks and metrics are never shed.
pub async fn in_flight(
    axum::extract::State(limit): axum::extract::State<InFlight>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let Ok(_slot) = limit.0.clone().try_acquire_owned() else {
        tracing::warn!("overloaded: a request was shed");
        let body = serde_json::json!({"error": {
            "type": "unavailable",
            "code": "overloaded",
            "message": "this node is handling as many requests as it may; retry shortly",
        }});
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            axum::Json(body),
        )
            .into_response();
    };
    next.run(req).await
}
