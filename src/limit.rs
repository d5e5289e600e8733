//! attrgate's own per-caller rate limit: a token bucket for each (issuer, subject).
//! Pure in-memory state; depends on nothing else in attrgate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

const MAX_TRACKED_CALLERS: usize = 10_000;

pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_second == 0` turns the limit off.
    pub(crate) fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for the caller, or says how many seconds to wait.
    pub(crate) fn check(&self, iss: &str, sub: &str) -> Result<(), u64> {
        self.check_at(iss, sub, Instant::now())
    }

    fn check_at(&self, iss: &str, sub: &str, now: Instant) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_TRACKED_CALLERS {
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let bucket = buckets
            .entry((iss.to_owned(), sub.to_owned()))
            .or_insert(Bucket {
                tokens: self.burst,
                at: now,
            });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_caller_gets_its_burst_then_waits_while_others_are_unaffected() {
        let limiter = RateLimiter::new(1, 2);
        let t0 = Instant::now();

        assert!(limiter.check_at("i", "a", t0).is_ok());
        assert!(limiter.check_at("i", "a", t0).is_ok());
        assert_eq!(limiter.check_at("i", "a", t0), Err(1));
        assert!(limiter.check_at("i", "b", t0).is_ok());
        assert!(
            limiter
                .check_at("i", "a", t0 + Duration::from_secs(1))
                .is_ok()
        );
    }

    #[test]
    fn a_rate_of_zero_never_limits() {
        let limiter = RateLimiter::new(0, 0);
        let t0 = Instant::now();

        assert!((0..1000).all(|_| limiter.check_at("i", "a", t0).is_ok()));
    }
}
