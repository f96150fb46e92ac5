//! `Idempotency-Key` on every POST, at the edge: read the header and the body, ask the core
//! what to do ([`Answers::decide`]), run the request only when told to, and save its answer
//! ([`Answers::save`]). The rules (scoping, replays, conflicts, crashed claims, the cache of
//! recent answers) are in `app::core::idempotency`.

use app::core::error::Error;
use app::core::idempotency::{Answer, Answers, Decision, Keyed};
use app::core::keys::ApiKey;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState, BATCH_BODY_LIMIT, BODY_LIMIT};

pub async fn layer(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(header) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let Some(api_key) = req.extensions().get::<ApiKey>().cloned() else {
        return ApiError::Core(Error::Unauthenticated).into_response();
    };
    let (parts, body) = req.into_parts();
    let limit = if parts.uri.path().ends_with("/usage/batch") {
        BATCH_BODY_LIMIT
    } else {
        BODY_LIMIT
    };
    let Ok(bytes) = to_bytes(body, limit).await else {
        return ApiError::TooLarge.into_response();
    };
    let keyed = match Keyed::new(
        api_key.mode,
        &api_key.id,
        header.to_str().unwrap_or(""),
        parts.method.as_str(),
        parts.uri.path(),
        &bytes,
    ) {
        Ok(k) => k,
        Err(e) => return ApiError::Core(e).into_response(),
    };
    let answers: &Answers = &state.answers;
    let now = state.core.clock.now();
    match answers.decide(&keyed, now).await {
        Err(e) => return ApiError::Core(e).into_response(),
        Ok(Decision::Run) => {}
        Ok(Decision::Replay(answer)) => return replay(answer),
        Ok(Decision::Reused) => {
            return ApiError::Core(Error::conflict(
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
            ))
            .into_response()
        }
        Ok(Decision::InProgress) => {
            return ApiError::Core(Error::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is in progress",
            ))
            .into_response()
        }
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if response.status().is_server_error() {
        // Our failure: the key is released so that a retry runs again.
        if let Err(e) = answers.save(&keyed, None, now).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        let _ = answers.save(&keyed, None, now).await;
        return ApiError::Core(Error::internal("response body unreadable")).into_response();
    };
    let answer = Answer {
        status,
        body: String::from_utf8_lossy(&body).to_string(),
    };
    if let Err(e) = answers.save(&keyed, Some(answer), now).await {
        tracing::warn!(error = %e, "could not store an idempotent answer");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut r = (status, answer.body).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}
