//! Passwords of customers and staff: argon2 hashes (password-auth's defaults), computed
//! and checked off the async threads.
//!
//! A sign-in runs argon2 once whether or not the email has an account, so its time does
//! not tell which addresses are registered.

use std::sync::OnceLock;

use super::error::{Error, Result};

/// The hash of a new password.
pub async fn hash(password: &str) -> Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || password_auth::generate_hash(password))
        .await
        .map_err(|e| Error::internal(e.to_string()))
}

/// The id of the first candidate `(id, hash)` whose hash `password` matches. With no
/// candidate (an unknown email), checks against a hash no password matches instead, so
/// the answer takes as long either way.
pub async fn matching(password: &str, candidates: Vec<(String, String)>) -> Result<Option<String>> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        if candidates.is_empty() {
            let _ = password_auth::verify_password(&password, decoy());
            return None;
        }
        candidates
            .into_iter()
            .find(|(_, hash)| password_auth::verify_password(&password, hash).is_ok())
            .map(|(id, _)| id)
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))
}

/// A hash with the same parameters as real ones, of a random password nobody knows.
fn decoy() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let secret = super::keys::random_token().unwrap_or_else(|_| "tally decoy".into());
        password_auth::generate_hash(secret)
    })
}
