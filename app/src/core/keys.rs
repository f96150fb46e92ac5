//! API keys: `sk_test_…` / `sk_live_…`, one scope each, stored as a SHA-256 hash and
//! compared in constant time. The secret is shown once, at creation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::ledger::Mode;
use super::store::{ApiKeyRow, Store, Tx};

/// What a key may do. `Usage` includes `Read`; `Admin` includes everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Usage,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Usage => "usage",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "usage" => Some(Scope::Usage),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    pub fn allows(self, required: Scope) -> bool {
        self >= required
    }
}

/// An authenticated key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub mode: Mode,
    pub scope: Scope,
    pub name: String,
}

const ID_HEX: usize = 16;
const SECRET_HEX: usize = 40;

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    Ok(hex::encode(buf))
}

pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random token for one-time links and similar secrets.
pub fn random_token() -> Result<String> {
    random_hex(24)
}

/// Creates a key and returns it with its secret, which is not stored anywhere.
pub async fn create(
    store: &Store,
    mode: Mode,
    scope: Scope,
    name: &str,
    now: Timestamp,
) -> Result<(ApiKey, String)> {
    let mut tx = store.begin().await?;
    let created = create_in(&mut tx, mode, scope, name, now).await?;
    tx.commit().await?;
    Ok(created)
}

/// [`create`] inside the caller's transaction (the console audits it in the same one).
pub async fn create_in(
    tx: &mut Tx,
    mode: Mode,
    scope: Scope,
    name: &str,
    now: Timestamp,
) -> Result<(ApiKey, String)> {
    if name.trim().is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "a key name is 1-200 characters"));
    }
    let (secret, public) = new_secret("sk", mode)?;
    let row = ApiKeyRow {
        id: format!("key_{public}"),
        mode,
        scope: scope.as_str().into(),
        name: name.into(),
        secret_hash: hash_secret(&secret),
        created_at: now,
        revoked_at: None,
    };
    tx.insert_api_key(&row).await?;
    Ok((
        ApiKey {
            id: row.id,
            mode,
            scope,
            name: row.name,
        },
        secret,
    ))
}

/// Reads a secret `<kind>_<mode>_<16 hex public id><40 hex>`: its mode and public id.
/// Anything else is `Unauthenticated` (API keys are `sk`, customer keys `ck`).
pub(crate) fn parse_secret<'a>(kind: &str, secret: &'a str) -> Result<(Mode, &'a str)> {
    let rest = secret
        .strip_prefix(kind)
        .and_then(|r| r.strip_prefix('_'))
        .ok_or(Error::Unauthenticated)?;
    let (mode, rest) = if let Some(r) = rest.strip_prefix("test_") {
        (Mode::Test, r)
    } else if let Some(r) = rest.strip_prefix("live_") {
        (Mode::Live, r)
    } else {
        return Err(Error::Unauthenticated);
    };
    if rest.len() != ID_HEX + SECRET_HEX || !rest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Unauthenticated);
    }
    Ok((mode, &rest[..ID_HEX]))
}

/// Whether a secret hashes to the stored hash (compared in constant time).
pub(crate) fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// A new secret `<kind>_<mode>_<public id><secret>` and its public id.
pub(crate) fn new_secret(kind: &str, mode: Mode) -> Result<(String, String)> {
    let public = random_hex(ID_HEX / 2)?;
    let secret = format!(
        "{kind}_{}_{public}{}",
        mode.as_str(),
        random_hex(SECRET_HEX / 2)?
    );
    Ok((secret, public))
}

/// Finds the live key a secret belongs to, or fails with `Unauthenticated`.
pub async fn authenticate(store: &Store, secret: &str) -> Result<ApiKey> {
    let (mode, public) = parse_secret("sk", secret)?;
    let row = store
        .api_key(&format!("key_{public}"))
        .await?
        .ok_or(Error::Unauthenticated)?;
    if !secret_matches(secret, &row.secret_hash) || row.revoked_at.is_some() || row.mode != mode {
        return Err(Error::Unauthenticated);
    }
    Ok(ApiKey {
        id: row.id,
        mode,
        scope: Scope::parse(&row.scope).ok_or_else(|| Error::internal("key with a bad scope"))?,
        name: row.name,
    })
}

/// Keys recently authenticated by this process, so that the metering path does not read
/// the `api_keys` table on every request. An entry lives [`KeyCache::TTL`]: a key revoked
/// by another process (the CLI, another node) stops working within that time, under a
/// second on every node; one
/// revoked through this process's console stops at once ([`KeyCache::clear`]). Failed
/// look-ups are never cached, so a new key works at once.
#[derive(Debug, Default)]
pub struct KeyCache {
    /// SHA-256 of the secret → the key and when it was read.
    entries: Mutex<HashMap<String, (ApiKey, Instant)>>,
}

impl KeyCache {
    pub const TTL: Duration = Duration::from_millis(750);
    /// Beyond this many live keys the cache starts over (a bound, not an LRU: keys are few).
    const MAX: usize = 10_000;

    /// Authenticates like [`authenticate`], answering from memory when this secret was
    /// checked against the database less than [`KeyCache::TTL`] ago.
    pub async fn authenticate(&self, store: &Store, secret: &str) -> Result<ApiKey> {
        let hash = hash_secret(secret);
        if let Some((key, at)) = self.lock().get(&hash) {
            if at.elapsed() < Self::TTL {
                return Ok(key.clone());
            }
        }
        let key = authenticate(store, secret).await?;
        let mut entries = self.lock();
        if entries.len() >= Self::MAX {
            entries.clear();
        }
        entries.insert(hash, (key.clone(), Instant::now()));
        Ok(key)
    }

    /// Forgets every key (after a revocation).
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (ApiKey, Instant)>> {
        // A panic while holding the lock cannot leave the map half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub async fn revoke(store: &Store, id: &str, now: Timestamp) -> Result<()> {
    let mut tx = store.begin().await?;
    let revoked = tx.revoke_api_key(id, now).await?;
    tx.commit().await?;
    if revoked {
        Ok(())
    } else {
        Err(Error::NotFound("api key"))
    }
}
