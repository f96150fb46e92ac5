//! `Idempotency-Key`: the same key and request from the same API key gets the original
//! answer again; the same key with another request is a conflict; a failure on our side
//! (5xx) releases the key so a retry runs again. The edge hashes the request, asks
//! [`Answers::decide`], runs the request only on [`Decision::Run`], and hands the answer
//! to [`Answers::save`].
//!
//! The database's unique index is the source of truth (it holds across processes and
//! restarts). In front of it, each process keeps its most recent completed answers in an
//! LRU bounded in bytes ([`RECENT_ANSWER_BYTES`]): a retry, the common case, is answered
//! from memory without a database round trip (and even while the database is away). Only
//! completed answers are cached, and a completed record never changes, so the cache
//! cannot disagree with the database.
//!
//! A stored answer lives for the deployment's time to live (`TALLY_IDEMPOTENCY_TTL_HOURS`,
//! 24 by default, as Stripe's): after it the key is new again, and the sweep deletes the
//! record. This is the `Idempotency-Key` header only: a usage event's `request_id` is its
//! ledger reference and deduplicates forever.

use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::clock::Timestamp;
use super::error::{Error, Result};
use super::store::Store;
use super::vocab::Mode;

/// A claim older than this with no answer is taken to belong to a crashed request.
const ABANDONED_AFTER_SECONDS: i64 = 60;

/// How many bytes of completed answers each process remembers at most.
pub const RECENT_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// How long a stored answer is replayed by default.
pub const DEFAULT_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What one remembered answer costs beyond its strings (the map's entry and links).
const ENTRY_OVERHEAD: usize = 96;

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

/// Deletes the stored answers first used more than `ttl` before `now` (the sweep); how
/// many.
pub async fn purge_expired(store: &Store, now: Timestamp, ttl: std::time::Duration) -> Result<u64> {
    store.delete_idempotency_keys_before(cutoff(now, ttl)).await
}

/// Keys first used before this have expired at `now`.
fn cutoff(now: Timestamp, ttl: std::time::Duration) -> Timestamp {
    now.plus_seconds(-i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1))
}

/// Completed answers: the database's, with the most recent in memory. Cheap to clone.
#[derive(Clone)]
pub struct Answers {
    store: Store,
    ttl: std::time::Duration,
    recent: Arc<Mutex<Recent>>,
}

/// A remembered answer: the request's hash, the answer, when the key was first used.
#[derive(Clone, Debug)]
struct Remembered {
    hash: String,
    answer: Answer,
    since: Timestamp,
}

impl Remembered {
    fn bytes(&self, key: &str) -> usize {
        key.len() + self.hash.len() + self.answer.body.len() + ENTRY_OVERHEAD
    }
}

/// The in-memory answers, least recently used first out, within a byte budget.
struct Recent {
    lru: hashlink::LruCache<String, Remembered>,
    bytes: usize,
    budget: usize,
}

impl Recent {
    fn new(budget: usize) -> Recent {
        Recent {
            lru: hashlink::LruCache::new_unbounded(),
            bytes: 0,
            budget,
        }
    }

    fn get(&mut self, key: &str) -> Option<Remembered> {
        self.lru.get(key).cloned()
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.lru.remove(key) {
            self.bytes -= old.bytes(key);
        }
    }

    /// Keeps `value` unless it alone would take more than a sixteenth of the budget (it
    /// stays in the database), evicting the least recently used to stay within it.
    fn insert(&mut self, key: String, value: Remembered) {
        self.remove(&key);
        let size = value.bytes(&key);
        if size > self.budget / 16 {
            return;
        }
        self.bytes += size;
        self.lru.insert(key, value);
        while self.bytes > self.budget {
            match self.lru.remove_lru() {
                Some((k, v)) => self.bytes -= v.bytes(&k),
                None => break,
            }
        }
    }
}

impl Answers {
    /// Answers kept `ttl` in the database, and at most `budget` bytes of them in memory.
    pub fn new(store: Store, budget: usize, ttl: std::time::Duration) -> Answers {
        Answers {
            store,
            ttl,
            recent: Arc::new(Mutex::new(Recent::new(budget))),
        }
    }

    fn expired_before(&self, now: Timestamp) -> Timestamp {
        cutoff(now, self.ttl)
    }

    fn remembered(&self, key: &Keyed, now: Timestamp) -> Option<(String, Answer)> {
        let mut recent = self.recent.lock().ok()?;
        let cache_key = key.cache_key();
        let found = recent.get(&cache_key)?;
        if found.since < self.expired_before(now) {
            recent.remove(&cache_key);
            return None;
        }
        Some((found.hash, found.answer))
    }

    fn remember(&self, key: &Keyed, answer: Answer, since: Timestamp) {
        if let Ok(mut m) = self.recent.lock() {
            let hash = key.hash.clone();
            m.insert(
                key.cache_key(),
                Remembered {
                    hash,
                    answer,
                    since,
                },
            );
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
        if let Some((hash, answer)) = self.remembered(key, now) {
            return Ok(decided(&hash, answer));
        }
        let mode = key.mode.as_str();
        let mut existing = self
            .store
            .claim_idempotency_key(mode, &key.key, &key.hash, now)
            .await?;
        // An answer past its time to live: the key is new again (once; a request that
        // claims it meanwhile wins, and this one sees its claim).
        if let Some(old) = existing
            .as_ref()
            .filter(|e| e.status_code.is_some() && e.created_at < self.expired_before(now))
        {
            self.store
                .delete_idempotency_key_if(mode, &key.key, old.created_at)
                .await?;
            existing = self
                .store
                .claim_idempotency_key(mode, &key.key, &key.hash, now)
                .await?;
        }
        let Some(existing) = existing else {
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
                self.remember(key, answer.clone(), existing.created_at);
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
    /// `now` is when the request was decided (its claim's time).
    pub async fn save(&self, key: &Keyed, answer: Option<Answer>, now: Timestamp) -> Result<()> {
        let mode = key.mode.as_str();
        match answer {
            Some(answer) if answer.status < 500 => {
                self.store
                    .complete_idempotency_key(mode, &key.key, answer.status, &answer.body)
                    .await?;
                // Remembered only once the database has it, so memory never knows more
                // than the index.
                self.remember(key, answer, now);
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

    fn remembered(body_bytes: usize) -> Remembered {
        Remembered {
            hash: "h".repeat(64),
            answer: Answer {
                status: 201,
                body: "x".repeat(body_bytes),
            },
            since: Timestamp::from_micros(0),
        }
    }

    #[test]
    fn remembered_answers_stay_within_their_byte_budget() {
        let budget = 64 * 1024;
        let mut recent = Recent::new(budget);
        for i in 0..1_000 {
            recent.insert(format!("test/key/{i}"), remembered(1_000));
            assert!(recent.bytes <= budget, "{} bytes held", recent.bytes);
        }
        let held = recent.lru.len();
        assert!(
            (50..64).contains(&held),
            "{held} answers of ~1.2 KB in 64 KiB"
        );
        assert!(recent.get("test/key/999").is_some(), "the latest is kept");
        assert!(recent.get("test/key/0").is_none(), "the oldest is gone");
        // Accounting holds through replacements and removals.
        recent.insert("test/key/999".into(), remembered(10));
        recent.remove("test/key/998");
        let counted: usize = recent.lru.iter().map(|(k, v)| v.bytes(k)).sum();
        assert_eq!(recent.bytes, counted);
        // One answer larger than a sixteenth of the budget is left to the database.
        recent.insert("test/key/huge".into(), remembered(budget / 8));
        assert!(recent.get("test/key/huge").is_none());
    }
}
