//! How every route is mounted: a resource that names its own pattern (for the access
//! line and metrics, without matching the path again) and answers its other methods
//! with 405.

use actix_web::web;

use crate::http::error::ApiError;

/// The route pattern of the resource that took a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoutePattern(pub(crate) &'static str);

/// A resource at `path` whose other methods get 405 with `Allow: allow`.
pub(crate) fn resource(path: &'static str, allow: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(RoutePattern(path))
        .default_service(web::to(move || async move {
            Err::<actix_web::HttpResponse, _>(ApiError::method_not_allowed(allow))
        }))
}
