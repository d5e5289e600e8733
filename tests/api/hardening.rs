//! What an attacker tried, each as a test that failed before its fix: tokens in query
//! strings, `crit` headers, look-alike role separators, made-up regions, wrong methods,
//! two Authorization headers, other content types, quoted values in 400s, invalid UTF-8
//! in paths, `iat`/`exp` tricks; and attrgate's own budget of Cognito calls.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::helpers::{
    Options, PRIMARY_KID, TestApp, claims, now, rsa_key, spawn_app, spawn_app_with,
};
use crate::process::Gateway;
use crate::upstream::cognito_stub;

async fn patch_with_token(app: &TestApp, token: &str, attributes: Value) -> crate::helpers::Answer {
    app.patch(token, json!({ "attributes": attributes })).await
}

/// A token for `claims` whose header is exactly `header` (signed with the test key).
fn token_with_header(header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &rsa_key("issuer-a-rsa.pem"),
        Algorithm::RS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn a_token_in_the_query_string_never_reaches_the_log_but_the_parameter_name_does() {
    // Arrange
    let mut gateway = Gateway::start().await;
    let http = reqwest::Client::new();

    // Act
    http.patch(format!(
        "{}?access_token={}",
        gateway.attributes_url(),
        gateway.token
    ))
    .bearer_auth(&gateway.token)
    .json(&json!({"attributes": {"given_name": "Q"}}))
    .send()
    .await
    .unwrap();
    gateway.kill_9();

    // Assert
    let log = gateway.log_text();
    assert!(!log.contains(&gateway.token), "the token was logged");
    let signature = gateway.token.rsplit('.').next().unwrap();
    assert!(!log.contains(signature), "part of the token was logged");
    assert!(log.contains("attributes?access_token"), "{log}");
}

#[tokio::test]
async fn a_token_whose_header_names_a_critical_extension_is_refused_and_nothing_is_written() {
    // Arrange
    let app = spawn_app().await;
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": PRIMARY_KID, "crit": ["exp"]});
    let token = token_with_header(&header, &claims(&app.jwks.issuer, &["support"]));
    let plain = token_with_header(
        &json!({"alg": "RS256", "typ": "JWT", "kid": PRIMARY_KID}),
        &claims(&app.jwks.issuer, &["support"]),
    );

    // Act
    let refused = patch_with_token(&app, &token, json!({"given_name": "Crit"})).await;
    let accepted = patch_with_token(&app, &plain, json!({"nickname": "plain"})).await;

    // Assert
    refused.assert_problem(401);
    assert!(refused.body["detail"].as_str().unwrap().contains("crit"));
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    assert_eq!(
        app.ann().await.get("given_name").map(String::as_str),
        Some("Ann")
    );
}

#[tokio::test]
async fn a_roles_string_splits_on_plain_spaces_only() {
    // Arrange
    let app = spawn_app().await;
    let mut nbsp = claims(&app.jwks.issuer, &[]);
    nbsp["roles"] = json!("identity-admin\u{a0}support");
    let mut em_space = claims(&app.jwks.issuer, &[]);
    em_space["roles"] = json!("identity-admin\u{2003}support");
    let mut spaces = claims(&app.jwks.issuer, &[]);
    spaces["roles"] = json!("billing  support");

    // Act
    let with_nbsp = patch_with_token(&app, &app.token_with(&nbsp), json!({"nickname": "x"})).await;
    let with_em =
        patch_with_token(&app, &app.token_with(&em_space), json!({"nickname": "x"})).await;
    let with_spaces =
        patch_with_token(&app, &app.token_with(&spaces), json!({"nickname": "y"})).await;

    // Assert
    with_nbsp.assert_problem(403);
    assert_eq!(with_nbsp.body["denied"][0]["code"], "no_applicable_role");
    with_em.assert_problem(403);
    assert_eq!(with_spaces.status, 200, "{}", with_spaces.body);
}

#[tokio::test]
async fn a_made_up_region_or_a_non_ascii_pool_id_is_422_before_any_connection() {
    // Arrange
    let (endpoint, seen) = cognito_stub(200, "{}".to_owned()).await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        extra_config: String::new(),
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);

    // Act
    let mut answers = Vec::new();
    for pool in ["zz-nowhere-9_x", "us-e\u{430}st-1_x", "us-east-1x_abc"] {
        answers.push(
            app.patch_to(
                pool,
                "ann",
                &token,
                json!({"attributes": {"nickname": "x"}}),
                "",
            )
            .await,
        );
    }

    // Assert
    for answer in &answers {
        answer.assert_problem(422);
        assert_eq!(
            answer.body["errors"][0]["field"], "pool_id",
            "{}",
            answer.body
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}

#[tokio::test]
async fn a_region_outside_allowed_regions_is_422() {
    // Arrange
    let (endpoint, seen) = cognito_stub(200, "{}".to_owned()).await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        validate_schema: false,
        cognito_extra: "  allowed_regions: [eu-west-1]\n".into(),
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);

    // Act
    let us = app
        .patch_to(
            "us-east-1_abc",
            "ann",
            &token,
            json!({"attributes": {"nickname": "x"}}),
            "",
        )
        .await;
    let eu = app
        .patch_to(
            "eu-west-1_abc",
            "ann",
            &token,
            json!({"attributes": {"nickname": "x"}}),
            "",
        )
        .await;

    // Assert
    us.assert_problem(422);
    assert!(
        us.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("us-east-1")
    );
    assert_eq!(eu.status, 200, "{}", eu.body);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "only the allowed region was called"
    );
}

#[tokio::test]
async fn a_wrong_method_on_a_known_route_is_405_with_allow() {
    // Arrange
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    let attributes = app.attributes_url(&app.pool_id, "ann");

    // Act
    let delete = http.delete(&attributes).send().await.unwrap();
    let post = http
        .post(format!("{}/permissions", app.address))
        .send()
        .await
        .unwrap();
    let unknown = http
        .get(format!("{}/nowhere", app.address))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(delete.status(), 405);
    assert_eq!(delete.headers()["allow"], "GET, PATCH");
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET");
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn two_authorization_headers_are_refused_whichever_comes_first() {
    // Arrange
    let app = spawn_app().await;
    let good = app.token(&["support"]);

    // Act
    let response = reqwest::Client::new()
        .patch(app.attributes_url(&app.pool_id, "ann"))
        .header("authorization", format!("Bearer {good}"))
        .header("authorization", "Bearer not-a-token")
        .json(&json!({"attributes": {"given_name": "Two"}}))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(response.status(), 401);
    assert_eq!(
        app.ann().await.get("given_name").map(String::as_str),
        Some("Ann")
    );
}

#[tokio::test]
async fn only_application_json_with_an_optional_utf8_charset_is_accepted() {
    // Arrange
    let app = spawn_app().await;
    let token = app.token(&["support"]);
    let body = br#"{"attributes": {"nickname": "ct"}}"#.to_vec();

    // Act
    let mut statuses = Vec::new();
    for content_type in [
        "application/merge-patch+json",
        "application/vnd.api+json",
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-8",
    ] {
        let answer = app
            .patch_raw(Some(&token), Some(content_type), body.clone())
            .await;
        statuses.push(answer.status);
    }

    // Assert
    assert_eq!(statuses, [415, 415, 415, 200]);
}

#[tokio::test]
async fn a_400_names_the_problem_and_its_position_without_quoting_what_was_sent() {
    // Arrange
    let app = spawn_app().await;
    let token = app.token(&["support"]);

    // Act
    let wrong_type = app
        .patch_raw(
            Some(&token),
            Some("application/json"),
            br#"{"attributes": "leak-me-1"}"#.to_vec(),
        )
        .await;
    let unknown = app
        .patch_raw(
            Some(&token),
            Some("application/json"),
            br#"{"attributes": {"nickname": "x"}, "leak-me-2": 1}"#.to_vec(),
        )
        .await;

    // Assert
    for (answer, leak) in [(&wrong_type, "leak-me-1"), (&unknown, "leak-me-2")] {
        answer.assert_problem(400);
        let text = answer.body.to_string();
        assert!(!text.contains(leak), "{text}");
        assert!(text.contains("at line 1 column"), "{text}");
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_path_segment_is_422_and_nothing_is_forwarded() {
    // Arrange
    let (endpoint, seen) = cognito_stub(200, "{}".to_owned()).await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        validate_schema: false,
        ..Options::default()
    })
    .await;

    // Act
    let answer = app
        .patch_to(
            &app.pool_id.clone(),
            "ann%FF%FE",
            &app.token(&["support"]),
            json!({"attributes": {"nickname": "x"}}),
            "",
        )
        .await;

    let read = app.read(&app.token(&["identity-admin"]), "ann%FF%FE").await;

    // Assert
    answer.assert_problem(422);
    assert_eq!(answer.body["errors"][0]["field"], "path");
    read.assert_problem(422);
    assert_eq!(read.body["errors"][0]["field"], "path");
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    let records = app.audit_records();
    assert_eq!(records[0]["outcome"], "invalid");
    assert_eq!(records[1]["event"], "read");
    assert_eq!(records[1]["outcome"], "invalid");
}

#[tokio::test]
async fn iat_in_the_future_a_non_numeric_exp_and_an_overlong_lifetime_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let with = |key: &str, value: Value| {
        let mut claims = claims(&app.jwks.issuer, &["support"]);
        claims[key] = value;
        app.token_with(&claims)
    };
    let cases = [
        (with("iat", json!(now() + 3600)), "issued in the future"),
        (
            with("iat", json!("yesterday")),
            "iat claim must be a number",
        ),
        (with("exp", json!("tomorrow")), "exp claim must be a number"),
        (
            with("exp", json!(9_223_372_036_854_775_807_i64)),
            "lifetime is too long",
        ),
        (
            with("exp", json!(now() + 2 * 86_400)),
            "lifetime is too long",
        ),
    ];

    // Act / Assert
    for (token, message) in cases {
        let answer = patch_with_token(&app, &token, json!({"nickname": "t"})).await;
        answer.assert_problem(401);
        let detail = answer.body["detail"].as_str().unwrap();
        assert!(detail.contains(message), "{detail} (wanted {message})");
    }
}

#[tokio::test]
async fn over_the_cognito_budget_an_update_gets_429_with_retry_after_and_is_audited_as_throttled() {
    // Arrange
    let (endpoint, seen) = cognito_stub(200, "{}".to_owned()).await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        validate_schema: false,
        cognito_extra: "  quota: {user_update_per_second: 0.5, burst_seconds: 2}\n".into(),
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);

    // Act
    let first = patch_with_token(&app, &token, json!({"nickname": "one"})).await;
    let second = patch_with_token(&app, &token, json!({"nickname": "two"})).await;
    let metrics = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert
    assert_eq!(first.status, 200, "{}", first.body);
    second.assert_problem(429);
    // One token every 2 s: the wait is what is left of those 2 s, in whole seconds.
    let retry_after: u64 = second.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(seen.lock().unwrap().len(), 1, "Cognito saw only the first");
    let outcomes: Vec<Value> = app
        .audit_records()
        .iter()
        .map(|r| r["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["pending", "updated", "pending", "throttled"]);
    assert!(
        metrics.contains(r#"attrgate_quota_refusals_total{category="user_update"} 1"#),
        "{metrics}"
    );
}
