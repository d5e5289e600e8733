//! The audit log: one JSON line per event, values as HMAC-SHA256, every record chained
//! to the one before by SHA-256. Records are durable (fdatasync) before `append` returns.
//! Must not depend on routes, policy internals or cognito.

mod chain;
mod checkpoint;
mod error;
mod permit;
mod record;
mod search;
mod writer;

pub(crate) use checkpoint::{CheckpointConfig, keygen, read_public_key, signing_key_from_pem};
pub use error::AuditError;
pub use permit::{Intent, WritePermit};
pub use record::{AuditRecord, Event, Outcome};
pub(crate) use record::{ConditionRecord, DecisionRecord, KeyError, ValueHasher};
pub(crate) use search::{CheckpointCheck, SearchQuery, display_replica, search, verify_logs};
pub(crate) use writer::log_files;
pub use writer::{AuditCounters, AuditLog, AuditStore, ChainHead, WriterOptions};
