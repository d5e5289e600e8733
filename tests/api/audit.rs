//! The audit log as written by a running gateway: one record per decision, values only
//! as HMACs, request ids that match the answers, and a chain that verifies.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::helpers::{AUDIT_KEY, spawn_app};

fn verify_with_cli(path: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(["audit", "verify"])
        .arg(path)
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_allowed_update_leaves_an_intent_and_an_outcome_with_the_answers_request_id() {
    let app = spawn_app().await;

    let answer = app
        .patch_as(&["support"], json!({"given_name": "Annie"}))
        .await;

    let records = app.audit_records();
    assert_eq!(records.len(), 2, "{records:#?}");
    let (intent, outcome) = (&records[0], &records[1]);
    assert_eq!(intent["event"], "intent");
    assert_eq!(intent["outcome"], "pending");
    assert_eq!(outcome["event"], "outcome");
    assert_eq!(outcome["outcome"], "updated");
    for record in &records {
        assert_eq!(record["request_id"], answer.body["request_id"]);
        assert_eq!(record["caller"]["sub"], "test-service");
        assert_eq!(record["caller"]["roles"], json!(["support"]));
        assert_eq!(record["pool_id"], app.pool_id.as_str());
        assert_eq!(record["username"], "ann");
        assert_eq!(record["attributes"], json!(["given_name"]));
        assert!(
            record["policy_revision"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
    assert_eq!(
        answer.headers["x-request-id"],
        answer.body["request_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn values_are_stored_only_as_hmacs_that_audit_hash_reproduces() {
    let app = spawn_app().await;
    let secret_value = "very-private-family-name";

    app.patch_as(&["support"], json!({"family_name": secret_value}))
        .await;

    assert!(
        !app.audit_text().contains(secret_value),
        "a value was written in clear"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args([
            "audit",
            "hash",
            secret_value,
            "--key-env",
            "TEST_KEY_FOR_HASH",
        ])
        .env("TEST_KEY_FOR_HASH", AUDIT_KEY)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let hash = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(app.audit_records()[0]["values"]["family_name"], hash);
}

#[tokio::test]
async fn denials_and_invalid_requests_are_audited_with_their_reasons() {
    let app = spawn_app().await;
    let token = app.token(&["support"]);

    let denied = app
        .patch(&token, json!({"attributes": {"email": "evil@example.com"}}))
        .await;
    let invalid = app
        .patch(&token, json!({"attributes": {"tier": "gold"}}))
        .await;
    let malformed = app
        .patch_raw(
            Some(&token),
            Some("application/json"),
            b"{\"attributes\": \"leak-me\"}".to_vec(),
        )
        .await;

    let records = app.audit_records();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0]["request_id"], denied.body["request_id"]);
    assert_eq!(records[0]["outcome"], "denied");
    assert_eq!(records[0]["decision"]["allowed"], false);
    assert_eq!(records[0]["decision"]["denied"][0]["attribute"], "email");
    assert_eq!(records[0]["decision"]["denied"][0]["code"], "not_granted");
    assert_eq!(records[1]["request_id"], invalid.body["request_id"]);
    assert_eq!(records[1]["outcome"], "invalid");
    assert_eq!(records[2]["request_id"], malformed.body["request_id"]);
    assert_eq!(records[2]["outcome"], "invalid");
    assert!(!app.audit_text().contains("evil@example.com"));
    assert!(
        !app.audit_text().contains("leak-me"),
        "a serde message quoted a value into the log"
    );
}

#[tokio::test]
async fn upstream_errors_are_recorded_as_the_outcome() {
    let app = spawn_app().await;
    let pool = app.pool_id.clone();

    app.patch_to(
        &pool,
        "nobody",
        &app.token(&["support"]),
        json!({"attributes": {"given_name": "X"}}),
        "",
    )
    .await;

    let records = app.audit_records();
    assert_eq!(records.last().unwrap()["outcome"], "UserNotFoundException");
}

#[tokio::test]
async fn the_chain_of_a_running_gateway_verifies_and_an_edit_is_caught_at_its_line() {
    let app = spawn_app().await;
    let token = app.token(&["support"]);
    for name in ["A", "B", "C"] {
        app.patch(&token, json!({"attributes": {"given_name": name}}))
            .await;
    }
    app.patch(&token, json!({"attributes": {"email": "x@y.zz"}}))
        .await;

    let intact = verify_with_cli(&app.audit_path);
    let tampered_path = app.audit_path.with_extension("tampered.jsonl");
    let tampered = app
        .audit_text()
        .replacen(r#""outcome":"denied""#, r#""outcome":"updated""#, 1);
    std::fs::write(&tampered_path, tampered).unwrap();
    let broken = verify_with_cli(&tampered_path);

    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(String::from_utf8_lossy(&intact.stdout).contains("7 records"));
    assert!(!broken.status.success());
    assert!(
        String::from_utf8_lossy(&broken.stderr).contains("audit.tampered.jsonl:7: "),
        "{}",
        String::from_utf8_lossy(&broken.stderr)
    );
}

/// A 64 KiB tmpfs, unmounted on drop. Mounting needs root, or a user and mount
/// namespace (`unshare -rm`), which `in_a_namespace_unless_root` gives a non-root user.
struct SmallFilesystem {
    dir: std::path::PathBuf,
}

impl SmallFilesystem {
    fn mount() -> Self {
        let dir = crate::helpers::temp_dir();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a small tmpfs failed: this needs root or a user and mount namespace"
        );
        Self { dir }
    }

    fn fill(&self) {
        let mut filler = std::fs::File::create(self.dir.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.dir.join("filler")).unwrap();
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

const IN_NAMESPACE: &str = "ATTRGATE_TEST_IN_NAMESPACE";

/// `true` when the caller should run the test here: as root, or already inside the
/// namespace. Otherwise runs this one test again inside `unshare -rm` (a user and mount
/// namespace, where the mapped root may mount a tmpfs), asserts that it passed there,
/// and returns `false`.
fn in_a_namespace_unless_root(test: &str) -> bool {
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    if String::from_utf8_lossy(&uid.stdout).trim() == "0"
        || std::env::var_os(IN_NAMESPACE).is_some()
    {
        return true;
    }
    let output = Command::new("unshare")
        .args(["-rm", "--"])
        .arg(std::env::current_exe().expect("the test binary"))
        .args([test, "--exact", "--nocapture"])
        .env(IN_NAMESPACE, "1")
        .output()
        .expect("run unshare -rm (util-linux)");
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && shown.contains("1 passed"),
        "the test failed inside `unshare -rm`:\n{shown}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

#[tokio::test]
async fn a_full_disk_fails_closed_with_503_and_recovers_when_space_returns() {
    if !in_a_namespace_unless_root(
        "audit::a_full_disk_fails_closed_with_503_and_recovers_when_space_returns",
    ) {
        return;
    }
    let disk = SmallFilesystem::mount();
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        audit_path: Some(disk.dir.join("audit.jsonl")),
        ..Default::default()
    })
    .await;
    let token = app.token(&["support"]);
    disk.fill();

    let refused = app
        .patch(&token, json!({"attributes": {"given_name": "NoAudit"}}))
        .await;
    let unaudited_read = app.read(&app.token(&["identity-admin"]), "ann").await;
    let untouched = app.ann().await["given_name"].clone();
    let not_ready = app.get("/readyz").await;
    let metrics = app.get("/metrics").await;
    disk.free();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let ready_again = app.get("/readyz").await;
    let accepted = app
        .patch(&token, json!({"attributes": {"given_name": "Audited"}}))
        .await;

    refused.assert_problem(503);
    unaudited_read.assert_problem(503);
    assert!(
        !unaudited_read.body.to_string().contains("ann@example.com"),
        "a read whose record failed disclosed a value: {}",
        unaudited_read.body
    );
    assert_eq!(
        untouched, "Ann",
        "Cognito must not be called without an audit record"
    );
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.body["audit_writable"], false);
    let metrics = metrics.body.as_str().unwrap();
    assert!(!metrics.contains("attrgate_audit_failures_total 0"));
    assert!(
        metrics.contains(r#"attrgate_decisions_total{outcome="audit_unavailable"} 2"#),
        "the refused update and read are counted as such, not as invalid:\n{metrics}"
    );
    assert!(!metrics.contains(r#"outcome="invalid""#), "{metrics}");
    assert_eq!(ready_again.status, 200, "{}", ready_again.body);
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(
        app.ann().await["given_name"],
        "Audited",
        "only the audited change reached Cognito"
    );
    assert!(
        verify_with_cli(&disk.dir.join("audit.jsonl"))
            .status
            .success()
    );
}
