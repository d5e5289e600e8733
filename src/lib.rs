//! attrgate: a policy-enforcing gateway in front of Cognito AdminUpdateUserAttributes.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod cognito;
pub mod config;
pub mod events;
pub mod identity;
pub mod policy;
pub mod startup;

pub use http::openapi;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

mod attribute;
mod http;
mod input;
mod limit;
mod metrics;
mod policy_reload;
mod policy_source;
mod quota;
mod report;
mod schema;
mod schema_cache;
mod shared_budget;
mod suggest;
mod telemetry;
mod update;
mod user_lock;
