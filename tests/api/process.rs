//! The real `attrgate serve` binary as a child process, for tests that kill it or read its logs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;

use crate::helpers::{
    AUDIT_KEY, JwksServer, PRIMARY_KID, claims, cognito_client, create_pool, create_user,
    free_port, jwk, moto_url, rsa_key, sign, temp_dir,
};

pub(crate) struct Gateway {
    pub base: String,
    pub pool: String,
    pub token: String,
    pub audit: PathBuf,
    pub log: PathBuf,
    config: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    _jwks: JwksServer,
}

/// What `Gateway::start_with` adds to the default gateway.
#[derive(Default)]
pub(crate) struct GatewayOptions {
    /// YAML lines added under `audit:` (indented by two spaces).
    pub audit_extra: String,
    /// More environment variables for the process.
    pub env: Vec<(String, String)>,
    /// Top-level YAML sections added at the end of the config.
    pub extra: String,
}

impl Gateway {
    /// Seeds a pool with `ann`, writes a config, and starts the binary; waits until ready.
    pub(crate) async fn start() -> Self {
        Self::start_with(GatewayOptions::default()).await
    }

    pub(crate) async fn start_with(options: GatewayOptions) -> Self {
        let key = rsa_key("issuer-a-rsa.pem");
        let jwks = JwksServer::start(vec![jwk(&key, Algorithm::RS256, PRIMARY_KID)]).await;
        let cognito = cognito_client("us-east-1").await;
        let pool = create_pool(&cognito).await;
        create_user(&cognito, &pool, "ann", &[("email", "ann@example.com")]).await;
        let dir = temp_dir();
        let port = free_port();
        let config = dir.join("attrgate.yaml");
        let audit = dir.join("audit.jsonl");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:{port}\npolicy_file: \"{policy}\"\ncognito:\n  endpoint_url: \"{moto}\"\nauth:\n  issuers:\n    - issuer: \"{iss}\"\n      jwks_url: \"{jwks}\"\n      audiences: [attrgate]\naudit:\n  path: \"{audit}\"\n  hmac_key_env: TEST_AUDIT_KEY\n{audit_extra}rate_limit:\n  per_caller_per_second: 0\n{extra}",
                audit_extra = options.audit_extra,
                extra = options.extra,
                policy = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy.yaml"),
                moto = moto_url(),
                iss = jwks.issuer,
                jwks = jwks.url,
                audit = audit.display(),
            ),
        )
        .unwrap();
        let token = sign(
            &claims(&jwks.issuer, &["support"]),
            &key,
            Algorithm::RS256,
            Some(PRIMARY_KID),
        );
        let mut gateway = Self {
            base: format!("http://127.0.0.1:{port}"),
            pool,
            token,
            audit,
            log: dir.join("attrgate.log"),
            config,
            env: options.env,
            child: None,
            _jwks: jwks,
        };
        gateway.restart().await;
        gateway
    }

    pub(crate) fn attributes_url(&self) -> String {
        format!("{}/pools/{}/users/ann/attributes", self.base, self.pool)
    }

    /// Starts the binary (again) on the same config, audit log and log file.
    pub(crate) async fn restart(&mut self) {
        self.child = Some(spawn_serve(&self.config, &self.log, &self.env));
        wait_ready(&self.base).await;
    }

    /// SIGKILL: no chance to flush or clean up.
    pub(crate) fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill -9 the gateway");
            child.wait().unwrap();
        }
    }

    /// SIGTERM, as an orchestrator stops a pod: the server drains, then exits.
    pub(crate) fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            terminate(child);
        }
    }

    pub(crate) fn verify_audit(&self) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_attrgate"))
            .args(["audit", "verify"])
            .arg(&self.audit)
            .output()
            .unwrap()
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn audit_path(&self) -> &Path {
        &self.audit
    }

    pub(crate) fn config_path(&self) -> &Path {
        &self.config
    }

    /// The environment the process gets besides the test defaults.
    pub(crate) fn extra_env(&self) -> &[(String, String)] {
        &self.env
    }
}

/// Workers that PATCH `given_name` of the gateway's user, each with a value of its own,
/// as fast as they can until `stop` is set or the gateway stops answering. Each worker
/// returns the request ids of the updates acknowledged with 200.
pub(crate) fn spawn_update_load(
    gateway: &Gateway,
    workers: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    (0..workers)
        .map(|w| {
            let (http, url, token, stop) = (
                http.clone(),
                gateway.attributes_url(),
                gateway.token.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut i = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    i += 1;
                    let body =
                        serde_json::json!({"attributes": {"given_name": format!("w{w}-{i}")}});
                    let Ok(response) = http
                        .patch(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    else {
                        break;
                    };
                    if response.status() == 200 {
                        let answer: serde_json::Value = response.json().await.unwrap_or_default();
                        acknowledged
                            .push(answer["request_id"].as_str().unwrap_or_default().to_owned());
                    }
                }
                acknowledged
            })
        })
        .collect()
}

/// `attrgate serve --config CONFIG`, its log appended to `log`, with test credentials.
pub(crate) fn spawn_serve(config: &Path, log: &Path, env: &[(String, String)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("TEST_AUDIT_KEY", AUDIT_KEY)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start attrgate serve")
}

/// Waits (up to 30 s) until `base`/readyz answers 200.
pub(crate) async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if matches!(ready, Ok(200)) {
            return;
        }
        assert!(Instant::now() < deadline, "gateway not ready: {ready:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM, then waits (up to 30 s) for the process to exit.
pub(crate) fn terminate(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the process did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill_9();
    }
}
