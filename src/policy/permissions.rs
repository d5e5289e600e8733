//! What a caller's roles may update and verify in one pool, for `GET /permissions`. Must not depend on actix, aws, tokio or the filesystem.

use std::collections::BTreeMap;

use super::compile::{Policy, Role};
use super::constraint::ConstraintView;
use super::decide::Evaluation;
use crate::attribute::{IMMUTABLE_ATTRIBUTE, Verifiable};

/// The caller's effective permissions in one pool.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct Permissions {
    pub pool_id: String,
    /// Globs no role may write: the policy's `protected`, plus `sub` when the policy
    /// does not already cover it (it is never writable).
    pub protected: Vec<String>,
    /// Only the roles that apply to this caller in this pool, in policy file order.
    pub roles: Vec<RolePermissions>,
    /// The attributes (`email`, `phone_number`) whose `_verified` flag the caller may
    /// actually set here: granted by some role, and not protected or denied.
    pub can_verify: Vec<String>,
}

/// One applicable role, as written in the policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct RolePermissions {
    pub role: String,
    pub pools: Vec<String>,
    pub update: Vec<String>,
    pub verify: Vec<String>,
    pub deny: Vec<String>,
    pub constraints: BTreeMap<String, ConstraintView>,
}

/// The permissions that `roles` (from a token) have in `pool_id`.
#[must_use]
pub(crate) fn permissions(policy: &Policy, roles: &[String], pool_id: &str) -> Permissions {
    let evaluation = Evaluation::new(policy, roles, pool_id);
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
    Permissions {
        pool_id: pool_id.to_owned(),
        protected,
        roles: evaluation
            .applicable
            .iter()
            .map(|role| view(role))
            .collect(),
        can_verify,
    }
}

fn view(role: &Role) -> RolePermissions {
    let globs =
        |globs: &[super::glob::Glob]| globs.iter().map(|glob| glob.as_str().to_owned()).collect();
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
        constraints: role
            .constraints
            .iter()
            .map(|(attribute, constraint)| (attribute.clone(), constraint.view()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::compile::Policy;
    use super::permissions;

    const POLICY: &str = r#"
version: 1
protected: ["custom:tenant_id"]
roles:
  support:
    pools: ["us-east-1_*"]
    update: [given_name]
    deny: ["email*"]
  billing:
    update: ["custom:plan"]
    constraints:
      "custom:plan": {one_of: [free, pro], max_length: 4}
  identity-admin:
    update: ["*"]
    verify: [email, phone_number]
"#;

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
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
                "roles": [{
                    "role": "billing",
                    "pools": ["*"],
                    "update": ["custom:plan"],
                    "verify": [],
                    "deny": [],
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
