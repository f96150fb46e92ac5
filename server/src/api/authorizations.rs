//! `/v1/authorizations…`: hold the worst case before the LLM call, capture the actual
//! usage after it, or release.

use app::core::error::Error;
use app::core::keys::{ApiKey, Scope};
use app::core::metering::{self, CaptureInput, HoldFor};
use app::core::money::Money;
use app::core::pricing::{Outcome, Tokens};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{Amount, ApiJson, OutcomeName};
use super::views::{AuthorizationView, UsageEventView};
use super::{require, ApiResult, ApiState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAuthorization {
    pub customer: String,
    pub model: Option<String>,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub input_tokens: Option<u64>,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub max_output_tokens: Option<u64>,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_read_input_tokens: Option<u64>,
    /// Of `cache_creation_input_tokens`, those written to Anthropic's one-hour cache
    /// (priced at the model's `cache_write_1h` rate).
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_creation_1h_input_tokens: Option<u64>,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_creation_input_tokens: Option<u64>,
    /// Instead of a model and tokens: the amount to hold.
    #[schema(value_type = Option<Amount>)]
    pub amount: Option<Money>,
    /// Priced with the model's batch discount (its capture defaults to the same).
    pub batch: Option<bool>,
}

#[utoipa::path(operation_id = "authorizations_create", post, path = "/authorizations", request_body = CreateAuthorization, tag = "authorizations",
    responses((status = 201, body = AuthorizationView), (status = 402, body = super::views::ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(b): ApiJson<CreateAuthorization>,
) -> ApiResult<(StatusCode, Json<AuthorizationView>)> {
    require(&key, Scope::Usage)?;
    let what = match (b.amount, b.model) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "amount",
                "give either amount or model and tokens, not both",
            )
            .into())
        }
        (Some(a), None) => {
            if !a.is_positive() {
                return Err(Error::invalid("amount", "amount must be positive").into());
            }
            HoldFor::Amount(a)
        }
        (None, Some(model)) => {
            let (Some(input), Some(max_output)) = (b.input_tokens, b.max_output_tokens) else {
                return Err(Error::invalid(
                    if b.input_tokens.is_none() {
                        "input_tokens"
                    } else {
                        "max_output_tokens"
                    },
                    "input_tokens and max_output_tokens are required with model",
                )
                .into());
            };
            HoldFor::Request {
                model,
                tokens: Tokens {
                    input,
                    output: max_output,
                    cache_write: b.cache_creation_input_tokens.unwrap_or(0),
                    cache_read: b.cache_read_input_tokens.unwrap_or(0),
                    cache_write_1h: b.cache_creation_1h_input_tokens.unwrap_or(0),
                },
                batch: b.batch.unwrap_or(false),
            }
        }
        (None, None) => {
            return Err(Error::invalid("model", "model (with tokens) or amount is required").into())
        }
    };
    let a = metering::authorize(&state.core, key.mode, &b.customer, &what).await?;
    Ok((StatusCode::CREATED, Json(AuthorizationView::from(&a))))
}

#[utoipa::path(operation_id = "authorizations_get", get, path = "/authorizations/{id}", tag = "authorizations", params(("id" = String, Path)),
    responses((status = 200, body = AuthorizationView)))]
pub async fn get(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<AuthorizationView>> {
    require(&key, Scope::Read)?;
    let a = metering::authorization(&state.core, key.mode, &id).await?;
    Ok(Json(AuthorizationView::from(&a)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    pub model: Option<String>,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub input_tokens: u64,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub output_tokens: u64,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_creation_input_tokens: Option<u64>,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_read_input_tokens: Option<u64>,
    /// Of `cache_creation_input_tokens`, those written to Anthropic's one-hour cache
    /// (priced at the model's `cache_write_1h` rate).
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_creation_1h_input_tokens: Option<u64>,
    #[schema(value_type = Option<OutcomeName>)]
    pub outcome: Option<Outcome>,
    pub request_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// Priced with the batch discount; defaults to the authorization's.
    pub batch: Option<bool>,
}

#[utoipa::path(operation_id = "authorizations_capture", post, path = "/authorizations/{id}/capture", request_body = Capture, tag = "authorizations", params(("id" = String, Path)),
    responses((status = 200, body = UsageEventView), (status = 409, body = super::views::ErrorBody)))]
pub async fn capture(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Capture>,
) -> ApiResult<Json<UsageEventView>> {
    require(&key, Scope::Usage)?;
    let r = metering::capture(
        &state.core,
        key.mode,
        &id,
        &CaptureInput {
            model: b.model,
            tokens: Tokens {
                input: b.input_tokens,
                output: b.output_tokens,
                cache_write: b.cache_creation_input_tokens.unwrap_or(0),
                cache_read: b.cache_read_input_tokens.unwrap_or(0),
                cache_write_1h: b.cache_creation_1h_input_tokens.unwrap_or(0),
            },
            outcome: b.outcome.unwrap_or(Outcome::Succeeded),
            request_id: b.request_id,
            metadata: b.metadata,
            batch: b.batch,
            proxied: None,
        },
    )
    .await?;
    Ok(Json(UsageEventView::recorded(&r)?))
}

#[utoipa::path(operation_id = "authorizations_release", post, path = "/authorizations/{id}/release", tag = "authorizations", params(("id" = String, Path)),
    responses((status = 200, body = AuthorizationView), (status = 409, body = super::views::ErrorBody)))]
pub async fn release(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<AuthorizationView>> {
    require(&key, Scope::Usage)?;
    let a = metering::release(&state.core, key.mode, &id).await?;
    Ok(Json(AuthorizationView::from(&a)))
}
