//! Why an update was refused, as values: the service's one error type, and what each
//! refusal's audit record says. Must not depend on actix.

use std::collections::BTreeMap;

use crate::audit::{DecisionRecord, Outcome, ValueHasher};
use crate::cognito::{DirectoryError, DirectoryErrorKind};
use crate::report::{DeniedAttribute, FieldError};

/// An update that did not happen, and why.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// attrgate's own per-caller limit.
    Throttled { retry_after_secs: u64 },
    /// The request broke an input rule.
    Invalid(Invalid),
    /// The policy denied at least one of the `requested` attributes.
    Denied {
        denied: Vec<DeniedAttribute>,
        requested: usize,
    },
    /// Cognito failed (reading the pool's schema, or the update itself).
    Upstream(DirectoryError),
    /// The audit log cannot be written, so nothing was done.
    AuditUnavailable,
    /// A read by a caller no role lets read this user: the whole user is denied.
    ReadDenied { denied: Vec<DeniedAttribute> },
    /// `If-Match` no longer matches the user (412).
    PreconditionFailed,
    /// The user's lock was held by another request for `user_lock_wait_ms` (429).
    UserBusy { retry_after_secs: u64 },
}

/// Which input rule a request broke.
#[derive(Debug, Clone)]
pub(crate) enum Invalid {
    /// The query string (400).
    Query(String),
    /// A path segment is not valid UTF-8 (422).
    Path,
    /// The content type is not JSON (415).
    MediaType,
    /// The body is over `limit` bytes (413).
    TooLarge { limit: usize },
    /// The body could not be read off the connection (400).
    Unreadable,
    /// The body is not a valid update request (400). `message` is the parser's own,
    /// which may quote the body and goes to the caller only; `audit` names the error
    /// class and position.
    Body { message: String, audit: String },
    /// `attributes` is empty (400).
    NoAttributes,
    /// The input rules of SPEC.md (422).
    Input(Vec<FieldError>),
    /// Names the pool does not have or cannot change (422).
    Schema(Vec<FieldError>),
}

impl Invalid {
    /// The field errors written to the audit record: never a value from the request.
    fn audit_errors(&self) -> Vec<FieldError> {
        match self {
            Self::Query(message) => vec![FieldError::new("query", message.clone())],
            Self::MediaType | Self::TooLarge { .. } => Vec::new(),
            Self::Path => vec![FieldError::new("path", "not valid UTF-8")],
            Self::Unreadable => vec![FieldError::new("body", "the body could not be read")],
            Self::Body { audit, .. } => vec![FieldError::new("body", audit.clone())],
            Self::NoAttributes => vec![FieldError::new(
                "attributes",
                "must name at least one attribute",
            )],
            Self::Input(errors) | Self::Schema(errors) => errors.clone(),
        }
    }
}

impl Refusal {
    /// The outcome its audit record carries.
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            Self::Throttled { .. } => Outcome::Throttled,
            Self::Invalid(_) => Outcome::Invalid,
            Self::Denied { .. } => Outcome::Denied,
            // attrgate's own budget: Cognito was not called.
            Self::Upstream(DirectoryError {
                kind: DirectoryErrorKind::OverBudget { .. },
                ..
            }) => Outcome::Throttled,
            Self::Upstream(error) => Outcome::Upstream(error.code.clone()),
            Self::AuditUnavailable => Outcome::AuditUnavailable,
            Self::ReadDenied { .. } => Outcome::Denied,
            Self::PreconditionFailed => Outcome::PreconditionFailed,
            Self::UserBusy { .. } => Outcome::UserBusy,
        }
    }
}

/// What was known of a request when it was refused, for its audit record.
#[derive(Debug, Clone, Default)]
pub(super) struct Known {
    pub(super) dry_run: bool,
    pub(super) requested: Option<Requested>,
    pub(super) decision: Option<DecisionRecord>,
    pub(super) errors: Vec<FieldError>,
}

/// A refusal with what was known of its request.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) refusal: Refusal,
    pub(super) known: Known,
}

impl Refused {
    /// A refusal before anything of the request was read.
    pub(super) fn bare(refusal: Refusal) -> Self {
        Self {
            refusal,
            known: Known::default(),
        }
    }

    /// An invalid request, with what was read of it.
    pub(super) fn invalid(invalid: Invalid, known: Known) -> Self {
        let known = Known {
            errors: invalid.audit_errors(),
            ..known
        };
        Self {
            refusal: Refusal::Invalid(invalid),
            known,
        }
    }
}

/// The requested names and their values' HMACs, as audit records name them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requested {
    pub(crate) names: Vec<String>,
    pub(crate) values: BTreeMap<String, String>,
}

impl Requested {
    pub(super) fn of(attributes: &BTreeMap<String, String>, hasher: &ValueHasher) -> Self {
        Self {
            names: attributes.keys().cloned().collect(),
            values: hasher.hash_all(attributes),
        }
    }
}
