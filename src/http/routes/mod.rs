//! HTTP routes, one module per resource; each exposes `configure`.
//! Routes use auth, policy, cognito and audit; nothing here is used by them. Each
//! resource is made with `http::resource::resource`.

pub(crate) mod attributes;
pub(crate) mod health;
pub(crate) mod permissions;

use actix_web::web;

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(attributes::configure)
        .configure(permissions::configure)
        .configure(health::configure);
}
