//! The middleware every answer passes through: the request's tracing span (its target
//! without query values), the `X-Request-Id` header and the request id inside problem
//! bodies, one access log line, and the request counter.
//! Depends on `error` and `metrics`; nothing in the request path depends on it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

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

/// The root span of every request, as tracing-actix-web's default but without what a
/// client may put secrets in: the target is the path and the query's parameter names
/// (`?access_token&dry_run`), never their values; no user agent.
pub(crate) struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %method_label(request.method()),
            http.route = %route,
            http.target = %redacted_target(request.uri()),
            http.status_code = tracing::field::Empty,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// The path, and the query's parameter names only. A name that does not look like a
/// parameter name (a bare token, say) is shown as `…`.
fn redacted_target(uri: &actix_web::http::Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query().filter(|q| !q.is_empty()) else {
        return path.to_owned();
    };
    let names: Vec<&str> = query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(name, _)| name))
        .map(|name| {
            let plain = name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            if plain { name } else { "…" }
        })
        .collect();
    format!("{path}?{}", names.join("&"))
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

#[cfg(test)]
mod tests {
    use super::redacted_target;

    #[test]
    fn a_logged_target_keeps_the_path_and_parameter_names_but_never_values() {
        let table = [
            ("/a/b", "/a/b"),
            ("/a?dry_run=true", "/a?dry_run"),
            (
                "/a?access_token=eyJhbGciOi.secret.sig&dry_run=1",
                "/a?access_token&dry_run",
            ),
            ("/a?eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "/a?…"),
            ("/a?", "/a"),
        ];
        for (uri, logged) in table {
            let uri: actix_web::http::Uri = uri.parse().unwrap();
            assert_eq!(redacted_target(&uri), logged);
        }
    }
}
