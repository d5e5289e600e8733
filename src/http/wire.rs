//! The request types as clients see them, for the OpenAPI document: the query and the
//! body of an update. The update service parses the same JSON into its own types
//! (`update::UpdateOptions`, `update::UpdateBody`); a test here holds the two to the same
//! shape, so the document cannot drift from what is parsed.

use std::collections::BTreeMap;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// The path of one user's attributes, read (`GET`) or updated (`PATCH`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// Cognito user pool id: `<region>_<id>`, ASCII only, at most 55 characters: letters, digits and `-` before the `_`, letters and digits after it. The part before the `_` is the region called, and must be an AWS region name (`us-east-1`, `us-gov-west-1`), unless the gateway's config fixes the region (`cognito.region`); then it is only a name (cognito-local uses `local_…`). Anything else, or a region outside the config's `cognito.allowed_regions`, is a 422.
    #[param(
        example = "us-east-1_AbC123",
        max_length = 55,
        pattern = r"^[A-Za-z0-9-]+_[0-9a-zA-Z]+$"
    )]
    pub(crate) pool_id: String,
    /// Cognito username: 1 to 128 characters, no control characters. Anything else is a 422.
    #[param(
        example = "ann",
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]+$"
    )]
    pub(crate) username: String,
}

/// The query string of an update.
#[expect(
    dead_code,
    reason = "documents the query; the update service parses it"
)]
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UpdateQuery {
    /// `true`: decide and audit as usual, but do not call Cognito. The answer is the
    /// same 200 (with `dry_run: true`) or 403 that the real request would get from the
    /// policy; input errors are reported too, but Cognito's own checks (user exists,
    /// alias in use) are not made, except that the target user is read (and must exist)
    /// when one of the caller's roles has conditions on it.
    #[serde(default)]
    pub(crate) dry_run: bool,
}

/// The body of an attribute update. Unknown fields are rejected with a 400.
#[expect(dead_code, reason = "documents the body; the update service parses it")]
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateAttributesRequest {
    /// Attribute name to new value (`attribute_map_schema` documents the rules).
    #[schema(schema_with = attribute_map_schema)]
    pub(crate) attributes: BTreeMap<String, String>,
    /// Passed to Cognito as `ClientMetadata` (for its Lambda triggers); never stored
    /// or audited.
    #[serde(default)]
    #[schema(example = json!({"source": "crm"}))]
    pub(crate) client_metadata: BTreeMap<String, String>,
}

/// `attributes` as a client sees it: a map from attribute name to string value, with
/// the input rules that apply before the policy.
fn attribute_map_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};

    use crate::attribute::{NAME_PREFIXES, STANDARD_ATTRIBUTES};
    use crate::input::{MAX_ATTRIBUTES, MAX_NAME_CHARS, MAX_VALUE_CHARS};

    // The name rule of `attribute::check_name` as a pattern: a standard name, or a prefix
    // and 1 or more characters (up to the length limit) that are neither control
    // characters nor whitespace. The class lists exactly the characters for which
    // `char::is_control` (Unicode Cc) or `char::is_whitespace` (Unicode White_Space)
    // holds; `\uXXXX` escapes mean the same in ECMA-262, Python and Rust regexes.
    const NOT_SPACE_OR_CONTROL: &str =
        r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]";
    let prefixed = NAME_PREFIXES.map(|prefix| {
        let room = MAX_NAME_CHARS - prefix.chars().count();
        format!("{prefix}{NOT_SPACE_OR_CONTROL}{{1,{room}}}")
    });
    let name_pattern = format!(
        "^(?:{}|{})$",
        STANDARD_ATTRIBUTES.join("|"),
        prefixed.join("|")
    );
    // The values `input::check_value` holds to a fixed form (`email`'s rule is the
    // `validator` crate's, which no pattern states exactly: it stays in the description).
    let flag = |what: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(format!(
                "`\"true\"` marks the {what} verified, `\"false\"` unverified; nothing else \
                 (not even an empty string) is accepted."
            )))
            .enum_values(Some(["true", "false"]))
    };

    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Attribute name to new value: at least 1 entry, at most {MAX_ATTRIBUTES}. \
             A name is a Cognito standard attribute (`given_name`, `email`, `email_verified`, ...) \
             or starts with `custom:` or `dev:`; an unknown bare name is a 422 with a hint \
             (`tier`: \"did you mean custom:tier?\"), and `sub` is never writable. \
             A value is a string of at most {MAX_VALUE_CHARS} characters; `email_verified` and \
             `phone_number_verified` take `\"true\"` or `\"false\"`, `email` must be a valid \
             address and `phone_number` E.164 (`+` and 1 to 15 digits). An empty string deletes \
             the attribute (Cognito semantics) and counts as a write."
        )))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_NAME_CHARS))
                .pattern(Some(name_pattern)),
        ))
        .property("email_verified", flag("email"))
        .property("phone_number_verified", flag("phone number"))
        .property(
            "phone_number",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "E.164: `+` and 1 to 15 digits; an empty string deletes the attribute.",
                ))
                .pattern(Some(r"^(?:\+[0-9]{1,15})?$")),
        )
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(MAX_VALUE_CHARS)),
        ))
        .min_properties(Some(1))
        .max_properties(Some(MAX_ATTRIBUTES))
        .examples([serde_json::json!({"given_name": "Annie", "custom:plan": "pro"})])
        .build()
}

#[cfg(test)]
mod tests {
    use super::{UpdateAttributesRequest, UpdateQuery};
    use crate::update::{UpdateBody, UpdateOptions};

    /// Bodies and queries that each parser must take or refuse alike.
    const BODIES: [&str; 7] = [
        r#"{"attributes": {"given_name": "Ann"}}"#,
        r#"{"attributes": {}, "client_metadata": {"source": "crm"}}"#,
        r#"{"attributes": {"a": "b"}, "extra": 1}"#,
        r#"{"client_metadata": {}}"#,
        r#"{"attributes": {"a": 1}}"#,
        r#"{"attributes": {"a": "b"}, "client_metadata": null}"#,
        r#"[]"#,
    ];
    const QUERIES: [&str; 5] = [
        "",
        "dry_run=true",
        "dry_run=false",
        "dry_run=yes",
        "other=1",
    ];

    #[test]
    fn the_documented_body_and_query_accept_exactly_what_the_update_service_parses() {
        for body in BODIES {
            let documented = serde_json::from_str::<UpdateAttributesRequest>(body).is_ok();
            let parsed = serde_json::from_str::<UpdateBody>(body).is_ok();
            assert_eq!(documented, parsed, "{body}");
        }
        for query in QUERIES {
            let documented = serde_urlencoded::from_str::<UpdateQuery>(query).is_ok();
            let parsed = serde_urlencoded::from_str::<UpdateOptions>(query).is_ok();
            assert_eq!(documented, parsed, "{query}");
        }
    }
}
