//! The contract as OpenAPI 3, generated from the handlers' annotations and the view types
//! as the router registers them (`api::operations`), served at `GET /v1/openapi.json`
//! without authentication.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::views;

struct BearerAuth;

/// The answers every operation can give besides its own, added here once so that no
/// operation can miss them: 400 (a parameter or body refused), 401 (no or a bad key),
/// 403 (the key's scope), 404 (an id in the path or the body names nothing), 409 (an
/// `Idempotency-Key` reused or in flight, or a state conflict), 413 (a body over the
/// limit), 429 (over the key's rate, with `Retry-After`), 500 and 503. Every POST also
/// takes the optional `Idempotency-Key` header (the layer honours it on POST only), and
/// its answers carry `Idempotent-Replayed: true` when replayed.
struct StandardAnswers;

impl Modify for StandardAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::path::{HttpMethod, ParameterBuilder, ParameterIn};
        use utoipa::openapi::{Object, Ref, Required, ResponseBuilder, Type};

        let error = |description: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        let integer = || Object::with_type(Type::Integer);
        let idempotency_key = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "1-255 printable ASCII characters: the same key and request replays the first answer for the deployment's time to live (24 h by default)",
            ))
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    .pattern(Some("^[\\x20-\\x7E]+$")),
            ))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let has_id = path.contains('{');
            for (method, op) in [
                (HttpMethod::Get, item.get.as_mut()),
                (HttpMethod::Post, item.post.as_mut()),
                (HttpMethod::Patch, item.patch.as_mut()),
                (HttpMethod::Delete, item.delete.as_mut()),
            ] {
                let Some(op) = op else { continue };
                let writes = matches!(method, HttpMethod::Post | HttpMethod::Patch);
                let mut add = |status: &str, response: ResponseBuilder| {
                    op.responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| response.build().into());
                };
                add(
                    "400",
                    error("invalid request: a parameter or the body is refused (`param` names it)"),
                );
                add("401", error("missing or invalid API key"));
                add("403", error("the API key's scope does not allow this"));
                if has_id || writes {
                    add("404", error("the id in the path, or one the body names, does not exist in this key's mode"));
                }
                if writes {
                    add("409", error("the Idempotency-Key was used with another request or is in flight, or the object's state forbids this"));
                }
                if op.request_body.is_some() {
                    add(
                        "413",
                        error("the body is over the limit (1 MiB; 8 MiB for a batch)"),
                    );
                }
                add(
                    "429",
                    error("over this API key's rate").header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(integer())
                            .description(Some("seconds to wait"))
                            .build(),
                    ),
                );
                add("500", error("internal error; nothing was changed"));
                add(
                    "503",
                    error("temporarily unavailable; retry with the same Idempotency-Key"),
                );
                // Text never holds NUL (the API refuses it: PostgreSQL cannot store it).
                for param in op.parameters.iter_mut().flatten() {
                    if let Some(utoipa::openapi::RefOr::T(
                        utoipa::openapi::schema::Schema::Object(o),
                    )) = param.schema.as_mut()
                    {
                        if o.pattern.is_none() && o.format.is_none() && o.enum_values.is_none() {
                            let text = matches!(
                                &o.schema_type,
                                utoipa::openapi::schema::SchemaType::Type(Type::String)
                            ) || matches!(&o.schema_type,
                                utoipa::openapi::schema::SchemaType::Array(types) if types.contains(&Type::String));
                            if text {
                                o.pattern = Some("^[^\\u0000]*$".into());
                            }
                        }
                    }
                }
                if method == HttpMethod::Post {
                    op.parameters
                        .get_or_insert_with(Vec::new)
                        .push(idempotency_key.clone());
                    for (status, response) in op.responses.responses.iter_mut() {
                        if !status.starts_with('2') {
                            continue;
                        }
                        if let utoipa::openapi::RefOr::T(response) = response {
                            response.headers.insert(
                                "Idempotent-Replayed".into(),
                                HeaderBuilder::new()
                                    .schema(Object::with_type(Type::String))
                                    .description(Some("`true` when this is the stored answer to an earlier request with the same Idempotency-Key"))
                                    .build(),
                            );
                        }
                    }
                }
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// What the document says besides its operations: the title, the bearer scheme and the
/// error envelope. The operations come from the router (`api::operations`).
#[derive(OpenApi)]
#[openapi(
    info(title = "Tally metering API", version = "1", description = "Prepaid credits and token metering. Money is a decimal string in the deployment currency; errors are {\"error\": {type, code, message, param}}."),
    security(("api_key" = [])),
    components(schemas(views::ErrorBody, views::ErrorObject, views::ErrorType))
)]
struct Base;

pub(super) fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// Adds what every operation shares, once the router has registered them all.
pub(super) fn finish(doc: &mut utoipa::openapi::OpenApi) {
    BearerAuth.modify(doc);
    StandardAnswers.modify(doc);
    // The request bodies' schemas (answers may quote what was refused, NUL and all).
    let mut bodies = Vec::new();
    for item in doc.paths.paths.values() {
        for op in [&item.post, &item.patch, &item.put].into_iter().flatten() {
            let Some(body) = &op.request_body else {
                continue;
            };
            for content in body.content.values() {
                if let Some(utoipa::openapi::RefOr::Ref(r)) = &content.schema {
                    if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                        bodies.push(name.to_string());
                    }
                }
            }
        }
    }
    if let Some(components) = doc.components.as_mut() {
        for name in bodies {
            if let Some(utoipa::openapi::RefOr::T(schema)) = components.schemas.get_mut(&name) {
                no_nul_in_text(schema);
            }
        }
        lists_refer_to_their_items(components);
    }
}

/// utoipa writes a generic list's item schema out in full inside `List_X` and `DataList_X`;
/// where it is exactly the component `X`, the list refers to `X` instead, so a client
/// generated from the document has one type per object, not a second copy per list.
fn lists_refer_to_their_items(components: &mut utoipa::openapi::Components) {
    use utoipa::openapi::schema::{ArrayItems, Schema};
    use utoipa::openapi::{Ref, RefOr};
    let names: Vec<String> = components.schemas.keys().cloned().collect();
    for name in names {
        let Some(item) = name
            .strip_prefix("List_")
            .or_else(|| name.strip_prefix("DataList_"))
        else {
            continue;
        };
        let Some(RefOr::T(named)) = components.schemas.get(item) else {
            continue;
        };
        let named = serde_json::to_value(named).ok();
        let Some(RefOr::T(Schema::Object(list))) = components.schemas.get_mut(&name) else {
            continue;
        };
        let Some(RefOr::T(Schema::Array(data))) = list.properties.get_mut("data") else {
            continue;
        };
        if let ArrayItems::RefOrSchema(items) = &mut data.items {
            if named.is_some() && serde_json::to_value(&**items).ok() == named {
                **items = RefOr::Ref(Ref::from_schema_name(item));
            }
        }
    }
}

/// Says of every free text field of a request body (a string with no pattern, format or
/// enum of its own), at any depth, that it holds no NUL: the API refuses it (PostgreSQL cannot store it),
/// so a client generating requests from the document must not send it.
fn no_nul_in_text(schema: &mut utoipa::openapi::schema::Schema) {
    use utoipa::openapi::schema::{Schema, SchemaType};
    use utoipa::openapi::{RefOr, Type};
    match schema {
        Schema::Object(o) => {
            let text = matches!(&o.schema_type, SchemaType::Type(Type::String))
                || matches!(&o.schema_type, SchemaType::Array(types) if types.contains(&Type::String));
            if text && o.pattern.is_none() && o.format.is_none() && o.enum_values.is_none() {
                o.pattern = Some("^[^\\u0000]*$".into());
            }
            for property in o.properties.values_mut() {
                if let RefOr::T(p) = property {
                    no_nul_in_text(p);
                }
            }
        }
        Schema::Array(a) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut a.items {
                if let RefOr::T(items) = items.as_mut() {
                    no_nul_in_text(items);
                }
            }
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(|i| {
            if let RefOr::T(i) = i {
                no_nul_in_text(i);
            }
        }),
        Schema::AllOf(all) => all.items.iter_mut().for_each(|i| {
            if let RefOr::T(i) = i {
                no_nul_in_text(i);
            }
        }),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(|i| {
            if let RefOr::T(i) = i {
                no_nul_in_text(i);
            }
        }),
        _ => {}
    }
}

/// `GET /v1/openapi.json`, built once.
pub async fn document() -> Json<&'static utoipa::openapi::OpenApi> {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    Json(DOCUMENT.get_or_init(super::document))
}

/// The document as pretty JSON.
pub fn json() -> String {
    super::document()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
