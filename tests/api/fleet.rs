//! A fleet on one machine: a real `redis-server` (started on a free port), three
//! `attrgate serve` processes sharing one Cognito budget through it, and a Cognito stand-in
//! that counts the updates it receives in every second.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::helpers::{
    JwksServer, PRIMARY_KID, claims, cognito_stand_in, free_port, jwk, rsa_key, sign, temp_dir,
};
use crate::process::{spawn_serve, terminate, wait_ready};

/// The fleet's budget of updates per second, shared by the three replicas.
const BUDGET: usize = 20;
/// What the stand-in may see in any one second: the budget + 10%.
const CEILING: usize = BUDGET + BUDGET / 10;
const POOL: &str = "us-east-1_FleetPool";

/// A real `redis-server` (Debian's package, or `ATTRGATE_REDIS_SERVER`), no persistence.
pub(crate) struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    pub(crate) fn start() -> Self {
        let mut redis = Self {
            port: free_port(),
            child: None,
        };
        redis.restart();
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn restart(&mut self) {
        let binary =
            std::env::var("ATTRGATE_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&binary)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "these tests need a real redis-server ({binary}: {error}); install Debian's \
                     redis-server package or set ATTRGATE_REDIS_SERVER"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let client = redis::Client::open(self.url()).unwrap();
        while client
            .get_connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// When the stand-in received each AdminUpdateUserAttributes, from its start.
#[derive(Clone)]
struct Counted {
    start: Instant,
    updates: Arc<Mutex<Vec<Duration>>>,
}

impl Counted {
    /// Updates received in each whole second of `from..to` (times since the start).
    fn per_second(&self, from: Duration, to: Duration) -> Vec<usize> {
        let updates = self.updates.lock().unwrap();
        let mut seconds = vec![0; (to - from).as_secs() as usize];
        for at in updates.iter().filter(|at| **at >= from && **at < to) {
            if let Some(second) = seconds.get_mut((*at - from).as_secs() as usize) {
                *second += 1;
            }
        }
        seconds
    }

    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// A Cognito stand-in that answers `{}` to everything and counts the updates.
fn counting_stub() -> (String, Counted) {
    let counted = Counted {
        start: Instant::now(),
        updates: Arc::default(),
    };
    let kept = counted.clone();
    let url = cognito_stand_in(move |target, _| {
        if target.ends_with("AdminUpdateUserAttributes") {
            kept.updates.lock().unwrap().push(kept.start.elapsed());
        }
        (200, "{}".to_owned())
    });
    (url, counted)
}

/// One `attrgate serve` of the fleet.
struct Replica {
    base: String,
    audit: PathBuf,
    child: Option<Child>,
}

struct Fleet {
    replicas: Vec<Replica>,
    token: String,
    _jwks: JwksServer,
}

/// What each replica's config adds: the quota and the per-caller limit.
struct FleetConfig<'a> {
    cognito: &'a str,
    quota: String,
    rate_limit: String,
}

impl Fleet {
    async fn start(size: usize, config: &FleetConfig<'_>) -> Self {
        let key = rsa_key("issuer-a-rsa.pem");
        let jwks = JwksServer::start(vec![jwk(&key, Algorithm::RS256, PRIMARY_KID)]).await;
        let dir = temp_dir();
        let mut replicas = Vec::new();
        for n in 1..=size {
            let port = free_port();
            let audit = dir.join(format!("audit-r{n}.jsonl"));
            let path = dir.join(format!("attrgate-r{n}.yaml"));
            std::fs::write(
                &path,
                format!(
                    "listen: 127.0.0.1:{port}\npolicy_file: \"{policy}\"\ncognito:\n  endpoint_url: \"{cognito}\"\n  validate_schema: false\n{quota}auth:\n  issuers:\n    - issuer: \"{iss}\"\n      jwks_url: \"{jwks}\"\n      audiences: [attrgate]\naudit:\n  path: \"{audit}\"\n  hmac_key_env: TEST_AUDIT_KEY\n  replica_id: r{n}\n{rate_limit}",
                    policy = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/policy.yaml"),
                    cognito = config.cognito,
                    quota = config.quota,
                    rate_limit = config.rate_limit,
                    iss = jwks.issuer,
                    jwks = jwks.url,
                    audit = audit.display(),
                ),
            )
            .unwrap();
            let base = format!("http://127.0.0.1:{port}");
            let child = spawn_serve(&path, &dir.join(format!("r{n}.log")), &[]);
            wait_ready(&base).await;
            replicas.push(Replica {
                base,
                audit,
                child: Some(child),
            });
        }
        let token = sign(
            &claims(&jwks.issuer, &["support"]),
            &key,
            Algorithm::RS256,
            Some(PRIMARY_KID),
        );
        Self {
            replicas,
            token,
            _jwks: jwks,
        }
    }

    /// Every replica's `quota` on `/readyz`, asserting each answers 200.
    async fn quota_modes(&self) -> Vec<String> {
        let http = reqwest::Client::new();
        let mut modes = Vec::new();
        for replica in &self.replicas {
            let answer = http
                .get(format!("{}/readyz", replica.base))
                .send()
                .await
                .unwrap();
            assert_eq!(
                answer.status(),
                200,
                "a fallback must not make a replica unready"
            );
            let body: Value = answer.json().await.unwrap();
            assert_eq!(
                body["user_lock"], body["quota"],
                "the user locks live in the quota's Redis, and /readyz says where"
            );
            modes.push(body["quota"].as_str().unwrap_or_default().to_owned());
        }
        modes
    }

    /// Waits up to `within` until every replica reports `mode`; how long it took.
    async fn wait_for_mode(&self, mode: &str, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let modes = self.quota_modes().await;
            if modes.iter().all(|m| m == mode) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "replicas report {modes:?}, not {mode} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(child) = replica.child.take() {
                terminate(child);
            }
        }
    }

    fn audit_files(&self) -> Vec<&Path> {
        self.replicas.iter().map(|r| r.audit.as_path()).collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// How a burst of load was answered.
#[derive(Default)]
struct Answers {
    /// Status code -> count.
    statuses: BTreeMap<u16, usize>,
    /// 429s without a `Retry-After`.
    throttled_without_wait: usize,
    /// The `X-Request-Id` of every answer.
    request_ids: Vec<String>,
}

/// Sends `per_second` PATCHes across the fleet, round robin, for `seconds`.
async fn load(fleet: &Fleet, path: &str, per_second: u32, seconds: u32) -> Answers {
    let http = reqwest::Client::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut sent = Vec::new();
    for n in 0..(per_second * seconds) as usize {
        tick.tick().await;
        let replica = &fleet.replicas[n % fleet.replicas.len()];
        let request = http
            .patch(format!("{}{path}", replica.base))
            .bearer_auth(&fleet.token)
            .json(&json!({"attributes": {"given_name": format!("Name{n}")}}))
            .send();
        sent.push(tokio::spawn(request));
    }
    let mut answers = Answers::default();
    for request in sent {
        let answer = request
            .await
            .unwrap()
            .expect("every request gets an answer");
        let status = answer.status().as_u16();
        *answers.statuses.entry(status).or_default() += 1;
        if status == 429 && answer.headers().get("retry-after").is_none() {
            answers.throttled_without_wait += 1;
        }
        let id = answer.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        answers.request_ids.push(id);
    }
    answers
}

fn assert_only_allowed_or_throttled(answers: &Answers, phase: &str) {
    assert!(
        answers.statuses.keys().all(|s| *s == 200 || *s == 429),
        "{phase}: {:?}",
        answers.statuses
    );
    assert!(
        answers.statuses.get(&429).copied().unwrap_or(0) > 0,
        "{phase}: nothing throttled"
    );
    assert_eq!(
        answers.throttled_without_wait, 0,
        "{phase}: a 429 without Retry-After"
    );
}

fn audit_outcomes(files: &[&Path]) -> HashMap<String, String> {
    let mut outcomes = HashMap::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            if let (Some(id), Some(outcome)) =
                (record["request_id"].as_str(), record["outcome"].as_str())
                && outcome != "pending"
            {
                outcomes.insert(id.to_owned(), outcome.to_owned());
            }
        }
    }
    outcomes
}

/// Every request has its final audit record, every replica's chain verifies, and each
/// replica's records carry its name.
fn assert_every_request_is_audited_and_every_chain_verifies(fleet: &Fleet, loads: &[&Answers]) {
    let outcomes = audit_outcomes(&fleet.audit_files());
    for id in loads.iter().flat_map(|a| &a.request_ids) {
        let outcome = outcomes.get(id).map(String::as_str);
        assert!(
            matches!(outcome, Some("updated" | "throttled")),
            "request {id}: {outcome:?}"
        );
    }
    let verify = Command::new(env!("CARGO_BIN_EXE_attrgate"))
        .args(["audit", "verify"])
        .args(fleet.audit_files())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    for (n, file) in fleet.audit_files().iter().enumerate() {
        let text = std::fs::read_to_string(file).unwrap();
        let names: HashSet<String> = text
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["replica"].to_string())
            .collect();
        assert_eq!(names, HashSet::from([format!("\"r{}\"", n + 1)]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_cognito_budget_through_redis_fall_back_to_their_shares_and_return()
 {
    // Arrange: 20 updates/s for the fleet, a burst of one call.
    let mut redis = Redis::start();
    let (cognito, counted) = counting_stub();
    let mut fleet = Fleet::start(
        3,
        &FleetConfig {
            cognito: &cognito,
            quota: format!(
                "  quota:\n    user_update_per_second: {BUDGET}\n    burst_seconds: 0.05\n    replicas: 3\n    redis_url: \"{}\"\n",
                redis.url()
            ),
            rate_limit: "rate_limit:\n  per_caller_per_second: 0\n".into(),
        },
    )
    .await;
    let path = format!("/pools/{POOL}/users/ann/attributes");
    assert_eq!(fleet.quota_modes().await, ["shared"; 3]);

    // Act 1: about 3x the budget for 10 s.
    let from = counted.elapsed();
    let shared = load(&fleet, &path, 3 * BUDGET as u32, 10).await;
    let shared_rates = counted.per_second(from, from + Duration::from_secs(10));
    println!("fleet: upstream updates per second with Redis: {shared_rates:?}");

    // Act 2: redis-server dies; the same load for 5 s.
    redis.kill();
    let detected = fleet
        .wait_for_mode("local-fallback", Duration::from_secs(2))
        .await;
    let from = counted.elapsed();
    let outage = load(&fleet, &path, 3 * BUDGET as u32, 5).await;
    let outage_rates = counted.per_second(from, from + Duration::from_secs(5));

    // Act 3: redis-server is back; the shared budget returns without a restart.
    redis.restart();
    let returned = fleet.wait_for_mode("shared", Duration::from_secs(5)).await;
    let from = counted.elapsed();
    let back = load(&fleet, &path, 3 * BUDGET as u32, 5).await;
    let back_rates = counted.per_second(from, from + Duration::from_secs(5));
    fleet.stop();

    // Assert
    println!(
        "fleet: upstream updates per second with Redis {shared_rates:?}, during the outage \
         {outage_rates:?} (fallback seen after {detected:?}), after Redis returned \
         {back_rates:?} (shared again after {returned:?}); answers {:?} / {:?} / {:?}",
        shared.statuses, outage.statuses, back.statuses
    );
    for (phase, rates, answers) in [
        ("shared", &shared_rates, &shared),
        ("outage", &outage_rates, &outage),
        ("back", &back_rates, &back),
    ] {
        assert!(
            rates.iter().all(|n| *n <= CEILING),
            "{phase}: {rates:?} over {CEILING}/s"
        );
        assert_only_allowed_or_throttled(answers, phase);
    }
    // The budget is used, not just respected: at least half of it with Redis (arrivals
    // every 1/60 s against a call every 1/20 s and a burst of one lose some of it, and
    // more when the machine is busy with other tests).
    let admitted: usize = shared_rates.iter().sum();
    assert!(
        admitted >= BUDGET * 10 / 2,
        "only {admitted} updates in 10 s"
    );
    let answered_200: usize = [&shared, &outage, &back]
        .iter()
        .map(|a| a.statuses.get(&200).copied().unwrap_or(0))
        .sum();
    assert_eq!(answered_200, counted.updates.lock().unwrap().len());
    assert_every_request_is_audited_and_every_chain_verifies(&fleet, &[&shared, &outage, &back]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callers_limit_is_shared_by_the_replicas_through_redis() {
    // Arrange: 1 request/s per caller, a burst of 4, on two replicas; dry runs call no one.
    let redis = Redis::start();
    let (cognito, _) = counting_stub();
    let fleet = Fleet::start(
        2,
        &FleetConfig {
            cognito: &cognito,
            quota: String::new(),
            rate_limit: format!(
                "rate_limit:\n  per_caller_per_second: 1\n  burst: 4\n  redis_url: \"{}\"\n",
                redis.url()
            ),
        },
    )
    .await;

    // Act: 12 requests at once, alternating replicas.
    let mut statuses = BTreeMap::new();
    let http = reqwest::Client::new();
    for n in 0..12 {
        let replica = &fleet.replicas[n % 2];
        let answer = http
            .patch(format!(
                "{}/pools/{POOL}/users/ann/attributes?dry_run=true",
                replica.base
            ))
            .bearer_auth(&fleet.token)
            .json(&json!({"attributes": {"given_name": "Ann"}}))
            .send()
            .await
            .unwrap();
        *statuses.entry(answer.status().as_u16()).or_insert(0) += 1;
    }

    // Assert: the burst of 4 (and at most one refill), not 4 per replica.
    let allowed = statuses.get(&200).copied().unwrap_or(0);
    assert!((4..=5).contains(&allowed), "{statuses:?}");
    assert_eq!(statuses.get(&429).copied().unwrap_or(0), 12 - allowed);
}

#[tokio::test]
async fn a_gateway_whose_redis_is_down_at_start_serves_on_its_local_share_and_says_so() {
    // Arrange: nothing listens on the Redis port.
    let (cognito, counted) = counting_stub();
    let fleet = Fleet::start(
        1,
        &FleetConfig {
            cognito: &cognito,
            quota: format!(
                "  quota:\n    user_update_per_second: 4\n    burst_seconds: 1\n    replicas: 2\n    redis_url: \"redis://127.0.0.1:{}/0\"\n",
                free_port()
            ),
            rate_limit: "rate_limit:\n  per_caller_per_second: 0\n".into(),
        },
    )
    .await;

    // Act
    fleet
        .wait_for_mode("local-fallback", Duration::from_secs(2))
        .await;
    let answers = load(
        &fleet,
        &format!("/pools/{POOL}/users/ann/attributes"),
        50,
        1,
    )
    .await;
    let metrics = reqwest::get(format!("{}/metrics", fleet.replicas[0].base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert: its share is 4 / 2 = 2 per second, starting empty after the loss.
    let updated = answers.statuses.get(&200).copied().unwrap_or(0);
    assert!((1..=3).contains(&updated), "{:?}", answers.statuses);
    assert_eq!(counted.updates.lock().unwrap().len(), updated);
    assert!(
        metrics.contains("attrgate_quota_backend{mode=\"local-fallback\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("attrgate_quota_backend{mode=\"shared\"} 0"),
        "{metrics}"
    );
}
