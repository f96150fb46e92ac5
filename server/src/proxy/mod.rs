//! The metering proxy `/proxy/…`: the Anthropic and OpenAI APIs, drop-in for their SDKs.
//!
//! A thin edge like `/v1`: it authenticates the payer (a customer key, or an operator key
//! with `Tally-Customer`), reads the request's worst case (`core::proxy`), holds it
//! (`metering::authorize_prepared`, which also checks caps and the key's limit under the
//! account lock), forwards the bytes with the operator's provider key, streams the answer
//! back as it arrives, and settles through `metering::capture_prepared`: the provider's usage, or a
//! failed event of cost 0 with the reason when nothing can be charged. Settlement of a
//! stream runs in its own task, so a client that goes away cannot stop it.

pub mod reconcile;
pub mod simulated;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use app::core::customer_keys::{self, CustomerKey};
use app::core::error::Error;
use app::core::keys::Scope;
use app::core::ledger::Mode;
use app::core::limits::Limiter;
use app::core::metering::{self, CaptureInput, HoldFor, ProxyFinish, ProxyTag};
use app::core::plans;
use app::core::pricing::{Outcome, Tokens};
use app::core::proxy::usage::{self, StreamObserver};
use app::core::proxy::{self, Endpoint, ParsedRequest, Provider, Settlement};
use app::core::Core;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

/// The largest request body forwarded (Anthropic's Messages limit).
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;
/// The largest error or non-streamed answer read whole.
const ANSWER_LIMIT: usize = 64 * 1024 * 1024;

/// What happens to a stream whose client went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDisconnect {
    /// Read the upstream to its end and charge the exact usage (outcome `cancelled`).
    Drain,
    /// Stop the upstream and charge the tokens streamed so far.
    Abort,
}

impl OnDisconnect {
    pub fn parse(s: &str) -> Option<OnDisconnect> {
        match s {
            "drain" => Some(OnDisconnect::Drain),
            "abort" => Some(OnDisconnect::Abort),
            _ => None,
        }
    }
}

/// One provider's endpoint and key. The key never leaves the server (not in answers, not
/// in logs: `Debug` hides it).
#[derive(Clone)]
pub struct Upstream {
    pub base_url: String,
    pub api_key: Option<String>,
    /// The organization's admin key, for the usage report (provider reconciliation).
    pub admin_key: Option<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("admin_key", &self.admin_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub anthropic: Upstream,
    pub openai: Upstream,
    pub connect_timeout: Duration,
    /// From sending the request to the answer's headers.
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks of an answer.
    pub idle_timeout: Duration,
    pub on_disconnect: OnDisconnect,
    /// Requests per second per paying key (customer key or operator key), also the burst.
    pub rate_per_second: u32,
    /// Test-mode requests with no provider key go to the built-in simulated provider at
    /// this base URL (the server's own `/simulated`).
    pub simulated_base: Option<String>,
}

impl ProxyConfig {
    pub fn new(simulated_base: Option<String>) -> ProxyConfig {
        ProxyConfig {
            anthropic: Upstream {
                base_url: "https://api.anthropic.com".into(),
                api_key: None,
                admin_key: None,
            },
            openai: Upstream {
                base_url: "https://api.openai.com".into(),
                api_key: None,
                admin_key: None,
            },
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(600),
            idle_timeout: Duration::from_secs(300),
            on_disconnect: OnDisconnect::Drain,
            rate_per_second: 1_000,
            simulated_base,
        }
    }

    pub fn upstream(&self, provider: Provider) -> &Upstream {
        match provider {
            Provider::Anthropic => &self.anthropic,
            Provider::OpenAi => &self.openai,
        }
    }
}

#[derive(Clone)]
pub struct ProxyState {
    core: Core,
    config: Arc<ProxyConfig>,
    client: reqwest::Client,
    limiter: Arc<Limiter>,
}

/// Sends `request` and waits for its answer's headers at most the first-byte timeout
/// (`Err(Elapsed)` past it), recording the wait by provider and outcome (the answer's
/// status class, `timeout` or `unreachable`) in `tally_proxy_upstream_seconds`.
async fn send_upstream(
    state: &ProxyState,
    provider: Provider,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Result<reqwest::Response>, tokio::time::error::Elapsed> {
    let asked = std::time::Instant::now();
    let sent = tokio::time::timeout(state.config.first_byte_timeout, request.send()).await;
    let outcome = match &sent {
        Ok(Ok(answer)) => crate::metrics::status_class(answer.status().as_u16()),
        Ok(Err(e)) if !e.is_timeout() => "unreachable",
        _ => "timeout",
    };
    state.core.meters.with(|| {
        ::metrics::histogram!(
            app::core::meters::UPSTREAM_SECONDS,
            "provider" => provider.as_str(),
            "outcome" => outcome
        )
        .record(asked.elapsed());
    });
    sent
}

/// The `/proxy` router, to be nested at `/proxy`.
pub fn router(core: Core, config: ProxyConfig) -> Router {
    let client = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let limiter = Arc::new(Limiter::per_second(config.rate_per_second));
    let state = ProxyState {
        core,
        config: Arc::new(config),
        client,
        limiter,
    };
    Router::new()
        .route(
            "/anthropic/v1/messages",
            post(|s, q, h, b| metered(s, Endpoint::Messages, q, h, b)),
        )
        .route(
            "/anthropic/v1/messages/count_tokens",
            post(|s, q, h, b| {
                passthrough(s, Provider::Anthropic, "/v1/messages/count_tokens", q, h, b)
            }),
        )
        .route(
            "/anthropic/v1/models",
            get(|s, h| models(s, Provider::Anthropic, h)),
        )
        .route(
            "/openai/v1/chat/completions",
            post(|s, q, h, b| metered(s, Endpoint::ChatCompletions, q, h, b)),
        )
        .route(
            "/openai/v1/responses",
            post(|s, q, h, b| metered(s, Endpoint::Responses, q, h, b)),
        )
        .route(
            "/openai/v1/models",
            get(|s, h| models(s, Provider::OpenAi, h)),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

// ---- errors, in each provider's own format ----

/// A refusal or failure as the provider's SDK expects it.
struct ProviderError {
    provider: Provider,
    status: StatusCode,
    /// Tally's code (`insufficient_credits`, `cap_reached`, `unknown_model`, …).
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ProviderError {
    fn new(
        provider: Provider,
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ProviderError {
            provider,
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn from_core(provider: Provider, e: Error) -> Self {
        let (status, code, message) = match e {
            Error::Invalid { code, message, .. } => (StatusCode::BAD_REQUEST, code, message),
            Error::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such {what}"),
            ),
            Error::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "missing or invalid API key (a Tally customer key ck_…, or an operator key sk_… with Tally-Customer)".into(),
            ),
            Error::Forbidden(m) => (StatusCode::FORBIDDEN, "insufficient_scope", m),
            Error::Conflict { code, message } => (StatusCode::CONFLICT, code, message),
            Error::InsufficientCredits { available } => (
                StatusCode::PAYMENT_REQUIRED,
                "insufficient_credits",
                format!("not enough credits for this request's worst case: {available} available"),
            ),
            Error::Suspended => (
                StatusCode::PAYMENT_REQUIRED,
                "suspended",
                "the customer is suspended".into(),
            ),
            Error::CapReached => (
                StatusCode::PAYMENT_REQUIRED,
                "cap_reached",
                "the customer's spend cap would be passed by this request".into(),
            ),
            Error::PastDue => (
                StatusCode::PAYMENT_REQUIRED,
                "past_due",
                "the subscription's renewal payment failed and its grace period is over".into(),
            ),
            Error::ModelNotInPlan(model) => (
                StatusCode::FORBIDDEN,
                "model_not_in_plan",
                format!("the customer's plan does not include model {model}"),
            ),
            Error::KeyLimitReached => (
                StatusCode::PAYMENT_REQUIRED,
                "key_limit_reached",
                "this key's spend limit would be passed by this request".into(),
            ),
            Error::Unavailable(detail) | Error::Contention(detail) => {
                tracing::warn!(%detail, "proxy: unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "Tally is temporarily unavailable; retry".into(),
                )
            }
            Error::Internal(detail) => {
                tracing::error!(%detail, "proxy: internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error in Tally; nothing was charged".into(),
                )
            }
        };
        ProviderError::new(provider, status, code, message)
    }
}

impl IntoResponse for ProviderError {
    fn into_response(self) -> Response {
        let body = match self.provider {
            Provider::Anthropic => {
                let kind = match self.status.as_u16() {
                    400 | 413 => "invalid_request_error",
                    401 => "authentication_error",
                    402 => "billing_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    429 => "rate_limit_error",
                    _ => "api_error",
                };
                json!({"type": "error", "error": {"type": kind, "message": self.message, "tally_code": self.code}})
            }
            Provider::OpenAi => {
                let kind = match self.status.as_u16() {
                    400 | 404 | 413 => "invalid_request_error",
                    401 => "authentication_error",
                    402 => "insufficient_quota",
                    403 => "permission_error",
                    429 => "rate_limit_exceeded",
                    _ => "server_error",
                };
                json!({"error": {"message": self.message, "type": kind, "param": null, "code": self.code}})
            }
        };
        let mut r = (self.status, axum::Json(body)).into_response();
        let headers = r.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        } else if matches!(self.status.as_u16(), 400..=404) {
            // The SDKs retry 408, 409, 429 and 5xx; a refusal will not change on retry.
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        r
    }
}

// ---- who pays ----

/// The payer of a proxied request.
struct Payer {
    mode: Mode,
    customer_id: String,
    key: Option<CustomerKey>,
    /// What the rate limit counts by.
    limit_key: String,
}

fn secret_of(headers: &HeaderMap) -> Option<&str> {
    let from_x = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let from_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    from_x
        .or(from_bearer)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

async fn payer(
    state: &ProxyState,
    provider: Provider,
    headers: &HeaderMap,
) -> Result<Payer, ProviderError> {
    let core = &state.core;
    let err = |e| ProviderError::from_core(provider, e);
    let secret = secret_of(headers).ok_or_else(|| err(Error::Unauthenticated))?;
    let payer = if customer_keys::is_customer_secret(secret) {
        let key = customer_keys::authenticate(core, secret)
            .await
            .map_err(err)?;
        Payer {
            mode: key.mode,
            customer_id: key.customer_id.clone(),
            limit_key: key.id.clone(),
            key: Some(key),
        }
    } else {
        let key = core
            .keys
            .authenticate(&core.store, secret)
            .await
            .map_err(err)?;
        if !key.scope.allows(Scope::Usage) {
            return Err(err(Error::Forbidden(format!(
                "this API key has scope {}; the proxy needs usage",
                key.scope.as_str()
            ))));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let customer = if let Some(id) = header("tally-customer") {
            app::core::customers::get(core, key.mode, id).await
        } else if let Some(ext) = header("tally-customer-external-id") {
            app::core::customers::by_external_id(core, key.mode, ext).await
        } else {
            return Err(ProviderError::new(
                provider,
                StatusCode::BAD_REQUEST,
                "customer_required",
                "an operator key needs the header Tally-Customer (or Tally-Customer-External-Id) naming who pays",
            ));
        }
        .map_err(err)?;
        Payer {
            mode: key.mode,
            customer_id: customer.id,
            limit_key: key.id,
            key: None,
        }
    };
    if let Err(wait) = state.limiter.check(&payer.limit_key) {
        let mut e = ProviderError::new(
            provider,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this key; retry later",
        );
        e.retry_after = Some(wait.as_secs().max(1));
        return Err(e);
    }
    Ok(payer)
}

/// `Tally-Conversation` (1-255 printable characters) and `Tally-Metadata` (a JSON object).
fn tally_headers(
    provider: Provider,
    headers: &HeaderMap,
) -> Result<(Option<String>, Option<Value>), ProviderError> {
    let bad = |m: &str| ProviderError::new(provider, StatusCode::BAD_REQUEST, "invalid", m);
    let conversation = match headers.get("tally-conversation") {
        None => None,
        Some(v) => {
            let s = v
                .to_str()
                .map_err(|_| bad("Tally-Conversation must be printable ASCII"))?;
            if s.is_empty() || s.len() > 255 || s.chars().any(char::is_control) {
                return Err(bad("Tally-Conversation must be 1-255 printable characters"));
            }
            Some(s.to_string())
        }
    };
    let metadata = match headers.get("tally-metadata") {
        None => None,
        Some(v) => {
            let parsed: Value = v
                .to_str()
                .ok()
                .and_then(|s| serde_json::from_str(s).ok())
                .filter(Value::is_object)
                .ok_or_else(|| bad("Tally-Metadata must be a JSON object"))?;
            if v.len() > metering::MAX_METADATA_BYTES {
                return Err(bad("Tally-Metadata is over 16 KiB"));
            }
            Some(parsed)
        }
    };
    Ok((conversation, metadata))
}

// ---- the metered endpoints ----

/// Where a request goes and with which key; None when the mode has no provider.
fn target(state: &ProxyState, mode: Mode, provider: Provider) -> Option<(String, String)> {
    let up = state.config.upstream(provider);
    match (&up.api_key, mode, &state.config.simulated_base) {
        (Some(key), _, _) => Some((up.base_url.trim_end_matches('/').to_string(), key.clone())),
        (None, Mode::Test, Some(sim)) => Some((
            format!("{}/{}", sim.trim_end_matches('/'), provider.as_str()),
            "simulated".into(),
        )),
        _ => None,
    }
}

/// Headers passed upstream besides the body's type: the provider's own options.
const FORWARDED: [&str; 5] = [
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "accept",
    "content-type",
];

/// Headers of the provider's answer passed back.
const RETURNED: [&str; 7] = [
    "content-type",
    "retry-after",
    "request-id",
    "x-request-id",
    "anthropic-organization-id",
    "openai-processing-ms",
    "x-should-retry",
];

fn upstream_request(
    state: &ProxyState,
    provider: Provider,
    url: String,
    key: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let mut req = state.client.post(url).body(body);
    for name in FORWARDED {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    match provider {
        Provider::Anthropic => {
            if !headers.contains_key("anthropic-version") {
                req = req.header("anthropic-version", "2023-06-01");
            }
            req.header("x-api-key", key)
        }
        Provider::OpenAi => req.bearer_auth(key),
    }
}

fn copy_answer_headers(from: &reqwest::header::HeaderMap, to: &mut HeaderMap) {
    for name in RETURNED {
        if let Some(v) = from.get(name) {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(v.as_bytes()),
            ) {
                to.insert(n, v);
            }
        }
    }
}

fn set_header(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// One held request on its way: what settling it needs.
#[derive(Clone)]
struct Held {
    core: Core,
    authorization: String,
    parsed: ParsedRequest,
    metadata: Option<Value>,
    /// What the request was held with; the capture prices with the same.
    customer: app::core::store::CustomerRow,
    plan: app::core::plans::Plan,
    model: app::core::pricing::ModelPrice,
}

impl Held {
    async fn capture(&self, input: &CaptureInput) -> app::core::error::Result<metering::Recorded> {
        metering::capture_prepared(
            &self.core,
            &self.authorization,
            self.customer.clone(),
            self.plan.clone(),
            self.model.clone(),
            input,
        )
        .await
    }

    /// Charges what the core's settlement rule said; a proxied request is settled exactly
    /// once here.
    async fn settle(
        &self,
        s: Settlement,
        request_id: Option<String>,
        upstream_status: Option<u16>,
    ) -> Option<metering::Recorded> {
        let input = CaptureInput {
            model: Some(self.parsed.model.clone()),
            tokens: s.tokens,
            outcome: s.outcome,
            request_id,
            metadata: self.metadata.clone(),
            batch: None,
            proxied: Some(ProxyFinish {
                upstream_status,
                reason: s.reason.map(str::to_string),
            }),
        };
        let mut result = self.capture(&input).await;
        if let Err(Error::Conflict {
            code: "request_id_taken",
            ..
        }) = &result
        {
            // The provider's id was seen before (a replayed answer): keep the hold's id.
            let input = CaptureInput {
                request_id: None,
                ..input
            };
            result = self.capture(&input).await;
        }
        match result {
            Ok(r) => Some(r),
            Err(e) => {
                // The hold expires and is released by the sweep; the request row stays open.
                tracing::error!(authorization = %self.authorization, error = %e, "proxy: settling failed");
                None
            }
        }
    }

    /// Nothing to charge: releases the hold into a failed event of cost 0 with the reason.
    async fn fail(&self, upstream_status: Option<u16>, reason: &'static str) {
        let nothing = Settlement {
            tokens: Tokens::default(),
            outcome: Outcome::Failed,
            reason: Some(reason),
        };
        self.settle(nothing, None, upstream_status).await;
    }
}

async fn metered(
    State(state): State<ProxyState>,
    endpoint: Endpoint,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match metered_inner(&state, endpoint, query, &headers, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn metered_inner(
    state: &ProxyState,
    endpoint: Endpoint,
    query: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ProviderError> {
    let provider = endpoint.provider();
    let core = &state.core;
    let err = |e| ProviderError::from_core(provider, e);
    let payer = payer(state, provider, headers).await?;
    let (conversation, metadata) = tally_headers(provider, headers)?;
    let customer = app::core::customers::get(core, payer.mode, &payer.customer_id)
        .await
        .map_err(err)?;
    let plan = plans::of_customer(&core.store, &customer)
        .await
        .map_err(err)?;
    let long_context = headers
        .get("anthropic-beta")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("context-1m"));
    let parsed = proxy::parse_request(
        endpoint,
        &body,
        u64::from(plan.terms.default_max_output_tokens),
        long_context,
    )
    .map_err(err)?;
    let model = plans::model(&core.store, payer.mode, &parsed.model)
        .await
        .map_err(|_| {
            ProviderError::new(
                provider,
                StatusCode::BAD_REQUEST,
                "unknown_model",
                format!(
                    "model {} has no price in Tally's price book, so it cannot be charged",
                    parsed.model
                ),
            )
        })?;
    if Provider::parse(&model.provider) != Some(provider) {
        return Err(ProviderError::new(
            provider,
            StatusCode::BAD_REQUEST,
            "unknown_model",
            format!(
                "model {} is priced as a {} model, not {}",
                parsed.model,
                model.provider,
                provider.as_str()
            ),
        ));
    }
    let tag = ProxyTag {
        key: payer.key.clone(),
        provider: provider.as_str().into(),
        endpoint: endpoint.path().into(),
        streamed: parsed.stream,
        conversation,
    };
    if let Some(max) = plan.terms.max_request_cost {
        let (cost, _, _) = metering::estimate(
            core,
            payer.mode,
            &customer.id,
            &parsed.model,
            &parsed.worst_case,
            false,
        )
        .await
        .map_err(err)?;
        if cost > max {
            let _ = proxy::record_refused(
                core,
                payer.mode,
                &customer.id,
                &tag,
                &parsed.model,
                "max_request_cost",
            )
            .await;
            return Err(ProviderError::new(
                provider,
                StatusCode::BAD_REQUEST,
                "max_request_cost",
                format!(
                    "this request could cost up to {} ({} input tokens at most, {} output), over this plan's limit of {} per request",
                    cost.display_money(),
                    parsed.worst_case.input,
                    parsed.worst_case.output,
                    max.display_money()
                ),
            ));
        }
    }
    let what = HoldFor::Request {
        model: parsed.model.clone(),
        tokens: parsed.worst_case,
        batch: false,
    };
    let auth = match metering::authorize_prepared(
        core,
        payer.mode,
        customer.clone(),
        plan.clone(),
        model.clone(),
        &what,
        &tag,
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            let code = match &e {
                Error::InsufficientCredits { .. } => Some("insufficient_credits"),
                Error::Suspended => Some("suspended"),
                Error::CapReached => Some("cap_reached"),
                Error::KeyLimitReached => Some("key_limit_reached"),
                Error::PastDue => Some("past_due"),
                Error::ModelNotInPlan(_) => Some("model_not_in_plan"),
                _ => None,
            };
            if let Some(code) = code {
                let _ = proxy::record_refused(
                    core,
                    payer.mode,
                    &customer.id,
                    &tag,
                    &parsed.model,
                    code,
                )
                .await;
            }
            return Err(err(e));
        }
    };
    let held = Held {
        core: core.clone(),
        authorization: auth.row.id.clone(),
        parsed,
        metadata,
        customer,
        plan,
        model,
    };
    let Some((base, key)) = target(state, payer.mode, provider) else {
        held.fail(None, "no_provider_key").await;
        return Err(ProviderError::new(
            provider,
            StatusCode::SERVICE_UNAVAILABLE,
            "no_provider_key",
            format!(
                "no {} key is configured for {} mode; nothing was charged",
                provider.as_str(),
                payer.mode.as_str()
            ),
        ));
    };
    let upstream_body = match proxy::upstream_body(&held.parsed, &body) {
        Ok(Some(b)) => Bytes::from(b),
        Ok(None) => body,
        Err(e) => {
            held.fail(None, "bad_request").await;
            return Err(err(e));
        }
    };
    let mut url = format!("{base}{}", endpoint.path());
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    let request = upstream_request(state, provider, url, &key, headers, upstream_body);
    let sent = send_upstream(state, provider, request).await;
    let answer = match sent {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            let reason = if e.is_timeout() {
                "upstream_timeout"
            } else {
                "upstream_unreachable"
            };
            tracing::warn!(error = %e, "proxy: upstream request failed");
            held.fail(None, reason).await;
            return Err(ProviderError::new(
                provider,
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!(
                    "the {} API could not be reached; nothing was charged",
                    provider.as_str()
                ),
            ));
        }
        Err(_) => {
            held.fail(None, "upstream_timeout").await;
            return Err(ProviderError::new(
                provider,
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "the {} API did not answer in time; nothing was charged",
                    provider.as_str()
                ),
            ));
        }
    };
    let status = answer.status();
    let streamed = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut out_headers = HeaderMap::new();
    copy_answer_headers(answer.headers(), &mut out_headers);
    set_header(&mut out_headers, "tally-authorization", &held.authorization);
    let status_out = StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_success() && streamed {
        return Ok(stream_answer(state, held, answer, status_out, out_headers));
    }
    // A whole answer: read it, settle, then answer with the cost.
    let bytes = match read_whole(answer, state.config.idle_timeout).await {
        Ok(b) => b,
        Err(reason) => {
            if status.is_success() {
                held.settle(
                    proxy::unreported(&held.parsed, reason),
                    None,
                    Some(status.as_u16()),
                )
                .await;
            } else {
                held.fail(Some(status.as_u16()), reason).await;
            }
            return Err(ProviderError::new(
                provider,
                StatusCode::BAD_GATEWAY,
                "upstream_broken",
                format!("the {} API's answer broke off", provider.as_str()),
            ));
        }
    };
    if !status.is_success() {
        held.fail(Some(status.as_u16()), "upstream_error").await;
        let mut r = (status_out, bytes).into_response();
        r.headers_mut().extend(out_headers);
        return Ok(r);
    }
    let recorded = match usage::from_body(endpoint, &bytes) {
        Some(rep) => {
            let s = Settlement {
                tokens: rep.tokens,
                outcome: Outcome::Succeeded,
                reason: None,
            };
            held.settle(s, rep.id, Some(status.as_u16())).await
        }
        None => {
            held.settle(
                proxy::unreported(&held.parsed, "usage_missing"),
                None,
                Some(status.as_u16()),
            )
            .await
        }
    };
    if let Some(r) = recorded {
        set_header(&mut out_headers, "tally-cost", &r.event.cost.to_string());
        set_header(&mut out_headers, "tally-balance", &r.balance.to_string());
        set_header(&mut out_headers, "tally-event", &r.event.id);
    }
    let mut r = (status_out, bytes).into_response();
    r.headers_mut().extend(out_headers);
    Ok(r)
}

/// Reads a whole answer, each chunk within the idle timeout.
async fn read_whole(mut answer: reqwest::Response, idle: Duration) -> Result<Bytes, &'static str> {
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(idle, answer.chunk()).await {
            Err(_) => return Err("upstream_idle_timeout"),
            Ok(Err(_)) => return Err("response_broken"),
            Ok(Ok(None)) => return Ok(Bytes::from(buf)),
            Ok(Ok(Some(chunk))) => {
                if buf.len() + chunk.len() > ANSWER_LIMIT {
                    return Err("response_too_large");
                }
                buf.extend_from_slice(&chunk);
            }
        }
    }
}

/// Streams the answer to the client as it arrives, from a task that also settles it.
fn stream_answer(
    state: &ProxyState,
    held: Held,
    answer: reqwest::Response,
    status: StatusCode,
    headers: HeaderMap,
) -> Response {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let idle = state.config.idle_timeout;
    let on_disconnect = state.config.on_disconnect;
    let hide_usage =
        held.parsed.endpoint == Endpoint::ChatCompletions && !held.parsed.client_wants_usage;
    tokio::spawn(pump(held, answer, tx, idle, on_disconnect, hide_usage));
    let body =
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>)));
    let mut r = Response::new(Body::from_stream(body));
    *r.status_mut() = status;
    r.headers_mut().extend(headers);
    r
}

async fn pump(
    held: Held,
    mut answer: reqwest::Response,
    tx: tokio::sync::mpsc::Sender<Bytes>,
    idle: Duration,
    on_disconnect: OnDisconnect,
    hide_usage: bool,
) {
    let mut observer = StreamObserver::new(held.parsed.endpoint, hide_usage);
    let mut connected = true;
    let mut broken: Option<&'static str> = None;
    loop {
        let chunk = tokio::select! {
            c = tokio::time::timeout(idle, answer.chunk()) => c,
            _ = tx.closed(), if connected => {
                connected = false;
                if on_disconnect == OnDisconnect::Abort {
                    break;
                }
                continue;
            }
        };
        match chunk {
            Err(_) => {
                broken = Some("upstream_idle_timeout");
                break;
            }
            Ok(Err(_)) => {
                broken = Some("stream_broken");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(bytes))) => {
                let out = observer.feed(&bytes);
                if connected && !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                    connected = false;
                    if on_disconnect == OnDisconnect::Abort {
                        break;
                    }
                }
            }
        }
    }
    let rest = observer.finish();
    if connected && !rest.is_empty() {
        let _ = tx.send(Bytes::from(rest)).await;
    }
    // Dropping the upstream answer here closes its connection (abort stops the provider).
    drop(answer);
    drop(tx);
    let s = proxy::stream_settlement(&held.parsed, &observer, connected, broken);
    held.settle(s, observer.id.clone(), Some(200)).await;
}

// ---- pass-through and listings ----

async fn passthrough(
    State(state): State<ProxyState>,
    provider: Provider,
    path: &'static str,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let payer = match payer(&state, provider, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some((base, key)) = target(&state, payer.mode, provider) else {
        return ProviderError::new(
            provider,
            StatusCode::SERVICE_UNAVAILABLE,
            "no_provider_key",
            format!(
                "no {} key is configured for {} mode",
                provider.as_str(),
                payer.mode.as_str()
            ),
        )
        .into_response();
    };
    let mut url = format!("{base}{path}");
    if let Some(q) = query {
        url.push('?');
        url.push_str(&q);
    }
    let request = upstream_request(&state, provider, url, &key, &headers, body);
    let sent = send_upstream(&state, provider, request).await;
    let answer = match sent {
        Ok(Ok(a)) => a,
        _ => {
            return ProviderError::new(
                provider,
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("the {} API could not be reached", provider.as_str()),
            )
            .into_response()
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers_out = HeaderMap::new();
    copy_answer_headers(answer.headers(), &mut headers_out);
    match read_whole(answer, state.config.idle_timeout).await {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().extend(headers_out);
            r
        }
        Err(_) => ProviderError::new(
            provider,
            StatusCode::BAD_GATEWAY,
            "upstream_broken",
            format!("the {} API's answer broke off", provider.as_str()),
        )
        .into_response(),
    }
}

/// The models the price book prices for this provider, in the provider's list format.
async fn models(
    State(state): State<ProxyState>,
    provider: Provider,
    headers: HeaderMap,
) -> Response {
    let payer = match payer(&state, provider, &headers).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let all = match plans::models(&state.core.store, payer.mode).await {
        Ok(m) => m,
        Err(e) => return ProviderError::from_core(provider, e).into_response(),
    };
    let mine: Vec<_> = all
        .into_iter()
        .filter(|m| Provider::parse(&m.provider) == Some(provider))
        .collect();
    let body = match provider {
        Provider::Anthropic => json!({
            "data": mine.iter().map(|m| json!({
                "type": "model", "id": m.id, "display_name": m.id,
                "created_at": m.since.to_rfc3339(),
            })).collect::<Vec<_>>(),
            "has_more": false,
            "first_id": mine.first().map(|m| m.id.clone()),
            "last_id": mine.last().map(|m| m.id.clone()),
        }),
        Provider::OpenAi => json!({
            "object": "list",
            "data": mine.iter().map(|m| json!({
                "id": m.id, "object": "model", "created": m.since.micros() / 1_000_000,
                "owned_by": "openai",
            })).collect::<Vec<_>>(),
        }),
    };
    axum::Json(body).into_response()
}
