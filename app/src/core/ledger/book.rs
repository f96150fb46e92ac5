//! The pure half of the ledger: given a customer account's grants ("lots") and an
//! operation, decide the postings. No I/O; the caller loads the lots under the account's
//! lock and writes what this returns.
//!
//! A customer's balance is split into lots, one per grant, plus an unassigned part that
//! is only ever negative (usage that happened with nothing left to draw from). Spending
//! draws from the lot that expires first; a new credit first pays off the unassigned debt;
//! a held amount stays on the lot it came from, so expiry only removes what is unspent and
//! unheld, and held money that comes back to an expired lot leaves as breakage.

use super::super::clock::Timestamp;
use super::super::error::{Error, Result};
use super::super::money::Money;
use super::super::vocab::{Bucket, Posting};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lot {
    pub grant_id: String,
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub available: i64,
    pub held: i64,
}

impl Lot {
    fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }
}

/// One customer account's lots and the postings planned so far.
#[derive(Clone, Debug)]
pub struct Book {
    account_id: String,
    now: Timestamp,
    lots: Vec<Lot>,
    /// Available balance not on any lot; negative when usage outran the grants.
    unassigned: i64,
    postings: Vec<Posting>,
}

impl Book {
    /// `available` is the account's cached available balance; whatever the lots do not
    /// explain is the unassigned part.
    pub fn new(account_id: &str, available: Money, mut lots: Vec<Lot>, now: Timestamp) -> Book {
        // Soonest expiry first, never-expiring last, then oldest first.
        lots.sort_by(|a, b| {
            (
                a.expires_at.is_none(),
                a.expires_at,
                a.created_at,
                &a.grant_id,
            )
                .cmp(&(
                    b.expires_at.is_none(),
                    b.expires_at,
                    b.created_at,
                    &b.grant_id,
                ))
        });
        let on_lots: i64 = lots.iter().map(|l| l.available).sum();
        Book {
            account_id: account_id.to_string(),
            now,
            lots,
            unassigned: available.nanos() - on_lots,
            postings: Vec::new(),
        }
    }

    /// What can be held or spent without going negative.
    pub fn available(&self) -> i64 {
        self.lots.iter().map(|l| l.available).sum::<i64>() + self.unassigned
    }

    pub fn lots(&self) -> &[Lot] {
        &self.lots
    }

    fn post(&mut self, account_id: &str, grant_id: Option<&str>, bucket: Bucket, amount: i64) {
        if amount != 0 {
            self.postings.push(Posting {
                account_id: account_id.to_string(),
                grant_id: grant_id.map(str::to_string),
                bucket,
                amount: Money::from_nanos(amount),
            });
        }
    }

    fn post_lot(&mut self, index: usize, bucket: Bucket, amount: i64) {
        let account = self.account_id.clone();
        let grant = self.lots[index].grant_id.clone();
        self.post(&account, Some(&grant), bucket, amount);
        let lot = &mut self.lots[index];
        match bucket {
            Bucket::Available => lot.available += amount,
            _ => lot.held += amount,
        }
    }

    fn post_unassigned(&mut self, amount: i64) {
        let account = self.account_id.clone();
        self.post(&account, None, Bucket::Available, amount);
        self.unassigned += amount;
    }

    fn lot_index(&self, grant_id: &str) -> Result<usize> {
        self.lots
            .iter()
            .position(|l| l.grant_id == grant_id)
            .ok_or_else(|| Error::internal(format!("grant {grant_id} is not live")))
    }

    /// Lots past their expiry that still have an unspent, unheld remainder.
    pub fn due_expiries(&self) -> Vec<(String, i64)> {
        self.lots
            .iter()
            .filter(|l| l.expired(self.now) && l.available > 0)
            .map(|l| (l.grant_id.clone(), l.available))
            .collect()
    }

    /// Removes a lot's unspent remainder to `breakage`.
    pub fn expire(&mut self, grant_id: &str, breakage: &str) -> Result<i64> {
        let i = self.lot_index(grant_id)?;
        let amount = self.lots[i].available;
        self.post_lot(i, Bucket::Available, -amount);
        self.post(breakage, None, Bucket::Available, amount);
        Ok(amount)
    }

    /// Adds a new lot funded by `source`, paying off any unassigned debt first.
    pub fn credit(&mut self, lot: Lot, amount: i64, source: &str) {
        self.lots.push(lot);
        let i = self.lots.len() - 1;
        let settle = amount.min((-self.unassigned).max(0));
        self.post_unassigned(settle);
        self.post_lot(i, Bucket::Available, amount - settle);
        self.post(source, None, Bucket::Available, -amount);
    }

    /// Takes `amount` from the available balance, soonest-expiring lot first, and into
    /// debt when the lots run out. `counter` receives it.
    pub fn spend(&mut self, amount: i64, counter: &str) {
        self.draw_available(amount);
        self.post(counter, None, Bucket::Available, amount);
    }

    fn draw_available(&mut self, amount: i64) {
        let mut rest = amount;
        for i in 0..self.lots.len() {
            if rest == 0 {
                break;
            }
            if self.lots[i].expired(self.now) {
                continue;
            }
            let take = self.lots[i].available.min(rest);
            if take > 0 {
                self.post_lot(i, Bucket::Available, -take);
                rest -= take;
            }
        }
        if rest > 0 {
            self.post_unassigned(-rest);
        }
    }

    /// Moves `amount` from available to held on the lots it is drawn from, or fails
    /// without changing anything.
    pub fn hold(&mut self, amount: i64) -> Result<()> {
        let fits: i64 = self
            .lots
            .iter()
            .filter(|l| !l.expired(self.now))
            .map(|l| l.available)
            .sum::<i64>()
            + self.unassigned.min(0);
        if amount > fits {
            return Err(Error::InsufficientCredits {
                available: Money::from_nanos(self.available()),
            });
        }
        let mut rest = amount;
        for i in 0..self.lots.len() {
            if rest == 0 {
                break;
            }
            if self.lots[i].expired(self.now) {
                continue;
            }
            let take = self.lots[i].available.min(rest);
            if take > 0 {
                self.post_lot(i, Bucket::Available, -take);
                self.post_lot(i, Bucket::Held, take);
                rest -= take;
            }
        }
        if rest != 0 {
            return Err(Error::internal(
                "hold did not fit the lots it was checked against",
            ));
        }
        Ok(())
    }

    /// Releases held money back to its lot: it pays off debt first, and leaves as
    /// breakage when the lot has expired in the meantime.
    fn unhold(&mut self, grant_id: &str, amount: i64, breakage: &str) -> Result<()> {
        let i = self.lot_index(grant_id)?;
        self.post_lot(i, Bucket::Held, -amount);
        if self.lots[i].expired(self.now) {
            self.post(breakage, None, Bucket::Available, amount);
            return Ok(());
        }
        let settle = amount.min((-self.unassigned).max(0));
        self.post_unassigned(settle);
        self.post_lot(i, Bucket::Available, amount - settle);
        Ok(())
    }

    /// Returns every held part of a hold. `parts` are the (grant, amount) pairs the hold
    /// moved into `held`.
    pub fn release(&mut self, parts: &[(String, i64)], breakage: &str) -> Result<()> {
        for (grant, amount) in parts {
            self.unhold(grant, *amount, breakage)?;
        }
        Ok(())
    }

    /// Charges `actual` against a hold: the held parts pay first (soonest-expiring lot
    /// first), the rest of the hold goes back, and any excess over the hold is spent from
    /// the available balance, into debt if need be.
    pub fn capture(
        &mut self,
        parts: &[(String, i64)],
        actual: i64,
        revenue: &str,
        breakage: &str,
    ) -> Result<()> {
        let mut ordered: Vec<(usize, i64)> = parts
            .iter()
            .map(|(g, a)| Ok((self.lot_index(g)?, *a)))
            .collect::<Result<_>>()?;
        ordered.sort_by_key(|(i, _)| *i);
        let held_total: i64 = ordered.iter().map(|(_, a)| a).sum();
        let mut to_pay = actual.min(held_total);
        for (i, amount) in ordered {
            let pay = amount.min(to_pay);
            to_pay -= pay;
            self.post_lot(i, Bucket::Held, -pay);
            let back = amount - pay;
            if back > 0 {
                let grant = self.lots[i].grant_id.clone();
                self.unhold(&grant, back, breakage)?;
            }
        }
        self.post(revenue, None, Bucket::Available, actual.min(held_total));
        if actual > held_total {
            self.spend(actual - held_total, revenue);
        }
        Ok(())
    }

    /// The planned postings so far, netted per (account, grant, bucket), after checking
    /// that they sum to zero. The book keeps its new state for the next transaction.
    pub fn take_postings(&mut self) -> Result<Vec<Posting>> {
        let planned = std::mem::take(&mut self.postings);
        let sum = planned
            .iter()
            .try_fold(0i64, |acc, p| acc.checked_add(p.amount.nanos()))
            .ok_or_else(|| Error::internal("posting sum overflowed"))?;
        if sum != 0 {
            return Err(Error::internal(format!(
                "planned postings sum to {sum}, not zero"
            )));
        }
        let mut netted: Vec<Posting> = Vec::new();
        for p in planned {
            match netted.iter_mut().find(|n| {
                n.account_id == p.account_id && n.grant_id == p.grant_id && n.bucket == p.bucket
            }) {
                Some(n) => {
                    n.amount = n
                        .amount
                        .checked_add(p.amount)
                        .map_err(|_| Error::internal("posting overflowed"))?;
                }
                None => netted.push(p),
            }
        }
        netted.retain(|p| p.amount.nanos() != 0);
        Ok(netted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACC: &str = "acct_1";
    const REV: &str = "op_test_revenue";
    const BRK: &str = "op_test_breakage";
    const SRC: &str = "op_test_promotions";

    fn lot(id: &str, expires: Option<i64>, available: i64) -> Lot {
        Lot {
            grant_id: id.into(),
            expires_at: expires.map(Timestamp::from_micros),
            created_at: Timestamp::from_micros(0),
            available,
            held: 0,
        }
    }

    fn sum_for(postings: &[Posting], grant: Option<&str>, bucket: Bucket) -> i64 {
        postings
            .iter()
            .filter(|p| p.account_id == ACC && p.grant_id.as_deref() == grant && p.bucket == bucket)
            .map(|p| p.amount.nanos())
            .sum()
    }

    #[test]
    fn spending_draws_from_the_soonest_expiring_lot_first() {
        let lots = vec![
            lot("never", None, 100),
            lot("soon", Some(50), 30),
            lot("later", Some(90), 40),
        ];
        let mut b = Book::new(
            ACC,
            Money::from_nanos(170),
            lots,
            Timestamp::from_micros(10),
        );
        b.spend(50, REV);
        let p = b.take_postings().unwrap();
        assert_eq!(sum_for(&p, Some("soon"), Bucket::Available), -30);
        assert_eq!(sum_for(&p, Some("later"), Bucket::Available), -20);
        assert_eq!(sum_for(&p, Some("never"), Bucket::Available), 0);
        assert_eq!(b.available(), 120);
    }

    #[test]
    fn overspending_goes_into_debt_and_a_credit_pays_it_first() {
        let mut b = Book::new(
            ACC,
            Money::from_nanos(10),
            vec![lot("g", None, 10)],
            Timestamp::from_micros(0),
        );
        b.spend(25, REV);
        b.take_postings().unwrap();
        assert_eq!(b.available(), -15);
        b.credit(lot("new", None, 0), 40, SRC);
        let p = b.take_postings().unwrap();
        assert_eq!(sum_for(&p, None, Bucket::Available), 15);
        assert_eq!(sum_for(&p, Some("new"), Bucket::Available), 25);
        assert_eq!(b.available(), 25);
    }

    #[test]
    fn a_hold_that_does_not_fit_changes_nothing() {
        let mut b = Book::new(
            ACC,
            Money::from_nanos(10),
            vec![lot("g", None, 10)],
            Timestamp::from_micros(0),
        );
        assert!(matches!(b.hold(11), Err(Error::InsufficientCredits { .. })));
        assert!(b.take_postings().unwrap().is_empty());
        b.hold(10).unwrap();
        assert_eq!(b.available(), 0);
    }

    #[test]
    fn capture_pays_from_held_returns_the_rest_and_charges_any_excess() {
        let lots = vec![lot("a", Some(100), 5), lot("b", None, 20)];
        let mut b = Book::new(ACC, Money::from_nanos(25), lots, Timestamp::from_micros(0));
        b.hold(10).unwrap();
        let hold = b.take_postings().unwrap();
        let parts: Vec<(String, i64)> = hold
            .iter()
            .filter(|p| p.bucket == Bucket::Held)
            .map(|p| (p.grant_id.clone().unwrap(), p.amount.nanos()))
            .collect();
        b.capture(&parts, 7, REV, BRK).unwrap();
        let p = b.take_postings().unwrap();
        // 5 from a (expires first), 2 from b; 3 back to b.
        assert_eq!(sum_for(&p, Some("a"), Bucket::Held), -5);
        assert_eq!(sum_for(&p, Some("b"), Bucket::Held), -5);
        assert_eq!(sum_for(&p, Some("b"), Bucket::Available), 3);
        assert_eq!(b.available(), 18);

        let mut b2 = Book::new(
            ACC,
            Money::from_nanos(25),
            vec![lot("a", Some(100), 5), lot("b", None, 20)],
            Timestamp::from_micros(0),
        );
        b2.hold(10).unwrap();
        b2.take_postings().unwrap();
        b2.capture(&parts, 40, REV, BRK).unwrap();
        b2.take_postings().unwrap();
        assert_eq!(b2.available(), 25 - 40);
    }

    #[test]
    fn expiry_removes_only_the_unheld_remainder_and_late_returns_are_breakage() {
        let mut b = Book::new(
            ACC,
            Money::from_nanos(10),
            vec![lot("promo", Some(100), 10)],
            Timestamp::from_micros(0),
        );
        b.hold(4).unwrap();
        b.take_postings().unwrap();
        let mut later = Book::new(
            ACC,
            Money::from_nanos(6),
            b.lots().to_vec(),
            Timestamp::from_micros(200),
        );
        assert_eq!(later.due_expiries(), vec![("promo".to_string(), 6)]);
        assert_eq!(later.expire("promo", BRK).unwrap(), 6);
        later.take_postings().unwrap();
        later.release(&[("promo".to_string(), 4)], BRK).unwrap();
        let p = later.take_postings().unwrap();
        assert_eq!(sum_for(&p, Some("promo"), Bucket::Available), 0);
        assert!(p
            .iter()
            .any(|p| p.account_id == BRK && p.amount.nanos() == 4));
        assert_eq!(later.available(), 0);
    }
}
