//! Text never holds NUL (U+0000). PostgreSQL cannot store it, so a NUL that got in would
//! fail deep in a query (an internal error on PostgreSQL, stored as is on SQLite) instead
//! of being refused as bad input. Every edge where text comes in refuses it: `/v1` in its
//! own error envelope (`api::extract`), the pages and server functions here ([`refuse`]),
//! and the proxy's model through the core (an unknown model). The core maps PostgreSQL's
//! own refusal to bad input too, as a backstop.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The most a server function's body may hold (the pages' forms are far smaller).
const SERVER_FN_BODY_LIMIT: usize = 2 * 1024 * 1024;

/// Whether the path or the query holds an encoded NUL (`%00`).
pub(crate) fn in_uri(uri: &Uri) -> bool {
    let has = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    has(uri.path()) || uri.query().is_some_and(has)
}

/// Where a JSON document holds NUL in a string or a key: `Some(path)` (empty at the top),
/// `None` when it holds none or is not JSON (its parse then says so). JSON can only write
/// NUL escaped, so only a body holding `\u0000` is parsed.
pub(crate) fn in_json(bytes: &[u8]) -> Option<String> {
    fn find(value: &serde_json::Value, path: &mut Vec<String>) -> bool {
        use serde_json::Value;
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                path.push(format!("[{i}]"));
                let found = find(v, path);
                if !found {
                    path.pop();
                }
                found
            }),
            Value::Object(fields) => fields.iter().any(|(k, v)| {
                path.push(if path.is_empty() {
                    k.clone()
                } else {
                    format!(".{k}")
                });
                let found = k.contains('\0') || find(v, path);
                if !found {
                    path.pop();
                }
                found
            }),
            _ => false,
        }
    }
    let escaped = bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1..].eq_ignore_ascii_case(b"u0000"));
    if !escaped {
        return None;
    }
    let value = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    let mut path = Vec::new();
    find(&value, &mut path).then(|| path.concat())
}

/// Whether a form (`application/x-www-form-urlencoded`) holds NUL in a name or a value.
fn in_form(bytes: &[u8]) -> bool {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map(|pairs| {
            pairs
                .iter()
                .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        })
        .unwrap_or(false)
}

/// The pages' and server functions' edge: a path or query holding NUL is refused, and so
/// is a server function's body (a form or JSON) holding it, with the server functions' own
/// error (`AppError::Invalid`, 400). `/v1` answers in its own envelope and the proxy
/// forwards bodies as sent (a prompt may hold anything), so both are left to themselves.
pub async fn refuse(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/v1/") || path.starts_with("/proxy/") {
        return next.run(req).await;
    }
    let server_fn = path.starts_with("/api/");
    if in_uri(req.uri()) {
        return refused(server_fn, "the address must not contain NUL (%00)");
    }
    if !server_fn {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, SERVER_FN_BODY_LIMIT).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let form = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    let nul = if form {
        in_form(&bytes)
    } else {
        in_json(&bytes).is_some() || bytes.contains(&0)
    };
    if nul {
        return refused(true, "text must not contain NUL (U+0000)");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refused(server_fn: bool, message: &str) -> Response {
    if server_fn {
        let error = app::error::AppError::Invalid(message.to_string());
        (StatusCode::BAD_REQUEST, axum::Json(error)).into_response()
    } else {
        (StatusCode::BAD_REQUEST, format!("Bad request: {message}.")).into_response()
    }
}
