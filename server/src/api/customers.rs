//! `/v1/customers…`: create, find, balance, entitlement, grants, portal sessions,
//! transactions, plan.

use app::core::admin::Actor;
use app::core::customers::{self, GrantRequest, NewCustomer};
use app::core::error::Error;
use app::core::keys::{ApiKey, Scope};
use app::core::money::Money;
use app::core::payments;
use app::core::plans;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::extract::{
    one_cursor, page_limit, return_url, Amount, ApiJson, ApiQuery, Rfc3339, SignedAmount,
};
use super::views::{
    BalanceView, CheckoutSessionView, CustomerView, EntitlementView, GrantView, List,
    PortalSessionView, TransactionView,
};
use super::{require, ApiResult, ApiState};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub external_id: String,
    /// An address as the API checks it: something, `@`, then a host with a dot that does not
    /// end with one (no stricter `format: email`, which the API does not enforce).
    #[schema(
        max_length = 320,
        pattern = "^[^@\\u0000-\\u001F\\u007F-\\u009F]+@[^\\u0000-\\u001F\\u007F-\\u009F]*\\.[^.\\u0000-\\u001F\\u007F-\\u009F]*[^.\\u0000-\\u001F\\u007F-\\u009F]$"
    )]
    pub email: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    pub name: Option<String>,
    pub plan: Option<String>,
}

async fn view(state: &ApiState, c: &app::core::store::CustomerRow) -> ApiResult<CustomerView> {
    let plan = plans::of_customer(&state.core.store, c).await?;
    Ok(CustomerView::new(c, &plan))
}

#[utoipa::path(operation_id = "customers_create", post, path = "/customers", request_body = CreateCustomer, tag = "customers",
    responses((status = 201, body = CustomerView), (status = 400, body = super::views::ErrorBody), (status = 409, body = super::views::ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiJson(body): ApiJson<CreateCustomer>,
) -> ApiResult<(StatusCode, Json<CustomerView>)> {
    require(&key, Scope::Usage)?;
    let c = customers::create(
        &state.core,
        key.mode,
        &NewCustomer {
            external_id: body.external_id,
            email: body.email,
            name: body.name,
            plan: body.plan,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&state, &c).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    pub external_id: Option<String>,
}

#[utoipa::path(operation_id = "customers_find", get, path = "/customers", tag = "customers", params(("external_id" = String, Query)),
    responses((status = 200, body = List<CustomerView>)))]
pub async fn find(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    ApiQuery(q): ApiQuery<FindQuery>,
) -> ApiResult<Json<List<CustomerView>>> {
    require(&key, Scope::Read)?;
    let Some(external_id) = q.external_id else {
        return Err(Error::invalid("external_id", "external_id is required").into());
    };
    let data = match customers::by_external_id(&state.core, key.mode, &external_id).await {
        Ok(c) => vec![view(&state, &c).await?],
        Err(Error::NotFound(_)) => vec![],
        Err(e) => return Err(e.into()),
    };
    Ok(Json(List {
        object: "list",
        data,
        has_more: false,
    }))
}

#[utoipa::path(operation_id = "customers_get", get, path = "/customers/{id}", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = CustomerView), (status = 404, body = super::views::ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<CustomerView>> {
    require(&key, Scope::Read)?;
    let c = customers::get(&state.core, key.mode, &id).await?;
    Ok(Json(view(&state, &c).await?))
}

#[utoipa::path(operation_id = "customers_balance", get, path = "/customers/{id}/balance", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = BalanceView)))]
pub async fn balance(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<BalanceView>> {
    require(&key, Scope::Read)?;
    let c = customers::get(&state.core, key.mode, &id).await?;
    let plan = plans::of_customer(&state.core.store, &c).await?;
    Ok(Json(BalanceView::new(
        &c,
        &plan,
        state.core.payments.currency(),
    )))
}

#[utoipa::path(operation_id = "customers_entitlement", get, path = "/customers/{id}/entitlement", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = EntitlementView)))]
pub async fn entitlement(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<EntitlementView>> {
    require(&key, Scope::Read)?;
    let c = customers::get(&state.core, key.mode, &id).await?;
    let e = customers::entitlement(&state.core, &c).await?;
    Ok(Json(EntitlementView {
        object: "entitlement",
        entitled: e.entitled,
        reason: e.reason,
        available: e.available,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGrant {
    #[schema(value_type = SignedAmount, example = "5.00")]
    pub amount: Money,
    #[schema(
        max_length = 500,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    pub reason: String,
    pub expires_at: Option<Rfc3339>,
}

#[utoipa::path(operation_id = "customers_grant", post, path = "/customers/{id}/grants", request_body = CreateGrant, tag = "customers", params(("id" = String, Path)),
    responses((status = 201, body = GrantView)))]
pub async fn grant(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    require(&key, Scope::Admin)?;
    let (posted, grant) = customers::grant_with_row(
        &state.core,
        key.mode,
        &id,
        &GrantRequest {
            amount: body.amount,
            reason: body.reason,
            expires_at: body.expires_at.map(|t| t.0),
            actor: format!("api_key:{}", key.id),
            reference: None,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(GrantView {
            object: "grant",
            id: grant.id,
            customer: id,
            amount: grant.amount,
            reason: posted.transaction.reason.clone(),
            expires_at: grant.expires_at.map(|t| t.to_rfc3339()),
            transaction: posted.transaction.id.clone(),
            created_at: grant.created_at.to_rfc3339(),
        }),
    ))
}

#[utoipa::path(operation_id = "customers_portal_session", post, path = "/customers/{id}/portal_sessions", tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = PortalSessionView)))]
pub async fn portal_session(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
) -> ApiResult<Json<PortalSessionView>> {
    require(&key, Scope::Usage)?;
    let (token, expires_at) = customers::portal_link(&state.core, key.mode, &id, 15 * 60).await?;
    Ok(Json(PortalSessionView {
        object: "portal_session",
        url: format!(
            "{}/portal/login?token={token}",
            state.config.public_url.trim_end_matches('/')
        ),
        expires_at: expires_at.to_rfc3339(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<i64>,
    pub starting_after: Option<String>,
    pub ending_before: Option<String>,
}

#[utoipa::path(operation_id = "customers_transactions", get, path = "/customers/{id}/transactions", tag = "customers",
    params(("id" = String, Path), ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000), ("starting_after" = Option<String>, Query), ("ending_before" = Option<String>, Query)),
    responses((status = 200, body = List<TransactionView>)))]
pub async fn transactions(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<List<TransactionView>>> {
    require(&key, Scope::Read)?;
    let limit = page_limit(q.limit)?;
    one_cursor(&q.starting_after, &q.ending_before)?;
    let c = customers::get(&state.core, key.mode, &id).await?;
    let rows = state
        .core
        .store
        .list_transactions(
            &c.account_id,
            q.starting_after.as_deref(),
            q.ending_before.as_deref(),
            limit + 1,
        )
        .await?;
    Ok(Json(List::page_of(
        rows.iter().map(TransactionView::from).collect(),
        limit,
        q.ending_before.is_some(),
    )))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPlan {
    pub plan: String,
    /// Why (kept in the audit log); "changed through the API" when absent.
    #[schema(max_length = 500, pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$")]
    pub reason: Option<String>,
}

#[utoipa::path(operation_id = "customers_set_plan", post, path = "/customers/{id}/plan", request_body = SetPlan, tag = "customers", params(("id" = String, Path)),
    responses((status = 200, body = CustomerView)))]
pub async fn set_plan(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetPlan>,
) -> ApiResult<Json<CustomerView>> {
    require(&key, Scope::Admin)?;
    let c = customers::set_plan(
        &state.core,
        key.mode,
        &id,
        &body.plan,
        &Actor::ApiKey(key.id.clone()),
        body.reason.as_deref().unwrap_or("changed through the API"),
    )
    .await?;
    Ok(Json(view(&state, &c).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCheckoutSession {
    /// Whole cents, between 1.00 and 10000.00.
    #[schema(value_type = Amount, example = "25.00")]
    pub amount: Money,
    /// Where Stripe sends the customer after paying; `{CHECKOUT_SESSION_ID}` is replaced.
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

#[utoipa::path(operation_id = "customers_checkout_session", post, path = "/customers/{id}/checkout_sessions",
    request_body = CreateCheckoutSession, tag = "customers", params(("id" = String, Path)),
    responses((status = 201, body = CheckoutSessionView)))]
pub async fn checkout_session(
    State(state): State<ApiState>,
    Extension(key): Extension<ApiKey>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateCheckoutSession>,
) -> ApiResult<(StatusCode, Json<CheckoutSessionView>)> {
    require(&key, Scope::Usage)?;
    return_url("success_url", &body.success_url)?;
    return_url("cancel_url", &body.cancel_url)?;
    let topup = payments::create_topup(
        &state.core,
        key.mode,
        &id,
        body.amount,
        payments::TopupSource::Api,
        body.success_url.as_deref(),
        body.cancel_url.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CheckoutSessionView {
            object: "checkout.session",
            id: topup.checkout_session_id.unwrap_or_default(),
            url: topup.checkout_url.unwrap_or_default(),
            amount: topup.amount,
            status: "open".into(),
            topup: topup.id,
        }),
    ))
}
