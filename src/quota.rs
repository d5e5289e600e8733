//! attrgate's own budget of Cognito calls: a token bucket per category (`user_update`,
//! `user_read`) and region, below Cognito's account quota. A call over the budget is
//! refused at once with the time to wait; nothing queues. Depends on `config` and
//! `metrics` only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use prometheus::{IntCounterVec, IntGaugeVec};

use crate::config::QuotaSettings;

/// Cognito's quota categories that attrgate calls into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Category {
    /// AdminUpdateUserAttributes.
    UserUpdate,
    /// AdminGetUser, AdminListGroupsForUser, DescribeUserPool.
    UserRead,
}

impl Category {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::UserUpdate => "user_update",
            Self::UserRead => "user_read",
        }
    }
}

/// The metrics of the budget: tokens left and refusals, by category.
#[derive(Clone)]
pub(crate) struct QuotaMetrics {
    pub(crate) tokens: IntGaugeVec,
    pub(crate) refusals: IntCounterVec,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub(crate) struct QuotaGuard {
    update_rate: f64,
    read_rate: f64,
    burst_seconds: f64,
    buckets: Mutex<HashMap<(Category, String), Bucket>>,
    metrics: Option<QuotaMetrics>,
}

impl QuotaGuard {
    /// Each replica keeps its share: rate / `replicas`.
    pub(crate) fn new(settings: &QuotaSettings, metrics: Option<QuotaMetrics>) -> Self {
        let replicas = f64::from(settings.replicas.max(1));
        Self {
            update_rate: settings.user_update_per_second / replicas,
            read_rate: settings.user_read_per_second / replicas,
            burst_seconds: settings.burst_seconds,
            buckets: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn rate(&self, category: Category) -> f64 {
        match category {
            Category::UserUpdate => self.update_rate,
            Category::UserRead => self.read_rate,
        }
    }

    /// Takes one call from the budget, or says how many whole seconds to wait.
    ///
    /// # Errors
    /// The budget is spent: the seconds until a call is allowed again (at least 1).
    pub(crate) fn take(&self, category: Category, region: &str) -> Result<(), u64> {
        self.take_at(category, region, Instant::now())
    }

    fn take_at(&self, category: Category, region: &str, now: Instant) -> Result<(), u64> {
        let rate = self.rate(category);
        let capacity = (rate * self.burst_seconds).max(1.0);
        let mut buckets = self.buckets.lock().expect("quota lock");
        // Regions come from validated pool ids (and `allowed_regions`); keep the map
        // bounded all the same.
        if buckets.len() >= 256 && !buckets.contains_key(&(category, region.to_owned())) {
            buckets.clear();
        }
        let bucket = buckets
            .entry((category, region.to_owned()))
            .or_insert(Bucket {
                tokens: capacity,
                at: now,
            });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        let result = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64;
            Err(wait)
        };
        if let Some(metrics) = &self.metrics {
            #[allow(clippy::cast_possible_truncation)]
            metrics
                .tokens
                .with_label_values(&[category.label()])
                .set(bucket.tokens.floor() as i64);
            if result.is_err() {
                metrics
                    .refusals
                    .with_label_values(&[category.label()])
                    .inc();
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn guard(update: f64, replicas: u32) -> QuotaGuard {
        QuotaGuard::new(
            &QuotaSettings {
                user_update_per_second: update,
                user_read_per_second: 100.0,
                burst_seconds: 1.0,
                replicas,
            },
            None,
        )
    }

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_the_wait_then_refills() {
        // Arrange
        let guard = guard(2.0, 1);
        let start = Instant::now();

        // Act
        let burst: Vec<_> = (0..3)
            .map(|_| guard.take_at(Category::UserUpdate, "us-east-1", start))
            .collect();
        let later = guard.take_at(
            Category::UserUpdate,
            "us-east-1",
            start + Duration::from_millis(600),
        );

        // Assert
        assert_eq!(burst, [Ok(()), Ok(()), Err(1)]);
        assert_eq!(later, Ok(()));
    }

    #[test]
    fn categories_and_regions_have_budgets_of_their_own() {
        // Arrange
        let guard = guard(1.0, 1);
        let now = Instant::now();
        guard
            .take_at(Category::UserUpdate, "us-east-1", now)
            .unwrap();

        // Act / Assert
        assert!(
            guard
                .take_at(Category::UserUpdate, "us-east-1", now)
                .is_err()
        );
        assert!(
            guard
                .take_at(Category::UserUpdate, "eu-west-1", now)
                .is_ok()
        );
        assert!(guard.take_at(Category::UserRead, "us-east-1", now).is_ok());
    }

    #[test]
    fn each_replica_keeps_its_share_of_the_rate() {
        // Arrange: 20/s shared by 4 replicas is 5/s each, a burst of 5.
        let guard = guard(20.0, 4);
        let now = Instant::now();

        // Act
        let allowed = (0..20)
            .filter(|_| {
                guard
                    .take_at(Category::UserUpdate, "us-east-1", now)
                    .is_ok()
            })
            .count();

        // Assert
        assert_eq!(allowed, 5);
    }
}
