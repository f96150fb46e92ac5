//! Extractors that fail in the contract's format: a JSON body (400 with the `param` that
//! is wrong, 413 when too large) and a query string.

use app::core::clock::Timestamp;
use app::core::error::Error;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::ApiError;

/// A JSON body parsed strictly.
pub struct ApiJson<T>(pub T);

fn bad(param: Option<String>, message: String) -> ApiError {
    ApiError::Core(Error::Invalid {
        code: "invalid",
        message,
        param,
    })
}

/// Parses JSON bytes, naming the offending field in `param`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            inner.to_string()
        };
        let param = (!path.is_empty() && path != ".").then_some(path);
        bad(param, message)
    })
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                bad(None, rej.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Err(bad(None, "a JSON body is required".into()));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// A query string parsed strictly.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let param = (!path.is_empty() && path != ".").then_some(path);
                bad(param, e.into_inner().to_string())
            })
    }
}

/// An RFC 3339 time in a request.
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(pub Timestamp);

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rfc3339, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map(Rfc3339).ok_or_else(|| {
            serde::de::Error::custom("expected an RFC 3339 time like 2026-11-24T12:00:00Z")
        })
    }
}

/// The `limit` of a list: 1–1000, default 50.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(l) if (1..=1000).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::Core(Error::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ))),
    }
}

/// Checks an optional return URL (`success_url`, `cancel_url`): http(s), at most 2048 bytes.
pub fn return_url(param: &str, url: &Option<String>) -> Result<(), ApiError> {
    if let Some(u) = url {
        if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2048 {
            return Err(Error::invalid(param, format!("{param} must be an http(s) URL")).into());
        }
    }
    Ok(())
}
