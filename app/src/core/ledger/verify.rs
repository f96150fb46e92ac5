//! `tally verify`: every ledger invariant, checked on the live database by the store's
//! queries, and a report a person can read.

use std::fmt::Write as _;

use super::super::error::Result;
use super::super::store::LedgerTable;
use super::Ledger;

impl Ledger {
    /// Checks every ledger invariant on the live database.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let s = &self.store;
        Ok(VerifyReport {
            transactions: s.count(LedgerTable::Transactions).await?,
            postings: s.count(LedgerTable::Postings).await?,
            accounts: s.count(LedgerTable::Accounts).await?,
            grants: s.count(LedgerTable::Grants).await?,
            holds: s.count(LedgerTable::Holds).await?,
            unbalanced: s.unbalanced_transactions().await?,
            drifted_accounts: s.drifted_accounts().await?,
            drifted_grants: s.drifted_grants().await?,
            inconsistent_holds: s.inconsistent_holds().await?,
            duplicate_references: s.duplicate_references().await?,
            mischarged_events: s.mischarged_events().await?,
            drifted_period_counters: s.drifted_period_counters().await?,
        })
    }
}

/// What `tally verify` found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    pub transactions: i64,
    pub postings: i64,
    pub accounts: i64,
    pub grants: i64,
    pub holds: i64,
    pub unbalanced: Vec<(String, i64)>,
    pub drifted_accounts: Vec<String>,
    pub drifted_grants: Vec<String>,
    pub inconsistent_holds: Vec<String>,
    pub duplicate_references: Vec<String>,
    pub mischarged_events: Vec<String>,
    pub drifted_period_counters: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.unbalanced.is_empty()
            && self.drifted_accounts.is_empty()
            && self.drifted_grants.is_empty()
            && self.inconsistent_holds.is_empty()
            && self.duplicate_references.is_empty()
            && self.mischarged_events.is_empty()
            && self.drifted_period_counters.is_empty()
    }

    /// A human-readable account of each check and its outcome.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "checked {} transactions, {} postings, {} accounts, {} grants, {} holds",
            self.transactions, self.postings, self.accounts, self.grants, self.holds
        );
        let line = |out: &mut String, name: &str, bad: &[String]| {
            if bad.is_empty() {
                let _ = writeln!(out, "ok    {name}");
            } else {
                let shown: Vec<&str> = bad.iter().take(10).map(String::as_str).collect();
                let _ = writeln!(out, "FAIL  {name}: {} ({})", bad.len(), shown.join(", "));
            }
        };
        let unbalanced: Vec<String> = self
            .unbalanced
            .iter()
            .map(|(id, sum)| format!("{id} sums to {sum}"))
            .collect();
        line(
            &mut out,
            "every transaction's postings sum to zero",
            &unbalanced,
        );
        line(
            &mut out,
            "every cached account balance equals the sum of its postings",
            &self.drifted_accounts,
        );
        line(
            &mut out,
            "every grant's remainder equals the sum of its postings",
            &self.drifted_grants,
        );
        line(
            &mut out,
            "every hold is in exactly one state and held balances match pending holds",
            &self.inconsistent_holds,
        );
        line(
            &mut out,
            "no reference is used twice",
            &self.duplicate_references,
        );
        line(
            &mut out,
            "every usage event's cost is its transaction's amount, and each refund its own",
            &self.mischarged_events,
        );
        line(
            &mut out,
            "every period counter equals the sum of its events",
            &self.drifted_period_counters,
        );
        let _ = writeln!(
            out,
            "{}",
            if self.is_clean() {
                "ledger is clean"
            } else {
                "LEDGER HAS ERRORS"
            }
        );
        out
    }
}
