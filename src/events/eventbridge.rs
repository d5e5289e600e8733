//! The EventBridge sink: `PutEvents` through the AWS SDK, ten entries a call (`Source` =
//! the event's source, `DetailType` = its type, `Detail` = the whole event). When an
//! entry fails, it and the entries after it are tried again, so order holds.

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

    /// Puts the pending events ten at a time, removing each run EventBridge accepted;
    /// at the first refused entry, an error with it and those after it still pending.
    pub(crate) async fn deliver(&self, pending: &mut Vec<Outgoing>) -> Result<(), String> {
        while !pending.is_empty() {
            let count = pending.len().min(ENTRIES_PER_CALL);
            let entries: Vec<PutEventsRequestEntry> = pending[..count]
                .iter()
                .map(|event| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus_name)
                        .source(&event.source)
                        .detail_type(event.kind)
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
            // The first entry EventBridge refused (or did not answer for): it and every
            // entry after it are put again, in order, so that no event overtakes it (the
            // ones after it come twice: at least once).
            let refused = (0..count).find(|&index| {
                results
                    .get(index)
                    .is_none_or(|r| r.error_code().is_some() || r.event_id().is_none())
            });
            match refused {
                None => {
                    pending.drain(..count);
                }
                Some(index) => {
                    pending.drain(..index);
                    let code = results
                        .get(index)
                        .and_then(|r| r.error_code())
                        .unwrap_or("no result for the entry");
                    return Err(format!("PutEvents refused an entry: {code}"));
                }
            }
        }
        Ok(())
    }
}
