//! Balance alerts: `balance.low` once per crossing below the customer's threshold (armed
//! again once back above), `balance.depleted` at zero, `balance.recovered` when back at or
//! above the threshold. The state last notified is kept on the customer, and moved in the
//! same transaction as the balance, so concurrent writers cannot both announce a crossing.

use std::collections::{BTreeSet, HashMap};

use serde_json::json;

use super::outbox::{customer_ref, emit};
use crate::core::clock::Timestamp;
use crate::core::currency;
use crate::core::error::{Error, Result};
use crate::core::money::Money;
use crate::core::pricing::PlanTerms;
use crate::core::store::{CustomerRow, Tx};
use crate::core::vocab::{BalanceAlert, EventType, Mode};

/// The alert state of a balance against a threshold.
pub fn state_of(available: Money, threshold: Money) -> BalanceAlert {
    if !available.is_positive() {
        BalanceAlert::Depleted
    } else if available < threshold {
        BalanceAlert::Low
    } else {
        BalanceAlert::Ok
    }
}

/// The event a move from `was` to `now` announces, if any (depleted → low is quiet: the
/// customer is still under the threshold and was told).
pub fn transition(was: BalanceAlert, now: BalanceAlert) -> Option<EventType> {
    match (was, now) {
        (a, b) if a == b => None,
        (BalanceAlert::Ok, BalanceAlert::Low) => Some(EventType::BalanceLow),
        (_, BalanceAlert::Depleted) => Some(EventType::BalanceDepleted),
        (_, BalanceAlert::Ok) => Some(EventType::BalanceRecovered),
        (BalanceAlert::Depleted, BalanceAlert::Low) | (_, _) => None,
    }
}

/// After a journal wrote new balances for these accounts (inside its transaction): moves
/// each customer's alert state and writes the events of the moves.
pub async fn balances_changed(tx: &mut Tx, now: Timestamp, accounts: &[&str]) -> Result<()> {
    if accounts.is_empty() {
        return Ok(());
    }
    let customers = tx.customers_of_accounts(accounts).await?;
    let plan_ids: BTreeSet<&str> = customers
        .iter()
        .filter(|c| c.low_balance_threshold.is_none())
        .map(|c| c.plan_id.as_str())
        .collect();
    let mut plan_thresholds: HashMap<(Mode, String), Money> = HashMap::new();
    if !plan_ids.is_empty() {
        for (plan, version) in tx
            .current_plans(&plan_ids.into_iter().collect::<Vec<_>>())
            .await?
        {
            let terms: PlanTerms = serde_json::from_str(&version.terms)
                .map_err(|e| Error::internal(format!("plan terms: {e}")))?;
            plan_thresholds.insert((plan.mode, plan.id), terms.low_balance_threshold);
        }
    }
    for c in &customers {
        let threshold = match c.low_balance_threshold {
            Some(t) => t,
            None => plan_thresholds
                .get(&(c.mode, c.plan_id.clone()))
                .copied()
                .unwrap_or(Money::ZERO),
        };
        let state = state_of(c.available, threshold);
        if state == c.balance_alert {
            continue;
        }
        tx.set_balance_alert(&c.id, state).await?;
        if let Some(event) = transition(c.balance_alert, state) {
            emit(
                tx,
                now,
                c.mode,
                event,
                Some(c),
                balance_data(c, threshold),
                None,
            )
            .await?;
        }
    }
    Ok(())
}

fn balance_data(c: &CustomerRow, threshold: Money) -> serde_json::Value {
    json!({
        "customer": customer_ref(c),
        "available": c.available.to_string(),
        "held": c.held.to_string(),
        "low_balance_threshold": threshold.to_string(),
        "currency": currency::shown().code(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_crossing_is_told_once_and_rearmed_above() {
        use BalanceAlert::*;
        assert_eq!(transition(Ok, Low), Some(EventType::BalanceLow));
        assert_eq!(transition(Low, Low), None);
        assert_eq!(transition(Low, Depleted), Some(EventType::BalanceDepleted));
        assert_eq!(transition(Ok, Depleted), Some(EventType::BalanceDepleted));
        assert_eq!(transition(Depleted, Low), None);
        assert_eq!(transition(Depleted, Ok), Some(EventType::BalanceRecovered));
        assert_eq!(transition(Low, Ok), Some(EventType::BalanceRecovered));
        let t = Money::from_nanos(5_000_000_000);
        assert_eq!(state_of(Money::ZERO, t), Depleted);
        assert_eq!(state_of(Money::from_nanos(-1), t), Depleted);
        assert_eq!(state_of(Money::from_nanos(1), t), Low);
        assert_eq!(state_of(t, t), Ok);
        assert_eq!(state_of(Money::from_nanos(1), Money::ZERO), Ok);
    }
}
