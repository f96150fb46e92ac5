//! `/v1/webhook_endpoints`: where Tally sends the operator's app its events, signed as the
//! Standard Webhooks specification says.

use app::core::keys::{ApiKey, Scope};
use app::core::notify::endpoints::{self, NewEndpoint};
use app::core::store::EndpointRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{ApiJson, EventTypeName};
use super::views::{ErrorBody, List};
use super::{require, ApiResult, ApiState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEndpoint {
    /// An http:// or https:// address that accepts POSTed JSON.
    #[schema(
        max_length = 2048,
        pattern = "^https?://[^\\s\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub url: String,
    /// Event types (`balance.low`, `topup.succeeded`, …), or `*` for all.
    #[schema(value_type = Vec<EventTypeName>, min_items = 1, max_items = 64)]
    pub events: Vec<String>,
}

/// A webhook endpoint; `secret` (`whsec_…`, the key of its signatures) only in the answer
/// that created it.
#[derive(Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub object: &'static str,
    pub url: String,
    pub events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `enabled`, or `disabled` after deliveries failed for three days.
    pub status: &'static str,
    pub disabled_reason: Option<String>,
    pub livemode: bool,
    pub created_at: String,
}

impl EndpointView {
    fn new(e: &EndpointRow, with_secret: bool) -> EndpointView {
        EndpointView {
            id: e.id.clone(),
            object: "webhook_endpoint",
            url: e.url.clone(),
            events: e.events.clone(),
            secret: with_secret.then(|| e.secret.clone()),
            status: e.status.as_str(),
            disabled_reason: e.disabled_reason.clone(),
            livemode: e.mode == app::core::ledger::Mode::Live,
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

#[utoipa::path(operation_id = "webhook_endpoints_create", post, path = "/webhook_endpoints", request_body = CreateEndpoint, tag = "webhooks",
    responses((status = 201, body = EndpointView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(body): ApiJson<CreateEndpoint>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    require(&key, Scope::Admin)?;
    let new = NewEndpoint {
        url: body.url,
        events: body.events,
    };
    let e = endpoints::create(&state.core, key.mode, &new).await?;
    Ok((StatusCode::CREATED, Json(EndpointView::new(&e, true))))
}

#[utoipa::path(operation_id = "webhook_endpoints_list", get, path = "/webhook_endpoints", tag = "webhooks",
    responses((status = 200, body = List<EndpointView>)))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
) -> ApiResult<Json<List<EndpointView>>> {
    require(&key, Scope::Read)?;
    let all = endpoints::list(&state.core, key.mode).await?;
    Ok(Json(List {
        object: "list",
        data: all.iter().map(|e| EndpointView::new(e, false)).collect(),
        has_more: false,
    }))
}

#[utoipa::path(operation_id = "webhook_endpoints_get", get, path = "/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    require(&key, Scope::Read)?;
    let e = endpoints::get(&state.core, key.mode, &id).await?;
    Ok(Json(EndpointView::new(&e, false)))
}

#[utoipa::path(operation_id = "webhook_endpoints_delete", delete, path = "/webhook_endpoints/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    require(&key, Scope::Admin)?;
    let e = endpoints::delete(&state.core, key.mode, &id).await?;
    Ok(Json(EndpointView::new(&e, false)))
}
