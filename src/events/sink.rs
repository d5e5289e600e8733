//! A configured sink: a webhook or an EventBridge bus.

use std::time::Duration;

use aws_config::SdkConfig;
use secrecy::SecretSlice;

use super::eventbridge::EventBridge;
use super::outgoing::Outgoing;
use super::webhook::{Webhook, decode_secret};
use crate::config::SinkSettings;

pub(crate) enum Sink {
    Webhook(Webhook),
    EventBridge(EventBridge),
}

/// Reads a named secret, normally from the process environment.
pub(crate) type Secrets<'a> = &'a (dyn Fn(&str) -> Option<String> + Send + Sync);

impl Sink {
    /// Builds the sink, reading its secret.
    ///
    /// # Errors
    /// The secret's variable is unset or holds no valid secret, or the HTTP client
    /// cannot be built.
    pub(crate) fn build(
        settings: &SinkSettings,
        aws: &SdkConfig,
        secrets: Secrets<'_>,
    ) -> Result<Self, String> {
        let timeout = Duration::from_secs(settings.timeout_seconds);
        let at = format!("events.sinks ({})", settings.name);
        if let Some(webhook) = &settings.webhook {
            let var = &webhook.secret_env;
            let text = secrets(var).ok_or_else(|| {
                format!("{at}: environment variable {var} (webhook.secret_env) is not set")
            })?;
            let secret: SecretSlice<u8> =
                decode_secret(&text).map_err(|problem| format!("{at}: {var} {problem}"))?;
            let sink = Webhook::new(&webhook.url, secret, timeout)
                .map_err(|error| format!("{at}: {}", crate::report::chain(&error)))?;
            return Ok(Self::Webhook(sink));
        }
        match &settings.eventbridge {
            Some(bus) => Ok(Self::EventBridge(EventBridge::new(aws, bus, timeout))),
            None => Err(format!("{at}: a sink has exactly one kind")),
        }
    }

    /// Delivers the pending events, removing each one the sink acknowledged.
    pub(crate) async fn deliver(&self, pending: &mut Vec<Outgoing>) -> Result<(), String> {
        match self {
            Self::Webhook(sink) => sink.deliver(pending).await,
            Self::EventBridge(sink) => sink.deliver(pending).await,
        }
    }
}
