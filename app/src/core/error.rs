//! The one domain error. Every edge (REST, server functions, the CLI) maps it once.

use super::money::{Money, MoneyError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: the request can never succeed as sent.
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        param: Option<String>,
    },
    #[error("no such {0}")]
    NotFound(&'static str),
    /// No credentials, or credentials that match nothing.
    #[error("invalid API key")]
    Unauthenticated,
    /// Valid credentials without the right to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The request contradicts what already happened (a reused reference, a settled hold).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("insufficient credits: {available} available")]
    InsufficientCredits { available: Money },
    #[error("the account is suspended")]
    Suspended,
    #[error("the customer's spend cap is reached")]
    CapReached,
    /// A subscription renewal failed and the grace days are over.
    #[error("the subscription is past due")]
    PastDue,
    /// The customer's plan does not include this model.
    #[error("the plan does not include model {0}")]
    ModelNotInPlan(String),
    /// A customer key's own spend limit would be passed by this hold.
    #[error("this key's spend limit is reached")]
    KeyLimitReached,
    /// The database is unreachable or overloaded; nothing was written; safe to retry.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bug or a broken invariant. Details are logged, never shown to clients.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Invalid {
            code: "invalid",
            message: message.into(),
            param: Some(param.into()),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::Internal(message.into())
    }
}

impl From<MoneyError> for Error {
    fn from(e: MoneyError) -> Error {
        match e {
            MoneyError::Overflow => Error::Invalid {
                code: "amount_out_of_range",
                message: e.to_string(),
                param: None,
            },
            _ => Error::Invalid {
                code: "invalid_amount",
                message: e.to_string(),
                param: None,
            },
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Error::Unavailable(e.to_string())
            }
            sqlx::Error::Database(ref db) if is_busy(db.as_ref()) => {
                Error::Unavailable(e.to_string())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

/// SQLite's "database is locked" (another process holds the write lock past the busy
/// timeout) and PostgreSQL's "cannot connect now" are transient, not bugs.
fn is_busy(db: &dyn sqlx::error::DatabaseError) -> bool {
    matches!(db.code().as_deref(), Some("5") | Some("6") | Some("57P03"))
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Error {
        Error::Internal(format!("migration failed: {e}"))
    }
}
