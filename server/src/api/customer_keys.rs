//! `/v1/customers/{id}/keys…`: customer keys for the metering proxy.

use app::core::customer_keys::{self, KeyWithSpend, LimitPeriod, NewKey};
use app::core::error::Error;
use app::core::keys::{ApiKey, Scope};
use app::core::money::Money;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Amount, ApiJson, LimitPeriodName, Rfc3339};
use super::views::List;
use super::{require, ApiResult, ApiState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    #[schema(
        max_length = 200,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub name: Option<String>,
    /// The most this key's requests may be charged in `limit_period` (with what they hold).
    #[schema(value_type = Option<Amount>, example = "10.00")]
    pub spend_limit: Option<Money>,
    /// `day`, `month` or `total` (default).
    #[schema(value_type = Option<LimitPeriodName>)]
    pub limit_period: Option<String>,
    pub expires_at: Option<Rfc3339>,
}

/// A customer key; `secret` only in the answer that created it.
#[derive(Serialize, ToSchema)]
pub struct CustomerKeyView {
    /// Always `customer_key`.
    #[schema(value_type = String, example = "customer_key")]
    pub object: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub customer: String,
    pub name: String,
    #[schema(value_type = Option<String>)]
    pub spend_limit: Option<Money>,
    pub limit_period: &'static str,
    /// Charged (less refunds) in the current period of the limit.
    #[schema(value_type = String)]
    pub spent: Money,
    /// Held now by its requests in flight.
    #[schema(value_type = String)]
    pub held: Money,
    pub expires_at: Option<String>,
    pub revoked: bool,
    pub created_at: String,
}

impl CustomerKeyView {
    pub fn new(k: &KeyWithSpend, secret: Option<String>) -> CustomerKeyView {
        CustomerKeyView {
            object: "customer_key",
            id: k.key.id.clone(),
            secret,
            customer: k.key.customer_id.clone(),
            name: k.key.name.clone(),
            spend_limit: k.key.spend_limit,
            limit_period: k.key.limit_period.as_str(),
            spent: k.spent,
            held: k.held,
            expires_at: k.key.expires_at.map(|t| t.to_rfc3339()),
            revoked: k.key.revoked_at.is_some(),
            created_at: k.key.created_at.to_rfc3339(),
        }
    }
}

fn period(s: Option<&str>) -> ApiResult<Option<LimitPeriod>> {
    match s {
        None => Ok(None),
        Some(p) => LimitPeriod::parse(p).map(Some).ok_or_else(|| {
            Error::invalid("limit_period", "limit_period is day, month or total").into()
        }),
    }
}

#[utoipa::path(operation_id = "customer_keys_create", post, path = "/customers/{id}/keys", request_body = CreateKey, tag = "customers",
    params(("id" = String, Path)),
    responses((status = 201, body = CustomerKeyView), (status = 400, body = super::views::ErrorBody), (status = 404, body = super::views::ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CustomerKeyView>)> {
    require(&key, Scope::Usage)?;
    let new = NewKey {
        name: body.name,
        spend_limit: body.spend_limit,
        limit_period: period(body.limit_period.as_deref())?,
        expires_at: body.expires_at.map(|t| t.0),
    };
    let (k, secret) = customer_keys::create(&state.core, key.mode, &id, &new).await?;
    Ok((
        StatusCode::CREATED,
        Json(CustomerKeyView::new(&k, Some(secret))),
    ))
}

#[utoipa::path(operation_id = "customer_keys_list", get, path = "/customers/{id}/keys", tag = "customers",
    params(("id" = String, Path)),
    responses((status = 200, body = List<CustomerKeyView>)))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<List<CustomerKeyView>>> {
    require(&key, Scope::Read)?;
    let keys = customer_keys::list(&state.core, key.mode, &id).await?;
    Ok(Json(List {
        object: "list",
        data: keys.iter().map(|k| CustomerKeyView::new(k, None)).collect(),
        has_more: false,
    }))
}

#[utoipa::path(operation_id = "customer_keys_revoke", post, path = "/customers/{id}/keys/{key_id}/revoke", tag = "customers",
    params(("id" = String, Path), ("key_id" = String, Path)),
    responses((status = 200, body = CustomerKeyView), (status = 404, body = super::views::ErrorBody)))]
pub async fn revoke(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path((id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<CustomerKeyView>> {
    require(&key, Scope::Usage)?;
    let k = customer_keys::revoke(&state.core, key.mode, &id, &key_id).await?;
    Ok(Json(CustomerKeyView::new(&k, None)))
}
