//! Extractors that fail in the contract's format: a JSON body (400 with the `param` that
//! is wrong, 413 when too large) and a query string.

use app::core::clock::Timestamp;
use app::core::error::Error;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::ApiError;

/// A JSON body parsed strictly.
pub struct ApiJson<T>(pub T);

fn bad(param: Option<String>, message: String) -> ApiError {
    ApiError::Core(Error::Invalid {
        code: "invalid",
        message,
        param,
    })
}

/// Parses JSON bytes, naming the offending field in `param`. JSON has one number type:
/// `150.0` is the integer 150 (as JSON Schema, and so the OpenAPI document, say), so a body
/// refused for a whole number written with a fraction is read again with such numbers as
/// integers (outside `metadata`, which is kept as sent). The common body takes one pass.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    refuse_nul_in_json(bytes)?;
    let first = parse_strict(bytes);
    if first.is_ok() {
        return first;
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return first;
    };
    if !integral_floats_to_integers(&mut value) {
        return first;
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let param = (!path.is_empty() && path != ".").then_some(path);
        bad(param, e.into_inner().to_string())
    })
}

/// Refuses a body holding NUL in any string, naming where (see [`crate::nul`]).
fn refuse_nul_in_json(bytes: &[u8]) -> Result<(), ApiError> {
    match crate::nul::in_json(bytes) {
        None => Ok(()),
        Some(param) => Err(bad(
            (!param.is_empty()).then_some(param),
            "text must not contain NUL (\\u0000)".into(),
        )),
    }
}

/// Refuses a path or query holding an encoded NUL (`%00`), for the same reason as in a body.
pub async fn refuse_nul_in_uri(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if crate::nul::in_uri(req.uri()) {
        return bad(None, "the path and query must not contain NUL (%00)".into()).into_response();
    }
    next.run(req).await
}

/// Rewrites every float with no fraction (and within 2^53, where floats are exact) as an
/// integer, except under `metadata`; whether it changed anything.
fn integral_floats_to_integers(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    const EXACT: f64 = 9_007_199_254_740_992.0;
    match value {
        Value::Number(n) if n.is_f64() => {
            #[allow(clippy::float_arithmetic, clippy::float_cmp)]
            let whole = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= EXACT);
            #[allow(clippy::cast_possible_truncation)]
            match whole {
                Some(f) => {
                    *value = Value::from(f as i64);
                    true
                }
                None => false,
            }
        }
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= integral_floats_to_integers(item);
            }
            changed
        }
        Value::Object(fields) => {
            let mut changed = false;
            for (key, field) in fields {
                if key != "metadata" {
                    changed |= integral_floats_to_integers(field);
                }
            }
            changed
        }
        _ => false,
    }
}

fn parse_strict<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("malformed JSON: {inner}")
        } else {
            inner.to_string()
        };
        let param = (!path.is_empty() && path != ".").then_some(path);
        bad(param, message)
    })
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rej| {
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                bad(None, rej.body_text())
            }
        })?;
        if bytes.is_empty() {
            return Err(bad(None, "a JSON body is required".into()));
        }
        parse_json(&bytes).map(ApiJson)
    }
}

/// A query string parsed strictly.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let param = (!path.is_empty() && path != ".").then_some(path);
                bad(param, e.into_inner().to_string())
            })
    }
}

/// An RFC 3339 time in a request.
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(pub Timestamp);

fn string_schema(
    format: Option<utoipa::openapi::SchemaFormat>,
    pattern: Option<&str>,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .format(format)
        .pattern(pattern)
        .examples([example])
        .into()
}

impl utoipa::PartialSchema for Rfc3339 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(
            Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )),
            None,
            "2026-11-24T12:00:00Z",
        )
    }
}

impl utoipa::ToSchema for Rfc3339 {}

/// A string out of a fixed list (the schema of a field parsed into a domain enum).
fn one_of(values: Vec<String>) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(values))
        .into()
}

/// A webhook event type, or `*` for every one (`app::core::vocab::EventType`).
pub struct EventTypeName;

impl utoipa::PartialSchema for EventTypeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let types = app::core::vocab::EventType::ALL.iter().map(|t| t.as_str());
        one_of(
            std::iter::once("*")
                .chain(types)
                .map(String::from)
                .collect(),
        )
    }
}

impl utoipa::ToSchema for EventTypeName {}

/// How a request ended (`app::core::pricing::Outcome`).
pub struct OutcomeName;

impl utoipa::PartialSchema for OutcomeName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use app::core::pricing::Outcome;
        one_of(
            [Outcome::Succeeded, Outcome::Failed, Outcome::Cancelled]
                .iter()
                .map(|o| o.as_str().to_string())
                .collect(),
        )
    }
}

impl utoipa::ToSchema for OutcomeName {}

/// The period a customer key's spend limit counts over.
pub struct LimitPeriodName;

impl utoipa::PartialSchema for LimitPeriodName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        one_of(["day", "month", "total"].map(String::from).to_vec())
    }
}

impl utoipa::ToSchema for LimitPeriodName {}

/// Money in a request that cannot be negative: a decimal string in the deployment's
/// currency, up to 9 decimals (the schema of `Money` fields; `Money::parse` decides).
pub struct Amount;

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(None, Some("^[0-9]{1,9}(\\.[0-9]{1,9})?$"), "12.50")
    }
}

impl utoipa::ToSchema for Amount {}

/// A rate per million tokens: an [`Amount`] of at most 9999999.999999999
/// (`core::pricing::MAX_RATE`).
pub struct Rate;

impl utoipa::PartialSchema for Rate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(None, Some("^[0-9]{1,7}(\\.[0-9]{1,9})?$"), "3.00")
    }
}

impl utoipa::ToSchema for Rate {}

/// Money in a request that may be negative (a grant that takes credit back).
pub struct SignedAmount;

impl utoipa::PartialSchema for SignedAmount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_schema(None, Some("^-?[0-9]{1,9}(\\.[0-9]{1,9})?$"), "-5.00")
    }
}

impl utoipa::ToSchema for SignedAmount {}

impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rfc3339, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s).map(Rfc3339).ok_or_else(|| {
            serde::de::Error::custom("expected an RFC 3339 time like 2026-11-24T12:00:00Z")
        })
    }
}

/// A list's cursor: `starting_after` (older than an id) or `ending_before` (newer), not
/// both.
pub fn one_cursor(
    starting_after: &Option<String>,
    ending_before: &Option<String>,
) -> Result<(), ApiError> {
    if starting_after.is_some() && ending_before.is_some() {
        return Err(ApiError::Core(Error::invalid(
            "ending_before",
            "give starting_after or ending_before, not both",
        )));
    }
    Ok(())
}

/// The `limit` of a list: 1–1000, default 50.
pub fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(50),
        Some(l) if (1..=1000).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::Core(Error::invalid(
            "limit",
            "limit must be between 1 and 1000",
        ))),
    }
}

/// Checks an optional return URL (`success_url`, `cancel_url`): http(s), at most 2048 bytes.
pub fn return_url(param: &str, url: &Option<String>) -> Result<(), ApiError> {
    if let Some(u) = url {
        if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2048 {
            return Err(Error::invalid(param, format!("{param} must be an http(s) URL")).into());
        }
    }
    Ok(())
}
