//! What a refusal reports, item by item: `FieldError` (an input field that broke a rule)
//! and `DeniedAttribute` (an attribute the policy denied). The input rules, the pool
//! schema check, the update service and the audit log make them; the HTTP wing puts
//! them into problem bodies. Must not depend on actix, the HTTP wing, aws, tokio or the
//! filesystem.

use serde::Serialize;
use utoipa::ToSchema;

use crate::policy::{Denial, DenialCode};

/// One input field that broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the problem is: `body`, `query`, `pool_id`, `username`, `attributes`, or
    /// `attributes.<name>` for one attribute.
    #[schema(example = "attributes.tier")]
    pub field: String,
    /// What is wrong, in plain words, with a hint where one helps.
    #[schema(example = "unknown attribute 'tier': did you mean custom:tier?")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One attribute the policy denied, with the rule that denied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeniedAttribute {
    /// The attribute name, as requested.
    #[schema(example = "email_verified")]
    pub attribute: String,
    /// Which rule denied it, as a stable code to branch on.
    pub code: DenialCode,
    /// The rule that denied it, in a sentence for people (bounded in length). Never
    /// quotes the requested value or a target user's value.
    #[schema(example = "no applicable role may mark email as verified")]
    pub reason: String,
}

impl From<&Denial> for DeniedAttribute {
    fn from(denial: &Denial) -> Self {
        Self {
            attribute: denial.attribute.clone(),
            code: denial.code,
            reason: denial.reason.clone(),
        }
    }
}
