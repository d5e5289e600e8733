//! HTTP routes, one module per resource; each exposes `configure`.
//! Routes use auth, policy, cognito and audit; nothing here is used by them.

pub mod attributes;
pub mod health;
pub mod permissions;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(attributes::configure)
        .configure(permissions::configure)
        .configure(health::configure);
}
