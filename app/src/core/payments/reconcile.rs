//! Reconciliation: repairs what webhooks missed and reports what it cannot explain.
//!
//! 1. Stripe's events since the stored cursor go into the inbox (deduplicated by id), so a
//!    delivery that never reached us is applied like any other.
//! 2. Top-ups still open after a few minutes are asked about directly: a paid session is
//!    credited, an expired one closed.
//! 3. Top-ups we credited recently are checked against their session: a credit with no
//!    payment behind it is reported as unexplained (never silently reversed).
//! 4. Running subscriptions are read from Stripe and applied as if their events had come,
//!    and their paid invoices that Tally has not seen paid are applied too.
//!
//! Each run stores a report.

use std::fmt::Write as _;

use super::gateway::{Charge, SessionState};
use super::{auto, checkout_paid, close_expired, credit_topup, webhooks, Core};
use crate::core::error::Result;
use crate::core::ids;
use crate::core::ledger::Mode;
use crate::core::store::ReconciliationRow;

/// Top-ups open longer than this are checked with the gateway.
const OPEN_FOR_SECONDS: i64 = 300;
/// Paid top-ups of this recent window are checked for a payment behind them.
const PAID_WINDOW_SECONDS: i64 = 7 * 86_400;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub checked: i64,
    pub repaired: i64,
    pub unexplained: Vec<String>,
    pub lines: Vec<String>,
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "checked {}, repaired {}, unexplained {}",
            self.checked,
            self.repaired,
            self.unexplained.len()
        );
        for l in &self.lines {
            let _ = writeln!(out, "  {l}");
        }
        for u in &self.unexplained {
            let _ = writeln!(out, "  UNEXPLAINED {u}");
        }
        out
    }
}

/// Stores every Stripe event since the cursor that no webhook delivered. Stripe lists the
/// newest first, so a backlog longer than `max_events` is scanned downwards over several
/// runs: each run stores the newest `max_events` not yet scanned and keeps where it
/// stopped (`reconcile_upto_<mode>`) and the newest seen (`reconcile_newest_<mode>`); the
/// cursor moves only once the scan has reached it, so no event is skipped.
async fn recover_events(
    core: &Core,
    gateway: &super::Gateway<'_>,
    mode: Mode,
    max_events: usize,
    report: &mut Report,
) -> Result<()> {
    let key = |what: &str| format!("reconcile_{what}_{}", mode.as_str());
    let read = |value: Option<String>| value.and_then(|v| v.parse::<i64>().ok());
    let cursor = read(core.store.setting(&key("cursor")).await?).unwrap_or(0);
    let upto = read(core.store.setting(&key("upto")).await?);
    let mut newest = read(core.store.setting(&key("newest")).await?).unwrap_or(cursor);
    let (events, complete) = gateway.events_between(cursor, upto, max_events).await?;
    for e in &events {
        report.checked += 1;
        newest = newest.max(e.created);
        if webhooks::store_reconciled(core, &e.id, &e.event_type, mode, &e.payload).await? {
            report.repaired += 1;
            report.lines.push(format!(
                "recovered event {} ({}) that no webhook delivered",
                e.id, e.event_type
            ));
        }
    }
    if complete {
        if newest > cursor {
            // Overlap by a minute: events of the same second may still be arriving.
            core.store
                .set_setting(&key("cursor"), &(newest - 60).max(0).to_string())
                .await?;
        }
        core.store.set_setting(&key("upto"), "").await?;
        core.store.set_setting(&key("newest"), "").await?;
        return Ok(());
    }
    // More than one run takes: the next continues with the events at or before the
    // oldest stored now (that second again: storing is idempotent). Should a whole run's
    // worth share one second, step past it, and say so.
    let oldest = events.first().map_or(cursor, |e| e.created);
    let next = if upto == Some(oldest) {
        oldest - 1
    } else {
        oldest
    };
    if next < oldest {
        report.unexplained.push(format!(
            "{mode}: more than {max_events} events at {oldest}; the rest of that second is left to the webhooks",
            mode = mode.as_str()
        ));
    }
    core.store
        .set_setting(&key("upto"), &next.to_string())
        .await?;
    core.store
        .set_setting(&key("newest"), &newest.to_string())
        .await?;
    report.lines.push(format!(
        "{}: more than {max_events} events since the last run; the next run continues with those at or before {next}",
        mode.as_str()
    ));
    Ok(())
}

/// Stripe events one run fetches at most; a longer backlog is taken over several runs.
pub const MAX_EVENTS_PER_RUN: usize = 10_000;

pub async fn run(core: &Core) -> Result<Report> {
    run_with(core, MAX_EVENTS_PER_RUN).await
}

/// [`run`] fetching at most `max_events` Stripe events per mode.
pub async fn run_with(core: &Core, max_events: usize) -> Result<Report> {
    let started = core.clock.now();
    let mut report = Report::default();
    for mode in [Mode::Test, Mode::Live] {
        let Ok(gateway) = core.payments.gateway(mode) else {
            continue;
        };
        recover_events(core, &gateway, mode, max_events, &mut report).await?;
    }
    // The recovered events are applied now, not at the next worker tick.
    webhooks::process_due(core).await?;

    // 2. Open top-ups.
    let now = core.clock.now();
    for topup in core
        .store
        .open_topups(now.plus_seconds(-OPEN_FOR_SECONDS), 500)
        .await?
    {
        report.checked += 1;
        let mode = topup.mode;
        let Ok(gateway) = core.payments.gateway(mode) else {
            continue;
        };
        let Some(session) = topup.checkout_session_id.clone() else {
            // An auto top-up: ask about its PaymentIntent.
            if let Some(pi) = &topup.payment_intent_id {
                match gateway.payment_intent_state(pi).await? {
                    Charge::Succeeded { payment_intent } => {
                        credit_topup(core, &topup, Some(&payment_intent)).await?;
                        report.repaired += 1;
                        report.lines.push(format!(
                            "credited paid auto top-up {} that was still open",
                            topup.id
                        ));
                    }
                    Charge::Failed { reason, .. } => {
                        auto::failed(core, &topup, Some(pi), &reason).await?;
                        report
                            .lines
                            .push(format!("closed failed auto top-up {}", topup.id));
                    }
                    Charge::Processing { .. } => {}
                }
            }
            continue;
        };
        match gateway.session_state(&session, &topup).await? {
            SessionState::Paid {
                payment_intent,
                customer,
            } => {
                checkout_paid(core, &topup, payment_intent.as_deref(), customer.as_deref()).await?;
                report.repaired += 1;
                report.lines.push(format!(
                    "credited paid top-up {} that was still open",
                    topup.id
                ));
            }
            SessionState::Expired => {
                close_expired(core, &topup).await?;
                report
                    .lines
                    .push(format!("closed expired top-up {}", topup.id));
            }
            SessionState::Open => {}
        }
    }

    // 3. Credits with a payment behind them.
    for topup in core
        .store
        .paid_topups_since(now.plus_seconds(-PAID_WINDOW_SECONDS), 500)
        .await?
    {
        report.checked += 1;
        let (Some(mode), Some(session)) = (Some(topup.mode), topup.checkout_session_id.clone())
        else {
            continue;
        };
        let Ok(gateway) = core.payments.gateway(mode) else {
            continue;
        };
        if !matches!(
            gateway.session_state(&session, &topup).await?,
            SessionState::Paid { .. }
        ) {
            report.unexplained.push(format!(
                "top-up {} was credited but its session {session} is not paid",
                topup.id
            ));
        }
    }

    // 4. Subscriptions and their invoices against Stripe's state.
    let (checked, lines) = crate::core::subscriptions::reconcile(core).await?;
    report.checked += checked;
    report.repaired += lines.len() as i64;
    report.lines.extend(lines);

    let finished = core.clock.now();
    core.store
        .insert_reconciliation(&ReconciliationRow {
            id: ids::new_id("rec"),
            started_at: started,
            finished_at: finished,
            checked: report.checked,
            repaired: report.repaired,
            unexplained: report.unexplained.len() as i64,
            report: report.render(),
        })
        .await?;
    Ok(report)
}
