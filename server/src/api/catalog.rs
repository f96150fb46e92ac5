//! `/v1/models`, `/v1/plans…` and `/v1/customers/{id}/prices`: the price book and plans.

use app::core::admin::Actor;
use app::core::keys::{ApiKey, Scope};
use app::core::metering;
use app::core::money::Money;
use app::core::plans;
use app::core::pricing::{ModelPrice, PlanTerms, Rates};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{ApiJson, Rate};
use super::views::{DataList, ModelView, PlanView};
use super::{require, ApiResult, ApiState};

#[utoipa::path(operation_id = "catalog_models", get, path = "/models", tag = "prices", responses((status = 200, body = DataList<ModelView>)))]
pub async fn models(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
) -> ApiResult<Json<DataList<ModelView>>> {
    require(&key, Scope::Read)?;
    let data = plans::models(&state.core.store, key.mode).await?;
    Ok(Json(DataList {
        object: "list",
        data: data.iter().map(ModelView::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertModel {
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\u0000]+$")]
    pub id: String,
    #[schema(pattern = "^[^\\u0000]*$")]
    pub provider: String,
    #[schema(value_type = Rate)]
    pub input: Money,
    #[schema(value_type = Rate)]
    pub output: Money,
    #[schema(value_type = Rate)]
    pub cache_write: Money,
    #[schema(value_type = Rate)]
    pub cache_read: Money,
    /// Anthropic's one-hour cache write; twice `input` when absent.
    #[schema(value_type = Option<Rate>)]
    pub cache_write_1h: Option<Money>,
    #[schema(maximum = 100)]
    pub batch_discount_percent: u32,
    /// Why (kept in the audit log); "changed through the API" when absent.
    #[schema(max_length = 500, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub reason: Option<String>,
}

/// What the audit log says when an API call gives no reason.
const API_REASON: &str = "changed through the API";

/// Adds a model to the key's mode's price book or gives it new rates: a new price version,
/// effective now (admin).
#[utoipa::path(operation_id = "catalog_upsert_model", post, path = "/models", request_body = UpsertModel, tag = "prices",
    responses((status = 200, body = ModelView)))]
pub async fn upsert_model(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(b): ApiJson<UpsertModel>,
) -> ApiResult<Json<ModelView>> {
    require(&key, Scope::Admin)?;
    let m = plans::upsert_model(
        &state.core.store,
        key.mode,
        &ModelPrice::proposed(
            &b.id,
            &b.provider,
            Rates {
                input: b.input,
                output: b.output,
                cache_write: b.cache_write,
                cache_read: b.cache_read,
                cache_write_1h: b.cache_write_1h,
            },
            b.batch_discount_percent,
        ),
        &Actor::ApiKey(key.id.clone()),
        b.reason.as_deref().unwrap_or(API_REASON),
        state.core.clock.now(),
    )
    .await?;
    Ok(Json(ModelView::from(&m)))
}

#[utoipa::path(operation_id = "catalog_customer_prices", get, path = "/customers/{id}/prices", tag = "prices", params(("id" = String, Path)),
    responses((status = 200, body = DataList<ModelView>)))]
pub async fn customer_prices(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<DataList<ModelView>>> {
    require(&key, Scope::Read)?;
    let data = metering::customer_prices(&state.core, key.mode, &id).await?;
    Ok(Json(DataList {
        object: "list",
        data: data.iter().map(ModelView::from).collect(),
    }))
}

#[utoipa::path(operation_id = "catalog_plans", get, path = "/plans", tag = "plans", responses((status = 200, body = DataList<PlanView>)))]
pub async fn plans(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
) -> ApiResult<Json<DataList<PlanView>>> {
    require(&key, Scope::Read)?;
    let data = plans::plans(&state.core.store, key.mode).await?;
    Ok(Json(DataList {
        object: "list",
        data: data.iter().map(PlanView::from).collect(),
    }))
}

#[utoipa::path(operation_id = "catalog_plan", get, path = "/plans/{id}", tag = "plans", params(("id" = String, Path)), responses((status = 200, body = PlanView)))]
pub async fn plan(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<PlanView>> {
    require(&key, Scope::Read)?;
    let p = plans::plan(&state.core.store, key.mode, &id).await?;
    Ok(Json(PlanView::from(&p)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    #[schema(pattern = "^[a-z0-9_-]{1,64}$")]
    pub id: Option<String>,
    #[schema(max_length = 200, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub name: String,
    /// The plan's terms; every field has a default (`{}` is list prices).
    #[serde(default)]
    pub terms: Option<PlanTerms>,
    /// Why (kept in the audit log); "changed through the API" when absent.
    #[schema(max_length = 500, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub reason: Option<String>,
}

#[utoipa::path(operation_id = "catalog_create_plan", post, path = "/plans", request_body = CreatePlan, tag = "plans",
    responses((status = 201, body = PlanView)))]
pub async fn create_plan(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(b): ApiJson<CreatePlan>,
) -> ApiResult<(StatusCode, Json<PlanView>)> {
    require(&key, Scope::Admin)?;
    let p = plans::create(
        &state.core.store,
        key.mode,
        b.id.as_deref(),
        &b.name,
        &b.terms.unwrap_or_default(),
        &Actor::ApiKey(key.id.clone()),
        b.reason.as_deref().unwrap_or(API_REASON),
        state.core.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(PlanView::from(&p))))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePlan {
    #[schema(max_length = 200, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub name: Option<String>,
    /// Terms to change, as in `PlanTerms`; fields not given keep their current value.
    #[serde(default)]
    #[schema(value_type = PlanTerms)]
    pub terms: serde_json::Map<String, serde_json::Value>,
    /// Why (kept in the audit log); "changed through the API" when absent.
    #[schema(max_length = 500, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub reason: Option<String>,
}

/// Edits a plan: a new version, effective now; past usage keeps its version.
#[utoipa::path(operation_id = "catalog_update_plan", patch, path = "/plans/{id}", request_body = UpdatePlan, tag = "plans", params(("id" = String, Path)),
    responses((status = 200, body = PlanView)))]
pub async fn update_plan(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(b): ApiJson<UpdatePlan>,
) -> ApiResult<Json<PlanView>> {
    require(&key, Scope::Admin)?;
    let p = plans::update(
        &state.core.store,
        key.mode,
        &id,
        b.name.as_deref(),
        &b.terms,
        &Actor::ApiKey(key.id.clone()),
        b.reason.as_deref().unwrap_or(API_REASON),
        state.core.clock.now(),
    )
    .await?;
    Ok(Json(PlanView::from(&p)))
}
