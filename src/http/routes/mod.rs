//! HTTP routes, one module per resource; each exposes `configure`.
//! Routes use auth, policy, cognito and audit; nothing here is used by them.

pub(crate) mod attributes;
pub(crate) mod health;
pub(crate) mod permissions;

use actix_web::web;

/// A resource at `path` whose other methods get 405 with `Allow: allow`.
/// The route pattern of the resource that took a request, for its access line and
/// metrics without matching the path again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoutePattern(pub(crate) &'static str);

fn resource(path: &'static str, allow: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(RoutePattern(path))
        .default_service(web::to(move || async move {
            Err::<actix_web::HttpResponse, _>(crate::http::error::ApiError::method_not_allowed(
                allow,
            ))
        }))
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(attributes::configure)
        .configure(permissions::configure)
        .configure(health::configure);
}
