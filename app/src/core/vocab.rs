//! The ledger's words as types: modes, transaction kinds, buckets, hold and account states,
//! grant kinds and a posting. This module is at the bottom of the core: it imports only
//! money, so the store (which reads and writes these values) and the ledger (which
//! decides them) can both use it without importing each other. Each value is stored as the
//! text `as_str` gives and parsed back where rows are read; an unknown text in the database
//! is an internal error there, never a silent default.

use std::fmt;

use super::error::{Error, Result};
use super::money::Money;

/// A closed set of values stored as text: `as_str`, `parse`, `Display` and serde as that
/// text, and `from_db`, which turns an unknown stored text into an internal error.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// A value read from the database; an unknown one means a bug or a foreign write.
            pub fn from_db(s: &str) -> Result<$name> {
                $name::parse(s).ok_or_else(|| {
                    Error::internal(format!(concat!("unknown ", stringify!($name), " {:?} in the database"), s))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<$name, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(concat!("unknown ", stringify!($name), " {:?}"), s))
                })
            }
        }
    };
}

text_enum! {
    /// Test and live mode are separate worlds with separate operator accounts, price books
    /// and plans.
    Mode { Test = "test", Live = "live" }
}

text_enum! {
    /// What a ledger transaction was, as the API reports it.
    Kind {
        Topup = "topup",
        Usage = "usage",
        Grant = "grant",
        Refund = "refund",
        Dispute = "dispute",
        Expiry = "expiry",
        Adjustment = "adjustment",
        Hold = "hold",
        Release = "release",
    }
}

text_enum! {
    /// The two halves of a customer balance: spendable, and reserved by pending holds.
    Bucket { Available = "available", Held = "held" }
}

text_enum! {
    /// A hold is pending until it is captured, released, or expires; it never leaves a
    /// final state (an expired hold may still record a late capture beside its state).
    HoldStatus {
        Pending = "pending",
        Captured = "captured",
        Released = "released",
        Expired = "expired",
    }
}

text_enum! {
    /// Customer accounts carry cached balances; operator accounts are the other side.
    AccountKind { Customer = "customer", Operator = "operator" }
}

text_enum! {
    /// A suspended account can hold nothing new; usage that happened is still charged.
    AccountStatus { Active = "active", Suspended = "suspended" }
}

text_enum! {
    /// Where a grant's credit came from, which decides its defaults.
    GrantKind {
        Purchased = "purchased",
        Promotional = "promotional",
        Included = "included",
        Adjustment = "adjustment",
    }
}

text_enum! {
    /// Whether a customer may start new work now, and if not, why: suspended beats
    /// everything, then a subscription past due beyond its grace, then the spend caps
    /// (spent plus held), then the balance.
    Standing {
        Ok = "ok",
        InsufficientCredits = "insufficient_credits",
        Suspended = "suspended",
        CapReached = "cap_reached",
        PastDue = "past_due",
    }
}

text_enum! {
    /// A subscription is `incomplete` until its first invoice is paid; `past_due` after a
    /// failed renewal (access continues for the plan's grace days); `canceled` for good.
    SubscriptionStatus {
        Incomplete = "incomplete",
        Active = "active",
        PastDue = "past_due",
        Canceled = "canceled",
    }
}

text_enum! {
    /// A subscription invoice as Tally last heard of it.
    InvoiceStatus {
        Open = "open",
        Paid = "paid",
        Failed = "failed",
        ActionRequired = "action_required",
    }
}

text_enum! {
    /// A top-up is pending until it is paid, fails or expires; `processing` is an
    /// asynchronous payment on its way.
    TopupStatus {
        Pending = "pending",
        Processing = "processing",
        Paid = "paid",
        Failed = "failed",
        Expired = "expired",
    }
}

text_enum! {
    /// Where a top-up comes from: the portal's or the API's Checkout, or an off-session
    /// charge by auto top-up.
    TopupSource { Portal = "portal", Api = "api", Auto = "auto" }
}

text_enum! {
    /// Who takes a payment: Stripe, or the simulation (test mode without Stripe keys).
    GatewayKind { Stripe = "stripe", Simulated = "simulated" }
}

text_enum! {
    /// A stored Stripe event in the inbox: `pending` until a worker claims it
    /// (`processing`), then `processed`, or `failed` and retried with back-off.
    InboxStatus {
        Pending = "pending",
        Processing = "processing",
        Processed = "processed",
        Failed = "failed",
    }
}

text_enum! {
    /// A dispute (chargeback) of a top-up: `open` while Stripe holds the funds, then
    /// `won` or `lost`; a lost one may still turn won when the decision is reversed.
    DisputeStatus { Open = "open", Won = "won", Lost = "lost" }
}

impl DisputeStatus {
    /// Stripe's dispute status in our three words.
    pub fn of_stripe(status: &str) -> DisputeStatus {
        match status {
            "won" | "warning_closed" => DisputeStatus::Won,
            "lost" => DisputeStatus::Lost,
            _ => DisputeStatus::Open,
        }
    }

    /// Whether a dispute may move from `self` to `to`: open to a decision, lost to won.
    pub fn may_become(self, to: DisputeStatus) -> bool {
        matches!(
            (self, to),
            (
                DisputeStatus::Open,
                DisputeStatus::Won | DisputeStatus::Lost
            ) | (DisputeStatus::Lost, DisputeStatus::Won)
        )
    }
}

text_enum! {
    /// What the operator's app is told through its webhook endpoints (the contract's list,
    /// plus `budget.reached`).
    EventType {
        BalanceLow = "balance.low",
        BalanceDepleted = "balance.depleted",
        BalanceRecovered = "balance.recovered",
        TopupSucceeded = "topup.succeeded",
        TopupFailed = "topup.failed",
        AutoTopupFailed = "auto_topup.failed",
        UsageCapReached = "usage.cap_reached",
        KeyLimitReached = "key.limit_reached",
        SpendSpike = "spend.spike",
        BudgetReached = "budget.reached",
        SubscriptionPastDue = "subscription.past_due",
        SubscriptionCanceled = "subscription.canceled",
        InvoicePaid = "invoice.paid",
    }
}

text_enum! {
    /// A customer's balance as last notified: an event is written when it changes.
    BalanceAlert { Ok = "ok", Low = "low", Depleted = "depleted" }
}

text_enum! {
    /// An operator webhook endpoint is disabled after deliveries to it failed for the whole
    /// retry window (or by staff); enabling it again is a console action.
    EndpointStatus { Enabled = "enabled", Disabled = "disabled" }
}

text_enum! {
    /// One event's delivery to one endpoint.
    DeliveryStatus { Pending = "pending", Delivered = "delivered", Failed = "failed" }
}

text_enum! {
    /// An email's state: `off` when no SMTP server is configured (kept to show what would
    /// have been sent).
    EmailStatus { Pending = "pending", Sent = "sent", Failed = "failed", Off = "off" }
}

text_enum! {
    /// What an email is about. Customers may turn off the non-essential ones
    /// ([`EmailKind::optional`]); the others concern access or payment and always go.
    EmailKind {
        BalanceLow = "balance_low",
        BalanceDepleted = "balance_depleted",
        BudgetReached = "budget_reached",
        Receipt = "receipt",
        AutoTopupFailed = "auto_topup_failed",
        RenewalFailed = "renewal_failed",
        GraceEnding = "grace_ending",
        PasswordReset = "password_reset",
        EndpointDisabled = "endpoint_disabled",
    }
}

impl EmailKind {
    /// Whether a customer may choose not to get it.
    pub fn optional(self) -> bool {
        matches!(
            self,
            EmailKind::BalanceLow
                | EmailKind::BalanceDepleted
                | EmailKind::BudgetReached
                | EmailKind::Receipt
        )
    }
}

/// One leg of a transaction: an amount into (positive) or out of (negative) one bucket of
/// one account, on one grant when it moves a customer's granted credit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Posting {
    pub account_id: String,
    pub grant_id: Option<String>,
    pub bucket: Bucket,
    pub amount: Money,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_reads_back_as_itself() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(*k));
        }
        for s in HoldStatus::ALL {
            assert_eq!(HoldStatus::from_db(s.as_str()).unwrap(), *s);
        }
        assert_eq!(serde_json::to_string(&Mode::Live).unwrap(), "\"live\"");
        assert_eq!(
            serde_json::from_str::<Bucket>("\"held\"").unwrap(),
            Bucket::Held
        );
    }

    #[test]
    fn an_unknown_stored_value_is_an_error_not_a_default() {
        assert!(Kind::from_db("bonus").is_err());
        assert!(serde_json::from_str::<Mode>("\"prod\"").is_err());
    }
}
