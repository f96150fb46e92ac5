//! `GET /portal/usage.csv`: the signed-in customer's usage in the filtered range, streamed
//! page by page so a million rows never sit in memory.

use app::core::portal;
use app::pages::portal::{usage_filter, UsageQuery, SESSION_CUSTOMER};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
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
    let mut filter = match usage_filter(&customer, &UsageQuery { after: None, ..q }) {
        Ok(f) => f,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    filter.limit = PAGE;
    let header_line = "time,request_id,model,outcome,input_tokens,output_tokens,cache_creation_input_tokens,cache_read_input_tokens,cost\n";
    let stream = futures::stream::unfold((Some(filter), true), move |(filter, first)| {
        let core = core.clone();
        async move {
            let mut filter = filter?;
            if first {
                return Some((
                    Ok::<_, std::io::Error>(header_line.to_string()),
                    (Some(filter), false),
                ));
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
                chunk.push_str(&format!(
                    "{},{},{},{},{},{},{},{},{}\n",
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
            "attachment; filename=\"usage.csv\"",
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
