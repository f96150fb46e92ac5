//! `POST /webhooks/stripe`: verify, store, answer. Processing happens in the worker.

use app::core::error::Error;
use app::core::payments::webhooks;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;

pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let Ok(payload) = std::str::from_utf8(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the body is not UTF-8"})),
        );
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match webhooks::receive(&state.core, payload, signature).await {
        Ok(new) => (
            StatusCode::OK,
            Json(json!({"received": true, "duplicate": !new})),
        ),
        Err(Error::Invalid { message, .. }) => {
            tracing::warn!(%message, "webhook refused");
            (StatusCode::BAD_REQUEST, Json(json!({"error": message})))
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook could not be stored");
            // Not 2xx: Stripe will deliver it again.
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"error": "try again"})),
            )
        }
    }
}
