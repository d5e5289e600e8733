//! The AWS boundary: a small `UserDirectory` trait and its Cognito SDK implementation.
//! Maps SDK errors into `DirectoryError`; AWS messages never leave this module.
//! Must not depend on routes, policy or audit.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::Region;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::operation::RequestId;
use aws_sdk_cognitoidentityprovider::operation::admin_update_user_attributes::AdminUpdateUserAttributesError as UpdateError;
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use futures_util::future::BoxFuture;

use crate::config::CognitoSettings;
use crate::input::{AttributeChanges, PoolId, Username};

pub struct UpdateRequest<'a> {
    pub pool_id: &'a PoolId,
    pub username: &'a Username,
    pub attributes: &'a AttributeChanges,
    pub client_metadata: &'a BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated {
    /// Cognito's request id, for the audit log.
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} ({code})")]
pub struct DirectoryError {
    pub kind: DirectoryErrorKind,
    /// The Cognito error code, or a local label such as `timeout`; safe to audit, not to show.
    pub code: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryErrorKind {
    UserNotFound,
    PoolNotFound,
    AliasExists,
    InvalidParameter,
    Throttled,
    Timeout,
    /// Any other Cognito error, including Cognito refusing attrgate's own credentials.
    Upstream,
}

/// Where user attributes live. The SDK implementation talks to Cognito; unit tests fake it.
pub trait UserDirectory: Send + Sync {
    fn update_attributes<'a>(
        &'a self,
        request: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<Updated, DirectoryError>>;
}

/// Cognito through the AWS SDK: one client per region, built on first use.
pub struct CognitoDirectory {
    base: SdkConfig,
    settings: CognitoSettings,
    clients: RwLock<HashMap<String, Client>>,
}

impl CognitoDirectory {
    /// `base` carries credentials from the standard AWS chain (or a test's static ones).
    pub fn new(base: SdkConfig, settings: CognitoSettings) -> Self {
        Self {
            base,
            settings,
            clients: RwLock::new(HashMap::new()),
        }
    }

    pub fn client_for(&self, pool_id: &PoolId) -> Client {
        let region = self
            .settings
            .region
            .clone()
            .unwrap_or_else(|| pool_id.region().to_owned());
        if let Some(client) = self.clients.read().expect("client map lock").get(&region) {
            return client.clone();
        }
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(self.settings.timeout_seconds))
            .connect_timeout(Duration::from_secs(self.settings.timeout_seconds.min(3)))
            .build();
        let mut config = aws_sdk_cognitoidentityprovider::config::Builder::from(&self.base)
            .region(Region::new(region.clone()))
            .timeout_config(timeouts);
        if let Some(url) = &self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        let client = Client::from_conf(config.build());
        self.clients
            .write()
            .expect("client map lock")
            .entry(region)
            .or_insert(client)
            .clone()
    }
}

impl UserDirectory for CognitoDirectory {
    fn update_attributes<'a>(
        &'a self,
        request: UpdateRequest<'a>,
    ) -> BoxFuture<'a, Result<Updated, DirectoryError>> {
        Box::pin(async move {
            let attributes = request
                .attributes
                .as_map()
                .iter()
                .map(|(name, value)| AttributeType::builder().name(name).value(value).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| local_error(DirectoryErrorKind::InvalidParameter, "build_error"))?;
            let metadata = (!request.client_metadata.is_empty())
                .then(|| request.client_metadata.clone().into_iter().collect());
            let output = self
                .client_for(request.pool_id)
                .admin_update_user_attributes()
                .user_pool_id(request.pool_id.as_str())
                .username(request.username.as_str())
                .set_user_attributes(Some(attributes))
                .set_client_metadata(metadata)
                .send()
                .await
                .map_err(map_update_error)?;
            Ok(Updated {
                request_id: output.request_id().map(str::to_owned),
            })
        })
    }
}

fn local_error(kind: DirectoryErrorKind, code: &str) -> DirectoryError {
    DirectoryError {
        kind,
        code: code.to_owned(),
        request_id: None,
    }
}

fn map_update_error<R>(error: SdkError<UpdateError, R>) -> DirectoryError {
    match error {
        SdkError::ServiceError(service) => {
            let error = service.into_err();
            let kind = match &error {
                UpdateError::UserNotFoundException(_) => DirectoryErrorKind::UserNotFound,
                UpdateError::ResourceNotFoundException(_) => DirectoryErrorKind::PoolNotFound,
                UpdateError::AliasExistsException(_) => DirectoryErrorKind::AliasExists,
                UpdateError::InvalidParameterException(_)
                | UpdateError::UserLambdaValidationException(_) => {
                    DirectoryErrorKind::InvalidParameter
                }
                UpdateError::TooManyRequestsException(_) => DirectoryErrorKind::Throttled,
                _ => DirectoryErrorKind::Upstream,
            };
            DirectoryError {
                kind,
                code: error.code().unwrap_or("unknown").to_owned(),
                request_id: error.request_id().map(str::to_owned),
            }
        }
        SdkError::TimeoutError(_) => local_error(DirectoryErrorKind::Timeout, "timeout"),
        SdkError::DispatchFailure(failure) if failure.is_timeout() => {
            local_error(DirectoryErrorKind::Timeout, "timeout")
        }
        SdkError::DispatchFailure(_) => {
            local_error(DirectoryErrorKind::Upstream, "dispatch_failure")
        }
        SdkError::ResponseError(_) => local_error(DirectoryErrorKind::Upstream, "response_error"),
        _ => local_error(DirectoryErrorKind::Upstream, "sdk_error"),
    }
}
