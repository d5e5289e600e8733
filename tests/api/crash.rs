//! kill -9 under concurrent load: every acknowledged update is in the log, the chain
//! verifies after the restart repairs any torn line, and the gateway serves again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::helpers::{
    AUDIT_KEY, JwksServer, PRIMARY_KID, claims, cognito_client, create_pool, create_user, jwk,
    moto_url, rsa_key, sign, temp_dir,
};

fn start_gateway(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env("TEST_AUDIT_KEY", AUDIT_KEY)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start attrgate serve")
}

async fn wait_ready(http: &reqwest::Client, base: &str) {
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

fn records(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_under_load_loses_no_acknowledged_update_and_the_chain_still_verifies() {
    let key = rsa_key("issuer-a-rsa.pem");
    let jwks = JwksServer::start(vec![jwk(&key, Algorithm::RS256, PRIMARY_KID)]).await;
    let cognito = cognito_client("us-east-1").await;
    let pool = create_pool(&cognito).await;
    create_user(&cognito, &pool, "ann", &[("email", "ann@example.com")]).await;
    let dir = temp_dir();
    let audit = dir.join("audit.jsonl");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("attrgate.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\npolicy_file: \"{policy}\"\ncognito:\n  endpoint_url: \"{moto}\"\nauth:\n  issuers:\n    - issuer: \"{iss}\"\n      jwks_url: \"{jwks}\"\n      audiences: [attrgate]\naudit:\n  path: \"{audit}\"\n  hmac_key_env: TEST_AUDIT_KEY\nrate_limit:\n  per_caller_per_second: 0\n",
            policy = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy.yaml"),
            moto = moto_url(),
            iss = jwks.issuer,
            jwks = jwks.url,
            audit = audit.display(),
        ),
    )
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let url = format!("{base}/pools/{pool}/users/ann/attributes");
    let token = sign(
        &claims(&jwks.issuer, &["support"]),
        &key,
        Algorithm::RS256,
        Some(PRIMARY_KID),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut gateway = start_gateway(&config);
    wait_ready(&http, &base).await;

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (http, url, token, stop) = (http.clone(), url.clone(), token.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let body = json!({"attributes": {"given_name": format!("w{w}-{i}")}});
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
                        let answer: Value = response.json().await.unwrap_or_default();
                        acknowledged
                            .push(answer["request_id"].as_str().unwrap_or_default().to_owned());
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    gateway.kill().expect("kill -9 the gateway");
    gateway.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.unwrap());
    }

    let mut restarted = start_gateway(&config);
    wait_ready(&http, &base).await;
    let after = http
        .patch(&url)
        .bearer_auth(&token)
        .json(&json!({"attributes": {"given_name": "after-restart"}}))
        .send()
        .await
        .unwrap()
        .status();
    let verify = Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(["audit", "verify"])
        .arg(&audit)
        .output()
        .unwrap();
    restarted.kill().unwrap();
    restarted.wait().unwrap();

    assert!(
        acknowledged.len() >= 8,
        "the load produced only {} acknowledged updates",
        acknowledged.len()
    );
    let log = records(&audit);
    for id in &acknowledged {
        assert!(
            log.iter().any(|r| r["request_id"] == id.as_str()
                && r["event"] == "outcome"
                && r["outcome"] == "updated"),
            "acknowledged update {id} has no outcome record"
        );
    }
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert_eq!(after, 200);
}
