//! Liveness, readiness and Prometheus metrics.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::audit::AuditLog;
use crate::auth::Verifier;
use crate::events::{EventsStatus, SinkReport};
use crate::metrics::Metrics;
use crate::policy_source::PolicySource;
use crate::shared_budget::QuotaStatus;

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(healthz, readyz, metrics),
    components(schemas(Readiness, SinkReadiness))
)]
pub(crate) struct Doc;

/// Whether this instance can take requests, and why not.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    pub(crate) status: String,
    /// A hash of the policy file in force, as written to every audit record.
    pub(crate) policy_revision: String,
    /// The audit log can be written; without it, updates answer 503.
    pub(crate) audit_writable: bool,
    /// Every configured issuer's signing keys have been fetched at least once.
    pub(crate) issuer_keys_fetched: bool,
    /// Which Cognito budget this replica draws from: `local` (no `redis_url`), `shared`
    /// (Redis), or `local-fallback` (Redis does not answer; this replica keeps rate /
    /// replicas). A fallback does not make the replica unready.
    #[schema(example = "shared")]
    pub(crate) quota: String,
    /// Where the one-writer-per-user locks are held, the same Redis as the quota's:
    /// `local` (this replica only: no `redis_url`), `shared` (this replica and Redis),
    /// or `local-fallback` (Redis does not answer: replicas no longer serialise changes
    /// to one user with each other). A fallback does not make the replica unready.
    #[schema(example = "shared")]
    pub(crate) user_lock: String,
    /// Each change-event sink's progress (`events.sinks`). A sink that lags or fails
    /// does not make the replica unready: its events wait in the audit log.
    pub(crate) events: Vec<SinkReadiness>,
}

/// One change-event sink's progress.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SinkReadiness {
    #[schema(example = "crm")]
    pub(crate) name: String,
    /// `webhook` or `eventbridge`.
    #[schema(example = "webhook")]
    pub(crate) kind: String,
    /// Audit records this sink has not gone past yet (0: caught up).
    pub(crate) lag_records: u64,
    /// The `seq` of the next audit record it will consider (its cursor).
    pub(crate) next_seq: u64,
    /// Events the sink acknowledged since start-up.
    pub(crate) delivered: u64,
    /// Records that were due but had been deleted from the log before delivery.
    pub(crate) missing_records: u64,
    /// The last failure (the sink's HTTP status or the transport error), until a
    /// delivery succeeds.
    pub(crate) last_error: Option<String>,
}

impl From<SinkReport> for SinkReadiness {
    fn from(report: SinkReport) -> Self {
        Self {
            name: report.name,
            kind: report.kind.to_owned(),
            lag_records: report.lag_records,
            next_seq: report.next_seq,
            delivered: report.delivered,
            missing_records: report.missing,
            last_error: report.last_error,
        }
    }
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::http::resource::resource("/healthz", "GET").route(web::get().to(healthz)))
        .service(crate::http::resource::resource("/readyz", "GET").route(web::get().to(readyz)))
        .service(crate::http::resource::resource("/metrics", "GET").route(web::get().to(metrics)));
}

/// Liveness: the process answers.
///
/// Always 200 while the process runs; says nothing about its dependencies (see `/readyz`).
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "getLiveness",
    tag = "operations",
    responses((status = 200, description = "The process is alive.", body = Object, example = json!({"status": "ok"}))),
    security(())
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the policy is loaded, the audit log is writable, and every issuer's keys were fetched.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "getReadiness",
    tag = "operations",
    responses(
        (status = 200, description = "Ready to take requests.", body = Readiness),
        (status = 503, description = "Not ready; the fields say which condition fails.", body = Readiness),
    ),
    security(())
)]
pub(crate) async fn readyz(
    policy: web::Data<PolicySource>,
    audit: web::Data<AuditLog>,
    verifier: web::Data<Verifier>,
    quota: web::Data<QuotaStatus>,
    events: web::Data<EventsStatus>,
) -> HttpResponse {
    let readiness = Readiness {
        status: String::new(),
        policy_revision: policy.current().revision().to_owned(),
        audit_writable: audit.check_writable().await,
        issuer_keys_fetched: verifier.keys_ready(),
        quota: quota.mode().label().to_owned(),
        user_lock: quota.mode().label().to_owned(),
        events: events
            .report()
            .into_iter()
            .map(SinkReadiness::from)
            .collect(),
    };
    // The policy is always loaded: start-up fails without one, and a reload that fails
    // keeps the previous one.
    let ready = readiness.audit_writable && readiness.issuer_keys_fetched;
    let readiness = Readiness {
        status: if ready { "ready" } else { "not_ready" }.to_owned(),
        ..readiness
    };
    if ready {
        HttpResponse::Ok().json(readiness)
    } else {
        HttpResponse::ServiceUnavailable().json(readiness)
    }
}

/// Prometheus metrics in text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "getMetrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format 0.0.4.", body = String, content_type = "text/plain")),
    security(())
)]
pub(crate) async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}
