//! `GET` and `PATCH /pools/{pool_id}/users/{username}/attributes`: the HTTP adapter over
//! the update service (`crate::update`). It reads the path, the headers and the body (up to
//! the size limit), and turns the service's answer into HTTP; it decides nothing.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use utoipa::OpenApi;

use crate::http::error::{ApiError, Problem};
use crate::http::extractor::request_id;
use crate::http::wire::{UpdateAttributesRequest, UpdateQuery, UserPath};
use crate::identity::Caller;
use crate::policy::Visible;
use crate::update::{BodyError, RawUpdate, UpdateFor, UpdateService};

/// This route's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(read_attributes, update_attributes),
    components(schemas(UpdateAttributesRequest, UpdateAttributesResponse, UserAttributes))
)]
pub(crate) struct Doc;

/// The answer to an allowed update.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "request_id": "5f0c6a8e-3b1d-4c2a-9e57-2d4b8f1a7c60",
    "updated": ["custom:plan", "given_name"],
    "dry_run": false
}))]
pub(crate) struct UpdateAttributesResponse {
    /// The id of this request, as sent in `X-Request-Id` and written to the audit log.
    pub(crate) request_id: String,
    /// The attribute names written (or that would be, on a dry run), sorted.
    pub(crate) updated: Vec<String>,
    /// True when `?dry_run=true` was asked: the policy allowed every attribute, and
    /// Cognito was not called.
    pub(crate) dry_run: bool,
}

/// A user's attributes as the caller may see them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "username": "ann",
    "attributes": {"given_name": "Ann", "family_name": "Lee", "custom:plan": "pro"},
    "withheld": 7
}))]
pub(crate) struct UserAttributes {
    /// The user read, as named in the path.
    pub(crate) username: String,
    /// Every attribute the caller may view (some applicable role's `view` globs, not
    /// `hidden`), name to value. The user's other attributes are left out.
    #[schema(value_type = HashMap<String, String>)]
    pub(crate) attributes: std::collections::BTreeMap<String, String>,
    /// How many of the user's attributes were left out.
    pub(crate) withheld: usize,
}

impl UserAttributes {
    /// The answer of a read: made of what the policy's one filter let through, and
    /// nothing else.
    fn of(username: String, visible: &Visible) -> Self {
        Self {
            username,
            attributes: visible.attributes().clone(),
            withheld: visible.withheld(),
        }
    }
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        crate::http::resource::resource(
            "/pools/{pool_id}/users/{username}/attributes",
            "GET, PATCH",
        )
        .route(web::get().to(read_attributes))
        .route(web::patch().to(update_attributes)),
    );
}

/// Read a user's attributes, as far as the policy lets this token see them.
///
/// Only the attributes that some applicable role may `view` (and the policy does not
/// `hide`) are returned; `withheld` counts the others. `update` and `verify` grants do
/// not imply `view`. Roles' `pools` and `target` conditions apply as for updates: a
/// tenant admin reads only its own tenant's users. The `ETag` header tags what was
/// returned: send it as `If-Match` with a `PATCH` to write only if the user has not
/// changed since.
///
/// Every read is audited (the names returned, never their values) before the answer is
/// sent: a 503 means the audit log could not be written, and nothing was disclosed.
#[utoipa::path(
    get,
    path = "/pools/{pool_id}/users/{username}/attributes",
    operation_id = "readUserAttributes",
    tag = "attributes",
    params(UserPath),
    responses(
        (status = 200, description = "The attributes the caller may view.", body = UserAttributes,
            headers(("ETag" = String, description = "The entity tag of the attributes returned: send it as `If-Match` on a `PATCH`."))),
        (status = 401, description = "The token is missing or invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No role lets this token read this user (no applicable role, or its `target` conditions do not hold). `denied` names the whole user (`*`) with the code. Nothing was read.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user or the pool does not exist (only for a caller with a role in this pool).", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`pool_id` or `username` breaks the input rules.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Throttled, by Cognito, by attrgate's read budget, or by the caller's own limit. Retry after `Retry-After` seconds.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Cognito failed.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit log cannot be written (nothing was disclosed), or the token issuer's keys are not fetched yet.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Cognito did not answer in time.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn read_attributes(
    caller: Caller,
    path: web::Path<UserPath>,
    req: HttpRequest,
    service: web::Data<UpdateService>,
) -> Result<HttpResponse, ApiError> {
    let UserPath { pool_id, username } = path.into_inner();
    let request_id = request_id(&req);
    let who = UpdateFor {
        request_id: &request_id,
        caller: &caller,
        pool_id: &pool_id,
        username: &username,
    };
    let done = service.read(&who, path_is_utf8(req.uri().path())).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, done.etag))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .json(UserAttributes::of(username, &done.visible)))
}

/// Update a user's attributes, if the policy allows every one of them.
///
/// All or nothing: each requested attribute is checked against the policy for the
/// token's roles in this pool. If any one is denied, the answer is a 403 that lists
/// every denied attribute with its reason, and **nothing is written**. Only a request
/// whose every attribute is allowed reaches Cognito (`AdminUpdateUserAttributes`).
///
/// With `?dry_run=true` the decision is made and audited as usual, but Cognito is not
/// called: use it to ask "would this be allowed?". `GET /permissions` lists what a
/// token may do without trying.
///
/// Every request that gets past authentication leaves an audit record, allowed or
/// not. A 503 means the audit log could not be written, so nothing was changed. After
/// a 504, Cognito may or may not have applied the update; sending the same request
/// again is safe.
#[utoipa::path(
    patch,
    path = "/pools/{pool_id}/users/{username}/attributes",
    operation_id = "updateUserAttributes",
    tag = "attributes",
    params(
        UserPath,
        UpdateQuery,
        ("If-Match" = Option<String>, Header, description = "Write only if the user is still as read: the `ETag` of a `GET` of this user (or `*`: the user exists). The tag covers what this token may view. A tag that no longer matches is a 412 and nothing is written. Weak tags (`W/\"…\"`) never match."),
    ),
    request_body(
        content = UpdateAttributesRequest,
        content_type = "application/json",
        description = "The attributes to set. Unknown fields are rejected (400); `application/json` only (415 otherwise); at most 16 KiB by default (413).",
        examples(
            ("change_profile" = (summary = "Change a name and a plan", value = json!({"attributes": {"given_name": "Annie", "custom:plan": "pro"}}))),
            ("verify_email" = (summary = "Mark an email verified (needs `verify: [email]`)", value = json!({"attributes": {"email_verified": "true"}}))),
            ("delete_attribute" = (summary = "Delete an attribute (empty string)", value = json!({"attributes": {"nickname": ""}, "client_metadata": {"source": "crm"}}))),
        )
    ),
    responses(
        (status = 200, description = "Every attribute was allowed and written, or would be on a dry run (`dry_run: true`).", body = UpdateAttributesResponse,
            headers(("ETag" = String, description = "Only after a conditional update (`If-Match`, not a dry run): the user's new entity tag, for the next `If-Match`."))),
        (status = 400, description = "The JSON is malformed, has an unknown field, or `attributes` is missing or empty. `errors` says what.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The token is missing, malformed, badly signed, expired, not yet valid, from an unknown issuer, or for another audience.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The policy denies at least one requested attribute. `denied` lists every one with its `code` and reason (`target_condition` or `missing_claim` when a role's conditions on the target user do not hold). **Nothing was written.**", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user or the user pool does not exist. Also on a dry run when one of the caller's roles has conditions on the target user, whose facts are then read.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Cognito: the email or phone number is already another user's alias.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the gateway's size limit (16 KiB by default).", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A pool id, username, attribute name or value breaks the input rules, or Cognito rejected the values. `errors` lists every problem. Nothing was written.", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` no longer matches the user (`code: precondition_failed`): it changed since it was read. Nothing was written; read it again.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Throttled, by Cognito or by attrgate's per-caller limit; or another change to this user held it for longer than `cognito.user_lock_wait_ms` (`code: user_busy`). Retry after `Retry-After` seconds.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Cognito failed, or refused attrgate's own AWS credentials. The body never carries AWS messages.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit log cannot be written (fail closed: Cognito was not called), or the token issuer's keys are not fetched yet. Nothing was written; retry later.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Cognito did not answer in time. The update may or may not have been applied; it is safe to send again.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub(crate) async fn update_attributes(
    caller: Caller,
    path: web::Path<UserPath>,
    req: HttpRequest,
    payload: web::Payload,
    service: web::Data<UpdateService>,
) -> Result<HttpResponse, ApiError> {
    let UserPath { pool_id, username } = path.into_inner();
    let request_id = request_id(&req);
    let who = UpdateFor {
        request_id: &request_id,
        caller: &caller,
        pool_id: &pool_id,
        username: &username,
    };
    let raw = RawUpdate {
        path_is_utf8: path_is_utf8(req.uri().path()),
        query: req.query_string(),
        content_type: req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok()),
        // A header that is not visible ASCII still makes the update conditional, on a
        // tag nothing has: 412, never an unconditional write.
        if_match: req
            .headers()
            .get(header::IF_MATCH)
            .map(|value| value.to_str().unwrap_or_default()),
        body: read_body(&req, payload, service.max_body_bytes()),
    };
    let done = service.update(&who, raw).await?;
    let mut response = HttpResponse::Ok();
    if let Some(etag) = done.etag {
        response.insert_header((header::ETAG, etag));
    }
    Ok(response.json(UpdateAttributesResponse {
        request_id,
        updated: done.updated,
        dry_run: done.dry_run,
    }))
}

/// Whether every segment of the raw path decodes to valid UTF-8.
fn path_is_utf8(path: &str) -> bool {
    path.split('/').all(|segment| {
        percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .is_ok()
    })
}

/// The body, up to `limit` bytes: a declared or actual size over it is refused unread.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| BodyError::Unreadable)?;
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
