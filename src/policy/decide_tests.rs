//! The decision's rules, case by case.
use std::collections::BTreeMap;

use super::{Decision, DenialCode, decide};
use crate::policy::compile::Policy;
use crate::policy::facts::DecisionRequest;

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

    use super::super::{Decision, DenialCode, decide};
    use crate::policy::compile::Policy;
    use crate::policy::facts::{Claims, DecisionRequest, TargetFacts};

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
            &DecisionRequest::new(&roles, POOL, &attributes).with_facts(&claims, target.as_ref()),
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
