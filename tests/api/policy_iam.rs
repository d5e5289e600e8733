//! `attrgate policy iam` through the real binary: its output for every shipped policy is
//! an IAM policy that parliament (pinned in requirements-dev.txt, in `.venv`) finds
//! nothing wrong with, and it grants the actions the policy's roles need. A missing
//! parliament fails these tests: they never skip.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::checkpoints::{attrgate, path, text};
use crate::helpers::temp_dir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ACCOUNT: &str = "123456789012";

/// A gateway config naming `policy`, with `cognito` lines (indented by two spaces).
fn config_for(policy: &Path, cognito: &str) -> PathBuf {
    let config = temp_dir().join("attrgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\npolicy_file: \"{}\"\ncognito:\n  timeout_seconds: 10\n{cognito}auth:\n  issuers:\n    - issuer: https://idp.example\n      jwks_url: https://idp.example/jwks.json\n      audiences: [attrgate]\naudit:\n  path: audit.jsonl\n  hmac_key_env: TEST_AUDIT_KEY\n",
            policy.display()
        ),
    )
    .unwrap();
    config
}

/// `attrgate policy iam --config CONFIG --account-id ACCOUNT` plus `extra`.
fn policy_iam(config: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "policy",
        "iam",
        "--config",
        path(config),
        "--account-id",
        ACCOUNT,
    ];
    args.extend(extra);
    attrgate(&args)
}

/// The document printed by a successful run.
fn document(output: &Output) -> Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).expect("policy iam prints JSON")
}

/// parliament's findings on `document` (every severity, one JSON line each).
fn parliament_findings(document: &[u8]) -> (bool, String) {
    let parliament = Path::new(ROOT).join(".venv/bin/parliament");
    assert!(
        parliament.exists(),
        "{} not found: run scripts/bootstrap-python (parliament is pinned in requirements-dev.txt)",
        parliament.display()
    );
    let mut child = Command::new(parliament)
        .args(["--json", "--minimum_severity", "INFO"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(document).unwrap();
    let output = child.wait_with_output().unwrap();
    (output.status.success(), text(&output))
}

/// Every action granted on `arn`, across statements.
fn actions_on(document: &Value, arn: &str) -> Vec<String> {
    let mut actions: Vec<String> = document["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|statement| {
            statement["Resource"]
                .as_array()
                .unwrap()
                .iter()
                .any(|resource| resource == arn)
        })
        .flat_map(|statement| statement["Action"].as_array().unwrap().clone())
        .map(|action| action.as_str().unwrap().to_owned())
        .collect();
    actions.sort();
    actions
}

#[test]
fn parliament_finds_nothing_in_the_iam_policy_of_any_shipped_policy() {
    // Arrange
    let policies = [
        "policies/default.yaml",
        "policies/examples/multi-tenant.yaml",
        "policies/examples/self-service.yaml",
        "tests/fixtures/policy.yaml",
        "tests/fixtures/tenant-policy.yaml",
    ];
    for policy in policies {
        let config = config_for(&Path::new(ROOT).join(policy), "");

        // Act
        let output = policy_iam(&config, &[]);
        let (clean, findings) = parliament_findings(&output.stdout);

        // Assert
        assert!(
            !document(&output)["Statement"]
                .as_array()
                .unwrap()
                .is_empty()
        );
        assert!(clean && findings.trim().is_empty(), "{policy}: {findings}");
    }
}

#[test]
fn every_role_reads_users_and_group_conditions_list_groups_only_on_their_pools() {
    // Arrange
    let policy = temp_dir().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nroles:\n  tenant-admin:\n    pools: [\"eu-west-1_T*\"]\n    update: [given_name]\n    target:\n      groups:\n        none_of: [admins]\n  support:\n    pools: [\"us-east-1_S*\"]\n    update: [nickname]\n",
    )
    .unwrap();
    let config = config_for(&policy, "  validate_schema: false\n");

    // Act
    let output = policy_iam(&config, &[]);

    // Assert
    let document = document(&output);
    let arn = |region: &str, pool: &str| {
        format!("arn:aws:cognito-idp:{region}:{ACCOUNT}:userpool/{pool}")
    };
    assert_eq!(
        actions_on(&document, &arn("eu-west-1", "eu-west-1_T*")),
        [
            "cognito-idp:AdminGetUser",
            "cognito-idp:AdminListGroupsForUser",
            "cognito-idp:AdminUpdateUserAttributes"
        ]
    );
    assert_eq!(
        actions_on(&document, &arn("us-east-1", "us-east-1_S*")),
        [
            "cognito-idp:AdminGetUser",
            "cognito-idp:AdminUpdateUserAttributes"
        ]
    );
    let (clean, findings) = parliament_findings(&output.stdout);
    assert!(clean && findings.trim().is_empty(), "{findings}");
}

#[test]
fn the_partition_and_a_fixed_region_from_the_config_are_in_every_arn() {
    // Arrange
    let config = config_for(
        &Path::new(ROOT).join("policies/default.yaml"),
        "  region: cn-north-1\n",
    );

    // Act
    let output = policy_iam(&config, &["--partition", "aws-cn"]);

    // Assert
    let document = document(&output);
    let resources: Vec<&Value> = document["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|statement| statement["Resource"].as_array().unwrap())
        .collect();
    assert!(!resources.is_empty());
    for resource in resources {
        let arn = resource.as_str().unwrap();
        assert!(
            arn.starts_with(&format!(
                "arn:aws-cn:cognito-idp:cn-north-1:{ACCOUNT}:userpool/"
            )),
            "{arn}"
        );
    }
}

#[test]
fn a_bad_account_id_or_partition_exits_1_naming_it() {
    // Arrange
    let config = config_for(&Path::new(ROOT).join("policies/default.yaml"), "");

    // Act
    let short = attrgate(&[
        "policy",
        "iam",
        "--config",
        path(&config),
        "--account-id",
        "12345",
    ]);
    let iso = policy_iam(&config, &["--partition", "aws-iso"]);

    // Assert
    assert_eq!(short.status.code(), Some(1), "{}", text(&short));
    assert!(text(&short).contains("\"12345\" is not an AWS account id (12 digits)"));
    assert_eq!(iso.status.code(), Some(1), "{}", text(&iso));
    assert!(text(&iso).contains("partition \"aws-iso\" is not one of aws, aws-cn, aws-us-gov"));
    assert!(short.stdout.is_empty() && iso.stdout.is_empty());
}

#[test]
fn an_eventbridge_sink_adds_put_events_on_its_bus_that_parliament_accepts() {
    // Arrange
    let config = config_for(&Path::new(ROOT).join("policies/default.yaml"), "");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "events:\n  sinks:\n    - name: bus\n      eventbridge: {bus_name: users, region: eu-west-1}\n    - name: crm\n      webhook: {url: \"https://crm.internal/hook\", secret_env: CRM_SECRET}\n",
    );
    std::fs::write(&config, text).unwrap();

    // Act
    let output = policy_iam(&config, &[]);

    // Assert
    let document = document(&output);
    assert_eq!(
        actions_on(
            &document,
            &format!("arn:aws:events:eu-west-1:{ACCOUNT}:event-bus/users")
        ),
        ["events:PutEvents"]
    );
    let (clean, findings) = parliament_findings(&output.stdout);
    assert!(clean && findings.trim().is_empty(), "{findings}");
}
