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

pub async fn run(core: &Core) -> Result<Report> {
    let started = core.clock.now();
    let mut report = Report::default();
    for mode in [Mode::Test, Mode::Live] {
        let Ok(gateway) = core.payments.gateway(mode) else {
            continue;
        };
        // 1. Events since the cursor.
        let cursor_key = format!("reconcile_cursor_{}", mode.as_str());
        let cursor: i64 = core
            .store
            .setting(&cursor_key)
            .await?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let events = gateway.events_since(cursor).await?;
        let mut newest = cursor;
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
        if newest > cursor {
            // Overlap by a minute: events of the same second may still be arriving.
            core.store
                .set_setting(&cursor_key, &(newest - 60).max(0).to_string())
                .await?;
        }
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
