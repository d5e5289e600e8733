//! Liveness, readiness and Prometheus metrics.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use crate::audit::AuditLog;
use crate::auth::Verifier;
use crate::metrics::Metrics;
use crate::policy_source::PolicySource;

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    pub policy_loaded: bool,
    pub policy_revision: String,
    pub audit_writable: bool,
    pub issuer_keys_fetched: bool,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the policy is loaded, the audit log is writable, and every issuer's keys were fetched.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Ready", body = Readiness),
    (status = 503, description = "Not ready", body = Readiness),
))]
pub async fn readyz(
    policy: web::Data<PolicySource>,
    audit: web::Data<AuditLog>,
    verifier: web::Data<Verifier>,
) -> HttpResponse {
    let readiness = Readiness {
        status: String::new(),
        policy_loaded: true,
        policy_revision: policy.current().revision().to_owned(),
        audit_writable: audit.check_writable().await,
        issuer_keys_fetched: verifier.keys_ready(),
    };
    let ready =
        readiness.policy_loaded && readiness.audit_writable && readiness.issuer_keys_fetched;
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
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics.render())
}
