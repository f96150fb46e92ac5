//! The error type of server functions: what a browser may learn about a failure. The
//! core's error is mapped into it once, here, and internal details never cross.

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("you are not allowed to do that")]
    Forbidden,
    #[error("{0}")]
    Conflict(String),
    #[error("not enough credits")]
    InsufficientCredits,
    #[error("the service is temporarily unavailable; please try again")]
    Unavailable,
    #[error("something went wrong on our side")]
    Internal,
    /// Transport failures of the server-function call itself.
    #[error("request failed: {0}")]
    Transport(String),
}

impl AppError {
    /// The HTTP status a server function answers with this error (`server` maps it once,
    /// at the edge; server functions themselves answer every error with 500).
    pub fn status_code(&self) -> u16 {
        match self {
            AppError::Invalid(_) | AppError::Transport(_) => 400,
            AppError::InsufficientCredits => 402,
            AppError::Forbidden => 403,
            AppError::NotFound => 404,
            AppError::Conflict(_) => 409,
            AppError::Unavailable => 503,
            AppError::Internal => 500,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<crate::core::error::Error> for AppError {
    fn from(e: crate::core::error::Error) -> AppError {
        use crate::core::error::Error;
        match e {
            Error::Invalid { message, .. } => AppError::Invalid(message),
            Error::NotFound(_) => AppError::NotFound,
            Error::Unauthenticated | Error::Forbidden(_) => AppError::Forbidden,
            Error::Conflict { message, .. } => AppError::Conflict(message),
            Error::InsufficientCredits { .. }
            | Error::Suspended
            | Error::CapReached
            | Error::PastDue
            | Error::ModelNotInPlan(_)
            | Error::KeyLimitReached => AppError::InsufficientCredits,
            Error::Unavailable(detail) | Error::Contention(detail) => {
                tracing::warn!(%detail, "server function: storage unavailable");
                AppError::Unavailable
            }
            Error::Internal(detail) => {
                tracing::error!(%detail, "server function failed");
                AppError::Internal
            }
        }
    }
}
