//! Pool awareness against moto: attribute names are checked against the pool's schema
//! (DescribeUserPool) before the policy and before the write. moto itself accepts any
//! attribute on update, so this check is the only guard these tests can see.

use serde_json::json;

use crate::helpers::{
    Options, TestApp, create_pool_with, create_user, spawn_app, spawn_app_with, user_attributes,
};

/// A pool with a mutable `custom:plan`, an immutable `custom:employee_id`, and an
/// immutable standard `birthdate`; `ann` lives there with values for each.
async fn pool_with_immutable_attributes(app: &TestApp) -> String {
    let pool_id = create_pool_with(
        &app.cognito,
        &[("plan", true), ("employee_id", false), ("birthdate", false)],
    )
    .await;
    create_user(
        &app.cognito,
        &pool_id,
        "ann",
        &[
            ("given_name", "Ann"),
            ("custom:employee_id", "E-1"),
            ("birthdate", "1990-01-01"),
        ],
    )
    .await;
    pool_id
}

fn error_fields(body: &serde_json::Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_attribute_the_pool_does_not_have_is_422_even_for_a_role_granted_everything() {
    // Arrange
    let app = spawn_app().await;
    let before = app.ann().await;

    // Act
    let answer = app
        .patch_as(
            &["identity-admin"],
            json!({"custom:tier": "gold", "given_name": "Changed"}),
        )
        .await;

    // Assert
    answer.assert_problem(422);
    assert_eq!(error_fields(&answer.body), ["attributes.custom:tier"]);
    let message = answer.body["errors"][0]["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!("pool {} has no attribute custom:tier", app.pool_id)
    );
    assert_eq!(app.ann().await, before, "nothing was written");
    let record = app.audit_records().last().unwrap().clone();
    assert_eq!(record["outcome"], "invalid");
    assert_eq!(record["errors"][0]["field"], "attributes.custom:tier");
    assert!(!app.audit_text().contains("gold"));
}

#[tokio::test]
async fn the_schema_check_comes_before_the_policy_so_an_unknown_attribute_is_not_a_403() {
    // Arrange: support may not write custom:* at all.
    let app = spawn_app().await;

    // Act
    let answer = app
        .patch_as(&["support"], json!({"custom:plann": "pro"}))
        .await;

    // Assert
    answer.assert_problem(422);
    assert!(
        answer.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("(did you mean custom:plan?)"),
        "{}",
        answer.body
    );
    assert!(app.audit_records().last().unwrap()["decision"].is_null());
}

#[tokio::test]
async fn immutable_custom_and_standard_attributes_are_422_and_cognito_is_unchanged() {
    // Arrange
    let app = spawn_app().await;
    let pool = pool_with_immutable_attributes(&app).await;
    let token = app.token(&["identity-admin"]);

    // Act
    let answer = app
        .patch_to(
            &pool,
            "ann",
            &token,
            json!({"attributes": {
                "custom:employee_id": "E-2",
                "birthdate": "2000-12-31",
                "given_name": "Changed"
            }}),
            "",
        )
        .await;

    // Assert
    answer.assert_problem(422);
    assert_eq!(
        error_fields(&answer.body),
        ["attributes.birthdate", "attributes.custom:employee_id"]
    );
    assert!(
        answer.body["errors"][1]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("custom:employee_id is immutable in pool {pool}")),
        "{}",
        answer.body
    );
    let ann = user_attributes(&app.cognito, &pool, "ann").await;
    assert_eq!(ann["custom:employee_id"], "E-1");
    assert_eq!(ann["birthdate"], "1990-01-01");
    assert_eq!(ann["given_name"], "Ann");
}

#[tokio::test]
async fn mutable_custom_attributes_and_the_verified_flags_still_work_in_a_pool_with_a_schema() {
    // Arrange
    let app = spawn_app().await;
    let pool = pool_with_immutable_attributes(&app).await;

    // Act
    let answer = app
        .patch_to(
            &pool,
            "ann",
            &app.token(&["identity-admin"]),
            json!({"attributes": {
                "custom:plan": "pro",
                "email": "ann@example.com",
                "email_verified": "true",
                "phone_number": "+15555550100",
                "phone_number_verified": "true"
            }}),
            "",
        )
        .await;

    // Assert
    assert_eq!(answer.status, 200, "{}", answer.body);
    let ann = user_attributes(&app.cognito, &pool, "ann").await;
    assert_eq!(ann["custom:plan"], "pro");
    assert_eq!(ann["email_verified"], "true");
    assert_eq!(ann["phone_number_verified"], "true");
}

#[tokio::test]
async fn a_pool_that_does_not_exist_is_404_and_audited_without_an_intent_to_write() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let answer = app
        .patch_to(
            "us-east-1_0123456789abcdef0123456789abcdee",
            "ann",
            &app.token(&["support"]),
            json!({"attributes": {"given_name": "X"}}),
            "",
        )
        .await;

    // Assert
    answer.assert_problem(404);
    let records = app.audit_records();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["outcome"], "ResourceNotFoundException");
}

#[tokio::test]
async fn with_validate_schema_off_moto_accepts_an_attribute_the_pool_does_not_have() {
    // Arrange
    let app = spawn_app_with(Options {
        validate_schema: false,
        ..Options::default()
    })
    .await;

    // Act
    let answer = app
        .patch_as(&["identity-admin"], json!({"custom:tier": "gold"}))
        .await;

    // Assert: this is why the check exists.
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(app.ann().await["custom:tier"], "gold");
}

#[tokio::test]
async fn schema_fetches_are_cached_and_measured() {
    // Arrange
    let app = spawn_app().await;
    let token = app.token(&["support"]);

    // Act
    for name in ["A", "B", "C"] {
        let answer = app
            .patch(&token, json!({"attributes": {"given_name": name}}))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }

    // Assert
    let metrics = app.get("/metrics").await;
    let text = metrics.body.as_str().unwrap();
    let describes = text
        .lines()
        .find(|line| {
            line.starts_with("attrgate_cognito_request_duration_seconds_count")
                && line.contains(r#"operation="DescribeUserPool""#)
        })
        .unwrap_or_else(|| panic!("no DescribeUserPool count in:\n{text}"));
    assert!(describes.ends_with(" 1"), "{describes}");
}
