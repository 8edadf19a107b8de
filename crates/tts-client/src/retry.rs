//! When and how long to wait before trying a request again: exponential backoff with full jitter,
//! or the server's `Retry-After` when it gave one.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Retry settings. Only requests that can be repeated safely are retried: those that never
/// reached the server (connection errors) and those the server refused with 429 or 503.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// Backoff ceiling before the first retry; doubles on each further retry.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff wait.
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (0 = first retry), or `None` when the server's
    /// `Retry-After` exceeds what this policy is willing to wait.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        match retry_after {
            // The server knows when it will have room: wait that long, plus a little jitter so a
            // crowd of refused clients does not return in the same millisecond.
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait + jitter(self.initial_backoff / 2)),
            None => {
                let ceiling = self
                    .initial_backoff
                    .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
                    .min(self.max_backoff);
                // Full jitter: uniform in [0, ceiling] spreads retries best (AWS architecture blog).
                Some(jitter(ceiling))
            }
        }
    }
}

fn jitter(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(0..=nanos))
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_stays_within_the_doubling_ceiling() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            ..RetryPolicy::default()
        };
        for _ in 0..200 {
            assert!(policy.delay(0, None).unwrap() <= Duration::from_millis(100));
            assert!(policy.delay(1, None).unwrap() <= Duration::from_millis(200));
            assert!(policy.delay(5, None).unwrap() <= Duration::from_millis(350));
        }
    }

    #[test]
    fn retry_after_is_waited_for_at_least() {
        let policy = RetryPolicy::default();
        let wait = policy.delay(0, Some(Duration::from_secs(2))).unwrap();
        assert!(wait >= Duration::from_secs(2));
        assert!(wait <= Duration::from_secs(2) + policy.initial_backoff);
    }

    #[test]
    fn retry_after_beyond_the_limit_is_not_waited_for() {
        let policy = RetryPolicy {
            max_retry_after: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay(0, Some(Duration::from_secs(6))), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(3)));
        let later = SystemTime::now() + Duration::from_secs(30);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let parsed = parse_retry_after(&headers).unwrap();
        assert!(parsed > Duration::from_secs(25) && parsed <= Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers), None);
    }
}
