//! attrgate: a policy-enforcing gateway in front of Cognito AdminUpdateUserAttributes.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod cognito;
pub mod config;
pub mod error;
pub mod input;
pub mod limit;
pub mod metrics;
pub mod openapi;
pub mod policy;
pub mod policy_reload;
pub mod policy_source;
pub mod routes;
pub mod schema;
pub mod schema_cache;
pub mod startup;
pub mod telemetry;
