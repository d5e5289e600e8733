//! The committed OpenAPI document must be exactly what the code generates.

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi/openapi.json is committed");

    let generated = attrgate::openapi::document_json();

    assert!(
        committed == generated,
        "openapi/openapi.json is out of date with the code. Regenerate it with:\n\n    cargo run --quiet -- openapi > openapi/openapi.json\n"
    );
}

fn document() -> serde_json::Value {
    serde_json::from_str(&attrgate::openapi::document_json()).expect("the document is JSON")
}

/// Every (path, method, operation) in the document.
fn operations(doc: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            found.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    found
}

const UPDATE: &str = "/pools/{pool_id}/users/{username}/attributes";

#[test]
fn every_operation_has_an_id_a_known_tag_a_summary_and_a_security_statement() {
    // Arrange
    let doc = document();
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tag| tag["name"].as_str().unwrap())
        .collect();

    // Act
    let operations = operations(&doc);

    // Assert
    assert!(operations.len() >= 6, "{} operations", operations.len());
    for (path, method, operation) in operations {
        let id = operation["operationId"].as_str().unwrap_or_default();
        assert!(
            id.starts_with(|c: char| c.is_ascii_lowercase()) && !id.contains('_'),
            "{method} {path}: operationId {id:?} should be lowerCamelCase"
        );
        let tag = operation["tags"][0].as_str().unwrap_or_default();
        assert!(tags.contains(&tag), "{method} {path}: tag {tag:?}");
        assert!(operation["summary"].is_string(), "{method} {path}: summary");
        assert!(
            operation["security"].is_array(),
            "{method} {path}: says whether it needs a token"
        );
    }
}

#[test]
fn the_operation_ids_are_the_names_generated_clients_use() {
    let doc = document();

    let ids: Vec<String> = operations(&doc)
        .into_iter()
        .map(|(_, _, operation)| operation["operationId"].as_str().unwrap().to_owned())
        .collect();

    for id in [
        "updateUserAttributes",
        "getPermissions",
        "getLiveness",
        "getReadiness",
        "getMetrics",
        "getOpenApiDocument",
    ] {
        assert!(ids.iter().any(|have| have == id), "missing {id} in {ids:?}");
    }
}

#[test]
fn the_update_operation_documents_every_status_of_the_contract_and_needs_a_bearer_token() {
    let doc = document();

    let operation = &doc["paths"][UPDATE]["patch"];

    let statuses: Vec<&str> = operation["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        statuses,
        [
            "200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "429", "502",
            "503", "504"
        ]
    );
    assert_eq!(
        operation["security"],
        serde_json::json!([{"bearerAuth": []}])
    );
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert_eq!(scheme["bearerFormat"], "JWT");
    let dry_run = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "dry_run")
        .expect("dry_run is documented");
    assert_eq!(dry_run["in"], "query");
    assert_eq!(dry_run["schema"]["type"], "boolean");
}

#[test]
fn the_read_operation_documents_its_statuses_its_etag_and_if_match_on_the_update() {
    let doc = document();

    let read = &doc["paths"][UPDATE]["get"];
    let update = &doc["paths"][UPDATE]["patch"];

    let statuses: Vec<&str> = read["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        statuses,
        [
            "200", "401", "403", "404", "422", "429", "502", "503", "504"
        ]
    );
    assert_eq!(read["operationId"], "readUserAttributes");
    assert_eq!(read["security"], serde_json::json!([{"bearerAuth": []}]));
    assert!(read["responses"]["200"]["headers"]["ETag"].is_object());
    let if_match = update["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "If-Match")
        .expect("If-Match is documented");
    assert_eq!(if_match["in"], "header");
    assert_eq!(if_match["required"], false);
    assert!(update["responses"]["200"]["headers"]["ETag"].is_object());
}

#[test]
fn every_problem_answer_has_examples_of_its_own_status_and_shape() {
    // Arrange
    let doc = document();
    let mut checked = 0;

    // Act
    for (path, method, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            let Some(problem) = response["content"].get("application/problem+json") else {
                continue;
            };
            let examples = problem["examples"].as_object().cloned().unwrap_or_default();

            // Assert
            let at = format!("{method} {path} {status}");
            assert!(!examples.is_empty(), "{at}: no example");
            assert_eq!(
                problem["schema"]["$ref"], "#/components/schemas/Problem",
                "{at}"
            );
            for (name, example) in examples {
                let value = &example["value"];
                assert_eq!(value["status"].to_string(), *status, "{at} {name}");
                assert!(
                    value["type"]
                        .as_str()
                        .unwrap()
                        .starts_with("urn:attrgate:problem:"),
                    "{at} {name}"
                );
                for field in ["title", "detail", "request_id"] {
                    assert!(value[field].is_string(), "{at} {name}: {field}");
                }
                let has = |field: &str| value.get(field).is_some();
                assert_eq!(has("denied"), status == "403", "{at} {name}: denied");
                assert_eq!(
                    has("errors"),
                    status == "400" || status == "422",
                    "{at} {name}: errors"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} problem examples");
}

#[test]
fn answers_document_the_headers_the_gateway_sends() {
    let doc = document();

    let responses = &doc["paths"][UPDATE]["patch"]["responses"];

    assert!(responses["401"]["headers"]["WWW-Authenticate"].is_object());
    assert_eq!(
        responses["429"]["headers"]["Retry-After"]["schema"]["type"],
        "integer"
    );
    for status in ["200", "403", "503"] {
        assert!(
            responses[status]["headers"]["X-Request-Id"].is_object(),
            "{status}"
        );
    }
}

#[test]
fn attributes_is_a_map_from_name_to_string_value_with_the_input_limits() {
    let doc = document();

    let request = &doc["components"]["schemas"]["UpdateAttributesRequest"];
    let attributes = &request["properties"]["attributes"];

    assert_eq!(request["required"], serde_json::json!(["attributes"]));
    assert_eq!(request["additionalProperties"], false);
    assert_eq!(attributes["type"], "object");
    assert_eq!(attributes["additionalProperties"]["type"], "string");
    assert_eq!(attributes["propertyNames"]["maxLength"], 32);
    assert_eq!(attributes["minProperties"], 1);
    assert_eq!(attributes["maxProperties"], 50);
    let problem = &doc["components"]["schemas"]["Problem"];
    assert_eq!(
        problem["properties"]["denied"]["type"], "array",
        "absent rather than null"
    );
    assert_eq!(problem["properties"]["errors"]["type"], "array");
}

#[tokio::test]
async fn swagger_ui_is_served_from_the_binary_with_try_it_out_and_the_served_document() {
    // Arrange
    let app = crate::helpers::spawn_app().await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Act
    let redirect = no_redirects
        .get(format!("{}/docs", app.address))
        .send()
        .await
        .unwrap();
    let page = app.http.get(format!("{}/docs/", app.address)).send().await;
    let initializer = app
        .http
        .get(format!("{}/docs/swagger-initializer.js", app.address))
        .send()
        .await;
    let served = app.get("/openapi.json").await;

    // Assert
    assert_eq!(redirect.status().as_u16(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");
    let page = page.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let initializer = initializer.unwrap().text().await.unwrap();
    assert!(
        initializer.contains(r#""tryItOutEnabled": true"#),
        "{initializer}"
    );
    assert!(
        initializer.contains(r#""url": "/openapi.json""#),
        "{initializer}"
    );
    assert_eq!(served.body, document());
}
