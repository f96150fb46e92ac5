//! What-if re-rating: "this customer's (or everyone's) usage from A to B would have cost X
//! under plan version V, against Y charged". Read-only: it prices recorded events again with
//! the pure `pricing` module and writes nothing.
//!
//! Each event is priced with the chosen plan version and the price book as it stood when the
//! event was recorded (or at a chosen instant), at the tier the customer's month would have
//! been in under that plan: the month's tokens are counted from the events of that calendar
//! month (UTC, by when they occurred), starting with those before A.

use std::collections::{BTreeMap, HashMap};

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::ledger::Mode;
use super::money::Money;
use super::plans;
use super::pricing::{self, ModelPrice, PlanTerms};
use super::Core;

/// What to re-rate.
#[derive(Clone, Debug)]
pub struct RepriceRequest {
    pub mode: Mode,
    /// Everyone in the mode when absent.
    pub customer: Option<String>,
    pub plan: String,
    /// The plan's version; the one in force when absent.
    pub plan_version: Option<i64>,
    /// Price every event with the price book as it stood at this instant instead of when
    /// the event was recorded.
    pub prices_at: Option<Timestamp>,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// Per model: events, what they were charged (less refunds) and what they would cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelLine {
    pub events: u64,
    pub charged: Money,
    pub would_cost: Money,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepriceReport {
    pub plan: String,
    pub plan_version: i64,
    pub events: u64,
    pub customers: u64,
    /// What was charged, less refunds.
    pub charged: Money,
    pub would_cost: Money,
    pub by_model: BTreeMap<String, ModelLine>,
    /// Events whose model the price book does not (or did not then) have: left out.
    pub unpriced: u64,
}

impl RepriceReport {
    /// `would_cost − charged`: positive means the plan would have earned more.
    pub fn difference(&self) -> Money {
        Money::from_nanos(self.would_cost.nanos().saturating_sub(self.charged.nanos()))
    }

    pub fn render(&self) -> String {
        let mut out = format!(
            "re-rated {} events of {} customers under plan {} v{}\n\
             charged     {}\nwould cost  {}\ndifference  {}\n",
            self.events,
            self.customers,
            self.plan,
            self.plan_version,
            self.charged,
            self.would_cost,
            self.difference()
        );
        for (model, l) in &self.by_model {
            out.push_str(&format!(
                "  {model}: {} events, charged {}, would cost {}\n",
                l.events, l.charged, l.would_cost
            ));
        }
        if self.unpriced > 0 {
            out.push_str(&format!(
                "  {} events left out: their model has no price\n",
                self.unpriced
            ));
        }
        out
    }
}

const PAGE: i64 = 1_000;

/// Re-rates the events of `req`, calling `progress(done, total)` after each page.
pub async fn reprice(
    core: &Core,
    req: &RepriceRequest,
    mut progress: impl FnMut(u64, u64),
) -> Result<RepriceReport> {
    if req.to <= req.from {
        return Err(Error::invalid("to", "the period ends after it starts"));
    }
    let store = &core.store;
    let mode = req.mode.as_str();
    let plan = plans::plan(store, req.mode, &req.plan).await?;
    let (version, terms): (i64, PlanTerms) = match req.plan_version {
        None => (plan.version, plan.terms.clone()),
        Some(v) => {
            let row = store
                .plan_versions(mode, &req.plan)
                .await?
                .into_iter()
                .find(|r| r.version == v)
                .ok_or(Error::NotFound("plan version"))?;
            (v, plans::parse_terms(&row.terms)?)
        }
    };
    let total = u64::try_from(
        store
            .count_usage(mode, req.customer.as_deref(), req.from, req.to)
            .await?,
    )
    .unwrap_or(0);
    let mut report = RepriceReport {
        plan: plan.id.clone(),
        plan_version: version,
        ..RepriceReport::default()
    };
    // (customer, month start) → tokens so far that month under the what-if.
    let mut month_tokens: HashMap<(String, i64), u64> = HashMap::new();
    let mut prices: HashMap<(String, i64), Option<ModelPrice>> = HashMap::new();
    let mut customers = std::collections::HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .usage_in_order(
                mode,
                req.customer.as_deref(),
                req.from,
                req.to,
                after.as_deref(),
                PAGE,
            )
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for e in &page {
            customers.insert(e.customer_id.clone());
            let tokens = crate::core::metering::tokens_of(e)?;
            let month = e.occurred_at.month_start();
            let key = (e.customer_id.clone(), month.micros());
            let used = match month_tokens.get(&key) {
                Some(t) => *t,
                None => {
                    let before = store
                        .tokens_between(&e.customer_id, month, req.from.max(month))
                        .await?;
                    u64::try_from(before).unwrap_or(0)
                }
            };
            month_tokens.insert(key, used + tokens.total());
            // The price book as it stood when the event was recorded, to the second.
            let at = req.prices_at.unwrap_or(e.created_at);
            let price_key = (e.model.clone(), at.micros() / 1_000_000);
            let price = match prices.get(&price_key) {
                Some(p) => p.clone(),
                None => {
                    let p = store.model_at(mode, &e.model, at).await?;
                    prices.insert(price_key, p.clone());
                    p
                }
            };
            let Some(price) = price else {
                report.unpriced += 1;
                continue;
            };
            let outcome = e.outcome;
            let would = pricing::price(&price, &terms, &tokens, outcome, e.batch, used)?.cost;
            let charged = e.cost.checked_sub(e.refunded_amount)?;
            report.events += 1;
            report.charged = report.charged.checked_add(charged)?;
            report.would_cost = report.would_cost.checked_add(would)?;
            let line = report.by_model.entry(e.model.clone()).or_default();
            line.events += 1;
            line.charged = line.charged.checked_add(charged)?;
            line.would_cost = line.would_cost.checked_add(would)?;
        }
        progress(report.events + report.unpriced, total);
        if i64::try_from(page.len()).unwrap_or(0) < PAGE {
            break;
        }
    }
    report.customers = customers.len() as u64;
    Ok(report)
}
