//! kill -9 under concurrent load: every acknowledged update is in the log, the chain
//! verifies after the restart repairs any torn line, and the gateway serves again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::process::{Gateway, spawn_update_load};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_under_load_loses_no_acknowledged_update_and_the_chain_still_verifies() {
    let mut gateway = Gateway::start().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers = spawn_update_load(&gateway, 8, &stop);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    gateway.kill_9();
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for worker in workers {
        acknowledged.extend(worker.await.unwrap());
    }
    gateway.restart().await;
    let after = http
        .patch(gateway.attributes_url())
        .bearer_auth(&gateway.token)
        .json(&json!({"attributes": {"given_name": "after-restart"}}))
        .send()
        .await
        .unwrap()
        .status();
    let verify = gateway.verify_audit();

    assert!(
        acknowledged.len() >= 8,
        "the load produced only {} acknowledged updates",
        acknowledged.len()
    );
    let log: Vec<Value> = std::fs::read_to_string(gateway.audit_path())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
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
