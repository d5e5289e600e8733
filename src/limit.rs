//! attrgate's own per-caller rate limit: a token bucket for each (issuer, subject), in
//! memory, or shared by every replica through Redis (`shared_budget`), with this
//! replica's share in memory while Redis does not answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sha2::{Digest, Sha256};

use crate::shared_budget::SharedBudget;

const MAX_TRACKED_CALLERS: usize = 10_000;

pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    /// With Redis: the shared limit, and the share of it kept here when Redis is down.
    shared: Option<(Arc<SharedBudget>, f64)>,
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
            shared: None,
        }
    }

    /// Shares each caller's limit through `shared`; while it does not answer, this
    /// replica allows rate / `replicas`.
    #[must_use]
    pub(crate) fn shared(mut self, shared: Arc<SharedBudget>, replicas: u32) -> Self {
        self.shared = Some((shared, f64::from(replicas.max(1))));
        self
    }

    /// Takes one token for the caller, or says how many seconds to wait.
    pub(crate) async fn check(&self, iss: &str, sub: &str) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut share = 1.0;
        if let Some((shared, replicas)) = &self.shared {
            // Keys name no caller in clear.
            let caller = Sha256::new()
                .chain_update(iss)
                .chain_update([0])
                .chain_update(sub)
                .finalize();
            let key = format!("attrgate:caller:{}", hex::encode(&caller[..16]));
            match shared.take(&key, self.per_second, self.burst).await {
                Ok(answer) => return answer,
                Err(_) => share = *replicas,
            }
        }
        self.check_at(iss, sub, Instant::now(), share)
    }

    /// From this replica's buckets, at the rate / `share`.
    fn check_at(&self, iss: &str, sub: &str, now: Instant, share: f64) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let per_second = self.per_second / share;
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
        let refill = now.duration_since(bucket.at).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64)
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

        assert!(limiter.check_at("i", "a", t0, 1.0).is_ok());
        assert!(limiter.check_at("i", "a", t0, 1.0).is_ok());
        assert_eq!(limiter.check_at("i", "a", t0, 1.0), Err(1));
        assert!(limiter.check_at("i", "b", t0, 1.0).is_ok());
        assert!(
            limiter
                .check_at("i", "a", t0 + Duration::from_secs(1), 1.0)
                .is_ok()
        );
    }

    #[test]
    fn a_rate_of_zero_never_limits() {
        let limiter = RateLimiter::new(0, 0);
        let t0 = Instant::now();

        assert!((0..1000).all(|_| limiter.check_at("i", "a", t0, 1.0).is_ok()));
    }
}
