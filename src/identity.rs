//! Who is calling: the authenticated identity that authentication produces and every
//! layer reads. A leaf: must not depend on anything else in attrgate.

use std::collections::BTreeMap;

use serde::Serialize;

/// An authenticated caller. Only `auth::Verifier::verify` makes one from a
/// token (the HTTP wing's extractor asks it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub iss: String,
    pub sub: String,
    pub roles: Vec<String>,
    /// The issuer's named `claims` that the token carries: each a string, or the strings
    /// of an array. A claim of any other shape is absent.
    #[serde(skip)]
    pub claims: BTreeMap<String, Vec<String>>,
}
