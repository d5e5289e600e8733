//! Authentication of internal callers by JWT: JWKS cache and token verification, which
//! turn a token into a [`Caller`](crate::identity::Caller) or an [`AuthError`].
//! Must not depend on actix, the HTTP wing (`crate::http`), policy, cognito or audit.

mod error;
mod jwks;
mod verifier;

pub use error::AuthError;
pub(crate) use jwks::REFETCH_INTERVAL;
pub(crate) use verifier::Verifier;
#[cfg(feature = "fuzzing")]
pub(crate) use verifier::{caller_facts, preflight};
