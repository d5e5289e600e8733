//! The middleware every answer passes through: the request's tracing span (its target
//! without query values), the `X-Request-Id` header and the request id inside problem
//! bodies, one access log line (the only log line of a request that ends well or is
//! refused), and the request counter.
//! Depends on `error` and `metrics`; nothing in the request path depends on it.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::Payload;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, web};
use futures_util::{Stream, StreamExt};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};

use super::extractor::{TokenRefused, request_id};
use crate::http::error::ApiError;
use crate::http::routes::RoutePattern;
use crate::metrics::Metrics;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The most of an unread request body read after the answer, so that the connection can
/// be kept; past it, or past `DRAIN_TIME`, the connection closes instead.
const DRAIN_LIMIT: usize = 64 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Runs the request, reads what the handler left of its body (a refusal before the body
/// is read would otherwise close the connection, and the client would pay for a new
/// one), then stamps the request id on the answer, logs it, and counts it.
pub(crate) async fn edge(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let body = Rc::new(RefCell::new(req.take_payload()));
    let shared: Pin<Box<dyn Stream<Item = _>>> = Box::pin(SharedBody(body.clone()));
    req.set_payload(Payload::from(shared));
    let res = next.call(req).await?;
    let rest = Payload::take(&mut body.borrow_mut());
    drain(rest).await;
    let request = res.request();
    // Our resources name their pattern; anything else (Swagger UI) is matched again.
    let other;
    let route = match request.app_data::<RoutePattern>() {
        Some(RoutePattern(pattern)) => *pattern,
        None => {
            other = request.match_pattern();
            other.as_deref().unwrap_or("unmatched")
        }
    };
    let status = res.status();
    let target = redacted_target(request.uri());
    // One access line per request, inside its span (so it carries the request_id); a
    // refused token's reason is on it rather than on a line of its own.
    let refused = request.extensions().get::<TokenRefused>().copied();
    match refused {
        Some(TokenRefused(reason)) => tracing::info!(
            %method, %route, %target, status = status.as_u16(), token_refused = reason,
            "request handled"
        ),
        None => tracing::info!(
            %method, %route, %target, status = status.as_u16(), "request handled"
        ),
    }
    if let Some(metrics) = metrics {
        metrics
            .http_requests
            .with_label_values(&[route, method, status.as_str()])
            .inc();
    }
    let id = request_id(res.request());
    let mut res = with_request_id_in_problem(res, &id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(res)
}

/// The request body, reachable from `edge` while the handler reads it.
struct SharedBody(Rc<RefCell<Payload>>);

impl Stream for SharedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.borrow_mut().poll_next_unpin(cx)
    }
}

/// Reads and drops what is left of a body: at most `DRAIN_LIMIT` bytes, for at most
/// `DRAIN_TIME`.
async fn drain(mut rest: Payload) {
    let read = async {
        let mut seen = 0;
        while let Some(Ok(chunk)) = rest.next().await {
            seen += chunk.len();
            if seen > DRAIN_LIMIT {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
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

/// The root span of every request: its request id, and nothing else, so that every line
/// logged inside the request carries the id at little cost (each line parses the span's
/// fields again). The method, route, target and status are on the access line, where
/// the target is the path and the query's parameter names (`?access_token&dry_run`),
/// never their values; no user agent. Nothing is recorded into the span afterwards, nor
/// a second line written for an error answer.
pub(crate) struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!("HTTP request", request_id = %request_id)
    }

    fn on_request_end<B: MessageBody>(_span: Span, _outcome: &Result<ServiceResponse<B>, Error>) {}
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
