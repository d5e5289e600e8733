//! The webhook sink: one POST per event, signed per the Standard Webhooks convention
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! id.timestamp.body>`). A 2xx answer acknowledges the event.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

use super::outgoing::Outgoing;

/// The shortest and longest accepted secret, in bytes once decoded.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

pub(crate) struct Webhook {
    url: String,
    secret: SecretSlice<u8>,
    http: reqwest::Client,
}

/// Decodes a Standard Webhooks secret: `whsec_` (optional) and base64 of 24 to 64 bytes.
///
/// # Errors
/// The secret is not base64, or too short or too long.
pub(crate) fn decode_secret(text: &str) -> Result<SecretSlice<u8>, String> {
    let encoded = text.trim();
    let encoded = encoded.strip_prefix("whsec_").unwrap_or(encoded);
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| "is not whsec_ followed by base64".to_owned())?;
    if !SECRET_BYTES.contains(&bytes.len()) {
        return Err(format!(
            "decodes to {} bytes; a webhook secret has {} to {} (make one with: echo whsec_$(openssl rand -base64 32))",
            bytes.len(),
            SECRET_BYTES.start(),
            SECRET_BYTES.end()
        ));
    }
    Ok(SecretSlice::from(bytes))
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub(crate) fn signature(secret: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl Webhook {
    pub(crate) fn new(
        url: &str,
        secret: SecretSlice<u8>,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("attrgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            url: url.to_owned(),
            secret,
            http,
        })
    }

    /// Posts the events in order, removing each from `pending` once acknowledged; stops
    /// at the first that is not.
    pub(crate) async fn deliver(&self, pending: &mut Vec<Outgoing>) -> Result<(), String> {
        while let Some(event) = pending.first() {
            let timestamp = time::OffsetDateTime::now_utc()
                .unix_timestamp()
                .unsigned_abs();
            let signed = signature(
                self.secret.expose_secret(),
                &event.id,
                timestamp,
                event.body.as_bytes(),
            );
            let response = self
                .http
                .post(&self.url)
                .header("content-type", "application/cloudevents+json")
                .header("webhook-id", &event.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signed)
                .body(event.body.clone())
                .send()
                .await
                .map_err(|error| crate::report::chain(&error.without_url()))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("the webhook answered HTTP {}", status.as_u16()));
            }
            pending.remove(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_reference_example() {
        // From the Standard Webhooks specification's test vectors.
        let secret = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;

        let signed = signature(
            secret.expose_secret(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            body,
        );

        assert_eq!(signed, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_secret_that_is_not_base64_or_too_short_is_refused() {
        assert!(decode_secret("whsec_not base64!").is_err());
        assert!(
            decode_secret("whsec_c2hvcnQ=")
                .unwrap_err()
                .contains("bytes")
        );
        assert!(decode_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
    }
}
