//! What one audit record holds, and the keyed hash that stands in for every value.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;
use sha2::Sha256;

use crate::identity::Caller;
use crate::report::{DeniedAttribute, FieldError};

/// The shortest audit HMAC key accepted, in bytes.
pub(super) const MIN_KEY_BYTES: usize = 32;
/// Caller-supplied strings (username, pool id, token claims) are cut to this many
/// characters in records.
const MAX_ECHO_CHARS: usize = 256;
/// A record names at most this many of the caller's roles and counts the rest, so that
/// no record grows with the size of a token's claims.
pub(super) const MAX_RECORDED_ROLES: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A request decided in one step: denied, invalid or dry run.
    Request,
    /// An allowed request, written before Cognito is called.
    Intent,
    /// What Cognito answered to an intent.
    Outcome,
    /// A read of a user's attributes (`GET …/attributes`): the names returned, never
    /// their values.
    Read,
}

/// What a record says of its request's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Cognito applied the update.
    Updated,
    /// The policy denied at least one attribute.
    Denied,
    /// The request broke an input rule.
    Invalid,
    /// A dry run that the policy allowed; Cognito was not called.
    DryRun,
    /// An intent: written before Cognito is called.
    Pending,
    /// Refused by attrgate's own limits.
    Throttled,
    /// A read that returned the attributes its record names.
    Read,
    /// A conditional update whose `If-Match` no longer matched the user.
    PreconditionFailed,
    /// Another request held the user's lock for longer than `cognito.user_lock_wait_ms`.
    UserBusy,
    /// Cognito failed: its error code, or a local label such as `timeout`.
    Upstream(String),
    /// The audit log refused a record, so the request was refused (503) before Cognito
    /// was called. Never in the log (it is what a record that could not be written
    /// turns into); it names the refusal in the metrics.
    AuditUnavailable,
}

impl Outcome {
    /// The word written to the record and used as the metric label.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Updated => "updated",
            Self::Denied => "denied",
            Self::Invalid => "invalid",
            Self::DryRun => "dry_run",
            Self::Pending => "pending",
            Self::Throttled => "throttled",
            Self::Read => "read",
            Self::PreconditionFailed => "precondition_failed",
            Self::UserBusy => "user_busy",
            Self::Upstream(code) => code,
            Self::AuditUnavailable => "audit_unavailable",
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The caller as a record names it: at most [`MAX_RECORDED_ROLES`] roles, then a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallerRecord {
    pub iss: String,
    pub sub: String,
    pub roles: Vec<String>,
    /// How many more roles the token carried than `roles` lists.
    #[serde(skip_serializing_if = "is_zero")]
    pub roles_omitted: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

impl From<&Caller> for CallerRecord {
    fn from(caller: &Caller) -> Self {
        Self {
            iss: truncate(&caller.iss),
            sub: truncate(&caller.sub),
            roles: caller
                .roles
                .iter()
                .take(MAX_RECORDED_ROLES)
                .map(|role| truncate(role))
                .collect(),
            roles_omitted: caller.roles.len().saturating_sub(MAX_RECORDED_ROLES),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionRecord {
    pub allowed: bool,
    pub applicable_roles: Vec<String>,
    pub denied: Vec<DeniedAttribute>,
    /// Every `target` condition evaluated, with whether it held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionRecord>,
    /// The target user's values that the conditions read, as HMACs under the audit key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub target_values: BTreeMap<String, String>,
}

/// One evaluated `target` condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionRecord {
    pub role: String,
    /// As the policy wrote it, e.g. `custom:tenant_id equals_claim tenant`.
    pub condition: String,
    pub held: bool,
}

/// One audit event before it is chained. The writer adds `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub time: String,
    pub request_id: String,
    pub event: Event,
    pub caller: CallerRecord,
    pub pool_id: String,
    pub username: String,
    /// The requested attribute names, sorted.
    pub attributes: Vec<String>,
    /// Each requested value as HMAC-SHA256 (hex) under the audit key; never the value itself.
    pub values: BTreeMap<String, String>,
    pub decision: Option<DecisionRecord>,
    pub policy_revision: String,
    pub dry_run: bool,
    pub outcome: Outcome,
    pub cognito_request_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl AuditRecord {
    /// A record for `request_id` with the current time; the rest is filled by the caller.
    #[must_use]
    pub fn new(
        request_id: &str,
        event: Event,
        caller: &Caller,
        pool_id: &str,
        username: &str,
    ) -> Self {
        Self {
            time: now_rfc3339(),
            request_id: request_id.to_owned(),
            event,
            caller: CallerRecord::from(caller),
            pool_id: truncate(pool_id),
            username: truncate(username),
            attributes: Vec::new(),
            values: BTreeMap::new(),
            decision: None,
            policy_revision: String::new(),
            dry_run: false,
            outcome: Outcome::Pending,
            cognito_request_id: None,
            errors: Vec::new(),
        }
    }
}

fn truncate(raw: &str) -> String {
    raw.chars().take(MAX_ECHO_CHARS).collect()
}

pub(super) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// HMAC-SHA256 of attribute values under the configured key, so the log can be searched
/// for a known value (`attrgate audit hash`) without ever holding one in clear.
#[derive(Clone)]
pub(crate) struct ValueHasher {
    key: SecretSlice<u8>,
}

impl std::fmt::Debug for ValueHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValueHasher([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("environment variable {0} (audit.hmac_key_env) is not set")]
    Missing(String),
    #[error("the audit key in {0} must be at least {MIN_KEY_BYTES} bytes")]
    TooShort(String),
}

impl ValueHasher {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self {
            key: SecretSlice::from(key.to_vec()),
        }
    }

    /// Takes the key from the value of the environment variable `var` that the config names.
    pub(crate) fn from_env_value(var: &str, value: Option<String>) -> Result<Self, KeyError> {
        let key = value.ok_or_else(|| KeyError::Missing(var.to_owned()))?;
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(var.to_owned()));
        }
        Ok(Self::new(key.as_bytes()))
    }

    pub(crate) fn hash(&self, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The entity tag of the attributes a caller may view (`ETag`, `If-Match`): an
    /// HMAC of their names and values under a key derived from the audit key (so that
    /// no tag is ever the HMAC of a value in the log), quoted as HTTP wants it.
    pub(crate) fn etag(&self, attributes: &BTreeMap<String, String>) -> String {
        let mut derive = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes a key of any length");
        derive.update(b"attrgate etag v1");
        let key = derive.finalize().into_bytes();
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes a key of any length");
        for (name, value) in attributes {
            // Lengths first, so that no two maps give the same bytes.
            for part in [name, value] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part.as_bytes());
            }
        }
        format!("\"{}\"", hex::encode(&mac.finalize().into_bytes()[..16]))
    }

    pub(crate) fn hash_all(&self, values: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        values
            .iter()
            .map(|(name, value)| (name.clone(), self.hash(value)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_changes_with_any_name_or_value_and_is_never_a_value_hash() {
        let hasher = ValueHasher::new(b"key-one-key-one-key-one-key-one!");
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let tag = hasher.etag(&map(&[("a", "1"), ("b", "2")]));

        assert_eq!(tag, hasher.etag(&map(&[("b", "2"), ("a", "1")])));
        assert_ne!(tag, hasher.etag(&map(&[("a", "1"), ("b", "3")])));
        assert_ne!(tag, hasher.etag(&map(&[("a", "1"), ("c", "2")])));
        assert_ne!(
            hasher.etag(&map(&[("ab", "")])),
            hasher.etag(&map(&[("a", "b")]))
        );
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
        assert!(!hasher.hash("1").starts_with(&tag[1..33]));
    }

    #[test]
    fn the_same_value_hashes_the_same_and_different_keys_hash_differently() {
        let a = ValueHasher::new(b"key-one-key-one-key-one-key-one!");
        let b = ValueHasher::new(b"key-two-key-two-key-two-key-two!");

        assert_eq!(a.hash("ann@example.com"), a.hash("ann@example.com"));
        assert_ne!(a.hash("ann@example.com"), b.hash("ann@example.com"));
        assert_eq!(a.hash("x").len(), 64);
        assert!(!a.hash("ann@example.com").contains("ann"));
    }

    #[test]
    fn the_hasher_never_prints_its_key() {
        let hasher = ValueHasher::new(b"super-secret-super-secret-super!");

        assert!(!format!("{hasher:?}").contains("super"));
    }
}
