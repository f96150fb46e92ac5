//! `Idempotency-Key`: the same key and request from the same API key gets the original
//! answer again; the same key with another request is a conflict; a failure on our side
//! (5xx) releases the key so a retry runs again. The edge hashes the request, asks
//! [`Answers::decide`], runs the request only on [`Decision::Run`], and hands the answer
//! to [`Answers::save`].
//!
//! The database's unique index is the source of truth (it holds across processes and
//! restarts). In front of it, each process keeps its most recent completed answers in an
//! LRU: a retry, the common case, is answered from memory without a database round trip
//! (and even while the database is away). Only completed answers are cached, and a
//! completed record never changes, so the cache cannot disagree with the database.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::store::Store;
use super::vocab::Mode;

/// A claim older than this with no answer is taken to belong to a crashed request.
const ABANDONED_AFTER_SECONDS: i64 = 60;

/// How many completed answers each process remembers.
pub const RECENT_ANSWERS: usize = 10_000;

/// A completed answer: the status and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// What to do with a request that carries an `Idempotency-Key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// First time (or the first attempt crashed): run it, then [`Answers::save`].
    Run,
    /// Answered before: send this again.
    Replay(Answer),
    /// The key was used with a different request.
    Reused,
    /// The first request with this key is still running.
    InProgress,
}

/// A request under its key: the key scoped to the API key that sent it (a stored answer
/// is never replayed to another key, which may lack the scope the original needed) and
/// the hash of the request.
#[derive(Clone, Debug)]
pub struct Keyed {
    pub mode: Mode,
    key: String,
    hash: String,
}

impl Keyed {
    /// Checks the header's value and hashes method, path and body.
    pub fn new(
        mode: Mode,
        api_key_id: &str,
        header: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Keyed> {
        if header.is_empty()
            || header.len() > 255
            || !header.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(Error::invalid(
                "Idempotency-Key",
                "Idempotency-Key must be 1-255 printable ASCII characters",
            ));
        }
        let mut h = Sha256::new();
        for part in [method.as_bytes(), path.as_bytes()] {
            h.update(part);
            h.update([0]);
        }
        h.update(body);
        Ok(Keyed {
            mode,
            key: format!("{api_key_id}/{header}"),
            hash: hex::encode(h.finalize()),
        })
    }

    fn cache_key(&self) -> String {
        format!("{}/{}", self.mode.as_str(), self.key)
    }
}

/// Completed answers: the database's, with the most recent in memory. Cheap to clone.
#[derive(Clone)]
pub struct Answers {
    store: Store,
    recent: Arc<Mutex<hashlink::LruCache<String, (String, Answer)>>>,
}

impl Answers {
    pub fn new(store: Store, capacity: usize) -> Answers {
        Answers {
            store,
            recent: Arc::new(Mutex::new(hashlink::LruCache::new(capacity))),
        }
    }

    fn remembered(&self, key: &Keyed) -> Option<(String, Answer)> {
        self.recent.lock().ok()?.get(&key.cache_key()).cloned()
    }

    fn remember(&self, key: &Keyed, answer: Answer) {
        if let Ok(mut m) = self.recent.lock() {
            m.insert(key.cache_key(), (key.hash.clone(), answer));
        }
    }

    /// Claims the key for this request, or says what it found.
    pub async fn decide(&self, key: &Keyed, now: Timestamp) -> Result<Decision> {
        let decided = |hash: &str, answer: Answer| {
            if hash == key.hash {
                Decision::Replay(answer)
            } else {
                Decision::Reused
            }
        };
        if let Some((hash, answer)) = self.remembered(key) {
            return Ok(decided(&hash, answer));
        }
        let mode = key.mode.as_str();
        let Some(existing) = self
            .store
            .claim_idempotency_key(mode, &key.key, &key.hash, now)
            .await?
        else {
            return Ok(Decision::Run);
        };
        if existing.request_hash != key.hash {
            return Ok(Decision::Reused);
        }
        match (existing.status_code, existing.response) {
            (Some(status), Some(body)) => {
                let answer = Answer {
                    status: u16::try_from(status)
                        .map_err(|_| Error::internal("a stored status out of range"))?,
                    body,
                };
                self.remember(key, answer.clone());
                Ok(Decision::Replay(answer))
            }
            _ => {
                let stale = now.plus_seconds(-ABANDONED_AFTER_SECONDS);
                if self
                    .store
                    .reclaim_idempotency_key(mode, &key.key, stale, now)
                    .await?
                {
                    Ok(Decision::Run)
                } else {
                    Ok(Decision::InProgress)
                }
            }
        }
    }

    /// Keeps a request's answer for its retries; a failure on our side (5xx, or no answer
    /// at all) releases the key instead, so a retry runs again.
    pub async fn save(&self, key: &Keyed, answer: Option<Answer>) -> Result<()> {
        let mode = key.mode.as_str();
        match answer {
            Some(answer) if answer.status < 500 => {
                self.store
                    .complete_idempotency_key(mode, &key.key, answer.status, &answer.body)
                    .await?;
                // Remembered only once the database has it, so memory never knows more
                // than the index.
                self.remember(key, answer);
                Ok(())
            }
            _ => self.store.release_idempotency_key(mode, &key.key).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_checked_and_the_request_hashed_whole() {
        let k = |header: &str, body: &[u8]| {
            Keyed::new(Mode::Test, "key_1", header, "POST", "/v1/usage", body)
        };
        assert!(k("", b"{}").is_err());
        assert!(k("caf\u{e9}", b"{}").is_err());
        assert!(k(&"x".repeat(256), b"{}").is_err());
        let a = k("retry-1", b"{\"a\":1}").unwrap();
        assert_eq!(a.hash, k("retry-1", b"{\"a\":1}").unwrap().hash);
        assert_ne!(a.hash, k("retry-1", b"{\"a\":2}").unwrap().hash);
        assert_eq!(a.cache_key(), "test/key_1/retry-1");
    }
}
