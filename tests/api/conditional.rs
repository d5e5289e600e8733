//! Conditional writes and one writer per user, end to end against moto: `If-Match`
//! (412 `precondition_failed`, the new ETag), and the user lock that keeps a tenant
//! admin's update from landing on a user moved to another tenant in between, in one
//! replica and across two replicas sharing a real redis-server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;
use tokio::sync::Notify;

use crate::fleet::Redis;
use crate::helpers::{Answer, Options, TestApp, moto_url, spawn_app_with, user_attributes};
use crate::tenants::{create_tenant_users, token};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
/// How long the stand-in holds the mover's AdminUpdateUserAttributes.
const MOVE_DELAY: Duration = Duration::from_millis(1500);

fn read_policy() -> PathBuf {
    PathBuf::from(format!("{FIXTURES}/read-policy.yaml"))
}

async fn app_with(cognito_endpoint: Option<String>, cognito_extra: String) -> TestApp {
    let app = spawn_app_with(Options {
        policy_file: read_policy(),
        cognito_endpoint,
        cognito_extra,
        ..Options::default()
    })
    .await;
    create_tenant_users(&app, &[("ann-a", "a")]).await;
    app
}

fn etag(answer: &Answer) -> String {
    answer.headers["etag"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_patch_with_the_current_etag_writes_and_returns_the_tag_a_read_then_gives() {
    let app = app_with(None, String::new()).await;
    let token = app.token(&["support"]);
    let before = app.read(&token, "ann-a").await;

    let written = app
        .patch_if_match(
            &token,
            "ann-a",
            json!({"nickname": "annie"}),
            &etag(&before),
        )
        .await;

    assert_eq!(written.status, 200, "{}", written.body);
    let after = app.read(&token, "ann-a").await;
    assert_eq!(etag(&written), etag(&after));
    assert_ne!(etag(&before), etag(&after));
}

#[tokio::test]
async fn of_two_writers_with_the_same_etag_the_second_gets_412_and_writes_nothing() {
    let app = app_with(None, String::new()).await;
    let token = app.token(&["support"]);
    let tag = etag(&app.read(&token, "ann-a").await);

    let first = app
        .patch_if_match(&token, "ann-a", json!({"given_name": "First"}), &tag)
        .await;
    let second = app
        .patch_if_match(&token, "ann-a", json!({"given_name": "Second"}), &tag)
        .await;

    assert_eq!(first.status, 200, "{}", first.body);
    second.assert_problem(412);
    assert_eq!(second.body["code"], "precondition_failed");
    assert_eq!(
        user_attributes(&app.cognito, &app.pool_id, "ann-a").await["given_name"],
        "First"
    );
    let outcomes: Vec<String> = app
        .audit_records()
        .iter()
        .map(|record| record["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        outcomes.ends_with(&["precondition_failed".to_owned()]),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn if_match_star_writes_and_a_weak_or_unknown_tag_never_matches() {
    let app = app_with(None, String::new()).await;
    let token = app.token(&["support"]);
    let tag = etag(&app.read(&token, "ann-a").await);

    let any = app
        .patch_if_match(&token, "ann-a", json!({"nickname": "a"}), "*")
        .await;
    let weak = app
        .patch_if_match(
            &token,
            "ann-a",
            json!({"nickname": "b"}),
            &format!("W/{tag}"),
        )
        .await;
    let unknown = app
        .patch_if_match(&token, "ann-a", json!({"nickname": "c"}), "\"nope\"")
        .await;

    let unreadable = app
        .http
        .patch(app.attributes_url(&app.pool_id, "ann-a"))
        .bearer_auth(&token)
        .header(
            "if-match",
            reqwest::header::HeaderValue::from_bytes(b"\"caf\xe9\"").unwrap(),
        )
        .json(&json!({"attributes": {"nickname": "d"}}))
        .send()
        .await
        .unwrap();

    assert_eq!(any.status, 200, "{}", any.body);
    weak.assert_problem(412);
    unknown.assert_problem(412);
    assert_eq!(
        unreadable.status(),
        412,
        "an If-Match that is not ASCII never turns into an unconditional write"
    );
    assert_eq!(
        user_attributes(&app.cognito, &app.pool_id, "ann-a").await["nickname"],
        "a"
    );
}

/// A Cognito stand-in in front of moto that forwards every call, holding back each
/// AdminUpdateUserAttributes that changes `custom:tenant_id` (the mover's) by
/// `MOVE_DELAY`, and notifying `arrived` when one comes in.
fn delaying_proxy(arrived: Arc<Notify>) -> String {
    delaying_proxy_for(arrived, |target, body| {
        target.ends_with("AdminUpdateUserAttributes") && body.contains("custom:tenant_id")
    })
}

/// The same stand-in, holding back the calls `held(target, body)` picks.
fn delaying_proxy_for(arrived: Arc<Notify>, held: fn(&str, &str) -> bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let moto = moto_url();
    let http = reqwest::Client::new();
    let server = HttpServer::new(move || {
        let (moto, http, arrived) = (moto.clone(), http.clone(), arrived.clone());
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let (moto, http, arrived) = (moto.clone(), http.clone(), arrived.clone());
            async move {
                let target = req
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let text = String::from_utf8_lossy(&body);
                if held(&target, &text) {
                    arrived.notify_one();
                    tokio::time::sleep(MOVE_DELAY).await;
                }
                let mut forward = http.post(format!("{moto}{}", req.uri()));
                for (name, value) in req.headers() {
                    if name != "host" && name != "content-length" {
                        forward = forward.header(name.as_str(), value.as_bytes());
                    }
                }
                let answer = forward.body(body.to_vec()).send().await.unwrap();
                let status = answer.status().as_u16();
                let headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap();
                let mut response =
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                for (name, value) in &headers {
                    if name != "content-length" && name != "transfer-encoding" {
                        response.insert_header((name.as_str(), value.as_bytes()));
                    }
                }
                response.body(bytes)
            }
        }))
    })
    .workers(2)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    url
}

fn tenant_admin(app: &TestApp) -> String {
    token(app, &["tenant-admin"], Some("a"))
}

/// The mover moves `ann-a` to tenant b through `mover_app` (its write held back by the
/// stand-in); while that write is in flight, tenant a's admin updates `ann-a` through
/// `admin_app`. Returns the admin's answer and the mover's.
async fn race(
    mover_app: &TestApp,
    admin_app: &TestApp,
    pool: &str,
    arrived: &Notify,
) -> (Answer, Answer) {
    let mover_token = mover_app.token(&["mover"]);
    let moving = {
        let (url, pool) = (mover_app.address.clone(), pool.to_owned());
        let http = mover_app.http.clone();
        tokio::spawn(async move {
            let response = http
                .patch(format!("{url}/pools/{pool}/users/ann-a/attributes"))
                .bearer_auth(mover_token)
                .json(&json!({"attributes": {"custom:tenant_id": "b"}}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.json().await.unwrap_or_default();
            (status, body)
        })
    };
    // The mover has read, decided and is writing: the admin comes in now.
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .expect("the mover's write reached the stand-in");
    let admin = admin_app
        .patch_to(
            pool,
            "ann-a",
            &tenant_admin(admin_app),
            json!({"attributes": {"given_name": "Hijacked"}}),
            "",
        )
        .await;
    let (status, body) = moving.await.unwrap();
    let mover = Answer {
        status,
        headers: reqwest::header::HeaderMap::new(),
        body,
    };
    (admin, mover)
}

fn assert_the_admin_never_wrote_to_the_moved_user(
    admin: &Answer,
    mover: &Answer,
    user: &std::collections::HashMap<String, String>,
) {
    assert_eq!(mover.status, 200, "{}", mover.body);
    assert_eq!(user["custom:tenant_id"], "b");
    admin.assert_problem(403);
    assert_eq!(admin.body["denied"][0]["code"], "target_condition");
    assert_eq!(
        user["given_name"], "Before",
        "tenant a's admin changed a user of tenant b"
    );
}

#[tokio::test]
async fn a_tenant_admin_cannot_write_to_a_user_moved_to_another_tenant_while_it_decided() {
    let arrived = Arc::new(Notify::new());
    let proxy = delaying_proxy(arrived.clone());
    let app = app_with(Some(proxy), "  user_lock_wait_ms: 5000\n".into()).await;

    let (admin, mover) = race(&app, &app, &app.pool_id, &arrived).await;

    let user = user_attributes(&app.cognito, &app.pool_id, "ann-a").await;
    assert_the_admin_never_wrote_to_the_moved_user(&admin, &mover, &user);
}

#[tokio::test]
async fn two_replicas_sharing_redis_serialise_the_changes_to_one_user() {
    let redis = Redis::start();
    let arrived = Arc::new(Notify::new());
    let proxy = delaying_proxy(arrived.clone());
    let extra = format!(
        "  user_lock_wait_ms: 5000\n  quota:\n    redis_url: \"{}\"\n",
        redis.url()
    );
    let first = app_with(Some(proxy.clone()), extra.clone()).await;
    let second = app_with(Some(proxy), extra).await;

    let (admin, mover) = race(&first, &second, &first.pool_id, &arrived).await;

    let user = user_attributes(&first.cognito, &first.pool_id, "ann-a").await;
    assert_the_admin_never_wrote_to_the_moved_user(&admin, &mover, &user);
}

#[tokio::test]
async fn a_user_held_longer_than_the_wait_is_429_user_busy_with_retry_after() {
    let arrived = Arc::new(Notify::new());
    let proxy = delaying_proxy(arrived.clone());
    let app = app_with(Some(proxy), "  user_lock_wait_ms: 200\n".into()).await;

    let (admin, mover) = race(&app, &app, &app.pool_id, &arrived).await;

    assert_eq!(mover.status, 200, "{}", mover.body);
    admin.assert_problem(429);
    assert_eq!(admin.body["code"], "user_busy");
    assert_eq!(admin.headers["retry-after"], "1");
    let user = user_attributes(&app.cognito, &app.pool_id, "ann-a").await;
    assert_eq!(user["given_name"], "Before");
}

#[tokio::test]
async fn a_redis_lock_taken_over_while_a_replica_decided_stops_its_write() {
    let redis = Redis::start();
    let arrived = Arc::new(Notify::new());
    let proxy = delaying_proxy_for(arrived.clone(), |target, _| {
        target.ends_with("AdminGetUser")
    });
    let extra = format!(
        "  user_lock_wait_ms: 5000\n  quota:\n    redis_url: \"{}\"\n",
        redis.url()
    );
    let app = app_with(Some(proxy), extra).await;
    let admin = tenant_admin(&app);

    // The admin's update holds the user and reads its facts (held back by the stand-in);
    // meanwhile its Redis lock is lost (as when it expires) and another holder takes it.
    let updating = {
        let (http, url) = (app.http.clone(), app.attributes_url(&app.pool_id, "ann-a"));
        tokio::spawn(async move {
            http.patch(url)
                .bearer_auth(admin)
                .json(&json!({"attributes": {"given_name": "Late"}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    };
    tokio::time::timeout(Duration::from_secs(10), arrived.notified())
        .await
        .expect("the admin's read reached the stand-in");
    let key = format!("attrgate:user-lock:{}:ann-a", app.pool_id);
    let mut connection = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("another-replica")
        .query_async(&mut connection)
        .await
        .unwrap();
    let status = updating.await.unwrap();

    assert_eq!(
        status, 429,
        "a write without the user's lock must not happen"
    );
    assert_eq!(
        user_attributes(&app.cognito, &app.pool_id, "ann-a").await["given_name"],
        "Before"
    );
    let outcomes: Vec<String> = app
        .audit_records()
        .iter()
        .map(|record| record["outcome"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(outcomes, ["pending", "user_busy"]);
}
