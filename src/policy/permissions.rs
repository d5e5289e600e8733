//! What a caller's roles may update, verify and view in one pool, for `GET /permissions`. Must not depend on actix, aws, tokio or the filesystem.

use std::collections::BTreeMap;

use super::compile::{Policy, Role};
use super::constraint::ConstraintView;
use super::decide::{ConditionResult, Evaluation};
use super::facts::DecisionRequest;
use crate::attribute::{IMMUTABLE_ATTRIBUTE, Verifiable};

/// The caller's effective permissions in one pool (and, when asked, for one user).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Permissions {
    pub(crate) pool_id: String,
    /// The user the roles' `target` conditions were evaluated for, when one was named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<String>,
    /// Globs no role may write: the policy's `protected`, plus `sub` when the policy
    /// does not already cover it (it is never writable).
    pub(crate) protected: Vec<String>,
    /// Globs no role may read: the policy's `hidden`.
    pub(crate) hidden: Vec<String>,
    /// The roles that apply to this caller in this pool, in policy file order. Without
    /// a user, roles with `target` conditions are listed too, marked `conditional`;
    /// for a named user, only the roles whose conditions hold for that user.
    pub(crate) roles: Vec<RolePermissions>,
    /// The attributes (`email`, `phone_number`) whose `_verified` flag the caller may
    /// actually set here: granted by some applicable (not conditional) role, and not
    /// protected or denied.
    pub(crate) can_verify: Vec<String>,
    /// For a named user: every target condition evaluated, with whether it held.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) conditions: Vec<ConditionResult>,
}

/// One applicable role, as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct RolePermissions {
    pub(crate) role: String,
    pub(crate) pools: Vec<String>,
    pub(crate) update: Vec<String>,
    pub(crate) verify: Vec<String>,
    pub(crate) deny: Vec<String>,
    /// What the role may read (`GET …/attributes`), less the policy's `hidden`.
    pub(crate) view: Vec<String>,
    pub(crate) constraints: BTreeMap<String, ConstraintView>,
    /// True when the role applies only to target users that meet its `target`
    /// conditions, and no user was named: ask again with `username`.
    #[serde(skip_serializing_if = "is_false")]
    pub(crate) conditional: bool,
    /// The role's `target` conditions, as written (`custom:tenant_id equals_claim tenant`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) target: Vec<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The permissions of the caller in `request` (its roles and claims) in its pool. With
/// target facts, conditional roles count only where their conditions hold; without,
/// they are listed as conditional and grant nothing here.
#[must_use]
pub(crate) fn permissions(
    policy: &Policy,
    request: &DecisionRequest<'_>,
    username: Option<&str>,
) -> Permissions {
    let evaluation = Evaluation::new(policy, request);
    let mut protected: Vec<String> = policy
        .protected
        .iter()
        .map(|glob| glob.as_str().to_owned())
        .collect();
    if policy.protecting_glob(IMMUTABLE_ATTRIBUTE).is_none() {
        protected.push(IMMUTABLE_ATTRIBUTE.to_owned());
    }
    // The same rule as `decide`, so this answer cannot drift from what a PATCH would get.
    let can_verify = Verifiable::ALL
        .into_iter()
        .filter(|verifiable| evaluation.denial(verifiable.flag(), "true").is_none())
        .map(|verifiable| verifiable.attribute().to_owned())
        .collect();
    let listed = if request.target.is_some() {
        &evaluation.applicable
    } else {
        &evaluation.held
    };
    Permissions {
        pool_id: request.pool_id.to_owned(),
        username: username.map(str::to_owned),
        protected,
        hidden: policy
            .hidden
            .iter()
            .map(|glob| glob.as_str().to_owned())
            .collect(),
        roles: listed
            .iter()
            .map(|role| view(role, request.target.is_none()))
            .collect(),
        can_verify,
        conditions: if request.target.is_some() {
            evaluation.conditions().to_vec()
        } else {
            Vec::new()
        },
    }
}

fn view(role: &Role, unevaluated: bool) -> RolePermissions {
    let globs =
        |globs: &[super::glob::Glob]| globs.iter().map(|glob| glob.as_str().to_owned()).collect();
    let target: Vec<String> = role
        .target
        .iter()
        .flat_map(|target| &target.conditions)
        .map(super::target::Condition::describe)
        .collect();
    RolePermissions {
        role: role.name.clone(),
        pools: globs(&role.pools),
        update: globs(&role.update),
        verify: role
            .verify
            .iter()
            .map(|v| v.attribute().to_owned())
            .collect(),
        deny: globs(&role.deny),
        view: globs(&role.view),
        constraints: role
            .constraints
            .iter()
            .map(|(attribute, constraint)| (attribute.clone(), constraint.view()))
            .collect(),
        conditional: unevaluated && !target.is_empty(),
        target,
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::Policy;
    use super::super::facts::DecisionRequest;

    const POLICY: &str = r#"
version: 1
protected: ["custom:tenant_id"]
hidden: ["custom:ssn"]
roles:
  support:
    pools: ["us-east-1_*"]
    update: [given_name]
    deny: ["email*"]
  billing:
    update: ["custom:plan"]
    view: ["custom:*", email]
    constraints:
      "custom:plan": {one_of: [free, pro], max_length: 4}
  identity-admin:
    update: ["*"]
    verify: [email, phone_number]
"#;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn permissions(policy: &Policy, roles: &[String], pool: &str) -> super::Permissions {
        super::permissions(policy, &DecisionRequest::about(roles, pool), None)
    }

    #[test]
    fn permissions_list_only_applicable_roles_with_their_globs_and_constraints() {
        // Arrange
        let policy = Policy::parse(POLICY).expect("valid");

        // Act
        let permissions = permissions(
            &policy,
            &roles(&["billing", "support", "unknown"]),
            "eu-west-1_X",
        );

        // Assert
        let json = serde_json::to_value(&permissions).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({
                "pool_id": "eu-west-1_X",
                "protected": ["custom:tenant_id", "sub"],
                "hidden": ["custom:ssn"],
                "roles": [{
                    "role": "billing",
                    "pools": ["*"],
                    "update": ["custom:plan"],
                    "verify": [],
                    "deny": [],
                    "view": ["custom:*", "email"],
                    "constraints": {"custom:plan": {"one_of": ["free", "pro"], "max_length": 4}}
                }],
                "can_verify": []
            })
        );
    }

    #[test]
    fn can_verify_is_what_decide_would_allow() {
        // Arrange
        let policy = Policy::parse(POLICY).expect("valid");

        // Act
        let admin_alone = permissions(&policy, &roles(&["identity-admin"]), "us-east-1_X");
        let admin_with_support = permissions(
            &policy,
            &roles(&["identity-admin", "support"]),
            "us-east-1_X",
        );

        // Assert
        assert_eq!(admin_alone.can_verify, ["email", "phone_number"]);
        assert_eq!(
            admin_with_support.can_verify,
            ["phone_number"],
            "support denies email*"
        );
    }

    #[test]
    fn sub_is_not_listed_twice_when_the_policy_protects_it() {
        // Arrange
        let policy = Policy::parse("version: 1\nprotected: [\"s*\"]\n").expect("valid");

        // Act
        let permissions = permissions(&policy, &[], "us-east-1_X");

        // Assert
        assert_eq!(permissions.protected, ["s*"]);
        assert!(permissions.roles.is_empty());
    }
}
