//! Deterministic simulation of the whole money path. A seeded PRNG drives the real core and
//! store (SQLite, or the PostgreSQL that `TALLY_TEST_DATABASE_URL` names) with a manual
//! clock through random operations: customers, usage (with duplicate request ids), holds
//! (authorize, capture, release, expiry), promotional grants that expire, corrections,
//! top-ups whose webhooks are duplicated, reordered, delayed or lost, refunds, disputes,
//! injected webhook failures, forged and stale deliveries, restarts, and tasks aborted in
//! the middle of an operation. A plain in-memory model says what each customer's total
//! balance must be once the inbox is drained; `verify` must stay clean throughout.
//!
//! `TALLY_SIM_SEEDS` (`1..=8`, `3`, `1,5,9`) and `TALLY_SIM_OPS` (per seed, default 300)
//! choose the run; `TALLY_SIM_VERIFY_EVERY` how often `verify` runs (default: every
//! operation up to 5,000 operations per seed, else every 250). See docs/simulation.md.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::core::admin::Actor;
use app::core::clock::{Clock, ManualClock, Timestamp};
use app::core::customers::{self, GrantRequest, NewCustomer};
use app::core::error::Error;
use app::core::ledger::{Attribution, Mode, Operator};
use app::core::metering::{self, CaptureInput, HoldFor, Recorded, RefundRequest, UsageInput};
use app::core::money::{Money, NANOS_PER_CENT};
use app::core::payments::{self, webhooks, Fulfillment, Payments, PaymentsConfig, Secret};
use app::core::plans;
use app::core::pricing::{Outcome, PlanTerms, Tokens};
use app::core::store::Store;
use app::core::testing::{fresh_store, TestDb};
use app::core::Core;
use serde_json::{json, Value};

const WHSEC: &str = "whsec_sim";
/// 2026-09-29T18:00:00Z: the clock crosses into a new month (new included credits, tiers
/// and caps start again) early in every run.
const START: Timestamp = Timestamp::from_micros(1_790_704_800_000_000);
/// Odd customers are on this plan: a markup, a tier, a daily cap and included credits
/// that expire at the end of each month.
const PRO_PLAN: &str = "sim_pro";
const PRO_INCLUDED: i64 = 2_500_000_000;
const MODELS: [&str; 5] = [
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "gpt-5",
    "gpt-5-mini",
];

type R<T = ()> = Result<T, String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

trait Ctx<T> {
    fn ctx(self, what: &str) -> R<T>;
}

impl<T> Ctx<T> for Result<T, Error> {
    fn ctx(self, what: &str) -> R<T> {
        self.map_err(|e| format!("{what}: {e:?}"))
    }
}

/// splitmix64: tiny, fast, and the same sequence on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ---- the model ----

struct CustomerModel {
    id: String,
    account_id: String,
    external_id: String,
    /// What the total balance (available + held) must be, leaving out breakage: every
    /// grant, correction, paid top-up, minus usage costs, refunds and disputes.
    expected: i64,
    /// Promotional grants with an expiry: (amount, expires_at).
    expiring: Vec<(i64, Timestamp)>,
    /// Recorded requests: (request id, event id, cost), for duplicate deliveries.
    requests: Vec<(String, String, i64)>,
    /// Grants made with a reference: (reference, amount, expires_at), for replays.
    grants: Vec<(String, i64, Option<Timestamp>)>,
    /// On the pro plan (odd customers): included credits, a cap, expiring grants.
    pro: bool,
    suspended: bool,
    /// A lost dispute was delivered; the inbox suspends the customer when it applies it,
    /// which the model learns by looking (see `observe_suspension`).
    dispute_pending: bool,
    /// The month whose included credits the customer has had.
    included_month: String,
}

#[derive(Clone, Debug, PartialEq)]
enum AuthState {
    Pending {
        expires_at: Timestamp,
    },
    Captured {
        event_id: String,
    },
    /// Captured after the hold expired: charged from available all the same.
    LateCaptured {
        event_id: String,
    },
    Released,
    Expired,
}

struct AuthModel {
    id: String,
    customer: usize,
    by_amount: bool,
    state: AuthState,
}

struct DisputeModel {
    id: String,
    cents: i64,
    created_delivered: bool,
    /// The outcome Stripe decided (true = won), once closed.
    closed: Option<bool>,
    closed_delivered: bool,
}

impl DisputeModel {
    /// The dispute's effect on the balance once every delivered event is applied: funds
    /// leave while open and when lost, come back when won; a close decides alone.
    fn effect(&self) -> i64 {
        match (self.closed, self.closed_delivered, self.created_delivered) {
            (Some(true), true, _) => 0,
            (Some(false), true, _) => -self.cents * NANOS_PER_CENT,
            (_, _, true) => -self.cents * NANOS_PER_CENT,
            _ => 0,
        }
    }
}

struct TopupModel {
    id: String,
    session: String,
    customer: usize,
    cents: i64,
    /// Stripe took the money (the model credits it from then on).
    paid: bool,
    /// Stripe announced the session expired; it will never be paid.
    closed: bool,
    /// The paid announcement never arrived and the customer has not come back yet.
    lost: bool,
    /// The signed `checkout.session.completed`, for duplicates and races.
    completed: Option<String>,
    /// Stripe's cumulative refunded cents: the highest issued, the highest delivered.
    refund_issued: i64,
    refund_delivered: i64,
    disputes: Vec<DisputeModel>,
}

impl TopupModel {
    fn payment_intent(&self) -> String {
        // The simulated gateway reports `pi_sim_<top-up id without top_>` for a paid
        // session; the webhook carries the same, so whichever path fulfils the top-up
        // records the intent that refunds and disputes name.
        format!("pi_sim_{}", self.id.trim_start_matches("top_"))
    }
}

#[derive(Clone, Copy, Debug)]
enum Effect {
    None,
    Refund { topup: usize, total: i64 },
    DisputeCreated { topup: usize, dispute: usize },
    DisputeClosed { topup: usize, dispute: usize },
}

#[derive(Clone)]
struct Delivery {
    payload: String,
    effect: Effect,
}

#[derive(Clone, Copy)]
enum Fate {
    Now,
    Delayed,
    Duplicated,
    Lost,
}

#[derive(Default, Debug)]
struct Stats {
    ops: u64,
    checks: u64,
    verifies: u64,
    webhook_failures: u64,
    lost: u64,
    duplicated: u64,
    delayed: u64,
    refused: u64,
    restarts: u64,
    aborts: u64,
    interrupted: u64,
    races: u64,
    late_captures: u64,
    drift: u64,
}

struct Sim {
    seed: u64,
    db: TestDb,
    clock: Arc<ManualClock>,
    core: Core,
    rng: Rng,
    customers: Vec<CustomerModel>,
    max_customers: usize,
    auths: Vec<AuthModel>,
    /// Indices into `auths` of holds the model believes pending.
    pending: Vec<usize>,
    /// Indices into `auths` of settled holds (the latest few hundred), for replays.
    settled: Vec<usize>,
    topups: Vec<TopupModel>,
    open_topups: Vec<usize>,
    paid_topups: Vec<usize>,
    /// Top-ups touched since the last balance check.
    dirty: Vec<usize>,
    queue: Vec<Delivery>,
    counter: u64,
    stats: Stats,
    /// Usage events refunded so far: event id → (amount, reason).
    usage_refunds: std::collections::HashMap<String, (i64, String)>,
}

fn new_core(store: Store, clock: Arc<ManualClock>) -> R<Core> {
    let payments = Payments::new(PaymentsConfig {
        webhook_secret: Some(Secret::new(WHSEC)),
        public_url: "http://127.0.0.1:9".into(),
        ..Default::default()
    })
    .ctx("payments")?;
    Ok(Core::with_payments(store, clock, payments))
}

fn nanos(m: Money) -> i64 {
    m.nanos()
}

fn event_payload(id: &str, kind: &str, created: i64, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2026-09-30.endive",
        "created": created,
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": object},
    })
    .to_string()
}

/// Runs `work` as its own task and aborts it after a random moment, as a crash or a
/// client hanging up would. True when it finished before the abort.
async fn interrupt<F>(work: F, yields: u64, sleep_ms: u64) -> bool
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = tokio::spawn(work);
    for _ in 0..yields {
        tokio::task::yield_now().await;
    }
    if sleep_ms > 0 {
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
    }
    handle.abort();
    match handle.await {
        Ok(_) => true,
        Err(e) if e.is_cancelled() => false,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

impl Sim {
    async fn new(seed: u64, ops: u64) -> R<Sim> {
        let db = fresh_store().await.ctx("test database")?;
        let clock = ManualClock::new(START);
        let core = new_core(db.store.clone(), clock.clone())?;
        let terms: PlanTerms = serde_json::from_value(json!({
            "markup_percent": "12.5",
            "tiers": [{"from_tokens": 3_000_000, "discount_percent": "10"}],
            "included_credits": "2.5",
            "daily_spend_cap": "15",
            "hold_lifetime_seconds": 900,
        }))
        .map_err(|e| e.to_string())?;
        plans::create(
            &db.store,
            Mode::Test,
            Some(PRO_PLAN),
            "Simulated pro",
            &terms,
            &Actor::ApiKey("simulation".into()),
            "the simulation's pro plan",
            START,
        )
        .await
        .ctx("create the pro plan")?;
        Ok(Sim {
            seed,
            db,
            clock,
            core,
            rng: Rng(seed),
            customers: Vec::new(),
            max_customers: (ops / 400).clamp(6, 40) as usize,
            auths: Vec::new(),
            pending: Vec::new(),
            settled: Vec::new(),
            topups: Vec::new(),
            open_topups: Vec::new(),
            paid_topups: Vec::new(),
            dirty: Vec::new(),
            queue: Vec::new(),
            counter: 0,
            stats: Stats::default(),
            usage_refunds: std::collections::HashMap::new(),
        })
    }

    fn unique(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}_{}_{}", self.seed, self.counter)
    }

    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn now_seconds(&self) -> i64 {
        self.now().micros() / 1_000_000
    }

    fn customer_index(&mut self) -> usize {
        self.rng.index(self.customers.len())
    }

    fn tokens(&mut self) -> Tokens {
        Tokens {
            input: self.rng.below(200_000),
            output: self.rng.below(20_000),
            cache_write: if self.rng.chance(20) {
                self.rng.below(50_000)
            } else {
                0
            },
            cache_read: if self.rng.chance(30) {
                self.rng.below(500_000)
            } else {
                0
            },
            cache_write_1h: 0,
        }
    }

    fn outcome(&mut self) -> Outcome {
        match self.rng.below(10) {
            0 => Outcome::Failed,
            1 => Outcome::Cancelled,
            _ => Outcome::Succeeded,
        }
    }

    fn model(&mut self) -> &'static str {
        MODELS[self.rng.index(MODELS.len())]
    }

    fn fate(&mut self) -> Fate {
        match self.rng.below(20) {
            0..=9 => Fate::Now,
            10..=13 => Fate::Delayed,
            14..=16 => Fate::Duplicated,
            _ => Fate::Lost,
        }
    }

    // ---- one step ----

    async fn step(&mut self) -> R {
        self.stats.ops += 1;
        if self.customers.is_empty() {
            return self.create_customer().await;
        }
        match self.rng.below(100) {
            0..=2 => {
                if self.customers.len() < self.max_customers {
                    self.create_customer().await
                } else {
                    self.duplicate_customer().await
                }
            }
            3..=17 => self.usage().await,
            18..=21 => self.duplicate_usage().await,
            22..=30 => self.authorize().await,
            31..=37 => self.capture().await,
            38..=40 => self.release().await,
            41 => self.burst().await,
            42..=45 => self.advance().await,
            46..=48 => self.sweep().await,
            49..=53 => self.grant().await,
            54 => self.grant_replay().await,
            55..=57 => self.correct().await,
            58..=62 => self.create_topup().await,
            63..=67 => self.pay_topup().await,
            68..=72 => self.deliver_queued().await,
            73..=74 => self.customer_returns().await,
            75..=76 => self.refund().await,
            77 => self.dispute_open().await,
            78 => self.dispute_close().await,
            79 => self.expire_topup().await,
            80..=85 => self.process_inbox().await,
            86..=87 => self.inject_failures().await,
            88 => self.bad_delivery().await,
            89 => self.restart().await,
            90..=92 => self.abort().await,
            93 => self.race().await,
            94..=95 => self.check().await,
            96 => self.suspend().await,
            97..=98 => self.refund_usage().await,
            _ => self.usage().await,
        }
    }

    /// Staff give back all or part of one charged request, once: the balance rises by the
    /// refund, the same request again is a replay, any other is refused.
    async fn refund_usage(&mut self) -> R {
        let i = self.customer_index();
        let charged: Vec<(String, i64)> = self.customers[i]
            .requests
            .iter()
            .filter(|(_, _, cost)| *cost > 0)
            .map(|(_, event, cost)| (event.clone(), *cost))
            .collect();
        let Some((event, cost)) = charged.get(self.rng.index(charged.len().max(1))).cloned() else {
            return Ok(());
        };
        if let Some((amount, reason)) = self.usage_refunds.get(&event).cloned() {
            let again = metering::refund(
                &self.core,
                Mode::Test,
                &event,
                &RefundRequest {
                    amount: Some(Money::from_nanos(amount)),
                    reason: reason.clone(),
                    actor: Actor::ApiKey("simulation".into()),
                },
            )
            .await
            .ctx("a refund replayed")?;
            ensure!(
                nanos(again.refunded_amount) == amount,
                "a replayed refund changes nothing"
            );
            let other = metering::refund(
                &self.core,
                Mode::Test,
                &event,
                &RefundRequest {
                    amount: None,
                    reason: format!("{reason} again"),
                    actor: Actor::ApiKey("simulation".into()),
                },
            )
            .await;
            ensure!(
                matches!(&other, Err(Error::Conflict { code, .. }) if *code == "already_refunded"),
                "a second, different refund is refused: {other:?}"
            );
            return Ok(());
        }
        let amount = if self.rng.chance(50) {
            cost
        } else {
            self.rng.range(1, cost)
        };
        let reason = self.unique("refund");
        let r = metering::refund(
            &self.core,
            Mode::Test,
            &event,
            &RefundRequest {
                amount: (amount != cost || self.rng.chance(50)).then(|| Money::from_nanos(amount)),
                reason: reason.clone(),
                actor: Actor::ApiKey("simulation".into()),
            },
        )
        .await
        .ctx("refund a charged request")?;
        ensure!(
            nanos(r.refunded_amount) == amount && nanos(r.cost) == cost,
            "the event records its refund: {r:?}"
        );
        self.customers[i].expected += amount;
        self.usage_refunds.insert(event, (amount, reason));
        Ok(())
    }

    async fn create_customer(&mut self) -> R {
        let external_id = self.unique("user");
        let email = format!("{external_id}@example.com");
        let pro = self.customers.len() % 2 == 1;
        let c = customers::create(
            &self.core,
            Mode::Test,
            &NewCustomer {
                external_id: external_id.clone(),
                email: Some(email),
                name: None,
                plan: pro.then(|| PRO_PLAN.to_string()),
            },
        )
        .await
        .ctx("create customer")?;
        let included = if pro { PRO_INCLUDED } else { 0 };
        ensure!(
            nanos(c.available) == included && c.held == Money::ZERO,
            "a new customer starts with the plan's included credits: {c:?}"
        );
        let now = self.now();
        self.customers.push(CustomerModel {
            id: c.id,
            account_id: c.account_id,
            external_id,
            expected: included,
            expiring: if pro {
                vec![(included, now.next_month_start())]
            } else {
                Vec::new()
            },
            requests: Vec::new(),
            grants: Vec::new(),
            pro,
            suspended: false,
            dispute_pending: false,
            included_month: now.month_key(),
        });
        Ok(())
    }

    async fn duplicate_customer(&mut self) -> R {
        let i = self.customer_index();
        let new = NewCustomer {
            external_id: self.customers[i].external_id.clone(),
            ..Default::default()
        };
        match customers::create(&self.core, Mode::Test, &new).await {
            Err(Error::Conflict {
                code: "external_id_taken",
                ..
            }) => Ok(()),
            other => Err(format!("a taken external_id must conflict: {other:?}")),
        }
    }

    fn usage_input(&mut self, i: usize, request_id: String) -> UsageInput {
        let model = self.model().to_string();
        let tokens = self.tokens();
        let outcome = self.outcome();
        let batch = self.rng.chance(10);
        UsageInput {
            customer: self.customers[i].id.clone(),
            model,
            tokens,
            batch,
            outcome,
            request_id,
            occurred_at: None,
            metadata: None,
        }
    }

    /// Books a recorded event into the model (once per request id).
    fn book_usage(&mut self, i: usize, r: &Recorded) -> R {
        let items = metering::line_items(&r.event).ctx("line items")?;
        let sum: i64 = items.iter().map(|l| nanos(l.amount)).sum();
        ensure!(
            sum == nanos(r.event.cost) && !r.event.cost.is_negative(),
            "an event's cost is the sum of its line items: {:?}",
            r.event
        );
        let c = &mut self.customers[i];
        c.expected -= nanos(r.event.cost);
        c.requests.push((
            r.event.request_id.clone(),
            r.event.id.clone(),
            nanos(r.event.cost),
        ));
        Ok(())
    }

    async fn usage(&mut self) -> R {
        let i = self.customer_index();
        let request_id = self.unique("req");
        let input = self.usage_input(i, request_id);
        let r = metering::record_usage(&self.core, Mode::Test, &input)
            .await
            .ctx("record usage")?;
        ensure!(r.created, "a new request id creates an event");
        self.book_usage(i, &r)
    }

    async fn duplicate_usage(&mut self) -> R {
        let i = self.customer_index();
        if self.customers[i].requests.is_empty() {
            return self.usage().await;
        }
        let k = self.rng.index(self.customers[i].requests.len());
        let (request_id, event_id, cost) = self.customers[i].requests[k].clone();
        // The same request id with different tokens: still the original event.
        let input = self.usage_input(i, request_id);
        let r = metering::record_usage(&self.core, Mode::Test, &input)
            .await
            .ctx("duplicate usage")?;
        ensure!(
            !r.created && r.event.id == event_id && nanos(r.event.cost) == cost,
            "a duplicate request id returns the original event {event_id}: {:?}",
            r.event
        );
        Ok(())
    }

    /// Once the inbox has applied a delivered lost dispute, the customer is suspended.
    async fn observe_suspension(&mut self, i: usize) -> R {
        if !self.customers[i].dispute_pending {
            return Ok(());
        }
        let account = self
            .core
            .store
            .account(&self.customers[i].account_id)
            .await
            .ctx("account")?;
        if account.status.as_str() == "suspended" {
            self.customers[i].suspended = true;
            self.customers[i].dispute_pending = false;
        }
        Ok(())
    }

    async fn authorize(&mut self) -> R {
        let i = self.customer_index();
        self.observe_suspension(i).await?;
        let by_amount = self.rng.chance(40);
        let what = if by_amount {
            HoldFor::Amount(Money::from_nanos(self.rng.range(1, 3_000_000_000)))
        } else {
            let model = self.model().to_string();
            let tokens = self.tokens();
            let batch = self.rng.chance(20);
            HoldFor::Request {
                model,
                tokens,
                batch,
            }
        };
        match metering::authorize(&self.core, Mode::Test, &self.customers[i].id, &what).await {
            Ok(a) => {
                ensure!(
                    !self.customers[i].suspended,
                    "a suspended customer got a hold"
                );
                ensure!(
                    a.hold.status.as_str() == "pending" && a.hold.amount.is_positive(),
                    "a new hold is pending: {:?}",
                    a.hold
                );
                self.auths.push(AuthModel {
                    id: a.row.id,
                    customer: i,
                    by_amount,
                    state: AuthState::Pending {
                        expires_at: a.hold.expires_at,
                    },
                });
                self.pending.push(self.auths.len() - 1);
                Ok(())
            }
            Err(Error::InsufficientCredits { available }) if !self.customers[i].suspended => {
                if let HoldFor::Amount(amount) = what {
                    ensure!(
                        available < amount,
                        "refused a hold of {amount} with {available} available"
                    );
                }
                Ok(())
            }
            Err(Error::Suspended) if self.customers[i].suspended => Ok(()),
            Err(Error::CapReached) if self.customers[i].pro && !self.customers[i].suspended => {
                Ok(())
            }
            Err(e) => Err(format!(
                "authorize (suspended: {}): {e:?}",
                self.customers[i].suspended
            )),
        }
    }

    fn settle(&mut self, slot: usize, state: AuthState) {
        let a = self.pending.swap_remove(slot);
        self.auths[a].state = state;
        self.settled.push(a);
        if self.settled.len() > 400 {
            self.settled.remove(0);
        }
    }

    fn capture_input(&mut self, a: usize) -> CaptureInput {
        let model = if self.auths[a].by_amount || self.rng.chance(50) {
            Some(self.model().to_string())
        } else {
            None
        };
        let request_id = if self.rng.chance(50) {
            Some(self.unique("cap"))
        } else {
            None
        };
        CaptureInput {
            model,
            tokens: self.tokens(),
            outcome: self.outcome(),
            request_id,
            metadata: None,
            batch: None,
            proxied: None,
        }
    }

    async fn capture(&mut self) -> R {
        if self.pending.is_empty() || self.rng.chance(10) {
            return self.replay_settled().await;
        }
        let slot = self.rng.index(self.pending.len());
        let a = self.pending[slot];
        let input = self.capture_input(a);
        let id = self.auths[a].id.clone();
        if matches!(self.auths[a].state, AuthState::Pending { expires_at } if expires_at <= self.now())
        {
            // Past its deadline but not swept yet: the hold is returned and the usage is
            // charged all the same, from available.
            self.stats.late_captures += 1;
            let r = metering::capture(&self.core, Mode::Test, &id, &input)
                .await
                .ctx("capture past the deadline")?;
            ensure!(
                r.created && r.event.authorization_expired,
                "a capture past the deadline is charged and marked: {:?}",
                r.event
            );
            self.book_usage(self.auths[a].customer, &r)?;
            self.settle(
                slot,
                AuthState::LateCaptured {
                    event_id: r.event.id,
                },
            );
            return Ok(());
        }
        let r = metering::capture(&self.core, Mode::Test, &id, &input)
            .await
            .ctx("capture a pending hold")?;
        ensure!(r.created, "the first capture creates the event");
        self.book_usage(self.auths[a].customer, &r)?;
        self.settle(
            slot,
            AuthState::Captured {
                event_id: r.event.id,
            },
        );
        Ok(())
    }

    /// Capturing or releasing a settled hold again: the same result, or a conflict.
    async fn replay_settled(&mut self) -> R {
        if self.settled.is_empty() {
            return Ok(());
        }
        let a = self.settled[self.rng.index(self.settled.len())];
        let input = self.capture_input(a);
        let id = self.auths[a].id.clone();
        let state = self.auths[a].state.clone();
        let captured = metering::capture(&self.core, Mode::Test, &id, &input).await;
        let released = metering::release(&self.core, Mode::Test, &id).await;
        match (&state, captured, released) {
            (AuthState::Captured { event_id }, Ok(r), Err(Error::Conflict { code, .. })) => {
                ensure!(
                    !r.created && &r.event.id == event_id && code == "authorization_not_pending",
                    "a captured hold replays its event and refuses release"
                );
            }
            (AuthState::LateCaptured { event_id }, Ok(r), Ok(hold)) => {
                ensure!(
                    !r.created && &r.event.id == event_id && hold.hold.status.as_str() == "expired",
                    "a late capture replays its event and the hold stays expired"
                );
            }
            (AuthState::Released, Err(Error::Conflict { code, .. }), Ok(hold)) => {
                ensure!(
                    code == "authorization_not_pending" && hold.hold.status.as_str() == "released",
                    "a released hold refuses capture and stays released: {:?}",
                    hold.hold
                );
            }
            (AuthState::Expired, Ok(r), Ok(hold)) => {
                ensure!(
                    r.created
                        && r.event.authorization_expired
                        && hold.hold.status.as_str() == "expired",
                    "an expired hold's capture is charged from available: {:?}",
                    r.event
                );
                self.stats.late_captures += 1;
                self.book_usage(self.auths[a].customer, &r)?;
                self.auths[a].state = AuthState::LateCaptured {
                    event_id: r.event.id,
                };
            }
            (s, c, r) => {
                return Err(format!(
                    "replaying hold {id} in state {s:?}: capture {c:?}, release {r:?}"
                ))
            }
        }
        Ok(())
    }

    async fn release(&mut self) -> R {
        if self.pending.is_empty() {
            return self.replay_settled().await;
        }
        let slot = self.rng.index(self.pending.len());
        let id = self.auths[self.pending[slot]].id.clone();
        let a = metering::release(&self.core, Mode::Test, &id)
            .await
            .ctx("release a pending hold")?;
        ensure!(
            a.hold.status.as_str() == "released",
            "a pending hold is released: {:?}",
            a.hold
        );
        self.settle(slot, AuthState::Released);
        Ok(())
    }

    /// Concurrent holds on one customer never hold more than was available.
    async fn burst(&mut self) -> R {
        let i = self.customer_index();
        self.observe_suspension(i).await?;
        let id = self.customers[i].id.clone();
        let before = customers::get(&self.core, Mode::Test, &id)
            .await
            .ctx("customer")?;
        let n = self.rng.range(2, 12) as usize;
        // One amount for all, so how many succeed does not depend on who goes first.
        let amounts = vec![Money::from_nanos(self.rng.range(1, 1_500_000_000)); n];
        let core = self.core.clone();
        let results =
            futures::future::join_all(amounts.iter().map(|amount| {
                let core = core.clone();
                let id = id.clone();
                let amount = *amount;
                async move {
                    metering::authorize(&core, Mode::Test, &id, &HoldFor::Amount(amount)).await
                }
            }))
            .await;
        let mut held = 0;
        for (r, amount) in results.into_iter().zip(&amounts) {
            match r {
                Ok(a) => {
                    held += nanos(*amount);
                    self.auths.push(AuthModel {
                        id: a.row.id,
                        customer: i,
                        by_amount: true,
                        state: AuthState::Pending {
                            expires_at: a.hold.expires_at,
                        },
                    });
                    self.pending.push(self.auths.len() - 1);
                }
                Err(Error::InsufficientCredits { .. }) if !self.customers[i].suspended => {}
                Err(Error::Suspended) if self.customers[i].suspended => {}
                Err(Error::CapReached) if self.customers[i].pro => {}
                Err(e) => return Err(format!("concurrent authorize: {e:?}")),
            }
        }
        let after = customers::get(&self.core, Mode::Test, &id)
            .await
            .ctx("customer")?;
        ensure!(
            held <= nanos(before.available).max(0),
            "{n} concurrent holds took {held} of {} available",
            before.available
        );
        ensure!(
            nanos(after.held) - nanos(before.held) == held,
            "held grew by {} for {held} of successful holds",
            nanos(after.held) - nanos(before.held)
        );
        Ok(())
    }

    async fn advance(&mut self) -> R {
        let seconds = match self.rng.below(10) {
            0..=5 => self.rng.range(1, 120),
            6..=8 => self.rng.range(120, 3_600),
            _ => self.rng.range(3_600, 3 * 86_400),
        };
        self.clock.advance_seconds(seconds);
        Ok(())
    }

    async fn sweep(&mut self) -> R {
        let now = self.now();
        let due: Vec<usize> = (0..self.pending.len())
            .filter(|&s| {
                matches!(self.auths[self.pending[s]].state,
                    AuthState::Pending { expires_at } if expires_at <= now)
            })
            .collect();
        let expired = self.core.ledger.expire_holds().await.ctx("expire holds")?;
        // Holds of interrupted authorizations are unknown to the model, so at least.
        ensure!(
            expired >= due.len(),
            "the sweep expired {expired} holds, the model knows {} overdue",
            due.len()
        );
        for s in due.into_iter().rev() {
            self.settle(s, AuthState::Expired);
        }
        self.core
            .ledger
            .expire_grants()
            .await
            .ctx("expire grants")?;
        let month = now.month_key();
        let done = customers::grant_all_included_credits(&self.core)
            .await
            .ctx("included credits")?;
        let mut due = 0;
        for c in self
            .customers
            .iter_mut()
            .filter(|c| c.included_month != month)
        {
            due += 1;
            c.included_month = month.clone();
            if c.pro {
                c.expected += PRO_INCLUDED;
                c.expiring.push((PRO_INCLUDED, now.next_month_start()));
            }
        }
        ensure!(
            done == due,
            "{done} customers got {month}'s included credits, the model expects {due}"
        );
        Ok(())
    }

    /// An admin suspends or resumes a customer: no new holds while suspended, but usage
    /// that happened is still recorded.
    async fn suspend(&mut self) -> R {
        let i = self.customer_index();
        self.observe_suspension(i).await?;
        let suspend = !self.customers[i].suspended && self.rng.chance(60);
        let account = self.customers[i].account_id.clone();
        let row = self
            .core
            .ledger
            .set_suspended(&account, suspend)
            .await
            .ctx("suspend")?;
        let status = if suspend { "suspended" } else { "active" };
        ensure!(
            row.status.as_str() == status,
            "the account is {status}: {row:?}"
        );
        self.customers[i].suspended = suspend;
        Ok(())
    }

    fn grant_request(&mut self, reference: String) -> (GrantRequest, i64) {
        let amount = self.rng.range(1, 20_000_000_000);
        // Customers on the standard plan only ever get grants that never expire, so their
        // balance is known to the nano-unit with no breakage at all.
        let expires_at = None;
        (
            GrantRequest {
                amount: Money::from_nanos(amount),
                reason: "simulation".into(),
                expires_at,
                actor: "sim".into(),
                reference: Some(reference),
            },
            amount,
        )
    }

    async fn grant(&mut self) -> R {
        let i = self.customer_index();
        let reference = self.unique("grant");
        let (mut g, amount) = self.grant_request(reference.clone());
        if self.customers[i].pro && self.rng.chance(60) {
            g.expires_at = Some(self.now().plus_seconds(self.rng.range(60, 5 * 86_400)));
        }
        let posted = customers::grant(&self.core, Mode::Test, &self.customers[i].id, &g)
            .await
            .ctx("grant")?;
        ensure!(!posted.replayed, "a new reference writes a new grant");
        let c = &mut self.customers[i];
        c.expected += amount;
        if let Some(t) = g.expires_at {
            c.expiring.push((amount, t));
        }
        c.grants.push((reference, amount, g.expires_at));
        Ok(())
    }

    /// A grant sent again: the same content replays, a different amount conflicts.
    async fn grant_replay(&mut self) -> R {
        let i = self.customer_index();
        if self.customers[i].grants.is_empty() {
            return self.grant().await;
        }
        let k = self.rng.index(self.customers[i].grants.len());
        let (reference, amount, expires_at) = self.customers[i].grants[k].clone();
        let same = self.rng.chance(70);
        let g = GrantRequest {
            amount: Money::from_nanos(if same { amount } else { amount + 1 }),
            reason: "simulation".into(),
            expires_at,
            actor: "sim".into(),
            reference: Some(reference),
        };
        let id = self.customers[i].id.clone();
        let r = customers::grant(&self.core, Mode::Test, &id, &g).await;
        match (same, r) {
            (true, Ok(p)) if p.replayed => Ok(()),
            (
                false,
                Err(Error::Conflict {
                    code: "reference_reused",
                    ..
                }),
            ) => Ok(()),
            // A replayed expiring grant whose expiry has passed is refused as invalid
            // before the reference is looked at; nothing is written either way.
            (_, Err(Error::Invalid { .. })) if expires_at.is_some_and(|t| t <= self.now()) => {
                Ok(())
            }
            (same, r) => Err(format!("grant replay (same content: {same}): {r:?}")),
        }
    }

    async fn correct(&mut self) -> R {
        let i = self.customer_index();
        let magnitude = self.rng.range(1, 5_000_000_000);
        let amount = if self.rng.chance(50) {
            magnitude
        } else {
            -magnitude
        };
        let reference = self.unique("correction");
        let attribution = || Attribution {
            actor: Some("sim-admin".into()),
            reason: Some("simulated correction".into()),
        };
        let account = self.customers[i].account_id.clone();
        let posted = self
            .core
            .ledger
            .correct(
                &account,
                Money::from_nanos(amount),
                &reference,
                attribution(),
            )
            .await
            .ctx("correct")?;
        ensure!(!posted.replayed, "a new correction is written");
        self.customers[i].expected += amount;
        if self.rng.chance(20) {
            let again = self
                .core
                .ledger
                .correct(
                    &account,
                    Money::from_nanos(amount),
                    &reference,
                    attribution(),
                )
                .await
                .ctx("correct again")?;
            ensure!(
                again.replayed && again.transaction.id == posted.transaction.id,
                "a correction sent twice is written once"
            );
        }
        Ok(())
    }

    async fn create_topup(&mut self) -> R {
        let i = self.customer_index();
        let cents = if self.rng.chance(80) {
            self.rng.range(100, 10_000)
        } else {
            self.rng.range(100, 1_000_000)
        };
        let amount = Money::from_cents(cents).map_err(|e| e.to_string())?;
        let row = payments::create_topup(
            &self.core,
            Mode::Test,
            &self.customers[i].id,
            amount,
            payments::TopupSource::Api,
            None,
            None,
        )
        .await
        .ctx("create top-up")?;
        let session = row
            .checkout_session_id
            .clone()
            .ok_or("a simulated top-up has a session")?;
        ensure!(
            row.status.as_str() == "pending" && session.starts_with("cs_sim_"),
            "a new top-up is pending with a simulated session: {row:?}"
        );
        self.topups.push(TopupModel {
            id: row.id,
            session,
            customer: i,
            cents,
            paid: false,
            closed: false,
            lost: false,
            completed: None,
            refund_issued: 0,
            refund_delivered: 0,
            disputes: Vec::new(),
        });
        self.open_topups.push(self.topups.len() - 1);
        self.dirty.push(self.topups.len() - 1);
        Ok(())
    }

    fn checkout_event(&mut self, t: usize, kind: &str) -> String {
        let id = self.unique("evt_sim");
        let now = self.now_seconds();
        let topup = &self.topups[t];
        let paid = kind == "checkout.session.completed";
        event_payload(
            &id,
            kind,
            now,
            json!({
                "id": topup.session,
                "object": "checkout.session",
                "created": now,
                "expires_at": now + 86_400,
                "livemode": false,
                "mode": "payment",
                "payment_status": if paid { "paid" } else { "unpaid" },
                "status": if paid { "complete" } else { "expired" },
                "amount_total": topup.cents,
                "amount_subtotal": topup.cents,
                "currency": "usd",
                "payment_intent": if paid { Value::String(topup.payment_intent()) } else { Value::Null },
                "metadata": {"topup_id": topup.id},
                "automatic_tax": {"enabled": false},
                "custom_fields": [],
                "custom_text": {},
                "payment_method_types": ["card"],
                "shipping_options": [],
            }),
        )
    }

    /// Stripe takes the money: the session is paid (as the simulated checkout's Pay button
    /// records it) and `checkout.session.completed` goes out, to arrive or not.
    async fn pay_topup(&mut self) -> R {
        if self.open_topups.is_empty() {
            return self.create_topup().await;
        }
        let slot = self.rng.index(self.open_topups.len());
        let t = self.open_topups.swap_remove(slot);
        let mut tx = self.core.store.begin().await.ctx("begin")?;
        tx.mark_simulated_paid(&self.topups[t].id, self.now())
            .await
            .ctx("mark paid")?;
        tx.commit().await.ctx("commit")?;
        let payload = self.checkout_event(t, "checkout.session.completed");
        let topup = &mut self.topups[t];
        topup.paid = true;
        topup.completed = Some(payload.clone());
        let amount = topup.cents * NANOS_PER_CENT;
        let c = topup.customer;
        self.customers[c].expected += amount;
        self.paid_topups.push(t);
        self.dirty.push(t);
        let fate = self.fate();
        if matches!(fate, Fate::Lost) {
            self.topups[t].lost = true;
        }
        self.send(
            Delivery {
                payload,
                effect: Effect::None,
            },
            fate,
        )
        .await
    }

    async fn send(&mut self, d: Delivery, fate: Fate) -> R {
        match fate {
            Fate::Now => self.deliver(&d).await,
            Fate::Delayed => {
                self.stats.delayed += 1;
                self.queue.push(d);
                Ok(())
            }
            Fate::Duplicated => {
                self.stats.duplicated += 1;
                self.deliver(&d).await?;
                self.queue.push(d);
                Ok(())
            }
            Fate::Lost => {
                self.stats.lost += 1;
                Ok(())
            }
        }
    }

    fn header(&self, payload: &str, secret: &str, offset_seconds: i64) -> String {
        stripe_webhook::Webhook::generate_test_header(
            payload,
            secret,
            Some(self.now_seconds() + offset_seconds),
        )
    }

    /// Delivers a correctly signed event; our endpoint must store it.
    async fn deliver(&mut self, d: &Delivery) -> R {
        let header = self.header(&d.payload, WHSEC, 0);
        webhooks::receive(&self.core, &d.payload, Some(&header))
            .await
            .ctx("a correctly signed delivery")?;
        self.delivered(d.effect);
        Ok(())
    }

    fn delivered(&mut self, effect: Effect) {
        match effect {
            Effect::None => {}
            Effect::Refund { topup, total } => {
                let t = &mut self.topups[topup];
                if total > t.refund_delivered {
                    let more = (total - t.refund_delivered) * NANOS_PER_CENT;
                    t.refund_delivered = total;
                    let c = t.customer;
                    self.customers[c].expected -= more;
                }
                self.dirty.push(topup);
            }
            Effect::DisputeCreated { topup, dispute }
            | Effect::DisputeClosed { topup, dispute } => {
                let t = &mut self.topups[topup];
                let d = &mut t.disputes[dispute];
                let before = d.effect();
                // A lost dispute suspends the customer when its close is first applied.
                let lost_now = matches!(effect, Effect::DisputeClosed { .. })
                    && !d.closed_delivered
                    && d.closed == Some(false);
                if matches!(effect, Effect::DisputeCreated { .. }) {
                    d.created_delivered = true;
                } else {
                    d.closed_delivered = true;
                }
                let change = d.effect() - before;
                let c = t.customer;
                self.customers[c].expected += change;
                if lost_now {
                    self.customers[c].dispute_pending = true;
                }
            }
        }
    }

    async fn deliver_queued(&mut self) -> R {
        if self.queue.is_empty() {
            return self.process_inbox().await;
        }
        // Any queued delivery may be next: Stripe does not keep order.
        let d = self.queue.swap_remove(self.rng.index(self.queue.len()));
        self.deliver(&d).await
    }

    /// The customer lands on the success page: `fulfill_session` asks the gateway.
    async fn customer_returns(&mut self) -> R {
        if self.paid_topups.is_empty() {
            return self.pay_topup().await;
        }
        // Prefer a top-up whose announcement was lost.
        let t = match self.paid_topups.iter().find(|&&t| self.topups[t].lost) {
            Some(&t) if self.rng.chance(70) => t,
            _ => self.paid_topups[self.rng.index(self.paid_topups.len())],
        };
        let session = self.topups[t].session.clone();
        match payments::fulfill_session(&self.core, &session)
            .await
            .ctx("fulfill")?
        {
            Fulfillment::Credited(row) => {
                ensure!(
                    row.status.as_str() == "paid",
                    "credited means paid: {row:?}"
                );
                self.topups[t].lost = false;
                Ok(())
            }
            other => Err(format!(
                "a paid session must be credited on return: {other:?}"
            )),
        }
    }

    async fn refund(&mut self) -> R {
        if self.paid_topups.is_empty() {
            return self.pay_topup().await;
        }
        let t = self.paid_topups[self.rng.index(self.paid_topups.len())];
        let (cents, issued) = (self.topups[t].cents, self.topups[t].refund_issued);
        if issued >= cents {
            return Ok(());
        }
        let total = if self.rng.chance(30) {
            cents
        } else {
            self.rng.range(issued + 1, cents)
        };
        self.topups[t].refund_issued = total;
        let id = self.unique("evt_sim");
        let object = json!({
            "id": format!("ch_sim_{}", self.topups[t].id),
            "object": "charge",
            "amount": cents,
            "amount_refunded": total,
            "refunded": total == cents,
            "currency": "usd",
            "payment_intent": self.topups[t].payment_intent(),
        });
        let payload = event_payload(&id, "charge.refunded", self.now_seconds(), object);
        let fate = self.fate();
        self.send(
            Delivery {
                payload,
                effect: Effect::Refund { topup: t, total },
            },
            fate,
        )
        .await
    }

    fn dispute_event(&mut self, t: usize, d: usize, kind: &str, status: &str) -> String {
        let id = self.unique("evt_sim");
        let topup = &self.topups[t];
        let dispute = &topup.disputes[d];
        let object = json!({
            "id": dispute.id,
            "object": "dispute",
            "amount": dispute.cents,
            "currency": "usd",
            "status": status,
            "charge": format!("ch_sim_{}", topup.id),
            "payment_intent": topup.payment_intent(),
        });
        event_payload(&id, kind, self.now_seconds(), object)
    }

    async fn dispute_open(&mut self) -> R {
        if self.paid_topups.is_empty() {
            return self.pay_topup().await;
        }
        let t = self.paid_topups[self.rng.index(self.paid_topups.len())];
        let cents = self.rng.range(1, self.topups[t].cents);
        let id = self.unique("dp_sim");
        self.topups[t].disputes.push(DisputeModel {
            id,
            cents,
            created_delivered: false,
            closed: None,
            closed_delivered: false,
        });
        let d = self.topups[t].disputes.len() - 1;
        let payload = self.dispute_event(t, d, "charge.dispute.created", "needs_response");
        let fate = self.fate();
        self.send(
            Delivery {
                payload,
                effect: Effect::DisputeCreated {
                    topup: t,
                    dispute: d,
                },
            },
            fate,
        )
        .await
    }

    async fn dispute_close(&mut self) -> R {
        let open: Vec<(usize, usize)> = self
            .paid_topups
            .iter()
            .flat_map(|&t| {
                self.topups[t]
                    .disputes
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.closed.is_none())
                    .map(move |(d, _)| (t, d))
            })
            .collect();
        if open.is_empty() {
            return self.dispute_open().await;
        }
        let (t, d) = open[self.rng.index(open.len())];
        let won = self.rng.chance(50);
        self.topups[t].disputes[d].closed = Some(won);
        let payload = self.dispute_event(
            t,
            d,
            "charge.dispute.closed",
            if won { "won" } else { "lost" },
        );
        let fate = self.fate();
        self.send(
            Delivery {
                payload,
                effect: Effect::DisputeClosed {
                    topup: t,
                    dispute: d,
                },
            },
            fate,
        )
        .await
    }

    /// An abandoned checkout expires; it is never paid.
    async fn expire_topup(&mut self) -> R {
        if self.open_topups.is_empty() {
            return self.create_topup().await;
        }
        let slot = self.rng.index(self.open_topups.len());
        let t = self.open_topups.swap_remove(slot);
        self.topups[t].closed = true;
        self.dirty.push(t);
        let payload = self.checkout_event(t, "checkout.session.expired");
        // Stripe keeps retrying until we answer, so an expiry is never lost for good.
        let fate = match self.fate() {
            Fate::Lost => Fate::Delayed,
            f => f,
        };
        self.send(
            Delivery {
                payload,
                effect: Effect::None,
            },
            fate,
        )
        .await
    }

    async fn process_inbox(&mut self) -> R {
        webhooks::process_due(&self.core)
            .await
            .ctx("process the inbox")?;
        Ok(())
    }

    async fn inject_failures(&mut self) -> R {
        let n = self.rng.range(1, 3) as u32;
        self.core.payments.faults.fail_next_webhooks(n);
        self.stats.webhook_failures += u64::from(n);
        Ok(())
    }

    /// Forged, tampered and stale deliveries are refused and leave nothing behind.
    async fn bad_delivery(&mut self) -> R {
        let Some(&t) = self.paid_topups.last() else {
            return Ok(());
        };
        let Some(genuine) = self.topups[t].completed.clone() else {
            return Ok(());
        };
        // A fresh event id, so "not stored" can be checked.
        let id = self.unique("evt_forged");
        let mut event: Value = serde_json::from_str(&genuine).map_err(|e| e.to_string())?;
        event["id"] = json!(id);
        let payload = event.to_string();
        let skew = 301 + self.rng.range(0, 100_000);
        let (body, header) = match self.rng.below(4) {
            0 => (payload.clone(), self.header(&payload, "whsec_wrong", 0)),
            1 => (payload.clone(), self.header(&payload, WHSEC, -skew)),
            2 => (payload.clone(), self.header(&payload, WHSEC, skew)),
            _ => {
                // A valid signature over a different body.
                let mut other = event.clone();
                other["data"]["object"]["amount_total"] = json!(99_999_999);
                (other.to_string(), self.header(&payload, WHSEC, 0))
            }
        };
        match webhooks::receive(&self.core, &body, Some(&header)).await {
            Err(Error::Invalid { .. }) => {}
            other => return Err(format!("a bad delivery must be refused: {other:?}")),
        }
        let stored = self.core.store.webhook_event(&id).await.ctx("inbox")?;
        ensure!(stored.is_none(), "a refused delivery was stored");
        self.stats.refused += 1;
        Ok(())
    }

    /// The process dies and starts again: new pools, migrations run again, injected
    /// faults forgotten. Sometimes an operation is cut off as it dies.
    async fn restart(&mut self) -> R {
        if self.rng.chance(50) {
            self.abort().await?;
        }
        let store = Store::connect(&self.db.url).await.ctx("reconnect")?;
        store.migrate().await.ctx("migrate again")?;
        let old = std::mem::replace(&mut self.core, new_core(store, self.clock.clone())?);
        old.store.close().await;
        drop(old);
        self.stats.restarts += 1;
        Ok(())
    }

    /// An operation in its own task, aborted at a random moment; then the caller retries
    /// it with the same reference, as a client does after a timeout. Exactly once either way.
    async fn abort(&mut self) -> R {
        self.stats.aborts += 1;
        let yields = self.rng.below(40);
        let sleep_ms = self.rng.below(4);
        let core = self.core.clone();
        let finished = match self.rng.below(6) {
            0 => {
                let i = self.customer_index();
                let request_id = self.unique("req");
                let input = self.usage_input(i, request_id);
                let moved = input.clone();
                let finished = interrupt(
                    async move { metering::record_usage(&core, Mode::Test, &moved).await },
                    yields,
                    sleep_ms,
                )
                .await;
                let r = metering::record_usage(&self.core, Mode::Test, &input)
                    .await
                    .ctx("usage retried after an abort")?;
                self.book_usage(i, &r)?;
                finished
            }
            1 => {
                let i = self.customer_index();
                let reference = self.unique("grant");
                let (g, amount) = self.grant_request(reference.clone());
                let (moved, id) = (g.clone(), self.customers[i].id.clone());
                let finished = interrupt(
                    async move { customers::grant(&core, Mode::Test, &id, &moved).await },
                    yields,
                    sleep_ms,
                )
                .await;
                customers::grant(&self.core, Mode::Test, &self.customers[i].id, &g)
                    .await
                    .ctx("grant retried after an abort")?;
                self.customers[i].expected += amount;
                self.customers[i].grants.push((reference, amount, None));
                finished
            }
            2 => {
                let i = self.customer_index();
                let amount = Money::from_nanos(self.rng.range(-2_000_000_000, 2_000_000_000) | 1);
                let reference = self.unique("correction");
                let account = self.customers[i].account_id.clone();
                let attribution = Attribution {
                    actor: Some("sim-admin".into()),
                    reason: Some("simulated correction".into()),
                };
                let (a, r, at) = (account.clone(), reference.clone(), attribution.clone());
                let finished = interrupt(
                    async move { core.ledger.correct(&a, amount, &r, at).await },
                    yields,
                    sleep_ms,
                )
                .await;
                self.core
                    .ledger
                    .correct(&account, amount, &reference, attribution)
                    .await
                    .ctx("correction retried after an abort")?;
                self.customers[i].expected += nanos(amount);
                finished
            }
            3 if !self.pending.is_empty() => {
                let slot = self.rng.index(self.pending.len());
                let a = self.pending[slot];
                if matches!(self.auths[a].state, AuthState::Pending { expires_at } if expires_at <= self.now())
                {
                    // Overdue holds are refused; `capture` covers that case.
                    return Ok(());
                }
                let input = self.capture_input(a);
                let (id, moved) = (self.auths[a].id.clone(), input.clone());
                let finished = interrupt(
                    async move { metering::capture(&core, Mode::Test, &id, &moved).await },
                    yields,
                    sleep_ms,
                )
                .await;
                let id = self.auths[a].id.clone();
                let r = metering::capture(&self.core, Mode::Test, &id, &input)
                    .await
                    .ctx("capture retried after an abort")?;
                self.book_usage(self.auths[a].customer, &r)?;
                self.settle(
                    slot,
                    AuthState::Captured {
                        event_id: r.event.id,
                    },
                );
                finished
            }
            4 if !self.paid_topups.is_empty() => {
                let t = self.paid_topups[self.rng.index(self.paid_topups.len())];
                let session = self.topups[t].session.clone();
                let moved = session.clone();
                let finished = interrupt(
                    async move { payments::fulfill_session(&core, &moved).await },
                    yields,
                    sleep_ms,
                )
                .await;
                match payments::fulfill_session(&self.core, &session)
                    .await
                    .ctx("fulfill retried after an abort")?
                {
                    Fulfillment::Credited(_) => self.topups[t].lost = false,
                    other => return Err(format!("a paid session after an abort: {other:?}")),
                }
                finished
            }
            _ => {
                // The inbox worker dies, perhaps holding a claim. Its replacement comes
                // up more than five minutes later, when any claim is stale and is taken
                // over. The clock moves whether or not a claim was left, so the rest of
                // the run does not depend on where the abort fell.
                let finished = interrupt(
                    async move { webhooks::process_due(&core).await },
                    yields,
                    sleep_ms,
                )
                .await;
                self.clock.advance_seconds(301);
                finished
            }
        };
        if !finished {
            self.stats.interrupted += 1;
        }
        Ok(())
    }

    /// The webhook, the customer's return and the worker, all at once.
    async fn race(&mut self) -> R {
        if self.paid_topups.is_empty() {
            return self.pay_topup().await;
        }
        self.stats.races += 1;
        let t = self.paid_topups[self.rng.index(self.paid_topups.len())];
        let payload = self.topups[t]
            .completed
            .clone()
            .ok_or("a paid top-up has its event")?;
        let session = self.topups[t].session.clone();
        let header = self.header(&payload, WHSEC, 0);
        let (received, fulfilled, processed, second) = tokio::join!(
            webhooks::receive(&self.core, &payload, Some(&header)),
            payments::fulfill_session(&self.core, &session),
            webhooks::process_due(&self.core),
            webhooks::process_due(&self.core),
        );
        received.ctx("race: receive")?;
        processed.ctx("race: process")?;
        second.ctx("race: a second worker")?;
        match fulfilled.ctx("race: fulfill")? {
            Fulfillment::Credited(_) => {}
            other => return Err(format!("race: a paid session must be credited: {other:?}")),
        }
        self.topups[t].lost = false;
        Ok(())
    }

    // ---- checks ----

    /// Stripe eventually delivers everything it retries, customers come back for lost
    /// announcements, and the worker runs (the clock moving on for its back-off) until
    /// the inbox is empty.
    async fn drain(&mut self) -> R {
        while !self.queue.is_empty() {
            let d = self.queue.swap_remove(self.rng.index(self.queue.len()));
            self.deliver(&d).await?;
        }
        let lost: Vec<usize> = self
            .paid_topups
            .iter()
            .copied()
            .filter(|&t| self.topups[t].lost)
            .collect();
        for t in lost {
            let session = self.topups[t].session.clone();
            match payments::fulfill_session(&self.core, &session)
                .await
                .ctx("fulfill a lost top-up")?
            {
                Fulfillment::Credited(_) => self.topups[t].lost = false,
                other => return Err(format!("a lost paid top-up on return: {other:?}")),
            }
        }
        let store = self.core.store.clone();
        for _ in 0..200 {
            webhooks::process_due(&self.core)
                .await
                .ctx("process the inbox")?;
            let waiting = store
                .count_webhook_events(app::core::vocab::InboxStatus::Pending)
                .await
                .ctx("count")?;
            let failed = store
                .count_webhook_events(app::core::vocab::InboxStatus::Failed)
                .await
                .ctx("count")?;
            let claimed = store
                .count_webhook_events(app::core::vocab::InboxStatus::Processing)
                .await
                .ctx("count")?;
            if waiting + failed + claimed == 0 {
                return Ok(());
            }
            if claimed > 0 {
                self.clock.advance_seconds(301);
                continue;
            }
            let now = self.now();
            let mut next = None::<Timestamp>;
            for e in store
                .webhook_events(Some(app::core::vocab::InboxStatus::Failed), 1_000)
                .await
                .ctx("inbox")?
            {
                next = Some(next.map_or(e.next_attempt_at, |n| n.min(e.next_attempt_at)));
            }
            let wait = next.map_or(1, |n| (n.micros() - now.micros()) / 1_000_000 + 1);
            self.clock.advance_seconds(wait.max(1));
        }
        let failed = store
            .webhook_events(Some(app::core::vocab::InboxStatus::Failed), 5)
            .await
            .ctx("inbox")?;
        Err(format!("the inbox does not drain; failing: {failed:?}"))
    }

    async fn verify(&mut self) -> R {
        self.stats.verifies += 1;
        let report = self.core.ledger.verify().await.ctx("verify")?;
        ensure!(report.is_clean(), "verify:\n{}", report.render());
        Ok(())
    }

    async fn breakage_total(&self) -> R<i64> {
        let (available, held) = self
            .core
            .store
            .posted_balance(&Operator::Breakage.account_id(Mode::Test))
            .await
            .ctx("breakage")?;
        Ok(nanos(available) + nanos(held))
    }

    /// Drains, then compares every balance with the model.
    ///
    /// Breakage is the one figure the model does not predict: how much of an expiring
    /// grant is left to expire depends on the lot rules (soonest-expiring first, holds
    /// inside lots), which `tests/ledger.rs` models on its own. So the check is exact
    /// in three other ways: customers who never had an expiring grant (the standard plan's)
    /// match to the nano-unit; for the others the shortfall is between zero and what
    /// their expired grants granted; and all shortfalls together equal the breakage
    /// account, to the nano-unit. At the end of a seed, `exact_breakage` also checks each
    /// customer's shortfall against the breakage postings of their own transactions.
    async fn check(&mut self) -> R {
        self.stats.checks += 1;
        self.drain().await?;
        let now = self.now();
        let mut shortfalls = 0i64;
        for c in &self.customers {
            let row = customers::get(&self.core, Mode::Test, &c.id)
                .await
                .ctx("customer")?;
            ensure!(!row.held.is_negative(), "negative held: {row:?}");
            let actual = nanos(row.available) + nanos(row.held);
            let shortfall = c.expected - actual;
            let expired: i64 = c
                .expiring
                .iter()
                .filter(|(_, t)| *t <= now)
                .map(|(a, _)| a)
                .sum();
            if shortfall < 0 || shortfall > expired {
                self.stats.drift += 1;
                return Err(format!(
                    "drift on {}: model {} (expired grants {expired}), ledger {actual} \
                     (available {}, held {})",
                    c.id, c.expected, row.available, row.held
                ));
            }
            shortfalls += shortfall;
        }
        let breakage = self.breakage_total().await?;
        if shortfalls != breakage {
            self.stats.drift += 1;
            return Err(format!(
                "customers are {shortfalls} short of the model, the breakage account holds {breakage}"
            ));
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for t in dirty {
            let m = &self.topups[t];
            let row = self
                .core
                .store
                .topup(&m.id)
                .await
                .ctx("top-up")?
                .ok_or("top-up vanished")?;
            let status = if m.paid {
                "paid"
            } else if m.closed {
                "expired"
            } else {
                "pending"
            };
            ensure!(
                row.status.as_str() == status && row.refunded_cents == m.refund_delivered,
                "top-up {} should be {status} with {} cents refunded: {row:?}",
                m.id,
                m.refund_delivered
            );
        }
        Ok(())
    }

    /// Each customer's shortfall equals the breakage postings of their own transactions.
    async fn exact_breakage(&self) -> R {
        let breakage = Operator::Breakage.account_id(Mode::Test);
        let now = self.now();
        for c in &self.customers {
            let row = customers::get(&self.core, Mode::Test, &c.id)
                .await
                .ctx("customer")?;
            let shortfall = c.expected - nanos(row.available) - nanos(row.held);
            let mut found = 0i64;
            if !c.expiring.is_empty() {
                let mut after: Option<String> = None;
                loop {
                    let page = self
                        .core
                        .store
                        .list_transactions(&c.account_id, after.as_deref(), None, 500)
                        .await
                        .ctx("transactions")?;
                    for t in &page {
                        for p in self.core.store.postings_of(&t.id).await.ctx("postings")? {
                            if p.account_id == breakage {
                                found += nanos(p.amount);
                            }
                        }
                    }
                    if page.len() < 500 {
                        break;
                    }
                    after = page.last().map(|t| t.id.clone());
                }
            }
            ensure!(
                shortfall == found,
                "{}: {shortfall} short of the model, {found} posted to breakage",
                c.id
            );
            // Nothing past its expiry keeps available credit once swept.
            for g in self
                .core
                .store
                .grants_of(&c.account_id)
                .await
                .ctx("grants")?
            {
                ensure!(
                    !(g.expires_at.is_some_and(|t| t <= now) && g.available.is_positive()),
                    "grant {} expired at {:?} keeps {}",
                    g.id,
                    g.expires_at,
                    g.available
                );
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> R {
        self.check().await?;
        self.core
            .ledger
            .expire_grants()
            .await
            .ctx("expire grants")?;
        self.check().await?;
        self.exact_breakage().await?;
        self.verify().await
    }
}

/// Prints the seed of a failing run, however it fails.
struct Reproduce {
    seed: u64,
    ops: u64,
    step: Cell<u64>,
}

impl Drop for Reproduce {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "simulation failed: seed {} at operation {}; reproduce with \
                 TALLY_SIM_SEEDS={} TALLY_SIM_OPS={} cargo test -p app --features ssr \
                 --test simulation -- --nocapture",
                self.seed,
                self.step.get(),
                self.seed,
                self.ops
            );
        }
    }
}

fn seeds() -> Vec<u64> {
    let text = std::env::var("TALLY_SIM_SEEDS").unwrap_or_else(|_| "1..=8".into());
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |s: &str| {
            s.trim()
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("TALLY_SIM_SEEDS: bad number {s:?}"))
        };
        if let Some((a, b)) = part.split_once("..=") {
            out.extend(parse(a)..=parse(b));
        } else if let Some((a, b)) = part.split_once("..") {
            out.extend(parse(a)..parse(b));
        } else {
            out.push(parse(part));
        }
    }
    out
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.replace('_', "")
                .parse()
                .unwrap_or_else(|_| panic!("{name}: not a number: {v:?}"))
        })
        .unwrap_or(default)
}

async fn run_seed(seed: u64, ops: u64, verify_every: u64) -> Stats {
    let started = Instant::now();
    let guard = Reproduce {
        seed,
        ops,
        step: Cell::new(0),
    };
    let mut sim = Sim::new(seed, ops).await.expect("simulation setup");
    let fail = |sim: &Sim, step: u64, e: String| {
        panic!(
            "seed {seed}, operation {step} of {ops}: {e}\nstats so far: {:?}",
            sim.stats
        )
    };
    for step in 1..=ops {
        guard.step.set(step);
        if let Err(e) = sim.step().await {
            fail(&sim, step, e);
        }
        if step % verify_every == 0 {
            if let Err(e) = sim.verify().await {
                fail(&sim, step, e);
            }
        }
        if ops >= 10_000 && step % (ops / 10) == 0 {
            println!(
                "seed {seed}: {step} of {ops} operations, {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
    }
    if let Err(e) = sim.finish().await {
        fail(&sim, ops, e);
    }
    let breakage = sim.breakage_total().await.unwrap_or_default();
    let s = &sim.stats;
    println!(
        "seed {seed}: {} ops, {} customers, {} checks, {} verifies | faults: {} webhook \
         failures, {} lost, {} duplicated, {} delayed, {} forged/stale refused, {} restarts, \
         {} aborts ({} cut off mid-operation), {} races | {} late captures, {} refunded \
         requests | drift {} | \
         breakage {} | {:.1} s",
        s.ops,
        sim.customers.len(),
        s.checks,
        s.verifies,
        s.webhook_failures,
        s.lost,
        s.duplicated,
        s.delayed,
        s.refused,
        s.restarts,
        s.aborts,
        s.interrupted,
        s.races,
        s.late_captures,
        sim.usage_refunds.len(),
        s.drift,
        Money::from_nanos(breakage),
        started.elapsed().as_secs_f64()
    );
    std::mem::take(&mut sim.stats)
}

#[tokio::test]
async fn random_operations_keep_every_balance_exact() {
    let ops = env_u64("TALLY_SIM_OPS", 300);
    let verify_every = env_u64("TALLY_SIM_VERIFY_EVERY", if ops <= 5_000 { 1 } else { 250 }).max(1);
    let mut total = Stats::default();
    let seeds = seeds();
    for &seed in &seeds {
        let s = run_seed(seed, ops, verify_every).await;
        total.ops += s.ops;
        total.checks += s.checks;
        total.verifies += s.verifies;
        total.webhook_failures += s.webhook_failures;
        total.lost += s.lost;
        total.duplicated += s.duplicated;
        total.delayed += s.delayed;
        total.refused += s.refused;
        total.restarts += s.restarts;
        total.aborts += s.aborts;
        total.interrupted += s.interrupted;
        total.races += s.races;
        total.late_captures += s.late_captures;
        total.drift += s.drift;
    }
    println!("{} seeds: {total:?}", seeds.len());
    assert_eq!(total.drift, 0);
}
