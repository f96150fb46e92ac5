//! The ledger: the only code that writes postings. Every change of credit is a
//! transaction of postings that sum to zero, with a unique reference that makes it
//! exactly-once. Each operation locks the one customer account it concerns, plans its
//! postings with the pure [`Book`], writes them with the cached balances in the same
//! database transaction, and checks the sum again in the database before commit.

mod book;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use book::{Book, Lot, AVAILABLE, HELD};

use super::clock::{Clock, Timestamp};
use super::error::{Error, Result};
use super::ids;
use super::money::Money;
use super::store::{
    AccountRow, HoldRow, Inserted, LedgerTable, NewTransaction, PostingRow, Store, TransactionRow,
    Tx,
};

/// Test and live mode are separate worlds with separate operator accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Test,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "test" => Some(Mode::Test),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}

/// The operator's accounts: the other side of every customer posting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// Money received through Stripe (an asset: goes negative as customers pay).
    StripeClearing,
    /// Credits consumed by usage.
    Revenue,
    /// Credits given away (promotions, included credits).
    Promotions,
    /// Credits that expired unspent.
    Breakage,
    /// Manual corrections by an admin.
    Corrections,
    /// Credits taken back by a lost dispute.
    Disputes,
}

impl Operator {
    pub fn account_id(self, mode: Mode) -> String {
        let name = match self {
            Operator::StripeClearing => "stripe_clearing",
            Operator::Revenue => "revenue",
            Operator::Promotions => "promotions",
            Operator::Breakage => "breakage",
            Operator::Corrections => "corrections",
            Operator::Disputes => "disputes",
        };
        format!("op_{}_{name}", mode.as_str())
    }
}

/// The kind of a grant, which decides its defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantKind {
    Purchased,
    Promotional,
    Included,
    Adjustment,
}

impl GrantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Purchased => "purchased",
            GrantKind::Promotional => "promotional",
            GrantKind::Included => "included",
            GrantKind::Adjustment => "adjustment",
        }
    }
}

/// Transaction kinds, as the API reports them.
pub mod kind {
    pub const TOPUP: &str = "topup";
    pub const USAGE: &str = "usage";
    pub const GRANT: &str = "grant";
    pub const REFUND: &str = "refund";
    pub const DISPUTE: &str = "dispute";
    pub const EXPIRY: &str = "expiry";
    pub const ADJUSTMENT: &str = "adjustment";
    pub const HOLD: &str = "hold";
    pub const RELEASE: &str = "release";
}

/// Who did it and why: required on corrections, recorded on every transaction that has one.
#[derive(Clone, Debug, Default)]
pub struct Attribution {
    pub actor: Option<String>,
    pub reason: Option<String>,
}

/// Money coming into a customer's balance as a new grant.
#[derive(Clone, Debug)]
pub struct Credit {
    pub account_id: String,
    pub amount: Money,
    pub grant_kind: GrantKind,
    pub expires_at: Option<Timestamp>,
    pub source: Operator,
    pub kind: &'static str,
    pub reference: String,
    pub attribution: Attribution,
}

/// Money leaving a customer's balance after the fact; may push it negative.
#[derive(Clone, Debug)]
pub struct Debit {
    pub account_id: String,
    pub amount: Money,
    pub counter: Operator,
    pub kind: &'static str,
    pub reference: String,
    pub attribution: Attribution,
}

/// A transaction as written, or as found when its reference was already used with the
/// same content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posted {
    pub transaction: TransactionRow,
    pub replayed: bool,
}

/// What a capture did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    pub hold: HoldRow,
    /// The transaction that charged the usage (none for a late capture of zero).
    pub transaction_id: Option<String>,
    /// The hold had expired: it was returned in full and the usage was charged from
    /// available instead, into debt if need be, because usage that happened is charged.
    pub late: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entitlement {
    Ok,
    InsufficientCredits,
    Suspended,
}

/// The ledger over a store and a clock. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    store: Store,
    clock: Arc<dyn Clock>,
}

fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn mode_of(account: &AccountRow) -> Result<Mode> {
    Mode::parse(&account.mode).ok_or_else(|| Error::internal("account with an unknown mode"))
}

fn customer_delta(postings: &[PostingRow], account_id: &str, bucket: &str) -> i64 {
    postings
        .iter()
        .filter(|p| p.account_id == account_id && p.bucket == bucket)
        .map(|p| p.amount.nanos())
        .sum()
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

    /// Opens a customer credit account.
    pub async fn open_account(&self, mode: Mode, name: &str) -> Result<AccountRow> {
        let mut tx = self.store.begin().await?;
        let id = self.open_account_in(&mut tx, mode, name).await?;
        tx.commit().await?;
        self.store.account(&id).await
    }

    /// Opens a customer credit account inside the caller's transaction; returns its id.
    pub async fn open_account_in(&self, tx: &mut Tx, mode: Mode, name: &str) -> Result<String> {
        let id = ids::new_id("acct");
        tx.insert_account(&id, mode.as_str(), name, self.now())
            .await?;
        Ok(id)
    }

    pub async fn account(&self, id: &str) -> Result<AccountRow> {
        self.store.account(id).await
    }

    /// Loads an account's lots under its lock and expires what is due, each expiry its
    /// own transaction, so every operation sees only live credit.
    async fn open_book(&self, tx: &mut Tx, account_id: &str) -> Result<(AccountRow, Book)> {
        let account = tx.lock_account(account_id).await?;
        if account.kind != "customer" {
            return Err(Error::invalid("account", "not a customer account"));
        }
        let now = self.now();
        let lots = tx
            .live_grants(account_id)
            .await?
            .iter()
            .map(Lot::from_grant)
            .collect();
        let mut book = Book::new(account_id, account.available, lots, now);
        let breakage = Operator::Breakage.account_id(mode_of(&account)?);
        for (grant_id, _) in book.due_expiries() {
            let amount = book.expire(&grant_id, &breakage)?;
            let reference = format!("expiry:{grant_id}");
            let fp = fingerprint(&["expiry", &grant_id]);
            self.write(
                tx,
                &mut book,
                TxnHeader {
                    reference: &reference,
                    fingerprint: &fp,
                    kind: kind::EXPIRY,
                    account_id,
                    amount: Money::from_nanos(-amount),
                    attribution: &Attribution::default(),
                },
                None,
            )
            .await?;
        }
        Ok((account, book))
    }

    /// Writes the book's planned postings as one transaction (with a new grant row first,
    /// when the transaction creates one). A taken reference returns the existing
    /// transaction (same content) or a conflict (different content), and writes nothing.
    async fn write(
        &self,
        tx: &mut Tx,
        book: &mut Book,
        header: TxnHeader<'_>,
        grant: Option<NewGrant<'_>>,
    ) -> Result<Posted> {
        let postings = book.take_postings()?;
        let id = ids::new_id("txn");
        let created_at = self.now();
        let inserted = tx
            .insert_transaction(&NewTransaction {
                id: &id,
                reference: header.reference,
                fingerprint: header.fingerprint,
                kind: header.kind,
                account_id: header.account_id,
                amount: header.amount,
                actor: header.attribution.actor.as_deref(),
                reason: header.attribution.reason.as_deref(),
                created_at,
            })
            .await?;
        if let Inserted::Existing(existing) = inserted {
            if existing.fingerprint == header.fingerprint {
                return Ok(Posted {
                    transaction: existing,
                    replayed: true,
                });
            }
            return Err(Error::conflict(
                "reference_reused",
                format!(
                    "reference {} was already used for a different transaction",
                    header.reference
                ),
            ));
        }
        if let Some(g) = grant {
            tx.insert_grant(
                g.id,
                header.account_id,
                g.kind.as_str(),
                g.amount,
                g.expires_at,
                g.created_at,
                &id,
            )
            .await?;
        }
        for p in &postings {
            tx.insert_posting(&id, p).await?;
            if let Some(grant) = &p.grant_id {
                let (a, h) = match p.bucket.as_str() {
                    AVAILABLE => (p.amount.nanos(), 0),
                    _ => (0, p.amount.nanos()),
                };
                tx.add_to_grant(grant, a, h).await?;
            }
        }
        let available = customer_delta(&postings, header.account_id, AVAILABLE);
        let held = customer_delta(&postings, header.account_id, HELD);
        if available != 0 || held != 0 {
            tx.add_to_account(header.account_id, available, held)
                .await?;
        }
        let sum = tx.posted_sum(&id).await?;
        if sum != 0 {
            return Err(Error::internal(format!(
                "transaction {id} sums to {sum} in the database"
            )));
        }
        // What was just inserted; no need to read it back.
        let transaction = TransactionRow {
            id,
            reference: header.reference.to_string(),
            fingerprint: header.fingerprint.to_string(),
            kind: header.kind.to_string(),
            account_id: header.account_id.to_string(),
            amount: header.amount,
            actor: header.attribution.actor.clone(),
            reason: header.attribution.reason.clone(),
            created_at,
        };
        Ok(Posted {
            transaction,
            replayed: false,
        })
    }

    /// Adds credit as a new grant (a top-up, a promotion, included credits, a positive
    /// correction).
    pub async fn credit(&self, c: &Credit) -> Result<Posted> {
        let mut tx = self.store.begin().await?;
        let posted = self.credit_in(&mut tx, c).await?;
        if posted.replayed {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(posted)
    }

    /// [`Ledger::credit`] inside the caller's transaction.
    pub async fn credit_in(&self, tx: &mut Tx, c: &Credit) -> Result<Posted> {
        if !c.amount.is_positive() {
            return Err(Error::invalid("amount", "amount must be positive"));
        }
        if c.expires_at.is_some_and(|t| t <= self.now()) {
            return Err(Error::invalid(
                "expires_at",
                "expires_at must be in the future",
            ));
        }
        let fp = fingerprint(&[
            "credit",
            &c.account_id,
            &c.amount.to_string(),
            c.grant_kind.as_str(),
            &c.expires_at
                .map(|t| t.micros().to_string())
                .unwrap_or_default(),
            c.kind,
        ]);
        let (account, mut book) = self.open_book(tx, &c.account_id).await?;
        let source = c.source.account_id(mode_of(&account)?);
        let grant_id = ids::new_id("grt");
        let now = self.now();
        book.credit(
            Lot {
                grant_id: grant_id.clone(),
                expires_at: c.expires_at,
                created_at: now,
                available: 0,
                held: 0,
            },
            c.amount.nanos(),
            &source,
        );
        self.write(
            tx,
            &mut book,
            TxnHeader {
                reference: &c.reference,
                fingerprint: &fp,
                kind: c.kind,
                account_id: &c.account_id,
                amount: c.amount,
                attribution: &c.attribution,
            },
            Some(NewGrant {
                id: &grant_id,
                kind: c.grant_kind,
                amount: c.amount,
                expires_at: c.expires_at,
                created_at: now,
            }),
        )
        .await
    }

    /// Takes money out after the fact (usage that happened, a refund, a lost dispute, a
    /// negative correction). Never refused for lack of funds: the balance may go negative.
    pub async fn debit(&self, d: &Debit) -> Result<Posted> {
        if !d.amount.is_positive() {
            return Err(Error::invalid("amount", "amount must be positive"));
        }
        let mut tx = self.store.begin().await?;
        let posted = self.debit_in(&mut tx, d).await?;
        tx.commit().await?;
        Ok(posted)
    }

    /// [`Ledger::debit`] inside a caller's transaction, for callers that write their own
    /// rows (a usage event) atomically with the postings.
    pub async fn debit_in(&self, tx: &mut Tx, d: &Debit) -> Result<Posted> {
        let fp = fingerprint(&["debit", &d.account_id, &d.amount.to_string(), d.kind]);
        let (account, mut book) = self.open_book(tx, &d.account_id).await?;
        let counter = d.counter.account_id(mode_of(&account)?);
        book.spend(d.amount.nanos(), &counter);
        let amount = d.amount.checked_neg()?;
        self.write(
            tx,
            &mut book,
            TxnHeader {
                reference: &d.reference,
                fingerprint: &fp,
                kind: d.kind,
                account_id: &d.account_id,
                amount,
                attribution: &d.attribution,
            },
            None,
        )
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
        let mut tx = self.store.begin().await?;
        let hold = self
            .hold_in(&mut tx, hold_id, account_id, amount, expires_at)
            .await?;
        tx.commit().await?;
        Ok(hold)
    }

    /// [`Ledger::hold`] inside the caller's transaction.
    pub async fn hold_in(
        &self,
        tx: &mut Tx,
        hold_id: &str,
        account_id: &str,
        amount: Money,
        expires_at: Timestamp,
    ) -> Result<HoldRow> {
        if !amount.is_positive() {
            return Err(Error::invalid("amount", "amount must be positive"));
        }
        let (account, mut book) = self.open_book(tx, account_id).await?;
        if account.status == "suspended" {
            return Err(Error::Suspended);
        }
        book.hold(amount.nanos())?;
        let reference = format!("hold:{hold_id}");
        let fp = fingerprint(&["hold", hold_id, account_id, &amount.to_string()]);
        let posted = self
            .write(
                tx,
                &mut book,
                TxnHeader {
                    reference: &reference,
                    fingerprint: &fp,
                    kind: kind::HOLD,
                    account_id,
                    amount: amount.checked_neg()?,
                    attribution: &Attribution::default(),
                },
                None,
            )
            .await?;
        if posted.replayed {
            return Err(Error::conflict("hold_exists", "this hold already exists"));
        }
        let hold = HoldRow {
            id: hold_id.to_string(),
            account_id: account_id.to_string(),
            amount,
            status: "pending".into(),
            expires_at,
            created_at: self.now(),
            hold_transaction_id: posted.transaction.id.clone(),
            settle_transaction_id: None,
            captured_amount: None,
        };
        tx.insert_hold(&hold).await?;
        Ok(hold)
    }

    /// The (grant, amount) parts a hold moved into `held`.
    async fn hold_parts(tx: &mut Tx, hold: &HoldRow) -> Result<Vec<(String, i64)>> {
        let postings = tx.postings_of(&hold.hold_transaction_id).await?;
        postings
            .into_iter()
            .filter(|p| p.bucket == HELD)
            .map(|p| {
                let grant = p
                    .grant_id
                    .ok_or_else(|| Error::internal("held posting without a grant"))?;
                Ok((grant, p.amount.nanos()))
            })
            .collect()
    }

    /// Charges `actual` for a hold: from the held parts while the hold is pending (the rest
    /// returns to available, anything beyond it is charged too), or, once it has expired,
    /// from available like usage after the fact, into debt if need be (see [`Captured`]).
    /// Capturing a captured hold returns it unchanged; a released one is a conflict.
    pub async fn capture(&self, hold_id: &str, actual: Money) -> Result<Captured> {
        let mut tx = self.store.begin().await?;
        let captured = self.capture_in(&mut tx, hold_id, actual).await?;
        tx.commit().await?;
        Ok(captured)
    }

    pub async fn capture_in(&self, tx: &mut Tx, hold_id: &str, actual: Money) -> Result<Captured> {
        if actual.is_negative() {
            return Err(Error::invalid("amount", "amount must not be negative"));
        }
        let account_id = self.store.hold(hold_id).await?.account_id;
        let (account, mut book) = self.open_book(tx, &account_id).await?;
        let hold = tx.hold(hold_id).await?;
        let late = match hold.status.as_str() {
            // Past its deadline a hold is expired, whether or not the sweep got to it: it
            // is released first, then the usage is charged like usage after the fact.
            "pending" if hold.expires_at <= self.now() => {
                self.settle_unused_in(tx, &account_id, hold_id, "expired")
                    .await?;
                true
            }
            "pending" => false,
            // Captured late once already: the same result again, never a second charge.
            "expired" if hold.captured_amount.is_some() => {
                let transaction_id = tx
                    .transaction_by_reference(&format!("capture:{hold_id}"))
                    .await?
                    .map(|t| t.id);
                return Ok(Captured {
                    hold,
                    transaction_id,
                    late: true,
                });
            }
            "expired" => true,
            "captured" => {
                return Ok(Captured {
                    transaction_id: hold.settle_transaction_id.clone(),
                    hold,
                    late: false,
                })
            }
            _ => {
                return Err(Error::conflict(
                    "authorization_not_pending",
                    format!("the authorization is {}", hold.status),
                ))
            }
        };
        if late {
            // The call ran and the provider was paid: the usage is charged all the same.
            let transaction_id = if actual.is_positive() {
                let posted = self
                    .debit_in(
                        tx,
                        &Debit {
                            account_id: account_id.clone(),
                            amount: actual,
                            counter: Operator::Revenue,
                            kind: kind::USAGE,
                            reference: format!("capture:{hold_id}"),
                            attribution: Attribution::default(),
                        },
                    )
                    .await?;
                Some(posted.transaction.id)
            } else {
                None
            };
            if !tx.mark_late_capture(hold_id, actual).await? {
                return Err(Error::internal("hold changed under its account lock"));
            }
            return Ok(Captured {
                hold: tx.hold(hold_id).await?,
                transaction_id,
                late: true,
            });
        }
        let mode = mode_of(&account)?;
        let parts = Self::hold_parts(tx, &hold).await?;
        book.capture(
            &parts,
            actual.nanos(),
            &Operator::Revenue.account_id(mode),
            &Operator::Breakage.account_id(mode),
        )?;
        let reference = format!("capture:{hold_id}");
        let fp = fingerprint(&["capture", hold_id, &actual.to_string()]);
        let posted = self
            .write(
                tx,
                &mut book,
                TxnHeader {
                    reference: &reference,
                    fingerprint: &fp,
                    kind: kind::USAGE,
                    account_id: &account_id,
                    amount: actual.checked_neg()?,
                    attribution: &Attribution::default(),
                },
                None,
            )
            .await?;
        if !tx
            .settle_hold(hold_id, "captured", &posted.transaction.id, Some(actual))
            .await?
        {
            return Err(Error::internal("hold changed under its account lock"));
        }
        Ok(Captured {
            hold: tx.hold(hold_id).await?,
            transaction_id: Some(posted.transaction.id),
            late: false,
        })
    }

    /// Returns a pending hold in full. Releasing a released or expired hold returns it
    /// unchanged; releasing a captured one is a conflict.
    pub async fn release(&self, hold_id: &str) -> Result<HoldRow> {
        self.settle_unused(hold_id, "released").await
    }

    async fn settle_unused(&self, hold_id: &str, status: &str) -> Result<HoldRow> {
        let account_id = self.store.hold(hold_id).await?.account_id;
        let mut tx = self.store.begin().await?;
        let hold = self
            .settle_unused_in(&mut tx, &account_id, hold_id, status)
            .await?;
        tx.commit().await?;
        Ok(hold)
    }

    /// Returns a pending hold's parts to available (`released` or `expired`), under the
    /// account's lock in the caller's transaction.
    async fn settle_unused_in(
        &self,
        tx: &mut Tx,
        account_id: &str,
        hold_id: &str,
        status: &str,
    ) -> Result<HoldRow> {
        let (account, mut book) = self.open_book(tx, account_id).await?;
        let hold = tx.hold(hold_id).await?;
        match hold.status.as_str() {
            "pending" => {}
            "released" | "expired" => return Ok(hold),
            _ => {
                return Err(Error::conflict(
                    "authorization_not_pending",
                    format!("the authorization is {}", hold.status),
                ))
            }
        }
        let parts = Self::hold_parts(tx, &hold).await?;
        book.release(&parts, &Operator::Breakage.account_id(mode_of(&account)?))?;
        let reference = format!("release:{hold_id}");
        let fp = fingerprint(&["release", hold_id]);
        let posted = self
            .write(
                tx,
                &mut book,
                TxnHeader {
                    reference: &reference,
                    fingerprint: &fp,
                    kind: kind::RELEASE,
                    account_id,
                    amount: hold.amount,
                    attribution: &Attribution::default(),
                },
                None,
            )
            .await?;
        if !tx
            .settle_hold(hold_id, status, &posted.transaction.id, None)
            .await?
        {
            return Err(Error::internal("hold changed under its account lock"));
        }
        tx.hold(hold_id).await
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
                let hold = self.settle_unused(&id, "expired").await?;
                if hold.status == "expired" {
                    done += 1;
                }
            }
            if batch < 500 {
                return Ok(done);
            }
        }
    }

    /// Expires the unspent remainder of every grant past its expiry; returns how many
    /// accounts were touched.
    pub async fn expire_grants(&self) -> Result<usize> {
        let accounts = self
            .store
            .accounts_with_expired_grants(self.now(), 10_000)
            .await?;
        for id in &accounts {
            let mut tx = self.store.begin().await?;
            self.open_book(&mut tx, id).await?;
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
                kind: kind::ADJUSTMENT,
                reference: reference.to_string(),
                attribution,
            })
            .await
        } else if amount.is_negative() {
            self.debit(&Debit {
                account_id: account_id.to_string(),
                amount: amount.checked_neg()?,
                counter: Operator::Corrections,
                kind: kind::ADJUSTMENT,
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
        if [kind::HOLD, kind::RELEASE].contains(&original.kind.as_str())
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
        Ok(if account.status == "suspended" {
            Entitlement::Suspended
        } else if account.available.is_positive() {
            Entitlement::Ok
        } else {
            Entitlement::InsufficientCredits
        })
    }

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

/// Debits of many customer accounts planned in memory and written with a handful of
/// set-based statements: the group commit's usage path. Same postings, same references and
/// fingerprints as [`Ledger::debit_in`]; the difference is only how many statements it takes.
///
/// Opened by [`Ledger::open_books_in`] under the accounts' locks; [`DebitBatch::write`]
/// writes everything planned and checks in the database that every transaction sums to zero.
pub struct DebitBatch {
    now: Timestamp,
    /// Account id → (the account as it will be after the planned debits, its book).
    books: HashMap<String, (AccountRow, Book)>,
    transactions: Vec<TransactionRow>,
    postings: Vec<(String, PostingRow)>,
    account_deltas: BTreeMap<String, (i64, i64)>,
    grant_deltas: BTreeMap<String, (i64, i64)>,
}

impl Ledger {
    /// Locks customer accounts and loads their live grants for a [`DebitBatch`]. Accounts
    /// that are not customer accounts, or have a grant due to expire, are left out
    /// ([`DebitBatch::account`] is `None`): their operations take the one-at-a-time path,
    /// which writes the expiry first.
    pub async fn open_books_in(&self, tx: &mut Tx, account_ids: &[&str]) -> Result<DebitBatch> {
        let now = self.now();
        let accounts = tx.lock_accounts(account_ids).await?;
        let ids: Vec<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        let mut lots: HashMap<String, Vec<Lot>> = HashMap::new();
        for (account, grant) in tx.live_grants_of(&ids).await? {
            lots.entry(account)
                .or_default()
                .push(Lot::from_grant(&grant));
        }
        let mut books = HashMap::new();
        for account in accounts {
            if account.kind != "customer" {
                continue;
            }
            let book = Book::new(
                &account.id,
                account.available,
                lots.remove(&account.id).unwrap_or_default(),
                now,
            );
            if !book.due_expiries().is_empty() {
                continue;
            }
            books.insert(account.id.clone(), (account, book));
        }
        Ok(DebitBatch {
            now,
            books,
            transactions: Vec::new(),
            postings: Vec::new(),
            account_deltas: BTreeMap::new(),
            grant_deltas: BTreeMap::new(),
        })
    }
}

impl DebitBatch {
    /// The account as it stands after the debits planned so far; `None` when it is not in
    /// this batch.
    pub fn account(&self, id: &str) -> Option<&AccountRow> {
        self.books.get(id).map(|(a, _)| a)
    }

    /// Plans a debit like [`Ledger::debit_in`] and returns its transaction as it will be
    /// written. The reference must be new: a taken one fails [`DebitBatch::write`].
    pub fn debit(&mut self, d: &Debit) -> Result<TransactionRow> {
        if !d.amount.is_positive() {
            return Err(Error::invalid("amount", "amount must be positive"));
        }
        let (account, book) = self
            .books
            .get_mut(&d.account_id)
            .ok_or_else(|| Error::internal("debit of an account outside the batch"))?;
        let counter = d.counter.account_id(mode_of(account)?);
        book.spend(d.amount.nanos(), &counter);
        let postings = book.take_postings()?;
        let transaction = TransactionRow {
            id: ids::new_id("txn"),
            reference: d.reference.clone(),
            fingerprint: fingerprint(&["debit", &d.account_id, &d.amount.to_string(), d.kind]),
            kind: d.kind.to_string(),
            account_id: d.account_id.clone(),
            amount: d.amount.checked_neg()?,
            actor: d.attribution.actor.clone(),
            reason: d.attribution.reason.clone(),
            created_at: self.now,
        };
        let available = customer_delta(&postings, &d.account_id, AVAILABLE);
        let held = customer_delta(&postings, &d.account_id, HELD);
        account.available = Money::from_nanos(account.available.nanos() + available);
        account.held = Money::from_nanos(account.held.nanos() + held);
        if available != 0 || held != 0 {
            let e = self.account_deltas.entry(d.account_id.clone()).or_default();
            e.0 += available;
            e.1 += held;
        }
        for p in postings {
            if let Some(grant) = &p.grant_id {
                let e = self.grant_deltas.entry(grant.clone()).or_default();
                match p.bucket.as_str() {
                    AVAILABLE => e.0 += p.amount.nanos(),
                    _ => e.1 += p.amount.nanos(),
                }
            }
            self.postings.push((transaction.id.clone(), p));
        }
        self.transactions.push(transaction.clone());
        Ok(transaction)
    }

    /// Writes every planned transaction, posting and cached balance, then asks the
    /// database whether each transaction sums to zero.
    pub async fn write(self, tx: &mut Tx) -> Result<()> {
        if self.transactions.is_empty() {
            return Ok(());
        }
        tx.insert_transactions(&self.transactions).await?;
        tx.insert_postings(&self.postings).await?;
        let flat = |m: BTreeMap<String, (i64, i64)>| -> Vec<(String, i64, i64)> {
            m.into_iter()
                .filter(|(_, (a, h))| *a != 0 || *h != 0)
                .map(|(id, (a, h))| (id, a, h))
                .collect()
        };
        tx.add_to_grants(&flat(self.grant_deltas)).await?;
        tx.add_to_accounts(&flat(self.account_deltas)).await?;
        let ids: Vec<&str> = self.transactions.iter().map(|t| t.id.as_str()).collect();
        let bad = tx.unbalanced_among(&ids).await?;
        if !bad.is_empty() {
            return Err(Error::internal(format!(
                "transactions that do not sum to zero in the database: {}",
                bad.join(", ")
            )));
        }
        Ok(())
    }
}

struct TxnHeader<'a> {
    reference: &'a str,
    fingerprint: &'a str,
    kind: &'static str,
    account_id: &'a str,
    amount: Money,
    attribution: &'a Attribution,
}

struct NewGrant<'a> {
    id: &'a str,
    kind: GrantKind,
    amount: Money,
    expires_at: Option<Timestamp>,
    created_at: Timestamp,
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
