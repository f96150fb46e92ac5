//! The journal: the one write path for money.
//!
//! A journal is opened inside a database transaction over the customer accounts it will
//! touch. Opening locks them in id order (so two journals never wait on each other in a
//! cycle), loads their live grants into one [`Book`] per account, reads the references its
//! caller may replay and the holds it will settle, and plans the expiry of every grant past
//! its end, so each operation after it sees only live credit. Operations (credit, debit,
//! hold, capture, release) are then planned in memory, in the order they are made, each
//! one a transaction whose postings sum to zero. [`Journal::write`] writes them all with
//! one statement per table and asks the database, once, whether every transaction sums to
//! zero; an error there fails the caller's transaction.
//!
//! One operation is a journal of one ([`super::Ledger`]'s methods); the group commit
//! plans a whole batch in one journal; its fallback after a failure is journals of one.
//! Planning never writes, so an operation refused while planning (insufficient credits,
//! a conflict) leaves the journal as it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sha2::{Digest, Sha256};

use super::book::{Book, Lot};
use super::types::{Captured, Credit, Debit, Operator, Posted};
use crate::core::clock::Timestamp;
use crate::core::error::{Error, Result};
use crate::core::ids;
use crate::core::money::Money;
use crate::core::store::{AccountRow, GrantRow, HoldRow, NewGrant, TransactionRow, Tx};
use crate::core::vocab::{AccountKind, AccountStatus, Bucket, HoldStatus, Kind, Posting};

/// What makes a transaction's content: the same reference with another fingerprint is a
/// conflict, with the same one a replay.
fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A hold the journal may settle: its row as planned so far, the state it was read in (the
/// write is guarded on it), and the (grant, amount) parts it moved into `held`.
struct LoadedHold {
    row: HoldRow,
    read_as: Option<HoldStatus>,
    parts: Vec<(String, i64)>,
    changed: bool,
}

/// The header of a transaction about to be planned.
struct Header<'a> {
    account_id: &'a str,
    reference: String,
    fingerprint: String,
    kind: Kind,
    amount: Money,
    actor: Option<String>,
    reason: Option<String>,
}

/// Operations on locked customer accounts, planned in memory and written together.
pub struct Journal {
    now: Timestamp,
    /// Account id → the account as it will be after what is planned, and its book.
    books: BTreeMap<String, (AccountRow, Book)>,
    /// Transactions by reference: those read at opening and those planned since.
    references: HashMap<String, TransactionRow>,
    holds: HashMap<String, LoadedHold>,
    transactions: Vec<TransactionRow>,
    grants: Vec<NewGrant>,
    postings: Vec<(String, Posting)>,
    account_deltas: BTreeMap<String, (i64, i64)>,
    grant_deltas: BTreeMap<String, (i64, i64)>,
    new_holds: Vec<String>,
}

impl Journal {
    /// Locks the customer accounts in id order, loads their books, reads which of
    /// `references` are taken, and plans the expiries that are due. A caller that may
    /// replay an operation passes its reference here; one that is not read and turns out
    /// to be taken fails [`Journal::write`] instead of posting twice.
    pub async fn open(
        tx: &mut Tx,
        now: Timestamp,
        accounts: &[&str],
        references: &[&str],
    ) -> Result<Journal> {
        let ids: Vec<&str> = accounts
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let rows = tx.lock_accounts(&ids).await?;
        if rows.len() != ids.len() {
            return Err(Error::NotFound("account"));
        }
        let mut lots: HashMap<String, Vec<Lot>> = HashMap::new();
        for (account, grant) in tx.live_grants_of(&ids).await? {
            lots.entry(account).or_default().push(lot_of(&grant));
        }
        let mut journal = Journal {
            now,
            books: BTreeMap::new(),
            references: HashMap::new(),
            holds: HashMap::new(),
            transactions: Vec::new(),
            grants: Vec::new(),
            postings: Vec::new(),
            account_deltas: BTreeMap::new(),
            grant_deltas: BTreeMap::new(),
            new_holds: Vec::new(),
        };
        for account in rows {
            if account.kind != AccountKind::Customer {
                return Err(Error::invalid("account", "not a customer account"));
            }
            let book = Book::new(
                &account.id,
                account.available,
                lots.remove(&account.id).unwrap_or_default(),
                now,
            );
            journal.books.insert(account.id.clone(), (account, book));
        }
        journal.read_references(tx, references).await?;
        journal.expire_due()?;
        Ok(journal)
    }

    /// Reads which of `references` are already taken (see [`Journal::open`]).
    pub async fn read_references(&mut self, tx: &mut Tx, references: &[&str]) -> Result<()> {
        let unknown: Vec<&str> = references
            .iter()
            .copied()
            .filter(|r| !self.references.contains_key(*r))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        for t in tx.transactions_by_references(&unknown).await? {
            self.references.insert(t.reference.clone(), t);
        }
        Ok(())
    }

    /// Reads the holds the journal will capture or release, with their parts (and the
    /// references their settlements would take). Holds of accounts outside the journal
    /// are an error: their accounts were not locked.
    pub async fn load_holds(&mut self, tx: &mut Tx, ids: &[&str]) -> Result<()> {
        let ids: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !self.holds.contains_key(*id))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let (rows, parts) = tx.holds_with_parts(&ids).await?;
        let mut parts_of: HashMap<String, Vec<(String, i64)>> = HashMap::new();
        for (transaction, grant, amount) in parts {
            parts_of
                .entry(transaction)
                .or_default()
                .push((grant, amount));
        }
        let mut references = Vec::new();
        for row in rows {
            if !self.books.contains_key(&row.account_id) {
                return Err(Error::internal("hold of an account outside the journal"));
            }
            references.push(format!("capture:{}", row.id));
            let parts = parts_of
                .remove(&row.hold_transaction_id)
                .unwrap_or_default();
            self.holds.insert(
                row.id.clone(),
                LoadedHold {
                    read_as: Some(row.status),
                    row,
                    parts,
                    changed: false,
                },
            );
        }
        let references: Vec<&str> = references.iter().map(String::as_str).collect();
        self.read_references(tx, &references).await
    }

    /// The account as it will be after what is planned so far.
    pub fn account(&self, id: &str) -> Option<&AccountRow> {
        self.books.get(id).map(|(a, _)| a)
    }

    /// A hold as it will be after what is planned so far (loaded or held here).
    pub fn hold_row(&self, id: &str) -> Option<&HoldRow> {
        self.holds.get(id).map(|h| &h.row)
    }

    /// Plans the expiry of every lot past its end that still has an unspent remainder,
    /// each its own transaction to breakage.
    fn expire_due(&mut self) -> Result<()> {
        let due: Vec<(String, String)> = self
            .books
            .iter()
            .flat_map(|(id, (_, book))| {
                book.due_expiries()
                    .into_iter()
                    .map(move |(grant, _)| (id.clone(), grant))
            })
            .collect();
        for (account_id, grant_id) in due {
            let breakage = self.operator(&account_id, Operator::Breakage)?;
            let amount = self.book(&account_id)?.expire(&grant_id, &breakage)?;
            self.post(Header {
                account_id: &account_id,
                reference: format!("expiry:{grant_id}"),
                fingerprint: fingerprint(&["expiry", &grant_id]),
                kind: Kind::Expiry,
                amount: Money::from_nanos(-amount),
                actor: None,
                reason: None,
            })?;
        }
        Ok(())
    }

    fn book(&mut self, account_id: &str) -> Result<&mut Book> {
        self.books
            .get_mut(account_id)
            .map(|(_, b)| b)
            .ok_or_else(|| Error::internal("operation on an account outside the journal"))
    }

    fn operator(&self, account_id: &str, operator: Operator) -> Result<String> {
        let (account, _) = self
            .books
            .get(account_id)
            .ok_or_else(|| Error::internal("operation on an account outside the journal"))?;
        Ok(operator.account_id(account.mode))
    }

    /// The transaction a reference already names: a replay when the content is the same, a
    /// conflict when it is not.
    fn replay(&self, reference: &str, fingerprint: &str) -> Option<Result<Posted>> {
        let existing = self.references.get(reference)?;
        Some(if existing.fingerprint == fingerprint {
            Ok(Posted {
                transaction: existing.clone(),
                replayed: true,
            })
        } else {
            Err(Error::conflict(
                "reference_reused",
                format!("reference {reference} was already used for a different transaction"),
            ))
        })
    }

    /// Turns the book's planned postings into one transaction: its header, its postings,
    /// the cached balances of the account and its grants.
    fn post(&mut self, h: Header<'_>) -> Result<TransactionRow> {
        let postings = self.book(h.account_id)?.take_postings()?;
        let transaction = TransactionRow {
            id: ids::new_id("txn"),
            reference: h.reference,
            fingerprint: h.fingerprint,
            kind: h.kind,
            account_id: h.account_id.to_string(),
            amount: h.amount,
            actor: h.actor,
            reason: h.reason,
            created_at: self.now,
        };
        let (mut available, mut held) = (0i64, 0i64);
        for p in postings {
            if p.account_id == h.account_id {
                match p.bucket {
                    Bucket::Available => available += p.amount.nanos(),
                    Bucket::Held => held += p.amount.nanos(),
                }
            }
            if let Some(grant) = &p.grant_id {
                let e = self.grant_deltas.entry(grant.clone()).or_default();
                match p.bucket {
                    Bucket::Available => e.0 += p.amount.nanos(),
                    Bucket::Held => e.1 += p.amount.nanos(),
                }
            }
            self.postings.push((transaction.id.clone(), p));
        }
        if let Some((account, _)) = self.books.get_mut(h.account_id) {
            account.available = Money::from_nanos(account.available.nanos() + available);
            account.held = Money::from_nanos(account.held.nanos() + held);
        }
        if available != 0 || held != 0 {
            let e = self
                .account_deltas
                .entry(h.account_id.to_string())
                .or_default();
            e.0 += available;
            e.1 += held;
        }
        self.references
            .insert(transaction.reference.clone(), transaction.clone());
        self.transactions.push(transaction.clone());
        Ok(transaction)
    }

    /// Adds credit as a new grant (a top-up, a promotion, included credits, a refund, a
    /// positive correction); it pays off any debt first.
    pub fn credit(&mut self, c: &Credit) -> Result<Posted> {
        if !c.amount.is_positive() {
            return Err(Error::invalid("amount", "amount must be positive"));
        }
        if c.expires_at.is_some_and(|t| t <= self.now) {
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
            c.kind.as_str(),
        ]);
        if let Some(replayed) = self.replay(&c.reference, &fp) {
            return replayed;
        }
        let source = self.operator(&c.account_id, c.source)?;
        let grant_id = ids::new_id("grt");
        let now = self.now;
        self.book(&c.account_id)?.credit(
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
        let transaction = self.post(Header {
            account_id: &c.account_id,
            reference: c.reference.clone(),
            fingerprint: fp,
            kind: c.kind,
            amount: c.amount,
            actor: c.attribution.actor.clone(),
            reason: c.attribution.reason.clone(),
        })?;
        self.grants.push(NewGrant {
            id: grant_id,
            account_id: c.account_id.clone(),
            kind: c.grant_kind,
            amount: c.amount,
            expires_at: c.expires_at,
            created_at: now,
            transaction_id: transaction.id.clone(),
        });
        Ok(Posted {
            transaction,
            replayed: false,
        })
    }

    /// Takes money out after the fact (usage that happened, a refund, a dispute, a negative
    /// correction). Never refused for lack of funds: the balance may go negative.
    pub fn debit(&mut self, d: &Debit) -> Result<Posted> {
        if !d.amount.is_positive() {
            return Err(Error::invalid("amount", "amount must be positive"));
        }
        let fp = fingerprint(&[
            "debit",
            &d.account_id,
            &d.amount.to_string(),
            d.kind.as_str(),
        ]);
        if let Some(replayed) = self.replay(&d.reference, &fp) {
            return replayed;
        }
        let counter = self.operator(&d.account_id, d.counter)?;
        self.book(&d.account_id)?.spend(d.amount.nanos(), &counter);
        let transaction = self.post(Header {
            account_id: &d.account_id,
            reference: d.reference.clone(),
            fingerprint: fp,
            kind: d.kind,
            amount: d.amount.checked_neg()?,
            actor: d.attribution.actor.clone(),
            reason: d.attribution.reason.clone(),
        })?;
        Ok(Posted {
            transaction,
            replayed: false,
        })
    }

    /// Reserves `amount` of the available balance until `expires_at`, or fails with
    /// `InsufficientCredits` (or `Suspended`) and plans nothing.
    pub fn hold(
        &mut self,
        hold_id: &str,
        account_id: &str,
        amount: Money,
        expires_at: Timestamp,
    ) -> Result<HoldRow> {
        if !amount.is_positive() {
            return Err(Error::invalid("amount", "amount must be positive"));
        }
        let status = self
            .account(account_id)
            .ok_or_else(|| Error::internal("hold on an account outside the journal"))?
            .status;
        if status == AccountStatus::Suspended {
            return Err(Error::Suspended);
        }
        let reference = format!("hold:{hold_id}");
        if self.references.contains_key(&reference) || self.holds.contains_key(hold_id) {
            return Err(Error::conflict("hold_exists", "this hold already exists"));
        }
        self.book(account_id)?.hold(amount.nanos())?;
        let transaction = self.post(Header {
            account_id,
            reference,
            fingerprint: fingerprint(&["hold", hold_id, account_id, &amount.to_string()]),
            kind: Kind::Hold,
            amount: amount.checked_neg()?,
            actor: None,
            reason: None,
        })?;
        let parts = self
            .postings
            .iter()
            .rev()
            .take_while(|(t, _)| *t == transaction.id)
            .filter(|(_, p)| p.bucket == Bucket::Held)
            .filter_map(|(_, p)| p.grant_id.clone().map(|g| (g, p.amount.nanos())))
            .collect();
        let row = HoldRow {
            id: hold_id.to_string(),
            account_id: account_id.to_string(),
            amount,
            status: HoldStatus::Pending,
            expires_at,
            created_at: self.now,
            hold_transaction_id: transaction.id,
            settle_transaction_id: None,
            captured_amount: None,
        };
        self.holds.insert(
            hold_id.to_string(),
            LoadedHold {
                row: row.clone(),
                read_as: None,
                parts,
                changed: false,
            },
        );
        self.new_holds.push(hold_id.to_string());
        Ok(row)
    }

    fn loaded(&self, hold_id: &str) -> Result<&LoadedHold> {
        self.holds
            .get(hold_id)
            .ok_or_else(|| Error::internal("settling a hold the journal did not load"))
    }

    fn set_hold(&mut self, hold_id: &str, change: impl FnOnce(&mut HoldRow)) -> Result<HoldRow> {
        let h = self
            .holds
            .get_mut(hold_id)
            .ok_or_else(|| Error::internal("settling a hold the journal did not load"))?;
        change(&mut h.row);
        h.changed = true;
        Ok(h.row.clone())
    }

    /// Charges `actual` for a hold: from the held parts while the hold is pending (the rest
    /// returns to available, anything beyond it is charged too), or, once it has expired,
    /// from available like usage after the fact, into debt if need be (see [`Captured`]).
    /// Capturing a captured hold returns it unchanged; a released one is a conflict.
    pub fn capture(&mut self, hold_id: &str, actual: Money) -> Result<Captured> {
        if actual.is_negative() {
            return Err(Error::invalid("amount", "amount must not be negative"));
        }
        let hold = self.loaded(hold_id)?.row.clone();
        let reference = format!("capture:{hold_id}");
        let late = match hold.status {
            // Past its deadline a hold is expired, whether or not the sweep got to it: it
            // is released first, then the usage is charged like usage after the fact.
            HoldStatus::Pending if hold.expires_at <= self.now => {
                self.release(hold_id, HoldStatus::Expired)?;
                true
            }
            HoldStatus::Pending => false,
            // Captured late once already: the same result again, never a second charge.
            HoldStatus::Expired if hold.captured_amount.is_some() => {
                return Ok(Captured {
                    transaction_id: self.references.get(&reference).map(|t| t.id.clone()),
                    hold,
                    late: true,
                });
            }
            HoldStatus::Expired => true,
            HoldStatus::Captured => {
                return Ok(Captured {
                    transaction_id: hold.settle_transaction_id.clone(),
                    hold,
                    late: false,
                })
            }
            HoldStatus::Released => {
                return Err(Error::conflict(
                    "authorization_not_pending",
                    format!("the authorization is {}", hold.status),
                ))
            }
        };
        if late {
            // The call ran and the provider was paid: the usage is charged all the same.
            let transaction_id = if actual.is_positive() {
                let posted = self.debit(&Debit {
                    account_id: hold.account_id.clone(),
                    amount: actual,
                    counter: Operator::Revenue,
                    kind: Kind::Usage,
                    reference,
                    attribution: Default::default(),
                })?;
                Some(posted.transaction.id)
            } else {
                None
            };
            let hold = self.set_hold(hold_id, |h| h.captured_amount = Some(actual))?;
            return Ok(Captured {
                hold,
                transaction_id,
                late: true,
            });
        }
        let parts = self.loaded(hold_id)?.parts.clone();
        let revenue = self.operator(&hold.account_id, Operator::Revenue)?;
        let breakage = self.operator(&hold.account_id, Operator::Breakage)?;
        self.book(&hold.account_id)?
            .capture(&parts, actual.nanos(), &revenue, &breakage)?;
        let transaction = self.post(Header {
            account_id: &hold.account_id,
            reference,
            fingerprint: fingerprint(&["capture", hold_id, &actual.to_string()]),
            kind: Kind::Usage,
            amount: actual.checked_neg()?,
            actor: None,
            reason: None,
        })?;
        let id = transaction.id.clone();
        let hold = self.set_hold(hold_id, |h| {
            h.status = HoldStatus::Captured;
            h.settle_transaction_id = Some(id);
            h.captured_amount = Some(actual);
        })?;
        Ok(Captured {
            hold,
            transaction_id: Some(transaction.id),
            late: false,
        })
    }

    /// Returns a pending hold's parts to available, ending it as `released` or `expired`.
    /// A hold already released or expired is returned unchanged; a captured one is a
    /// conflict.
    pub fn release(&mut self, hold_id: &str, status: HoldStatus) -> Result<HoldRow> {
        let loaded = self.loaded(hold_id)?;
        let hold = loaded.row.clone();
        match hold.status {
            HoldStatus::Pending => {}
            HoldStatus::Released | HoldStatus::Expired => return Ok(hold),
            HoldStatus::Captured => {
                return Err(Error::conflict(
                    "authorization_not_pending",
                    format!("the authorization is {}", hold.status),
                ))
            }
        }
        let parts = loaded.parts.clone();
        let breakage = self.operator(&hold.account_id, Operator::Breakage)?;
        self.book(&hold.account_id)?.release(&parts, &breakage)?;
        let transaction = self.post(Header {
            account_id: &hold.account_id,
            reference: format!("release:{hold_id}"),
            fingerprint: fingerprint(&["release", hold_id]),
            kind: Kind::Release,
            amount: hold.amount,
            actor: None,
            reason: None,
        })?;
        self.set_hold(hold_id, |h| {
            h.status = status;
            h.settle_transaction_id = Some(transaction.id);
        })
    }

    /// Writes every planned transaction, grant, posting, hold and cached balance with one
    /// statement per table, then asks the database whether each transaction sums to zero.
    pub async fn write(self, tx: &mut Tx) -> Result<()> {
        if self.transactions.is_empty() {
            return Ok(());
        }
        tx.insert_transactions(&self.transactions).await?;
        tx.insert_grants(&self.grants).await?;
        tx.insert_postings(&self.postings).await?;
        let flat = |m: BTreeMap<String, (i64, i64)>| -> Vec<(String, i64, i64)> {
            m.into_iter()
                .filter(|(_, (a, h))| *a != 0 || *h != 0)
                .map(|(id, (a, h))| (id, a, h))
                .collect()
        };
        tx.add_to_grants(&flat(self.grant_deltas)).await?;
        let moved: Vec<String> = self
            .account_deltas
            .iter()
            .filter(|(_, (available, _))| *available != 0)
            .map(|(id, _)| id.clone())
            .collect();
        tx.add_to_accounts(&flat(self.account_deltas)).await?;
        // Balance alerts move with the balances, in this transaction (the outbox).
        let moved: Vec<&str> = moved.iter().map(String::as_str).collect();
        crate::core::notify::alerts::balances_changed(tx, self.now, &moved).await?;
        let mut holds = self.holds;
        let new: Vec<HoldRow> = self
            .new_holds
            .iter()
            .filter_map(|id| holds.remove(id).map(|h| h.row))
            .collect();
        tx.insert_holds(&new).await?;
        let settled: Vec<(HoldRow, HoldStatus)> = holds
            .into_values()
            .filter(|h| h.changed)
            .filter_map(|h| h.read_as.map(|was| (h.row, was)))
            .collect();
        tx.update_holds(&settled).await?;
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

fn lot_of(g: &GrantRow) -> Lot {
    Lot {
        grant_id: g.id.clone(),
        expires_at: g.expires_at,
        created_at: g.created_at,
        available: g.available.nanos(),
        held: g.held.nanos(),
    }
}
