//! The one error type at the HTTP edge: every failure leaves as RFC 9457 problem+json.
//! Each layer keeps its own error enum and reaches `ApiError` through `From`; the named
//! constructors here are used by the handlers and by the OpenAPI examples alike, so the
//! documented texts are the real ones. The request id is filled in by the middleware
//! that sets `X-Request-Id` (`crate::http::middleware`).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::cognito::{DirectoryError, DirectoryErrorKind};
use crate::update::{Invalid, Refusal};
use serde::Serialize;
use utoipa::ToSchema;

use crate::report::{DeniedAttribute, FieldError};

pub(crate) const PROBLEM_JSON: &str = "application/problem+json";

/// The `application/problem+json` body (RFC 9457) of every error answer.
///
/// Branch on `status` or `type`, not on `detail`, whose wording may change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem: `urn:attrgate:problem:<kind>`, e.g.
    /// `policy-denied` (403), `invalid-attributes` (422), `bad-request` (400),
    /// `invalid-token` (401), `throttled` (429), `unavailable` (503).
    #[serde(rename = "type")]
    #[schema(example = "urn:attrgate:problem:policy-denied")]
    pub kind: String,
    /// A short summary of the kind of problem; the same for every problem of a `type`.
    #[schema(example = "Denied by policy")]
    pub title: String,
    /// The HTTP status code of this answer.
    #[schema(minimum = 400, maximum = 599, example = 403)]
    pub status: u16,
    /// What happened in this request, for people. Never holds AWS messages, tokens,
    /// credentials or stack traces.
    #[schema(example = "the policy denies 1 of 2 attribute(s); nothing was written")]
    pub detail: String,
    /// The id of this request, as sent in `X-Request-Id` and written to the audit log.
    #[schema(example = "5f0c6a8e-3b1d-4c2a-9e57-2d4b8f1a7c60")]
    pub request_id: String,
    /// Only on 403: every attribute the policy denied, not just the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub denied: Option<Vec<DeniedAttribute>>,
    /// Only on 400 and 422: every input field that broke a rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldError>>,
    /// A stable code for the problems that share a status with others:
    /// `precondition_failed` (412: `If-Match` no longer matches the user) and
    /// `user_busy` (429: another change to this user held it for too long).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "precondition_failed")]
    pub code: Option<String>,
}

/// What went wrong, independent of the request it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    BadRequest(Vec<FieldError>),
    Unauthorized,
    Forbidden(Vec<DeniedAttribute>),
    NotFound,
    MethodNotAllowed { allow: &'static str },
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable(Vec<FieldError>),
    TooManyRequests { retry_after_secs: u64 },
    PreconditionFailed,
    UserBusy { retry_after_secs: u64 },
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
}

impl ErrorKind {
    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } | Self::UserBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::Unauthorized => ("invalid-token", "Invalid or missing token"),
            Self::Forbidden(_) => ("policy-denied", "Denied by policy"),
            Self::NotFound => ("not-found", "Not found"),
            Self::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            Self::Conflict => ("alias-exists", "Alias already in use"),
            Self::PayloadTooLarge => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::Unprocessable(_) => ("invalid-attributes", "Invalid attributes"),
            Self::TooManyRequests { .. } => ("throttled", "Too many requests"),
            Self::PreconditionFailed => ("precondition-failed", "Precondition failed"),
            Self::UserBusy { .. } => ("user-busy", "User busy"),
            Self::BadGateway => ("upstream-error", "Upstream error"),
            Self::ServiceUnavailable => ("unavailable", "Service unavailable"),
            Self::GatewayTimeout => ("upstream-timeout", "Upstream timeout"),
        }
    }
}

/// An error answer: a kind and a safe human detail.
///
/// `detail` is always written by attrgate itself: upstream messages, tokens and
/// credentials never reach it, so a 5xx cannot leak internals.
#[derive(Clone, thiserror::Error)]
#[error("{status} {detail}", status = kind.status())]
pub struct ApiError {
    pub(crate) kind: ErrorKind,
    pub(crate) detail: String,
}

/// Logged by the request middleware, so it names the problem but never the field
/// messages: a parser's message can quote a value from the request body.
impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (slug, _) = self.kind.slug_and_title();
        f.debug_struct("ApiError")
            .field("status", &self.kind.status().as_u16())
            .field("type", &slug)
            .finish()
    }
}

impl ApiError {
    pub(crate) fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }

    /// 503: the audit log cannot be written, so nothing was done.
    pub(crate) fn audit_unavailable() -> Self {
        Self::new(
            ErrorKind::ServiceUnavailable,
            "the audit log cannot be written, so nothing was changed; retry later",
        )
    }

    /// 503: the token's issuer keys were never fetched.
    pub(crate) fn keys_unavailable() -> Self {
        Self::new(
            ErrorKind::ServiceUnavailable,
            "the issuer's signing keys have not been fetched yet; retry shortly",
        )
    }

    /// 429: the caller's own rate limit.
    pub(crate) fn caller_throttled(retry_after_secs: u64) -> Self {
        Self::new(
            ErrorKind::TooManyRequests { retry_after_secs },
            "too many requests from this caller",
        )
    }

    /// 403: the policy denied `denied.len()` of `requested` attributes.
    pub(crate) fn denied(denied: Vec<DeniedAttribute>, requested: usize) -> Self {
        let detail = format!(
            "the policy denies {} of {requested} attribute(s); nothing was written",
            denied.len()
        );
        Self::new(ErrorKind::Forbidden(denied), detail)
    }

    /// 403 for a read: no role lets the caller read anything of this user.
    pub(crate) fn read_denied(denied: Vec<DeniedAttribute>) -> Self {
        Self::new(
            ErrorKind::Forbidden(denied),
            "the policy lets this caller read nothing of this user; nothing was read",
        )
    }

    /// 412: `If-Match` names another state of the user than the one it has now.
    pub(crate) fn precondition_failed() -> Self {
        Self::new(
            ErrorKind::PreconditionFailed,
            "the user changed since the ETag in If-Match was read; read it again; nothing was written",
        )
    }

    /// 429: another change to this user held its lock for too long.
    pub(crate) fn user_busy(retry_after_secs: u64) -> Self {
        Self::new(
            ErrorKind::UserBusy { retry_after_secs },
            "another change to this user is in progress; retry shortly; nothing was written",
        )
    }

    /// 400: the query string of an update.
    pub(crate) fn invalid_query(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::BadRequest(vec![FieldError::new("query", message)]),
            "invalid query string",
        )
    }

    /// 400: the body is not a well-formed update request.
    pub(crate) fn invalid_body(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::BadRequest(vec![FieldError::new("body", message)]),
            "the body is not a valid update request",
        )
    }

    /// 400: `attributes` is empty.
    pub(crate) fn no_attributes() -> Self {
        Self::new(
            ErrorKind::BadRequest(vec![FieldError::new(
                "attributes",
                "must name at least one attribute",
            )]),
            "no attributes to update",
        )
    }

    /// 400: the body could not be read off the connection.
    pub(crate) fn unreadable_body() -> Self {
        Self::new(
            ErrorKind::BadRequest(vec![FieldError::new("body", "the body could not be read")]),
            "the body could not be read",
        )
    }

    /// 413: the body is over `limit` bytes.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            format!("the body is over {limit} bytes"),
        )
    }

    /// 415: the body is not JSON.
    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            ErrorKind::UnsupportedMediaType,
            "the body must be application/json",
        )
    }

    /// 422: the input rules of SPEC.md.
    pub(crate) fn input_rules(errors: Vec<FieldError>) -> Self {
        let detail = format!("{} input rule(s) broken; nothing was written", errors.len());
        Self::new(ErrorKind::Unprocessable(errors), detail)
    }

    /// 422: names the pool does not have or cannot change.
    pub(crate) fn pool_schema(errors: Vec<FieldError>) -> Self {
        let detail = format!(
            "{} attribute(s) the pool does not have or cannot change; nothing was written",
            errors.len()
        );
        Self::new(ErrorKind::Unprocessable(errors), detail)
    }

    /// 400 for `GET /permissions` without a usable query.
    pub(crate) fn permissions_query(message: impl Into<String>) -> Self {
        Self::new(
            ErrorKind::BadRequest(vec![FieldError::new("query", message)]),
            "pass ?pool_id=<pool id>",
        )
    }

    /// 422: a malformed pool id.
    pub(crate) fn invalid_pool_id(error: FieldError) -> Self {
        Self::new(ErrorKind::Unprocessable(vec![error]), "invalid pool id")
    }

    /// 422: a malformed username.
    pub(crate) fn invalid_username(error: FieldError) -> Self {
        Self::new(ErrorKind::Unprocessable(vec![error]), "invalid username")
    }

    /// 405 for a known path with another method; `allow` lists the methods it takes.
    pub(crate) fn method_not_allowed(allow: &'static str) -> Self {
        Self::new(
            ErrorKind::MethodNotAllowed { allow },
            format!("this resource takes {allow} only"),
        )
    }

    /// 422: a path segment that is not valid UTF-8 once percent-decoded.
    pub(crate) fn invalid_path() -> Self {
        Self::new(
            ErrorKind::Unprocessable(vec![FieldError::new(
                "path",
                "a path segment is not valid UTF-8 once percent-decoded",
            )]),
            "invalid path; nothing was written",
        )
    }

    /// 404 for a path no route serves.
    pub(crate) fn no_route() -> Self {
        Self::new(ErrorKind::NotFound, "no such route")
    }

    /// The problem body of this error in the request `request_id`.
    #[must_use]
    pub fn problem(&self, request_id: &str) -> Problem {
        let (slug, title) = self.kind.slug_and_title();
        let (denied, errors) = match &self.kind {
            ErrorKind::Forbidden(denied) => (Some(denied.clone()), None),
            ErrorKind::BadRequest(errors) | ErrorKind::Unprocessable(errors) => {
                (None, Some(errors.clone()))
            }
            _ => (None, None),
        };
        let code = match &self.kind {
            ErrorKind::PreconditionFailed => Some("precondition_failed".to_owned()),
            ErrorKind::UserBusy { .. } => Some("user_busy".to_owned()),
            _ => None,
        };
        Problem {
            kind: format!("urn:attrgate:problem:{slug}"),
            title: title.to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            request_id: request_id.to_owned(),
            denied,
            errors,
            code,
        }
    }

    /// The problem body serialised for the request `request_id`.
    #[must_use]
    pub fn body(&self, request_id: &str) -> String {
        serde_json::to_string(&self.problem(request_id)).unwrap_or_default()
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::KeysUnavailable => Self::keys_unavailable(),
            other => Self::new(ErrorKind::Unauthorized, other.to_string()),
        }
    }
}

impl From<DirectoryError> for ApiError {
    fn from(error: DirectoryError) -> Self {
        let (kind, detail) = match error.kind {
            DirectoryErrorKind::UserNotFound => (
                ErrorKind::NotFound,
                "the user does not exist in this pool".to_owned(),
            ),
            DirectoryErrorKind::PoolNotFound => (
                ErrorKind::NotFound,
                "the user pool does not exist".to_owned(),
            ),
            DirectoryErrorKind::AliasExists => (
                ErrorKind::Conflict,
                "another user already has this email or phone number as an alias".to_owned(),
            ),
            DirectoryErrorKind::InvalidParameter => (
                ErrorKind::Unprocessable(vec![FieldError::new(
                    "attributes",
                    format!("Cognito rejected the attributes ({})", error.code),
                )]),
                "Cognito rejected the attributes; nothing was written".to_owned(),
            ),
            DirectoryErrorKind::Throttled => (
                ErrorKind::TooManyRequests {
                    retry_after_secs: 1,
                },
                "Cognito is throttling requests; retry later".to_owned(),
            ),
            DirectoryErrorKind::OverBudget { retry_after_secs } => (
                ErrorKind::TooManyRequests { retry_after_secs },
                "this gateway's budget of Cognito calls is spent; retry later".to_owned(),
            ),
            DirectoryErrorKind::Timeout => (
                ErrorKind::GatewayTimeout,
                "Cognito did not answer in time".to_owned(),
            ),
            DirectoryErrorKind::Upstream => (
                ErrorKind::BadGateway,
                "Cognito could not complete the request; the audit log has the details".to_owned(),
            ),
        };
        Self::new(kind, detail)
    }
}

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        match invalid {
            Invalid::Query(message) => Self::invalid_query(message),
            Invalid::Path => Self::invalid_path(),
            Invalid::MediaType => Self::unsupported_media_type(),
            Invalid::TooLarge { limit } => Self::payload_too_large(limit),
            Invalid::Unreadable => Self::unreadable_body(),
            Invalid::Body { message, .. } => Self::invalid_body(message),
            Invalid::NoAttributes => Self::no_attributes(),
            Invalid::Input(errors) => Self::input_rules(errors),
            Invalid::Schema(errors) => Self::pool_schema(errors),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Throttled { retry_after_secs } => Self::caller_throttled(retry_after_secs),
            Refusal::Invalid(invalid) => invalid.into(),
            Refusal::Denied { denied, requested } => Self::denied(denied, requested),
            Refusal::Upstream(error) => error.into(),
            Refusal::AuditUnavailable => Self::audit_unavailable(),
            Refusal::ReadDenied { denied } => Self::read_denied(denied),
            Refusal::PreconditionFailed => Self::precondition_failed(),
            Refusal::UserBusy { retry_after_secs } => Self::user_busy(retry_after_secs),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

    /// The status and headers only: the problem body needs the request id, which the
    /// middleware that sets `X-Request-Id` knows, so it writes the body, once
    /// (`http::middleware::edge`).
    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match &self.kind {
            ErrorKind::Unauthorized => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                ));
            }
            ErrorKind::TooManyRequests { retry_after_secs }
            | ErrorKind::UserBusy { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ErrorKind::MethodNotAllowed { allow } => {
                response.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ => {}
        }
        response.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::DenialCode;
    use actix_web::body::MessageBody;

    #[test]
    fn unauthorized_answers_carry_the_bearer_challenge_and_problem_json() {
        let error = ApiError::new(ErrorKind::Unauthorized, "token expired");

        let response = error.error_response();

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            r#"Bearer error="invalid_token""#
        );
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
    }

    #[test]
    fn a_forbidden_problem_lists_every_denied_attribute_with_its_code_and_no_errors_field() {
        let denied = vec![
            DeniedAttribute {
                attribute: "a".into(),
                code: DenialCode::Protected,
                reason: "r1".into(),
            },
            DeniedAttribute {
                attribute: "b".into(),
                code: DenialCode::NotGranted,
                reason: "r2".into(),
            },
        ];
        let error = ApiError::denied(denied, 3);

        let json: serde_json::Value = serde_json::from_str(&error.body("rid-2")).unwrap();

        assert_eq!(json["denied"].as_array().unwrap().len(), 2);
        assert_eq!(json["denied"][1]["code"], "not_granted");
        assert!(json.get("errors").is_none());
        assert_eq!(json["request_id"], "rid-2");
        assert_eq!(json["status"], 403);
        assert_eq!(
            json["detail"],
            "the policy denies 2 of 3 attribute(s); nothing was written"
        );
    }

    #[test]
    fn the_debug_form_that_gets_logged_never_quotes_field_messages() {
        let error = ApiError::invalid_body("invalid type: string \"secret-value\"");

        let logged = format!("{error:?} {error}");

        assert!(!logged.contains("secret-value"), "{logged}");
    }

    #[test]
    fn throttled_answers_say_when_to_retry_and_the_body_is_left_to_the_middleware() {
        let error = ApiError::caller_throttled(7);

        let response = error.error_response();

        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "7");
        let body = response.into_body().try_into_bytes().unwrap();
        assert!(body.is_empty(), "rendered before the request id is known");
        assert!(error.body("rid-7").contains("too many requests"));
    }

    #[test]
    fn a_token_whose_issuer_keys_are_missing_is_a_503_and_any_other_auth_error_a_401() {
        assert_eq!(
            ApiError::from(AuthError::KeysUnavailable).status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(AuthError::Expired).status_code(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn each_cognito_error_kind_maps_to_its_documented_status() {
        let table = [
            (DirectoryErrorKind::UserNotFound, 404),
            (DirectoryErrorKind::PoolNotFound, 404),
            (DirectoryErrorKind::AliasExists, 409),
            (DirectoryErrorKind::InvalidParameter, 422),
            (DirectoryErrorKind::Throttled, 429),
            (
                DirectoryErrorKind::OverBudget {
                    retry_after_secs: 2,
                },
                429,
            ),
            (DirectoryErrorKind::Timeout, 504),
            (DirectoryErrorKind::Upstream, 502),
        ];
        for (kind, status) in table {
            let error = ApiError::from(DirectoryError {
                kind,
                code: "SomeAwsCode".into(),
                request_id: None,
            });

            assert_eq!(error.status_code().as_u16(), status, "{kind:?}");
            assert!(!error.detail.contains("SomeAwsCode"), "{kind:?}");
        }
    }
}
