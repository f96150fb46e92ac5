//! The metering API `/v1`: authentication, scopes, rate limits, body limits, idempotency,
//! and the one mapping of the core's error to the contract's error envelope. Handlers are
//! thin: parse, call one core function, shape the answer.

mod authorizations;
mod catalog;
mod customer_keys;
mod customers;
mod extract;
mod idempotency;
pub mod openapi;
mod subscriptions;
mod usage;
pub mod views;
mod webhook_endpoints;

use std::sync::Arc;

use app::core::error::Error;
use app::core::keys::{ApiKey, Scope};
use app::core::limits::Limiter;
use app::core::Core;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;

pub const BODY_LIMIT: usize = 1024 * 1024;
pub const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Settings of the API edge.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Requests per second allowed per API key (also the burst).
    pub rate_per_second: u32,
    /// The base of links handed out (portal sign-in).
    pub public_url: String,
    /// How long an `Idempotency-Key`'s answer is replayed (then the key is new again).
    pub idempotency_ttl: std::time::Duration,
}

/// The `/v1` router's state: one reference count to clone (axum clones it for every
/// extractor and middleware of every request).
#[derive(Clone)]
pub struct ApiState(Arc<Shared>);

pub struct Shared {
    pub core: Core,
    pub config: ApiConfig,
    limiter: Arc<Limiter>,
    /// Recent completed idempotent answers, in front of the database's unique index.
    answers: app::core::idempotency::Answers,
}

impl std::ops::Deref for ApiState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// An error as the contract shows it.
#[derive(Debug)]
pub enum ApiError {
    Core(Error),
    TooLarge,
    RateLimited { retry_after_seconds: u64 },
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        ApiError::Core(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The envelope's inner object.
fn error_object(kind: &str, code: &str, message: &str, param: Option<&str>) -> serde_json::Value {
    let mut error = json!({"type": kind, "code": code, "message": message});
    if let Some(p) = param {
        error["param"] = json!(p);
    }
    error
}

impl ApiError {
    /// Status and inner error object, logging what clients must not see.
    fn describe(self) -> (StatusCode, serde_json::Value) {
        let (status, obj) = match self {
            ApiError::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                error_object(
                    "invalid_request",
                    "body_too_large",
                    "the request body is over the limit",
                    None,
                ),
            ),
            ApiError::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                error_object(
                    "rate_limited",
                    "rate_limited",
                    "too many requests for this API key; retry later",
                    None,
                ),
            ),
            ApiError::Core(e) => match e {
                Error::Invalid {
                    code,
                    message,
                    param,
                } => (
                    StatusCode::BAD_REQUEST,
                    error_object("invalid_request", code, &message, param.as_deref()),
                ),
                Error::NotFound(what) => (
                    StatusCode::NOT_FOUND,
                    error_object(
                        "not_found",
                        "resource_missing",
                        &format!("no such {what}"),
                        None,
                    ),
                ),
                Error::Unauthenticated => (
                    StatusCode::UNAUTHORIZED,
                    error_object(
                        "authentication",
                        "invalid_api_key",
                        "missing or invalid API key",
                        None,
                    ),
                ),
                Error::Forbidden(message) => (
                    StatusCode::FORBIDDEN,
                    error_object("permission", "insufficient_scope", &message, None),
                ),
                Error::Conflict { code, message } => (
                    StatusCode::CONFLICT,
                    error_object("conflict", code, &message, None),
                ),
                Error::InsufficientCredits { available } => (
                    StatusCode::PAYMENT_REQUIRED,
                    error_object(
                        "insufficient_credits",
                        "insufficient_credits",
                        &format!("not enough credits: {available} available"),
                        None,
                    ),
                ),
                Error::Suspended => (
                    StatusCode::PAYMENT_REQUIRED,
                    error_object(
                        "insufficient_credits",
                        "suspended",
                        "the customer is suspended",
                        None,
                    ),
                ),
                Error::CapReached => (
                    StatusCode::PAYMENT_REQUIRED,
                    error_object(
                        "insufficient_credits",
                        "cap_reached",
                        "the customer's spend cap is reached",
                        None,
                    ),
                ),
                Error::PastDue => (
                    StatusCode::PAYMENT_REQUIRED,
                    error_object(
                        "insufficient_credits",
                        "past_due",
                        "the subscription's renewal payment failed and its grace period is over",
                        None,
                    ),
                ),
                Error::ModelNotInPlan(model) => (
                    StatusCode::PAYMENT_REQUIRED,
                    error_object(
                        "insufficient_credits",
                        "model_not_in_plan",
                        &format!("the customer's plan does not include model {model}"),
                        Some("model"),
                    ),
                ),
                Error::KeyLimitReached => (
                    StatusCode::PAYMENT_REQUIRED,
                    error_object(
                        "insufficient_credits",
                        "key_limit_reached",
                        "this key's spend limit is reached",
                        None,
                    ),
                ),
                Error::Unavailable(detail) | Error::Contention(detail) => {
                    tracing::warn!(%detail, "api: unavailable");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        error_object(
                            "unavailable",
                            "unavailable",
                            "the service is temporarily unavailable; retry with the same Idempotency-Key",
                            None,
                        ),
                    )
                }
                Error::Internal(detail) => {
                    tracing::error!(%detail, "api: internal error");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        error_object(
                            "internal",
                            "internal",
                            "internal error; nothing was changed; retry with the same Idempotency-Key",
                            None,
                        ),
                    )
                }
            },
        };
        (status, obj)
    }
}

/// The inner error object, for places that embed errors (batch items).
pub fn error_json(e: ApiError) -> serde_json::Value {
    e.describe().1
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = match &self {
            ApiError::RateLimited {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        };
        let (status, error) = self.describe();
        let mut r = (status, Json(json!({ "error": error }))).into_response();
        if let Some(secs) = retry {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// Fails with 403 unless the key carries `scope` (or more).
pub fn require(key: &ApiKey, scope: Scope) -> ApiResult<()> {
    if key.scope.allows(scope) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "this API key has scope {}; this needs {}",
            key.scope.as_str(),
            scope.as_str()
        ))
        .into())
    }
}

/// Authenticates the bearer key and applies its rate limit.
async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let secret = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(secret) = secret else {
        return ApiError::Core(Error::Unauthenticated).into_response();
    };
    let key = match state
        .core
        .keys
        .authenticate(&state.core.store, secret)
        .await
    {
        Ok(k) => k,
        Err(e) => return ApiError::Core(e).into_response(),
    };
    if let Err(wait) = state.limiter.check(&key.id) {
        return ApiError::RateLimited {
            retry_after_seconds: wait.as_secs().max(1),
        }
        .into_response();
    }
    req.extensions_mut().insert(key);
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::Core(Error::NotFound("route"))
}

/// Every `/v1` operation, registered with its OpenAPI annotation in one `routes!` call, so
/// the served document is built from the very routes the router serves and the two cannot
/// drift apart. Paths are relative here; [`router`] and [`openapi::document`] nest them at
/// `/v1`.
fn operations() -> OpenApiRouter<ApiState> {
    use utoipa_axum::routes;
    let batch = OpenApiRouter::new()
        .routes(routes!(usage::record_batch))
        .layer(DefaultBodyLimit::max(BATCH_BODY_LIMIT));
    OpenApiRouter::default()
        .routes(routes!(customers::create, customers::find))
        .routes(routes!(customers::get))
        .routes(routes!(customers::balance))
        .routes(routes!(customers::entitlement))
        .routes(routes!(customers::grant))
        .routes(routes!(customers::portal_session))
        .routes(routes!(customers::transactions))
        .routes(routes!(customers::checkout_session))
        .routes(routes!(catalog::customer_prices))
        .routes(routes!(subscriptions::create))
        .routes(routes!(subscriptions::get, subscriptions::change))
        .routes(routes!(subscriptions::cancel))
        .routes(routes!(subscriptions::resume))
        .routes(routes!(subscriptions::advance))
        .routes(routes!(customers::set_plan))
        .routes(routes!(customer_keys::create, customer_keys::list))
        .routes(routes!(customer_keys::revoke))
        .routes(routes!(authorizations::create))
        .routes(routes!(authorizations::get))
        .routes(routes!(authorizations::capture))
        .routes(routes!(authorizations::release))
        .routes(routes!(usage::record, usage::list))
        .routes(routes!(usage::get))
        .routes(routes!(usage::refund))
        .routes(routes!(usage::estimate))
        .routes(routes!(catalog::models, catalog::upsert_model))
        .routes(routes!(catalog::plans, catalog::create_plan))
        .routes(routes!(catalog::plan, catalog::update_plan))
        .routes(routes!(webhook_endpoints::list, webhook_endpoints::create))
        .routes(routes!(webhook_endpoints::get, webhook_endpoints::delete))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .merge(batch)
}

/// The OpenAPI document of `/v1`, as served at `GET /v1/openapi.json`: the operations'
/// paths under `/v1`, finished with the answers every operation shares.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    let mut doc = OpenApiRouter::with_openapi(openapi::base())
        .nest("/v1", operations())
        .into_openapi();
    openapi::finish(&mut doc);
    doc
}

/// The `/v1` router, to be nested at `/v1`.
pub fn router(core: Core, config: ApiConfig) -> Router {
    let answers = app::core::idempotency::Answers::new(
        core.store.clone(),
        app::core::idempotency::RECENT_ANSWER_BYTES,
        config.idempotency_ttl,
    );
    let limiter = Arc::new(Limiter::per_second(config.rate_per_second));
    let state = ApiState(Arc::new(Shared {
        core,
        config,
        limiter,
        answers,
    }));
    let authed = Router::from(operations())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn(extract::refuse_nul_in_uri));
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .merge(authed)
        .with_state(state)
}
