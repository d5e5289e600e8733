//! The gateway's own logs: JSON lines, a request id on every request line, and never a
//! token or an attribute value.

use serde_json::{Value, json};

use crate::process::Gateway;

#[tokio::test]
async fn logs_are_json_with_request_ids_and_never_contain_tokens_or_values() {
    let mut gateway = Gateway::start().await;
    let http = reqwest::Client::new();
    let secret = "secret-family-name-value";
    let denied_secret = "denied-email@example.com";

    let allowed: Value = http
        .patch(gateway.attributes_url())
        .bearer_auth(&gateway.token)
        .json(&json!({"attributes": {"family_name": secret}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.patch(gateway.attributes_url())
        .bearer_auth(&gateway.token)
        .json(&json!({"attributes": {"email": denied_secret}}))
        .send()
        .await
        .unwrap();
    http.patch(gateway.attributes_url())
        .bearer_auth(&gateway.token)
        .header("content-type", "application/json")
        .body(format!(r#"{{"attributes": "{secret}"}}"#))
        .send()
        .await
        .unwrap();
    http.patch(gateway.attributes_url())
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    gateway.kill_9();
    let text = gateway.log_text();

    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("every log line is JSON"))
        .collect();
    let request_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "request handled")
        .collect();
    let patches = request_lines
        .iter()
        .filter(|l| l["fields"]["method"] == "PATCH")
        .count();
    assert_eq!(patches, 4, "{text}");
    assert!(
        request_lines
            .iter()
            .all(|l| l["span"]["request_id"].is_string()),
        "{text}"
    );
    // One line per request: a refused token's reason is on its access line.
    let refused: Vec<&&Value> = request_lines
        .iter()
        .filter(|l| l["fields"]["status"] == 401)
        .collect();
    assert_eq!(refused.len(), 1, "{text}");
    assert_eq!(refused[0]["fields"]["token_refused"], "malformed", "{text}");
    assert_eq!(
        refused[0]["fields"]["route"],
        "/pools/{pool_id}/users/{username}/attributes"
    );
    assert!(!text.contains("token refused"), "{text}");
    assert!(text.contains(allowed["request_id"].as_str().unwrap()));
    for leak in [gateway.token.as_str(), secret, denied_secret, "not.a.token"] {
        assert!(!text.contains(leak), "the log contains {leak:?}");
    }
}
