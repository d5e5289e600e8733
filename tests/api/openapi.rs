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
