//! Hot reload of the policy, end to end: a file change (in place, or an editor's
//! write-and-rename) and SIGHUP to the real binary each put a new policy in force; an
//! invalid file is refused and the old policy keeps deciding.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use attrgate::policy::Policy;
use serde_json::json;

use crate::helpers::{AUDIT_KEY, BATCH_SECRET, Options, TestApp, spawn_app_with, temp_dir};

const ONLY_GIVEN_NAME: &str = "version: 1\nroles:\n  support:\n    update: [given_name]\n";
const ALSO_NICKNAME: &str = "version: 1\nroles:\n  support:\n    update: [given_name, nickname]\n";
const INVALID: &str = "version: 1\nroles:\n  support:\n    updates: [given_name, nickname]\n";

fn revision_of(source: &str) -> String {
    Policy::parse(source).unwrap().revision().to_owned()
}

/// Replaces the file the way many editors save: write a sibling, then rename it over.
fn replace_by_rename(path: &Path, source: &str) {
    let staged = path.with_file_name(".policy.yaml.tmp");
    std::fs::write(&staged, source).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn readyz_revision(app: &TestApp) -> String {
    app.get("/readyz").await.body["policy_revision"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn metrics_text(app: &TestApp) -> String {
    app.get("/metrics")
        .await
        .body
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The value of an unlabelled metric in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

async fn app_with_policy(source: &str) -> (TestApp, PathBuf) {
    let policy_file = temp_dir().join("policy.yaml");
    std::fs::write(&policy_file, source).unwrap();
    let app = spawn_app_with(Options {
        policy_file: policy_file.clone(),
        ..Options::default()
    })
    .await;
    (app, policy_file)
}

#[tokio::test]
async fn a_policy_file_replaced_by_an_editor_is_reloaded_and_decides_the_next_request() {
    // Arrange
    let (app, policy_file) = app_with_policy(ONLY_GIVEN_NAME).await;
    let token = app.token(&["support"]);
    let before = app
        .patch(&token, json!({"attributes": {"nickname": "annie"}}))
        .await;
    before.assert_problem(403);
    let new_revision = revision_of(ALSO_NICKNAME);

    // Act
    replace_by_rename(&policy_file, ALSO_NICKNAME);

    // Assert
    eventually("/readyz shows the new revision", || async {
        readyz_revision(&app).await == new_revision
    })
    .await;
    let after = app
        .patch(&token, json!({"attributes": {"nickname": "annie"}}))
        .await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(app.ann().await["nickname"], "annie");
    assert_eq!(
        app.audit_records().last().unwrap()["policy_revision"],
        new_revision.as_str()
    );
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(&format!(
            "attrgate_policy_info{{revision=\"{new_revision}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&revision_of(ONLY_GIVEN_NAME)),
        "the old revision label must be gone: {metrics}"
    );
    assert_eq!(
        metric(&metrics, "attrgate_policy_reloads_total"),
        Some(1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_invalid_policy_file_is_rejected_counted_and_the_old_policy_stays_in_force() {
    // Arrange
    let (app, policy_file) = app_with_policy(ALSO_NICKNAME).await;
    let token = app.token(&["support"]);
    let in_force = revision_of(ALSO_NICKNAME);

    // Act: written in place this time, as `echo > file` would.
    std::fs::write(&policy_file, INVALID).unwrap();

    // Assert
    // An in-place write may be read half-written first: that is one more rejection.
    eventually("the failure metric counts the rejected reload", || async {
        metric(
            &metrics_text(&app).await,
            "attrgate_policy_reload_failures_total",
        ) >= Some(1.0)
    })
    .await;
    assert_eq!(readyz_revision(&app).await, in_force);
    let answer = app
        .patch(&token, json!({"attributes": {"nickname": "still"}}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.ann().await["nickname"], "still");
    let metrics = metrics_text(&app).await;
    assert!(
        metrics.contains(&format!(
            "attrgate_policy_info{{revision=\"{in_force}\"}} 1"
        )),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "attrgate_policy_reloads_total"),
        Some(0.0),
        "{metrics}"
    );
}

/// The real binary, killed when the test ends, with its stderr (JSON logs) collected.
struct Gateway {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    address: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_attrgate"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env("SIGHUP_TEST_AUDIT_KEY", AUDIT_KEY)
            .env("SIGHUP_TEST_SECRET", BATCH_SECRET)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start attrgate serve");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (port_sender, port_receiver) = std::sync::mpsc::channel();
        let collected = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
                    && log["fields"]["message"] == "attrgate listening"
                {
                    let _ = port_sender.send(log["fields"]["port"].as_u64());
                }
                collected.lock().unwrap().push(line);
            }
        });
        let port = port_receiver
            .recv_timeout(Duration::from_secs(20))
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no listening log line: {:?}", logs.lock().unwrap()));
        Self {
            child,
            logs,
            address: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn revision(&self) -> Option<String> {
        let body: serde_json::Value = reqwest::get(format!("{}/readyz", self.address))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        body["policy_revision"].as_str().map(str::to_owned)
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

#[tokio::test]
async fn sighup_makes_the_running_binary_reload_a_change_the_watcher_cannot_see() {
    // Arrange: the configured path is a symlink into another directory, so editing the
    // target makes no event in the watched directory; only SIGHUP can pick it up.
    let (watched, elsewhere) = (temp_dir(), temp_dir());
    let target = elsewhere.join("real-policy.yaml");
    std::fs::write(&target, ONLY_GIVEN_NAME).unwrap();
    let policy_file = watched.join("policy.yaml");
    std::os::unix::fs::symlink(&target, &policy_file).unwrap();
    let config = watched.join("attrgate.yaml");
    std::fs::write(
        &config,
        format!(
            r#"listen: 127.0.0.1:0
policy_file: "{policy}"
cognito:
  endpoint_url: http://127.0.0.1:9
auth:
  issuers:
    - issuer: https://batch.test
      hmac_secret_env: SIGHUP_TEST_SECRET
      audiences: [attrgate]
audit:
  path: "{audit}"
  hmac_key_env: SIGHUP_TEST_AUDIT_KEY
"#,
            policy = policy_file.display(),
            audit = watched.join("audit.jsonl").display(),
        ),
    )
    .unwrap();
    let gateway = Gateway::start(&config);
    let (old, new) = (revision_of(ONLY_GIVEN_NAME), revision_of(ALSO_NICKNAME));
    eventually("the gateway answers /readyz", || async {
        gateway.revision().await.is_some()
    })
    .await;
    assert_eq!(gateway.revision().await.as_deref(), Some(old.as_str()));
    std::fs::write(&target, ALSO_NICKNAME).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        gateway.revision().await.as_deref(),
        Some(old.as_str()),
        "nothing but SIGHUP should reload this change"
    );

    // Act
    let status = Command::new("kill")
        .args(["-HUP", &gateway.child.id().to_string()])
        .status()
        .unwrap();

    // Assert
    assert!(status.success());
    eventually("/readyz shows the new revision after SIGHUP", || async {
        gateway.revision().await.as_deref() == Some(new.as_str())
    })
    .await;
    let logs = gateway.logs();
    assert!(
        logs.contains("policy reloaded") && logs.contains("SIGHUP"),
        "{logs}"
    );
}
