//! Health, readiness, metrics, the OpenAPI document, and upstream failures.

use serde_json::json;

use crate::helpers::{Options, spawn_app, spawn_app_with};

#[tokio::test]
async fn healthz_and_readyz_answer_200_when_ready() {
    let app = spawn_app().await;

    let health = app.get("/healthz").await;
    let ready = app.get("/readyz").await;

    assert_eq!(health.status, 200);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.body["issuer_keys_fetched"], true);
    assert!(
        ready.body["policy_revision"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_decisions_by_outcome() {
    let app = spawn_app().await;
    app.patch_as(&["support"], json!({"given_name": "M"})).await;
    app.patch_as(&["support"], json!({"email": "m@x.io"})).await;

    let metrics = app.get("/metrics").await;
    let text = metrics.body.as_str().unwrap();

    assert!(
        text.contains(r#"attrgate_decisions_total{outcome="updated"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"attrgate_decisions_total{outcome="denied"} 1"#));
    assert!(text.contains(r#"route="/pools/{pool_id}/users/{username}/attributes""#));
    assert!(text.contains("attrgate_cognito_request_duration_seconds_bucket"));
}

#[tokio::test]
async fn an_unknown_route_is_a_problem_json_404() {
    let app = spawn_app().await;

    let answer = app.get("/nope").await;

    answer.assert_problem(404);
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let app = spawn_app().await;

    let answer = app.get("/openapi.json").await;

    assert_eq!(answer.status, 200);
    assert!(answer.body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(
        answer.body["paths"]["/pools/{pool_id}/users/{username}/attributes"]["patch"].is_object()
    );
}

/// A TCP server that accepts connections and never answers: a Cognito that hangs.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

#[tokio::test]
async fn a_cognito_that_does_not_answer_in_time_is_504_and_audited() {
    let endpoint = silent_server().await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        cognito_timeout_seconds: 1,
        ..Options::default()
    })
    .await;

    let answer = app.patch_as(&["support"], json!({"given_name": "T"})).await;

    answer.assert_problem(504);
    assert_eq!(app.audit_records().last().unwrap()["outcome"], "timeout");
}

#[tokio::test]
async fn a_cognito_that_cannot_be_reached_is_502_without_internals() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        ..Options::default()
    })
    .await;

    let answer = app.patch_as(&["support"], json!({"given_name": "T"})).await;

    answer.assert_problem(502);
    let body = answer.body.to_string();
    for leak in ["dispatch", "Connection refused", "127.0.0.1", "testing"] {
        assert!(!body.contains(leak), "502 body leaks {leak}: {body}");
    }
}

#[tokio::test]
async fn permissions_lists_only_the_roles_that_apply_in_the_pool() {
    let app = spawn_app().await;
    let token = app.token(&["support", "eu-support", "identity-admin", "unknown-role"]);

    let answer = app
        .http
        .get(format!(
            "{}/permissions?pool_id={}",
            app.address, app.pool_id
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = answer.json().await.unwrap();

    let roles: Vec<&str> = body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["support", "identity-admin"], "{body}");
    assert_eq!(body["can_verify"], json!(["email", "phone_number"]));
    assert!(
        body["protected"]
            .as_array()
            .unwrap()
            .contains(&json!("custom:tenant_id"))
    );
}

#[tokio::test]
async fn permissions_needs_a_token_and_a_pool_id() {
    let app = spawn_app().await;

    let anonymous = app
        .get(&format!("/permissions?pool_id={}", app.pool_id))
        .await;
    let no_pool = app
        .http
        .get(format!("{}/permissions", app.address))
        .bearer_auth(app.token(&["support"]))
        .send()
        .await
        .unwrap();

    anonymous.assert_problem(401);
    assert_eq!(no_pool.status().as_u16(), 400);
}
