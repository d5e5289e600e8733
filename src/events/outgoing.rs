//! An event ready for a sink: serialised once, sent as often as it takes.

use super::cloud::CloudEvent;

/// An event as sinks send it.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub id: String,
    pub source: String,
    pub kind: &'static str,
    /// The CloudEvents structured JSON.
    pub body: String,
}

impl Outgoing {
    pub(crate) fn new(event: &CloudEvent) -> Self {
        Self {
            id: event.id.clone(),
            source: event.source.clone(),
            kind: event.kind,
            body: serde_json::to_string(event).expect("an event serialises"),
        }
    }
}
