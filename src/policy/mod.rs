//! The policy: parse and validate the YAML policy, then decide which attribute changes a caller's roles may make. PURE: must not depend on actix, aws, tokio or the filesystem.
//!
//! - [`Policy::parse`] rejects a bad policy with the line and column of every error.
//! - [`decide()`] is synchronous, infallible and does no I/O; a deny is a [`Decision`]
//!   value that carries every denied attribute with its reason.
//! - [`permissions()`] answers "what can my token do" for `GET /permissions`.
//! - [`parse_cases`] and [`run_cases`] run table-driven cases for `attrgate policy test`.
//! - [`lint()`] checks the grants against one pool's attribute schema (`attrgate policy lint`).
//! - [`iam_policy()`] is the least-privilege IAM policy the gateway needs (`attrgate policy iam`).
//!
//! The format and the decision rules are documented in `docs/policy.md`.

mod cases;
mod compile;
mod constraint;
mod decide;
mod diagnostic;
mod facts;
mod glob;
mod iam;
mod lint;
mod model;
mod permissions;
mod target;
mod view;

pub(crate) use cases::{parse_cases, run_cases};
pub use compile::{Policy, TargetNeeds};
pub(crate) use constraint::ConstraintView;
pub use decide::{AllowedChanges, ConditionResult, Decision, Denial, DenialCode, decide};
pub use diagnostic::{PolicyDiagnostic, PolicyError};
pub use facts::{Claims, DecisionRequest, TargetFacts};
pub use iam::{AccountId, EventBus, IamOptions, Partition, iam_policy};
pub(crate) use lint::lint;
pub(crate) use permissions::{Permissions, RolePermissions, permissions};
pub use view::{ReadDecision, Visible, WHOLE_USER, decide_view};
