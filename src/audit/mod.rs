//! The audit log: one JSON line per event, values as HMAC-SHA256, every record chained
//! to the one before by SHA-256. Records are durable (fdatasync) before `append` returns.
//! Must not depend on routes, policy internals or cognito.

mod chain;
mod checkpoint;
mod permit;
mod record;
mod search;
mod writer;

use std::sync::Arc;

pub(crate) use checkpoint::{CheckpointConfig, keygen, read_public_key, signing_key_from_pem};
pub use permit::{Intent, WritePermit};
pub use record::{AuditRecord, Event, Outcome};
pub(crate) use record::{ConditionRecord, DecisionRecord, KeyError, ValueHasher};
pub(crate) use search::{CheckpointCheck, SearchQuery, display_replica, search, verify_logs};
pub use writer::{AuditCounters, AuditLog, AuditStore, ChainHead, WriterOptions};

/// Why the audit log could not take a record. Each keeps its cause as its `source`
/// (shared, because one failed batch answers every record in it).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    /// A write or its sync failed; the chain did not advance.
    #[error("failed to write the audit log")]
    Write(#[source] Arc<std::io::Error>),
    /// A record could not be laid out as JSON.
    #[error("failed to encode an audit record")]
    Encode(#[source] Arc<serde_json::Error>),
    #[error("the audit writer has stopped")]
    Stopped,
    #[error("failed to open {path}")]
    Open {
        path: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The file is there but the chain cannot resume from it.
    #[error("cannot resume the audit log {path}: {problem}")]
    Unusable { path: String, problem: String },
}

impl AuditError {
    pub(crate) fn open(path: &std::path::Path) -> impl Fn(std::io::Error) -> Self + '_ {
        move |source| Self::Open {
            path: path.display().to_string(),
            source: Arc::new(source),
        }
    }
}
