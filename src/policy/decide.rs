//! The decision: which requested attribute changes the caller's roles may make in a pool, each denial with its reason. Pure and infallible; must not depend on actix, aws, tokio or the filesystem.

use std::collections::BTreeMap;

use super::compile::{IMMUTABLE_ATTRIBUTE, Policy, Role, Verifiable};

/// What the caller asks for, after authentication and input validation.
#[derive(Debug, Clone, Copy)]
pub struct DecisionRequest<'a> {
    /// The roles from the caller's token.
    pub roles: &'a [String],
    pub pool_id: &'a str,
    /// Attribute name to new value; `""` deletes the attribute and counts as a write.
    pub attributes: &'a BTreeMap<String, String>,
}

/// The outcome of [`decide`]. A deny is a value carrying every reason, not an error.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Decision {
    /// The caller's roles that applied in this pool, in policy file order.
    pub applicable_roles: Vec<String>,
    /// Every denied attribute, sorted by attribute name.
    pub denied: Vec<Denial>,
    /// How many attributes were decided. Private, so that no one outside this module can
    /// make an "allowed" decision without asking the policy, and an empty request is never allowed.
    #[serde(skip)]
    attributes_decided: usize,
}

impl Decision {
    /// Allowed only if at least one attribute was asked for and none was denied.
    #[must_use]
    pub fn is_allowed(&self) -> bool {
        self.attributes_decided > 0 && self.denied.is_empty()
    }
}

/// One denied attribute and the rule that denied it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Denial {
    pub attribute: String,
    /// A sentence naming the rule. It never contains the requested value.
    pub reason: String,
}

/// Decides every attribute of `request` under `policy`.
pub fn decide(policy: &Policy, request: &DecisionRequest<'_>) -> Decision {
    let evaluation = Evaluation::new(policy, request.roles, request.pool_id);
    let denied = request
        .attributes
        .iter()
        .filter_map(|(attribute, value)| {
            evaluation.denial(attribute, value).map(|reason| Denial {
                attribute: attribute.clone(),
                reason,
            })
        })
        .collect();
    Decision {
        applicable_roles: evaluation.applicable_role_names(),
        denied,
        attributes_decided: request.attributes.len(),
    }
}

/// The policy seen through one caller's applicable roles in one pool.
pub(super) struct Evaluation<'p> {
    policy: &'p Policy,
    pub(super) applicable: Vec<&'p Role>,
    /// Set when no role applies: the reason every attribute is denied.
    no_role_reason: Option<String>,
}

impl<'p> Evaluation<'p> {
    pub(super) fn new(policy: &'p Policy, caller_roles: &[String], pool_id: &str) -> Self {
        let applicable = policy.applicable_roles(caller_roles, pool_id);
        let no_role_reason = applicable.is_empty().then(|| {
            if caller_roles.is_empty() {
                "no applicable role: the token carries no roles".to_owned()
            } else {
                format!(
                    "no applicable role: none of the token's roles [{}] applies to pool {pool_id}",
                    caller_roles.join(", ")
                )
            }
        });
        Self {
            policy,
            applicable,
            no_role_reason,
        }
    }

    pub(super) fn applicable_role_names(&self) -> Vec<String> {
        self.applicable
            .iter()
            .map(|role| role.name.clone())
            .collect()
    }

    /// `None` if the applicable roles may set `attribute` to `value`; otherwise the reason.
    /// The checks run from the most absolute rule to the most specific one, and the
    /// first that denies gives the reason.
    pub(super) fn denial(&self, attribute: &str, value: &str) -> Option<String> {
        if let Some(glob) = self.policy.protecting_glob(attribute) {
            return Some(format!("protected by the policy (glob \"{glob}\")"));
        }
        if attribute == IMMUTABLE_ATTRIBUTE {
            return Some("sub is Cognito's immutable user id and is never writable".to_owned());
        }
        if let Some(reason) = &self.no_role_reason {
            return Some(reason.clone());
        }
        if let Some((role, glob)) = self.denying_role(attribute) {
            return Some(format!("denied to role {} (glob \"{glob}\")", role.name));
        }
        if let Some(verifiable) = Verifiable::from_flag(attribute) {
            let granted = self
                .applicable
                .iter()
                .any(|role| role.verify.contains(&verifiable));
            return (!granted).then(|| {
                format!(
                    "no applicable role may mark {} as verified",
                    verifiable.attribute()
                )
            });
        }
        self.update_denial(attribute, value)
    }

    fn denying_role(&self, attribute: &str) -> Option<(&'p Role, &'p str)> {
        self.applicable.iter().find_map(|role| {
            role.deny
                .iter()
                .find(|glob| glob.matches(attribute))
                .map(|glob| (*role, glob.as_str()))
        })
    }

    /// Allowed if some role's update globs match and that same role's constraint, if
    /// any, accepts the value. One role's constraint never restricts another role's grant.
    fn update_denial(&self, attribute: &str, value: &str) -> Option<String> {
        let mut rejections = Vec::new();
        for role in &self.applicable {
            if !role.update.iter().any(|glob| glob.matches(attribute)) {
                continue;
            }
            match role
                .constraints
                .get(attribute)
                .map(|constraint| constraint.check(value))
            {
                None | Some(Ok(())) => return None,
                Some(Err(broken)) => rejections.push(format!(
                    "value rejected by constraint of role {}: {broken}",
                    role.name
                )),
            }
        }
        if rejections.is_empty() {
            Some(format!("no applicable role grants {attribute}"))
        } else {
            Some(rejections.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::compile::Policy;
    use super::{Decision, DecisionRequest, Denial, decide};

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
        decide(
            &policy(),
            &DecisionRequest {
                roles: &roles,
                pool_id: pool,
                attributes: &attributes,
            },
        )
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
        let expected: Vec<Denial> = expected
            .iter()
            .map(|&(attribute, reason)| Denial {
                attribute: attribute.to_owned(),
                reason: reason.to_owned(),
            })
            .collect();
        assert_eq!(decision.denied, expected, "{name}");
        assert_eq!(decision.is_allowed(), expected.is_empty(), "{name}");
    }

    #[test]
    fn every_decision_rule_denies_or_allows_as_specified() {
        let table: &[Row] = &[
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
        let decision = decide(
            &policy,
            &DecisionRequest {
                roles: &roles,
                pool_id: US,
                attributes: &attributes,
            },
        );

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
        let decision = decide(
            &policy,
            &DecisionRequest {
                roles: &roles,
                pool_id: US,
                attributes: &attributes,
            },
        );

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
        let decision = decide(
            &policy,
            &DecisionRequest {
                roles: &roles,
                pool_id: US,
                attributes: &attributes,
            },
        );

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
                "denied": [{"attribute": "phone_number_verified", "reason": "no applicable role may mark phone_number as verified"}]
            })
        );
    }
}
