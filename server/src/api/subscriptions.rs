//! `/v1/customers/{id}/subscription…` and the test helper that renews a simulated
//! subscription: authenticate, parse, call one core function, map its error.

use app::core::error::Error;
use app::core::keys::{ApiKey, Scope};
use app::core::subscriptions::{self, SubscriptionRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{return_url, ApiJson};
use super::{require, ApiResult, ApiState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    pub plan: String,
    #[schema(
        max_length = 2048,
        pattern = "^https?://[^\\s\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub success_url: Option<String>,
    #[schema(
        max_length = 2048,
        pattern = "^https?://[^\\s\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub cancel_url: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeSubscription {
    pub plan: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Advance {
    #[serde(default)]
    pub fail: bool,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriptionView {
    /// Always `subscription`.
    #[schema(value_type = String, example = "subscription")]
    pub object: &'static str,
    /// `sub_…`
    pub id: String,
    pub customer: String,
    pub plan: String,
    /// A downgrade that takes effect at the period's end.
    pub pending_plan: Option<String>,
    /// `incomplete`, `active`, `past_due` or `canceled`.
    pub status: String,
    /// Where to send the customer to subscribe (while `incomplete`).
    pub url: Option<String>,
    pub current_period_start: Option<String>,
    pub current_period_end: Option<String>,
    pub cancel_at_period_end: bool,
    /// While past due: when access stops unless an invoice is paid.
    pub grace_ends_at: Option<String>,
    pub created_at: String,
}

impl SubscriptionView {
    fn new(s: SubscriptionRow) -> SubscriptionView {
        SubscriptionView {
            object: "subscription",
            url: (s.status == subscriptions::SubscriptionStatus::Incomplete)
                .then_some(s.checkout_url)
                .flatten(),
            id: s.id,
            customer: s.customer_id,
            plan: s.plan_id,
            pending_plan: s.pending_plan_id,
            status: s.status.to_string(),
            current_period_start: s.current_period_start.map(|t| t.to_rfc3339()),
            current_period_end: s.current_period_end.map(|t| t.to_rfc3339()),
            cancel_at_period_end: s.cancel_at_period_end,
            grace_ends_at: s.grace_ends_at.map(|t| t.to_rfc3339()),
            created_at: s.created_at.to_rfc3339(),
        }
    }
}

#[utoipa::path(operation_id = "subscriptions_create", post, path = "/customers/{id}/subscriptions",
    request_body = CreateSubscription, tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 201, body = SubscriptionView), (status = 400, body = super::views::ErrorBody), (status = 409, body = super::views::ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateSubscription>,
) -> ApiResult<(StatusCode, Json<SubscriptionView>)> {
    require(&key, Scope::Usage)?;
    return_url("success_url", &body.success_url)?;
    return_url("cancel_url", &body.cancel_url)?;
    let sub = subscriptions::subscribe(
        &state.core,
        key.mode,
        &id,
        &body.plan,
        body.success_url.as_deref(),
        body.cancel_url.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(SubscriptionView::new(sub))))
}

#[utoipa::path(operation_id = "subscriptions_get", get, path = "/customers/{id}/subscription",
    tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = super::views::ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    require(&key, Scope::Read)?;
    let sub = subscriptions::current(&state.core, key.mode, &id)
        .await?
        .ok_or(Error::NotFound("subscription"))?;
    Ok(Json(SubscriptionView::new(sub)))
}

#[utoipa::path(operation_id = "subscriptions_change", post, path = "/customers/{id}/subscription",
    request_body = ChangeSubscription, tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 400, body = super::views::ErrorBody), (status = 404, body = super::views::ErrorBody)))]
pub async fn change(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ChangeSubscription>,
) -> ApiResult<Json<SubscriptionView>> {
    require(&key, Scope::Usage)?;
    let sub = subscriptions::change_plan(&state.core, key.mode, &id, &body.plan).await?;
    Ok(Json(SubscriptionView::new(sub)))
}

#[utoipa::path(operation_id = "subscriptions_cancel", post, path = "/customers/{id}/subscription/cancel",
    tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = super::views::ErrorBody)))]
pub async fn cancel(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    require(&key, Scope::Usage)?;
    let sub = subscriptions::cancel(&state.core, key.mode, &id).await?;
    Ok(Json(SubscriptionView::new(sub)))
}

#[utoipa::path(operation_id = "subscriptions_resume", post, path = "/customers/{id}/subscription/resume",
    tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = super::views::ErrorBody)))]
pub async fn resume(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<SubscriptionView>> {
    require(&key, Scope::Usage)?;
    let sub = subscriptions::resume(&state.core, key.mode, &id).await?;
    Ok(Json(SubscriptionView::new(sub)))
}

#[utoipa::path(operation_id = "subscriptions_advance", post, path = "/test_helpers/subscriptions/{id}/advance",
    request_body = Advance, tag = "subscriptions", params(("id" = String, Path)),
    responses((status = 200, body = SubscriptionView), (status = 404, body = super::views::ErrorBody)))]
pub async fn advance(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Advance>,
) -> ApiResult<Json<SubscriptionView>> {
    require(&key, Scope::Usage)?;
    let sub = subscriptions::advance(&state.core, key.mode, &id, body.fail).await?;
    Ok(Json(SubscriptionView::new(sub)))
}
