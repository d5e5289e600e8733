//! Reads under the policy end to end (`GET …/attributes`), against moto: view grants,
//! `hidden`, target conditions, 403/404, the audit record of a read, and a walk over
//! every route of the OpenAPI document that proves no answer carries a value the caller
//! may not view.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::helpers::{Options, TestApp, create_user, spawn_app_with, user_attributes};
use crate::tenants::{create_tenant_users, token as tenant_token};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Values of `zoe` that the support role may not view; no answer to support may hold one.
const UNVIEWABLE: [(&str, &str); 3] = [
    ("phone_number", "+15550100199"),
    ("custom:plan", "zoe-secret-plan"),
    ("custom:tenant_id", "zoe-tenant-q"),
];
const VIEWABLE: [(&str, &str); 2] = [("given_name", "Zoe"), ("email", "zoe@example.com")];

/// The app on the read policy, with `zoe` (tenant `q`-ish values above) and `ann-a`
/// and `bob-b` in tenants a and b.
pub(crate) async fn reads_app() -> TestApp {
    let app = spawn_app_with(Options {
        policy_file: PathBuf::from(format!("{FIXTURES}/read-policy.yaml")),
        ..Options::default()
    })
    .await;
    let zoe: Vec<(&str, &str)> = UNVIEWABLE.iter().chain(&VIEWABLE).copied().collect();
    create_user(&app.cognito, &app.pool_id, "zoe", &zoe).await;
    create_tenant_users(&app, &[("ann-a", "a"), ("bob-b", "b")]).await;
    app
}

fn names(answer: &crate::helpers::Answer) -> Vec<String> {
    answer.body["attributes"]
        .as_object()
        .map(|map| map.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_read_returns_only_what_the_role_may_view_counts_the_rest_and_tags_it() {
    let app = reads_app().await;
    let everything = user_attributes(&app.cognito, &app.pool_id, "zoe").await;

    let answer = app.read(&app.token(&["support"]), "zoe").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.body["attributes"],
        json!({"email": "zoe@example.com", "given_name": "Zoe"})
    );
    assert_eq!(answer.body["username"], "zoe");
    assert_eq!(answer.body["withheld"], everything.len() - 2);
    let etag = answer.headers["etag"].to_str().unwrap();
    assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
    assert_eq!(answer.headers["cache-control"], "private, no-store");
}

#[tokio::test]
async fn hidden_attributes_stay_hidden_from_a_role_that_views_everything() {
    let app = reads_app().await;

    let answer = app.read(&app.token(&["auditor"]), "zoe").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let shown = names(&answer);
    assert!(shown.contains(&"custom:plan".to_owned()), "{shown:?}");
    assert!(!shown.contains(&"phone_number".to_owned()), "{shown:?}");
    assert_eq!(answer.body["withheld"], 1);
}

#[tokio::test]
async fn update_grants_do_not_let_a_role_read() {
    let app = reads_app().await;

    let answer = app.read(&app.token(&["writer"]), "zoe").await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["attributes"], json!({}));
}

#[tokio::test]
async fn a_caller_without_a_role_in_the_pool_is_403_for_any_user_and_causes_no_read() {
    let app = reads_app().await;
    let token = app.token(&["nobody"]);

    let existing = app.read(&token, "zoe").await;
    let missing = app.read(&token, "no-such-user").await;

    for answer in [&existing, &missing] {
        answer.assert_problem(403);
        assert_eq!(answer.body["denied"][0]["attribute"], "*");
        assert_eq!(answer.body["denied"][0]["code"], "no_applicable_role");
    }
    let records = app.audit_records();
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record["event"], "read");
        assert_eq!(record["outcome"], "denied");
    }
}

#[tokio::test]
async fn an_unknown_user_is_404_to_a_caller_with_a_role_in_the_pool() {
    let app = reads_app().await;

    let answer = app.read(&app.token(&["support"]), "no-such-user").await;

    answer.assert_problem(404);
}

#[tokio::test]
async fn a_tenant_admin_reads_its_own_tenants_users_only() {
    let app = reads_app().await;

    let own = app
        .read(&tenant_token(&app, &["tenant-admin"], Some("a")), "ann-a")
        .await;
    let other = app
        .read(&tenant_token(&app, &["tenant-admin"], Some("a")), "bob-b")
        .await;
    let no_claim = app
        .read(&tenant_token(&app, &["tenant-admin"], None), "ann-a")
        .await;

    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(
        own.body["attributes"],
        json!({"custom:tenant_id": "a", "given_name": "Before"})
    );
    other.assert_problem(403);
    assert_eq!(other.body["denied"][0]["code"], "target_condition");
    assert!(!other.body.to_string().contains("\"b\""), "{}", other.body);
    no_claim.assert_problem(403);
    assert_eq!(no_claim.body["denied"][0]["code"], "missing_claim");
}

#[tokio::test]
async fn a_read_is_audited_with_the_names_returned_and_never_a_value() {
    let app = reads_app().await;

    let answer = app.read(&app.token(&["support"]), "zoe").await;

    assert_eq!(answer.status, 200);
    let records = app.audit_records();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["event"], "read");
    assert_eq!(record["outcome"], "read");
    assert_eq!(record["attributes"], json!(["email", "given_name"]));
    assert_eq!(record["values"], json!({}));
    assert_eq!(record["decision"]["allowed"], true);
    let text = app.audit_text();
    for (_, value) in UNVIEWABLE.iter().chain(&VIEWABLE) {
        assert!(!text.contains(value), "the audit log holds {value}");
    }
}

/// Every route of the OpenAPI document, every method, called as the support role on
/// `zoe` (allowed, denied, dry run and invalid bodies for the PATCH): no body and no
/// header of any answer carries a value support may not view.
#[tokio::test]
async fn no_route_answers_with_a_value_the_caller_may_not_view() {
    let app = reads_app().await;
    let token = app.token(&["support"]);
    let document = app.get("/openapi.json").await.body;
    let paths = document["paths"].as_object().expect("paths").clone();
    let mut answers: Vec<(String, String)> = Vec::new();
    for (template, operations) in &paths {
        let path = template
            .replace("{pool_id}", &app.pool_id)
            .replace("{username}", "zoe");
        for method in operations.as_object().expect("operations").keys() {
            for (query, body) in bodies_for(method) {
                let url = format!("{}{path}{query}", app.address);
                let request = match method.as_str() {
                    "get" => app.http.get(&url),
                    "patch" => app.http.patch(&url).json(&body),
                    other => panic!("a route with method {other}: extend this test"),
                };
                let response = request.bearer_auth(&token).send().await.unwrap();
                let status = response.status();
                let headers = format!("{:?}", response.headers());
                let text = response.text().await.unwrap();
                answers.push((
                    format!("{method} {path}{query} -> {status}"),
                    headers + &text,
                ));
            }
        }
    }
    // The same walk's `/permissions` takes the user as a query parameter.
    let permissions = app
        .get(&format!(
            "/permissions?pool_id={}&username=zoe",
            app.pool_id
        ))
        .await;
    answers.push(("permissions for zoe".into(), permissions.body.to_string()));

    assert!(answers.len() >= 8, "walked only {answers:?}");
    for (what, text) in &answers {
        for (name, value) in UNVIEWABLE {
            assert!(!text.contains(value), "{what} carries {name}: {text}");
        }
    }
    let read = answers
        .iter()
        .find(|(what, _)| what.starts_with("get") && what.contains("/attributes"))
        .expect("the read was walked");
    assert!(read.1.contains("zoe@example.com"), "{}", read.1);
}

/// For a PATCH: an allowed change, a denied one (of unviewable attributes), a dry run
/// and an invalid body; for a GET: one plain call.
fn bodies_for(method: &str) -> Vec<(&'static str, Value)> {
    match method {
        "patch" => vec![
            ("", json!({"attributes": {"nickname": "z"}})),
            (
                "",
                json!({"attributes": {"custom:plan": "x", "phone_number": "+1"}}),
            ),
            (
                "?dry_run=true",
                json!({"attributes": {"given_name": "Zed"}}),
            ),
            ("", json!({"attributes": {"tier": "x"}})),
        ],
        _ => vec![("", Value::Null)],
    }
}

#[tokio::test]
async fn reads_take_from_the_callers_rate_limit_and_a_refused_read_is_audited_as_throttled() {
    let app = spawn_app_with(Options {
        policy_file: PathBuf::from(format!("{FIXTURES}/read-policy.yaml")),
        extra_config: "rate_limit: {per_caller_per_second: 1, burst: 2}".into(),
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);

    let mut answers = Vec::new();
    for _ in 0..3 {
        answers.push(app.read(&token, "ann").await);
    }

    assert_eq!(answers[0].status, 200, "{}", answers[0].body);
    assert_eq!(answers[1].status, 200);
    answers[2].assert_problem(429);
    assert!(answers[2].headers.contains_key("retry-after"));
    let last = app.audit_records().pop().expect("a record");
    assert_eq!(last["event"], "read");
    assert_eq!(last["outcome"], "throttled");
}

#[tokio::test]
async fn reads_take_from_the_user_read_quota_and_over_it_get_429_audited_as_throttled() {
    let app = spawn_app_with(Options {
        policy_file: PathBuf::from(format!("{FIXTURES}/read-policy.yaml")),
        cognito_extra: "  quota: {user_read_per_second: 0.5, burst_seconds: 2}\n".into(),
        ..Options::default()
    })
    .await;
    let token = app.token(&["support"]);

    let first = app.read(&token, "ann").await;
    let second = app.read(&token, "ann").await;
    let metrics = app.get("/metrics").await;

    assert_eq!(first.status, 200, "{}", first.body);
    second.assert_problem(429);
    assert!(second.headers.contains_key("retry-after"));
    let last = app.audit_records().pop().expect("a record");
    assert_eq!(last["event"], "read");
    assert_eq!(last["outcome"], "throttled");
    let metrics = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains(r#"attrgate_quota_refusals_total{category="user_read"} 1"#),
        "{metrics}"
    );
}
