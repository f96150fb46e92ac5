//! Rate limits kept in memory, bounded: the API's and the proxy's per key, and the
//! sign-in pages' per email (whose keys anyone can make up).
//!
//! A [`Limiter`] is governor's keyed limiter (GCRA) over a 64-bit keyed hash of the key,
//! never the key itself, so an entry is small whatever a caller sends. Governor never
//! forgets a key on its own; every [`PRUNE_EVERY`] checks the limiter drops the keys
//! whose allowance has fully refilled (they behave exactly as a key never seen), so it
//! holds at most the keys active within one refill period plus that many. If an attack
//! makes more distinct keys within a period than [`MAX_KEYS`], the limiter starts
//! afresh rather than grow (every key's count with it): memory stays bounded, and the
//! attack's own requests are still capped by what the node can serve.

use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Checks between two prunings.
pub const PRUNE_EVERY: u64 = 4_096;
/// Keys a limiter keeps at most after pruning (about 48 bytes each).
pub const MAX_KEYS: usize = 500_000;

/// Requests per key under a quota, in bounded memory.
#[derive(Debug)]
pub struct Limiter {
    quota: Quota,
    /// Replaced whole (under the write lock) only when over [`MAX_KEYS`].
    limiter: RwLock<DefaultKeyedRateLimiter<u64>>,
    hasher: std::hash::RandomState,
    checks: AtomicU64,
}

impl Limiter {
    pub fn new(quota: Quota) -> Limiter {
        Limiter {
            quota,
            limiter: RwLock::new(RateLimiter::keyed(quota)),
            hasher: std::hash::RandomState::new(),
            checks: AtomicU64::new(0),
        }
    }

    /// `n` a second, `n` at once.
    pub fn per_second(n: u32) -> Limiter {
        Limiter::new(Quota::per_second(non_zero(n)))
    }

    /// `n` a minute, `n` at once.
    pub fn per_minute(n: u32) -> Limiter {
        Limiter::new(Quota::per_minute(non_zero(n)))
    }

    /// Counts one request for `key`: `Err(wait)` when over, with how long until one more
    /// would be allowed.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.prune();
        }
        self.read()
            .check_key(&self.hasher.hash_one(key))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets the keys whose allowance is whole again, and everything past [`MAX_KEYS`].
    pub fn prune(&self) {
        let limiter = self.read();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        let held = limiter.len();
        drop(limiter);
        if held > MAX_KEYS {
            tracing::warn!(
                keys = held,
                "rate limiter over its key bound; forgetting its keys"
            );
            *self.limiter.write().unwrap_or_else(PoisonError::into_inner) =
                RateLimiter::keyed(self.quota);
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> RwLockReadGuard<'_, DefaultKeyedRateLimiter<u64>> {
        // Nothing panics while holding the lock; a poisoned one is still whole.
        self.limiter.read().unwrap_or_else(PoisonError::into_inner)
    }
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// The sign-in pages' limits, per email, for customers and staff alike; each running core
/// has its own.
#[derive(Debug)]
pub struct SignInLimits {
    /// Password attempts: five a minute, then refused until the minute has passed
    /// whatever the password, so that a password cannot be found by trying many.
    passwords: Limiter,
    /// Password reset links: three a minute, so nobody's inbox can be flooded.
    resets: Limiter,
}

impl Default for SignInLimits {
    fn default() -> SignInLimits {
        SignInLimits {
            passwords: Limiter::per_minute(5),
            resets: Limiter::per_minute(3),
        }
    }
}

impl SignInLimits {
    /// Counts one password attempt for `email` as `who` (`customer` or `staff`); false
    /// when over.
    pub fn password_attempt(&self, who: &str, email: &str) -> bool {
        self.passwords.check(&key(who, email)).is_ok()
    }

    /// Counts one reset link asked for `email` as `who`; false when over.
    pub fn reset_request(&self, who: &str, email: &str) -> bool {
        self.resets.check(&key(who, email)).is_ok()
    }
}

fn key(who: &str, email: &str) -> String {
    format!("{who}:{}", email.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_quota_waits_and_others_do_not() {
        let l = Limiter::per_second(2);
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        let wait = l.check("a").expect_err("the third within a second");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(l.check("b").is_ok(), "keys are counted apart");
    }

    #[test]
    fn keys_whose_allowance_refilled_are_forgotten() {
        // 1,000 a second: one request's allowance is back within a millisecond.
        let l = Limiter::per_second(1_000);
        for i in 0..(3 * PRUNE_EVERY) {
            assert!(l.check(&format!("made-up-{i}@example.com")).is_ok());
        }
        assert!(
            l.len() < 2 * PRUNE_EVERY as usize,
            "pruned as it went: {} keys held",
            l.len()
        );
        std::thread::sleep(Duration::from_millis(20));
        l.prune();
        assert!(l.is_empty(), "{} keys held after they refilled", l.len());
    }

    #[test]
    fn a_key_still_counting_is_kept() {
        let l = Limiter::per_minute(5);
        for _ in 0..5 {
            assert!(l.check("victim@example.com").is_ok());
        }
        l.prune();
        assert_eq!(l.len(), 1);
        assert!(
            l.check("victim@example.com").is_err(),
            "pruning does not lift a limit"
        );
    }
}
