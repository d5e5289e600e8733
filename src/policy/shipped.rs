//! Tests that every policy shipped under `policies/` is valid, warning-free, and passes its own cases. Must not depend on actix, aws, tokio or the filesystem (the files are compiled in).

use super::{Policy, parse_cases, run_cases};

/// Every policy under `policies/` with its cases. A new policy file must be added here.
const SHIPPED: &[(&str, &str, &str)] = &[
    (
        "policies/default.yaml",
        include_str!("../../policies/default.yaml"),
        include_str!("../../policies/default.cases.yaml"),
    ),
    (
        "policies/examples/multi-tenant.yaml",
        include_str!("../../policies/examples/multi-tenant.yaml"),
        include_str!("../../policies/examples/multi-tenant.cases.yaml"),
    ),
    (
        "policies/examples/self-service.yaml",
        include_str!("../../policies/examples/self-service.yaml"),
        include_str!("../../policies/examples/self-service.cases.yaml"),
    ),
];

#[test]
fn every_shipped_policy_parses_without_warnings() {
    for (path, policy, _) in SHIPPED {
        // Act
        let policy = Policy::parse(policy).unwrap_or_else(|error| panic!("{path}:\n{error}"));

        // Assert
        assert!(
            policy.warnings().is_empty(),
            "{path}: {:?}",
            policy.warnings()
        );
    }
}

#[test]
fn every_shipped_policy_passes_all_of_its_cases() {
    for (path, policy, cases) in SHIPPED {
        // Arrange
        let policy = Policy::parse(policy).unwrap_or_else(|error| panic!("{path}:\n{error}"));
        let cases = parse_cases(cases).unwrap_or_else(|error| panic!("{path} cases:\n{error}"));

        // Act
        let results = run_cases(&policy, &cases);

        // Assert
        let failures: Vec<String> = results
            .iter()
            .filter(|result| !result.passed)
            .map(|result| {
                format!(
                    "{}: {}",
                    result.name,
                    result.message.as_deref().unwrap_or_default()
                )
            })
            .collect();
        assert!(failures.is_empty(), "{path}:\n{}", failures.join("\n"));
        assert!(
            results.len() >= 10,
            "{path} should exercise its policy with many cases"
        );
    }
}

#[test]
fn the_default_policy_defines_the_documented_roles() {
    // Act
    let policy = Policy::parse(SHIPPED[0].1).expect("valid");

    // Assert
    assert_eq!(
        policy.role_names().collect::<Vec<_>>(),
        ["support", "billing", "identity-admin"]
    );
}
