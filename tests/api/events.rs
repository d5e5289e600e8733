//! Change events through the real binary: a webhook receiver served over real HTTP
//! (signatures checked by Python's `hmac`, an independent implementation), EventBridge
//! in moto with a rule that targets an SQS queue, faults (500, a hung sink, a sink that
//! is down), kill -9 during delivery, and `attrgate events replay`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use crate::helpers::moto_url;
use crate::process::{Gateway, GatewayOptions, spawn_update_load};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8G";
const REPLICA: &str = "gw-events";

/// How the receiver answers.
const ANSWER_OK: u8 = 0;
const ANSWER_500: u8 = 1;
const ANSWER_HANG: u8 = 2;

#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    answer: AtomicU8,
    delay_ms: AtomicU64,
    attempts: AtomicUsize,
    handle: Mutex<Option<ServerHandle>>,
}

/// A webhook receiver over real HTTP that records what it acknowledged.
#[derive(Clone)]
struct Receiver {
    port: u16,
    state: Arc<ReceiverState>,
}

impl Receiver {
    fn start() -> Self {
        let port = crate::helpers::free_port();
        let receiver = Self {
            port,
            state: Arc::default(),
        };
        receiver.listen();
        receiver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Starts serving on its port (again).
    fn listen(&self) {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        let state = self.state.clone();
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().route(
                "/hook",
                web::post().to(move |request: HttpRequest, body: web::Bytes| {
                    let state = state.clone();
                    async move { answer(&state, &request, &body).await }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .unwrap()
        .run();
        *self.state.handle.lock().unwrap() = Some(server.handle());
        tokio::spawn(server);
    }

    /// Stops listening: connections are refused until `listen`.
    async fn down(&self) {
        let handle = self.state.handle.lock().unwrap().take();
        if let Some(handle) = handle {
            handle.stop(false).await;
        }
    }

    fn answer_with(&self, answer: u8) {
        self.state.answer.store(answer, Ordering::SeqCst);
    }

    fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    fn attempts(&self) -> usize {
        self.state.attempts.load(Ordering::SeqCst)
    }

    /// Waits (up to `within`) until every id in `expected` was acknowledged.
    async fn wait_for(&self, expected: &BTreeSet<String>, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got: BTreeSet<String> = self.received().into_iter().map(|r| r.id).collect();
            if expected.is_subset(&got) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the sink got {} of {} events: missing {:?}",
                expected.intersection(&got).count(),
                expected.len(),
                expected.difference(&got).take(5).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn answer(state: &ReceiverState, request: &HttpRequest, body: &[u8]) -> HttpResponse {
    state.attempts.fetch_add(1, Ordering::SeqCst);
    match state.answer.load(Ordering::SeqCst) {
        ANSWER_500 => return HttpResponse::InternalServerError().finish(),
        ANSWER_HANG => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return HttpResponse::Ok().finish();
        }
        _ => {}
    }
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    state.received.lock().unwrap().push(Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(body).into_owned(),
    });
    HttpResponse::NoContent().finish()
}

/// A gateway (replica `gw-events`) with one webhook sink, `hook`, pointing at `receiver`.
async fn gateway_with_webhook(receiver: &Receiver, audit_extra: &str) -> Gateway {
    Gateway::start_with(GatewayOptions {
        audit_extra: format!("  replica_id: {REPLICA}\n{audit_extra}"),
        extra: format!(
            "events:\n  types: [attrgate.attributes.updated, attrgate.attributes.denied]\n  max_backoff_seconds: 1\n  sinks:\n    - name: hook\n      timeout_seconds: 1\n      webhook:\n        url: \"{}\"\n        secret_env: TEST_WEBHOOK_SECRET\n",
            receiver.url()
        ),
        env: vec![("TEST_WEBHOOK_SECRET".into(), SECRET.into())],
    })
    .await
}

/// Every record of the gateway's log, across its rotated files, oldest first.
fn log_records(audit: &Path) -> Vec<Value> {
    let dir = audit.parent().unwrap();
    let name = audit.file_name().unwrap().to_string_lossy().into_owned();
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .strip_prefix(&format!("{name}."))
                .is_some_and(|rest| rest.parse::<u64>().is_ok())
        })
        .collect();
    rotated.sort();
    rotated.push(audit.to_owned());
    rotated
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

/// The event ids the log's `updated` records stand for, in `seq` order.
fn updated_ids(audit: &Path) -> Vec<String> {
    log_records(audit)
        .iter()
        .filter(|r| r["event"] == "outcome" && r["outcome"] == "updated")
        .map(|r| format!("{REPLICA}:{}", r["seq"]))
        .collect()
}

/// Sends `count` updates of `given_name`, each with a value of its own; the values.
async fn update_names(gateway: &Gateway, prefix: &str, count: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut values = Vec::new();
    for i in 0..count {
        let value = format!("{prefix}-{i}-{}", uuid::Uuid::new_v4().simple());
        let response = http
            .patch(gateway.attributes_url())
            .bearer_auth(&gateway.token)
            .json(
                &json!({"attributes": {"given_name": value, "family_name": format!("{value}-f")}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        values.push(value);
    }
    values
}

async fn metrics_text(gateway: &Gateway) -> String {
    reqwest::get(format!("{}/metrics", gateway.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn readiness(gateway: &Gateway) -> Value {
    reqwest::get(format!("{}/readyz", gateway.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Checks every signature with Python's `hmac` and `base64` (not attrgate's code).
/// Returns the ids Python found badly signed.
fn python_bad_signatures(messages: &[Received]) -> Vec<String> {
    let list: Vec<Value> = messages
        .iter()
        .map(|m| json!({"id": m.id, "timestamp": m.timestamp, "signature": m.signature, "body": m.body}))
        .collect();
    let file = crate::helpers::temp_dir().join("received.json");
    std::fs::write(&file, serde_json::to_vec(&list).unwrap()).unwrap();
    let script = r#"
import base64, hashlib, hmac, json, sys
secret = sys.argv[1]
key = base64.b64decode(secret[len("whsec_"):] if secret.startswith("whsec_") else secret)
bad = []
for m in json.load(open(sys.argv[2])):
    content = f"{m['id']}.{m['timestamp']}.{m['body']}".encode()
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in m["signature"].split(" ") if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, g) for g in given):
        bad.append(m["id"])
print(json.dumps({"checked": len(json.load(open(sys.argv[2]))), "bad": bad}))
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(SECRET)
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["checked"], messages.len());
    answer["bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

/// Each event is its record: id, hash, request, names; its type says updated or denied.
fn assert_each_event_is_its_record(received: &[Received], records: &[Value], pool: &str) {
    let by_seq: BTreeMap<u64, &Value> = records
        .iter()
        .map(|r| (r["seq"].as_u64().unwrap(), r))
        .collect();
    for message in received {
        let event: Value = serde_json::from_str(&message.body).unwrap();
        let seq: u64 = message.id.rsplit(':').next().unwrap().parse().unwrap();
        let record = by_seq[&seq];
        assert_eq!(event["id"], message.id.as_str());
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["source"], format!("attrgate/{REPLICA}"));
        assert_eq!(event["subject"], format!("{pool}/ann").as_str(), "{event}");
        assert_eq!(event["data"]["record_hash"], record["hash"]);
        assert_eq!(event["data"]["request_id"], record["request_id"]);
        assert_eq!(event["data"]["changed"], record["attributes"]);
        let kind = if record["outcome"] == "denied" {
            "attrgate.attributes.denied"
        } else {
            "attrgate.attributes.updated"
        };
        assert_eq!(event["type"], kind);
    }
}

/// `events replay --from <the 11th event>`: `--dry-run` prints the same events and
/// sends nothing; a real replay sends them again, with the same ids; another replica's
/// position is refused.
fn assert_replay_resends_from_a_position(gateway: &Gateway, receiver: &Receiver, ids: &[&str]) {
    let seqs: Vec<u64> = ids
        .iter()
        .map(|id| id.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let replay = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_attrgate"))
            .args(["events", "replay", "--config"])
            .arg(gateway.config_path())
            .args(["--sink", "hook", "--from"])
            .arg(format!("{REPLICA}:{}", seqs[10]))
            .args(extra)
            .envs(gateway.extra_env().iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    };
    let before_dry = receiver.received().len();
    let dry = replay(&["--dry-run"]);
    let after_dry = receiver.received().len();
    let printed: Vec<Value> = String::from_utf8_lossy(&dry.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let before = receiver.received().len();
    let sent = replay(&[]);
    let wrong_replica = Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(["events", "replay", "--dry-run", "--config"])
        .arg(gateway.config_path())
        .args(["--sink", "hook", "--from", "other:0"])
        .output()
        .unwrap();

    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let printed_ids: Vec<&str> = printed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(printed_ids, ids[10..]);
    assert_eq!(after_dry, before_dry, "a dry run sent nothing");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let resent: Vec<String> = receiver.received()[before..]
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(resent, ids[10..]);
    assert!(!wrong_replica.status.success());
    assert!(String::from_utf8_lossy(&wrong_replica.stderr).contains("replica"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_applied_update_reaches_the_webhook_once_in_order_signed_and_without_values() {
    let receiver = Receiver::start();
    let gateway = gateway_with_webhook(&receiver, "").await;

    let values = update_names(&gateway, "ev", 12).await;
    let denied = reqwest::Client::new()
        .patch(gateway.attributes_url())
        .bearer_auth(&gateway.token)
        .json(&json!({"attributes": {"email": "mallory@example.com"}}))
        .send()
        .await
        .unwrap()
        .status();
    let records = log_records(gateway.audit_path());
    let updated = updated_ids(gateway.audit_path());
    let denied_record = records
        .iter()
        .find(|r| r["outcome"] == "denied")
        .expect("a denied record");
    let mut expected: BTreeSet<String> = updated.iter().cloned().collect();
    expected.insert(format!("{REPLICA}:{}", denied_record["seq"]));
    receiver.wait_for(&expected, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = receiver.received();

    assert_eq!(denied, 403);
    assert_eq!(updated.len(), 12);
    // Exactly once without faults: as many deliveries as events, each id once.
    let ids: Vec<&str> = received.iter().map(|r| r.id.as_str()).collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), 13, "{ids:?}");
    assert_eq!(distinct.len(), 13);
    // In seq order.
    let seqs: Vec<u64> = ids
        .iter()
        .map(|id| id.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_each_event_is_its_record(&received, &log_records(gateway.audit_path()), &gateway.pool);
    let denied_event: Value = serde_json::from_str(&received.last().unwrap().body).unwrap();
    assert_eq!(denied_event["data"]["denied"][0]["attribute"], "email");
    // Names, never values: no body holds a value written, nor its audit HMAC.
    for message in &received {
        for value in &values {
            assert!(!message.body.contains(value.as_str()), "{}", message.body);
        }
        assert!(!message.body.contains("mallory"), "{}", message.body);
        assert!(!message.body.contains("\"values\""), "{}", message.body);
    }
    // Signatures, checked by Python's hmac; a tampered copy is caught.
    let mut checked = received.clone();
    let mut tampered = received[0].clone();
    tampered.id = "tampered".into();
    tampered.body = tampered.body.replace("given_name", "email");
    checked.push(tampered);
    assert_eq!(python_bad_signatures(&checked), ["tampered"]);
    let ready = readiness(&gateway).await;
    assert_eq!(ready["events"][0]["name"], "hook");
    assert_eq!(ready["events"][0]["lag_records"], 0, "{ready}");
    assert_eq!(ready["events"][0]["delivered"], 13, "{ready}");
    let metrics = metrics_text(&gateway).await;
    assert!(
        metrics.contains("attrgate_events_delivered_total{sink=\"hook\"} 13"),
        "{metrics}"
    );
    assert!(metrics.contains("attrgate_events_lag_records{sink=\"hook\"} 0"));

    assert_replay_resends_from_a_position(&gateway, &receiver, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_fails_hangs_or_is_down_gets_every_event_in_order_once_it_is_back() {
    let receiver = Receiver::start();
    // Small files: the backlog spans rotated files while the sink is away.
    let gateway = gateway_with_webhook(&receiver, "  rotate_bytes: 4096\n").await;
    let mut expected = Vec::new();

    receiver.answer_with(ANSWER_500);
    update_names(&gateway, "five-hundred", 3).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let while_500 = readiness(&gateway).await;
    receiver.answer_with(ANSWER_HANG);
    update_names(&gateway, "hang", 3).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    receiver.down().await;
    receiver.answer_with(ANSWER_OK);
    update_names(&gateway, "down", 10).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let while_down = readiness(&gateway).await;
    let attempts_while_away = receiver.attempts();
    expected.extend(updated_ids(gateway.audit_path()));
    receiver.listen();
    receiver
        .wait_for(&expected.iter().cloned().collect(), Duration::from_secs(30))
        .await;
    let received: Vec<String> = receiver.received().into_iter().map(|r| r.id).collect();
    let metrics = metrics_text(&gateway).await;
    let rotated = std::fs::read_dir(gateway.audit_path().parent().unwrap())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("audit.jsonl.0")
        })
        .count();

    assert!(
        rotated >= 2,
        "the backlog should span rotated files: {rotated}"
    );
    assert!(while_500["events"][0]["lag_records"].as_u64().unwrap() > 0);
    assert_eq!(
        while_500["events"][0]["last_error"], "the webhook answered HTTP 500",
        "{while_500}"
    );
    assert_eq!(
        while_500["status"], "ready",
        "a failing sink does not make the replica unready"
    );
    assert!(while_down["events"][0]["lag_records"].as_u64().unwrap() > 0);
    assert!(
        while_down["events"][0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.contains("500")),
        "{while_down}"
    );
    assert!(
        attempts_while_away >= 3,
        "the sink was tried again: {attempts_while_away}"
    );
    // Every event, in seq order, each once (a timed-out try may have landed: a duplicate
    // then repeats an id, never reorders).
    let mut distinct = received.clone();
    distinct.dedup();
    assert_eq!(distinct, expected, "in order, none missing");
    let failures = metrics
        .lines()
        .find(|l| l.starts_with("attrgate_events_delivery_failures_total{sink=\"hook\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(failures >= 3, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_9_during_delivery_loses_no_event_and_every_updated_record_arrives_at_least_once()
 {
    let receiver = Receiver::start();
    // A slow receiver keeps a backlog, so the kill comes in the middle of delivery.
    receiver.state.delay_ms.store(40, Ordering::SeqCst);
    let mut gateway = gateway_with_webhook(&receiver, "").await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers = spawn_update_load(&gateway, 6, &stop);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let delivered_at_kill = receiver.received().len();
    gateway.kill_9();
    stop.store(true, Ordering::SeqCst);
    let mut acknowledged = 0;
    for worker in workers {
        acknowledged += worker.await.unwrap().len();
    }
    let updated = updated_ids(gateway.audit_path());
    receiver.state.delay_ms.store(0, Ordering::SeqCst);
    gateway.restart().await;
    receiver
        .wait_for(&updated.iter().cloned().collect(), Duration::from_secs(60))
        .await;
    let received: Vec<String> = receiver.received().into_iter().map(|r| r.id).collect();
    let distinct: BTreeSet<&String> = received.iter().collect();
    let duplicates = received.len() - distinct.len();
    eprintln!(
        "kill -9 during delivery: {acknowledged} updates acknowledged, {} updated records in the log, {delivered_at_kill} events delivered before the kill, {} deliveries in all, {} distinct events, {duplicates} duplicates",
        updated.len(),
        received.len(),
        distinct.len()
    );

    assert!(
        acknowledged >= 10,
        "the load made only {acknowledged} updates"
    );
    assert!(
        delivered_at_kill < updated.len(),
        "the kill should come while events wait ({delivered_at_kill} of {})",
        updated.len()
    );
    for id in &updated {
        assert!(distinct.contains(id), "{id} was never delivered");
    }
    // No event for a record that is not an update.
    assert!(distinct.iter().all(|id| updated.contains(id)));
}

/// A new EventBridge bus in moto whose rule sends attrgate's updated events to a new
/// SQS queue: (bus name, queue URL).
async fn bus_with_rule_to_queue(config: &aws_config::SdkConfig) -> (String, String) {
    let bus = format!("users-{}", uuid::Uuid::new_v4().simple());
    let eventbridge = aws_sdk_eventbridge::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    eventbridge
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .unwrap();
    let queue = sqs
        .create_queue()
        .queue_name(&bus)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    eventbridge
        .put_rule()
        .name("attrgate-updates")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": [{"prefix": "attrgate/"}], "detail-type": ["attrgate.attributes.updated"]}"#)
        .send()
        .await
        .unwrap();
    eventbridge
        .put_targets()
        .rule("attrgate-updates")
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (bus, queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eventbridge_sink_puts_every_update_on_the_bus_where_a_rule_sends_it_to_sqs() {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url(moto_url())
        .load()
        .await;
    let (bus, queue) = bus_with_rule_to_queue(&config).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let gateway = Gateway::start_with(GatewayOptions {
        audit_extra: format!("  replica_id: {REPLICA}\n"),
        extra: format!(
            "events:\n  sinks:\n    - name: bus\n      eventbridge:\n        bus_name: {bus}\n        region: us-east-1\n        endpoint_url: \"{}\"\n",
            moto_url()
        ),
        ..GatewayOptions::default()
    })
    .await;

    let values = update_names(&gateway, "bus", 4).await;
    let expected: BTreeSet<String> = updated_ids(gateway.audit_path()).into_iter().collect();
    let mut messages = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while messages.len() < expected.len() && Instant::now() < deadline {
        let batch = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        messages.extend(
            batch
                .messages()
                .iter()
                .map(|m| m.body().unwrap().to_owned()),
        );
    }
    let envelopes: Vec<Value> = messages
        .iter()
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    let ids: BTreeSet<String> = envelopes
        .iter()
        .map(|e| e["detail"]["id"].as_str().unwrap().to_owned())
        .collect();

    assert_eq!(expected.len(), 4);
    assert_eq!(ids, expected, "{messages:?}");
    for envelope in &envelopes {
        assert_eq!(envelope["source"], format!("attrgate/{REPLICA}"));
        assert_eq!(envelope["detail-type"], "attrgate.attributes.updated");
        assert_eq!(
            envelope["detail"]["data"]["changed"],
            json!(["family_name", "given_name"])
        );
        for value in &values {
            assert!(!envelope.to_string().contains(value.as_str()));
        }
    }
    let ready = readiness(&gateway).await;
    assert_eq!(ready["events"][0]["kind"], "eventbridge");
    assert_eq!(ready["events"][0]["delivered"], 4, "{ready}");
}

#[test]
fn an_unknown_sink_kind_or_a_missing_webhook_secret_stops_start_up_with_a_clear_message() {
    let dir = crate::helpers::temp_dir();
    let config = |sink: &str| {
        let path = dir.join(format!("{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:{port}\npolicy_file: \"{policy}\"\nauth:\n  issuers:\n    - issuer: https://idp.example\n      jwks_url: https://idp.example/jwks.json\n      audiences: [attrgate]\naudit:\n  path: \"{audit}\"\n  hmac_key_env: TEST_AUDIT_KEY\nevents:\n  sinks:\n    - name: crm\n{sink}",
                port = crate::helpers::free_port(),
                policy = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy.yaml"),
                audit = dir.join("audit.jsonl").display(),
            ),
        )
        .unwrap();
        path
    };
    let serve = |config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_attrgate"))
            .args(["serve", "--config"])
            .arg(config)
            .env("TEST_AUDIT_KEY", crate::helpers::AUDIT_KEY)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("CRM_WEBHOOK_SECRET")
            .output()
            .unwrap()
    };

    let unknown = serve(&config("      kafka: {topic: users}\n"));
    let missing = serve(&config(
        "      webhook: {url: \"https://crm.internal/hook\", secret_env: CRM_WEBHOOK_SECRET}\n",
    ));
    let both = serve(&config(
        "      webhook: {url: \"https://crm.internal/hook\", secret_env: X}\n      eventbridge: {bus_name: b}\n",
    ));

    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!unknown.status.success());
    assert!(text(&unknown).contains("kafka"), "{}", text(&unknown));
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("CRM_WEBHOOK_SECRET") && text(&missing).contains("not set"),
        "{}",
        text(&missing)
    );
    assert!(!both.status.success());
    assert!(text(&both).contains("exactly one kind"), "{}", text(&both));
    assert!(
        !dir.join("audit.events-crm.cursor").exists(),
        "a sink that did not start has no cursor"
    );
}
