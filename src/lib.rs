//! attrgate: a policy-enforcing gateway in front of Cognito AdminUpdateUserAttributes.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod openapi;
pub mod policy;
pub mod startup;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

mod attribute;
mod cognito;
mod error;
mod input;
mod limit;
mod metrics;
mod middleware;
mod policy_reload;
mod policy_source;
mod quota;
mod routes;
mod schema;
mod schema_cache;
mod shared_budget;
mod suggest;
mod telemetry;
mod update;
mod wire;
