//! The contract as OpenAPI 3, generated from the handlers' annotations and the view types,
//! served at `GET /v1/openapi.json` without authentication.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    authorizations, catalog, customer_keys, customers, subscriptions, usage, views,
    webhook_endpoints,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Tally metering API", version = "1", description = "Prepaid credits and token metering. Money is a decimal string in the deployment currency; errors are {\"error\": {type, code, message, param}}."),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    paths(
        customers::create, customers::find, customers::get, customers::balance,
        customers::entitlement, customers::grant, customers::portal_session,
        customers::transactions, customers::set_plan, customers::checkout_session,
        customer_keys::create, customer_keys::list, customer_keys::revoke,
        authorizations::create, authorizations::get, authorizations::capture, authorizations::release,
        usage::record, usage::record_batch, usage::list, usage::get, usage::refund, usage::estimate,
        catalog::models, catalog::upsert_model, catalog::customer_prices,
        catalog::plans, catalog::plan, catalog::create_plan, catalog::update_plan,
        subscriptions::create, subscriptions::get, subscriptions::change, subscriptions::cancel,
        subscriptions::resume, subscriptions::advance,
        webhook_endpoints::create, webhook_endpoints::list, webhook_endpoints::get,
        webhook_endpoints::delete,
    ),
    components(schemas(views::ErrorBody))
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The document as pretty JSON.
pub fn json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
