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
    /// Two transactions collided and the database aborted this one (PostgreSQL's deadlock
    /// or serialization failure): nothing was written and the same work can run again at
    /// once. The write paths of money retry it ([`retrying`]); what is left after the
    /// retries is answered like [`Error::Unavailable`], never as an internal error.
    #[error("transaction conflict: {0}")]
    Contention(String),
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
            sqlx::Error::Database(ref db)
                if matches!(db.code().as_deref(), Some("40P01") | Some("40001")) =>
            {
                Error::Contention(e.to_string())
            }
            // PostgreSQL refuses text holding NUL (U+0000). The edges refuse it first; this
            // keeps one that slipped through a refusal of bad input, not an internal error.
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("22021") => {
                Error::Invalid {
                    code: "invalid",
                    message: "text must not contain NUL (U+0000)".into(),
                    param: None,
                }
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

/// Attempts at most this many times in all.
const ATTEMPTS: u32 = 4;

/// Runs `attempt` until it ends otherwise than with [`Error::Contention`], at most
/// [`ATTEMPTS`] times, waiting a little longer before each try (5, 10, 20 ms) so that the
/// transaction it collided with can finish. Each attempt must be a whole transaction: an
/// aborted one wrote nothing, so running it again is safe.
pub async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(Error::Contention(detail)) if tries < ATTEMPTS => {
                tracing::info!(%detail, tries, "transaction conflict; running it again");
                tokio::time::sleep(std::time::Duration::from_millis(5 << (tries - 1))).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Error {
        Error::Internal(format!("migration failed: {e}"))
    }
}
