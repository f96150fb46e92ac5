//! The ledger: the only code that writes postings. Every change of credit is a
//! transaction of postings that sum to zero, with a unique reference that makes it
//! exactly-once, planned and written by a [`Journal`] (the one write path).
//!
//! - `types.rs`: what operations take and give (operators, credit, debit, posted, captured);
//! - `book.rs`: pure planning of postings over one customer's lots;
//! - `journal.rs`: locked accounts, planned operations, set-based writes, the sum check;
//! - `verify.rs`: `tally verify`'s checks and report;
//! - this file: [`Ledger`], each operation a journal of one in its own transaction, and
//!   the sweeps (overdue holds, expired grants).
//!
//! A caller that writes its own rows atomically with money (a usage event, a top-up, a
//! refund) opens a journal in its transaction instead ([`Ledger::journal`]).

mod book;
mod journal;
mod types;
mod verify;

use std::sync::Arc;

pub use book::{Book, Lot};
pub use journal::Journal;
pub use types::{Attribution, Captured, Credit, Debit, Entitlement, Operator, Posted};
pub use verify::VerifyReport;

pub use super::vocab::{GrantKind, Kind, Mode};

use super::clock::{Clock, Timestamp};
use super::error::{Error, Result};
use super::ids;
use super::money::Money;
use super::store::{AccountRow, HoldRow, Store, Tx};
use super::vocab::{AccountStatus, HoldStatus};

/// The ledger over a store and a clock. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl Ledger {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Ledger {
        Ledger { store, clock }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Opens a journal over `accounts` in the caller's transaction (see [`Journal::open`]).
    pub async fn journal(
        &self,
        tx: &mut Tx,
        accounts: &[&str],
        references: &[&str],
    ) -> Result<Journal> {
        Journal::open(tx, self.now(), accounts, references).await
    }

    /// Runs one operation as a journal of one in its own transaction: opens it over the
    /// account (reading the reference the operation may replay, and the hold it settles),
    /// plans, writes and commits. A replay writes nothing.
    /// A transaction the database aborts for colliding with another is run again
    /// (`error::retrying`).
    async fn one<T>(
        &self,
        account_id: &str,
        reference: Option<&str>,
        hold_id: Option<&str>,
        plan: impl Fn(&mut Journal) -> Result<T>,
    ) -> Result<T> {
        crate::core::error::retrying(|| async {
            let mut tx = self.store.begin().await?;
            let references: Vec<&str> = reference.into_iter().collect();
            let mut journal = self.journal(&mut tx, &[account_id], &references).await?;
            if let Some(id) = hold_id {
                journal.load_holds(&mut tx, &[id]).await?;
            }
            let out = plan(&mut journal)?;
            journal.write(&mut tx).await?;
            tx.commit().await?;
            Ok(out)
        })
        .await
    }

    /// Opens a customer credit account.
    pub async fn open_account(&self, mode: Mode, name: &str) -> Result<AccountRow> {
        let mut tx = self.store.begin().await?;
        let id = self.open_account_in(&mut tx, mode, name).await?;
        tx.commit().await?;
        self.store.account(&id).await
    }

    /// Opens a customer credit account inside the caller's transaction (beside the
    /// customer row that owns it); returns its id.
    pub async fn open_account_in(&self, tx: &mut Tx, mode: Mode, name: &str) -> Result<String> {
        let id = ids::new_id("acct");
        tx.insert_account(&id, mode, name, self.now()).await?;
        Ok(id)
    }

    pub async fn account(&self, id: &str) -> Result<AccountRow> {
        self.store.account(id).await
    }

    /// Adds credit as a new grant (a top-up, a promotion, included credits, a positive
    /// correction).
    pub async fn credit(&self, c: &Credit) -> Result<Posted> {
        self.one(&c.account_id, Some(&c.reference), None, |j| j.credit(c))
            .await
    }

    /// Takes money out after the fact (usage that happened, a refund, a lost dispute, a
    /// negative correction). Never refused for lack of funds: the balance may go negative.
    pub async fn debit(&self, d: &Debit) -> Result<Posted> {
        self.one(&d.account_id, Some(&d.reference), None, |j| j.debit(d))
            .await
    }

    /// Reserves `amount` of the available balance until `expires_at`, or fails with
    /// `InsufficientCredits` and changes nothing. The check and the move are one step
    /// under the account's lock.
    pub async fn hold(
        &self,
        account_id: &str,
        amount: Money,
        expires_at: Timestamp,
    ) -> Result<HoldRow> {
        self.hold_with_id(&ids::new_id("auth"), account_id, amount, expires_at)
            .await
    }

    pub async fn hold_with_id(
        &self,
        hold_id: &str,
        account_id: &str,
        amount: Money,
        expires_at: Timestamp,
    ) -> Result<HoldRow> {
        let reference = format!("hold:{hold_id}");
        self.one(account_id, Some(&reference), None, |j| {
            j.hold(hold_id, account_id, amount, expires_at)
        })
        .await
    }

    /// Charges `actual` for a hold (see [`Journal::capture`]).
    pub async fn capture(&self, hold_id: &str, actual: Money) -> Result<Captured> {
        let account_id = self.store.hold(hold_id).await?.account_id;
        self.one(&account_id, None, Some(hold_id), |j| {
            j.capture(hold_id, actual)
        })
        .await
    }

    /// Returns a pending hold in full. Releasing a released or expired hold returns it
    /// unchanged; releasing a captured one is a conflict.
    pub async fn release(&self, hold_id: &str) -> Result<HoldRow> {
        self.settle_unused(hold_id, HoldStatus::Released).await
    }

    async fn settle_unused(&self, hold_id: &str, status: HoldStatus) -> Result<HoldRow> {
        let account_id = self.store.hold(hold_id).await?.account_id;
        self.one(&account_id, None, Some(hold_id), |j| {
            j.release(hold_id, status)
        })
        .await
    }

    /// Releases every pending hold past its deadline; returns how many.
    pub async fn expire_holds(&self) -> Result<usize> {
        let mut done = 0;
        loop {
            let due = self.store.overdue_holds(self.now(), 500).await?;
            if due.is_empty() {
                return Ok(done);
            }
            let batch = due.len();
            for id in due {
                let hold = self.settle_unused(&id, HoldStatus::Expired).await?;
                if hold.status == HoldStatus::Expired {
                    done += 1;
                }
            }
            if batch < 500 {
                return Ok(done);
            }
        }
    }

    /// Expires the unspent remainder of every grant past its expiry; returns how many
    /// accounts were touched. Opening a journal plans the due expiries.
    pub async fn expire_grants(&self) -> Result<usize> {
        let accounts = self
            .store
            .accounts_with_expired_grants(self.now(), 10_000)
            .await?;
        for chunk in accounts.chunks(100) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let mut tx = self.store.begin().await?;
            self.journal(&mut tx, &ids, &[])
                .await?
                .write(&mut tx)
                .await?;
            tx.commit().await?;
        }
        Ok(accounts.len())
    }

    /// Corrects a balance by a signed amount with a required reason and actor: positive
    /// adds a non-expiring adjustment grant, negative debits (possibly into the negative).
    pub async fn correct(
        &self,
        account_id: &str,
        amount: Money,
        reference: &str,
        attribution: Attribution,
    ) -> Result<Posted> {
        let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
        if !has(&attribution.reason) {
            return Err(Error::invalid("reason", "a correction needs a reason"));
        }
        if !has(&attribution.actor) {
            return Err(Error::invalid("actor", "a correction needs an actor"));
        }
        if amount.is_positive() {
            self.credit(&Credit {
                account_id: account_id.to_string(),
                amount,
                grant_kind: GrantKind::Adjustment,
                expires_at: None,
                source: Operator::Corrections,
                kind: Kind::Adjustment,
                reference: reference.to_string(),
                attribution,
            })
            .await
        } else if amount.is_negative() {
            self.debit(&Debit {
                account_id: account_id.to_string(),
                amount: amount.checked_neg()?,
                counter: Operator::Corrections,
                kind: Kind::Adjustment,
                reference: reference.to_string(),
                attribution,
            })
            .await
        } else {
            Err(Error::invalid("amount", "a correction must not be zero"))
        }
    }

    /// Reverses a posted transaction's effect on the customer's balance with a reason and
    /// an actor, debiting or crediting the operator accounts it touched. Holds and their
    /// settlements are reversed by release, never here.
    pub async fn reverse(&self, transaction_id: &str, attribution: Attribution) -> Result<Posted> {
        let original = self.store.transaction(transaction_id).await?;
        if matches!(original.kind, Kind::Hold | Kind::Release)
            || original.reference.starts_with("capture:")
        {
            return Err(Error::invalid(
                "transaction",
                "holds are settled by capture or release, not reversed",
            ));
        }
        let postings = self.store.postings_of(transaction_id).await?;
        let net: i64 = postings
            .iter()
            .filter(|p| p.account_id == original.account_id)
            .map(|p| p.amount.nanos())
            .sum();
        let reference = format!("reversal:{transaction_id}");
        self.correct(
            &original.account_id,
            Money::from_nanos(-net),
            &reference,
            attribution,
        )
        .await
    }

    pub async fn set_suspended(&self, account_id: &str, suspended: bool) -> Result<AccountRow> {
        let mut tx = self.store.begin().await?;
        tx.lock_account(account_id).await?;
        tx.set_account_status(account_id, suspended.then_some("staff"))
            .await?;
        tx.commit().await?;
        self.store.account(account_id).await
    }

    pub async fn entitlement(&self, account_id: &str) -> Result<Entitlement> {
        let account = self.store.account(account_id).await?;
        Ok(if account.status == AccountStatus::Suspended {
            Entitlement::Suspended
        } else if account.available.is_positive() {
            Entitlement::Ok
        } else {
            Entitlement::InsufficientCredits
        })
    }
}
