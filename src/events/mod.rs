//! Change events: the audit log is the outbox. One delivery task per sink tails the log
//! from the sink's cursor and delivers each `updated` record (and `denied`, when
//! configured) as a CloudEvents 1.0 event, at least once, in `seq` order, off the
//! request path. See docs/events.md.
//!
//! Depends on the audit log's files and its durable head, the settings and the metrics;
//! never on HTTP routes, the policy or Cognito.

mod cloud;
mod cursor;
mod delivery;
mod eventbridge;
mod outgoing;
mod sink;
mod tail;
mod webhook;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use tokio::sync::watch;

use crate::config::Settings;
use crate::metrics::Metrics;
use cloud::Types;
use delivery::{Delivery, SinkMetrics, SinkStatus, deliver_all, outgoing};
pub(crate) use sink::Secrets;
use sink::Sink;
use tail::LogReader;

/// How many tries `events replay` gives one batch before it fails.
const REPLAY_TRIES: u32 = 5;

/// What `/readyz` shows of one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SinkReport {
    pub name: String,
    pub kind: &'static str,
    /// Records in the log that this sink has not gone past yet.
    pub lag_records: u64,
    /// The `seq` of the next record it will consider.
    pub next_seq: u64,
    /// Events acknowledged since start-up.
    pub delivered: u64,
    /// Records that were due but had been deleted from the log.
    pub missing: u64,
    /// The last failure, until a delivery succeeds.
    pub last_error: Option<String>,
}

/// The sinks' progress, for `/readyz`.
#[derive(Clone)]
pub(crate) struct EventsStatus {
    sinks: Vec<Arc<SinkStatus>>,
    durable: watch::Receiver<u64>,
}

impl EventsStatus {
    pub(crate) fn report(&self) -> Vec<SinkReport> {
        let head = *self.durable.borrow();
        self.sinks
            .iter()
            .map(|sink| SinkReport {
                name: sink.name.clone(),
                kind: sink.kind,
                lag_records: sink.lag(head),
                next_seq: sink.next_seq(),
                delivered: sink.delivered(),
                missing: sink.missing(),
                last_error: sink.last_error(),
            })
            .collect()
    }
}

/// Builds every sink, reads (or makes) its cursor, and starts its delivery task.
/// Must run inside the Tokio runtime.
///
/// # Errors
/// A sink cannot be built (a missing or invalid secret), or a cursor cannot be read,
/// belongs to another replica, or is ahead of the log (the log was replaced).
pub(crate) fn start(
    settings: &Settings,
    durable: watch::Receiver<u64>,
    metrics: &Metrics,
    aws: &SdkConfig,
    secrets: Secrets<'_>,
) -> Result<EventsStatus, String> {
    let events = &settings.events;
    let replica = settings.audit.replica();
    let types = Types::from_names(&events.types);
    let head = *durable.borrow();
    let mut tasks = Vec::new();
    let mut sinks = Vec::new();
    for sink_settings in &events.sinks {
        let name = &sink_settings.name;
        let sink = Sink::build(sink_settings, aws, secrets)?;
        let cursor_path = cursor::cursor_path(&settings.audit.path, name);
        let next_seq = resume_at(&settings.audit.path, &cursor_path, name, &replica, head)?;
        let status = Arc::new(SinkStatus::new(name, sink_settings.kind(), next_seq));
        sinks.push(status.clone());
        tasks.push(Delivery {
            sink,
            status,
            metrics: SinkMetrics {
                delivered: metrics.events_delivered.with_label_values(&[name]),
                failures: metrics.events_failures.with_label_values(&[name]),
                lag: metrics.events_lag.with_label_values(&[name]),
            },
            reader: LogReader::new(&settings.audit.path, next_seq),
            cursor_path,
            replica: replica.clone(),
            types,
            batch_records: events.batch_records,
            max_backoff: Duration::from_secs(events.max_backoff_seconds),
            durable: durable.clone(),
        });
    }
    for task in tasks {
        tokio::spawn(task.run());
    }
    Ok(EventsStatus { sinks, durable })
}

/// Where sink `name` resumes: its cursor, checked against the log (the same replica,
/// not beyond the log's end, and the record before it has the hash the cursor names);
/// for a new sink, the end of the log, with the cursor written before any request.
fn resume_at(
    audit_path: &std::path::Path,
    cursor_path: &std::path::Path,
    name: &str,
    replica: &str,
    head: u64,
) -> Result<u64, String> {
    let replaced = |what: String| {
        format!(
            "{}: the cursor of sink {name} {what}: the log was replaced. Move the cursor away to start at the log's end, and resend with `attrgate events replay`",
            cursor_path.display()
        )
    };
    let Some(found) = cursor::load(cursor_path)? else {
        let fresh = cursor::Cursor {
            replica: replica.to_owned(),
            next_seq: head,
            last_hash: None,
        };
        cursor::save(cursor_path, &fresh)
            .map_err(|error| format!("cannot write {}: {error}", cursor_path.display()))?;
        return Ok(head);
    };
    if found.replica != replica {
        return Err(format!(
            "{}: the cursor of sink {name} walks replica {}'s log, not {replica}'s",
            cursor_path.display(),
            found.replica
        ));
    }
    if found.next_seq > head {
        return Err(replaced(format!(
            "is at seq {}, beyond the end of the audit log ({head})",
            found.next_seq
        )));
    }
    if let (Some(expected), Some(before)) = (&found.last_hash, found.next_seq.checked_sub(1)) {
        let mut reader = LogReader::new(audit_path, before);
        let record = reader
            .read(found.next_seq, 1)
            .map_err(|error| format!("cannot read {}: {error}", audit_path.display()))?;
        let hash = record
            .first()
            .filter(|r| cloud::seq_of(r) == Some(before))
            .and_then(|r| r.get("hash"))
            .and_then(serde_json::Value::as_str);
        match hash {
            Some(hash) if hash != expected => {
                return Err(replaced(format!(
                    "names record {before} with hash {expected}, but the log's record {before} has {hash}"
                )));
            }
            // Deleted by retention: nothing to compare.
            None => tracing::warn!(
                sink = name,
                seq = before,
                "the record before the cursor is no longer in the log; not checked"
            ),
            Some(_) => {}
        }
    }
    Ok(found.next_seq)
}

/// Where `events replay` starts: `<replica>:<seq>`.
///
/// # Errors
/// Not of that form.
pub fn parse_position(text: &str) -> Result<(String, u64), String> {
    let (replica, seq) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("--from {text:?} is not <replica>:<seq>"))?;
    let seq = seq
        .parse()
        .map_err(|_| format!("--from {text:?}: {seq:?} is not a seq number"))?;
    if replica.is_empty() {
        return Err(format!("--from {text:?} names no replica"));
    }
    Ok((replica.to_owned(), seq))
}

/// What `events replay` did.
pub struct Replayed {
    pub events: u64,
    pub records: u64,
}

/// Resends the events of the log from `from` (`<replica>:<seq>`) to its end to sink
/// `sink_name`, or with `dry_run` writes them to `out`, one JSON line each. The sink's
/// cursor is not moved.
///
/// # Errors
/// The sink is not configured, the position names another replica, the log cannot be
/// read, or the sink refused a batch five times.
pub async fn replay(
    settings: &Settings,
    aws: &SdkConfig,
    secrets: Secrets<'_>,
    sink_name: &str,
    from: &str,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<Replayed, String> {
    let (replica, seq) = parse_position(from)?;
    let own = settings.audit.replica();
    if replica != own {
        return Err(format!(
            "--from names replica {replica}, but this config's log ({}) is replica {own}'s",
            settings.audit.path.display()
        ));
    }
    let sink_settings = settings
        .events
        .sinks
        .iter()
        .find(|sink| sink.name == sink_name)
        .ok_or_else(|| {
            let names: Vec<&str> = settings
                .events
                .sinks
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            format!(
                "no sink named {sink_name:?} in events.sinks (configured: {})",
                names.join(", ")
            )
        })?;
    let sink = if dry_run {
        None
    } else {
        Some(Sink::build(sink_settings, aws, secrets)?)
    };
    let types = Types::from_names(&settings.events.types);
    let cap = Duration::from_secs(settings.events.max_backoff_seconds);
    let mut reader = LogReader::new(&settings.audit.path, seq);
    let mut replayed = Replayed {
        events: 0,
        records: 0,
    };
    loop {
        let records = reader
            .read(u64::MAX, settings.events.batch_records)
            .map_err(|error| format!("cannot read {}: {error}", settings.audit.path.display()))?;
        if records.is_empty() {
            break;
        }
        replayed.records += records.len() as u64;
        let events = outgoing(&records, types, &own);
        replayed.events += events.len() as u64;
        match &sink {
            None => {
                for event in &events {
                    writeln!(out, "{}", event.body).map_err(|error| error.to_string())?;
                }
            }
            Some(sink) => {
                deliver_all(sink, events, cap, Some(REPLAY_TRIES), |error| {
                    tracing::warn!(%error, "replay: delivery failed; trying again");
                })
                .await
                .map_err(|error| {
                    format!(
                        "sink {sink_name} refused the events after {REPLAY_TRIES} tries: {error}"
                    )
                })?;
            }
        }
    }
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::cursor::{Cursor, cursor_path, load, save};
    use super::{parse_position, resume_at};

    #[test]
    fn a_cursor_resumes_only_on_the_log_it_was_written_for() {
        let dir = std::env::temp_dir().join(format!("attrgate-resume-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("audit.jsonl");
        let mut file = std::fs::File::create(&log).unwrap();
        for seq in 0..5 {
            writeln!(
                file,
                "{}",
                serde_json::json!({"seq": seq, "hash": format!("h{seq}")})
            )
            .unwrap();
        }
        let path = cursor_path(&log, "crm");
        let at = |next_seq: u64, last_hash: &str, replica: &str| {
            let cursor = Cursor {
                replica: replica.into(),
                next_seq,
                last_hash: Some(last_hash.into()),
            };
            save(&path, &cursor).unwrap();
            resume_at(&log, &path, "crm", "gw", 5)
        };

        let fresh = resume_at(&log, &path, "crm", "gw", 5);
        let written = load(&path).unwrap().unwrap();
        let same_log = at(3, "h2", "gw");
        let replaced = at(3, "other", "gw");
        let beyond = at(9, "h8", "gw");
        let other_replica = at(3, "h2", "gw-2");

        assert_eq!(fresh, Ok(5));
        assert_eq!(
            written.next_seq, 5,
            "a new sink's cursor is on disk at once"
        );
        assert_eq!(same_log, Ok(3));
        assert!(replaced.unwrap_err().contains("the log was replaced"));
        assert!(beyond.unwrap_err().contains("beyond the end"));
        assert!(other_replica.unwrap_err().contains("replica gw-2"));
    }

    #[test]
    fn a_position_is_a_replica_and_a_seq_and_the_replica_may_hold_colons() {
        assert_eq!(parse_position("gw-1:42"), Ok(("gw-1".into(), 42)));
        assert_eq!(parse_position("host:8080:7"), Ok(("host:8080".into(), 7)));
        assert!(parse_position("gw-1").is_err());
        assert!(parse_position("gw-1:x").is_err());
        assert!(parse_position(":4").is_err());
    }
}
