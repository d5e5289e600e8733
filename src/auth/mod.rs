//! Authentication of internal callers by JWT: JWKS cache and token verification, which
//! turn a token into a [`Caller`](crate::identity::Caller) or an [`AuthError`].
//! Must not depend on actix, the HTTP wing (`crate::http`), policy, cognito or audit.

mod jwks;
mod verifier;

pub(crate) use jwks::REFETCH_INTERVAL;
pub(crate) use verifier::Verifier;
#[cfg(feature = "fuzzing")]
pub(crate) use verifier::{caller_facts, preflight};

/// Why a token was refused. The text never contains the token or any claim value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the Authorization header must be 'Bearer <token>'")]
    Missing,
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's issuer is not configured")]
    UnknownIssuer,
    #[error("the token's algorithm is not allowed for its issuer")]
    DisallowedAlgorithm,
    #[error("the token has no kid, or its kid is not in the issuer's key set")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is not meant for this service (aud/client_id)")]
    WrongAudience,
    #[error("the token lacks the required claim '{0}'")]
    MissingClaim(&'static str),
    #[error("the token's roles claim must be an array of strings or a space-separated string")]
    InvalidRoles,
    #[error("the token's header names critical extensions (crit) this service does not understand")]
    UnsupportedCritical,
    #[error("the request carries more than one Authorization header")]
    DuplicateAuthorization,
    #[error("the token's {0} claim must be a number (seconds since the epoch)")]
    NotANumber(&'static str),
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error(
        "the token's lifetime is too long: exp is further in the future than this service accepts"
    )]
    LifetimeTooLong,
    /// The issuer's keys have never been fetched: the service is not ready (503, not 401).
    #[error("the issuer's signing keys are not available yet")]
    KeysUnavailable,
}

impl AuthError {
    /// A short stable label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownIssuer => "unknown_issuer",
            Self::DisallowedAlgorithm => "disallowed_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidRoles => "invalid_roles",
            Self::UnsupportedCritical => "unsupported_crit",
            Self::DuplicateAuthorization => "duplicate_authorization",
            Self::NotANumber(_) => "malformed_claim",
            Self::IssuedInFuture => "issued_in_future",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }
}
