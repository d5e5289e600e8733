//! The parse phase: a raw update request (query string, content type, body) becomes an
//! `UpdateCommand` that passed every input rule, or a refusal that says what was read.
//! Must not depend on actix.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Deserialize;

use crate::audit::ValueHasher;
use crate::input::{AttributeChanges, PoolId, Regions, Username, parse_query};
use crate::report::FieldError;

use super::refusal::{Invalid, Known, Refused, Requested};

/// An update request as it came off the wire. `body` is read only once the query and
/// the content type have passed, so a refused request's body is never read.
pub(crate) struct RawUpdate<'a, B> {
    /// Whether every path segment is valid UTF-8 once percent-decoded (the router
    /// replaces invalid bytes, so the decoded segments alone cannot tell).
    pub(crate) path_is_utf8: bool,
    pub(crate) query: &'a str,
    pub(crate) content_type: Option<&'a str>,
    /// The `If-Match` header, as sent.
    pub(crate) if_match: Option<&'a str>,
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

/// The query string of an update (documented by the HTTP wing's `UpdateQuery`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateOptions {
    #[serde(default)]
    pub(crate) dry_run: bool,
}

/// The body of an attribute update, as parsed (documented by the HTTP wing's
/// `UpdateAttributesRequest`). Unknown fields are rejected with a 400.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    pub(crate) attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) client_metadata: BTreeMap<String, String>,
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
    /// The entity tags of `If-Match`: write only if the user's tag is one of them.
    pub(crate) if_match: Option<IfMatch>,
}

/// `If-Match`: `*` (any current state) or a list of strong entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IfMatch {
    Any,
    Tags(Vec<String>),
}

impl IfMatch {
    /// The header as sent: `*`, or comma-separated tags (a weak `W/"…"` tag never
    /// matches: the comparison is strong, RFC 9110 13.1.1).
    pub(crate) fn parse(header: &str) -> Self {
        if header.trim() == "*" {
            return Self::Any;
        }
        Self::Tags(
            header
                .split(',')
                .map(str::trim)
                .filter(|tag| tag.starts_with('"'))
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Whether `etag`, the user's tag now, satisfies it.
    pub(crate) fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|tag| tag == etag),
        }
    }
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
    let query = parse_query::<UpdateOptions>(raw.query, "`dry_run`")
        .map_err(|message| Refused::invalid(Invalid::Query(message), Known::default()))?;
    let known = Known {
        dry_run: query.dry_run,
        ..Known::default()
    };
    let raw_if_match = raw.if_match;
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
    let body: UpdateBody = serde_json::from_slice(&body)
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
        if_match: raw_if_match.map(IfMatch::parse),
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
    match (target.parse(), AttributeChanges::parse(attributes)) {
        (Ok((pool, user)), Ok(changes)) => Ok((pool, user, changes)),
        (user, changes) => {
            let mut errors = user.err().unwrap_or_default();
            errors.extend(changes.err().unwrap_or_default());
            Err(errors)
        }
    }
}

impl Target<'_> {
    /// The pool and username by the input rules, or every rule they break.
    pub(super) fn parse(&self) -> Result<(PoolId, Username), Vec<FieldError>> {
        match (
            self.regions.pool(self.pool_id),
            Username::parse(self.username),
        ) {
            (Ok(pool), Ok(user)) => Ok((pool, user)),
            (pool, user) => Err([pool.err(), user.err()].into_iter().flatten().collect()),
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
    use super::{Invalid, UpdateBody, body_error, is_json};

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
            let error = serde_json::from_str::<UpdateBody>(body).unwrap_err();
            let Invalid::Body { message, .. } = body_error(&error) else {
                panic!("a body error");
            };
            assert!(message.starts_with(expected), "{body}: {message}");
            assert!(message.contains(" at line 1 column "), "{message}");
            assert!(!message.contains("leak-me"), "{message}");
        }
    }
}
