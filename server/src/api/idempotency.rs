//! `Idempotency-Key` on every POST: the same key and body from the same API key returns
//! the original status and body with `Idempotent-Replayed: true`; the same key with another
//! body is `409 idempotency_key_reused`. Failures on our side (5xx) release the key so a
//! retry runs again.
//!
//! The database's unique index is the source of truth (it holds across processes and
//! restarts). In front of it, each process keeps its most recent completed answers in an
//! LRU: a retry, the common case, is answered from memory without a database round trip
//! (and even while the database is away). Only completed answers are cached, and a
//! completed record never changes, so the cache cannot disagree with the database.

use std::sync::{Arc, Mutex};

use app::core::error::Error;
use app::core::keys::ApiKey;
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{ApiError, ApiState, BATCH_BODY_LIMIT, BODY_LIMIT};

/// A claim older than this with no response is taken to belong to a crashed request.
const ABANDONED_AFTER_SECONDS: i64 = 60;

/// How many completed answers each process remembers.
pub const RECENT_ANSWERS: usize = 10_000;

/// A completed answer: the request's hash, the status and the body.
#[derive(Clone)]
struct Answer {
    hash: String,
    status: u16,
    body: String,
}

/// The LRU of recent completed answers, keyed like the database record.
#[derive(Clone)]
pub struct Recent(Arc<Mutex<hashlink::LruCache<String, Answer>>>);

impl Recent {
    pub fn new(capacity: usize) -> Recent {
        Recent(Arc::new(Mutex::new(hashlink::LruCache::new(capacity))))
    }

    fn get(&self, key: &str) -> Option<Answer> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: String, answer: Answer) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key, answer);
        }
    }
}

pub async fn layer(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let Some(raw_key) = req.headers().get("idempotency-key").cloned() else {
        return next.run(req).await;
    };
    let key = match raw_key.to_str() {
        Ok(k)
            if !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
        {
            k.to_string()
        }
        _ => {
            return ApiError::Core(Error::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 printable ASCII characters",
            ))
            .into_response()
        }
    };
    let Some(api_key) = req.extensions().get::<ApiKey>().cloned() else {
        return ApiError::Core(Error::Unauthenticated).into_response();
    };
    let mode = api_key.mode.as_str();
    // Scoped to the API key that sent it: a stored answer is never replayed to another key
    // (which may lack the scope the original request needed).
    let key = format!("{}/{key}", api_key.id);
    let (parts, body) = req.into_parts();
    let limit = if parts.uri.path().ends_with("/usage/batch") {
        BATCH_BODY_LIMIT
    } else {
        BODY_LIMIT
    };
    let Ok(bytes) = to_bytes(body, limit).await else {
        return ApiError::TooLarge.into_response();
    };
    let mut h = Sha256::new();
    h.update(parts.method.as_str().as_bytes());
    h.update([0]);
    h.update(parts.uri.path().as_bytes());
    h.update([0]);
    h.update(&bytes);
    let hash = hex::encode(h.finalize());

    let cache_key = format!("{mode}/{key}");
    if let Some(answer) = state.recent.get(&cache_key) {
        return if answer.hash == hash {
            replay(i64::from(answer.status), answer.body)
        } else {
            reused()
        };
    }

    let store = &state.core.store;
    let now = state.core.clock.now();
    match store.claim_idempotency_key(mode, &key, &hash, now).await {
        Err(e) => return ApiError::Core(e).into_response(),
        Ok(None) => {}
        Ok(Some(existing)) => {
            if existing.request_hash != hash {
                return reused();
            }
            match (existing.status_code, existing.response) {
                (Some(status), Some(body)) => {
                    if let Ok(code) = u16::try_from(status) {
                        state.recent.put(
                            cache_key,
                            Answer {
                                hash,
                                status: code,
                                body: body.clone(),
                            },
                        );
                    }
                    return replay(status, body);
                }
                _ => {
                    let stale = now.plus_seconds(-ABANDONED_AFTER_SECONDS);
                    match store.reclaim_idempotency_key(mode, &key, stale, now).await {
                        Ok(true) => {}
                        Ok(false) => {
                            return ApiError::Core(Error::conflict(
                                "idempotency_key_in_use",
                                "a request with this Idempotency-Key is in progress",
                            ))
                            .into_response()
                        }
                        Err(e) => return ApiError::Core(e).into_response(),
                    }
                }
            }
        }
    }

    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if status.is_server_error() {
        if let Err(e) = store.release_idempotency_key(mode, &key).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(body) = to_bytes(body, usize::MAX).await else {
        let _ = store.release_idempotency_key(mode, &key).await;
        return ApiError::Core(Error::internal("response body unreadable")).into_response();
    };
    let text = String::from_utf8_lossy(&body).to_string();
    match store
        .complete_idempotency_key(mode, &key, status.as_u16(), &text)
        .await
    {
        // Cached only once the database has it, so memory never knows more than the index.
        Ok(()) => state.recent.put(
            cache_key,
            Answer {
                hash,
                status: status.as_u16(),
                body: text,
            },
        ),
        Err(e) => tracing::warn!(error = %e, "could not store an idempotent response"),
    }
    Response::from_parts(parts, Body::from(body))
}

fn reused() -> Response {
    ApiError::Core(Error::conflict(
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request",
    ))
    .into_response()
}

fn replay(status: i64, body: String) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut r = (status, body).into_response();
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    r
}
