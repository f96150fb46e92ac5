//! CSV exports, streamed page by page so a million rows never sit in memory:
//! `GET /portal/usage.csv` (the signed-in customer's usage in the filtered range) and
//! `GET /admin/usage.csv` (every customer's usage of one mode in a date range, for
//! accounting; staff only).

use app::core::admin::Role;
use app::core::clock::Timestamp;
use app::core::portal;
use app::core::store::UsageFilter;
use app::core::Core;
use app::pages::admin::SESSION_ADMIN;
use app::pages::portal::{usage_filter, UsageQuery, SESSION_CUSTOMER};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tower_sessions::Session;

use crate::AppState;

const PAGE: i64 = 1_000;

pub async fn usage_csv(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<UsageQuery>,
) -> Response {
    let Ok(Some(customer_id)) = session.get::<String>(SESSION_CUSTOMER).await else {
        return (StatusCode::FORBIDDEN, "sign in first").into_response();
    };
    let core = state.core.clone();
    let customer = match portal::customer(&core, &customer_id).await {
        Ok(c) => c,
        Err(_) => return (StatusCode::FORBIDDEN, "sign in first").into_response(),
    };
    let filter = match usage_filter(&customer, &UsageQuery { after: None, ..q }) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    usage_rows(core, filter, false, "usage.csv")
}

/// What `/admin/usage.csv` takes: a mode (`live` by default) and UTC days, `to` inclusive.
#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    pub mode: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Every customer's usage of one mode in a date range, newest first, with the customer's
/// id on each row; for a member of staff (viewer or admin).
pub async fn admin_usage_csv(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ExportQuery>,
) -> Response {
    let core = state.core.clone();
    let Ok(Some(staff_id)) = session.get::<String>(SESSION_ADMIN).await else {
        return (
            StatusCode::FORBIDDEN,
            "staff only: sign in at /admin/signin",
        )
            .into_response();
    };
    match app::core::admin::staff(&core, &staff_id).await {
        Ok(staff) if staff.require(Role::Viewer).is_ok() => {}
        _ => {
            return (
                StatusCode::FORBIDDEN,
                "staff only: sign in at /admin/signin",
            )
                .into_response()
        }
    }
    let mode = match q.mode.as_deref().unwrap_or("live") {
        m @ ("live" | "test") => m.to_string(),
        other => {
            return (
                StatusCode::BAD_REQUEST,
                format!("mode {other:?}: live or test"),
            )
                .into_response()
        }
    };
    let day = |d: &Option<String>, end: bool| -> Result<Option<Timestamp>, String> {
        match d.as_deref().filter(|d| !d.is_empty()) {
            None => Ok(None),
            Some(d) => Timestamp::parse_rfc3339(&format!("{d}T00:00:00Z"))
                .map(|t| Some(if end { t.plus_seconds(86_400) } else { t }))
                .ok_or_else(|| format!("{d} is not a date like 2026-11-24")),
        }
    };
    let (from, to) = match (day(&q.from, false), day(&q.to, true)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let filter = UsageFilter {
        mode,
        customer_id: None,
        model: None,
        from,
        to,
        starting_after: None,
        ending_before: None,
        conversation: None,
        limit: PAGE,
    };
    usage_rows(core, filter, true, "usage-all-customers.csv")
}

/// Streams the usage `filter` selects as CSV, a page of `PAGE` rows at a time, newest
/// first; with the customer's id on each row when `customers` is set.
fn usage_rows(core: Core, mut filter: UsageFilter, customers: bool, name: &str) -> Response {
    filter.limit = PAGE;
    let header_line = format!(
        "time,{}request_id,model,outcome,input_tokens,output_tokens,cache_creation_input_tokens,cache_read_input_tokens,cost\n",
        if customers { "customer_id," } else { "" }
    );
    let stream = futures::stream::unfold((Some(filter), true), move |(filter, first)| {
        let core = core.clone();
        let header_line = header_line.clone();
        async move {
            let mut filter = filter?;
            if first {
                return Some((Ok::<_, std::io::Error>(header_line), (Some(filter), false)));
            }
            let rows = match app::core::metering::list_usage(&core, &filter).await {
                Ok(r) => r,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), (None, false))),
            };
            if rows.is_empty() {
                return None;
            }
            let mut chunk = String::new();
            for e in &rows {
                let customer = if customers {
                    format!("{},", csv_field(&e.customer_id))
                } else {
                    String::new()
                };
                chunk.push_str(&format!(
                    "{},{customer}{},{},{},{},{},{},{},{}\n",
                    e.occurred_at.to_rfc3339(),
                    csv_field(&e.request_id),
                    csv_field(&e.model),
                    e.outcome.as_str(),
                    e.input_tokens,
                    e.output_tokens,
                    e.cache_creation_input_tokens,
                    e.cache_read_input_tokens,
                    e.cost
                ));
            }
            let next = if (rows.len() as i64) < PAGE {
                None
            } else {
                filter.starting_after = rows.last().map(|e| e.id.clone());
                Some(filter)
            };
            Some((Ok(chunk), (next, false)))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Quotes a field when it needs it, and defuses spreadsheet formulas.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}
