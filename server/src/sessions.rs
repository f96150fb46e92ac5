//! Browser sessions (tower-sessions, stored in our own database), the one-time link and
//! sign-out endpoints, and the cross-site request guard.

use std::sync::Arc;

use app::core::portal;
use app::core::store::Store;
use async_trait::async_trait;
use axum::extract::{Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, SessionStore};
use tower_sessions::Session;

use crate::AppState;

/// The session key holding the signed-in customer's id.
pub const CUSTOMER: &str = app::pages::portal::SESSION_CUSTOMER;

#[derive(Clone, Debug)]
pub struct SessionDb {
    store: Store,
}

impl SessionDb {
    pub fn new(store: Store) -> SessionDb {
        SessionDb { store }
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

fn micros(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

#[async_trait]
impl SessionStore for SessionDb {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(backend)?;
        loop {
            let id = record.id.to_string();
            if self
                .store
                .session_create(&id, &data, micros(record.expiry_date))
                .await
                .map_err(backend)?
            {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data).map_err(backend)?;
        self.store
            .session_save(&record.id.to_string(), &data, micros(record.expiry_date))
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let now = app::core::clock::Timestamp::from_micros(micros(time::OffsetDateTime::now_utc()));
        let Some((data, expiry)) = self
            .store
            .session_load(&id.to_string(), now)
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let expiry_date =
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(expiry) * 1_000)
                .map_err(backend)?;
        Ok(Some(Record {
            id: *id,
            data: serde_json::from_str(&data).map_err(backend)?,
            expiry_date,
        }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store
            .session_delete(&id.to_string())
            .await
            .map_err(backend)
    }
}

#[derive(Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

/// `GET /portal/login?token=…`: a one-time link signs the customer in, with a new session id.
pub async fn login_link(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<LinkQuery>,
) -> Response {
    let Some(token) = q.token else {
        return Redirect::to("/portal/signin").into_response();
    };
    match portal::redeem_link(&state.core, &token).await {
        Ok(customer) => {
            if session.cycle_id().await.is_err()
                || session.insert(CUSTOMER, customer).await.is_err()
            {
                return (StatusCode::SERVICE_UNAVAILABLE, "could not start a session")
                    .into_response();
            }
            Redirect::to("/portal").into_response()
        }
        Err(_) => Redirect::to("/portal/signin?error=link").into_response(),
    }
}

/// `POST /portal/signout`: the session is destroyed, not just emptied.
pub async fn sign_out(session: Session) -> Response {
    let _ = session.flush().await;
    Redirect::to("/portal/signin").into_response()
}

/// `scheme://host[:port]` of a URL (an `Origin` is exactly that; a `Referer` has a path).
fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    Some(&url[..scheme.len() + 3 + authority.len()])
}

/// Refuses state-changing requests sent by another site: the `Origin` (or `Referer`) of a
/// POST must be this server, either as the request's own `Host` names it or as the public
/// URL does (`TALLY_PUBLIC_URL`; behind a reverse proxy that rewrites `Host`, the browser's
/// origin is the public one). Session cookies are also `SameSite=Lax`.
pub async fn same_origin(State(public_url): State<Arc<str>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let guarded = req.method() != Method::GET
        && req.method() != Method::HEAD
        && !path.starts_with("/v1/")
        && !path.starts_with("/webhooks/");
    if guarded {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .or_else(|| req.headers().get(header::REFERER))
            .and_then(|h| h.to_str().ok());
        if let Some(origin) = origin {
            let from = origin_of(origin).unwrap_or("");
            let same_host = from.split_once("://").is_some_and(|(_, a)| a == host);
            let public = origin_of(&public_url).is_some_and(|p| p.eq_ignore_ascii_case(from));
            if !same_host && !public {
                tracing::warn!(%origin, %host, "refused a cross-site request");
                return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
            }
        }
    }
    next.run(req).await
}
