//! JWT authentication end to end, including the classic attacks. Every refusal is a 401
//! problem with the Bearer challenge, and nothing is written.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::helpers::{
    BATCH_SECRET, JwksServer, PRIMARY_KID, TestApp, claims, jwk, key_pem, now, rsa_key, sign,
    spawn_app,
};

const BODY: &str = r#"{"attributes": {"given_name": "Mallory"}}"#;

async fn assert_refused(app: &TestApp, token: &str) {
    let answer = app
        .patch_raw(
            Some(token),
            Some("application/json"),
            BODY.as_bytes().to_vec(),
        )
        .await;
    answer.assert_problem(401);
    assert_eq!(
        answer.headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
    assert!(
        !answer.body.to_string().contains(token),
        "the token must never be echoed"
    );
    assert_eq!(app.ann().await["given_name"], "Ann");
}

fn unsigned(header: Value, claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn a_valid_rs256_token_from_the_jwks_issuer_is_accepted() {
    let app = spawn_app().await;

    let answer = app
        .patch_as(&["support"], json!({"given_name": "Ok"}))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn an_es256_key_in_the_jwks_verifies_its_tokens() {
    let app = spawn_app().await;
    let ec = EncodingKey::from_ec_pem(&key_pem("issuer-a-ec.pem")).unwrap();
    app.jwks
        .keys
        .lock()
        .unwrap()
        .keys
        .push(jwk(&ec, Algorithm::ES256, "ec-1"));
    let token = sign(
        &claims(&app.jwks.issuer, &["support"]),
        &ec,
        Algorithm::ES256,
        Some("ec-1"),
    );

    let answer = app
        .patch(&token, json!({"attributes": {"given_name": "Ec"}}))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn a_missing_header_or_a_non_bearer_scheme_is_401() {
    let app = spawn_app().await;

    let answer = app
        .patch_raw(None, Some("application/json"), BODY.as_bytes().to_vec())
        .await;

    answer.assert_problem(401);
    assert_eq!(
        answer.headers["www-authenticate"],
        r#"Bearer error="invalid_token""#
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = spawn_app().await;
    let token = unsigned(
        json!({"alg": "none", "typ": "JWT", "kid": PRIMARY_KID}),
        &claims(&app.jwks.issuer, &["identity-admin"]),
    );

    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    let app = spawn_app().await;
    let public_pem = key_pem("issuer-a-rsa.pub.pem");
    let token = sign(
        &claims(&app.jwks.issuer, &["identity-admin"]),
        &EncodingKey::from_secret(&public_pem),
        Algorithm::HS256,
        Some(PRIMARY_KID),
    );

    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn an_unknown_kid_is_refused_and_refetches_the_jwks_at_most_once_per_interval() {
    let app = spawn_app().await;
    let before = app.jwks.fetches();
    let stranger = rsa_key("issuer-b-rsa.pem");

    for i in 0..5 {
        let token = sign(
            &claims(&app.jwks.issuer, &["support"]),
            &stranger,
            Algorithm::RS256,
            Some(&format!("unknown-{i}")),
        );
        assert_refused(&app, &token).await;
    }

    assert!(
        app.jwks.fetches() - before <= 1,
        "{} refetches for 5 unknown kids",
        app.jwks.fetches() - before
    );
}

#[tokio::test]
async fn a_new_key_published_under_a_new_kid_is_picked_up_by_one_refetch() {
    let app = spawn_app().await;
    let rotated = rsa_key("issuer-b-rsa.pem");
    app.jwks
        .keys
        .lock()
        .unwrap()
        .keys
        .push(jwk(&rotated, Algorithm::RS256, "rotated-1"));
    let token = sign(
        &claims(&app.jwks.issuer, &["support"]),
        &rotated,
        Algorithm::RS256,
        Some("rotated-1"),
    );

    let answer = app
        .patch(&token, json!({"attributes": {"given_name": "Rotated"}}))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn a_key_of_another_issuer_does_not_verify_this_issuers_tokens() {
    let app = spawn_app().await;
    let other_key = rsa_key("issuer-b-rsa.pem");
    let other = JwksServer::start(vec![jwk(&other_key, Algorithm::RS256, "b-1")]).await;
    // A token claiming the primary issuer, signed by a key only the other JWKS holds.
    let token = sign(
        &claims(&app.jwks.issuer, &["support"]),
        &other_key,
        Algorithm::RS256,
        Some("b-1"),
    );

    assert_refused(&app, &token).await;
    assert_eq!(other.fetches(), 0);
}

#[tokio::test]
async fn a_token_signed_with_the_right_kid_but_the_wrong_key_is_refused() {
    let app = spawn_app().await;
    let token = sign(
        &claims(&app.jwks.issuer, &["support"]),
        &rsa_key("issuer-b-rsa.pem"),
        Algorithm::RS256,
        Some(PRIMARY_KID),
    );

    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let app = spawn_app().await;
    let mut c = claims(&app.jwks.issuer, &["support"]);
    c["exp"] = json!(now() - 60);

    assert_refused(&app, &app.token_with(&c)).await;
}

#[tokio::test]
async fn a_token_without_exp_is_refused() {
    let app = spawn_app().await;
    let mut c = claims(&app.jwks.issuer, &["support"]);
    c.as_object_mut().unwrap().remove("exp");

    assert_refused(&app, &app.token_with(&c)).await;
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused() {
    let app = spawn_app().await;
    let mut c = claims(&app.jwks.issuer, &["support"]);
    c["nbf"] = json!(now() + 600);

    assert_refused(&app, &app.token_with(&c)).await;
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused() {
    let app = spawn_app().await;
    let mut c = claims(&app.jwks.issuer, &["support"]);
    c["aud"] = json!("billing-service");

    assert_refused(&app, &app.token_with(&c)).await;
}

#[tokio::test]
async fn a_token_without_aud_is_accepted_only_when_client_id_names_this_service() {
    let app = spawn_app().await;
    let mut c = claims(&app.jwks.issuer, &["support"]);
    c.as_object_mut().unwrap().remove("aud");
    c["client_id"] = json!("attrgate");
    let mut wrong = c.clone();
    wrong["client_id"] = json!("someone-else");

    assert_refused(&app, &app.token_with(&wrong)).await;
    let accepted = app
        .patch(
            &app.token_with(&c),
            json!({"attributes": {"given_name": "Cid"}}),
        )
        .await;

    assert_eq!(accepted.status, 200, "{}", accepted.body);
}

#[tokio::test]
async fn a_token_from_an_unknown_issuer_is_refused() {
    let app = spawn_app().await;
    let mut c = claims(&app.jwks.issuer, &["support"]);
    c["iss"] = json!("https://evil.example");

    assert_refused(&app, &app.token_with(&c)).await;
}

#[tokio::test]
async fn garbage_is_refused() {
    let app = spawn_app().await;

    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJSUzI1NiJ9..", "Bearer"] {
        assert_refused(&app, garbage).await;
    }
}

#[tokio::test]
async fn a_jku_header_pointing_elsewhere_is_ignored() {
    let app = spawn_app().await;
    let attacker_key = rsa_key("issuer-b-rsa.pem");
    let attacker = JwksServer::start(vec![jwk(&attacker_key, Algorithm::RS256, "evil")]).await;
    let mut header = jsonwebtoken::Header::new(Algorithm::RS256);
    header.kid = Some("evil".into());
    header.jku = Some(attacker.url.clone());
    let token = jsonwebtoken::encode(
        &header,
        &claims(&app.jwks.issuer, &["identity-admin"]),
        &attacker_key,
    )
    .unwrap();

    assert_refused(&app, &token).await;
    assert_eq!(
        attacker.fetches(),
        0,
        "attrgate must never fetch a key from a token's jku"
    );
}

#[tokio::test]
async fn an_hs256_token_from_the_shared_secret_issuer_is_accepted_and_a_wrong_secret_is_not() {
    let app = spawn_app().await;
    let c = claims(&app.batch_issuer, &["support"]);
    let good = sign(
        &c,
        &EncodingKey::from_secret(BATCH_SECRET.as_bytes()),
        Algorithm::HS256,
        None,
    );
    let bad = sign(
        &c,
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-0123"),
        Algorithm::HS256,
        None,
    );

    assert_refused(&app, &bad).await;
    let answer = app
        .patch(&good, json!({"attributes": {"given_name": "Batch"}}))
        .await;

    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn a_shared_secret_issuer_does_not_accept_rs256_tokens() {
    let app = spawn_app().await;
    let c = claims(&app.batch_issuer, &["support"]);

    assert_refused(&app, &app.token_with(&c)).await;
}

#[tokio::test]
async fn when_a_jwks_refetch_fails_the_cached_keys_stay_in_use() {
    let app = spawn_app().await;
    app.jwks
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let before = app.jwks.fetches();
    let stranger = sign(
        &claims(&app.jwks.issuer, &["support"]),
        &rsa_key("issuer-b-rsa.pem"),
        Algorithm::RS256,
        Some("not-published"),
    );

    assert_refused(&app, &stranger).await; // an unknown kid: one refetch, which fails
    let answer = app
        .patch_as(&["support"], json!({"given_name": "Cached"}))
        .await;

    assert_eq!(
        app.jwks.fetches() - before,
        1,
        "the failed refetch was tried once"
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn a_refused_token_with_a_body_keeps_the_connection_open_for_the_next_request() {
    // Arrange: the body is never read by a handler when the token is refused.
    let app = spawn_app().await;

    // Act
    let answer = app
        .patch_raw(
            Some("not.a.token"),
            Some("application/json"),
            BODY.as_bytes().to_vec(),
        )
        .await;

    // Assert: the rest of the body was read, so the connection is not closed.
    answer.assert_problem(401);
    assert_ne!(
        answer
            .headers
            .get("connection")
            .and_then(|v| v.to_str().ok()),
        Some("close"),
        "{:?}",
        answer.headers
    );
}
