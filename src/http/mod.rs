//! The HTTP wing: routes, the `Caller` extractor, the middleware, the one error type at
//! the edge (`ApiError`, rendered as problem+json), the wire and OpenAPI types, and the
//! OpenAPI document. It translates HTTP into calls on the domain (`update`, `policy`,
//! `audit`, `cognito`) and their answers back into HTTP. Nothing outside this folder but
//! `startup` and `cli` may import it: the domain never names actix or `crate::http`
//! (checked by `tests/api/architecture.rs`).

pub(crate) mod error;
pub(crate) mod extractor;
pub(crate) mod middleware;
pub mod openapi;
pub(crate) mod routes;
pub(crate) mod wire;
