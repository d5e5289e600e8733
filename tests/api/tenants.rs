//! Tenant isolation end to end: roles with `target` conditions against moto (a user in
//! tenant A, a user in tenant B, an admin in a group), and the reads they cause against
//! a recording Cognito stub.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::helpers::{
    Answer, Options, TestApp, add_to_group, claims, cognito_stand_in, create_user, spawn_app_with,
    user_attributes,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn tenant_policy() -> PathBuf {
    PathBuf::from(format!("{FIXTURES}/tenant-policy.yaml"))
}

/// The app on the tenant policy, with `ann-a` and `root-a` (group admins) in tenant a,
/// and `bob-b` in tenant b.
async fn tenants_app() -> TestApp {
    let app = spawn_app_with(Options {
        policy_file: tenant_policy(),
        ..Options::default()
    })
    .await;
    create_tenant_users(&app, &[("ann-a", "a"), ("bob-b", "b"), ("root-a", "a")]).await;
    add_to_group(&app.cognito, &app.pool_id, "admins", "root-a").await;
    app
}

/// Creates each `(user, tenant)` in the app's pool, with `given_name: Before`.
pub(crate) async fn create_tenant_users(app: &TestApp, users: &[(&str, &str)]) {
    for (user, tenant) in users {
        create_user(
            &app.cognito,
            &app.pool_id,
            user,
            &[("custom:tenant_id", tenant), ("given_name", "Before")],
        )
        .await;
    }
}

/// A token with `roles` and, if given, the `tenant_id` claim.
pub(crate) fn token(app: &TestApp, roles: &[&str], tenant: Option<&str>) -> String {
    let mut claims = claims(&app.jwks.issuer, roles);
    if let Some(tenant) = tenant {
        claims["tenant_id"] = json!(tenant);
    }
    app.token_with(&claims)
}

async fn patch_user(app: &TestApp, token: &str, user: &str, attributes: Value) -> Answer {
    app.patch_to(
        &app.pool_id.clone(),
        user,
        token,
        json!({ "attributes": attributes }),
        "",
    )
    .await
}

fn codes(answer: &Answer) -> Vec<(String, String)> {
    answer.body["denied"]
        .as_array()
        .map(|denied| {
            denied
                .iter()
                .map(|d| {
                    (
                        d["attribute"].as_str().unwrap_or_default().to_owned(),
                        d["code"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pair(attribute: &str, code: &str) -> (String, String) {
    (attribute.to_owned(), code.to_owned())
}

#[tokio::test]
async fn a_tenant_a_admin_changes_a_user_of_tenant_a() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin"], Some("a"));

    // Act
    let answer = patch_user(&app, &token, "ann-a", json!({"given_name": "After"})).await;

    // Assert
    assert_eq!(answer.status, 200, "{}", answer.body);
    let ann = user_attributes(&app.cognito, &app.pool_id, "ann-a").await;
    assert_eq!(ann["given_name"], "After");
}

#[tokio::test]
async fn a_tenant_a_admin_cannot_change_a_user_of_tenant_b_and_nothing_is_written() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin"], Some("a"));

    // Act
    let answer = patch_user(&app, &token, "bob-b", json!({"given_name": "Hijacked"})).await;

    // Assert
    answer.assert_problem(403);
    assert_eq!(codes(&answer), [pair("given_name", "target_condition")]);
    let reason = answer.body["denied"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("custom:tenant_id equals_claim tenant"),
        "{reason}"
    );
    let bob = user_attributes(&app.cognito, &app.pool_id, "bob-b").await;
    assert_eq!(bob["given_name"], "Before");
}

#[tokio::test]
async fn a_tenant_a_admin_cannot_move_its_user_into_tenant_b() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin"], Some("a"));

    // Act
    let answer = patch_user(&app, &token, "ann-a", json!({"custom:tenant_id": "b"})).await;

    // Assert
    answer.assert_problem(403);
    assert_eq!(codes(&answer), [pair("custom:tenant_id", "constraint")]);
    let ann = user_attributes(&app.cognito, &app.pool_id, "ann-a").await;
    assert_eq!(ann["custom:tenant_id"], "a");
}

#[tokio::test]
async fn a_token_without_the_tenant_claim_is_denied_with_missing_claim() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin"], None);

    // Act
    let answer = patch_user(&app, &token, "ann-a", json!({"given_name": "After"})).await;

    // Assert
    answer.assert_problem(403);
    assert_eq!(codes(&answer), [pair("given_name", "missing_claim")]);
}

#[tokio::test]
async fn a_none_of_admins_condition_protects_an_admin_of_the_same_tenant() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin"], Some("a"));

    // Act
    let answer = patch_user(&app, &token, "root-a", json!({"given_name": "After"})).await;

    // Assert
    answer.assert_problem(403);
    assert_eq!(codes(&answer), [pair("given_name", "target_condition")]);
    let reason = answer.body["denied"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("groups none_of [admins]"), "{reason}");
}

#[tokio::test]
async fn an_unknown_user_is_404_only_to_a_caller_whose_role_matches_the_pool() {
    // Arrange
    let app = tenants_app().await;
    let admin = token(&app, &["tenant-admin"], Some("a"));
    let elsewhere = token(&app, &["eu-tenant-admin"], Some("a"));

    // Act
    let matching = patch_user(&app, &admin, "nobody", json!({"given_name": "X"})).await;
    let not_matching = patch_user(&app, &elsewhere, "nobody", json!({"given_name": "X"})).await;

    // Assert
    matching.assert_problem(404);
    not_matching.assert_problem(403);
    assert_eq!(
        codes(&not_matching),
        [pair("given_name", "no_applicable_role")]
    );
}

#[tokio::test]
async fn a_dry_run_evaluates_the_same_conditions() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin"], Some("a"));
    let pool = app.pool_id.clone();

    // Act
    let other_tenant = app
        .patch_to(
            &pool,
            "bob-b",
            &token,
            json!({"attributes": {"given_name": "X"}}),
            "?dry_run=true",
        )
        .await;
    let own_tenant = app
        .patch_to(
            &pool,
            "ann-a",
            &token,
            json!({"attributes": {"given_name": "X"}}),
            "?dry_run=true",
        )
        .await;

    // Assert
    other_tenant.assert_problem(403);
    assert_eq!(
        codes(&other_tenant),
        [pair("given_name", "target_condition")]
    );
    assert_eq!(own_tenant.status, 200, "{}", own_tenant.body);
    assert_eq!(own_tenant.body["dry_run"], true);
    let ann = user_attributes(&app.cognito, &app.pool_id, "ann-a").await;
    assert_eq!(ann["given_name"], "Before");
}

#[tokio::test]
async fn the_audit_record_names_each_condition_and_keeps_the_targets_value_as_an_hmac() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin"], Some("a"));

    // Act
    patch_user(&app, &token, "bob-b", json!({"given_name": "X"})).await;

    // Assert
    let record = &app.audit_records()[0];
    assert_eq!(
        record["decision"]["conditions"],
        json!([
            {"role": "tenant-admin", "condition": "custom:tenant_id equals_claim tenant", "held": false},
            {"role": "tenant-admin", "condition": "groups none_of [admins]", "held": true},
        ])
    );
    let hmac = record["decision"]["target_values"]["custom:tenant_id"]
        .as_str()
        .unwrap();
    assert_eq!(hmac.len(), 64);
    assert_ne!(hmac, "b");
    assert!(
        !app.audit_text().contains(r#""b""#),
        "a target value in clear"
    );
}

#[tokio::test]
async fn permissions_for_a_user_evaluate_the_conditions_and_without_one_mark_roles_conditional() {
    // Arrange
    let app = tenants_app().await;
    let token = token(&app, &["tenant-admin", "support"], Some("a"));
    let ask = |query: String| {
        let app = &app;
        let token = token.clone();
        async move {
            let response = app
                .http
                .get(format!("{}/permissions?{query}", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let pool = app.pool_id.clone();

    // Act
    let (_, unnamed) = ask(format!("pool_id={pool}")).await;
    let (_, own) = ask(format!("pool_id={pool}&username=ann-a")).await;
    let (_, other) = ask(format!("pool_id={pool}&username=bob-b")).await;
    let (missing_status, _) = ask(format!("pool_id={pool}&username=nobody")).await;

    // Assert
    let roles = |body: &Value| -> Vec<(String, bool)> {
        body["roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["role"].as_str().unwrap().to_owned(),
                    r["conditional"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    assert_eq!(
        roles(&unnamed),
        [
            ("tenant-admin".to_owned(), true),
            ("support".to_owned(), false)
        ]
    );
    assert_eq!(
        roles(&own),
        [
            ("tenant-admin".to_owned(), false),
            ("support".to_owned(), false)
        ]
    );
    assert_eq!(roles(&other), [("support".to_owned(), false)]);
    assert_eq!(other["conditions"][0]["held"], false);
    assert_eq!(missing_status, 404);
}

// ---------- reads, against a recording stub ----------

type Calls = Arc<Mutex<Vec<String>>>;

/// A Cognito stand-in that answers AdminGetUser with a tenant-a user, groups with none,
/// and anything else with success, and records each operation it is asked for.
async fn tenant_stub() -> (String, Calls) {
    let calls = Calls::default();
    let kept = calls.clone();
    let url = cognito_stand_in(move |target, _| {
        let operation = target.rsplit('.').next().unwrap_or_default().to_owned();
        let body = match operation.as_str() {
            "AdminGetUser" => {
                json!({"Username": "ann-a", "UserAttributes": [{"Name": "custom:tenant_id", "Value": "a"}]})
            }
            "AdminListGroupsForUser" => json!({"Groups": []}),
            _ => json!({}),
        };
        kept.lock().unwrap().push(operation);
        (200, body.to_string())
    });
    (url, calls)
}

/// The app on the tenant policy in front of `tenant_stub`, with the calls it records.
async fn stub_app() -> (TestApp, Calls) {
    let (endpoint, calls) = tenant_stub().await;
    let app = spawn_app_with(Options {
        policy_file: tenant_policy(),
        cognito_endpoint: Some(endpoint),
        validate_schema: false,
        ..Options::default()
    })
    .await;
    (app, calls)
}

#[tokio::test]
async fn a_caller_with_no_role_in_the_pool_causes_no_read_of_the_target_user() {
    // Arrange
    let (app, calls) = stub_app().await;

    // Act
    let elsewhere = patch_user(
        &app,
        &token(&app, &["eu-tenant-admin"], Some("a")),
        "ann-a",
        json!({"given_name": "X"}),
    )
    .await;
    let no_roles = patch_user(
        &app,
        &token(&app, &[], Some("a")),
        "ann-a",
        json!({"given_name": "X"}),
    )
    .await;
    let unconditional = patch_user(
        &app,
        &token(&app, &["support"], Some("a")),
        "ann-a",
        json!({"nickname": "x"}),
    )
    .await;
    let conditional_without_a_role = app
        .patch_if_match(
            &token(&app, &["eu-tenant-admin"], Some("a")),
            "ann-a",
            json!({"given_name": "X"}),
            "*",
        )
        .await;
    let read_without_a_role = app
        .read(&token(&app, &["eu-tenant-admin"], Some("a")), "ann-a")
        .await;

    // Assert
    elsewhere.assert_problem(403);
    no_roles.assert_problem(403);
    conditional_without_a_role.assert_problem(403);
    read_without_a_role.assert_problem(403);
    assert_eq!(unconditional.status, 200, "{}", unconditional.body);
    assert_eq!(*calls.lock().unwrap(), ["AdminUpdateUserAttributes"]);
}

#[tokio::test]
async fn a_conditional_role_reads_the_user_and_its_groups_once_before_the_update() {
    // Arrange
    let (app, calls) = stub_app().await;

    // Act
    let answer = patch_user(
        &app,
        &token(&app, &["tenant-admin"], Some("a")),
        "ann-a",
        json!({"given_name": "X", "family_name": "Y"}),
    )
    .await;

    // Assert
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        *calls.lock().unwrap(),
        [
            "AdminGetUser",
            "AdminListGroupsForUser",
            "AdminUpdateUserAttributes"
        ]
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for operation in ["AdminGetUser", "AdminListGroupsForUser"] {
        assert!(
            metrics.contains(&format!(r#"operation="{operation}",result="ok""#)),
            "{metrics}"
        );
    }
}
