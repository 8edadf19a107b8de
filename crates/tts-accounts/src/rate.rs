//! Per-key rate limits: one token bucket per key (governor's GCRA), refilled at `per_minute`
//! requests a minute with room for `burst` at once. A refused request learns how long to wait,
//! which the server sends as `Retry-After`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::keys::KeyStore;

/// A rate: `per_minute` requests a minute on average, up to `burst` (default: `per_minute`) at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateSpec {
    pub per_minute: u32,
    #[serde(default)]
    pub burst: Option<u32>,
}

impl RateSpec {
    /// `None` when the rate is zero (no limit).
    fn quota(self) -> Option<Quota> {
        let per_minute = NonZeroU32::new(self.per_minute)?;
        let burst = self.burst.and_then(NonZeroU32::new).unwrap_or(per_minute);
        Some(Quota::per_minute(per_minute).allow_burst(burst))
    }
}

type Bucket<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The buckets of every key with a rate (its own, else the default); keys without one are
/// unlimited.
pub struct RateLimits<C: Clock = DefaultClock> {
    buckets: HashMap<String, Bucket<C>>,
    clock: C,
}

impl RateLimits<DefaultClock> {
    pub fn new(keys: &KeyStore, default: Option<RateSpec>) -> Self {
        Self::with_clock(keys, default, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// With an explicit clock, so tests can move time by hand.
    pub fn with_clock(keys: &KeyStore, default: Option<RateSpec>, clock: C) -> Self {
        let buckets = keys
            .keys()
            .filter_map(|key| {
                let quota = key.rate().or(default)?.quota()?;
                Some((
                    key.id.clone(),
                    RateLimiter::direct_with_clock(quota, clock.clone()),
                ))
            })
            .collect();
        Self { buckets, clock }
    }

    /// Takes one token for `key_id`; `Err(wait)` says when the next one will be there.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        match self.buckets.get(key_id) {
            None => Ok(()),
            Some(bucket) => bucket
                .check()
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
        }
    }

    pub fn is_limited(&self, key_id: &str) -> bool {
        self.buckets.contains_key(key_id)
    }
}

#[cfg(test)]
mod tests {
    use governor::clock::FakeRelativeClock;

    use super::*;
    use crate::keys::{hash_key, ApiKey, KeysFile, Role};

    fn store(rate: Option<u32>, burst: Option<u32>) -> KeyStore {
        KeyStore::new(KeysFile {
            keys: vec![
                ApiKey {
                    id: "limited".into(),
                    role: Role::User,
                    sha256: hash_key("a"),
                    rate_per_minute: rate,
                    burst,
                    created: None,
                },
                ApiKey {
                    id: "other".into(),
                    role: Role::User,
                    sha256: hash_key("b"),
                    rate_per_minute: None,
                    burst: None,
                    created: None,
                },
            ],
        })
    }

    #[test]
    fn burst_is_allowed_then_refused_with_the_refill_wait() {
        let clock = FakeRelativeClock::default();
        let limits = RateLimits::with_clock(&store(Some(60), Some(3)), None, clock.clone());
        for _ in 0..3 {
            assert!(limits.check("limited").is_ok());
        }
        let wait = limits.check("limited").unwrap_err();
        // 60 a minute: one token a second.
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        clock.advance(Duration::from_secs(1));
        assert!(limits.check("limited").is_ok());
        assert!(limits.check("limited").is_err());
    }

    #[test]
    fn keys_without_rate_use_the_default_and_buckets_are_separate() {
        let clock = FakeRelativeClock::default();
        let default = RateSpec {
            per_minute: 1,
            burst: None,
        };
        let limits = RateLimits::with_clock(&store(Some(60), Some(1)), Some(default), clock);
        assert!(limits.check("other").is_ok());
        let wait = limits.check("other").unwrap_err();
        assert!(wait > Duration::from_secs(59), "{wait:?}");
        // The other key's bucket is untouched.
        assert!(limits.check("limited").is_ok());
    }

    #[test]
    fn no_rate_means_unlimited() {
        let limits = RateLimits::new(&store(None, None), None);
        assert!(!limits.is_limited("limited"));
        for _ in 0..1000 {
            assert!(limits.check("limited").is_ok());
        }
        assert!(limits.check("unknown-key").is_ok());
    }
}
