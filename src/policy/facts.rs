//! The facts a decision is made on: who asks (the roles and claims from the caller's
//! token), for what (the pool and the requested attributes), and what Cognito has now for
//! the target user. A leaf of the policy: plain data, it depends on nothing in attrgate.

use std::collections::BTreeMap;

/// Named facts about the caller, taken from its token (the issuer's `claims`). A claim
/// holds one or more strings.
pub type Claims = BTreeMap<String, Vec<String>>;

/// What Cognito has now for the target user, read only when a condition needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFacts {
    pub attributes: BTreeMap<String, String>,
    /// `None` when the user's groups were not read.
    pub groups: Option<Vec<String>>,
}

static NO_CLAIMS: Claims = Claims::new();
static NO_ATTRIBUTES: BTreeMap<String, String> = BTreeMap::new();

/// What the caller asks for, after authentication and input validation.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRequest<'a> {
    /// The roles from the caller's token.
    pub roles: &'a [String],
    pub pool_id: &'a str,
    /// Attribute name to new value; `""` deletes the attribute and counts as a write.
    pub attributes: &'a BTreeMap<String, String>,
    /// The caller's named claims.
    pub claims: &'a Claims,
    /// The target user's facts, when they were read.
    pub target: Option<&'a TargetFacts>,
}

impl<'a> DecisionRequest<'a> {
    /// A request with no claims and no target facts.
    #[must_use]
    pub fn new(
        roles: &'a [String],
        pool_id: &'a str,
        attributes: &'a BTreeMap<String, String>,
    ) -> Self {
        Self {
            roles,
            pool_id,
            attributes,
            claims: &NO_CLAIMS,
            target: None,
        }
    }

    /// The same request with the caller's claims and, when read, the target's facts.
    #[must_use]
    pub fn with_facts(self, claims: &'a Claims, target: Option<&'a TargetFacts>) -> Self {
        Self {
            claims,
            target,
            ..self
        }
    }

    /// A request that asks for no attribute: what `GET /permissions` evaluates.
    #[must_use]
    pub fn about(roles: &'a [String], pool_id: &'a str) -> Self {
        Self::new(roles, pool_id, &NO_ATTRIBUTES)
    }
}
