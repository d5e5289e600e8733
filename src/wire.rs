//! The error format on the wire, shared by the HTTP edge, the input rules, the pool
//! schema check and the audit log: `Problem`, `FieldError` and `DeniedAttribute`.
//! Must not depend on actix, aws, tokio or the filesystem.

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

/// The `application/problem+json` body (RFC 9457) of every error answer.
///
/// Branch on `status` or `type`, not on `detail`, whose wording may change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:attrgate:problem:<kind>`, e.g.
    /// `policy-denied` (403), `invalid-attributes` (422), `bad-request` (400),
    /// `invalid-token` (401), `throttled` (429), `unavailable` (503).
    #[serde(rename = "type")]
    #[schema(example = "urn:attrgate:problem:policy-denied")]
    pub kind: String,
    /// A short summary of the kind of problem; the same for every problem of a `type`.
    #[schema(example = "Denied by policy")]
    pub title: String,
    /// The HTTP status code of this answer.
    #[schema(minimum = 400, maximum = 599, example = 403)]
    pub status: u16,
    /// What happened in this request, for people. Never holds AWS messages, tokens,
    /// credentials or stack traces.
    #[schema(example = "the policy denies 1 of 2 attribute(s); nothing was written")]
    pub detail: String,
    /// The id of this request, as sent in `X-Request-Id` and written to the audit log.
    #[schema(example = "5f0c6a8e-3b1d-4c2a-9e57-2d4b8f1a7c60")]
    pub request_id: String,
    /// Only on 403: every attribute the policy denied, not just the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub denied: Option<Vec<DeniedAttribute>>,
    /// Only on 400 and 422: every input field that broke a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldError>>,
}
