//! End-to-end tests: the real application over HTTP, a real Cognito emulator (moto)
//! through the real AWS SDK, and JWKS served over real HTTP.

mod attributes;
mod audit;
mod auth;
mod crash;
mod helpers;
mod openapi;
mod operations;
mod policy_cli;
mod reload;
mod schema;
