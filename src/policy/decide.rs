//! The decision: which requested attribute changes the caller's roles may make in a pool, each denial with a stable code and a reason. Pure and infallible; must not depend on actix, aws, tokio or the filesystem.
//!
//! An attribute is decided by an ordered list of small rules ([`RULES`]): each one
//! denies, allows, or passes the attribute to the next, from the most absolute rule
//! (`protected`) to the most specific (an update grant and its constraint).

use std::collections::BTreeMap;
use std::fmt;

use super::compile::{Policy, Role, first_match};
use super::facts::{Claims, DecisionRequest};
use super::target::{Check, Condition};
use crate::attribute::{IMMUTABLE_ATTRIBUTE, Verifiable};

/// The most role names a reason lists; the rest are counted.
const MAX_ROLES_IN_REASON: usize = 5;
/// The most characters of one role name a reason quotes.
const MAX_ROLE_NAME_CHARS: usize = 64;

/// One target condition of one role, as evaluated for a request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ConditionResult {
    /// The role whose `target` holds the condition.
    pub role: String,
    /// The condition as the policy wrote it (`custom:tenant_id equals_claim tenant`);
    /// never a value of the target user's.
    #[schema(example = "custom:tenant_id equals_claim tenant")]
    pub condition: String,
    /// Whether it held for the target user (an absent claim or attribute: false).
    pub held: bool,
    /// The target attribute it read, if any (the audit log records its value's HMAC).
    #[serde(skip)]
    pub attribute: Option<String>,
}

/// Why an attribute was denied, as a stable code for programs (`reason` is for people).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DenialCode {
    /// A `protected` glob matches the attribute.
    Protected,
    /// `sub`: Cognito's user id, never writable.
    ImmutableAttribute,
    /// None of the caller's roles applies in this pool.
    NoApplicableRole,
    /// An applicable role's `deny` glob matches the attribute.
    RoleDeny,
    /// No applicable role's `update` globs match the attribute.
    NotGranted,
    /// A `*_verified` flag, and no applicable role lists its attribute under `verify`.
    NoVerifyGrant,
    /// Every granting role's constraint rejects the value.
    Constraint,
    /// A role's `target` conditions do not hold for the target user.
    TargetCondition,
    /// A condition or constraint needs a claim the caller's token lacks.
    MissingClaim,
}

impl DenialCode {
    pub const ALL: [Self; 9] = [
        Self::Protected,
        Self::ImmutableAttribute,
        Self::NoApplicableRole,
        Self::RoleDeny,
        Self::NotGranted,
        Self::NoVerifyGrant,
        Self::Constraint,
        Self::TargetCondition,
        Self::MissingClaim,
    ];

    /// The code as written on the wire and in case files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::ImmutableAttribute => "immutable_attribute",
            Self::NoApplicableRole => "no_applicable_role",
            Self::RoleDeny => "role_deny",
            Self::NotGranted => "not_granted",
            Self::NoVerifyGrant => "no_verify_grant",
            Self::Constraint => "constraint",
            Self::TargetCondition => "target_condition",
            Self::MissingClaim => "missing_claim",
        }
    }
}

impl fmt::Display for DenialCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`decide`]. A deny is a value carrying every reason, not an error.
///
/// Every field is private and read through a method, so that no code outside this module
/// can turn a denial into an allowed decision. This does not compile:
///
/// ```compile_fail,E0616
/// # fn forge(policy: &attrgate::policy::Policy, request: &attrgate::policy::DecisionRequest<'_>) {
/// let mut decision = attrgate::policy::decide(policy, request);
/// decision.denied.clear(); // error[E0616]: field `denied` of struct `Decision` is private
/// let _ = decision.into_allowed();
/// # }
/// ```
#[must_use]
#[derive(Debug, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The caller's roles that applied in this pool, in policy file order.
    applicable_roles: Vec<String>,
    /// Every denied attribute, sorted by attribute name.
    denied: Vec<Denial>,
    /// Every target condition of the caller's roles in this pool, with whether it held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<ConditionResult>,
    /// A condition needed target facts the request did not carry (and so failed).
    #[serde(skip)]
    lacked_facts: bool,
    /// What was decided. Only [`Decision::into_allowed`] hands it out, and only when
    /// nothing was denied and something was asked for.
    #[serde(skip)]
    decided: AllowedChanges,
}

impl Decision {
    /// Allowed only if at least one attribute was asked for and none was denied.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        !self.decided.attributes.is_empty() && self.denied.is_empty()
    }

    /// The caller's roles that applied in this pool, in policy file order.
    #[must_use]
    pub fn applicable_roles(&self) -> &[String] {
        &self.applicable_roles
    }

    /// Every denied attribute, sorted by attribute name.
    #[must_use]
    pub fn denied(&self) -> &[Denial] {
        &self.denied
    }

    /// Every target condition of the caller's roles in this pool, with whether it held.
    #[must_use]
    pub fn conditions(&self) -> &[ConditionResult] {
        &self.conditions
    }

    /// Whether a target condition could not be evaluated because the request carried
    /// no target facts (a policy test case without `target:`).
    #[must_use]
    pub fn lacked_target_facts(&self) -> bool {
        self.lacked_facts
    }

    /// The right to write exactly what was decided, if the decision allows it.
    ///
    /// # Errors
    /// The decision itself, when it does not allow the request.
    pub fn into_allowed(self) -> Result<AllowedChanges, Decision> {
        if self.is_allowed() {
            Ok(self.decided)
        } else {
            Err(self)
        }
    }
}

/// Attribute changes that the policy allowed, every one of them: the only value the
/// audit log turns into a [`WritePermit`](crate::audit::WritePermit), and so the only
/// thing Cognito's update can write. Only [`Decision::into_allowed`] makes one; it has no
/// `Default`, no `Clone` and no public constructor, so none can be made elsewhere:
///
/// ```compile_fail,E0599
/// let forged = attrgate::policy::AllowedChanges::default(); // no `Default`
/// ```
///
/// ```compile_fail,E0451
/// let forged = attrgate::policy::AllowedChanges {
///     attributes: Default::default(),
/// }; // error[E0451]: its field is private
/// ```
#[derive(PartialEq, Eq)]
pub struct AllowedChanges {
    attributes: BTreeMap<String, String>,
}

impl AllowedChanges {
    /// Attribute name to new value.
    #[must_use]
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.attributes
    }

    /// The attribute names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.attributes.keys().cloned().collect()
    }
}

/// Names only: values never reach logs.
impl fmt::Debug for AllowedChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AllowedChanges")
            .field(&self.attributes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One denied attribute and the rule that denied it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    pub attribute: String,
    pub code: DenialCode,
    /// A sentence naming the rule. It never contains the requested value.
    pub reason: String,
}

/// Decides every attribute of `request` under `policy`.
pub fn decide(policy: &Policy, request: &DecisionRequest<'_>) -> Decision {
    let evaluation = Evaluation::new(policy, request);
    let denied = request
        .attributes
        .iter()
        .filter_map(|(attribute, value)| {
            evaluation
                .denial(attribute, value)
                .map(|(code, reason)| Denial {
                    attribute: attribute.clone(),
                    code,
                    reason,
                })
        })
        .collect();
    Decision {
        applicable_roles: evaluation.applicable_role_names(),
        denied,
        conditions: evaluation.conditions,
        lacked_facts: evaluation.lacked_facts,
        decided: AllowedChanges {
            attributes: request.attributes.clone(),
        },
    }
}

/// What one rule says of one attribute.
enum Verdict {
    /// This rule has nothing to say: ask the next one.
    Next,
    Allow,
    Deny(DenialCode, String),
}

/// One decision rule over the evaluation, an attribute name and its new value.
type Rule = fn(&Evaluation<'_>, &str, &str) -> Verdict;

/// The rules in the order they are asked; the first that allows or denies decides.
const RULES: [Rule; 6] = [
    protected,
    immutable,
    applicable_role,
    role_deny,
    verify_grant,
    update_grant,
];

/// The policy seen through one caller's applicable roles in one pool.
pub(super) struct Evaluation<'p> {
    policy: &'p Policy,
    claims: &'p Claims,
    /// The caller's roles that match the pool, whether or not their targets hold.
    pub(super) held: Vec<&'p Role>,
    /// Those of `held` whose target conditions hold (or that have none).
    pub(super) applicable: Vec<&'p Role>,
    conditions: Vec<ConditionResult>,
    lacked_facts: bool,
    /// Set when no role applies: the code and reason every attribute is denied with.
    no_role: Option<(DenialCode, String)>,
}

/// A condition that did not hold, and how.
type Unmet<'p> = (&'p Role, &'p Condition, Check);

impl<'p> Evaluation<'p> {
    pub(super) fn new(policy: &'p Policy, request: &DecisionRequest<'p>) -> Self {
        let held = policy.applicable_roles(request.roles, request.pool_id);
        let mut applicable = Vec::new();
        let mut conditions = Vec::new();
        let mut unmet: Vec<Unmet<'p>> = Vec::new();
        for role in &held {
            let checks: Vec<(&Condition, Check)> = role
                .target
                .iter()
                .flat_map(|target| &target.conditions)
                .map(|condition| (condition, condition.check(request.target, request.claims)))
                .collect();
            for &(condition, check) in &checks {
                conditions.push(ConditionResult {
                    role: role.name.clone(),
                    condition: condition.describe(),
                    held: check == Check::Held,
                    attribute: condition.attribute().map(str::to_owned),
                });
            }
            match checks.into_iter().find(|(_, check)| *check != Check::Held) {
                None => applicable.push(*role),
                Some((condition, check)) => unmet.push((role, condition, check)),
            }
        }
        let no_role = if !applicable.is_empty() {
            None
        } else if held.is_empty() {
            Some((DenialCode::NoApplicableRole, no_role_reason(request)))
        } else {
            Some(unmet_reason(&unmet))
        };
        Self {
            policy,
            claims: request.claims,
            held,
            applicable,
            lacked_facts: unmet
                .iter()
                .any(|(_, _, check)| *check == Check::MissingFacts),
            conditions,
            no_role,
        }
    }

    /// Every target condition evaluated, in role and policy order.
    pub(super) fn conditions(&self) -> &[ConditionResult] {
        &self.conditions
    }

    /// When no role applies (none held in the pool, or none whose `target` holds): the
    /// code and reason everything is denied with.
    pub(super) fn no_role(&self) -> Option<&(DenialCode, String)> {
        self.no_role.as_ref()
    }

    /// Whether a role's conditions could not be evaluated: the target's facts were not
    /// given.
    pub(super) fn lacked_facts(&self) -> bool {
        self.lacked_facts
    }

    pub(super) fn applicable_role_names(&self) -> Vec<String> {
        self.applicable
            .iter()
            .map(|role| role.name.clone())
            .collect()
    }

    /// `None` if the applicable roles may set `attribute` to `value`; otherwise the code
    /// and the reason of the first rule that denies it.
    pub(super) fn denial(&self, attribute: &str, value: &str) -> Option<(DenialCode, String)> {
        for rule in RULES {
            match rule(self, attribute, value) {
                Verdict::Next => {}
                Verdict::Allow => return None,
                Verdict::Deny(code, reason) => return Some((code, reason)),
            }
        }
        // The last rule always decides; should one ever pass, deny (fail closed).
        Some((
            DenialCode::NotGranted,
            format!("no applicable role grants {attribute}"),
        ))
    }
}

fn no_role_reason(request: &DecisionRequest<'_>) -> String {
    if request.roles.is_empty() {
        "no applicable role: the token carries no roles".to_owned()
    } else {
        format!(
            "no applicable role: none of the token's roles [{}] applies to pool {}",
            role_list(request.roles),
            request.pool_id
        )
    }
}

/// Why no role with a `target` applied: the first unmet condition of each (at most
/// [`MAX_ROLES_IN_REASON`] roles), naming the condition, never the target's value.
fn unmet_reason(unmet: &[Unmet<'_>]) -> (DenialCode, String) {
    let code = if unmet
        .iter()
        .any(|(_, _, check)| *check == Check::MissingClaim)
    {
        DenialCode::MissingClaim
    } else {
        DenialCode::TargetCondition
    };
    let mut parts: Vec<String> = unmet
        .iter()
        .take(MAX_ROLES_IN_REASON)
        .map(|(role, condition, check)| {
            let how = match check {
                Check::MissingClaim => format!(
                    "needs the token's claim {}, which it lacks",
                    condition.claim().unwrap_or_default()
                ),
                Check::MissingFacts => "was not evaluated: the user's facts were not read".into(),
                Check::Held | Check::Failed => "does not hold for this user".into(),
            };
            format!(
                "role {}'s target condition ({}) {how}",
                role.name,
                condition.describe()
            )
        })
        .collect();
    if unmet.len() > MAX_ROLES_IN_REASON {
        parts.push(format!(
            "and {} more roles",
            unmet.len() - MAX_ROLES_IN_REASON
        ));
    }
    (code, format!("no applicable role: {}", parts.join("; ")))
}

/// At most [`MAX_ROLES_IN_REASON`] role names, each cut short, then how many more there are.
fn role_list(roles: &[String]) -> String {
    let mut shown: Vec<String> = roles
        .iter()
        .take(MAX_ROLES_IN_REASON)
        .map(|role| {
            if role.chars().count() > MAX_ROLE_NAME_CHARS {
                let cut: String = role.chars().take(MAX_ROLE_NAME_CHARS).collect();
                format!("{cut}…")
            } else {
                role.clone()
            }
        })
        .collect();
    if roles.len() > MAX_ROLES_IN_REASON {
        shown.push(format!("and {} more", roles.len() - MAX_ROLES_IN_REASON));
    }
    shown.join(", ")
}

fn protected(evaluation: &Evaluation<'_>, attribute: &str, _value: &str) -> Verdict {
    match evaluation.policy.protecting_glob(attribute) {
        Some(glob) => Verdict::Deny(
            DenialCode::Protected,
            format!("protected by the policy (glob \"{glob}\")"),
        ),
        None => Verdict::Next,
    }
}

fn immutable(_evaluation: &Evaluation<'_>, attribute: &str, _value: &str) -> Verdict {
    if attribute == IMMUTABLE_ATTRIBUTE {
        Verdict::Deny(
            DenialCode::ImmutableAttribute,
            "sub is Cognito's immutable user id and is never writable".to_owned(),
        )
    } else {
        Verdict::Next
    }
}

fn applicable_role(evaluation: &Evaluation<'_>, _attribute: &str, _value: &str) -> Verdict {
    match &evaluation.no_role {
        Some((code, reason)) => Verdict::Deny(*code, reason.clone()),
        None => Verdict::Next,
    }
}

fn role_deny(evaluation: &Evaluation<'_>, attribute: &str, _value: &str) -> Verdict {
    let denying = evaluation
        .applicable
        .iter()
        .find_map(|role| first_match(&role.deny, attribute).map(|glob| (role, glob)));
    match denying {
        Some((role, glob)) => Verdict::Deny(
            DenialCode::RoleDeny,
            format!("denied to role {} (glob \"{glob}\")", role.name),
        ),
        None => Verdict::Next,
    }
}

/// A `*_verified` flag is decided here alone: `update` globs never grant one.
fn verify_grant(evaluation: &Evaluation<'_>, attribute: &str, _value: &str) -> Verdict {
    let Some(verifiable) = Verifiable::from_flag(attribute) else {
        return Verdict::Next;
    };
    if evaluation
        .applicable
        .iter()
        .any(|role| role.verify.contains(&verifiable))
    {
        Verdict::Allow
    } else {
        Verdict::Deny(
            DenialCode::NoVerifyGrant,
            format!(
                "no applicable role may mark {} as verified",
                verifiable.attribute()
            ),
        )
    }
}

/// Allowed if some role's update globs match and that same role's constraint, if
/// any, accepts the value. One role's constraint never restricts another role's grant.
fn update_grant(evaluation: &Evaluation<'_>, attribute: &str, value: &str) -> Verdict {
    let mut rejections = Vec::new();
    for role in &evaluation.applicable {
        if !role.update.iter().any(|glob| glob.matches(attribute)) {
            continue;
        }
        match role
            .constraints
            .get(attribute)
            .map(|constraint| constraint.check(value, evaluation.claims))
        {
            None | Some(Ok(())) => return Verdict::Allow,
            Some(Err(rejection)) => rejections.push(rejection.clone_with(format!(
                "value rejected by constraint of role {}: {}",
                role.name, rejection.text
            ))),
        }
    }
    if rejections.is_empty() {
        return Verdict::Deny(
            DenialCode::NotGranted,
            format!("no applicable role grants {attribute}"),
        );
    }
    let code = if rejections.iter().all(|rejection| rejection.missing_claim) {
        DenialCode::MissingClaim
    } else {
        DenialCode::Constraint
    };
    let texts: Vec<String> = rejections.into_iter().map(|r| r.text).collect();
    Verdict::Deny(code, texts.join("; "))
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
