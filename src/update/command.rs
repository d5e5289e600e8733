//! The parse phase: a raw update request (query string, content type, body) becomes an
//! `UpdateCommand` that passed every input rule, or a refusal that says what was read.
//! Must not depend on actix.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Deserialize;
use utoipa::ToSchema;

use crate::audit::ValueHasher;
use crate::input::{AttributeChanges, PoolId, Regions, Username, parse_query};
use crate::wire::FieldError;

use super::refusal::{Invalid, Known, Refused};

/// An update request as it came off the wire. `body` is read only once the query and
/// the content type have passed, so a refused request's body is never read.
pub(crate) struct RawUpdate<'a, B> {
    /// Whether every path segment is valid UTF-8 once percent-decoded (the router
    /// replaces invalid bytes, so the decoded segments alone cannot tell).
    pub(crate) path_is_utf8: bool,
    pub(crate) query: &'a str,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) body: B,
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over the size limit (by `Content-Length` or as read).
    TooLarge,
    /// The connection failed while reading.
    Unreadable,
}

/// The query string of an update.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
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
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateAttributesRequest {
    /// Attribute name to new value (see `attribute_map_schema` for the documented rules).
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

/// The requested names and their values' HMACs, as audit records name them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requested {
    pub(crate) names: Vec<String>,
    pub(crate) values: BTreeMap<String, String>,
}

impl Requested {
    fn of(attributes: &BTreeMap<String, String>, hasher: &ValueHasher) -> Self {
        Self {
            names: attributes.keys().cloned().collect(),
            values: hasher.hash_all(attributes),
        }
    }
}

/// An update that passed every input rule.
#[derive(Debug)]
pub(crate) struct UpdateCommand {
    pub(crate) pool: PoolId,
    pub(crate) user: Username,
    pub(crate) changes: AttributeChanges,
    /// Passed to Cognito as `ClientMetadata`; never stored.
    pub(crate) client_metadata: BTreeMap<String, String>,
    pub(crate) dry_run: bool,
    pub(crate) requested: Requested,
}

impl UpdateCommand {
    /// What an audit record of this command knows.
    pub(super) fn known(&self) -> Known {
        Known {
            dry_run: self.dry_run,
            requested: Some(self.requested.clone()),
            ..Known::default()
        }
    }
}

/// Where the update goes, as named in the path, and the regions it may name.
pub(super) struct Target<'a> {
    pub(super) pool_id: &'a str,
    pub(super) username: &'a str,
    pub(super) regions: &'a Regions,
}

/// Parses a raw request into a command: query, content type, body, JSON, input rules.
pub(super) async fn parse<B>(
    raw: RawUpdate<'_, B>,
    target: &Target<'_>,
    hasher: &ValueHasher,
    limit: usize,
) -> Result<UpdateCommand, Refused>
where
    B: Future<Output = Result<Vec<u8>, BodyError>>,
{
    let query = parse_query::<UpdateQuery>(raw.query, "`dry_run`")
        .map_err(|message| Refused::invalid(Invalid::Query(message), Known::default()))?;
    let known = Known {
        dry_run: query.dry_run,
        ..Known::default()
    };
    if !raw.path_is_utf8 {
        return Err(Refused::invalid(Invalid::Path, known));
    }
    if !raw.content_type.is_some_and(is_json) {
        return Err(Refused::invalid(Invalid::MediaType, known));
    }
    let body = raw.body.await.map_err(|error| {
        let invalid = match error {
            BodyError::TooLarge => Invalid::TooLarge { limit },
            BodyError::Unreadable => Invalid::Unreadable,
        };
        Refused::invalid(invalid, known.clone())
    })?;
    let body: UpdateAttributesRequest = serde_json::from_slice(&body)
        .map_err(|error| Refused::invalid(body_error(&error), known.clone()))?;
    let requested = Requested::of(&body.attributes, hasher);
    let known = Known {
        requested: Some(requested.clone()),
        ..known
    };
    if body.attributes.is_empty() {
        return Err(Refused::invalid(Invalid::NoAttributes, known));
    }
    let (pool, user, changes) = check_input(target, body.attributes)
        .map_err(|errors| Refused::invalid(Invalid::Input(errors), known))?;
    Ok(UpdateCommand {
        pool,
        user,
        changes,
        client_metadata: body.client_metadata,
        dry_run: query.dry_run,
        requested,
    })
}

/// What is wrong with the body, where, and never what was sent: the parser's own
/// messages quote the body (a value, or an unknown key), so they are not used.
fn body_error(error: &serde_json::Error) -> Invalid {
    use serde_json::error::Category;
    let parser = error.to_string();
    let what = match error.classify() {
        Category::Io | Category::Syntax => "malformed JSON",
        Category::Eof => "the JSON ends early",
        Category::Data if parser.starts_with("unknown field") => {
            "unknown field; an update has `attributes` and optionally `client_metadata`"
        }
        Category::Data if parser.starts_with("missing field `attributes`") => {
            "missing field `attributes`"
        }
        Category::Data if parser.starts_with("duplicate field") => "a field is given twice",
        Category::Data => {
            "wrong type: the body is an object whose `attributes` and `client_metadata` map names to strings"
        }
    };
    let message = format!("{what} at line {} column {}", error.line(), error.column());
    Invalid::Body {
        audit: message.clone(),
        message,
    }
}

/// Every input rule on the path and the attributes; every problem, not just the first.
fn check_input(
    target: &Target<'_>,
    attributes: BTreeMap<String, String>,
) -> Result<(PoolId, Username, AttributeChanges), Vec<FieldError>> {
    let pool =
        PoolId::parse(target.pool_id).and_then(|pool| target.regions.check(&pool).map(|()| pool));
    match (
        pool,
        Username::parse(target.username),
        AttributeChanges::parse(attributes),
    ) {
        (Ok(pool), Ok(user), Ok(changes)) => Ok((pool, user, changes)),
        (pool, user, changes) => {
            let mut errors: Vec<FieldError> =
                [pool.err(), user.err()].into_iter().flatten().collect();
            errors.extend(changes.err().unwrap_or_default());
            Err(errors)
        }
    }
}

/// `application/json`, with no parameter but an optional `charset=utf-8`. Other `+json`
/// types (`application/merge-patch+json` has other semantics) and charsets are not.
fn is_json(content_type: &str) -> bool {
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.all(|parameter| {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            name.trim().eq_ignore_ascii_case("charset")
                && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        })
}

#[cfg(test)]
mod tests {
    use super::{Invalid, UpdateAttributesRequest, body_error, is_json};

    #[test]
    fn only_application_json_with_an_optional_utf8_charset_is_json() {
        for accepted in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_json(accepted), "{accepted}");
        }
        for refused in [
            "application/merge-patch+json",
            "application/vnd.api+json",
            "application/json; charset=latin1",
            "application/json; boundary=x",
            "text/json",
            "application/jsonx",
        ] {
            assert!(!is_json(refused), "{refused}");
        }
    }

    #[test]
    fn a_400_message_names_the_problem_and_position_but_never_quotes_the_body() {
        let table = [
            (r#"{"attributes": "leak-me"}"#, "wrong type"),
            (
                r#"{"attributes": {"a": "1"}, "leak-me": 2}"#,
                "unknown field",
            ),
            (r#"{"attributes": {"leak-me"#, "the JSON ends early"),
            (r#"{"attributes" leak-me"#, "malformed JSON"),
            (r#"{}"#, "missing field `attributes`"),
        ];
        for (body, expected) in table {
            let error = serde_json::from_str::<UpdateAttributesRequest>(body).unwrap_err();
            let Invalid::Body { message, .. } = body_error(&error) else {
                panic!("a body error");
            };
            assert!(message.starts_with(expected), "{body}: {message}");
            assert!(message.contains(" at line 1 column "), "{message}");
            assert!(!message.contains("leak-me"), "{message}");
        }
    }
}
