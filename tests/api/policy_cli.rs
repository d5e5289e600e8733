//! `attrgate policy check` and `attrgate policy test` through the real binary: every
//! shipped policy and its cases, the error and warning listings, and the exit codes.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::helpers::temp_dir;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub(crate) fn attrgate(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(args)
        .current_dir(ROOT)
        .output()
        .expect("run the attrgate binary")
}

pub(crate) fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every policy file under `policies/` (not the case files), relative to the repo root.
fn shipped_policies() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                let name = path.file_name().unwrap().to_string_lossy();
                if name.ends_with(".yaml") && !name.ends_with(".cases.yaml") {
                    found.push(path.strip_prefix(ROOT).unwrap().to_owned());
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(&Path::new(ROOT).join("policies"), &mut found);
    found.sort();
    found
}

fn cases_for(policy: &Path) -> PathBuf {
    policy.with_extension("cases.yaml")
}

#[test]
fn every_shipped_policy_passes_check_without_warnings_and_passes_its_cases() {
    // Arrange
    let policies = shipped_policies();
    assert!(policies.len() >= 3, "{policies:?}");

    for policy in &policies {
        let policy_arg = policy.to_str().unwrap();
        let cases = cases_for(policy);
        assert!(
            Path::new(ROOT).join(&cases).exists(),
            "{policy_arg} ships without {}",
            cases.display()
        );

        // Act
        let check = attrgate(&["policy", "check", policy_arg]);
        let test = attrgate(&["policy", "test", policy_arg, cases.to_str().unwrap()]);

        // Assert
        let (check_out, check_err) = text(&check);
        assert_eq!(check.status.code(), Some(0), "{check_out}{check_err}");
        assert!(check_out.contains(": ok (sha256:"), "{check_out}");
        assert!(
            !check_err.contains("warning"),
            "{policy_arg} has warnings:\n{check_err}"
        );
        let (test_out, test_err) = text(&test);
        assert_eq!(test.status.code(), Some(0), "{test_out}{test_err}");
        assert!(test_out.contains(" passed, 0 failed"), "{test_out}");
    }
}

#[test]
fn policy_test_exits_1_and_prints_each_failing_case_with_its_reasons() {
    // Arrange
    let cases = "tests/fixtures/policy-cli/failing.cases.yaml";

    // Act
    let output = attrgate(&["policy", "test", "policies/default.yaml", cases]);

    // Assert
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!(
            "FAIL support wrongly expected to change the email address ({cases}:4)"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected allow, got deny: email (no applicable role grants email)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  denied email (not_granted): no applicable role grants email"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "FAIL billing wrongly expected to be refused a valid plan ({cases}:10)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("expected deny, got allow"), "{stdout}");
    assert!(!stdout.contains("FAIL support passes"), "{stdout}");
    assert!(stdout.contains("1 passed, 2 failed"), "{stdout}");
}

#[test]
fn policy_check_prints_every_error_as_file_line_column_and_exits_1() {
    // Arrange: one policy per error the issue lists, each with the line:column it must name.
    let table: &[(&str, &str, &str)] = &[
        (
            "unknown key",
            "version: 1\nroles:\n  support:\n    updates: [given_name]\n",
            "4:5: error: unknown key `updates` (did you mean `update`?)",
        ),
        (
            "unknown version",
            "version: 3\nroles: {}\n",
            "1:10: error: unsupported version 3",
        ),
        (
            "bad glob",
            "version: 1\nroles:\n  support:\n    update: [\"custom:?\"]\n",
            "4:14: error: role support, update: glob \"custom:?\"",
        ),
        (
            "invalid regex",
            "version: 1\nroles:\n  support:\n    update: [locale]\n    constraints:\n      locale: {pattern: \"(en\"}\n",
            "6:25: error: role support, constraint on \"locale\": invalid pattern \"(en\"",
        ),
        (
            "constraint on an attribute the role cannot update",
            "version: 1\nroles:\n  support:\n    update: [locale]\n    constraints:\n      locle: {max_length: 5}\n",
            "6:7: error: role support, constraint on \"locle\": role support cannot update locle (did you mean `locale`?)",
        ),
        (
            "verify of something other than email or phone_number",
            "version: 1\nroles:\n  support:\n    update: [locale]\n    verify: [email_verified]\n",
            "5:14: error: role support, verify: unknown entry \"email_verified\" (did you mean `email`?)",
        ),
    ];
    let dir = temp_dir();
    for (name, source, expected) in table {
        let path = dir.join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::write(&path, source).unwrap();
        let path = path.to_str().unwrap();

        // Act
        let output = attrgate(&["policy", "check", path]);

        // Assert
        let (stdout, stderr) = text(&output);
        assert_eq!(output.status.code(), Some(1), "{name}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!("{path}:{expected}")),
            "{name}: expected {path}:{expected}\ngot: {stderr}"
        );
        assert!(!stdout.contains(": ok"), "{name}: {stdout}");
    }
}

#[test]
fn policy_check_reports_all_errors_of_a_file_not_just_the_first() {
    // Arrange
    let path = temp_dir().join("many.yaml");
    std::fs::write(
        &path,
        "version: 1\nroles:\n  a:\n    update: [\"x[\"]\n    verify: [mail]\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();

    // Act
    let output = attrgate(&["policy", "check", path]);

    // Assert
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{path}:4:14: error:")), "{stderr}");
    assert!(stderr.contains(&format!("{path}:5:14: error:")), "{stderr}");
    assert!(stderr.contains(&format!("{path}: 2 error(s)")), "{stderr}");
}

#[test]
fn policy_check_prints_dead_grant_warnings_with_their_location_and_exits_0() {
    // Arrange
    let path = temp_dir().join("dead.yaml");
    std::fs::write(
        &path,
        "version: 1\nprotected: [\"custom:*\"]\nroles:\n  support:\n    update: [given_name, \"custom:tier\"]\n    deny: [given_name]\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();

    // Act
    let output = attrgate(&["policy", "check", path]);

    // Assert
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "{path}:5:14: warning: role support: update glob \"given_name\" grants nothing"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{path}:5:26: warning: role support: update glob \"custom:tier\" grants nothing: every attribute it matches is protected"
        )),
        "{stderr}"
    );
    assert!(stdout.contains("2 warning(s)"), "{stdout}");
}

#[test]
fn a_missing_policy_file_exits_1_with_a_plain_message() {
    // Act
    let output = attrgate(&["policy", "check", "no/such/policy.yaml"]);

    // Assert
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("failed to read policy file no/such/policy.yaml"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_case_file_exits_1_and_names_its_line() {
    // Arrange
    let cases = temp_dir().join("bad.cases.yaml");
    std::fs::write(
        &cases,
        "cases:\n  - name: a\n    pool: p_1\n    attributes: {x: y}\n    expect: alow\n",
    )
    .unwrap();
    let cases = cases.to_str().unwrap();

    // Act
    let output = attrgate(&["policy", "test", "policies/default.yaml", cases]);

    // Assert
    let (_, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{cases}:5:")) && stderr.contains("did you mean `allow`?"),
        "{stderr}"
    );
}
