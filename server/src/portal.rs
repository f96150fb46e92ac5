//! CSV exports, streamed page by page so a million rows never sit in memory:
//! `GET /portal/usage.csv` (the signed-in customer's usage in the filtered range) and
//! `GET /admin/usage.csv` (every customer's usage of one mode in a date range, for
//! accounting; staff only) and `GET /admin/ledger.csv` (every posting of one mode's
//! transactions in a date range: the books themselves; staff only).

use app::core::admin::Role;
use app::core::clock::Timestamp;
use app::core::ledger::Mode;
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

/// A staff export's checks: a member of staff signed in (viewer or admin), the mode
/// (`live` by default) and the range's days; `Err` is the answer to give instead.
async fn staff_export(
    core: &Core,
    session: &Session,
    q: &ExportQuery,
) -> Result<(Mode, Option<Timestamp>, Option<Timestamp>), Response> {
    let forbidden = || {
        (
            StatusCode::FORBIDDEN,
            "staff only: sign in at /admin/signin",
        )
            .into_response()
    };
    let Ok(Some(staff_id)) = session.get::<String>(SESSION_ADMIN).await else {
        return Err(forbidden());
    };
    match app::core::admin::staff(core, &staff_id).await {
        Ok(staff) if staff.require(Role::Viewer).is_ok() => {}
        _ => return Err(forbidden()),
    }
    let mode = match q.mode.as_deref().unwrap_or("live") {
        "live" => Mode::Live,
        "test" => Mode::Test,
        other => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("mode {other:?}: live or test"),
            )
                .into_response())
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
    match (day(&q.from, false), day(&q.to, true)) {
        (Ok(from), Ok(to)) => Ok((mode, from, to)),
        (Err(e), _) | (_, Err(e)) => Err((StatusCode::BAD_REQUEST, e).into_response()),
    }
}

/// Every customer's usage of one mode in a date range, newest first, with the customer's
/// id on each row; for a member of staff (viewer or admin).
pub async fn admin_usage_csv(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ExportQuery>,
) -> Response {
    let core = state.core.clone();
    let (mode, from, to) = match staff_export(&core, &session, &q).await {
        Ok(checked) => checked,
        Err(answer) => return answer,
    };
    let filter = UsageFilter {
        mode: mode.to_string(),
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

/// Every posting of one mode's transactions in a date range, in the order they were
/// written: the books as an accountant imports them. Each transaction's postings sum to
/// zero, so the file's amounts do too.
pub async fn admin_ledger_csv(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ExportQuery>,
) -> Response {
    let core = state.core.clone();
    let (mode, from, to) = match staff_export(&core, &session, &q).await {
        Ok(checked) => checked,
        Err(answer) => return answer,
    };
    let header_line =
        "time,transaction_id,kind,reference,account_id,account_kind,bucket,amount\n".to_string();
    let stream = futures::stream::unfold((Some(0i64), true), move |(after, first)| {
        let core = core.clone();
        let header_line = header_line.clone();
        async move {
            let after = after?;
            if first {
                return Some((Ok::<_, std::io::Error>(header_line), (Some(after), false)));
            }
            let lines = match app::core::console::posting_lines(&core, mode, from, to, after, PAGE)
                .await
            {
                Ok(l) => l,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), (None, false))),
            };
            let last = lines.last()?.id;
            let mut chunk = String::new();
            for p in &lines {
                chunk.push_str(&format!(
                    "{},{},{},{},{},{},{},{}\n",
                    p.at.to_rfc3339(),
                    p.transaction_id,
                    p.kind,
                    csv_field(&p.reference),
                    p.account_id,
                    p.account_kind,
                    p.bucket,
                    p.amount
                ));
            }
            let next = ((lines.len() as i64) == PAGE).then_some(last);
            Some((Ok(chunk), (next, false)))
        }
    });
    csv_response(Body::from_stream(stream), "ledger.csv")
}

fn csv_response(body: Body, name: &str) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
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
    csv_response(Body::from_stream(stream), name)
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
