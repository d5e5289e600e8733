//! `PATCH /pools/{pool_id}/users/{username}/attributes`: input rules, policy decision,
//! audit, then Cognito. Only a fully allowed request whose intent record is on disk
//! reaches Cognito; every request that reaches the handler leaves an audit record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::audit::{AuditLog, AuditRecord, DecisionRecord, Event, ValueHasher};
use crate::auth::Caller;
use crate::auth::request_id;
use crate::cognito::{DirectoryError, DirectoryErrorKind, UpdateRequest, UserDirectory};
use crate::error::{ApiError, DeniedAttribute, ErrorKind, FieldError, Problem};
use crate::input::{AttributeChanges, PoolId, Username};
use crate::limit::RateLimiter;
use crate::metrics::Metrics;
use crate::policy::{self, DecisionRequest};
use crate::policy_source::PolicySource;
use crate::schema_cache::SchemaCache;

/// The body of an attribute update. Unknown fields are rejected with a 400.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAttributesRequest {
    /// Attribute name to new value (see `attribute_map_schema` for the documented rules).
    #[schema(schema_with = attribute_map_schema)]
    pub attributes: BTreeMap<String, String>,
    /// Passed to Cognito as `ClientMetadata` (for its Lambda triggers); never stored
    /// or audited.
    #[serde(default)]
    #[schema(example = json!({"source": "crm"}))]
    pub client_metadata: BTreeMap<String, String>,
}

/// `attributes` as a client sees it: a map from attribute name to string value, with
/// the input rules that apply before the policy.
fn attribute_map_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};

    use crate::input::{MAX_ATTRIBUTES, MAX_NAME_CHARS, MAX_VALUE_CHARS};

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
                .max_length(Some(MAX_NAME_CHARS)),
        ))
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

/// The answer to an allowed update.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "request_id": "5f0c6a8e-3b1d-4c2a-9e57-2d4b8f1a7c60",
    "updated": ["custom:plan", "given_name"],
    "dry_run": false
}))]
pub struct UpdateAttributesResponse {
    /// The id of this request, as sent in `X-Request-Id` and written to the audit log.
    pub request_id: String,
    /// The attribute names written (or that would be, on a dry run), sorted.
    pub updated: Vec<String>,
    /// True when `?dry_run=true` was asked: the policy allowed every attribute, and
    /// Cognito was not called.
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UpdateQuery {
    /// `true`: decide and audit as usual, but do not call Cognito. The answer is the
    /// same 200 (with `dry_run: true`) or 403 that the real request would get from the
    /// policy; input errors are reported too, but Cognito's own checks (user exists,
    /// alias in use) are not made.
    #[serde(default)]
    pub dry_run: bool,
}

/// What the update handler needs besides the caller and the request.
pub struct AttributeService {
    pub policy: Arc<PolicySource>,
    pub audit: AuditLog,
    pub directory: Arc<dyn UserDirectory>,
    /// `None` when `cognito.validate_schema` is off.
    pub schemas: Option<SchemaCache>,
    pub hasher: ValueHasher,
    pub metrics: Arc<Metrics>,
    pub limiter: RateLimiter,
    pub max_body_bytes: usize,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/pools/{pool_id}/users/{username}/attributes",
        web::patch().to(update_attributes),
    );
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
        ("pool_id" = String, Path, description = "Cognito user pool id: `<region>_<id>` (`^[\\w-]+_[0-9a-zA-Z]+$`), at most 55 characters. The region is the part before `_` unless the gateway's config fixes one.", example = "us-east-1_AbC123"),
        ("username" = String, Path, description = "Cognito username: 1 to 128 characters, no control characters.", example = "ann"),
        UpdateQuery,
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
        (status = 200, description = "Every attribute was allowed and written, or would be on a dry run (`dry_run: true`).", body = UpdateAttributesResponse),
        (status = 400, description = "The JSON is malformed, has an unknown field, or `attributes` is missing or empty. `errors` says what.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The token is missing, malformed, badly signed, expired, not yet valid, from an unknown issuer, or for another audience.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The policy denies at least one requested attribute. `denied` lists every one with its reason. **Nothing was written.**", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user or the user pool does not exist.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Cognito: the email or phone number is already another user's alias.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the gateway's size limit (16 KiB by default).", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A pool id, username, attribute name or value breaks the input rules, or Cognito rejected the values. `errors` lists every problem. Nothing was written.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Throttled, by Cognito or by attrgate's per-caller limit. Retry after `Retry-After` seconds.", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Cognito failed, or refused attrgate's own AWS credentials. The body never carries AWS messages.", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit log cannot be written (fail closed: Cognito was not called), or the token issuer's keys are not fetched yet. Nothing was written; retry later.", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Cognito did not answer in time. The update may or may not have been applied; it is safe to send again.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearerAuth" = []))
)]
pub async fn update_attributes(
    caller: Caller,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
    service: web::Data<AttributeService>,
) -> Result<HttpResponse, ApiError> {
    let (pool_id, username) = path.into_inner();
    let request_id = request_id(&req);
    let mut record = AuditRecord::new(&request_id, Event::Request, &caller, &pool_id, &username);
    record.policy_revision = service.policy.current().revision().to_owned();
    let mut update = Update {
        service: &service,
        request_id,
        record,
    };
    update
        .run(&caller, &pool_id, &username, &req, payload)
        .await
}

struct Update<'a> {
    service: &'a AttributeService,
    request_id: String,
    record: AuditRecord,
}

impl Update<'_> {
    async fn run(
        &mut self,
        caller: &Caller,
        pool_id: &str,
        username: &str,
        req: &HttpRequest,
        payload: web::Payload,
    ) -> Result<HttpResponse, ApiError> {
        if let Err(retry_after_secs) = self.service.limiter.check(&caller.iss, &caller.sub) {
            let error = self.error(
                ErrorKind::TooManyRequests { retry_after_secs },
                "too many requests from this caller",
            );
            return self.reject(error, "throttled").await;
        }
        let query = match web::Query::<UpdateQuery>::from_query(req.query_string()) {
            Ok(query) => query.into_inner(),
            Err(error) => {
                let errors = vec![FieldError::new("query", error.to_string())];
                return self
                    .invalid(ErrorKind::BadRequest(errors), "invalid query string")
                    .await;
            }
        };
        self.record.dry_run = query.dry_run;
        if !is_json(req) {
            return self
                .invalid(
                    ErrorKind::UnsupportedMediaType,
                    "the body must be application/json",
                )
                .await;
        }
        let body = match read_body(req, payload, self.service.max_body_bytes).await {
            Ok(body) => body,
            Err(kind) => {
                let detail = match kind {
                    ErrorKind::PayloadTooLarge => {
                        format!("the body is over {} bytes", self.service.max_body_bytes)
                    }
                    _ => "the body could not be read".to_owned(),
                };
                return self.invalid(kind, &detail).await;
            }
        };
        let request: UpdateAttributesRequest = match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(error) => {
                // The full serde message may quote a value: it goes to the caller only.
                let errors = vec![FieldError::new("body", error.to_string())];
                self.record.errors = vec![FieldError::new(
                    "body",
                    format!(
                        "{:?} JSON error at line {} column {}",
                        error.classify(),
                        error.line(),
                        error.column()
                    ),
                )];
                return self
                    .reject(
                        self.error(
                            ErrorKind::BadRequest(errors),
                            "the body is not a valid update request",
                        ),
                        "invalid",
                    )
                    .await;
            }
        };
        self.record.attributes = request.attributes.keys().cloned().collect();
        self.record.values = self.service.hasher.hash_all(&request.attributes);
        if request.attributes.is_empty() {
            let errors = vec![FieldError::new(
                "attributes",
                "must name at least one attribute",
            )];
            return self
                .invalid(ErrorKind::BadRequest(errors), "no attributes to update")
                .await;
        }

        let (pool, user, changes) = match parse_input(pool_id, username, request.attributes) {
            Ok(parsed) => parsed,
            Err(errors) => {
                let detail = format!("{} input rule(s) broken; nothing was written", errors.len());
                return self
                    .invalid(ErrorKind::Unprocessable(errors), &detail)
                    .await;
            }
        };
        let policy = self.service.policy.current();
        self.record.policy_revision = policy.revision().to_owned();
        let decision = policy::decide(
            &policy,
            &DecisionRequest {
                roles: &caller.roles,
                pool_id: pool.as_str(),
                attributes: changes.as_map(),
            },
        );
        // The pool's schema is asked only for callers with a role in this pool: anyone
        // else is denied by the policy anyway, and must learn nothing about the pool (nor
        // make attrgate spend Cognito's DescribeUserPool quota on guessed pool ids).
        if let Some(schemas) = self
            .service
            .schemas
            .as_ref()
            .filter(|_| !decision.applicable_roles.is_empty())
        {
            match schemas.check(&pool, &changes).await {
                Ok(Ok(())) => {}
                Ok(Err(errors)) => {
                    let detail = format!(
                        "{} attribute(s) the pool does not have or cannot change; nothing was written",
                        errors.len()
                    );
                    return self
                        .invalid(ErrorKind::Unprocessable(errors), &detail)
                        .await;
                }
                Err(error) => {
                    let api_error = self.upstream_error(&error);
                    return self.reject(api_error, &error.code).await;
                }
            }
        }

        let denied: Vec<DeniedAttribute> = decision
            .denied
            .iter()
            .map(|d| DeniedAttribute {
                attribute: d.attribute.clone(),
                reason: d.reason.clone(),
            })
            .collect();
        self.record.decision = Some(DecisionRecord {
            allowed: decision.is_allowed(),
            applicable_roles: decision.applicable_roles.clone(),
            denied: denied.clone(),
        });
        if !decision.is_allowed() {
            let detail = format!(
                "the policy denies {} of {} attribute(s); nothing was written",
                denied.len(),
                changes.as_map().len()
            );
            return self
                .reject(self.error(ErrorKind::Forbidden(denied), &detail), "denied")
                .await;
        }

        let updated = changes.names();
        if query.dry_run {
            self.commit_record("dry_run").await?;
            return Ok(self.ok(updated, true));
        }

        self.record.event = Event::Intent;
        self.commit_record("pending").await?;
        let started = Instant::now();
        let result = self
            .service
            .directory
            .update_attributes(UpdateRequest {
                pool_id: &pool,
                username: &user,
                attributes: &changes,
                client_metadata: &request.client_metadata,
            })
            .await;
        let label = match &result {
            Ok(_) => "ok".to_owned(),
            Err(error) => error.code.clone(),
        };
        self.service
            .metrics
            .cognito_seconds
            .with_label_values(&["AdminUpdateUserAttributes", &label])
            .observe(started.elapsed().as_secs_f64());

        self.record.event = Event::Outcome;
        self.record.time = crate::audit::now_rfc3339();
        match result {
            Ok(done) => {
                self.record.cognito_request_id = done.request_id;
                // Cognito has changed: the answer must say so even if this record fails.
                if let Err(error) = self.commit_record("updated").await {
                    tracing::error!(%error, "the outcome record of an applied update was not written");
                }
                Ok(self.ok(updated, false))
            }
            Err(error) => {
                self.record.cognito_request_id = error.request_id.clone();
                let api_error = self.upstream_error(&error);
                if let Err(audit_error) = self.commit_record(&error.code).await {
                    tracing::error!(%audit_error, "the outcome record of a failed update was not written");
                }
                Err(api_error)
            }
        }
    }

    fn error(&self, kind: ErrorKind, detail: &str) -> ApiError {
        ApiError::new(kind, detail, &self.request_id)
    }

    fn ok(&self, updated: Vec<String>, dry_run: bool) -> HttpResponse {
        HttpResponse::Ok().json(UpdateAttributesResponse {
            request_id: self.request_id.clone(),
            updated,
            dry_run,
        })
    }

    async fn invalid(&mut self, kind: ErrorKind, detail: &str) -> Result<HttpResponse, ApiError> {
        if let ErrorKind::BadRequest(errors) | ErrorKind::Unprocessable(errors) = &kind {
            self.record.errors = errors.clone();
        }
        let error = self.error(kind, detail);
        self.reject(error, "invalid").await
    }

    /// Records a refusal, then answers with it; if the record cannot be written, 503.
    async fn reject(&mut self, error: ApiError, outcome: &str) -> Result<HttpResponse, ApiError> {
        self.commit_record(outcome).await?;
        Err(error)
    }

    /// Writes the audit record durably, or fails closed with 503.
    async fn commit_record(&mut self, outcome: &str) -> Result<(), ApiError> {
        self.record.outcome = outcome.to_owned();
        if self.record.event != Event::Intent {
            self.service
                .metrics
                .decisions
                .with_label_values(&[outcome])
                .inc();
        }
        self.service
            .audit
            .append(&self.record)
            .await
            .map_err(|error| {
                tracing::error!(%error, "audit write failed; refusing the request");
                self.error(
                    ErrorKind::ServiceUnavailable,
                    "the audit log cannot be written, so nothing was changed; retry later",
                )
            })
    }

    fn upstream_error(&self, error: &DirectoryError) -> ApiError {
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
            DirectoryErrorKind::Timeout => (
                ErrorKind::GatewayTimeout,
                "Cognito did not answer in time".to_owned(),
            ),
            DirectoryErrorKind::Upstream => (
                ErrorKind::BadGateway,
                "Cognito could not complete the request; the audit log has the details".to_owned(),
            ),
        };
        self.error(kind, &detail)
    }
}

fn parse_input(
    pool_id: &str,
    username: &str,
    attributes: BTreeMap<String, String>,
) -> Result<(PoolId, Username, AttributeChanges), Vec<FieldError>> {
    let pool = PoolId::parse(pool_id);
    let user = Username::parse(username);
    let changes = AttributeChanges::parse(attributes);
    match (pool, user, changes) {
        (Ok(pool), Ok(user), Ok(changes)) => Ok((pool, user, changes)),
        (pool, user, changes) => {
            let mut errors: Vec<FieldError> =
                [pool.err(), user.err()].into_iter().flatten().collect();
            errors.extend(changes.err().unwrap_or_default());
            Err(errors)
        }
    }
}

fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ErrorKind> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ErrorKind::PayloadTooLarge);
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ErrorKind::BadRequest(vec![FieldError::new("body", "the body could not be read")])
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ErrorKind::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
