//! The one error type at the HTTP edge: every failure leaves as RFC 9457 problem+json.
//! Depends on nothing but actix and serde; layers map their own errors into it.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// One input field that broke a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Where the problem is: `body`, `query`, `pool_id`, `username`, `attributes`, or
    /// `attributes.<name>` for one attribute.
    #[schema(example = "attributes.tier")]
    pub field: String,
    /// What is wrong, in plain words, with a hint where one helps.
    #[schema(example = "unknown attribute 'tier': did you mean custom:tier?")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// One attribute the policy denied, with the rule that denied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DeniedAttribute {
    /// The attribute name, as requested.
    #[schema(example = "email_verified")]
    pub attribute: String,
    /// Which rule denied it (protected, a role's deny, no grant, no verify grant, or a
    /// constraint). Never quotes the requested value.
    #[schema(example = "no applicable role may mark email as verified")]
    pub reason: String,
}

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
}

/// What went wrong, independent of the request it happened in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest(Vec<FieldError>),
    Unauthorized,
    Forbidden(Vec<DeniedAttribute>),
    NotFound,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable(Vec<FieldError>),
    TooManyRequests { retry_after_secs: u64 },
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
    Internal,
}

impl ErrorKind {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug_and_title(&self) -> (&'static str, &'static str) {
        match self {
            Self::BadRequest(_) => ("bad-request", "Bad request"),
            Self::Unauthorized => ("invalid-token", "Invalid or missing token"),
            Self::Forbidden(_) => ("policy-denied", "Denied by policy"),
            Self::NotFound => ("not-found", "Not found"),
            Self::Conflict => ("alias-exists", "Alias already in use"),
            Self::PayloadTooLarge => ("payload-too-large", "Payload too large"),
            Self::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Self::Unprocessable(_) => ("invalid-attributes", "Invalid attributes"),
            Self::TooManyRequests { .. } => ("throttled", "Too many requests"),
            Self::BadGateway => ("upstream-error", "Upstream error"),
            Self::ServiceUnavailable => ("unavailable", "Service unavailable"),
            Self::GatewayTimeout => ("upstream-timeout", "Upstream timeout"),
            Self::Internal => ("internal", "Internal error"),
        }
    }
}

/// An error answer: a kind, a safe human detail, and the request it belongs to.
///
/// `detail` is always written by attrgate itself: upstream messages, tokens and
/// credentials never reach it, so a 5xx cannot leak internals.
#[derive(Clone, thiserror::Error)]
#[error("{status} {detail}", status = kind.status())]
pub struct ApiError {
    pub kind: ErrorKind,
    pub detail: String,
    pub request_id: String,
}

/// Logged by the request middleware, so it names the problem but never the field
/// messages: a parser's message can quote a value from the request body.
impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (slug, _) = self.kind.slug_and_title();
        f.debug_struct("ApiError")
            .field("status", &self.kind.status().as_u16())
            .field("type", &slug)
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl ApiError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>, request_id: impl ToString) -> Self {
        Self {
            kind,
            detail: detail.into(),
            request_id: request_id.to_string(),
        }
    }

    pub fn problem(&self) -> Problem {
        let (slug, title) = self.kind.slug_and_title();
        let (denied, errors) = match &self.kind {
            ErrorKind::Forbidden(denied) => (Some(denied.clone()), None),
            ErrorKind::BadRequest(errors) | ErrorKind::Unprocessable(errors) => {
                (None, Some(errors.clone()))
            }
            _ => (None, None),
        };
        Problem {
            kind: format!("urn:attrgate:problem:{slug}"),
            title: title.to_owned(),
            status: self.kind.status().as_u16(),
            detail: self.detail.clone(),
            request_id: self.request_id.clone(),
            denied,
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind.status()
    }

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
            ErrorKind::TooManyRequests { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            _ => {}
        }
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    #[test]
    fn unauthorized_answers_carry_the_bearer_challenge_and_problem_json() {
        let error = ApiError::new(ErrorKind::Unauthorized, "token expired", "rid-1");

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
    fn a_forbidden_problem_lists_every_denied_attribute_and_no_errors_field() {
        let denied = vec![
            DeniedAttribute {
                attribute: "a".into(),
                reason: "r1".into(),
            },
            DeniedAttribute {
                attribute: "b".into(),
                reason: "r2".into(),
            },
        ];
        let error = ApiError::new(ErrorKind::Forbidden(denied), "denied", "rid-2");

        let body = error.error_response().into_body().try_into_bytes().unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();

        assert_eq!(json["denied"].as_array().unwrap().len(), 2);
        assert!(json.get("errors").is_none());
        assert_eq!(json["request_id"], "rid-2");
        assert_eq!(json["status"], 403);
    }

    #[test]
    fn the_debug_form_that_gets_logged_never_quotes_field_messages() {
        let errors = vec![FieldError::new(
            "body",
            "invalid type: string \"secret-value\"",
        )];
        let error = ApiError::new(ErrorKind::BadRequest(errors), "bad body", "rid");

        let logged = format!("{error:?} {error}");

        assert!(!logged.contains("secret-value"), "{logged}");
        assert!(logged.contains("rid"));
    }

    #[test]
    fn throttled_answers_say_when_to_retry() {
        let error = ApiError::new(
            ErrorKind::TooManyRequests {
                retry_after_secs: 7,
            },
            "slow down",
            "r",
        );

        let response = error.error_response();

        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "7");
    }
}
