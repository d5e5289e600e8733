//! Why the audit log could not take a record: the one error of the audit module, with
//! each cause kept as its source.

use std::sync::Arc;

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
