//! Signed checkpoints and `audit search`, through the real binary: a gateway process
//! signs checkpoints with a key from `attrgate audit keygen`, and `attrgate audit verify
//! --checkpoints` catches a cut tail, a rewrite, a forged key and a fork.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{AUDIT_KEY, temp_dir};
use crate::process::{Gateway, GatewayOptions};

pub(crate) fn attrgate(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(args)
        .env("ATTRGATE_AUDIT_HMAC_KEY", AUDIT_KEY)
        .output()
        .unwrap()
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(crate) fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A key pair written by `attrgate audit keygen`: (private PEM text, public key file).
pub(crate) fn keygen(dir: &Path, name: &str) -> (String, PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let output = attrgate(&[
        "audit",
        "keygen",
        "--private-key",
        path(&private),
        "--public-key",
        path(&public),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    (std::fs::read_to_string(private).unwrap(), public)
}

pub(crate) struct Signed {
    pub(crate) gateway: Gateway,
    pub(crate) public_key: PathBuf,
    pub(crate) checkpoints: PathBuf,
}

impl Signed {
    /// `audit verify` of the gateway's own log, with its checkpoints and key.
    pub(crate) fn verify_own_log(&self) -> Output {
        verify(&[&self.gateway.audit], &self.checkpoints, &self.public_key)
    }
}

/// A gateway process that signs a checkpoint every `every` records, as replica `replica`.
pub(crate) async fn signed_gateway(
    every: u64,
    replica: &str,
    key: Option<(String, PathBuf)>,
) -> Signed {
    let dir = temp_dir();
    let (private, public_key) = key.unwrap_or_else(|| keygen(&dir, "signing"));
    let checkpoints = dir.join("checkpoints.jsonl");
    let gateway = Gateway::start_with(GatewayOptions {
        audit_extra: format!(
            "  replica_id: {replica}\n  checkpoint:\n    path: \"{}\"\n    signing_key_env: TEST_SIGNING_KEY\n    every_records: {every}\n",
            checkpoints.display()
        ),
        env: vec![("TEST_SIGNING_KEY".into(), private)],
        ..GatewayOptions::default()
    })
    .await;
    Signed {
        gateway,
        public_key,
        checkpoints,
    }
}

/// `n` allowed updates: two records each (intent and outcome).
pub(crate) async fn updates(gateway: &Gateway, n: usize) {
    let http = reqwest::Client::new();
    for i in 0..n {
        let status = http
            .patch(gateway.attributes_url())
            .bearer_auth(&gateway.token)
            .json(&json!({"attributes": {"given_name": format!("Name{i}")}}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
}

/// Waits until the checkpoint file holds `lines` checkpoints (they are signed off the
/// request path, so they land a moment after the answer).
fn wait_for_checkpoints(file: &Path, lines: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let count = std::fs::read_to_string(file)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if count >= lines {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{count} checkpoint(s), wanted {lines}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn verify(logs: &[&Path], checkpoints: &Path, public_key: &Path) -> Output {
    let mut args = vec!["audit", "verify"];
    args.extend(logs.iter().map(|p| path(p)));
    args.extend([
        "--checkpoints",
        path(checkpoints),
        "--public-key",
        path(public_key),
    ]);
    attrgate(&args)
}

fn lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(file: &Path, lines: &[String]) {
    std::fs::write(file, lines.join("\n") + "\n").unwrap();
}

#[tokio::test]
async fn a_clean_log_verifies_with_its_checkpoints_and_a_clean_shutdown_signs_the_last_record() {
    // Arrange
    let mut signed = signed_gateway(4, "r-clean", None).await;
    updates(&signed.gateway, 3).await;
    wait_for_checkpoints(&signed.checkpoints, 1);

    // Act
    signed.gateway.stop();
    let output = signed.verify_own_log();

    // Assert
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    let seqs: Vec<u64> = lines(&signed.checkpoints)
        .iter()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        seqs,
        [3, 5],
        "one every 4 records, then the last one at shutdown"
    );
    assert!(shown.contains("replica r-clean: 6 record(s)"), "{shown}");
    assert!(
        shown.contains(
            "2 checkpoint(s) verified, the last at seq 5; 0 record(s) after it not yet checkpointed"
        ),
        "{shown}"
    );
    assert!(
        signed.gateway.log_text().contains("audit checkpoint"),
        "checkpoints also go to the log stream"
    );
}

#[tokio::test]
async fn a_tail_cut_after_a_checkpoint_fails_naming_the_checkpoint() {
    // Arrange
    let mut signed = signed_gateway(2, "r-cut", None).await;
    updates(&signed.gateway, 2).await;
    signed.gateway.stop();
    let mut records = lines(&signed.gateway.audit);
    records.truncate(2);
    let cut = temp_dir().join("cut.jsonl");
    write_lines(&cut, &records);

    // Act
    let plain = attrgate(&["audit", "verify", path(&cut)]);
    let output = verify(&[&cut], &signed.checkpoints, &signed.public_key);

    // Assert
    assert!(
        plain.status.success(),
        "a cut tail alone still chains: {}",
        text(&plain)
    );
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(
        shown.contains("checkpoint seq 3 of replica r-cut"),
        "{shown}"
    );
    assert!(shown.contains("the log ends at seq 1"), "{shown}");
    assert!(shown.contains("cut off"), "{shown}");
}

/// A copy of `log` as a forger who can write the file makes it: the records edited by
/// `edit`, renumbered from `first_seq` when given, and `hash`/`prev_hash` recomputed so
/// that the chain alone verifies again.
fn forged_copy(log: &Path, first_seq: Option<u64>, edit: impl FnOnce(&mut [Value])) -> PathBuf {
    let mut records: Vec<Value> = lines(log)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    edit(&mut records);
    let mut prev = "0".repeat(64);
    for (offset, record) in (0u64..).zip(records.iter_mut()) {
        if let Some(first) = first_seq {
            record["seq"] = json!(first + offset);
        }
        let object = record.as_object_mut().unwrap();
        object.remove("hash");
        object.insert("prev_hash".into(), prev.clone().into());
        let hash = hex::encode(Sha256::digest(Value::Object(object.clone()).to_string()));
        object.insert("hash".into(), hash.clone().into());
        prev = hash;
    }
    let copy = temp_dir().join("forged.jsonl");
    write_lines(
        &copy,
        &records.iter().map(Value::to_string).collect::<Vec<_>>(),
    );
    copy
}

#[tokio::test]
async fn a_record_rewritten_before_a_checkpoint_fails_even_when_the_chain_is_resealed() {
    // Arrange
    let mut signed = signed_gateway(2, "r-rewrite", None).await;
    updates(&signed.gateway, 2).await;
    signed.gateway.stop();
    let rewritten = forged_copy(&signed.gateway.audit, None, |records| {
        records[1]["outcome"] = json!("denied");
    });

    // Act
    let plain = attrgate(&["audit", "verify", path(&rewritten)]);
    let output = verify(&[&rewritten], &signed.checkpoints, &signed.public_key);

    // Assert
    assert!(
        plain.status.success(),
        "the forger resealed the chain: {}",
        text(&plain)
    );
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(
        shown.contains("checkpoint seq 1 of replica r-rewrite"),
        "{shown}"
    );
    assert!(shown.contains("rewritten"), "{shown}");
}

#[tokio::test]
async fn a_log_replaced_by_records_numbered_past_the_last_checkpoint_fails() {
    // Arrange: the forger writes a whole new chain, numbered after every checkpoint.
    let mut signed = signed_gateway(2, "r-replaced", None).await;
    updates(&signed.gateway, 2).await;
    signed.gateway.stop();
    let replaced = forged_copy(&signed.gateway.audit, Some(100), |_| {});

    // Act
    let output = verify(&[&replaced], &signed.checkpoints, &signed.public_key);

    // Assert
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(shown.contains("has seq 100, not 0"), "{shown}");
}

#[tokio::test]
async fn an_emptied_log_or_one_without_its_replica_fails_against_its_checkpoints() {
    // Arrange
    let mut signed = signed_gateway(2, "r-emptied", None).await;
    updates(&signed.gateway, 1).await;
    signed.gateway.stop();
    let emptied = temp_dir().join("emptied.jsonl");
    std::fs::write(&emptied, "").unwrap();

    // Act
    let output = verify(&[&emptied], &signed.checkpoints, &signed.public_key);

    // Assert
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(
        shown.contains("replica r-emptied: no record of this replica"),
        "{shown}"
    );
}

#[tokio::test]
async fn checkpoints_checked_with_another_key_fail_as_forged() {
    // Arrange
    let mut signed = signed_gateway(2, "r-forged", None).await;
    updates(&signed.gateway, 1).await;
    signed.gateway.stop();
    let (_, other_public) = keygen(&temp_dir(), "other");

    // Act
    let output = verify(&[&signed.gateway.audit], &signed.checkpoints, &other_public);

    // Assert
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(shown.contains("checkpoints.jsonl:1:"), "{shown}");
    assert!(
        shown.contains("does not verify: forged, or signed with another key"),
        "{shown}"
    );
}

#[tokio::test]
async fn two_checkpoints_of_one_replica_that_disagree_fail_as_a_fork() {
    // Arrange: two gateways with one key and one replica name write two different chains.
    let dir = temp_dir();
    let key = keygen(&dir, "shared");
    let mut first = signed_gateway(2, "r-fork", Some(key.clone())).await;
    let mut second = signed_gateway(2, "r-fork", Some(key)).await;
    updates(&first.gateway, 1).await;
    updates(&second.gateway, 1).await;
    first.gateway.stop();
    second.gateway.stop();
    let both = dir.join("both.jsonl");
    let mut combined = lines(&first.checkpoints);
    combined.extend(lines(&second.checkpoints));
    write_lines(&both, &combined);

    // Act
    let output = verify(&[&first.gateway.audit], &both, &first.public_key);

    // Assert
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(shown.contains("fork"), "{shown}");
}

#[tokio::test]
async fn a_crash_between_checkpoints_still_verifies_and_reports_the_records_not_yet_checkpointed() {
    // Arrange
    let mut signed = signed_gateway(4, "r-crash", None).await;
    updates(&signed.gateway, 3).await;
    wait_for_checkpoints(&signed.checkpoints, 1);

    // Act
    signed.gateway.kill_9();
    let output = signed.verify_own_log();

    // Assert
    let shown = text(&output);
    assert!(output.status.success(), "{shown}");
    assert!(
        shown.contains(
            "1 checkpoint(s) verified, the last at seq 3; 2 record(s) after it not yet checkpointed"
        ),
        "{shown}"
    );
}

#[tokio::test]
async fn audit_search_finds_who_changed_a_users_attribute_across_replicas_and_rotated_files() {
    // Arrange: two replicas; one rotates its file after every few records.
    let mut a = Gateway::start_with(GatewayOptions {
        audit_extra: "  replica_id: r-a\n  rotate_bytes: 4096\n".into(),
        ..GatewayOptions::default()
    })
    .await;
    let mut b = Gateway::start_with(GatewayOptions {
        audit_extra: "  replica_id: r-b\n".into(),
        ..GatewayOptions::default()
    })
    .await;
    updates(&a, 6).await;
    updates(&b, 1).await;
    a.stop();
    b.stop();
    let mut files: Vec<String> = std::fs::read_dir(a.audit.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .filter(|p| p.contains("audit.jsonl"))
        .collect();
    assert!(files.len() > 1, "replica a rotated: {files:?}");
    files.push(path(&b.audit).to_owned());
    let search = |extra: &[&str]| {
        let mut args = vec!["audit", "search"];
        args.extend(extra);
        args.extend(files.iter().map(String::as_str));
        attrgate(&args)
    };

    // Act
    let by_value = search(&[
        "--attribute",
        "given_name",
        "--value",
        "Name0",
        "--user",
        "ann",
    ]);
    let as_json = search(&["--json", "--caller", "test-service", "--pool", &a.pool]);
    let none = search(&["--since", "2999-01-01"]);

    // Assert
    let shown = String::from_utf8_lossy(&by_value.stdout).into_owned();
    assert!(by_value.status.success(), "{}", text(&by_value));
    let replicas: Vec<&str> = shown
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        replicas,
        ["replica=r-a", "replica=r-a", "replica=r-b", "replica=r-b"],
        "intent and outcome of Name0 in each replica:\n{shown}"
    );
    assert!(
        shown.contains("caller=test-service roles=[support]"),
        "{shown}"
    );
    assert!(
        shown.contains("attributes=[given_name] outcome=updated"),
        "{shown}"
    );
    let records: Vec<Value> = String::from_utf8_lossy(&as_json.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        12,
        "the six updates of replica a, as raw records"
    );
    assert!(records.iter().all(|r| r["pool_id"] == a.pool.as_str()));
    assert!(String::from_utf8_lossy(&none.stdout).is_empty());
    assert!(
        text(&none).contains("0 match(es) in 14 record(s)"),
        "{}",
        text(&none)
    );
}

#[tokio::test]
async fn audit_search_warns_and_fails_when_a_chain_it_reads_is_broken() {
    // Arrange
    let mut gateway = Gateway::start().await;
    updates(&gateway, 2).await;
    gateway.stop();
    let mut records = lines(&gateway.audit);
    records.remove(1);
    let broken = temp_dir().join("broken.jsonl");
    write_lines(&broken, &records);

    // Act
    let output = attrgate(&["audit", "search", "--user", "ann", path(&broken)]);

    // Assert
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(shown.contains("warning: replica"), "{shown}");
    assert!(shown.contains("the chain breaks at"), "{shown}");
    assert!(shown.contains("1 match(es) in 1 record(s)"), "{shown}");
}
