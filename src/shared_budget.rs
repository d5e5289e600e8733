//! One budget shared by every replica, kept in Redis (or Valkey): GCRA in one Lua script,
//! run with EVALSHA on a `ConnectionManager`, one round trip per admitted call, under a
//! short timeout. When Redis cannot answer, the caller is told so at once and keeps its
//! local share; a background probe brings the shared budget back when Redis answers
//! again. Depends on nothing else in attrgate.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use prometheus::IntGaugeVec;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long one call to Redis may take before the replica uses its local share.
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// How often the probe asks Redis whether it answers (`PING`).
const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// The generic cell rate algorithm, atomic in Redis. The clock is Redis's own (`TIME`),
/// so replicas with skewed clocks still share one budget.
///
/// KEYS[1]: the budget. ARGV[1]: microseconds between calls (1e6 / rate). ARGV[2]: burst
/// tolerance in microseconds ((capacity - 1) x interval). Returns 0 when the call is
/// admitted, else the microseconds until one would be.
const GCRA: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then tat = math.max(tonumber(stored), now) end
local allow_at = tat - tolerance
if now < allow_at then return math.ceil(allow_at - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return 0
";

/// Which budget this replica draws from now, as `/readyz` and `attrgate_quota_backend`
/// say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// No `redis_url`: this replica's share, rate / replicas.
    Local,
    /// The one budget in Redis.
    Shared,
    /// `redis_url` is set but Redis does not answer: rate / replicas until it does.
    LocalFallback,
}

impl Mode {
    const ALL: [Self; 3] = [Self::Local, Self::Shared, Self::LocalFallback];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Shared => "shared",
            Self::LocalFallback => "local-fallback",
        }
    }
}

/// Redis did not answer; use the local share. `epoch` changes each time the shared
/// budget is lost, so that local buckets can start empty after a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable {
    pub(crate) epoch: u64,
}

pub(crate) struct SharedBudget {
    connection: ConnectionManager,
    script: redis::Script,
    healthy: AtomicBool,
    epoch: AtomicU64,
    mode_gauge: Option<IntGaugeVec>,
}

impl SharedBudget {
    /// Connects lazily: start-up does not wait for Redis, and a Redis that is down at
    /// start is a fallback like any other.
    ///
    /// # Errors
    /// The URL is not a Redis URL this build can use.
    pub(crate) fn connect(
        url: &str,
        mode_gauge: Option<IntGaugeVec>,
    ) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let budget = Self {
            connection,
            script: redis::Script::new(GCRA),
            // Optimistic until the first call or probe says otherwise; a failing first
            // call falls back at once.
            healthy: AtomicBool::new(true),
            epoch: AtomicU64::new(0),
            mode_gauge,
        };
        budget.show(Mode::Shared);
        Ok(budget)
    }

    pub(crate) fn mode(&self) -> Mode {
        if self.healthy.load(Ordering::Acquire) {
            Mode::Shared
        } else {
            Mode::LocalFallback
        }
    }

    /// Takes one call from the budget `key` (`rate` per second, `capacity` calls of
    /// burst), or says how many whole seconds to wait.
    ///
    /// # Errors
    /// Redis is not answering (now, or at the last probe): the caller uses its local share.
    pub(crate) async fn take(
        &self,
        key: &str,
        rate: f64,
        capacity: f64,
    ) -> Result<Result<(), u64>, Unavailable> {
        if !self.healthy.load(Ordering::Acquire) {
            return Err(self.unavailable());
        }
        let interval = (1e6 / rate).max(1.0);
        let tolerance = (capacity - 1.0).max(0.0) * interval;
        let mut connection = self.connection.clone();
        let mut call = self.script.key(key);
        // Whole microseconds: Lua parses them exactly.
        call.arg(interval.round() as u64)
            .arg(tolerance.round() as u64);
        let answer =
            tokio::time::timeout(REDIS_TIMEOUT, call.invoke_async::<u64>(&mut connection)).await;
        match answer {
            Ok(Ok(0)) => Ok(Ok(())),
            Ok(Ok(wait_micros)) => Ok(Err(wait_micros.div_ceil(1_000_000).max(1))),
            Ok(Err(error)) => {
                tracing::warn!(%error, "Redis refused the shared budget call; using the local share");
                Err(self.lose())
            }
            Err(_) => {
                tracing::warn!("Redis did not answer in time; using the local share");
                Err(self.lose())
            }
        }
    }

    fn unavailable(&self) -> Unavailable {
        Unavailable {
            epoch: self.epoch.load(Ordering::Acquire),
        }
    }

    /// The connection, for the other shared state kept in the same Redis (the user
    /// locks), while Redis answers; `None` while it does not.
    pub(crate) fn connection(&self) -> Option<ConnectionManager> {
        self.healthy
            .load(Ordering::Acquire)
            .then(|| self.connection.clone())
    }

    /// The most one call to Redis may take.
    pub(crate) const TIMEOUT: Duration = REDIS_TIMEOUT;

    /// Marks Redis as not answering (another user of the connection saw it fail).
    pub(crate) fn report_unavailable(&self) {
        self.lose();
    }

    /// Marks Redis as not answering; a new epoch if it was answering until now.
    fn lose(&self) -> Unavailable {
        if self.healthy.swap(false, Ordering::AcqRel) {
            self.epoch.fetch_add(1, Ordering::AcqRel);
            self.show(Mode::LocalFallback);
        }
        self.unavailable()
    }

    fn show(&self, mode: Mode) {
        if let Some(gauge) = &self.mode_gauge {
            show_mode(gauge, mode);
        }
    }

    /// One `PING`: decides whether calls go to Redis.
    async fn probe(&self) {
        let mut connection = self.connection.clone();
        let ping = redis::cmd("PING");
        let answer =
            tokio::time::timeout(REDIS_TIMEOUT, ping.query_async::<String>(&mut connection)).await;
        match answer {
            Ok(Ok(_)) => {
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!("Redis answers again; back on the shared budget");
                    self.show(Mode::Shared);
                }
            }
            Ok(Err(error)) => {
                if self.healthy.load(Ordering::Acquire) {
                    tracing::warn!(%error, "Redis does not answer; using the local share");
                }
                self.lose();
            }
            Err(_) => {
                self.lose();
            }
        }
    }

    /// Probes Redis every half second for as long as the process runs.
    pub(crate) fn spawn_probe(self: &Arc<Self>) {
        let budget = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_INTERVAL).await;
                let Some(budget) = budget.upgrade() else {
                    return;
                };
                budget.probe().await;
            }
        });
    }
}

/// Sets `attrgate_quota_backend{mode}`: 1 for `mode`, 0 for the others.
pub(crate) fn show_mode(gauge: &IntGaugeVec, mode: Mode) {
    for each in Mode::ALL {
        gauge
            .with_label_values(&[each.label()])
            .set(i64::from(each == mode));
    }
}

/// Which budget the Cognito quota guard draws from, for `/readyz`.
pub(crate) struct QuotaStatus(Option<Arc<SharedBudget>>);

impl QuotaStatus {
    pub(crate) fn new(shared: Option<Arc<SharedBudget>>) -> Self {
        Self(shared)
    }

    pub(crate) fn mode(&self) -> Mode {
        self.0.as_ref().map_or(Mode::Local, |shared| shared.mode())
    }
}
