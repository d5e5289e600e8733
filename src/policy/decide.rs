//! The decision: which requested attribute changes the caller's roles may make in a pool, each denial with a stable code and a reason. Pure and infallible; must not depend on actix, aws, tokio or the filesystem.
//!
//! An attribute is decided by an ordered list of small rules ([`RULES`]): each one
//! denies, allows, or passes the attribute to the next, from the most absolute rule
//! (`protected`) to the most specific (an update grant and its constraint).

use std::collections::BTreeMap;
use std::fmt;

use super::compile::{Policy, Role, first_match};
use super::target::{Check, Condition};
use crate::attribute::{IMMUTABLE_ATTRIBUTE, Verifiable};

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

/// The most role names a reason lists; the rest are counted.
const MAX_ROLES_IN_REASON: usize = 5;
/// The most characters of one role name a reason quotes.
const MAX_ROLE_NAME_CHARS: usize = 64;

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
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The caller's roles that applied in this pool, in policy file order.
    pub applicable_roles: Vec<String>,
    /// Every denied attribute, sorted by attribute name.
    pub denied: Vec<Denial>,
    /// Every target condition of the caller's roles in this pool, with whether it held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionResult>,
    /// A condition needed target facts the request did not carry (and so failed).
    #[serde(skip)]
    lacked_facts: bool,
    /// What was decided. Private, so that no one outside this module can make an
    /// "allowed" decision without asking the policy, and an empty request is never allowed.
    #[serde(skip)]
    decided: AllowedChanges,
}

impl Decision {
    /// Allowed only if at least one attribute was asked for and none was denied.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        !self.decided.attributes.is_empty() && self.denied.is_empty()
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

/// Attribute changes that the policy allowed, every one of them: the only value
/// Cognito's update accepts. Only [`Decision::into_allowed`] makes one.
#[derive(Clone, PartialEq, Eq, Default)]
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
mod tests {
    use std::collections::BTreeMap;

    use super::super::compile::Policy;
    use super::{Decision, DecisionRequest, DenialCode, decide};

    const POLICY: &str = r#"
version: 1
protected: [sub, "custom:tenant_id"]
roles:
  support:
    pools: ["us-east-1_*"]
    update: [given_name, family_name, nickname, "custom:plan"]
    deny: ["email*"]
  billing:
    update: ["custom:plan", "custom:billing_*"]
    constraints:
      "custom:plan": {one_of: [free, pro]}
      "custom:billing_zip": {pattern: "[0-9]{5}", max_length: 5}
  identity-admin:
    update: ["*"]
    verify: [email, phone_number]
  verifier:
    verify: [email]
  editor:
    update: ["*"]
  auditor:
    pools: ["eu-west-1_*"]
    update: [locale]
"#;

    fn policy() -> Policy {
        Policy::parse(POLICY).unwrap_or_else(|error| panic!("test policy is valid: {error}"))
    }

    fn decide_for(roles: &[&str], pool: &str, attributes: &[(&str, &str)]) -> Decision {
        let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
        let attributes: BTreeMap<String, String> = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        decide(&policy(), &DecisionRequest::new(&roles, pool, &attributes))
    }

    fn denied_names(decision: &Decision) -> Vec<&str> {
        decision
            .denied
            .iter()
            .map(|d| d.attribute.as_str())
            .collect()
    }

    const US: &str = "us-east-1_AbC123";
    const EU: &str = "eu-west-1_XyZ789";

    /// (test name, roles, pool, attributes, denied attribute => expected reason)
    type Row = (
        &'static str,
        &'static [&'static str],
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
    );

    /// Decides the row's request and checks that exactly the row's denials come out.
    fn assert_row(&(name, roles, pool, attributes, expected): &Row) {
        // Act
        let decision = decide_for(roles, pool, attributes);

        // Assert
        let denied: Vec<(&str, &str)> = decision
            .denied
            .iter()
            .map(|d| (d.attribute.as_str(), d.reason.as_str()))
            .collect();
        assert_eq!(denied, expected, "{name}");
        assert_eq!(decision.is_allowed(), expected.is_empty(), "{name}");
    }

    const RULE_ROWS: &[Row] = &[
        (
            "a granted attribute is allowed",
            &["support"],
            US,
            &[("given_name", "Ann")],
            &[],
        ),
        (
            "an attribute no applicable role grants is denied",
            &["support"],
            US,
            &[("locale", "en")],
            &[("locale", "no applicable role grants locale")],
        ),
        (
            "protected beats a star grant",
            &["identity-admin"],
            US,
            &[("custom:tenant_id", "t2")],
            &[(
                "custom:tenant_id",
                "protected by the policy (glob \"custom:tenant_id\")",
            )],
        ),
        (
            "sub is protected by the policy",
            &["identity-admin"],
            US,
            &[("sub", "x")],
            &[("sub", "protected by the policy (glob \"sub\")")],
        ),
        (
            "verify grants the matching flag",
            &["verifier"],
            US,
            &[("email_verified", "true")],
            &[],
        ),
        (
            "verify email does not grant phone_number_verified",
            &["verifier"],
            US,
            &[("phone_number_verified", "true")],
            &[(
                "phone_number_verified",
                "no applicable role may mark phone_number as verified",
            )],
        ),
        (
            "verify email does not grant email itself",
            &["verifier"],
            US,
            &[("email", "a@example.com")],
            &[("email", "no applicable role grants email")],
        ),
        (
            "setting a verified flag to false also needs verify",
            &["billing"],
            US,
            &[("email_verified", "false")],
            &[(
                "email_verified",
                "no applicable role may mark email as verified",
            )],
        ),
        (
            "a constraint accepts an allowed value",
            &["billing"],
            US,
            &[("custom:plan", "pro")],
            &[],
        ),
        (
            "a constraint rejects a value outside one_of",
            &["billing"],
            US,
            &[("custom:plan", "enterprise")],
            &[(
                "custom:plan",
                "value rejected by constraint of role billing: must be one of [free, pro]",
            )],
        ),
        (
            "a delete is decided like any value",
            &["billing"],
            US,
            &[("custom:plan", "")],
            &[(
                "custom:plan",
                "value rejected by constraint of role billing: must be one of [free, pro]",
            )],
        ),
        (
            "a pattern must match the whole value",
            &["billing"],
            US,
            &[("custom:billing_zip", "123456")],
            &[(
                "custom:billing_zip",
                "value rejected by constraint of role billing: must fully match the pattern \"[0-9]{5}\" and must be at most 5 characters long",
            )],
        ),
        (
            "an unconstrained attribute of the same role is not restricted",
            &["billing"],
            US,
            &[("custom:billing_name", "anything at all")],
            &[],
        ),
        (
            "a role scoped to another pool does not apply",
            &["auditor", "support"],
            US,
            &[("locale", "en")],
            &[("locale", "no applicable role grants locale")],
        ),
        (
            "a role scoped to this pool applies",
            &["auditor"],
            EU,
            &[("locale", "en")],
            &[],
        ),
        (
            "roles the policy does not name are ignored",
            &["root", "admin"],
            US,
            &[("nickname", "x")],
            &[(
                "nickname",
                "no applicable role: none of the token's roles [root, admin] applies to pool us-east-1_AbC123",
            )],
        ),
        (
            "a token without roles is denied everything",
            &[],
            US,
            &[("nickname", "x")],
            &[("nickname", "no applicable role: the token carries no roles")],
        ),
    ];

    #[test]
    fn every_decision_rule_denies_or_allows_as_specified() {
        let table = RULE_ROWS;
        for row in table {
            assert_row(row);
        }
    }

    #[test]
    fn one_roles_deny_beats_another_roles_grant() {
        assert_row(&(
            "one role's deny beats another role's grant",
            &["support", "identity-admin"],
            US,
            &[("email", "a@example.com")],
            &[("email", "denied to role support (glob \"email*\")")],
        ));
    }

    #[test]
    fn a_deny_also_beats_a_verify_grant_from_another_role() {
        assert_row(&(
            "a deny also beats a verify grant from another role",
            &["support", "identity-admin"],
            US,
            &[("email_verified", "true")],
            &[("email_verified", "denied to role support (glob \"email*\")")],
        ));
    }

    #[test]
    fn a_star_update_grant_never_grants_email_verified() {
        assert_row(&(
            "a star update grant never grants email_verified",
            &["editor"],
            US,
            &[("email_verified", "true"), ("nickname", "x")],
            &[(
                "email_verified",
                "no applicable role may mark email as verified",
            )],
        ));
    }

    #[test]
    fn role_as_constraint_does_not_restrict_a_grant_from_role_b() {
        assert_row(&(
            "role A's constraint does not restrict a grant from role B",
            &["billing", "support"],
            US,
            &[("custom:plan", "enterprise")],
            &[],
        ));
    }

    #[test]
    fn role_names_are_case_sensitive() {
        assert_row(&(
            "role names are case-sensitive",
            &["Support", "SUPPORT"],
            US,
            &[("given_name", "Ann")],
            &[(
                "given_name",
                "no applicable role: none of the token's roles [Support, SUPPORT] applies to pool us-east-1_AbC123",
            )],
        ));
    }

    #[test]
    fn pools_globs_limit_where_a_role_applies() {
        assert_row(&(
            "pools globs limit where a role applies",
            &["support"],
            EU,
            &[("given_name", "Ann")],
            &[(
                "given_name",
                "no applicable role: none of the token's roles [support] applies to pool eu-west-1_XyZ789",
            )],
        ));
    }

    #[test]
    fn every_denied_attribute_is_listed_sorted_by_name() {
        // Act
        let decision = decide_for(
            &["support"],
            US,
            &[
                ("nickname", "ok"),
                ("zoneinfo", "Europe/Paris"),
                ("email", "a@example.com"),
                ("custom:tenant_id", "t"),
                ("given_name", "Ann"),
                ("email_verified", "true"),
            ],
        );

        // Assert
        assert!(!decision.is_allowed());
        assert_eq!(
            denied_names(&decision),
            ["custom:tenant_id", "email", "email_verified", "zoneinfo"]
        );
    }

    #[test]
    fn no_applicable_role_denies_every_attribute() {
        // Act
        let decision = decide_for(
            &["nobody"],
            US,
            &[("given_name", "a"), ("nickname", "b"), ("locale", "c")],
        );

        // Assert
        assert!(decision.applicable_roles.is_empty());
        assert_eq!(
            denied_names(&decision),
            ["given_name", "locale", "nickname"]
        );
    }

    #[test]
    fn protected_beats_everything_even_verify() {
        // Arrange
        let policy = Policy::parse(
            "version: 1\nprotected: [\"*_verified\"]\nroles:\n  admin:\n    update: [\"*\"]\n    verify: [email]\n",
        )
        .expect("valid");
        let attributes = BTreeMap::from([("email_verified".to_owned(), "true".to_owned())]);
        let roles = ["admin".to_owned()];

        // Act
        let decision = decide(&policy, &DecisionRequest::new(&roles, US, &attributes));

        // Assert
        assert_eq!(
            decision.denied[0].reason,
            "protected by the policy (glob \"*_verified\")"
        );
    }

    #[test]
    fn sub_is_never_writable_even_when_the_policy_forgets_to_protect_it() {
        // Arrange
        let policy =
            Policy::parse("version: 1\nroles:\n  admin:\n    update: [\"*\"]\n").expect("valid");
        let attributes = BTreeMap::from([("sub".to_owned(), "someone-else".to_owned())]);
        let roles = ["admin".to_owned()];

        // Act
        let decision = decide(&policy, &DecisionRequest::new(&roles, US, &attributes));

        // Assert
        assert_eq!(
            decision.denied[0].reason,
            "sub is Cognito's immutable user id and is never writable"
        );
    }

    #[test]
    fn applicable_roles_are_reported_in_policy_order_without_duplicates() {
        // Act
        let decision = decide_for(
            &["identity-admin", "auditor", "support", "support"],
            US,
            &[("given_name", "a")],
        );

        // Assert
        assert_eq!(decision.applicable_roles, ["support", "identity-admin"]);
    }

    #[test]
    fn constraints_of_every_granting_role_are_named_when_all_reject() {
        // Arrange
        let policy = Policy::parse(
            "version: 1\nroles:\n  a:\n    update: [x]\n    constraints: {x: {max_length: 1}}\n  b:\n    update: [\"*\"]\n    constraints: {x: {one_of: [y]}}\n",
        )
        .expect("valid");
        let attributes = BTreeMap::from([("x".to_owned(), "zz".to_owned())]);
        let roles = ["a".to_owned(), "b".to_owned()];

        // Act
        let decision = decide(&policy, &DecisionRequest::new(&roles, US, &attributes));

        // Assert
        assert_eq!(
            decision.denied[0].reason,
            "value rejected by constraint of role a: must be at most 1 character long; value rejected by constraint of role b: must be one of [y]"
        );
    }

    #[test]
    fn reasons_never_contain_the_requested_value() {
        // Arrange
        let secret = "s3cr3t-value-7f9a";

        // Act
        let decision = decide_for(
            &["billing", "support"],
            US,
            &[
                ("custom:billing_zip", secret),
                ("email", secret),
                ("locale", secret),
                ("custom:tenant_id", secret),
            ],
        );

        // Assert
        assert_eq!(decision.denied.len(), 4);
        assert!(
            decision.denied.iter().all(|d| !d.reason.contains(secret)),
            "{decision:?}"
        );
    }

    #[test]
    fn an_empty_request_is_never_allowed() {
        // Act
        let decision = decide_for(&["identity-admin"], US, &[]);

        // Assert
        assert!(decision.denied.is_empty());
        assert!(!decision.is_allowed());
    }

    #[test]
    fn a_protection_or_deny_of_custom_x_covers_dev_custom_x_and_back() {
        // Arrange
        let policy = Policy::parse(
            "version: 1\nprotected: [\"custom:tenant_id\", \"dev:*\"]\nroles:\n  admin:\n    update: [\"*\"]\n    deny: [\"dev:custom:risk\"]\n",
        )
        .expect("valid");
        let roles = ["admin".to_owned()];
        let attributes = BTreeMap::from([
            ("dev:custom:tenant_id".to_owned(), "t".to_owned()),
            ("custom:risk".to_owned(), "low".to_owned()),
            ("custom:plan".to_owned(), "pro".to_owned()),
        ]);

        // Act
        let decision = decide(&policy, &DecisionRequest::new(&roles, US, &attributes));

        // Assert
        let denied: Vec<(&str, DenialCode)> = decision
            .denied
            .iter()
            .map(|d| (d.attribute.as_str(), d.code))
            .collect();
        assert_eq!(
            denied,
            [
                ("custom:risk", DenialCode::RoleDeny),
                ("dev:custom:tenant_id", DenialCode::Protected),
            ],
            "dev:* protects developer-only attributes, not custom:plan through its alias"
        );
    }

    #[test]
    fn each_rule_denies_with_its_own_stable_code() {
        let table: &[(&[&str], &str, DenialCode)] = &[
            (
                &["identity-admin"],
                "custom:tenant_id",
                DenialCode::Protected,
            ),
            (&["nobody"], "given_name", DenialCode::NoApplicableRole),
            (
                &["support", "identity-admin"],
                "email",
                DenialCode::RoleDeny,
            ),
            (&["support"], "locale", DenialCode::NotGranted),
            (
                &["verifier"],
                "phone_number_verified",
                DenialCode::NoVerifyGrant,
            ),
            (&["billing"], "custom:plan", DenialCode::Constraint),
        ];
        for &(roles, attribute, code) in table {
            // Act
            let decision = decide_for(roles, US, &[(attribute, "enterprise")]);

            // Assert
            assert_eq!(decision.denied[0].code, code, "{attribute} for {roles:?}");
        }
    }

    #[test]
    fn sub_is_denied_with_the_immutable_attribute_code_when_not_protected() {
        // Arrange
        let policy =
            Policy::parse("version: 1\nroles:\n  admin:\n    update: [\"*\"]\n").expect("valid");
        let attributes = BTreeMap::from([("sub".to_owned(), "x".to_owned())]);
        let roles = ["admin".to_owned()];

        // Act
        let decision = decide(&policy, &DecisionRequest::new(&roles, US, &attributes));

        // Assert
        assert_eq!(decision.denied[0].code, DenialCode::ImmutableAttribute);
    }

    #[test]
    fn a_reason_names_at_most_five_of_the_tokens_roles_and_counts_the_rest() {
        // Arrange
        let roles: Vec<String> = (0..9000).map(|i| format!("made-up-role-{i}")).collect();
        let attributes = BTreeMap::from([("given_name".to_owned(), "Ann".to_owned())]);

        // Act
        let decision = decide(&policy(), &DecisionRequest::new(&roles, US, &attributes));

        // Assert
        assert_eq!(
            decision.denied[0].reason,
            "no applicable role: none of the token's roles [made-up-role-0, made-up-role-1, made-up-role-2, made-up-role-3, made-up-role-4, and 8995 more] applies to pool us-east-1_AbC123"
        );
    }

    #[test]
    fn a_very_long_role_name_is_cut_short_in_a_reason() {
        // Arrange
        let roles = vec!["r".repeat(100_000)];
        let attributes = BTreeMap::from([("given_name".to_owned(), "Ann".to_owned())]);

        // Act
        let decision = decide(&policy(), &DecisionRequest::new(&roles, US, &attributes));

        // Assert
        assert!(
            decision.denied[0].reason.len() < 200,
            "{}",
            decision.denied[0].reason
        );
    }

    #[test]
    fn only_an_allowed_decision_gives_the_right_to_write_exactly_what_was_decided() {
        // Arrange
        let allowed = decide_for(&["support"], US, &[("given_name", "Ann")]);
        let denied = decide_for(&["support"], US, &[("given_name", "Ann"), ("locale", "en")]);
        let empty = decide_for(&["support"], US, &[]);

        // Act
        let changes = allowed.into_allowed().expect("allowed");

        // Assert
        assert_eq!(
            changes.as_map(),
            &BTreeMap::from([("given_name".to_owned(), "Ann".to_owned())])
        );
        assert!(denied.into_allowed().is_err());
        assert!(empty.into_allowed().is_err());
        assert!(!format!("{changes:?}").contains("Ann"));
    }

    #[test]
    fn roles_held_twice_or_in_any_order_apply_once_in_policy_order() {
        // Act
        let decision = decide_for(
            &["verifier", "billing", "verifier", "billing"],
            US,
            &[("custom:plan", "pro")],
        );

        // Assert
        assert_eq!(decision.applicable_roles, ["billing", "verifier"]);
    }

    #[test]
    fn a_decision_serializes_its_roles_and_denials_only() {
        // Arrange
        let decision = decide_for(&["verifier"], US, &[("phone_number_verified", "true")]);

        // Act
        let json = serde_json::to_value(&decision).expect("serializable");

        // Assert
        assert_eq!(
            json,
            serde_json::json!({
                "applicable_roles": ["verifier"],
                "denied": [{"attribute": "phone_number_verified", "code": "no_verify_grant", "reason": "no applicable role may mark phone_number as verified"}]
            })
        );
    }

    mod conditions {
        use std::collections::BTreeMap;

        use super::super::super::compile::Policy;
        use super::super::{Claims, Decision, DecisionRequest, DenialCode, TargetFacts, decide};

        const POLICY: &str = r#"
version: 1
protected: [sub]
roles:
  tenant-admin:
    update: [given_name, "custom:tenant_id"]
    target:
      attributes:
        "custom:tenant_id": {equals_claim: tenant}
      groups:
        none_of: [admins]
    constraints:
      "custom:tenant_id": {equals_claim: tenant}
  trial-support:
    update: [nickname]
    target:
      attributes:
        "custom:status": {one_of: [active, trial]}
  support:
    update: [locale]
    deny: [given_name]
"#;
        const POOL: &str = "us-east-1_A";

        fn decide_with(
            roles: &[&str],
            claims: &[(&str, &str)],
            target: Option<TargetFacts>,
            attributes: &[(&str, &str)],
        ) -> Decision {
            let policy = Policy::parse(POLICY).expect("valid");
            let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
            let claims: Claims = claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect();
            let attributes: BTreeMap<String, String> = attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            decide(
                &policy,
                &DecisionRequest::new(&roles, POOL, &attributes)
                    .with_facts(&claims, target.as_ref()),
            )
        }

        fn user(tenant: &str, groups: &[&str]) -> Option<TargetFacts> {
            Some(TargetFacts {
                attributes: BTreeMap::from([("custom:tenant_id".to_owned(), tenant.to_owned())]),
                groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
            })
        }

        fn codes(decision: &Decision) -> Vec<(&str, DenialCode)> {
            decision
                .denied
                .iter()
                .map(|d| (d.attribute.as_str(), d.code))
                .collect()
        }

        #[test]
        fn a_tenant_admin_changes_a_user_of_its_own_tenant() {
            let decision = decide_with(
                &["tenant-admin"],
                &[("tenant", "a")],
                user("a", &[]),
                &[("given_name", "Ann"), ("custom:tenant_id", "a")],
            );

            assert!(decision.is_allowed(), "{decision:?}");
            assert_eq!(decision.conditions.len(), 2);
            assert!(decision.conditions.iter().all(|c| c.held));
        }

        #[test]
        fn a_tenant_admin_cannot_touch_another_tenants_user_and_the_reason_hides_the_value() {
            let decision = decide_with(
                &["tenant-admin"],
                &[("tenant", "a")],
                user("secret-tenant-b", &[]),
                &[("given_name", "Ann")],
            );

            assert_eq!(
                codes(&decision),
                [("given_name", DenialCode::TargetCondition)]
            );
            let reason = &decision.denied[0].reason;
            assert_eq!(
                reason,
                "no applicable role: role tenant-admin's target condition (custom:tenant_id equals_claim tenant) does not hold for this user"
            );
            assert!(!reason.contains("secret-tenant-b"));
        }

        #[test]
        fn a_tenant_admin_cannot_move_a_user_into_another_tenant() {
            let decision = decide_with(
                &["tenant-admin"],
                &[("tenant", "a")],
                user("a", &[]),
                &[("custom:tenant_id", "b")],
            );

            assert_eq!(
                codes(&decision),
                [("custom:tenant_id", DenialCode::Constraint)]
            );
            assert_eq!(
                decision.denied[0].reason,
                "value rejected by constraint of role tenant-admin: must equal the token's claim tenant"
            );
        }

        #[test]
        fn a_token_without_the_claim_is_denied_with_missing_claim() {
            let decision = decide_with(
                &["tenant-admin"],
                &[],
                user("a", &[]),
                &[("given_name", "x")],
            );

            assert_eq!(codes(&decision), [("given_name", DenialCode::MissingClaim)]);
            assert!(
                decision.denied[0]
                    .reason
                    .contains("needs the token's claim tenant")
            );
        }

        #[test]
        fn a_none_of_condition_protects_admins() {
            let decision = decide_with(
                &["tenant-admin"],
                &[("tenant", "a")],
                user("a", &["admins"]),
                &[("given_name", "x")],
            );

            assert_eq!(
                codes(&decision),
                [("given_name", DenialCode::TargetCondition)]
            );
            assert!(
                decision.denied[0]
                    .reason
                    .contains("groups none_of [admins]")
            );
        }

        #[test]
        fn an_absent_target_attribute_makes_its_condition_false() {
            let decision = decide_with(
                &["trial-support"],
                &[],
                Some(TargetFacts::default()),
                &[("nickname", "x")],
            );

            assert_eq!(
                codes(&decision),
                [("nickname", DenialCode::TargetCondition)]
            );
        }

        #[test]
        fn a_role_whose_target_does_not_hold_grants_and_denies_nothing() {
            // support's deny of given_name still wins; tenant-admin grants nothing here.
            let decision = decide_with(
                &["tenant-admin", "support"],
                &[("tenant", "a")],
                user("b", &[]),
                &[("given_name", "x"), ("locale", "en")],
            );

            assert_eq!(codes(&decision), [("given_name", DenialCode::RoleDeny)]);
            assert_eq!(decision.applicable_roles, ["support"]);
        }

        #[test]
        fn a_condition_without_the_facts_it_needs_fails_closed_and_says_so() {
            let decision = decide_with(
                &["tenant-admin"],
                &[("tenant", "a")],
                None,
                &[("given_name", "x")],
            );

            assert!(!decision.is_allowed());
            assert!(decision.lacked_target_facts());
        }

        #[test]
        fn the_policy_says_which_facts_a_caller_needs_read() {
            let policy = Policy::parse(POLICY).expect("valid");
            let roles = |names: &[&str]| names.iter().map(|r| (*r).to_owned()).collect::<Vec<_>>();

            assert_eq!(policy.target_needs(&roles(&["support"]), POOL), None);
            assert_eq!(policy.target_needs(&roles(&["nobody"]), POOL), None);
            assert_eq!(
                policy
                    .target_needs(&roles(&["trial-support"]), POOL)
                    .map(|n| n.groups),
                Some(false)
            );
            assert_eq!(
                policy
                    .target_needs(&roles(&["tenant-admin"]), POOL)
                    .map(|n| n.groups),
                Some(true)
            );
        }
    }
}
