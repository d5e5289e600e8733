//! Cognito errors through the real AWS SDK: a local HTTP stub answers as Cognito does
//! (AWS JSON 1.1 error bodies), and each error must map to SPEC's status without leaking
//! AWS text.

use serde_json::json;

use crate::helpers::{Options, cognito_stand_in, spawn_app_with};

const AWS_MESSAGE: &str = "internal-aws-message-that-must-not-leak";

pub(crate) type Seen = std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>;

/// A Cognito stand-in that answers every call with `status` and `body` (AWS JSON 1.1),
/// and keeps every request body it receives, with its `X-Amz-Target`.
pub(crate) async fn cognito_stub(status: u16, body: String) -> (String, Seen) {
    let seen = Seen::default();
    let kept = seen.clone();
    let url = cognito_stand_in(move |target, request| {
        let mut received: serde_json::Value = serde_json::from_slice(request).unwrap_or_default();
        // Which operation (e.g. AWSCognitoIdentityProviderService.AdminGetUser).
        if let Some(object) = received.as_object_mut() {
            object.insert("X-Amz-Target".into(), target.into());
        }
        kept.lock().unwrap().push(received);
        (status, body.clone())
    });
    (url, seen)
}

/// A Cognito stand-in that answers every call with this error type and status.
async fn cognito_error_stub(error_type: &'static str, status: u16) -> String {
    let body = json!({"__type": error_type, "message": AWS_MESSAGE}).to_string();
    cognito_stub(status, body).await.0
}

/// A Cognito stand-in that succeeds and keeps every request body it receives.
async fn recording_stub() -> (String, Seen) {
    cognito_stub(200, "{}".to_owned()).await
}

async fn answer_for(
    error_type: &'static str,
    status: u16,
) -> (crate::helpers::Answer, Vec<serde_json::Value>) {
    let endpoint = cognito_error_stub(error_type, status).await;
    // The schema check would call the stub first; these tests are about the update call.
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        validate_schema: false,
        ..Options::default()
    })
    .await;
    let answer = app
        .patch_as(&["identity-admin"], json!({"email": "taken@example.com"}))
        .await;
    assert!(
        !answer.body.to_string().contains(AWS_MESSAGE),
        "AWS text leaked: {}",
        answer.body
    );
    (answer, app.audit_records())
}

#[tokio::test]
async fn alias_exists_is_409() {
    let (answer, records) = answer_for("AliasExistsException", 400).await;

    answer.assert_problem(409);
    assert_eq!(records.last().unwrap()["outcome"], "AliasExistsException");
    assert_eq!(
        records.last().unwrap()["cognito_request_id"],
        "stub-request-id"
    );
}

#[tokio::test]
async fn invalid_parameter_and_lambda_validation_are_422() {
    let (invalid, _) = answer_for("InvalidParameterException", 400).await;
    let (lambda, _) = answer_for("UserLambdaValidationException", 400).await;

    invalid.assert_problem(422);
    lambda.assert_problem(422);
}

#[tokio::test]
async fn cognito_throttling_is_429_with_retry_after() {
    let (answer, _) = answer_for("TooManyRequestsException", 400).await;

    answer.assert_problem(429);
    assert!(answer.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn cognito_refusing_attrgates_own_credentials_is_502_never_401_or_403() {
    let (not_authorized, _) = answer_for("NotAuthorizedException", 400).await;
    let (unrecognized, _) = answer_for("UnrecognizedClientException", 400).await;

    not_authorized.assert_problem(502);
    unrecognized.assert_problem(502);
}

#[tokio::test]
async fn any_other_cognito_error_is_502() {
    let (answer, records) = answer_for("InternalErrorException", 500).await;

    answer.assert_problem(502);
    assert_eq!(records.last().unwrap()["outcome"], "InternalErrorException");
    assert_eq!(
        records.last().unwrap()["event"],
        "outcome",
        "the update itself was attempted"
    );
}

#[tokio::test]
async fn client_metadata_and_the_exact_attributes_are_what_cognito_receives() {
    let (endpoint, seen) = recording_stub().await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        validate_schema: false,
        ..Options::default()
    })
    .await;

    let answer = app
        .patch(
            &app.token(&["support"]),
            json!({"attributes": {"given_name": "Meta", "nickname": ""}, "client_metadata": {"source": "crm"}}),
        )
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let sent = &requests[0];
    assert_eq!(sent["UserPoolId"], app.pool_id.as_str());
    assert_eq!(sent["Username"], "ann");
    assert_eq!(sent["ClientMetadata"], json!({"source": "crm"}));
    assert_eq!(
        sent["UserAttributes"],
        json!([{"Name": "given_name", "Value": "Meta"}, {"Name": "nickname", "Value": ""}])
    );
}

#[tokio::test]
async fn a_caller_with_no_role_in_the_pool_gets_403_without_attrgate_asking_cognito_anything() {
    let (endpoint, seen) = recording_stub().await;
    let app = spawn_app_with(Options {
        cognito_endpoint: Some(endpoint),
        ..Options::default()
    })
    .await;

    let scoped_elsewhere = app.patch_as(&["eu-support"], json!({"locale": "en"})).await;
    let no_roles = app.patch_as(&[], json!({"custom:probe": "1"})).await;

    scoped_elsewhere.assert_problem(403);
    no_roles.assert_problem(403);
    assert!(
        seen.lock().unwrap().is_empty(),
        "Cognito was asked: {:?}",
        seen.lock().unwrap()
    );
}
