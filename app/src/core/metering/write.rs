//! Metering's writes: usage events, holds (authorizations) and captures, run by the group
//! commit many at a time ([`Op`] is its [`Work`]).
//!
//! Inside the batch's transaction: the customers, models and plans of the usage events
//! are read with one statement each; one [`Journal`] locks every account of the batch (in
//! id order), loads their books and the holds to capture, and plans the expiries due; the
//! events already recorded (by request id and by authorization), the period counters and
//! the customer keys' spend are read once. Then every job is planned in memory in arrival
//! order, with running counters, so caps, key limits and balances see the jobs before
//! them; and the results are written with a few statements per table. A job refused while
//! planning (an unknown model, a cap, insufficient credits) changes nothing and gets its
//! error. A batch of one is the same code: the group commit's fallback, when a batch fails
//! as a whole, runs each job that way in its own savepoint.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{
    event_row, proxy_row, tokens_i64, Authorization, HoldFor, Priced2, ProxyFinish, ProxyTag,
    Recorded, UsageInput,
};
use crate::core::batch::Work;
use crate::core::clock::{Clock, Timestamp};
use crate::core::customers;
use crate::core::error::{Error, Result};
use crate::core::ids;
use crate::core::ledger::{Attribution, Debit, Journal, Kind, Mode, Operator};
use crate::core::money::Money;
use crate::core::notify::{self, outbox::customer_ref};
use crate::core::plans::{self, Plan};
use crate::core::pricing::{self, ModelPrice, Outcome, Tokens};
use crate::core::store::{
    AuthorizationRow, CustomerRow, ProxyRequestRow, ProxyStatus, Tx, UsageEventRow,
};
use crate::core::vocab::{AccountStatus, EventType, HoldStatus, Standing};
use serde_json::json;

/// One metering write waiting for its customer's writer.
pub(crate) enum Op {
    Usage { mode: Mode, input: UsageInput },
    Hold(Box<HoldOp>),
    Capture(Box<CaptureOp>),
}

/// A hold, with what the caller read before queueing it (the rules are checked again here,
/// under the lock).
pub(crate) struct HoldOp {
    pub mode: Mode,
    pub customer: CustomerRow,
    pub plan: Plan,
    pub model: Option<ModelPrice>,
    pub what: HoldFor,
    pub tag: Option<ProxyTag>,
}

/// A capture of authorization `id`, with the usage it records.
pub(crate) struct CaptureOp {
    pub id: String,
    pub customer: CustomerRow,
    pub plan: Plan,
    pub model: ModelPrice,
    pub usage: UsageInput,
    pub proxied: Option<ProxyFinish>,
}

pub(crate) enum Done {
    /// A usage event, and the customer it was recorded for.
    Usage(Box<(Recorded, CustomerRow)>),
    Held(Authorization),
    Captured(Recorded),
}

impl Work for Op {
    type Output = Done;
    type Context = Arc<dyn Clock>;

    fn key(&self) -> &str {
        match self {
            Op::Usage { input, .. } => &input.customer,
            Op::Hold(h) => &h.customer.id,
            Op::Capture(c) => &c.customer.id,
        }
    }

    fn run_all<'a>(
        clock: &'a Arc<dyn Clock>,
        tx: &'a mut Tx,
        jobs: &'a [Op],
    ) -> BoxFuture<'a, Result<Vec<Result<Done>>>> {
        Box::pin(run_all(clock.now(), tx, jobs))
    }
}

/// What usage events refer to, read inside the transaction.
struct Resolved {
    customers: HashMap<String, CustomerRow>,
    /// By (mode, model id): each mode has its own price book.
    models: HashMap<(Mode, String), ModelPrice>,
    /// By (mode, plan id).
    plans: HashMap<(Mode, String), Plan>,
}

impl Resolved {
    async fn read(tx: &mut Tx, inputs: &[&UsageInput]) -> Result<Resolved> {
        let mut resolved = Resolved {
            customers: HashMap::new(),
            models: HashMap::new(),
            plans: HashMap::new(),
        };
        if inputs.is_empty() {
            return Ok(resolved);
        }
        let ids: BTreeSet<&str> = inputs.iter().map(|i| i.customer.as_str()).collect();
        resolved.customers = tx
            .customers(&ids.into_iter().collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let ids: BTreeSet<&str> = inputs.iter().map(|i| i.model.as_str()).collect();
        resolved.models = tx
            .models(&ids.into_iter().collect::<Vec<_>>())
            .await?
            .into_iter()
            .map(|(mode, m)| Ok(((Mode::from_db(&mode)?, m.id.clone()), m)))
            .collect::<Result<_>>()?;
        let ids: BTreeSet<&str> = resolved
            .customers
            .values()
            .map(|c| c.plan_id.as_str())
            .collect();
        for (row, version) in tx
            .current_plans(&ids.into_iter().collect::<Vec<_>>())
            .await?
        {
            resolved
                .plans
                .insert((row.mode, row.id.clone()), plans::from_rows(row, version)?);
        }
        Ok(resolved)
    }

    /// The customer, plan and model of an event, or why it cannot be recorded; checked in
    /// the order the API documents (customer, then model).
    fn of(&self, mode: Mode, input: &UsageInput) -> Result<Parts<'_>> {
        let customer = match self.customers.get(&input.customer) {
            Some(c) if c.mode == mode => c,
            _ => return Err(Error::NotFound("customer")),
        };
        let model = self
            .models
            .get(&(customer.mode, input.model.clone()))
            .ok_or_else(|| unknown_model(&input.model))?;
        let plan = self
            .plans
            .get(&(customer.mode, customer.plan_id.clone()))
            .ok_or_else(|| Error::internal("plan without a version"))?;
        Ok(Parts {
            customer,
            plan,
            model: Some(model),
        })
    }
}

fn usage_reference(customer: &CustomerRow, input: &UsageInput) -> String {
    format!("usage:{}:{}", customer.id, input.request_id)
}

fn unknown_model(id: &str) -> Error {
    Error::Invalid {
        code: "unknown_model",
        message: format!("unknown model: {id}"),
        param: Some("model".into()),
    }
}

/// The customer, plan and model a job is planned with.
#[derive(Clone, Copy)]
struct Parts<'a> {
    customer: &'a CustomerRow,
    plan: &'a Plan,
    model: Option<&'a ModelPrice>,
}

/// A customer's period counters as the batch goes.
#[derive(Clone, Copy, Default)]
struct Running {
    month_tokens: i64,
    day_spend: Money,
    month_spend: Money,
}

/// A journal error while planning: a refusal (the job's answer; the journal planned
/// nothing) or a broken invariant (the batch fails and its jobs run again alone).
fn refusal(e: Error) -> Result<Error> {
    match e {
        Error::Internal(_) | Error::Unavailable(_) | Error::Contention(_) => Err(e),
        refused => Ok(refused),
    }
}

async fn run_all(now: Timestamp, tx: &mut Tx, jobs: &[Op]) -> Result<Vec<Result<Done>>> {
    let mut results: Vec<Option<Result<Done>>> = jobs.iter().map(|_| None).collect();
    let usage: Vec<&UsageInput> = jobs
        .iter()
        .filter_map(|j| match j {
            Op::Usage { input, .. } => Some(input),
            _ => None,
        })
        .collect();
    let resolved = Resolved::read(tx, &usage).await?;
    let mut parts: Vec<Option<Parts<'_>>> = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        parts.push(match job {
            Op::Usage { mode, input } => match resolved.of(*mode, input) {
                Ok(p) => Some(p),
                Err(e) => {
                    results[i] = Some(Err(e));
                    None
                }
            },
            Op::Hold(h) => Some(Parts {
                customer: &h.customer,
                plan: &h.plan,
                model: h.model.as_ref(),
            }),
            Op::Capture(c) => Some(Parts {
                customer: &c.customer,
                plan: &c.plan,
                model: Some(&c.model),
            }),
        });
    }

    let accounts: BTreeSet<&str> = parts
        .iter()
        .flatten()
        .map(|p| p.customer.account_id.as_str())
        .collect();
    if accounts.is_empty() {
        return Ok(finish(results));
    }
    // A usage event's charge takes the reference `usage:<customer>:<request id>`, which
    // nothing else in Tally takes, so a batch does not read them (a read of 512 keys is a
    // sizeable part of a batch on PostgreSQL). Should one be taken all the same, the
    // batch's insert fails, and each job runs again alone: a job alone reads its reference,
    // so the clash is refused as `reference_reused` and nothing else is lost.
    let references: Vec<String> = match jobs {
        [Op::Usage { input, .. }] => parts[0]
            .map(|p| usage_reference(p.customer, input))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };
    let references: Vec<&str> = references.iter().map(String::as_str).collect();
    let mut journal = Journal::open(
        tx,
        now,
        &accounts.into_iter().collect::<Vec<_>>(),
        &references,
    )
    .await?;
    let captures: Vec<&str> = jobs
        .iter()
        .filter_map(|j| match j {
            Op::Capture(c) => Some(c.id.as_str()),
            _ => None,
        })
        .collect();
    journal.load_holds(tx, &captures).await?;

    let pairs: Vec<(&str, &str)> = jobs
        .iter()
        .zip(&parts)
        .filter_map(|(job, p)| {
            let request = match job {
                Op::Usage { input, .. } => &input.request_id,
                Op::Capture(c) => &c.usage.request_id,
                Op::Hold(_) => return None,
            };
            p.map(|p| (p.customer.id.as_str(), request.as_str()))
        })
        .collect();
    let recorded = if pairs.is_empty() {
        Vec::new()
    } else {
        tx.usage_events_by_requests(&pairs).await?
    };
    let captured = if captures.is_empty() {
        Vec::new()
    } else {
        tx.usage_events_by_authorizations(&captures).await?
    };
    let customer_ids: BTreeSet<&str> = parts
        .iter()
        .flatten()
        .map(|p| p.customer.id.as_str())
        .collect();
    let (month, day) = (now.month_key(), now.day_key());
    let totals = tx
        .period_totals_of(
            &customer_ids.into_iter().collect::<Vec<_>>(),
            &[month.as_str(), day.as_str()],
        )
        .await?;
    let spiky: BTreeSet<&str> = parts
        .iter()
        .flatten()
        .filter(|p| p.plan.terms.spend_spike_percent.is_some())
        .map(|p| p.customer.id.as_str())
        .collect();
    let mut history: HashMap<String, Money> = HashMap::new();
    if !spiky.is_empty() {
        let days: Vec<String> = (1..=7)
            .map(|d| now.plus_seconds(-86_400 * d).day_key())
            .collect();
        let days: Vec<&str> = days.iter().map(String::as_str).collect();
        let spiky: Vec<&str> = spiky.into_iter().collect();
        for ((customer, _), (_, spend)) in tx.period_totals_of(&spiky, &days).await? {
            let sum = history.entry(customer).or_insert(Money::ZERO);
            *sum = sum.checked_add(spend)?;
        }
    }
    let mut keys = HashMap::new();
    for job in jobs {
        if let Op::Hold(h) = job {
            if let Some(key) = h.tag.as_ref().and_then(|t| t.key.as_ref()) {
                if key.spend_limit.is_some() && !keys.contains_key(&key.id) {
                    let (spent, held) = tx
                        .customer_key_spend(&key.id, key.limit_period.start(now))
                        .await?;
                    keys.insert(key.id.clone(), spent.checked_add(held)?);
                }
            }
        }
    }

    let mut plan = Planner {
        now,
        month,
        day,
        journal,
        totals,
        running: HashMap::new(),
        keys,
        by_request: recorded
            .into_iter()
            .map(|e| ((e.customer_id.clone(), e.request_id.clone()), e))
            .collect(),
        by_authorization: captured
            .into_iter()
            .filter_map(|e| e.authorization_id.clone().map(|a| (a, e)))
            .collect(),
        events: Vec::new(),
        counters: HashMap::new(),
        authorizations: Vec::new(),
        proxy_rows: Vec::new(),
        finished: Vec::new(),
        history,
        notices: Vec::new(),
    };
    for (i, (job, p)) in jobs.iter().zip(&parts).enumerate() {
        let Some(p) = p else { continue };
        results[i] = Some(match job {
            Op::Usage { input, .. } => plan.usage(input, *p)?,
            Op::Hold(h) => plan.hold(h, *p)?,
            Op::Capture(c) => plan.capture(c, *p)?,
        });
    }
    plan.write(tx).await?;
    Ok(finish(results))
}

fn finish(results: Vec<Option<Result<Done>>>) -> Vec<Result<Done>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::internal("a job was not planned"))))
        .collect()
}

/// The batch being planned: the journal, the counters as they run, and the rows to write.
struct Planner {
    now: Timestamp,
    month: String,
    day: String,
    journal: Journal,
    /// (customer, period) → (tokens, spend), as read.
    totals: HashMap<(String, String), (i64, Money)>,
    running: HashMap<String, Running>,
    /// Customer key → its spend in the period plus what it holds, as the batch goes.
    keys: HashMap<String, Money>,
    by_request: HashMap<(String, String), UsageEventRow>,
    by_authorization: HashMap<String, UsageEventRow>,
    events: Vec<UsageEventRow>,
    counters: HashMap<(String, String), (i64, Money)>,
    authorizations: Vec<AuthorizationRow>,
    proxy_rows: Vec<ProxyRequestRow>,
    finished: Vec<(String, ProxyStatus, ProxyFinish, String)>,
    /// Customer → spend over the seven days before today (customers on a plan with spike
    /// alerts only).
    history: HashMap<String, Money>,
    /// Events the batch writes into the outbox with its changes.
    notices: Vec<Notice>,
}

/// An event for the outbox, written in the batch's transaction; "once per period" by its
/// dedupe key.
struct Notice {
    customer: CustomerRow,
    event: EventType,
    data: serde_json::Value,
    dedupe: String,
}

impl Planner {
    /// A spend limit reached: the plan's daily or monthly cap (`usage.cap_reached`) or the
    /// customer's own budget (`budget.reached`), once per period.
    fn cap_notice(
        &mut self,
        c: &CustomerRow,
        period: &str,
        cap: Money,
        spent: Money,
        by_budget: bool,
    ) {
        let key = if period == "day" {
            &self.day
        } else {
            &self.month
        };
        let (event, data) = if by_budget {
            (
                EventType::BudgetReached,
                json!({"customer": customer_ref(c), "budget": cap.to_string(),
                       "spent": spent.to_string(), "hard_stop": c.budget_hard_stop}),
            )
        } else {
            (
                EventType::UsageCapReached,
                json!({"customer": customer_ref(c), "period": period,
                       "cap": cap.to_string(), "spent": spent.to_string()}),
            )
        };
        self.notices.push(Notice {
            customer: c.clone(),
            event,
            dedupe: format!("{event}:{}:{key}", c.id),
            data,
        });
    }

    /// What a charge's spend crossed: a cap, the customer's budget, a spike over the daily
    /// average of the week before.
    fn spend_notices(&mut self, p: Parts<'_>, before: Running, after: Running) {
        let c = p.customer;
        let terms = &p.plan.terms;
        let crossed = |limit: Money, b: Money, a: Money| b < limit && a >= limit;
        if let Some(cap) = terms
            .daily_spend_cap
            .filter(|cap| crossed(*cap, before.day_spend, after.day_spend))
        {
            self.cap_notice(c, "day", cap, after.day_spend, false);
        }
        if let Some(cap) = terms
            .monthly_spend_cap
            .filter(|cap| crossed(*cap, before.month_spend, after.month_spend))
        {
            self.cap_notice(c, "month", cap, after.month_spend, false);
        }
        if let Some(budget) = c
            .budget_monthly
            .filter(|b| crossed(*b, before.month_spend, after.month_spend))
        {
            self.cap_notice(c, "month", budget, after.month_spend, true);
        }
        // The average is over a whole week, so a customer younger than that has none.
        let week = self.history.get(&c.id).copied().unwrap_or(Money::ZERO);
        let a_week_old = c.created_at <= self.now.plus_seconds(-7 * 86_400);
        if let (Some(percent), true) = (terms.spend_spike_percent, week.is_positive() && a_week_old)
        {
            // today > average × percent / 100, average = week / 7, in whole nano-units.
            let limit = i128::from(week.nanos()) * i128::from(percent) / 700;
            let (b, a) = (
                i128::from(before.day_spend.nanos()),
                i128::from(after.day_spend.nanos()),
            );
            if b <= limit && a > limit {
                let average = Money::from_nanos(week.nanos() / 7);
                self.notices.push(Notice {
                    customer: c.clone(),
                    event: EventType::SpendSpike,
                    data: json!({"customer": customer_ref(c), "spent_today": after.day_spend.to_string(),
                                 "daily_average": average.to_string(), "percent": percent}),
                    dedupe: format!("spend.spike:{}:{}", c.id, self.day),
                });
            }
        }
    }

    /// A customer's counters as planned so far, read from the batch's totals at first use.
    fn running(&mut self, customer: &str) -> &mut Running {
        let totals = &self.totals;
        let (month, day) = (&self.month, &self.day);
        self.running.entry(customer.to_string()).or_insert_with(|| {
            let of = |period: &str| {
                totals
                    .get(&(customer.to_string(), period.to_string()))
                    .copied()
                    .unwrap_or((0, Money::ZERO))
            };
            Running {
                month_tokens: of(month).0,
                day_spend: of(day).1,
                month_spend: of(month).1,
            }
        })
    }

    /// Adds a charged event to the customer's counters.
    fn count(&mut self, customer: &str, tokens: i64, cost: Money) -> Result<()> {
        let run = self.running(customer);
        run.month_tokens += tokens;
        run.day_spend = run.day_spend.checked_add(cost)?;
        run.month_spend = run.month_spend.checked_add(cost)?;
        for period in [self.month.clone(), self.day.clone()] {
            let c = self
                .counters
                .entry((customer.to_string(), period))
                .or_insert((0, Money::ZERO));
            c.0 += tokens;
            c.1 = c.1.checked_add(cost)?;
        }
        Ok(())
    }

    /// The balance and entitlement of a customer as planned so far.
    fn state(&mut self, p: Parts<'_>) -> Result<(Money, bool)> {
        let run = *self.running(&p.customer.id);
        let account = self
            .journal
            .account(&p.customer.account_id)
            .ok_or_else(|| Error::internal("account outside the journal"))?;
        let reason = customers::entitlement_reason(
            account.status,
            p.customer.past_grace(self.now),
            account.available,
            account.held,
            p.plan,
            p.customer.hard_budget(),
            customers::Spent {
                day: run.day_spend,
                month: run.month_spend,
            },
        );
        Ok((account.available, reason == Standing::Ok))
    }

    fn recorded(&mut self, p: Parts<'_>, event: UsageEventRow, created: bool) -> Result<Recorded> {
        let (balance, entitled) = self.state(p)?;
        Ok(Recorded {
            event,
            created,
            balance,
            entitled,
        })
    }

    /// Prices tokens for the customer at the tier their month is in as planned so far.
    fn price(
        &mut self,
        p: Parts<'_>,
        model: &ModelPrice,
        tokens: &Tokens,
        outcome: Outcome,
        batch: bool,
    ) -> Result<Priced2> {
        let month_tokens = self.running(&p.customer.id).month_tokens;
        let priced = pricing::price(
            model,
            &p.plan.terms,
            tokens,
            outcome,
            batch,
            u64::try_from(month_tokens).unwrap_or(0),
        )?;
        Ok(Priced2 {
            priced,
            plan: p.plan.clone(),
            model_version_id: model.version_id.clone(),
        })
    }

    /// Writes down a new event and its charge in the counters.
    fn add_event(&mut self, p: Parts<'_>, input: &UsageInput, event: UsageEventRow) -> Result<()> {
        let before = *self.running(&p.customer.id);
        self.count(&p.customer.id, tokens_i64(input.tokens.total()), event.cost)?;
        let after = *self.running(&p.customer.id);
        self.spend_notices(p, before, after);
        self.by_request.insert(
            (p.customer.id.clone(), input.request_id.clone()),
            event.clone(),
        );
        self.events.push(event);
        Ok(())
    }

    /// Usage that happened: always charged, into debt if need be; a request id already
    /// recorded returns the original event.
    fn usage(&mut self, input: &UsageInput, p: Parts<'_>) -> Result<Result<Done>> {
        let key = (p.customer.id.clone(), input.request_id.clone());
        if let Some(existing) = self.by_request.get(&key).cloned() {
            let recorded = self.recorded(p, existing, false)?;
            return Ok(Ok(Done::Usage(Box::new((recorded, p.customer.clone())))));
        }
        let model = p
            .model
            .ok_or_else(|| Error::internal("usage without a model"))?;
        let priced = match self.price(p, model, &input.tokens, input.outcome, input.batch) {
            Ok(priced) => priced,
            Err(e) => return Ok(Err(e)),
        };
        let transaction_id = if priced.priced.cost.is_positive() {
            let debit = Debit {
                account_id: p.customer.account_id.clone(),
                amount: priced.priced.cost,
                counter: Operator::Revenue,
                kind: Kind::Usage,
                reference: usage_reference(p.customer, input),
                attribution: Attribution::default(),
            };
            let posted = match self.journal.debit(&debit) {
                Ok(posted) => posted,
                Err(e) => return refusal(e).map(Err),
            };
            Some(posted.transaction.id)
        } else {
            None
        };
        let event = event_row(self.now, p.customer, input, &priced, None, transaction_id)?;
        self.add_event(p, input, event.clone())?;
        let recorded = self.recorded(p, event, true)?;
        Ok(Ok(Done::Usage(Box::new((recorded, p.customer.clone())))))
    }

    /// A hold of a request's worst case (or an amount): refused by a cap (spent plus held),
    /// the key's limit, a suspension or the balance, all as planned so far.
    fn hold(&mut self, op: &HoldOp, p: Parts<'_>) -> Result<Result<Done>> {
        let customer = p.customer;
        let id = ids::new_id("auth");
        let mut row = AuthorizationRow {
            id: id.clone(),
            mode: op.mode,
            customer_id: customer.id.clone(),
            model: None,
            input_tokens: None,
            max_output_tokens: None,
            cache_creation_input_tokens: None,
            cache_read_input_tokens: None,
            batch: false,
            created_at: self.now,
        };
        // Refusals come in the order of `customers::entitlement_reason`: a suspension,
        // then a failed renewal past its grace (access follows Tally's own subscription
        // state), then the caps, then the balance. A model outside the plan is never held.
        let suspended = self
            .journal
            .account(&customer.account_id)
            .is_some_and(|a| a.status == AccountStatus::Suspended);
        if suspended {
            return Ok(Err(Error::Suspended));
        }
        if customer.past_grace(self.now) {
            return Ok(Err(Error::PastDue));
        }
        if let HoldFor::Request { model, .. } = &op.what {
            if !p.plan.terms.allows_model(model) {
                return Ok(Err(Error::ModelNotInPlan(model.clone())));
            }
        }
        let amount = match (&op.what, p.model) {
            (HoldFor::Amount(a), _) => *a,
            (
                HoldFor::Request {
                    model: name,
                    tokens,
                    batch,
                },
                Some(m),
            ) => {
                let priced = match self.price(p, m, tokens, Outcome::Succeeded, *batch) {
                    Ok(priced) => priced,
                    Err(e) => return Ok(Err(e)),
                };
                row.batch = *batch;
                row.model = Some(name.clone());
                row.input_tokens = Some(tokens_i64(tokens.input));
                row.max_output_tokens = Some(tokens_i64(tokens.output));
                row.cache_creation_input_tokens = Some(tokens_i64(tokens.cache_write));
                row.cache_read_input_tokens = Some(tokens_i64(tokens.cache_read));
                priced.priced.cost
            }
            (HoldFor::Request { .. }, None) => {
                return Err(Error::internal("request hold without its model"))
            }
        };
        if !amount.is_positive() {
            return Ok(Err(Error::invalid(
                "amount",
                "the amount to hold must be positive",
            )));
        }
        // The caps count what is spent and what is held, here under the account's lock,
        // so parallel authorizations cannot pass a cap together.
        let run = *self.running(&customer.id);
        let held = self
            .journal
            .account(&customer.account_id)
            .ok_or_else(|| Error::internal("account outside the journal"))?
            .held;
        if let Some((period, cap, by_budget)) = customers::binding_cap(
            p.plan,
            customer.hard_budget(),
            run.day_spend,
            run.month_spend,
            held,
            amount,
        ) {
            let spent = if period == "day" {
                run.day_spend
            } else {
                run.month_spend
            };
            self.cap_notice(customer, period, cap, spent, by_budget);
            return Ok(Err(Error::CapReached));
        }
        // A customer key's limit counts the same way: its requests' charges in the period
        // plus what they hold now.
        let limited = op
            .tag
            .as_ref()
            .and_then(|t| t.key.as_ref())
            .and_then(|k| k.spend_limit.map(|limit| (k.id.clone(), limit)));
        if let Some((key, limit)) = &limited {
            let used = self.keys.get(key).copied().unwrap_or(Money::ZERO);
            if used.checked_add(amount)? > *limit {
                if let Some(k) = op.tag.as_ref().and_then(|t| t.key.as_ref()) {
                    let data = json!({
                        "customer": customer_ref(customer),
                        "key": k.id,
                        "spend_limit": limit.to_string(),
                        "limit_period": k.limit_period.as_str(),
                        "used": used.to_string(),
                    });
                    let start = k.limit_period.start(self.now).micros();
                    self.notices.push(Notice {
                        customer: customer.clone(),
                        event: EventType::KeyLimitReached,
                        data,
                        dedupe: format!("key.limit_reached:{}:{start}", k.id),
                    });
                }
                return Ok(Err(Error::KeyLimitReached));
            }
        }
        let expires_at = self
            .now
            .plus_seconds(i64::from(p.plan.terms.hold_lifetime_seconds));
        let hold = match self
            .journal
            .hold(&id, &customer.account_id, amount, expires_at)
        {
            Ok(hold) => hold,
            Err(e) => return refusal(e).map(Err),
        };
        if let Some((key, _)) = limited {
            let used = self.keys.entry(key).or_insert(Money::ZERO);
            *used = used.checked_add(amount)?;
        }
        if let Some(tag) = &op.tag {
            self.proxy_rows.push(proxy_row(
                op.mode,
                &customer.id,
                tag,
                row.model.as_deref().unwrap_or_default(),
                Some(&id),
                ProxyStatus::Open,
                None,
                self.now,
            ));
        }
        self.authorizations.push(row.clone());
        Ok(Ok(Done::Held(Authorization { row, hold })))
    }

    /// The actual cost against the hold (see [`Journal::capture`]) and its usage event; a
    /// second capture returns the first one's event.
    fn capture(&mut self, op: &CaptureOp, p: Parts<'_>) -> Result<Result<Done>> {
        if let Some(event) = self.by_authorization.get(&op.id).cloned() {
            let recorded = self.recorded(p, event, false)?;
            return Ok(Ok(Done::Captured(recorded)));
        }
        let usage = &op.usage;
        if let Some(existing) = self
            .by_request
            .get(&(p.customer.id.clone(), usage.request_id.clone()))
        {
            return Ok(Err(Error::conflict(
                "request_id_taken",
                format!(
                    "request_id {} is already recorded as {}",
                    usage.request_id, existing.id
                ),
            )));
        }
        match self.journal.hold_row(&op.id) {
            Some(h) if h.account_id != p.customer.account_id => {
                return Ok(Err(Error::NotFound("authorization")))
            }
            // Captured without an event of this authorization (not by metering), or
            // released: nothing to charge against.
            Some(h) if !matches!(h.status, HoldStatus::Pending | HoldStatus::Expired) => {
                return Ok(Err(Error::conflict(
                    "authorization_not_pending",
                    format!("the authorization is {}", h.status),
                )))
            }
            Some(_) => {}
            None => return Ok(Err(Error::NotFound("authorization"))),
        }
        let priced = match self.price(p, &op.model, &usage.tokens, usage.outcome, usage.batch) {
            Ok(priced) => priced,
            Err(e) => return Ok(Err(e)),
        };
        let captured = match self.journal.capture(&op.id, priced.priced.cost) {
            Ok(c) => c,
            Err(e) => return refusal(e).map(Err),
        };
        let event = UsageEventRow {
            authorization_expired: captured.late,
            ..event_row(
                self.now,
                p.customer,
                usage,
                &priced,
                Some(&op.id),
                captured.transaction_id,
            )?
        };
        self.add_event(p, usage, event.clone())?;
        self.by_authorization.insert(op.id.clone(), event.clone());
        if let Some(finish) = &op.proxied {
            let status = if event.cost.is_positive() {
                ProxyStatus::Charged
            } else {
                ProxyStatus::Failed
            };
            self.finished
                .push((op.id.clone(), status, finish.clone(), event.id.clone()));
        }
        let recorded = self.recorded(p, event, true)?;
        Ok(Ok(Done::Captured(recorded)))
    }

    /// Writes what was planned: the journal, then the events, counters, authorizations and
    /// proxied requests.
    async fn write(self, tx: &mut Tx) -> Result<()> {
        self.journal.write(tx).await?;
        tx.insert_usage_events(&self.events).await?;
        let counters: Vec<(String, String, i64, Money)> = self
            .counters
            .into_iter()
            .map(|((c, p), (t, s))| (c, p, t, s))
            .collect();
        tx.add_period_usages(&counters).await?;
        for a in &self.authorizations {
            tx.insert_authorization(a).await?;
        }
        for r in &self.proxy_rows {
            tx.insert_proxy_request(r).await?;
        }
        for n in &self.notices {
            notify::emit(
                tx,
                self.now,
                n.customer.mode,
                n.event,
                Some(&n.customer),
                n.data.clone(),
                Some(n.dedupe.clone()),
            )
            .await?;
        }
        for (id, status, finish, event) in &self.finished {
            tx.finish_proxy_request(
                id,
                *status,
                finish.upstream_status.map(i64::from),
                finish.reason.as_deref(),
                Some(event),
                self.now,
            )
            .await?;
        }
        Ok(())
    }
}
