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

/// The body of an attribute update. Unknown fields are rejected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAttributesRequest {
    /// Attribute name to new value; at least one entry, at most 50. An empty string
    /// deletes the attribute (Cognito semantics) and counts as a write.
    #[schema(example = json!({"given_name": "Ann", "custom:plan": "pro"}))]
    pub attributes: BTreeMap<String, String>,
    /// Passed to Cognito as `ClientMetadata` (for Lambda triggers); never stored.
    #[serde(default)]
    pub client_metadata: BTreeMap<String, String>,
}

/// The answer to an allowed update.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UpdateAttributesResponse {
    /// The id of this request, as written to the audit log.
    pub request_id: String,
    /// The attribute names written (or that would be, on a dry run), sorted.
    pub updated: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UpdateQuery {
    /// Decide and audit as usual, but do not call Cognito.
    #[serde(default)]
    pub dry_run: bool,
}

/// What the update handler needs besides the caller and the request.
pub struct AttributeService {
    pub policy: Arc<PolicySource>,
    pub audit: AuditLog,
    pub directory: Arc<dyn UserDirectory>,
    pub hasher: ValueHasher,
    pub metrics: Arc<Metrics>,
    pub limiter: RateLimiter,
    pub max_body_bytes: usize,
}

/// Update a user's attributes, if the policy allows every one of them.
///
/// The request is all or nothing: if the policy denies any attribute the answer is 403,
/// it lists every denied attribute, and nothing is written. Every request is audited.
#[utoipa::path(
    patch,
    path = "/pools/{pool_id}/users/{username}/attributes",
    operation_id = "updateUserAttributes",
    tag = "attributes",
    params(
        ("pool_id" = String, Path, description = "Cognito user pool id, e.g. us-east-1_AbC123"),
        ("username" = String, Path, description = "Cognito username (1 to 128 characters)"),
        UpdateQuery,
    ),
    request_body(content = UpdateAttributesRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Every attribute was allowed and written (or would be, on a dry run)", body = UpdateAttributesResponse),
        (status = 400, description = "Malformed JSON, an unknown field, or no attributes", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The policy denied at least one attribute; nothing was written", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The user or the pool does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Cognito: the email or phone number is another user's alias", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A name or value breaks Cognito's rules", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Throttled by Cognito or by attrgate; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Cognito failed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The audit log cannot be written, or the service is not ready; nothing was written", body = Problem, content_type = "application/problem+json"),
        (status = 504, description = "Cognito did not answer in time", body = Problem, content_type = "application/problem+json"),
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
    let mut update = Update {
        service: &service,
        request_id: request_id(&req),
        record: AuditRecord::new("", Event::Request, &caller, &pool_id, &username),
    };
    update.record.request_id = update.request_id.clone();
    update.record.policy_revision = service.policy.current().revision().to_owned();
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
                let detail = format!("the body is over {} bytes", self.service.max_body_bytes);
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
