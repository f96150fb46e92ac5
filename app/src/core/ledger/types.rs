//! What the ledger's operations take and give: the operator accounts, a credit, a debit,
//! and what was posted or captured.

use super::super::clock::Timestamp;
use super::super::money::Money;
use super::super::store::{HoldRow, TransactionRow};
use super::super::vocab::{GrantKind, Kind, Mode};

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
    pub kind: Kind,
    pub reference: String,
    pub attribution: Attribution,
}

impl Credit {
    /// Credit bought and paid: a purchased grant that never expires, from Stripe's
    /// clearing account, as a top-up under `reference`, with no attribution.
    pub fn topup(
        account_id: impl Into<String>,
        amount: Money,
        reference: impl Into<String>,
    ) -> Credit {
        Credit {
            account_id: account_id.into(),
            amount,
            grant_kind: GrantKind::Purchased,
            expires_at: None,
            source: Operator::StripeClearing,
            kind: Kind::Topup,
            reference: reference.into(),
            attribution: Attribution::default(),
        }
    }
}

/// Money leaving a customer's balance after the fact; may push it negative.
#[derive(Clone, Debug)]
pub struct Debit {
    pub account_id: String,
    pub amount: Money,
    pub counter: Operator,
    pub kind: Kind,
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
