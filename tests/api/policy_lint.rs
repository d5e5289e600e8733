//! `attrgate policy lint FILE --pool ID --config FILE` through the real binary, against a
//! pool in moto: grants to attributes the pool lacks or cannot change fail the lint.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::helpers::{cognito_client, create_pool_with, moto_url, temp_dir};
use crate::policy_cli::text;

/// A pool with a mutable `custom:plan` and an immutable `custom:employee_id`.
async fn pool() -> String {
    create_pool_with(
        &cognito_client("us-east-1").await,
        &[("plan", true), ("employee_id", false)],
    )
    .await
}

/// A gateway config whose `cognito` section points at this process's moto.
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("attrgate.yaml");
    std::fs::write(
        &path,
        format!(
            r#"listen: 127.0.0.1:0
policy_file: policies/default.yaml
cognito:
  endpoint_url: "{moto}"
auth:
  issuers:
    - issuer: https://batch.test
      hmac_secret_env: LINT_TEST_SECRET
      audiences: [attrgate]
audit:
  path: "{audit}"
  hmac_key_env: LINT_TEST_AUDIT_KEY
"#,
            moto = moto_url(),
            audit = dir.join("audit.jsonl").display(),
        ),
    )
    .unwrap();
    path
}

fn lint(policy: &Path, pool: &str, config: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(["policy", "lint", policy.to_str().unwrap(), "--pool", pool])
        .args(["--config", config.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run attrgate policy lint")
}

#[tokio::test]
async fn lint_exits_1_and_names_each_grant_the_pool_cannot_honour() {
    // Arrange
    let (dir, pool) = (temp_dir(), pool().await);
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        r#"version: 1
roles:
  support:
    update: [given_name, "custom:tier", "custom:employee_id", "custom:pla*"]
    verify: [email]
    constraints:
      "custom:tier": {max_length: 3}
  admin:
    update: ["custom:x*", "*"]
  eu-support:
    pools: ["eu-west-1_*"]
    update: ["custom:nothing"]
"#,
    )
    .unwrap();

    // Act
    let output = lint(&policy, &pool, &config(&dir));

    // Assert
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    let file = policy.display();
    for expected in [
        format!(
            "{file}:4:26: error: role support, update: pool {pool} has no attribute custom:tier"
        ),
        format!(
            "{file}:4:41: error: role support, update: custom:employee_id is immutable in pool {pool}"
        ),
        format!(
            "{file}:7:7: error: role support, constraint: pool {pool} has no attribute custom:tier"
        ),
        format!(
            "{file}:9:14: error: role admin, update: glob \"custom:x*\" matches no attribute role admin can change in pool {pool}"
        ),
        format!(
            "{file}:9:27: note: role admin, update: glob \"*\" also matches immutable custom:employee_id"
        ),
        format!("{file}:10:3: note: role eu-support does not apply to pool {pool}"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected}\nin:\n{stderr}"
        );
    }
    assert!(!stderr.contains("given_name"), "{stderr}");
    assert!(stdout.contains("4 problem(s)"), "{stdout}");
}

#[tokio::test]
async fn lint_exits_0_when_every_grant_fits_the_pool() {
    // Arrange
    let (dir, pool) = (temp_dir(), pool().await);
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nroles:\n  support:\n    update: [given_name, \"custom:plan\"]\n    verify: [email, phone_number]\n",
    )
    .unwrap();

    // Act
    let output = lint(&policy, &pool, &config(&dir));

    // Assert
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("0 problem(s)"), "{stdout}");
}

#[tokio::test]
async fn lint_of_a_pool_that_does_not_exist_exits_1_and_says_so() {
    // Arrange
    let dir = temp_dir();
    let missing = "us-east-1_0123456789abcdef0123456789abcdef";

    // Act
    let output = lint(Path::new("policies/default.yaml"), missing, &config(&dir));

    // Assert
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("pool {missing} does not exist")),
        "{stderr}"
    );
}
