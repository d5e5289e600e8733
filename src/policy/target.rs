//! A role's `target` conditions: facts about the user being changed (its attributes
//! and Cognito groups) compared with fixed values or with the caller's claims. Compiled
//! from the YAML with every problem located, and checked against facts passed in.
//! Pure: must not depend on actix, aws, tokio or the filesystem.

use serde_saphyr::Spanned;

use super::diagnostic::PolicyDiagnostic;
use super::facts::{Claims, TargetFacts};
use super::model::{RawAttributeCondition, RawGroups, RawTarget};
use crate::attribute::check_name;

/// A role's conditions on the target user; the role applies only where all hold.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) conditions: Vec<Condition>,
}

/// One condition on the target user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Condition {
    /// The target's attribute equals the caller's claim (any of its values).
    AttributeEqualsClaim { attribute: String, claim: String },
    /// The target's attribute is one of these values.
    AttributeOneOf {
        attribute: String,
        values: Vec<String>,
    },
    /// The target is in at least one of these groups.
    GroupsAnyOf(Vec<String>),
    /// The target is in none of these groups.
    GroupsNoneOf(Vec<String>),
}

/// How one condition came out for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    Held,
    /// The target's facts do not meet it (an absent attribute included).
    Failed,
    /// The caller's token lacks the claim it compares with.
    MissingClaim,
    /// The facts it needs were not read (the decision fails closed).
    MissingFacts,
}

impl Condition {
    /// The condition as the policy wrote it, naming no value of the target's.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::AttributeEqualsClaim { attribute, claim } => {
                format!("{attribute} equals_claim {claim}")
            }
            Self::AttributeOneOf { attribute, values } => {
                format!("{attribute} one_of [{}]", values.join(", "))
            }
            Self::GroupsAnyOf(groups) => format!("groups any_of [{}]", groups.join(", ")),
            Self::GroupsNoneOf(groups) => format!("groups none_of [{}]", groups.join(", ")),
        }
    }

    /// The target attribute it reads, if any.
    pub(super) fn attribute(&self) -> Option<&str> {
        match self {
            Self::AttributeEqualsClaim { attribute, .. }
            | Self::AttributeOneOf { attribute, .. } => Some(attribute),
            Self::GroupsAnyOf(_) | Self::GroupsNoneOf(_) => None,
        }
    }

    /// The claim it compares with, if any.
    pub(super) fn claim(&self) -> Option<&str> {
        match self {
            Self::AttributeEqualsClaim { claim, .. } => Some(claim),
            _ => None,
        }
    }

    pub(super) fn needs_groups(&self) -> bool {
        matches!(self, Self::GroupsAnyOf(_) | Self::GroupsNoneOf(_))
    }

    pub(super) fn check(&self, target: Option<&TargetFacts>, claims: &Claims) -> Check {
        let held = |holds: bool| if holds { Check::Held } else { Check::Failed };
        match self {
            Self::AttributeEqualsClaim { attribute, claim } => {
                let Some(expected) = claims.get(claim).filter(|values| !values.is_empty()) else {
                    return Check::MissingClaim;
                };
                let Some(target) = target else {
                    return Check::MissingFacts;
                };
                held(
                    target
                        .attributes
                        .get(attribute)
                        .is_some_and(|actual| expected.contains(actual)),
                )
            }
            Self::AttributeOneOf { attribute, values } => match target {
                None => Check::MissingFacts,
                Some(target) => held(
                    target
                        .attributes
                        .get(attribute)
                        .is_some_and(|actual| values.contains(actual)),
                ),
            },
            Self::GroupsAnyOf(groups) | Self::GroupsNoneOf(groups) => {
                let Some(member_of) = target.and_then(|target| target.groups.as_ref()) else {
                    return Check::MissingFacts;
                };
                let in_any = groups.iter().any(|group| member_of.contains(group));
                held(in_any == matches!(self, Self::GroupsAnyOf(_)))
            }
        }
    }
}

/// Compiles a role's `target:`; every problem goes to `errors` or `warnings`.
pub(super) fn compile(
    role: &str,
    raw: &Spanned<RawTarget>,
    errors: &mut Vec<PolicyDiagnostic>,
    warnings: &mut Vec<PolicyDiagnostic>,
) -> Option<Target> {
    let before = errors.len();
    let mut conditions = Vec::new();
    for (attribute, condition) in &raw.value.attributes.0 {
        conditions.extend(attribute_condition(role, attribute, condition, errors));
    }
    if let Some(groups) = &raw.value.groups {
        conditions.extend(group_conditions(role, groups, errors, warnings));
    }
    if conditions.is_empty() && errors.len() == before {
        errors.push(PolicyDiagnostic::at(
            raw,
            format!(
                "role {role}, target: sets no condition; give attributes and/or groups, or drop target"
            ),
        ));
    }
    (errors.len() == before).then_some(Target { conditions })
}

fn attribute_condition(
    role: &str,
    attribute: &Spanned<String>,
    raw: &RawAttributeCondition,
    errors: &mut Vec<PolicyDiagnostic>,
) -> Option<Condition> {
    let name = attribute.value.as_str();
    let context = format!("role {role}, target attribute {name:?}");
    if let Err(problem) = check_name(name) {
        errors.push(PolicyDiagnostic::at(
            attribute,
            format!("{context}: {problem}"),
        ));
        return None;
    }
    match (&raw.equals_claim, &raw.one_of) {
        (Some(claim), None) => {
            claim_name(&context, claim, errors).map(|claim| Condition::AttributeEqualsClaim {
                attribute: name.to_owned(),
                claim,
            })
        }
        (None, Some(values)) if values.value.is_empty() => {
            errors.push(PolicyDiagnostic::at(
                values,
                format!("{context}: one_of must list at least one value"),
            ));
            None
        }
        (None, Some(values)) => Some(Condition::AttributeOneOf {
            attribute: name.to_owned(),
            values: values.value.clone(),
        }),
        _ => {
            errors.push(PolicyDiagnostic::at(
                attribute,
                format!("{context}: give exactly one of equals_claim and one_of"),
            ));
            None
        }
    }
}

/// A claim name as written after `equals_claim`; empty is an error.
pub(super) fn claim_name(
    context: &str,
    claim: &Spanned<String>,
    errors: &mut Vec<PolicyDiagnostic>,
) -> Option<String> {
    if claim.value.trim().is_empty() {
        errors.push(PolicyDiagnostic::at(
            claim,
            format!("{context}: equals_claim needs a claim name (one of the issuer's `claims`)"),
        ));
        return None;
    }
    Some(claim.value.clone())
}

fn group_conditions(
    role: &str,
    raw: &RawGroups,
    errors: &mut Vec<PolicyDiagnostic>,
    warnings: &mut Vec<PolicyDiagnostic>,
) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if let Some(any_of) = &raw.any_of {
        if any_of.value.is_empty() {
            errors.push(PolicyDiagnostic::at(
                any_of,
                format!(
                    "role {role}, target groups: any_of: [] can never hold; list at least one group, or leave any_of out"
                ),
            ));
        } else {
            conditions.push(Condition::GroupsAnyOf(any_of.value.clone()));
        }
    }
    if let Some(none_of) = &raw.none_of {
        if none_of.value.is_empty() {
            warnings.push(PolicyDiagnostic::at(
                none_of,
                format!("role {role}, target groups: none_of: [] always holds"),
            ));
        } else {
            conditions.push(Condition::GroupsNoneOf(none_of.value.clone()));
        }
    }
    conditions
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{Check, Condition};
    use crate::policy::{Claims, TargetFacts};

    fn facts(tenant: Option<&str>, groups: Option<&[&str]>) -> TargetFacts {
        TargetFacts {
            attributes: tenant
                .map(|t| BTreeMap::from([("custom:tenant_id".to_owned(), t.to_owned())]))
                .unwrap_or_default(),
            groups: groups.map(|g| g.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    fn claims(tenant: &[&str]) -> Claims {
        BTreeMap::from([(
            "tenant".to_owned(),
            tenant.iter().map(|s| (*s).to_owned()).collect(),
        )])
    }

    fn equals_tenant() -> Condition {
        Condition::AttributeEqualsClaim {
            attribute: "custom:tenant_id".into(),
            claim: "tenant".into(),
        }
    }

    #[test]
    fn equals_claim_holds_only_for_the_callers_tenant_and_needs_the_claim_and_the_facts() {
        let a = facts(Some("a"), Some(&["customers"]));
        let absent = facts(None, None);
        let table: &[(&str, Option<&TargetFacts>, Claims, Check)] = &[
            ("same tenant", Some(&a), claims(&["a"]), Check::Held),
            (
                "any element of an array claim",
                Some(&a),
                claims(&["z", "a"]),
                Check::Held,
            ),
            ("another tenant", Some(&a), claims(&["b"]), Check::Failed),
            (
                "absent target attribute",
                Some(&absent),
                claims(&["a"]),
                Check::Failed,
            ),
            ("absent claim", Some(&a), Claims::new(), Check::MissingClaim),
            ("empty claim", Some(&a), claims(&[]), Check::MissingClaim),
            ("facts not read", None, claims(&["a"]), Check::MissingFacts),
        ];
        for (name, target, claims, expected) in table {
            assert_eq!(equals_tenant().check(*target, claims), *expected, "{name}");
        }
    }

    #[test]
    fn one_of_and_group_conditions_hold_fail_or_lack_their_facts() {
        let one_of = Condition::AttributeOneOf {
            attribute: "custom:tenant_id".into(),
            values: vec!["a".into(), "b".into()],
        };
        let any_of = Condition::GroupsAnyOf(vec!["customers".into()]);
        let none_of = Condition::GroupsNoneOf(vec!["admins".into()]);
        let a = facts(Some("a"), Some(&["customers"]));
        let none = Claims::new();
        let table: &[(&str, &Condition, TargetFacts, Check)] = &[
            ("one_of holds", &one_of, a.clone(), Check::Held),
            (
                "one_of on an absent attribute",
                &one_of,
                facts(None, None),
                Check::Failed,
            ),
            ("in a listed group", &any_of, a.clone(), Check::Held),
            (
                "in no listed group",
                &any_of,
                facts(None, Some(&[])),
                Check::Failed,
            ),
            (
                "groups not read",
                &any_of,
                facts(Some("a"), None),
                Check::MissingFacts,
            ),
            ("not an admin", &none_of, a.clone(), Check::Held),
            (
                "an admin",
                &none_of,
                facts(None, Some(&["admins"])),
                Check::Failed,
            ),
        ];
        for (name, condition, target, expected) in table {
            assert_eq!(condition.check(Some(target), &none), *expected, "{name}");
        }
    }

    #[test]
    fn a_description_names_the_condition_and_no_value_of_the_target() {
        assert_eq!(
            equals_tenant().describe(),
            "custom:tenant_id equals_claim tenant"
        );
    }
}
