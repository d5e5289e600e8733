//! attrgate's own budget of Cognito calls: a token bucket per category (`user_update`,
//! `user_read`) and region, below Cognito's account quota. A call over the budget is
//! refused at once with the time to wait; nothing queues. With `redis_url`, every replica
//! draws from one budget in Redis (`shared_budget`); without it, or while Redis does not
//! answer, each keeps its local share, rate / `replicas`. Depends on `config` and
//! `shared_budget` only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::{IntCounterVec, IntGaugeVec};

use crate::config::QuotaSettings;
use crate::shared_budget::{SharedBudget, Unavailable};

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

/// The local buckets, and the shared budget's epoch they were started in: after the
/// shared budget is lost they start empty, since the shared one may just have been spent.
struct LocalBuckets {
    epoch: u64,
    start_empty: bool,
    buckets: HashMap<(Category, String), Bucket>,
}

pub(crate) struct QuotaGuard {
    update_rate: f64,
    read_rate: f64,
    burst_seconds: f64,
    replicas: f64,
    local: Mutex<LocalBuckets>,
    shared: Option<Arc<SharedBudget>>,
    metrics: Option<QuotaMetrics>,
}

impl QuotaGuard {
    /// A guard of this replica's own: rate / `replicas`.
    pub(crate) fn new(settings: &QuotaSettings, metrics: Option<QuotaMetrics>) -> Self {
        Self {
            update_rate: settings.user_update_per_second,
            read_rate: settings.user_read_per_second,
            burst_seconds: settings.burst_seconds,
            replicas: f64::from(settings.replicas.max(1)),
            local: Mutex::new(LocalBuckets {
                epoch: 0,
                start_empty: false,
                buckets: HashMap::new(),
            }),
            shared: None,
            metrics,
        }
    }

    /// Draws from `shared` while it answers, and from the local share otherwise.
    #[must_use]
    pub(crate) fn shared(mut self, shared: Arc<SharedBudget>) -> Self {
        self.shared = Some(shared);
        self
    }

    /// The whole fleet's rate for `category`.
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
    pub(crate) async fn take(&self, category: Category, region: &str) -> Result<(), u64> {
        let mut epoch = None;
        if let Some(shared) = &self.shared {
            let rate = self.rate(category);
            let key = format!("attrgate:quota:{}:{region}", category.label());
            match shared
                .take(&key, rate, capacity(rate, self.burst_seconds))
                .await
            {
                Ok(answer) => {
                    self.count(category, None, answer.is_err());
                    return answer;
                }
                Err(Unavailable { epoch: lost }) => epoch = Some(lost),
            }
        }
        self.take_at(category, region, Instant::now(), epoch)
    }

    /// From the local share. `epoch`: the shared budget's, when it was just unavailable.
    fn take_at(
        &self,
        category: Category,
        region: &str,
        now: Instant,
        epoch: Option<u64>,
    ) -> Result<(), u64> {
        let rate = self.rate(category) / self.replicas;
        let capacity = capacity(rate, self.burst_seconds);
        let mut local = self.local.lock().expect("quota lock");
        if let Some(epoch) = epoch.filter(|epoch| *epoch != local.epoch) {
            *local = LocalBuckets {
                epoch,
                start_empty: true,
                buckets: HashMap::new(),
            };
        }
        let start = if local.start_empty { 0.0 } else { capacity };
        let buckets = &mut local.buckets;
        // Regions come from validated pool ids (and `allowed_regions`); keep the map
        // bounded all the same.
        if buckets.len() >= 256 && !buckets.contains_key(&(category, region.to_owned())) {
            buckets.clear();
        }
        let bucket = buckets
            .entry((category, region.to_owned()))
            .or_insert(Bucket {
                tokens: start,
                at: now,
            });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        let result = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64;
            Err(wait)
        };
        self.count(category, Some(bucket.tokens), result.is_err());
        result
    }

    /// Metrics: the local tokens left (when known) and a refusal.
    fn count(&self, category: Category, tokens: Option<f64>, refused: bool) {
        if let Some(metrics) = &self.metrics {
            if let Some(tokens) = tokens {
                metrics
                    .tokens
                    .with_label_values(&[category.label()])
                    .set(tokens.floor() as i64);
            }
            if refused {
                metrics
                    .refusals
                    .with_label_values(&[category.label()])
                    .inc();
            }
        }
    }
}

/// A bucket holds `burst_seconds` of rate, and at least one call.
fn capacity(rate: f64, burst_seconds: f64) -> f64 {
    (rate * burst_seconds).max(1.0)
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
                redis_url: None,
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
            .map(|_| guard.take_at(Category::UserUpdate, "us-east-1", start, None))
            .collect();
        let later = guard.take_at(
            Category::UserUpdate,
            "us-east-1",
            start + Duration::from_millis(600),
            None,
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
            .take_at(Category::UserUpdate, "us-east-1", now, None)
            .unwrap();

        // Act / Assert
        assert!(
            guard
                .take_at(Category::UserUpdate, "us-east-1", now, None)
                .is_err()
        );
        assert!(
            guard
                .take_at(Category::UserUpdate, "eu-west-1", now, None)
                .is_ok()
        );
        assert!(
            guard
                .take_at(Category::UserRead, "us-east-1", now, None)
                .is_ok()
        );
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
                    .take_at(Category::UserUpdate, "us-east-1", now, None)
                    .is_ok()
            })
            .count();

        // Assert
        assert_eq!(allowed, 5);
    }

    #[test]
    fn after_the_shared_budget_is_lost_the_local_share_starts_empty_and_refills_at_its_rate() {
        // Arrange: 20/s for 4 replicas is 5/s each; a full local bucket allows 5 at once.
        let guard = guard(20.0, 4);
        let now = Instant::now();

        // Act: the shared budget was lost (epoch 1).
        let at_once = (0..5)
            .filter(|_| {
                guard
                    .take_at(Category::UserUpdate, "us-east-1", now, Some(1))
                    .is_ok()
            })
            .count();
        let later = guard.take_at(
            Category::UserUpdate,
            "us-east-1",
            now + Duration::from_millis(210),
            Some(1),
        );

        // Assert
        assert_eq!(at_once, 0);
        assert_eq!(later, Ok(()));
    }
}
