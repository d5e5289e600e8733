//! The OpenAPI 3.1 document, generated from the route annotations, and the Swagger UI
//! settings. Problem examples are built with the real error type, so they show exactly
//! what the gateway sends. Nothing in the request path depends on this module.

use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, RefOr, Type};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::Config;

use crate::auth::AuthError;
use crate::cognito::{DirectoryError, DirectoryErrorKind};
use crate::http::error::{ApiError, PROBLEM_JSON, Problem};
use crate::http::routes::{attributes, health, permissions};
use crate::policy::DenialCode;
use crate::report::{DeniedAttribute, FieldError};

/// The document's introduction: what a client author must know before the first call.
const DESCRIPTION: &str = r#"attrgate lets internal services update Amazon Cognito user attributes, but only the
attributes that a YAML policy lets their roles change.

**Authentication.** Send `Authorization: Bearer <JWT>` from a configured issuer. The token's
roles claim decides what it may change: `GET /permissions` shows it. A missing or invalid
token is a 401 with `WWW-Authenticate: Bearer error="invalid_token"`.

**All or nothing.** `updateUserAttributes` checks every requested attribute. If any one is
denied, the answer is a 403 whose `denied` lists every denied attribute with its reason, and
**nothing is written**. Only fully allowed requests reach Cognito.

**Dry run.** `?dry_run=true` gets the same decision (200 with `dry_run: true`, or 403) and is
audited, but Cognito is not called.

**Errors** are `application/problem+json` (RFC 9457) with `type`, `title`, `status`, `detail`
and `request_id`; a 403 adds `denied`, a 400 or 422 adds `errors`. Branch on `status` or
`type`, not on `detail`. A 5xx never carries AWS messages, credentials or tokens.

**Retrying.** A 429 carries `Retry-After` (seconds). A 503 means nothing was written: retry
later. After a 504, Cognito may or may not have applied the update; the same request can be
sent again safely.

**Request ids.** Every answer carries `X-Request-Id`. It is the `request_id` of the body, and
the id of the request's records in the audit log.

Swagger UI is at `/docs`: use **Authorize** to paste a token, then **Try it out**."#;

/// The `request_id` shown in examples.
const EXAMPLE_REQUEST_ID: &str = "5f0c6a8e-3b1d-4c2a-9e57-2d4b8f1a7c60";

/// What every route shares: the introduction, the tags and the error format. Each route
/// module declares its own part (`Doc`), and [`document`] merges them.
#[derive(OpenApi)]
#[openapi(
    info(title = "attrgate", description = DESCRIPTION),
    servers((url = "/", description = "This attrgate")),
    components(schemas(Problem, FieldError, DeniedAttribute, DenialCode)),
    tags(
        (name = "attributes", description = "Change Cognito user attributes under the policy, and ask what a token may change"),
        (name = "operations", description = "Health, readiness, metrics and this document; no token needed"),
    )
)]
struct Shared;

/// The OpenAPI document: the shared part, each route module's part, then what is added
/// over the whole (the bearer scheme, `GET /openapi.json`, problem examples and headers).
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    let mut openapi = Shared::openapi()
        .merge_from(attributes::Doc::openapi())
        .merge_from(permissions::Doc::openapi())
        .merge_from(health::Doc::openapi());
    let modifiers: [&dyn Modify; 3] = [&BearerAuth, &DocumentRoute, &ProblemDetails];
    for modifier in modifiers {
        modifier.modify(&mut openapi);
    }
    openapi
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearerAuth",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT from an issuer in the gateway's config, for its audience, whose \
                         roles claim names the caller's policy roles. Paste the token alone, \
                         without `Bearer `.",
                    ))
                    .build(),
            ),
        );
    }
}

/// Gives every problem+json answer examples built with the real error type, and every
/// answer the headers the gateway sends with it.
struct ProblemDetails;

impl Modify for ProblemDetails {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let operation_id = operation.operation_id.clone().unwrap_or_default();
                for (status, response) in &mut operation.responses.responses {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    let status: u16 = status.parse().expect("responses are keyed by status");
                    for (name, header) in response_headers(status) {
                        response.headers.insert(name.to_owned(), header.into());
                    }
                    let Some(RefOr::T(content)) = response.content.get_mut(PROBLEM_JSON) else {
                        continue;
                    };
                    for (name, summary, error) in problem_examples(&operation_id, status) {
                        let value = serde_json::to_value(error.problem(EXAMPLE_REQUEST_ID))
                            .expect("serialises");
                        let example = ExampleBuilder::new().summary(summary).value(Some(value));
                        content
                            .examples
                            .insert(name.to_owned(), example.build().into());
                    }
                }
            }
        }
    }
}

fn response_headers(status: u16) -> Vec<(&'static str, utoipa::openapi::header::Header)> {
    let header = |kind: Type, description: &str, example: serde_json::Value| {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(kind)))
            .description(Some(description))
            .example(Some(example))
            .build()
    };
    let mut headers = vec![(
        "X-Request-Id",
        header(
            Type::String,
            "The id of this request: the body's `request_id`, and the audit log's.",
            EXAMPLE_REQUEST_ID.into(),
        ),
    )];
    match status {
        401 => headers.push((
            "WWW-Authenticate",
            header(
                Type::String,
                "The Bearer challenge (RFC 6750).",
                r#"Bearer error="invalid_token""#.into(),
            ),
        )),
        429 => headers.push((
            "Retry-After",
            header(
                Type::Integer,
                "Seconds to wait before trying again.",
                1.into(),
            ),
        )),
        _ => {}
    }
    headers
}

/// Named example answers for one operation and status, built with the same named
/// constructors (and `From` conversions) the gateway answers with.
fn problem_examples(
    operation_id: &str,
    status: u16,
) -> Vec<(&'static str, &'static str, ApiError)> {
    match (operation_id, status) {
        ("getPermissions", 400 | 422 | 429 | 503) => permissions_examples(status),
        // A read holds no user lock: its 429 is a throttle only.
        ("readUserAttributes", 429) => vec![(
            "throttled",
            "Too many requests from this caller",
            ApiError::caller_throttled(1),
        )],
        ("readUserAttributes", 403) => vec![(
            "no_role",
            "No role of the token applies in this pool",
            ApiError::read_denied(vec![DeniedAttribute {
                attribute: crate::policy::WHOLE_USER.into(),
                code: DenialCode::NoApplicableRole,
                reason: "no applicable role: none of the token's roles [crm] applies to pool us-east-1_AbC123".into(),
            }]),
        )],
        (_, 400..=499) => client_error_examples(status),
        _ => server_error_examples(status),
    }
}

type Example = (&'static str, &'static str, ApiError);

fn keys_not_fetched() -> Example {
    (
        "keys_not_fetched",
        "The token issuer's keys are not fetched yet",
        ApiError::keys_unavailable(),
    )
}

fn upstream(kind: DirectoryErrorKind) -> ApiError {
    ApiError::from(DirectoryError {
        kind,
        code: "Example".into(),
        request_id: None,
    })
}

fn permissions_examples(status: u16) -> Vec<Example> {
    match status {
        400 => vec![(
            "missing_pool_id",
            "No pool_id",
            ApiError::permissions_query("Query deserialize error: missing field `pool_id`"),
        )],
        422 => vec![(
            "bad_pool_id",
            "A malformed pool id",
            ApiError::invalid_pool_id(
                crate::input::Regions::default()
                    .pool("no pool")
                    .expect_err("an invalid pool id"),
            ),
        )],
        429 => vec![(
            "cognito_throttled",
            "Cognito throttled the read of the user's facts",
            upstream(DirectoryErrorKind::Throttled),
        )],
        _ => vec![keys_not_fetched()],
    }
}

fn client_error_examples(status: u16) -> Vec<Example> {
    let field = FieldError::new;
    match status {
        400 => vec![
            (
                "unknown_field",
                "An unknown field",
                ApiError::invalid_body(
                    "unknown field; an update has `attributes` and optionally `client_metadata` at line 1 column 12",
                ),
            ),
            (
                "no_attributes",
                "An empty attributes map",
                ApiError::no_attributes(),
            ),
        ],
        401 => vec![(
            "expired",
            "An expired token",
            ApiError::from(AuthError::Expired),
        )],
        403 => vec![(
            "denied",
            "Two of three attributes denied; nothing was written",
            ApiError::denied(
                vec![
                    DeniedAttribute {
                        attribute: "custom:tenant_id".into(),
                        code: DenialCode::Protected,
                        reason: r#"protected by the policy (glob "custom:tenant_id")"#.into(),
                    },
                    DeniedAttribute {
                        attribute: "email_verified".into(),
                        code: DenialCode::NoVerifyGrant,
                        reason: "no applicable role may mark email as verified".into(),
                    },
                ],
                3,
            ),
        )],
        404 => vec![(
            "no_user",
            "No such user",
            upstream(DirectoryErrorKind::UserNotFound),
        )],
        409 => vec![(
            "alias_exists",
            "The email is another user's alias",
            upstream(DirectoryErrorKind::AliasExists),
        )],
        413 => vec![(
            "too_large",
            "A body over the limit",
            ApiError::payload_too_large(16384),
        )],
        415 => vec![(
            "not_json",
            "A body that is not JSON",
            ApiError::unsupported_media_type(),
        )],
        422 => vec![(
            "input_rules",
            "Names and values that break the input rules",
            ApiError::input_rules(vec![
                field("attributes.email_verified", r#"must be "true" or "false""#),
                field(
                    "attributes.tier",
                    "unknown attribute 'tier': did you mean custom:tier?",
                ),
            ]),
        )],
        412 => vec![(
            "precondition_failed",
            "The user changed since its ETag was read",
            ApiError::precondition_failed(),
        )],
        429 => vec![
            (
                "throttled",
                "Too many requests from this caller",
                ApiError::caller_throttled(1),
            ),
            (
                "user_busy",
                "Another change to this user held it too long",
                ApiError::user_busy(2),
            ),
        ],
        _ => Vec::new(),
    }
}

fn server_error_examples(status: u16) -> Vec<Example> {
    match status {
        502 => vec![(
            "upstream",
            "Cognito failed",
            upstream(DirectoryErrorKind::Upstream),
        )],
        503 => vec![
            (
                "audit_unavailable",
                "The audit log cannot be written",
                ApiError::audit_unavailable(),
            ),
            keys_not_fetched(),
        ],
        504 => vec![(
            "timeout",
            "Cognito did not answer in time",
            upstream(DirectoryErrorKind::Timeout),
        )],
        _ => Vec::new(),
    }
}

/// Documents `GET /openapi.json`, which Swagger UI's service serves rather than a handler.
struct DocumentRoute;

impl Modify for DocumentRoute {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let document = ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
            .build();
        let operation = OperationBuilder::new()
            .tag("operations")
            .operation_id(Some("getOpenApiDocument"))
            .summary(Some("This OpenAPI 3.1 document."))
            .description(Some(
                "The same document is committed at `openapi/openapi.json` in the repository. \
                 Swagger UI, at `/docs`, reads it from here.",
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The OpenAPI document.")
                    .content("application/json", document),
            )
            .security(SecurityRequirement::default());
        openapi.paths.paths.insert(
            "/openapi.json".to_owned(),
            PathItem::new(HttpMethod::Get, operation),
        );
    }
}

/// Swagger UI settings: "Try it out" is on from the start, and operation ids are shown,
/// since they are the names generated clients use.
pub fn swagger_ui_config() -> Config<'static> {
    Config::default()
        .try_it_out_enabled(true)
        .display_operation_id(true)
        .display_request_duration(true)
}

/// The document as pretty JSON, exactly as committed at `openapi/openapi.json`.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    json.push('\n');
    json
}
