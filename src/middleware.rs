//! The middleware every answer passes through: the `X-Request-Id` header and the
//! request id inside problem bodies, one access log line, and the request counter.
//! Depends on `error` and `metrics`; nothing in the request path depends on it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use crate::auth::request_id;
use crate::error::ApiError;
use crate::metrics::Metrics;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Runs the request, then stamps its id on the answer, logs it, and counts it.
pub(crate) async fn edge(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".into());
    let status = res.status();
    // One access line per request, inside its span (so it carries the request_id).
    tracing::info!(%route, %method, status = status.as_u16(), "request handled");
    if let Some(metrics) = metrics {
        metrics
            .http_requests
            .with_label_values(&[route.as_str(), method, status.as_str()])
            .inc();
    }
    let id = request_id(res.request());
    let mut res = with_request_id_in_problem(res, &id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(res)
}

/// A problem body is written without the request id (`ApiError` does not know it):
/// write it again with the id.
fn with_request_id_in_problem(
    res: ServiceResponse<impl MessageBody + 'static>,
    id: &str,
) -> ServiceResponse<BoxBody> {
    let body = res
        .response()
        .error()
        .and_then(|error| error.as_error::<ApiError>())
        .map(|error| error.body(id));
    match body {
        Some(body) => res.map_body(|_, _| BoxBody::new(body)),
        None => res.map_into_boxed_body(),
    }
}

/// A fixed label set: a client must not be able to mint new metric series.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}
