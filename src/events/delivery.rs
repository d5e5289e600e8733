//! One sink's delivery task: reads the log from the sink's cursor, turns records into
//! events, delivers them in order with capped, jittered backoff, and moves the cursor
//! (fsync'ed) only after the sink acknowledged the batch. Runs beside the server, never
//! on a request's path.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use rand_core::RngCore;
use serde_json::Value;
use tokio::sync::watch;

use super::cloud::{Types, event_of};
use super::cursor::{self, Cursor};
use super::outgoing::Outgoing;
use super::sink::Sink;
use super::tail::LogReader;

/// The first wait after a failure; it doubles up to `events.max_backoff_seconds`.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long an idle task waits for news from the writer before it looks again.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What `/readyz` and the metrics show of one sink.
pub(crate) struct SinkStatus {
    pub name: String,
    pub kind: &'static str,
    next_seq: AtomicU64,
    delivered: AtomicU64,
    missing: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl SinkStatus {
    pub(crate) fn new(name: &str, kind: &'static str, next_seq: u64) -> Self {
        Self {
            name: name.to_owned(),
            kind,
            next_seq: AtomicU64::new(next_seq),
            delivered: AtomicU64::new(0),
            missing: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// The `seq` of the next record this sink has to consider.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// Records below `head` (the writer's durable mark) this sink has not gone past.
    pub(crate) fn lag(&self, head: u64) -> u64 {
        head.saturating_sub(self.next_seq())
    }

    /// Events acknowledged by the sink since start-up.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Records that were due but no longer in the log (deleted by hand).
    pub(crate) fn missing(&self) -> u64 {
        self.missing.load(Ordering::Acquire)
    }

    /// The last failure, until a delivery succeeds.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("status lock").clone()
    }

    fn failed(&self, error: String) {
        *self.last_error.lock().expect("status lock") = Some(error);
    }

    fn succeeded(&self) {
        *self.last_error.lock().expect("status lock") = None;
    }
}

/// The metrics of one sink.
pub(crate) struct SinkMetrics {
    pub delivered: IntCounter,
    pub failures: IntCounter,
    pub lag: IntGauge,
}

/// Capped exponential backoff with jitter: a wait between half and all of
/// `min(cap, FIRST_BACKOFF * 2^attempt)`.
pub(crate) fn backoff(attempt: u32, cap: Duration) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(cap);
    let half = full / 2;
    let jitter =
        u64::from(rand_core::OsRng.next_u32()) * half.as_micros() as u64 / u64::from(u32::MAX);
    half + Duration::from_micros(jitter)
}

/// Delivers `pending` in order, trying again after each failure until all are
/// acknowledged; `give_up_after` bounds the tries (`None`: never give up).
pub(crate) async fn deliver_all(
    sink: &Sink,
    mut pending: Vec<Outgoing>,
    cap: Duration,
    give_up_after: Option<u32>,
    mut on_failure: impl FnMut(&str),
) -> Result<(), String> {
    let mut attempt = 0;
    while !pending.is_empty() {
        match sink.deliver(&mut pending).await {
            Ok(()) => {}
            Err(error) => {
                on_failure(&error);
                attempt += 1;
                if give_up_after.is_some_and(|limit| attempt >= limit) {
                    return Err(error);
                }
                tokio::time::sleep(backoff(attempt - 1, cap)).await;
            }
        }
    }
    Ok(())
}

/// The events among `records`, ready to send.
pub(crate) fn outgoing(records: &[Value], types: Types, replica: &str) -> Vec<Outgoing> {
    records
        .iter()
        .filter_map(|record| event_of(record, types, replica))
        .map(|event| Outgoing::new(&event))
        .collect()
}

pub(crate) struct Delivery {
    pub sink: Sink,
    pub status: Arc<SinkStatus>,
    pub metrics: SinkMetrics,
    pub reader: LogReader,
    pub cursor_path: PathBuf,
    pub replica: String,
    pub types: Types,
    pub batch_records: usize,
    pub max_backoff: Duration,
    pub durable: watch::Receiver<u64>,
}

impl Delivery {
    /// Runs for the life of the process.
    pub(crate) async fn run(self) {
        let Self {
            sink,
            status,
            metrics,
            reader,
            cursor_path,
            replica,
            types,
            batch_records,
            max_backoff,
            mut durable,
        } = self;
        let mut reader = Some(reader);
        let mut read_failures = 0;
        let mut empty_reads = 0;
        loop {
            let until = *durable.borrow_and_update();
            let lag = status.lag(until);
            metrics.lag.set(i64::try_from(lag).unwrap_or(i64::MAX));
            if lag == 0 {
                if let Ok(Err(_)) = tokio::time::timeout(IDLE_POLL, durable.changed()).await {
                    // The writer has stopped: nothing more will come; look now and then.
                    tokio::time::sleep(IDLE_POLL).await;
                }
                continue;
            }
            let mut taken = reader
                .take()
                .expect("the reader is put back after every read");
            let (taken, read) = tokio::task::spawn_blocking(move || {
                let read = taken.read(until, batch_records);
                (taken, read)
            })
            .await
            .expect("the log reader does not panic");
            reader = Some(taken);
            let records = match read {
                Ok(records) => {
                    read_failures = 0;
                    records
                }
                Err(error) => {
                    let error = format!("cannot read the audit log: {error}");
                    tracing::error!(sink = %status.name, %error, "change events wait");
                    status.failed(error);
                    metrics.failures.inc();
                    read_failures += 1;
                    tokio::time::sleep(backoff(read_failures - 1, max_backoff)).await;
                    continue;
                }
            };
            if records.is_empty() {
                // Durable records not yet visible (a rotation in progress), or gone (files
                // deleted while the writer is idle): look again, less often each time.
                empty_reads += 1;
                tokio::time::sleep(
                    Duration::from_millis(20)
                        .saturating_mul(1 << empty_reads.min(6))
                        .min(IDLE_POLL),
                )
                .await;
                continue;
            }
            empty_reads = 0;
            let events = outgoing(&records, types, &replica);
            let count = events.len() as u64;
            let _ = deliver_all(&sink, events, max_backoff, None, |error| {
                tracing::warn!(sink = %status.name, %error, "change event delivery failed; trying again");
                metrics.failures.inc();
                status.failed(error.to_owned());
            })
            .await;
            status.succeeded();
            let reader = reader.as_ref().expect("put back above");
            let moved = Cursor {
                replica: replica.clone(),
                next_seq: reader.next_seq(),
                last_hash: reader.last_hash().map(str::to_owned),
            };
            let path = cursor_path.clone();
            let saved = tokio::task::spawn_blocking(move || cursor::save(&path, &moved))
                .await
                .expect("saving the cursor does not panic");
            if let Err(error) = saved {
                // The events are delivered; a restart would send them again (at least once).
                tracing::error!(sink = %status.name, error = %crate::report::chain(&error), "cannot save the change events cursor");
                status.failed(format!("cannot save the cursor: {error}"));
            }
            status.next_seq.store(reader.next_seq(), Ordering::Release);
            status.missing.store(reader.missing(), Ordering::Release);
            status.delivered.fetch_add(count, Ordering::AcqRel);
            metrics.delivered.inc_by(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_never_waits_less_than_half() {
        let cap = Duration::from_secs(5);
        for attempt in 0..40 {
            let full = FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(attempt.min(20)))
                .min(cap);
            let wait = backoff(attempt, cap);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
        assert_eq!(
            FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(30))
                .min(cap),
            cap
        );
    }
}
