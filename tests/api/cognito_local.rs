//! attrgate against cognito-local (the npm package pinned in package.json), whose pool
//! ids are `local_…`: with `cognito.region` fixed such ids pass the input rules, and a
//! change reaches the emulator. A missing `node` or `node_modules/cognito-local` fails
//! these tests loudly (run `scripts/bootstrap-node`); they never skip.
//!
//! cognito-local's quirks, as met here: it reads its config from `.cognito/config.json`
//! in its working directory and keeps its data in `.cognito/db/`; it listens on `PORT`
//! and `HOST` (default 9229, localhost); its default `UsernameAttributes: [email]`
//! would make `ann` an invalid username, so the config clears it; and it answers
//! AdminUpdateUserAttributes for an unknown user with `NotAuthorizedException` ("User
//! not authorized") where Cognito says `UserNotFoundException`. Its DescribeUserPool
//! lists every standard and custom attribute with `Mutable`, so `validate_schema`
//! stays on (the default).

use std::path::Path;
use std::process::{ChildStdin, Command};
use std::sync::{Mutex, OnceLock};

use serde_json::json;

use crate::helpers::{
    Options, background_server, cognito_client_at, create_pool, create_user, free_port, spawn_app,
    spawn_app_with, temp_dir, user_attributes,
};

struct CognitoLocal {
    url: String,
    _stdin: Mutex<ChildStdin>,
}

static COGNITO_LOCAL: OnceLock<CognitoLocal> = OnceLock::new();

/// The URL of this process's cognito-local, started on first use in a fresh directory.
fn cognito_local_url() -> String {
    COGNITO_LOCAL
        .get_or_init(|| {
            let start = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("node_modules/cognito-local/lib/bin/start.js");
            assert!(
                start.exists(),
                "{} not found: run scripts/bootstrap-node (cognito-local is pinned in package.json)",
                start.display()
            );
            let node = Command::new("node").arg("--version").output();
            assert!(
                node.is_ok_and(|output| output.status.success()),
                "`node` not found: these tests need Node.js 20.19+ to run cognito-local"
            );
            let dir = temp_dir();
            std::fs::create_dir_all(dir.join(".cognito")).unwrap();
            std::fs::write(
                dir.join(".cognito/config.json"),
                json!({"UserPoolDefaults": {"UsernameAttributes": []}}).to_string(),
            )
            .unwrap();
            let port = free_port();
            let command = format!(
                "cd '{dir}' && PORT={port} HOST=127.0.0.1 node '{start}' >cognito-local.log 2>&1",
                dir = dir.display(),
                start = start.display()
            );
            CognitoLocal {
                url: format!("http://127.0.0.1:{port}"),
                _stdin: Mutex::new(background_server("cognito-local", &command, port)),
            }
        })
        .url
        .clone()
}

/// A gateway whose Cognito is cognito-local, with the region fixed, and a fresh pool
/// there with `ann`: (gateway, cognito-local client, pool id).
async fn gateway_on_cognito_local() -> (
    crate::helpers::TestApp,
    aws_sdk_cognitoidentityprovider::Client,
    String,
) {
    let url = cognito_local_url();
    let local = cognito_client_at(&url, "us-east-1").await;
    let pool = create_pool(&local).await;
    create_user(&local, &pool, "ann", &[("given_name", "Ann")]).await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(url),
        cognito_extra: "  region: us-east-1\n".to_owned(),
        ..Options::default()
    })
    .await;
    (app, local, pool)
}

#[tokio::test]
async fn with_a_fixed_region_a_local_pool_id_is_served_and_the_change_reaches_cognito_local() {
    // Arrange
    let (app, local, pool) = gateway_on_cognito_local().await;
    assert!(pool.starts_with("local_"), "{pool}");
    let token = app.token(&["support"]);

    // Act
    let answer = app
        .patch_to(
            &pool,
            "ann",
            &token,
            json!({"attributes": {"given_name": "Annie"}}),
            "",
        )
        .await;

    // Assert
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["updated"], json!(["given_name"]));
    let stored = user_attributes(&local, &pool, "ann").await;
    assert_eq!(stored["given_name"], "Annie");
}

#[tokio::test]
async fn an_unknown_user_in_cognito_local_is_a_404() {
    // Arrange
    let (app, _, pool) = gateway_on_cognito_local().await;
    let token = app.token(&["support"]);

    // Act
    let answer = app
        .patch_to(
            &pool,
            "nobody",
            &token,
            json!({"attributes": {"given_name": "X"}}),
            "",
        )
        .await;

    // Assert
    answer.assert_problem(404);
    let outcome = app.audit_records().last().unwrap()["outcome"].clone();
    assert_eq!(outcome, "NotAuthorizedException", "{outcome}");
}

#[tokio::test]
async fn without_a_fixed_region_a_local_pool_id_is_a_422_naming_the_region_rule() {
    // Arrange
    let app = spawn_app().await;
    let token = app.token(&["support"]);

    // Act
    let answer = app
        .patch_to(
            "local_4a5b6c7d",
            "ann",
            &token,
            json!({"attributes": {"given_name": "X"}}),
            "",
        )
        .await;

    // Assert
    answer.assert_problem(422);
    assert_eq!(answer.body["errors"][0]["field"], "pool_id");
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("AWS region"), "{message}");
}

#[tokio::test]
async fn cognito_local_describes_its_pools_fully_so_schema_validation_refuses_an_attribute_the_pool_lacks()
 {
    // Arrange
    let (app, local, pool) = gateway_on_cognito_local().await;
    let token = app.token(&["editor"]);

    // Act
    let answer = app
        .patch_to(
            &pool,
            "ann",
            &token,
            json!({"attributes": {"custom:not_in_pool": "x"}}),
            "",
        )
        .await;

    // Assert
    answer.assert_problem(422);
    assert_eq!(
        answer.body["errors"][0]["field"],
        "attributes.custom:not_in_pool"
    );
    let stored = user_attributes(&local, &pool, "ann").await;
    assert!(!stored.contains_key("custom:not_in_pool"));
}

#[tokio::test]
async fn with_a_fixed_region_permissions_answer_for_a_local_pool_id() {
    // Arrange
    let (app, _, pool) = gateway_on_cognito_local().await;
    let token = app.token(&["support"]);

    // Act
    let answer = app
        .http
        .get(format!("{}/permissions?pool_id={pool}", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["roles"][0]["role"], "support", "{body}");
}
