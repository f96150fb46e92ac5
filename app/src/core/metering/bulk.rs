//! The group commit's usage path: every usage event a writer has queued is recorded in a
//! few set-based statements per batch instead of a round of statements per event.
//!
//! Inside the batch's transaction, and under the accounts' locks: the customers, models and
//! plans of all events are read with one statement each, the accounts are locked and their
//! live grants loaded ([`Ledger::open_books_in`]), the (customer, request id) pairs already
//! recorded and the period counters are read, then every event is priced and charged in
//! memory, in arrival order, and the results are written with multi-row statements. The
//! postings, references and fingerprints are exactly those of the one-at-a-time path
//! ([`super::record_in`]), which still serves what this path leaves out: accounts with a
//! grant due to expire, and every event of the batch if a set-based statement fails (the
//! whole set-based part rolls back to its savepoint first).
//!
//! [`Ledger::open_books_in`]: crate::core::ledger::Ledger::open_books_in

use std::collections::{BTreeSet, HashMap};

use tokio::sync::oneshot;

use super::{event_row, record_in, tokens_i64, Priced2, Recorded, UsageInput};
use crate::core::batch::Completion;
use crate::core::customers;
use crate::core::error::{Error, Result};
use crate::core::ledger::{kind, Attribution, Debit, Mode, Operator};
use crate::core::money::Money;
use crate::core::plans::{self, Plan};
use crate::core::pricing::{self, ModelPrice};
use crate::core::store::{CustomerRow, Store, Tx, UsageEventRow};
use crate::core::Core;

/// A usage event waiting for its writer.
pub(crate) struct UsageJob {
    pub core: Core,
    pub mode: Mode,
    pub input: UsageInput,
    pub done: oneshot::Sender<Result<UsageDone>>,
}

/// A recorded event and the customer it was recorded for.
pub(crate) type UsageDone = (Recorded, CustomerRow);

impl UsageJob {
    /// The completion of a job that never ran (the transaction could not start).
    pub(crate) fn unrun(self) -> Completion {
        Box::new(move |committed| {
            let _ = self.done.send(Err(Error::Unavailable(format!(
                "group commit failed: {}",
                committed.err().unwrap_or_default()
            ))));
        })
    }
}

fn completion(done: oneshot::Sender<Result<UsageDone>>, result: Result<UsageDone>) -> Completion {
    Box::new(move |committed| {
        let _ = done.send(match committed {
            Ok(()) => result,
            Err(e) => Err(Error::Unavailable(format!("group commit failed: {e}"))),
        });
    })
}

/// Records every job; pushes one completion per job. Must run first in a fresh group
/// transaction (nothing else has written in it), because a failed set-based part is undone
/// by starting the transaction over, which saves two savepoint statements per batch.
/// Returns the transaction to go on with, or the error that made it unusable.
pub(crate) async fn record_all(
    store: &Store,
    tx: Tx,
    jobs: Vec<UsageJob>,
    completions: &mut Vec<Completion>,
) -> Result<Tx> {
    let mut results: Vec<Option<Result<UsageDone>>> = jobs.iter().map(|_| None).collect();
    let outcome = record_each(store, tx, &jobs, &mut results).await;
    for (job, result) in jobs.into_iter().zip(results) {
        let result = result
            .unwrap_or_else(|| Err(Error::Unavailable("the group transaction failed".into())));
        completions.push(completion(job.done, result));
    }
    outcome
}

async fn record_each(
    store: &Store,
    mut tx: Tx,
    jobs: &[UsageJob],
    results: &mut [Option<Result<UsageDone>>],
) -> Result<Tx> {
    if jobs.is_empty() {
        return Ok(tx);
    }
    if let Err(e) = set_based(&mut tx, jobs, results).await {
        tracing::warn!(error = %e, events = jobs.len(), "set-based usage write failed; recording one at a time");
        tx.rollback().await?;
        tx = store.begin().await?;
        results.iter_mut().for_each(|r| *r = None);
    }
    // What the set-based part left: one at a time, each in its own savepoint.
    for (job, result) in jobs.iter().zip(results.iter_mut()) {
        if result.is_some() {
            continue;
        }
        tx.savepoint().await?;
        let r = one(&mut tx, job).await;
        if r.is_ok() {
            tx.release_savepoint().await?;
        } else {
            tx.rollback_to_savepoint().await?;
        }
        *result = Some(r);
    }
    Ok(tx)
}

/// What an event refers to, read inside the transaction.
struct Resolved {
    customers: HashMap<String, CustomerRow>,
    /// By (mode, model id): each mode has its own price book.
    models: HashMap<(String, String), ModelPrice>,
    /// By (mode, plan id).
    plans: HashMap<(String, String), Plan>,
}

impl Resolved {
    async fn read(tx: &mut Tx, inputs: &[&UsageInput]) -> Result<Resolved> {
        let ids: BTreeSet<&str> = inputs.iter().map(|i| i.customer.as_str()).collect();
        let customers: HashMap<String, CustomerRow> = tx
            .customers(&ids.into_iter().collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let ids: BTreeSet<&str> = inputs.iter().map(|i| i.model.as_str()).collect();
        let models = tx
            .models(&ids.into_iter().collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|(mode, m)| ((mode, m.id.clone()), m))
            .collect();
        let ids: BTreeSet<&str> = customers.values().map(|c| c.plan_id.as_str()).collect();
        let mut plans = HashMap::new();
        for (row, version) in tx
            .current_plans(&ids.into_iter().collect::<Vec<_>>())
            .await?
        {
            plans.insert(
                (row.mode.clone(), row.id.clone()),
                plans::from_rows(row, version)?,
            );
        }
        Ok(Resolved {
            customers,
            models,
            plans,
        })
    }

    /// The customer, model and plan of an event, or why it cannot be recorded; checked in
    /// the order the API documents (customer, then model).
    fn of(&self, mode: Mode, input: &UsageInput) -> Result<(&CustomerRow, &ModelPrice, &Plan)> {
        let customer = match self.customers.get(&input.customer) {
            Some(c) if c.mode == mode.as_str() => c,
            _ => return Err(Error::NotFound("customer")),
        };
        let model = self
            .models
            .get(&(customer.mode.clone(), input.model.clone()))
            .ok_or_else(|| unknown_model(&input.model))?;
        let plan = self
            .plans
            .get(&(customer.mode.clone(), customer.plan_id.clone()))
            .ok_or_else(|| Error::internal("plan without a version"))?;
        Ok((customer, model, plan))
    }
}

fn unknown_model(id: &str) -> Error {
    Error::Invalid {
        code: "unknown_model",
        message: format!("unknown model: {id}"),
        param: Some("model".into()),
    }
}

/// One event on the one-at-a-time path.
async fn one(tx: &mut Tx, job: &UsageJob) -> Result<UsageDone> {
    let resolved = Resolved::read(tx, &[&job.input]).await?;
    let (customer, model, plan) = resolved.of(job.mode, &job.input)?;
    let recorded = record_in(&job.core, tx, customer, plan, model, &job.input).await?;
    Ok((recorded, customer.clone()))
}

/// A customer's period counters as the batch goes: (month tokens, day spend, month spend).
#[derive(Clone, Copy, Default)]
struct Running {
    month_tokens: i64,
    day_spend: Money,
    month_spend: Money,
}

/// Records what it can with set-based statements; leaves `None` in `results` for the
/// events that take the one-at-a-time path. An error undoes it all (the caller rolls back
/// to the savepoint) and every event then takes the one-at-a-time path.
async fn set_based(
    tx: &mut Tx,
    jobs: &[UsageJob],
    results: &mut [Option<Result<UsageDone>>],
) -> Result<()> {
    let core = &jobs[0].core;
    let now = core.clock.now();
    let (month, day) = (now.month_key(), now.day_key());
    let inputs: Vec<&UsageInput> = jobs.iter().map(|j| &j.input).collect();
    let resolved = Resolved::read(tx, &inputs).await?;
    let mut valid = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        match resolved.of(job.mode, &job.input) {
            Ok(parts) => valid.push((i, parts)),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    let accounts: BTreeSet<&str> = valid
        .iter()
        .map(|(_, (c, _, _))| c.account_id.as_str())
        .collect();
    let mut books = core
        .ledger
        .open_books_in(tx, &accounts.into_iter().collect::<Vec<_>>())
        .await?;
    // Accounts the batch left out (a grant due to expire) go one at a time.
    valid.retain(|(_, (c, _, _))| books.account(&c.account_id).is_some());

    let pairs: Vec<(&str, &str)> = valid
        .iter()
        .map(|(i, (c, _, _))| (c.id.as_str(), jobs[*i].input.request_id.as_str()))
        .collect();
    let mut recorded: HashMap<(String, String), UsageEventRow> = tx
        .usage_events_by_requests(&pairs)
        .await?
        .into_iter()
        .map(|e| ((e.customer_id.clone(), e.request_id.clone()), e))
        .collect();
    let customer_ids: BTreeSet<&str> = valid.iter().map(|(_, (c, _, _))| c.id.as_str()).collect();
    let totals = tx
        .period_totals_of(
            &customer_ids.into_iter().collect::<Vec<_>>(),
            &[month.as_str(), day.as_str()],
        )
        .await?;
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut events = Vec::new();
    let mut counters: HashMap<(String, String), (i64, Money)> = HashMap::new();

    for (i, (customer, model, plan)) in valid {
        let input = &jobs[i].input;
        let run = running.entry(customer.id.clone()).or_insert_with(|| {
            let of = |period: &str| {
                totals
                    .get(&(customer.id.clone(), period.to_string()))
                    .copied()
                    .unwrap_or((0, Money::ZERO))
            };
            Running {
                month_tokens: of(&month).0,
                day_spend: of(&day).1,
                month_spend: of(&month).1,
            }
        });
        let key = (customer.id.clone(), input.request_id.clone());
        let (event, created) = match recorded.get(&key) {
            Some(existing) => (existing.clone(), false),
            None => {
                let priced = match pricing::price(
                    model,
                    &plan.terms,
                    &input.tokens,
                    input.outcome,
                    input.batch,
                    u64::try_from(run.month_tokens).unwrap_or(0),
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        results[i] = Some(Err(e));
                        continue;
                    }
                };
                let transaction_id = if priced.cost.is_positive() {
                    let t = books.debit(&Debit {
                        account_id: customer.account_id.clone(),
                        amount: priced.cost,
                        counter: Operator::Revenue,
                        kind: kind::USAGE,
                        reference: format!("usage:{}:{}", customer.id, input.request_id),
                        attribution: Attribution::default(),
                    })?;
                    Some(t.id)
                } else {
                    None
                };
                let p = Priced2 {
                    priced,
                    plan: plan.clone(),
                    model_version_id: model.version_id.clone(),
                };
                let event = event_row(now, customer, input, &p, None, transaction_id)?;
                let tokens = tokens_i64(input.tokens.total());
                let cost = p.priced.cost;
                run.month_tokens += tokens;
                run.day_spend = run.day_spend.checked_add(cost)?;
                run.month_spend = run.month_spend.checked_add(cost)?;
                for period in [&month, &day] {
                    let c = counters
                        .entry((customer.id.clone(), period.clone()))
                        .or_insert((0, Money::ZERO));
                    c.0 += tokens;
                    c.1 = c.1.checked_add(cost)?;
                }
                recorded.insert(key, event.clone());
                events.push(event.clone());
                (event, true)
            }
        };
        let account = books
            .account(&customer.account_id)
            .ok_or_else(|| Error::internal("account left the batch"))?;
        let reason = customers::entitlement_reason(
            &account.status,
            account.available,
            account.held,
            plan,
            run.day_spend,
            run.month_spend,
        );
        results[i] = Some(Ok((
            Recorded {
                event,
                created,
                balance: account.available,
                entitled: reason == "ok",
            },
            customer.clone(),
        )));
    }

    books.write(tx).await?;
    tx.insert_usage_events(&events).await?;
    let counters: Vec<(String, String, i64, Money)> = counters
        .into_iter()
        .map(|((c, p), (t, s))| (c, p, t, s))
        .collect();
    tx.add_period_usages(&counters).await?;
    Ok(())
}
