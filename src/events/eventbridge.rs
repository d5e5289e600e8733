//! The EventBridge sink: `PutEvents` through the AWS SDK, ten entries a call (`Source` =
//! the event's source, `DetailType` = its type, `Detail` = the whole event). Entries
//! that fail are tried again; the others are acknowledged.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::config::Region;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::outgoing::Outgoing;
use crate::config::EventBridgeSettings;

/// PutEvents takes at most this many entries.
const ENTRIES_PER_CALL: usize = 10;

pub(crate) struct EventBridge {
    client: Client,
    bus_name: String,
}

impl EventBridge {
    pub(crate) fn new(aws: &SdkConfig, settings: &EventBridgeSettings, timeout: Duration) -> Self {
        let mut config = aws_sdk_eventbridge::config::Builder::from(aws).timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(timeout)
                .connect_timeout(timeout)
                .build(),
        );
        if let Some(region) = &settings.region {
            config = config.region(Region::new(region.clone()));
        }
        if let Some(endpoint) = &settings.endpoint_url {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(config.build()),
            bus_name: settings.bus_name.clone(),
        }
    }

    /// Puts the first ten pending events, removing those EventBridge accepted; an error
    /// when any is left (the call failed, or some entries did).
    pub(crate) async fn deliver(&self, pending: &mut Vec<Outgoing>) -> Result<(), String> {
        while !pending.is_empty() {
            let count = pending.len().min(ENTRIES_PER_CALL);
            let entries: Vec<PutEventsRequestEntry> = pending[..count]
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(&event.source)
                        .detail_type(&event.kind)
                        .detail(&event.body)
                        .build()
                })
                .collect();
            let answer = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|error| {
                    aws_sdk_eventbridge::error::DisplayErrorContext(error).to_string()
                })?;
            let results = answer.entries();
            let mut failed = Vec::new();
            let mut first_error = None;
            for (index, event) in pending.drain(..count).enumerate() {
                // An entry with an error code failed; so does one EventBridge did not answer for.
                match results.get(index) {
                    Some(result)
                        if result.error_code().is_none() && result.event_id().is_some() => {}
                    other => {
                        first_error.get_or_insert_with(|| {
                            other
                                .and_then(|r| r.error_code())
                                .unwrap_or("no result for the entry")
                                .to_owned()
                        });
                        failed.push(event);
                    }
                }
            }
            if !failed.is_empty() {
                failed.append(pending);
                *pending = failed;
                return Err(format!(
                    "PutEvents refused an entry: {}",
                    first_error.unwrap_or_default()
                ));
            }
        }
        Ok(())
    }
}
