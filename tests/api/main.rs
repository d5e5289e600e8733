//! End-to-end tests: the real application over HTTP, a real Cognito emulator (moto)
//! through the real AWS SDK, and JWKS served over real HTTP.

mod architecture;
mod attributes;
mod audit;
mod auth;
mod checkpoints;
mod cognito_local;
mod conditional;
mod crash;
mod events;
mod faults;
mod fleet;
mod hardening;
mod helpers;
mod logs;
mod openapi;
mod openssl_keys;
mod operations;
mod policy_cli;
mod policy_iam;
mod policy_lint;
mod process;
mod reads;
mod reload;
mod schema;
mod tenants;
mod upstream;
