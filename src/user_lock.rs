//! One writer per user: a lock per `(pool, username)` held around the read of the
//! target's facts (or of its ETag), the decision and the write, so that no other change
//! made through attrgate falls between them. In one process an async mutex per user;
//! with a shared Redis, also a Redis lock (`SET NX PX` with a random token, released by
//! compare-and-delete), so that replicas serialise too. Redis not answering: the local
//! lock only (and `/readyz` says so through the shared budget's mode).
//! Depends on `shared_budget` only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::OwnedMutexGuard;

use crate::shared_budget::SharedBudget;

/// How often a request waiting for a user held in Redis asks again.
const POLL: Duration = Duration::from_millis(20);

/// Deletes the lock only if it still holds this request's token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// Gives the lock a new lifetime (ARGV[2] ms) only if it still holds this request's
/// token: 1 when renewed, 0 when it expired or another request holds it now.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

type Slot = Arc<tokio::sync::Mutex<()>>;

/// The locks of every user this replica is changing now.
pub(crate) struct UserLocks {
    local: Arc<Mutex<HashMap<String, Slot>>>,
    shared: Option<Arc<SharedBudget>>,
    /// How long a request waits for a user another request holds.
    wait: Duration,
    /// How long a Redis lock lives if its holder never releases it (a crash).
    ttl: Duration,
}

/// Another request held the user for longer than the wait: retry after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy {
    pub(crate) retry_after_secs: u64,
}

/// A held user lock: `release` lets it go (the Redis part first, awaited); dropping it
/// does the same, the Redis part in a task of its own.
pub(crate) struct UserGuard {
    key: String,
    /// `None` once dropped (inside the map's lock, so that the count is exact).
    slot: Option<Slot>,
    held: Option<OwnedMutexGuard<()>>,
    local: Arc<Mutex<HashMap<String, Slot>>>,
    /// The Redis lock, when one is held.
    shared: Option<SharedHold>,
}

/// A lock held in Redis: the budget (for its connection), key, token and lifetime.
struct SharedHold {
    budget: Arc<SharedBudget>,
    key: String,
    token: String,
    ttl_ms: u64,
}

impl UserLocks {
    pub(crate) fn new(shared: Option<Arc<SharedBudget>>, wait: Duration, ttl: Duration) -> Self {
        Self {
            local: Arc::default(),
            shared,
            wait,
            ttl,
        }
    }

    /// Holds `(pool, username)` for this request, waiting at most `user_lock_wait_ms`.
    ///
    /// # Errors
    /// `Busy` when another request held the user for the whole wait.
    pub(crate) async fn acquire(&self, pool: &str, username: &str) -> Result<UserGuard, Busy> {
        let deadline = Instant::now() + self.wait;
        let key = format!("{pool}\u{1f}{username}");
        let slot = {
            let mut local = self
                .local
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            local.entry(key.clone()).or_default().clone()
        };
        let mut guard = UserGuard {
            key,
            slot: Some(slot.clone()),
            held: None,
            local: self.local.clone(),
            shared: None,
        };
        guard.held = Some(
            tokio::time::timeout_at(deadline.into(), slot.lock_owned())
                .await
                .map_err(|_| self.busy())?,
        );
        if let Some(shared) = &self.shared {
            let redis_key = format!("attrgate:user-lock:{pool}:{username}");
            let token = uuid::Uuid::new_v4().to_string();
            if self
                .lock_in_redis(shared, &redis_key, &token, deadline)
                .await?
            {
                guard.shared = Some(SharedHold {
                    budget: shared.clone(),
                    key: redis_key,
                    token,
                    ttl_ms: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
                });
            }
        }
        Ok(guard)
    }

    /// Held for the whole wait: retry after about as long again.
    fn busy(&self) -> Busy {
        Busy {
            retry_after_secs: self.wait.as_secs().max(1),
        }
    }

    /// `SET key token NX PX ttl` until it is set or the deadline passes. `Ok(false)`:
    /// Redis does not answer, and the local lock alone holds the user.
    async fn lock_in_redis(
        &self,
        shared: &SharedBudget,
        key: &str,
        token: &str,
        deadline: Instant,
    ) -> Result<bool, Busy> {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        loop {
            let Some(mut connection) = shared.connection() else {
                return Ok(false);
            };
            let mut set = redis::cmd("SET");
            set.arg(key).arg(token).arg("NX").arg("PX").arg(ttl_ms);
            let answer = tokio::time::timeout(
                SharedBudget::TIMEOUT,
                set.query_async::<Option<String>>(&mut connection),
            )
            .await;
            match answer {
                Ok(Ok(Some(_))) => return Ok(true),
                Ok(Ok(None)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Redis refused the user lock; using the local lock only");
                    shared.report_unavailable();
                    return Ok(false);
                }
                Err(_) => {
                    tracing::warn!(
                        "Redis did not answer the user lock in time; using the local lock only"
                    );
                    shared.report_unavailable();
                    return Ok(false);
                }
            }
            if Instant::now() + POLL >= deadline {
                return Err(self.busy());
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl UserGuard {
    /// Gives the Redis lock a new lifetime from now, just before the write, so that it
    /// cannot expire while Cognito is called (the call is bounded by the same timeout).
    ///
    /// # Errors
    /// The lock expired, or another request holds it now: nothing may be written.
    /// Redis not answering is not an error: the local lock still holds the user.
    pub(crate) async fn renew(&self) -> Result<(), Busy> {
        let Some(hold) = &self.shared else {
            return Ok(());
        };
        let Some(mut connection) = hold.budget.connection() else {
            return Ok(());
        };
        let renew = redis::Script::new(RENEW);
        let mut call = renew.key(&hold.key);
        call.arg(&hold.token).arg(hold.ttl_ms);
        let answer = tokio::time::timeout(
            SharedBudget::TIMEOUT,
            call.invoke_async::<i64>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok(1)) => Ok(()),
            Ok(Ok(_)) => {
                tracing::warn!("the Redis user lock expired before the write; refusing it");
                Err(Busy {
                    retry_after_secs: 1,
                })
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "Redis refused to renew the user lock; using the local lock only");
                hold.budget.report_unavailable();
                Ok(())
            }
            Err(_) => {
                hold.budget.report_unavailable();
                Ok(())
            }
        }
    }

    /// Lets the user go: the Redis lock first (awaited, so that the next request in
    /// any replica finds it free), then the local one.
    pub(crate) async fn release(mut self) {
        if let Some(hold) = self.shared.take() {
            hold.release().await;
        }
    }
}

impl SharedHold {
    async fn release(self) {
        let Some(mut connection) = self.budget.connection() else {
            return;
        };
        let release = redis::Script::new(RELEASE);
        let mut call = release.key(&self.key);
        call.arg(&self.token);
        let answer = tokio::time::timeout(
            SharedBudget::TIMEOUT,
            call.invoke_async::<i64>(&mut connection),
        )
        .await;
        if !matches!(answer, Ok(Ok(_))) {
            // It expires by itself after its lifetime.
            tracing::warn!("the Redis user lock was not released; it expires by itself");
        }
    }
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        drop(self.held.take());
        {
            let mut local = self
                .local
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if let Some(slot) = self.slot.take() {
                drop(slot);
                // Only the map's: nobody holds or waits for this user.
                if local
                    .get(&self.key)
                    .is_some_and(|slot| Arc::strong_count(slot) == 1)
                {
                    local.remove(&self.key);
                }
            }
        }
        if let Some(hold) = self.shared.take() {
            tokio::spawn(hold.release());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::UserLocks;

    #[tokio::test]
    async fn a_second_request_for_the_same_user_waits_and_then_gets_busy() {
        let locks = UserLocks::new(None, Duration::from_millis(50), Duration::from_secs(1));
        let held = locks.acquire("p_1", "ann").await.expect("free");

        let other_user = locks.acquire("p_1", "bob").await;
        let same_user = locks.acquire("p_1", "ann").await;

        assert!(other_user.is_ok(), "another user is not held");
        assert_eq!(same_user.err().map(|busy| busy.retry_after_secs), Some(1));
        drop(held);
        assert!(
            locks.acquire("p_1", "ann").await.is_ok(),
            "released on drop"
        );
    }

    #[tokio::test]
    async fn a_released_user_leaves_no_entry_behind() {
        let locks = UserLocks::new(None, Duration::from_millis(50), Duration::from_secs(1));

        drop(locks.acquire("p_1", "ann").await.expect("free"));

        assert!(locks.local.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_waiter_gets_the_user_as_soon_as_the_holder_lets_go() {
        let locks = std::sync::Arc::new(UserLocks::new(
            None,
            Duration::from_secs(5),
            Duration::from_secs(1),
        ));
        let held = locks.acquire("p_1", "ann").await.expect("free");
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.acquire("p_1", "ann").await.is_ok() })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits while the user is held");

        drop(held);

        assert!(waiter.await.unwrap());
    }
}
