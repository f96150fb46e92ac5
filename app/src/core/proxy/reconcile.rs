//! Provider reconciliation: Tally's recorded tokens of proxied requests per model and day
//! against the provider's own usage report. The HTTP side (`server::proxy::reconcile`)
//! fetches the report; here it is compared and stored, so the console can show the drift.
//!
//! Model names: providers report dated ids (`claude-sonnet-4-5-20250929`), the price book
//! holds what clients send (often the alias). A provider's model is matched to the longest
//! Tally model id it starts with; both sides are then summed per (Tally model, day).

use std::collections::BTreeMap;

use super::Provider;
use crate::core::clock::Timestamp;
use crate::core::error::Result;
use crate::core::ids;
use crate::core::store::DriftRow;
use crate::core::Core;

/// Token counts of one model on one day, in the contract's four disjoint classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DayTokens {
    pub input: i64,
    pub output: i64,
    pub cache_write: i64,
    pub cache_read: i64,
}

impl DayTokens {
    fn add(&mut self, o: &DayTokens) {
        self.input += o.input;
        self.output += o.output;
        self.cache_write += o.cache_write;
        self.cache_read += o.cache_read;
    }
}

/// One line of a provider's report: (model as the provider names it, day `YYYY-MM-DD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportLine {
    pub model: String,
    pub day: String,
    pub tokens: DayTokens,
}

/// Whether a provider reconciliation is due: the last run of some provider is more than a
/// day old (or there was none).
pub async fn due(core: &Core) -> Result<bool> {
    let now = core.clock.now();
    for p in [Provider::Anthropic, Provider::OpenAi] {
        match core.store.last_drift_at(p.as_str()).await? {
            Some(t) if t > now.plus_seconds(-86_400) => {}
            _ => return Ok(true),
        }
    }
    Ok(false)
}

/// The Tally model a provider's model name stands for: the longest id it starts with.
pub fn match_model<'a>(provider_model: &str, ids: &'a [String]) -> Option<&'a str> {
    ids.iter()
        .filter(|id| provider_model == id.as_str() || provider_model.starts_with(&format!("{id}-")))
        .max_by_key(|id| id.len())
        .map(String::as_str)
}

/// The drift per (model, day): both sides, matched by model.
pub fn compare(
    provider: &[ReportLine],
    tally: &[ReportLine],
    ids: &[String],
) -> BTreeMap<(String, String), (DayTokens, DayTokens)> {
    let mut out: BTreeMap<(String, String), (DayTokens, DayTokens)> = BTreeMap::new();
    for line in tally {
        out.entry((line.model.clone(), line.day.clone()))
            .or_default()
            .0
            .add(&line.tokens);
    }
    for line in provider {
        let model = match_model(&line.model, ids)
            .unwrap_or(&line.model)
            .to_string();
        out.entry((model, line.day.clone()))
            .or_default()
            .1
            .add(&line.tokens);
    }
    out
}

/// Compares a provider's report for `[from, to)` with what Tally recorded (live mode's
/// proxied requests) and stores the drift as one run. Returns the run's rows.
pub async fn record(
    core: &Core,
    provider: Provider,
    from: Timestamp,
    to: Timestamp,
    report: &[ReportLine],
) -> Result<Vec<DriftRow>> {
    let tally = core
        .store
        .proxied_tokens_by_day(provider.as_str(), "live", from, to)
        .await?
        .into_iter()
        .map(|r| ReportLine {
            model: r.model,
            day: r.day,
            tokens: DayTokens {
                input: r.input,
                output: r.output,
                cache_write: r.cache_write,
                cache_read: r.cache_read,
            },
        })
        .collect::<Vec<_>>();
    let ids: Vec<String> = core
        .store
        .models("live")
        .await?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let run_id = ids::new_id("drift");
    let now = core.clock.now();
    let rows: Vec<DriftRow> = compare(report, &tally, &ids)
        .into_iter()
        .map(|((model, day), (t, p))| DriftRow {
            id: ids::new_id("dr"),
            run_id: run_id.clone(),
            provider: provider.as_str().into(),
            day,
            model,
            tally_input: t.input,
            tally_output: t.output,
            tally_cache_write: t.cache_write,
            tally_cache_read: t.cache_read,
            provider_input: p.input,
            provider_output: p.output,
            provider_cache_write: p.cache_write,
            provider_cache_read: p.cache_read,
            created_at: now,
        })
        .collect();
    let mut tx = core.store.begin().await?;
    for r in &rows {
        tx.insert_drift(r).await?;
    }
    tx.commit().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_provider_models_match_the_longest_alias() {
        let ids = vec![
            "claude-sonnet-4".to_string(),
            "claude-sonnet-4-5".to_string(),
            "gpt-4o".to_string(),
            "gpt-4o-mini".to_string(),
        ];
        assert_eq!(
            match_model("claude-sonnet-4-5-20250929", &ids),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(
            match_model("claude-sonnet-4-20250514", &ids),
            Some("claude-sonnet-4")
        );
        assert_eq!(
            match_model("gpt-4o-mini-2024-07-18", &ids),
            Some("gpt-4o-mini")
        );
        assert_eq!(match_model("gpt-4o", &ids), Some("gpt-4o"));
        assert_eq!(match_model("o3", &ids), None);
    }

    #[test]
    fn both_sides_are_summed_per_model_and_day() {
        let t = |input| DayTokens {
            input,
            ..DayTokens::default()
        };
        let ids = vec!["m".to_string()];
        let provider = [
            ReportLine {
                model: "m-2025".into(),
                day: "2026-12-01".into(),
                tokens: t(70),
            },
            ReportLine {
                model: "m".into(),
                day: "2026-12-01".into(),
                tokens: t(40),
            },
        ];
        let tally = [ReportLine {
            model: "m".into(),
            day: "2026-12-01".into(),
            tokens: t(100),
        }];
        let out = compare(&provider, &tally, &ids);
        let (mine, theirs) = out[&("m".to_string(), "2026-12-01".to_string())];
        assert_eq!((mine.input, theirs.input), (100, 110));
    }
}
