//! `/v1/usage…` and `/v1/estimates`: record what happened, list it, price a request
//! before making it.

use app::core::admin::Actor;
use app::core::error::Error;
use app::core::keys::{ApiKey, Scope};
use app::core::metering::{self, RefundRequest, UsageInput};
use app::core::money::Money;
use app::core::pricing::{Outcome, Tokens};
use app::core::store::UsageFilter;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{one_cursor, page_limit, Amount, ApiJson, ApiQuery, OutcomeName, Rfc3339};
use super::views::{BatchItemView, DataList, EstimateView, List, UsageEventView};
use super::{require, ApiError, ApiResult, ApiState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordUsage {
    pub customer: String,
    pub model: String,
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
    pub batch: Option<bool>,
    #[schema(value_type = Option<OutcomeName>)]
    pub outcome: Option<Outcome>,
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub request_id: String,
    pub occurred_at: Option<Rfc3339>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
}

impl RecordUsage {
    fn input(self) -> UsageInput {
        UsageInput {
            customer: self.customer,
            model: self.model,
            tokens: Tokens {
                input: self.input_tokens,
                output: self.output_tokens,
                cache_write: self.cache_creation_input_tokens.unwrap_or(0),
                cache_read: self.cache_read_input_tokens.unwrap_or(0),
                cache_write_1h: self.cache_creation_1h_input_tokens.unwrap_or(0),
            },
            batch: self.batch.unwrap_or(false),
            outcome: self.outcome.unwrap_or(Outcome::Succeeded),
            request_id: self.request_id,
            occurred_at: self.occurred_at.map(|t| t.0),
            metadata: self.metadata,
        }
    }
}

#[utoipa::path(operation_id = "usage_record", post, path = "/usage", request_body = RecordUsage, tag = "usage",
    responses((status = 201, body = UsageEventView), (status = 200, description = "already recorded: the original event", body = UsageEventView)))]
pub async fn record(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(b): ApiJson<RecordUsage>,
) -> ApiResult<(StatusCode, Json<UsageEventView>)> {
    require(&key, Scope::Usage)?;
    let r = metering::record_usage(&state.core, key.mode, &b.input()).await?;
    let status = if r.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(UsageEventView::recorded(&r)?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBatch {
    /// 1–1000 usage events, each as for `POST /v1/usage`.
    #[schema(value_type = Vec<RecordUsage>, min_items = 1, max_items = 1000)]
    pub events: Vec<serde_json::Value>,
}

#[utoipa::path(operation_id = "usage_record_batch", post, path = "/usage/batch", request_body = RecordBatch, tag = "usage",
    responses((status = 200, body = DataList<BatchItemView>)))]
pub async fn record_batch(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(b): ApiJson<RecordBatch>,
) -> ApiResult<Json<DataList<BatchItemView>>> {
    require(&key, Scope::Usage)?;
    if b.events.is_empty() || b.events.len() > 1000 {
        return Err(Error::invalid("events", "events must hold 1 to 1000 items").into());
    }
    let mut request_ids = Vec::with_capacity(b.events.len());
    let mut items = Vec::with_capacity(b.events.len());
    for (i, raw) in b.events.into_iter().enumerate() {
        request_ids.push(
            raw.get("request_id")
                .and_then(|v| v.as_str())
                .map(str::to_string),
        );
        let item = super::extract::parse_json::<RecordUsage>(raw.to_string().as_bytes())
            .map(RecordUsage::input)
            .map_err(|e| match e {
                ApiError::Core(Error::Invalid {
                    code,
                    message,
                    param,
                }) => Error::Invalid {
                    code,
                    message,
                    param: Some(match param {
                        Some(p) => format!("events[{i}].{p}"),
                        None => format!("events[{i}]"),
                    }),
                },
                _ => Error::invalid(format!("events[{i}]"), "invalid event"),
            });
        items.push(item);
    }
    let outcomes = metering::record_batch(&state.core, key.mode, items).await?;
    let mut data: Vec<BatchItemView> = Vec::with_capacity(outcomes.len());
    for (request_id, outcome) in request_ids.into_iter().zip(outcomes) {
        let view = match outcome {
            metering::BatchItem::Recorded(r) => BatchItemView {
                request_id,
                status: if r.created { "created" } else { "duplicate" }.into(),
                event: Some(UsageEventView::recorded(&r)?),
                error: None,
            },
            metering::BatchItem::Repeat { first } => {
                let first = &data[first];
                BatchItemView {
                    request_id,
                    status: if first.event.is_some() {
                        "duplicate"
                    } else {
                        "error"
                    }
                    .into(),
                    event: first.event.clone(),
                    error: first.error.clone(),
                }
            }
            metering::BatchItem::Refused(e) => BatchItemView {
                request_id,
                status: "error".into(),
                event: None,
                error: Some(super::error_json(ApiError::Core(e))),
            },
        };
        data.push(view);
    }
    Ok(Json(DataList {
        object: "list",
        data,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsage {
    pub customer: Option<String>,
    pub model: Option<String>,
    pub from: Option<Rfc3339>,
    pub to: Option<Rfc3339>,
    pub limit: Option<i64>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
    /// Only the requests sent through the proxy with this `Tally-Conversation`.
    pub conversation: Option<String>,
}

#[utoipa::path(operation_id = "usage_list", get, path = "/usage", tag = "usage",
    params(("customer" = Option<String>, Query), ("model" = Option<String>, Query),
        ("from" = Option<String>, Query, format = DateTime), ("to" = Option<String>, Query, format = DateTime),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000), ("starting_after" = Option<String>, Query),
        ("ending_before" = Option<String>, Query), ("conversation" = Option<String>, Query)),
    responses((status = 200, body = List<UsageEventView>)))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiQuery(q): ApiQuery<ListUsage>,
) -> ApiResult<Json<List<UsageEventView>>> {
    require(&key, Scope::Read)?;
    let limit = page_limit(q.limit)?;
    one_cursor(&q.starting_after, &q.ending_before)?;
    let ending_before = q.ending_before.is_some();
    let rows = metering::list_usage(
        &state.core,
        &UsageFilter {
            mode: key.mode.as_str().into(),
            customer_id: q.customer,
            model: q.model,
            from: q.from.map(|t| t.0),
            to: q.to.map(|t| t.0),
            starting_after: q.starting_after,
            ending_before: q.ending_before,
            conversation: q.conversation,
            limit: limit + 1,
        },
    )
    .await?;
    let views = rows
        .iter()
        .map(UsageEventView::new)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(List::page_of(views, limit, ending_before)))
}

#[utoipa::path(operation_id = "usage_get", get, path = "/usage/{id}", tag = "usage", params(("id" = String, Path)), responses((status = 200, body = UsageEventView)))]
pub async fn get(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<UsageEventView>> {
    require(&key, Scope::Read)?;
    let e = metering::usage_event(&state.core, key.mode, &id).await?;
    Ok(Json(UsageEventView::new(&e)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    /// Why (1–500 characters): shown to the customer on the event and kept in the audit log.
    #[schema(max_length = 500, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub reason: String,
    /// Part of the event's cost to give back; all of it when absent.
    #[schema(value_type = Option<Amount>)]
    pub amount: Option<Money>,
}

#[utoipa::path(operation_id = "usage_refund", post, path = "/usage/{id}/refund", request_body = Refund, tag = "usage", params(("id" = String, Path)),
    responses((status = 200, body = UsageEventView), (status = 400, body = super::views::ErrorBody), (status = 409, body = super::views::ErrorBody)))]
pub async fn refund(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<Refund>,
) -> ApiResult<Json<UsageEventView>> {
    require(&key, Scope::Admin)?;
    let e = metering::refund(
        &state.core,
        key.mode,
        &id,
        &RefundRequest {
            amount: b.amount,
            reason: b.reason,
            actor: Actor::ApiKey(key.id.clone()),
        },
    )
    .await?;
    Ok(Json(UsageEventView::new(&e)?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Estimate {
    pub customer: String,
    pub model: String,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub input_tokens: u64,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub max_output_tokens: u64,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_creation_input_tokens: Option<u64>,
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_read_input_tokens: Option<u64>,
    /// Of `cache_creation_input_tokens`, those written to Anthropic's one-hour cache
    /// (priced at the model's `cache_write_1h` rate).
    #[schema(maximum = 1_099_511_627_775_u64)]
    pub cache_creation_1h_input_tokens: Option<u64>,
    /// Priced with the model's batch discount.
    pub batch: Option<bool>,
}

#[utoipa::path(operation_id = "usage_estimate", post, path = "/estimates", request_body = Estimate, tag = "usage",
    responses((status = 200, body = EstimateView)))]
pub async fn estimate(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(b): ApiJson<Estimate>,
) -> ApiResult<Json<EstimateView>> {
    require(&key, Scope::Usage)?;
    let tokens = Tokens {
        input: b.input_tokens,
        output: b.max_output_tokens,
        cache_write: b.cache_creation_input_tokens.unwrap_or(0),
        cache_read: b.cache_read_input_tokens.unwrap_or(0),
        cache_write_1h: b.cache_creation_1h_input_tokens.unwrap_or(0),
    };
    let (cost, available, fits) = metering::estimate(
        &state.core,
        key.mode,
        &b.customer,
        &b.model,
        &tokens,
        b.batch.unwrap_or(false),
    )
    .await?;
    Ok(Json(EstimateView {
        object: "estimate",
        cost,
        available,
        fits,
    }))
}
