//! The `Caller` extractor: a handler that takes a `Caller` only runs for a verified token.
//! Failure is a 401 problem with `WWW-Authenticate: Bearer error="invalid_token"`.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use tracing_actix_web::RequestId;

use super::error::ApiError;
use crate::auth::{AuthError, Verifier};
use crate::identity::Caller;
use crate::metrics::Metrics;

/// Why the request's token was refused (`AuthError::label`), in the request's extensions
/// for the access line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenRefused(pub(crate) &'static str);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<Verifier>>().cloned();
        let metrics = req.app_data::<web::Data<Metrics>>().cloned();
        let token = bearer_token(req);
        let req = req.clone();
        Box::pin(async move {
            let verifier = verifier.ok_or(AuthError::KeysUnavailable)?;
            let result = match token {
                Ok(Some(token)) => verifier.verify(&token).await,
                Ok(None) => Err(AuthError::Missing),
                Err(error) => Err(error),
            };
            result.map_err(|error| {
                if let Some(metrics) = &metrics {
                    metrics
                        .auth_failures
                        .with_label_values(&[error.label()])
                        .inc();
                }
                req.extensions_mut().insert(TokenRefused(error.label()));
                ApiError::from(error)
            })
        })
    }
}

/// The bearer token; `Err` when the request carries two Authorization headers, which
/// must never be resolved by taking one of them.
fn bearer_token(req: &HttpRequest) -> Result<Option<String>, AuthError> {
    if req.headers().get_all(header::AUTHORIZATION).count() > 1 {
        return Err(AuthError::DuplicateAuthorization);
    }
    Ok(single_bearer_token(req))
}

fn single_bearer_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The id tracing-actix-web gave this request (also sent back as `x-request-id`).
pub(crate) fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(ToString::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}
