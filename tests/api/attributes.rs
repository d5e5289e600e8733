//! PATCH /pools/{pool_id}/users/{username}/attributes against moto, end to end.

use serde_json::{Value, json};

use crate::helpers::{
    Options, cognito_client, create_pool, create_user, spawn_app, spawn_app_with, user_attributes,
};

#[tokio::test]
async fn an_allowed_update_reaches_cognito_and_answers_200_with_the_sorted_names() {
    let app = spawn_app().await;
    let token = app.token(&["support", "billing"]);

    let answer = app
        .patch(
            &token,
            json!({"attributes": {"given_name": "Annie", "custom:plan": "pro"}}),
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["updated"], json!(["custom:plan", "given_name"]));
    assert_eq!(answer.body["dry_run"], false);
    let ann = app.ann().await;
    assert_eq!(ann["given_name"], "Annie");
    assert_eq!(ann["custom:plan"], "pro");
}

#[tokio::test]
async fn a_denied_update_answers_403_and_cognito_is_unchanged() {
    let app = spawn_app().await;
    let token = app.token(&["support"]);

    let answer = app
        .patch(&token, json!({"attributes": {"email": "evil@example.com"}}))
        .await;

    answer.assert_problem(403);
    assert_eq!(answer.body["denied"][0]["attribute"], "email");
    assert_eq!(app.ann().await["email"], "ann@example.com");
}

#[tokio::test]
async fn a_partly_denied_update_lists_every_denied_attribute_and_writes_nothing() {
    let app = spawn_app().await;
    let token = app.token(&["support"]);

    let answer = app
        .patch(
            &token,
            json!({"attributes": {"given_name": "Mallory", "email": "evil@example.com", "email_verified": "true"}}),
        )
        .await;

    answer.assert_problem(403);
    assert_eq!(answer.denied_attributes(), ["email", "email_verified"]);
    let ann = app.ann().await;
    assert_eq!(
        ann["given_name"], "Ann",
        "the allowed part must not be written either"
    );
    assert_eq!(ann.get("email_verified").map(String::as_str), None);
}

#[tokio::test]
async fn only_a_role_with_verify_rights_may_mark_an_email_verified() {
    let app = spawn_app().await;

    let by_support = app
        .patch_as(&["support"], json!({"email_verified": "true"}))
        .await;
    let by_admin = app
        .patch_as(&["identity-admin"], json!({"email_verified": "true"}))
        .await;

    by_support.assert_problem(403);
    assert_eq!(by_admin.status, 200, "{}", by_admin.body);
    assert_eq!(app.ann().await["email_verified"], "true");
}

#[tokio::test]
async fn a_wildcard_update_grant_never_grants_a_verified_flag() {
    let app = spawn_app().await;

    let answer = app
        .patch_as(
            &["editor"],
            json!({"email_verified": "true", "phone_number_verified": "true", "nickname": "x"}),
        )
        .await;

    answer.assert_problem(403);
    assert_eq!(
        answer.denied_attributes(),
        ["email_verified", "phone_number_verified"]
    );
    assert_eq!(app.ann().await.get("nickname"), None);
}

#[tokio::test]
async fn one_roles_deny_beats_another_roles_wildcard_grant() {
    let app = spawn_app().await;

    let answer = app
        .patch_as(
            &["no-nicknames", "identity-admin"],
            json!({"phone_number_verified": "true", "nickname": "x"}),
        )
        .await;

    answer.assert_problem(403);
    assert_eq!(answer.denied_attributes(), ["nickname"]);
}

#[tokio::test]
async fn a_value_outside_the_roles_constraint_is_denied_and_not_written() {
    let app = spawn_app().await;
    let token = app.token(&["billing"]);

    let answer = app
        .patch(&token, json!({"attributes": {"custom:plan": "enterprise"}}))
        .await;

    answer.assert_problem(403);
    assert!(
        answer.body["denied"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("one of"),
        "{}",
        answer.body
    );
    assert_eq!(app.ann().await.get("custom:plan"), None);
}

#[tokio::test]
async fn a_protected_attribute_is_denied_even_to_the_wildcard_role() {
    let app = spawn_app().await;

    let answer = app
        .patch_as(&["identity-admin"], json!({"custom:tenant_id": "t2"}))
        .await;

    answer.assert_problem(403);
    assert_eq!(app.ann().await.get("custom:tenant_id"), None);
}

#[tokio::test]
async fn a_role_scoped_to_other_pools_does_not_apply_and_does_in_its_own() {
    let app = spawn_app().await;
    let eu = cognito_client("eu-west-1").await;
    let eu_pool = create_pool(&eu).await;
    create_user(&eu, &eu_pool, "ann", &[("email", "ann@example.com")]).await;
    let token = app.token(&["eu-support"]);

    let in_us = app
        .patch(&token, json!({"attributes": {"locale": "en"}}))
        .await;
    let in_eu = app
        .patch_to(
            &eu_pool,
            "ann",
            &token,
            json!({"attributes": {"locale": "en"}}),
            "",
        )
        .await;

    in_us.assert_problem(403);
    assert_eq!(in_eu.status, 200, "{}", in_eu.body);
    assert_eq!(user_attributes(&eu, &eu_pool, "ann").await["locale"], "en");
    assert_eq!(app.ann().await.get("locale"), None);
}

#[tokio::test]
async fn role_names_are_case_sensitive() {
    let app = spawn_app().await;

    let answer = app.patch_as(&["Support"], json!({"given_name": "X"})).await;

    answer.assert_problem(403);
}

#[tokio::test]
async fn an_empty_value_deletes_the_attribute() {
    let app = spawn_app().await;

    let answer = app.patch_as(&["support"], json!({"given_name": ""})).await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        app.ann()
            .await
            .get("given_name")
            .is_none_or(String::is_empty)
    );
}

#[tokio::test]
async fn a_dry_run_decides_and_answers_200_but_does_not_write() {
    let app = spawn_app().await;
    let token = app.token(&["support"]);
    let pool = app.pool_id.clone();

    let answer = app
        .patch_to(
            &pool,
            "ann",
            &token,
            json!({"attributes": {"given_name": "Dry"}}),
            "?dry_run=true",
        )
        .await;
    let denied = app
        .patch_to(
            &pool,
            "ann",
            &token,
            json!({"attributes": {"email": "x@y.zz"}}),
            "?dry_run=true",
        )
        .await;

    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["dry_run"], true);
    assert_eq!(app.ann().await["given_name"], "Ann");
    denied.assert_problem(403);
}

#[tokio::test]
async fn an_unknown_query_parameter_is_400_rather_than_a_silent_real_write() {
    let app = spawn_app().await;
    let pool = app.pool_id.clone();

    let answer = app
        .patch_to(
            &pool,
            "ann",
            &app.token(&["support"]),
            json!({"attributes": {"given_name": "Typo"}}),
            "?dryrun=true",
        )
        .await;

    answer.assert_problem(400);
    assert_eq!(app.ann().await["given_name"], "Ann");
}

#[tokio::test]
async fn an_unknown_user_is_404() {
    let app = spawn_app().await;
    let pool = app.pool_id.clone();

    let answer = app
        .patch_to(
            &pool,
            "nobody",
            &app.token(&["support"]),
            json!({"attributes": {"given_name": "X"}}),
            "",
        )
        .await;

    answer.assert_problem(404);
}

#[tokio::test]
async fn an_unknown_pool_is_404() {
    let app = spawn_app().await;

    let answer = app
        .patch_to(
            "us-east-1_0123456789abcdef0123456789abcdef",
            "ann",
            &app.token(&["support"]),
            json!({"attributes": {"given_name": "X"}}),
            "",
        )
        .await;

    answer.assert_problem(404);
}

#[tokio::test]
async fn client_metadata_is_accepted_and_not_stored_in_the_audit_log() {
    let app = spawn_app().await;

    let answer = app
        .patch(&app.token(&["support"]), json!({"attributes": {"given_name": "Meta"}, "client_metadata": {"source": "crm-secret-marker"}}))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(!app.audit_text().contains("crm-secret-marker"));
}

// ---------- 4xx classes ----------

#[tokio::test]
async fn malformed_json_is_400_with_errors() {
    let app = spawn_app().await;

    let answer = app
        .patch_raw(
            Some(&app.token(&["support"])),
            Some("application/json"),
            b"{\"attributes\": {".to_vec(),
        )
        .await;

    answer.assert_problem(400);
    assert!(
        answer.body["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
}

#[tokio::test]
async fn an_unknown_body_field_is_400() {
    let app = spawn_app().await;

    let answer = app
        .patch(
            &app.token(&["support"]),
            json!({"attributes": {"given_name": "X"}, "force": true}),
        )
        .await;

    answer.assert_problem(400);
    assert_eq!(app.ann().await["given_name"], "Ann");
}

#[tokio::test]
async fn missing_or_empty_attributes_are_400() {
    let app = spawn_app().await;
    let token = app.token(&["support"]);

    let missing = app.patch(&token, json!({"client_metadata": {}})).await;
    let empty = app.patch(&token, json!({"attributes": {}})).await;

    missing.assert_problem(400);
    empty.assert_problem(400);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let app = spawn_app_with(Options {
        extra_config: "max_body_bytes: 1024".into(),
        ..Options::default()
    })
    .await;
    let big = json!({"attributes": {"given_name": "x".repeat(2000)}}).to_string();

    let answer = app
        .patch_raw(
            Some(&app.token(&["support"])),
            Some("application/json"),
            big.into_bytes(),
        )
        .await;

    answer.assert_problem(413);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;

    let answer = app
        .patch_raw(
            Some(&app.token(&["support"])),
            Some("text/plain"),
            b"given_name=x".to_vec(),
        )
        .await;
    let none = app
        .patch_raw(Some(&app.token(&["support"])), None, b"{}".to_vec())
        .await;

    answer.assert_problem(415);
    none.assert_problem(415);
}

#[tokio::test]
async fn an_unknown_bare_attribute_is_422_with_a_custom_prefix_hint() {
    let app = spawn_app().await;

    let answer = app
        .patch_as(&["identity-admin"], json!({"tier": "gold"}))
        .await;

    answer.assert_problem(422);
    assert_eq!(answer.body["errors"][0]["field"], "attributes.tier");
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean custom:tier?")
    );
}

#[tokio::test]
async fn bad_values_are_422_and_every_one_is_listed_even_for_an_all_powerful_role() {
    let app = spawn_app().await;

    let answer = app.patch_as(&["identity-admin"], json!({"email": "not-an-email", "phone_number": "0044", "email_verified": "yes", "sub": "x"}))
        .await;

    answer.assert_problem(422);
    assert_eq!(
        answer.body["errors"].as_array().unwrap().len(),
        4,
        "{}",
        answer.body
    );
    assert_eq!(app.ann().await["email"], "ann@example.com");
}

#[tokio::test]
async fn a_malformed_pool_id_or_username_is_422() {
    let app = spawn_app().await;
    let token = app.token(&["support"]);
    let long_name = "a".repeat(129);

    let bad_pool = app
        .patch_to(
            "no-underscore",
            "ann",
            &token,
            json!({"attributes": {"given_name": "X"}}),
            "",
        )
        .await;
    let bad_user = app
        .patch_to(
            &app.pool_id.clone(),
            &long_name,
            &token,
            json!({"attributes": {"given_name": "X"}}),
            "",
        )
        .await;

    bad_pool.assert_problem(422);
    bad_user.assert_problem(422);
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app_with(Options {
        extra_config: "rate_limit: {per_caller_per_second: 1, burst: 2}".into(),
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);

    let pool = app.pool_id.clone();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let body = json!({"attributes": {"given_name": "R"}});
        statuses.push(
            app.patch_to(&pool, "ann", &token, body, "?dry_run=true")
                .await,
        );
    }

    assert_eq!(statuses[0].status, 200);
    assert_eq!(statuses[1].status, 200);
    statuses[2].assert_problem(429);
    assert!(statuses[2].headers.contains_key("retry-after"));
}

#[tokio::test]
async fn every_denied_attribute_carries_a_stable_code_beside_its_reason() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let answer = app
        .patch_as(
            &["support", "billing"],
            json!({
                "custom:tenant_id": "t2",
                "email": "a@example.com",
                "email_verified": "true",
                "custom:plan": "enterprise",
            }),
        )
        .await;

    // Assert
    answer.assert_problem(403);
    let codes: Vec<(&str, &str)> = answer.body["denied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["attribute"].as_str().unwrap(),
                d["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        [
            ("custom:plan", "constraint"),
            ("custom:tenant_id", "protected"),
            ("email", "not_granted"),
            ("email_verified", "no_verify_grant"),
        ]
    );
}

#[tokio::test]
async fn a_token_with_9000_made_up_roles_gets_a_small_403_and_a_small_audit_record() {
    // Arrange
    let app = spawn_app().await;
    let roles: Vec<String> = (0..9000).map(|i| format!("r{i}")).collect();
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let attributes: serde_json::Map<String, Value> = (0..10)
        .map(|i| (format!("custom:a{i}"), json!("x")))
        .collect();

    // Act
    let answer = app.patch_as(&roles, Value::Object(attributes)).await;

    // Assert
    answer.assert_problem(403);
    let body = answer.body.to_string();
    assert!(body.len() < 4096, "a 403 of {} bytes", body.len());
    assert!(body.contains("r0, r1, r2, r3, r4, and 8995 more"), "{body}");
    let audit = app.audit_text();
    assert!(
        audit.len() < 8192,
        "an audit record of {} bytes",
        audit.len()
    );
    let record = &app.audit_records()[0];
    assert_eq!(record["caller"]["roles"].as_array().unwrap().len(), 20);
    assert_eq!(record["caller"]["roles_omitted"], 8980);
}
