//! Provider reconciliation, the HTTP side: reads the providers' usage reports with the
//! operator's admin keys (Anthropic's `usage_report/messages`, OpenAI's
//! `organization/usage/completions`), day by day and model by model, and hands them to
//! `core::proxy::reconcile`, which compares them with what Tally charged and stores the
//! drift. `tally reconcile-provider` and the daily worker call [`run`].

use app::core::clock::Timestamp;
use app::core::error::{Error, Result};
use app::core::proxy::reconcile::{self, DayTokens, ReportLine};
use app::core::proxy::Provider;
use app::core::store::DriftRow;
use app::core::Core;
use serde_json::Value;

use super::ProxyConfig;

/// At most this many pages of a report are read (a guard against a provider that never
/// says `has_more: false`).
const MAX_PAGES: usize = 100;

fn int(v: &Value, path: &[&str]) -> i64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return 0,
        }
    }
    cur.as_i64().unwrap_or(0)
}

async fn get_json(req: reqwest::RequestBuilder) -> Result<Value> {
    let r = req
        .send()
        .await
        .map_err(|e| Error::Unavailable(format!("usage report: {e}")))?;
    let status = r.status();
    let body: Value = r
        .json()
        .await
        .map_err(|e| Error::Unavailable(format!("usage report: {e}")))?;
    if !status.is_success() {
        return Err(Error::Unavailable(format!(
            "usage report answered {status}: {body}"
        )));
    }
    Ok(body)
}

/// Every page of a report: `request(page)` builds the request for a page (None: the
/// first); pages follow `has_more` / `next_page`, as both providers do.
async fn pages(request: impl Fn(Option<&str>) -> reqwest::RequestBuilder) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let body = get_json(request(page.as_deref())).await?;
        let next = match (body["has_more"].as_bool(), body["next_page"].as_str()) {
            (Some(true), Some(next)) => Some(next.to_string()),
            _ => None,
        };
        out.push(body);
        match next {
            Some(n) => page = Some(n),
            None => break,
        }
    }
    Ok(out)
}

/// The buckets (`data`) of every page.
fn buckets(pages: &[Value]) -> impl Iterator<Item = &Value> {
    pages
        .iter()
        .flat_map(|p| p["data"].as_array().into_iter().flatten())
}

/// The results of a bucket.
fn results(bucket: &Value) -> impl Iterator<Item = &Value> {
    bucket["results"].as_array().into_iter().flatten()
}

/// Anthropic's Admin usage report, per day and model.
pub async fn anthropic_report(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<ReportLine>> {
    let url = format!(
        "{}/v1/organizations/usage_report/messages",
        base.trim_end_matches('/')
    );
    let pages = pages(|page| {
        let mut q = vec![
            ("starting_at", from.to_rfc3339()),
            ("ending_at", to.to_rfc3339()),
            ("bucket_width", "1d".into()),
            ("group_by[]", "model".into()),
        ];
        if let Some(p) = page {
            q.push(("page", p.to_string()));
        }
        client
            .get(&url)
            .header("x-api-key", admin_key)
            .header("anthropic-version", "2023-06-01")
            .query(&q)
    })
    .await?;
    let mut out = Vec::new();
    for bucket in buckets(&pages) {
        let day = bucket["starting_at"]
            .as_str()
            .and_then(Timestamp::parse_rfc3339)
            .map(Timestamp::day_key)
            .unwrap_or_default();
        for r in results(bucket) {
            out.push(ReportLine {
                model: r["model"].as_str().unwrap_or("unknown").to_string(),
                day: day.clone(),
                tokens: DayTokens {
                    input: int(r, &["uncached_input_tokens"]),
                    output: int(r, &["output_tokens"]),
                    cache_write: int(r, &["cache_creation", "ephemeral_5m_input_tokens"])
                        + int(r, &["cache_creation", "ephemeral_1h_input_tokens"]),
                    cache_read: int(r, &["cache_read_input_tokens"]),
                },
            });
        }
    }
    Ok(out)
}

/// OpenAI's organization usage (completions), per day and model. Its `input_tokens`
/// include the cached ones, which Tally counts apart.
pub async fn openai_report(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<ReportLine>> {
    let url = format!(
        "{}/v1/organization/usage/completions",
        base.trim_end_matches('/')
    );
    let pages = pages(|page| {
        let mut q = vec![
            ("start_time", (from.micros() / 1_000_000).to_string()),
            ("end_time", (to.micros() / 1_000_000).to_string()),
            ("bucket_width", "1d".into()),
            ("group_by", "model".into()),
        ];
        if let Some(p) = page {
            q.push(("page", p.to_string()));
        }
        client.get(&url).bearer_auth(admin_key).query(&q)
    })
    .await?;
    let mut out = Vec::new();
    for bucket in buckets(&pages) {
        let day = Timestamp::from_micros(int(bucket, &["start_time"]) * 1_000_000).day_key();
        for r in results(bucket) {
            let input = int(r, &["input_tokens"]);
            let cached = int(r, &["input_cached_tokens"]);
            out.push(ReportLine {
                model: r["model"].as_str().unwrap_or("unknown").to_string(),
                day: day.clone(),
                tokens: DayTokens {
                    input: input - cached,
                    output: int(r, &["output_tokens"]),
                    cache_write: 0,
                    cache_read: cached,
                },
            });
        }
    }
    Ok(out)
}

/// Reconciles every provider that has an admin key, for `[from, to)`.
pub async fn run(
    core: &Core,
    config: &ProxyConfig,
    from: Timestamp,
    to: Timestamp,
) -> Vec<(Provider, Result<Vec<DriftRow>>)> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap_or_default();
    let mut out = Vec::new();
    for provider in [Provider::Anthropic, Provider::OpenAi] {
        let up = config.upstream(provider);
        let Some(key) = &up.admin_key else { continue };
        let report = match provider {
            Provider::Anthropic => anthropic_report(&client, &up.base_url, key, from, to).await,
            Provider::OpenAi => openai_report(&client, &up.base_url, key, from, to).await,
        };
        let rows = match report {
            Ok(r) => reconcile::record(core, provider, from, to, &r).await,
            Err(e) => Err(e),
        };
        out.push((provider, rows));
    }
    out
}
