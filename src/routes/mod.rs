//! HTTP routes, one module per resource; each exposes `configure`.
//! Routes use auth, policy, cognito and audit; nothing here is used by them.

pub mod attributes;
pub mod health;
pub mod permissions;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/pools/{pool_id}/users/{username}/attributes",
        web::patch().to(attributes::update_attributes),
    )
    .route("/permissions", web::get().to(permissions::get_permissions))
    .route("/healthz", web::get().to(health::healthz))
    .route("/readyz", web::get().to(health::readyz))
    .route("/metrics", web::get().to(health::metrics));
}
