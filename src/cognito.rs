//! The AWS boundary: small traits, `SchemaReader` (the pool's schema), `UserReader`
//! (a target user's attributes and groups) and `UserWriter` (the update), and their
//! Cognito SDK implementation. Maps SDK errors into
//! `DirectoryError`; AWS messages never leave this module. Every call is timed here.
//! Must not depend on the HTTP wing or the update service; it takes `audit::WritePermit`
//! as the one value an update requires.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::{Region, StalledStreamProtectionConfig};
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::operation::RequestId;
use aws_sdk_cognitoidentityprovider::operation::admin_get_user::AdminGetUserError as GetUserError;
use aws_sdk_cognitoidentityprovider::operation::admin_list_groups_for_user::AdminListGroupsForUserError as ListGroupsError;
use aws_sdk_cognitoidentityprovider::operation::admin_update_user_attributes::AdminUpdateUserAttributesError as UpdateError;
use aws_sdk_cognitoidentityprovider::operation::describe_user_pool::DescribeUserPoolError as DescribeError;
use aws_sdk_cognitoidentityprovider::types::AttributeType;
use futures_util::future::BoxFuture;
use prometheus::HistogramVec;

use crate::audit::WritePermit;
use crate::config::CognitoSettings;
use crate::input::{PoolId, Username};
use crate::quota::{Category, QuotaGuard};
use crate::schema::{PoolSchema, SchemaAttribute};

/// At most this many regions keep a cached SDK client.
const MAX_CACHED_REGIONS: usize = 64;

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
    /// attrgate's own budget of Cognito calls is spent; nothing was sent.
    OverBudget {
        retry_after_secs: u64,
    },
    Timeout,
    /// Any other Cognito error, including Cognito refusing attrgate's own credentials.
    Upstream,
}

/// Reads a pool's attribute schema. The SDK implementation talks to Cognito; unit
/// tests fake it.
pub(crate) trait SchemaReader: Send + Sync {
    /// The pool's attribute schema (DescribeUserPool); `PoolNotFound` if there is no such pool.
    fn describe_pool<'a>(
        &'a self,
        pool_id: &'a PoolId,
    ) -> BoxFuture<'a, Result<PoolSchema, DirectoryError>>;
}

/// Reads what Cognito has now for a target user, for the policy's `target` conditions.
pub(crate) trait UserReader: Send + Sync {
    /// The user's attributes (AdminGetUser); `UserNotFound` if there is no such user.
    fn user_attributes<'a>(
        &'a self,
        pool_id: &'a PoolId,
        username: &'a Username,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, DirectoryError>>;

    /// The names of the user's groups (AdminListGroupsForUser, every page).
    fn user_groups<'a>(
        &'a self,
        pool_id: &'a PoolId,
        username: &'a Username,
    ) -> BoxFuture<'a, Result<Vec<String>, DirectoryError>>;
}

/// Writes a user's attributes: only with a [`WritePermit`], which holds what the policy
/// allowed and proves its intent record durable, and which the write consumes.
pub trait UserWriter: Send + Sync {
    /// AdminUpdateUserAttributes of the permit's changes, to the permit's user.
    fn update_attributes<'a>(
        &'a self,
        permit: WritePermit,
        client_metadata: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Updated, DirectoryError>>;
}

/// Cognito through the AWS SDK: one client per region, built on first use.
pub(crate) struct CognitoDirectory {
    base: SdkConfig,
    settings: CognitoSettings,
    clients: RwLock<HashMap<String, Client>>,
    /// Cognito call latency by operation and result, when metrics are kept.
    seconds: Option<HistogramVec>,
    /// attrgate's own budget, in front of every call; `None` for the CLI's one-off calls.
    quota: Option<QuotaGuard>,
}

impl CognitoDirectory {
    /// `base` carries credentials from the standard AWS chain (or a test's static ones).
    pub(crate) fn new(base: SdkConfig, settings: CognitoSettings) -> Self {
        Self {
            base,
            settings,
            clients: RwLock::new(HashMap::new()),
            seconds: None,
            quota: None,
        }
    }

    /// Puts every call behind `quota`.
    #[must_use]
    pub(crate) fn budgeted(mut self, quota: QuotaGuard) -> Self {
        self.quota = Some(quota);
        self
    }

    /// The region attrgate calls for `pool`.
    fn region_of<'p>(&'p self, pool: &'p PoolId) -> &'p str {
        self.settings.region.as_deref().unwrap_or(pool.region())
    }

    /// Times every call in `seconds` (labels: operation, result).
    #[must_use]
    pub(crate) fn timed_by(mut self, seconds: HistogramVec) -> Self {
        self.seconds = Some(seconds);
        self
    }

    /// Takes one call from the budget, or refuses with the wait.
    async fn spend(&self, category: Category, pool: &PoolId) -> Result<(), DirectoryError> {
        match &self.quota {
            Some(quota) => {
                quota
                    .take(category, self.region_of(pool))
                    .await
                    .map_err(|retry_after_secs| {
                        local_error(
                            DirectoryErrorKind::OverBudget { retry_after_secs },
                            "quota_exhausted",
                        )
                    })
            }
            None => Ok(()),
        }
    }

    /// Runs one Cognito call if the budget allows it, and records how long it took and
    /// how it ended.
    async fn timed<T>(
        &self,
        operation: &'static str,
        (category, pool): (Category, &PoolId),
        call: impl Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        self.spend(category, pool).await?;
        let started = Instant::now();
        let result = call.await;
        if let Some(seconds) = &self.seconds {
            let label = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
            seconds
                .with_label_values(&[operation, label])
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }

    fn client_for(&self, pool_id: &PoolId) -> Client {
        let region = self.region_of(pool_id).to_owned();
        if let Some(client) = self.clients.read().expect("client map lock").get(&region) {
            return client.clone();
        }
        let timeouts = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(self.settings.timeout_seconds))
            .connect_timeout(Duration::from_secs(self.settings.timeout_seconds.min(3)))
            .build();
        let mut config = aws_sdk_cognitoidentityprovider::config::Builder::from(&self.base)
            .region(Region::new(region.clone()))
            .timeout_config(timeouts)
            // The operation timeout bounds a stalled call; the SDK's own throughput
            // check on every body costs more CPU per call than it adds here.
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
        if let Some(url) = &self.settings.endpoint_url {
            config = config.endpoint_url(url);
        }
        let client = Client::from_conf(config.build());
        let mut clients = self.clients.write().expect("client map lock");
        // The region comes from the caller's pool id: keep the map bounded. Past the cap a
        // client is built for the one call (real AWS has far fewer regions than this).
        if clients.len() >= MAX_CACHED_REGIONS && !clients.contains_key(&region) {
            return client;
        }
        clients.entry(region).or_insert(client).clone()
    }
}

impl UserWriter for CognitoDirectory {
    fn update_attributes<'a>(
        &'a self,
        permit: WritePermit,
        client_metadata: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Updated, DirectoryError>> {
        Box::pin(async move {
            let budget = (Category::UserUpdate, permit.pool_id());
            self.timed(
                "AdminUpdateUserAttributes",
                budget,
                self.send_update(&permit, client_metadata),
            )
            .await
        })
    }
}

impl CognitoDirectory {
    /// The AdminUpdateUserAttributes call of one permit.
    async fn send_update(
        &self,
        permit: &WritePermit,
        client_metadata: &BTreeMap<String, String>,
    ) -> Result<Updated, DirectoryError> {
        {
            let attributes = permit
                .changes()
                .as_map()
                .iter()
                .map(|(name, value)| AttributeType::builder().name(name).value(value).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| local_error(DirectoryErrorKind::InvalidParameter, "build_error"))?;
            let metadata = (!client_metadata.is_empty())
                .then(|| client_metadata.clone().into_iter().collect());
            let output = self
                .client_for(permit.pool_id())
                .admin_update_user_attributes()
                .user_pool_id(permit.pool_id().as_str())
                .username(permit.username().as_str())
                .set_user_attributes(Some(attributes))
                .set_client_metadata(metadata)
                .send()
                .await
                .map_err(|error| map_sdk_error(error, update_error_kind))?;
            Ok(Updated {
                request_id: output.request_id().map(str::to_owned),
            })
        }
    }
}

/// The most pages of groups read for one user (60 groups a page).
const MAX_GROUP_PAGES: usize = 10;

impl UserReader for CognitoDirectory {
    fn user_attributes<'a>(
        &'a self,
        pool_id: &'a PoolId,
        username: &'a Username,
    ) -> BoxFuture<'a, Result<BTreeMap<String, String>, DirectoryError>> {
        Box::pin(
            self.timed("AdminGetUser", (Category::UserRead, pool_id), async move {
                let output = self
                    .client_for(pool_id)
                    .admin_get_user()
                    .user_pool_id(pool_id.as_str())
                    .username(username.as_str())
                    .send()
                    .await
                    .map_err(|error| map_sdk_error(error, get_user_error_kind))?;
                Ok(output
                    .user_attributes()
                    .iter()
                    .filter_map(|attribute| {
                        Some((attribute.name().to_owned(), attribute.value()?.to_owned()))
                    })
                    .collect())
            }),
        )
    }

    fn user_groups<'a>(
        &'a self,
        pool_id: &'a PoolId,
        username: &'a Username,
    ) -> BoxFuture<'a, Result<Vec<String>, DirectoryError>> {
        let budget = (Category::UserRead, pool_id);
        Box::pin(self.timed("AdminListGroupsForUser", budget, async move {
            let mut groups = Vec::new();
            let mut next_token = None;
            for page in 0..MAX_GROUP_PAGES {
                // The first page was paid for by `timed`; every further one is a call too.
                if page > 0 {
                    self.spend(Category::UserRead, pool_id).await?;
                }
                let output = self
                    .client_for(pool_id)
                    .admin_list_groups_for_user()
                    .user_pool_id(pool_id.as_str())
                    .username(username.as_str())
                    .limit(60)
                    .set_next_token(next_token)
                    .send()
                    .await
                    .map_err(|error| map_sdk_error(error, list_groups_error_kind))?;
                groups.extend(
                    output
                        .groups()
                        .iter()
                        .filter_map(|group| group.group_name().map(str::to_owned)),
                );
                next_token = output.next_token().map(str::to_owned);
                if next_token.is_none() {
                    return Ok(groups);
                }
            }
            // More groups than attrgate reads: fail closed rather than decide on a part.
            Err(local_error(DirectoryErrorKind::Upstream, "too_many_groups"))
        }))
    }
}

impl SchemaReader for CognitoDirectory {
    fn describe_pool<'a>(
        &'a self,
        pool_id: &'a PoolId,
    ) -> BoxFuture<'a, Result<PoolSchema, DirectoryError>> {
        Box::pin(self.timed(
            "DescribeUserPool",
            (Category::UserRead, pool_id),
            async move {
                let output = self
                    .client_for(pool_id)
                    .describe_user_pool()
                    .user_pool_id(pool_id.as_str())
                    .send()
                    .await
                    .map_err(|error| map_sdk_error(error, describe_error_kind))?;
                let attributes = output
                    .user_pool()
                    .map(|pool| pool.schema_attributes())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|attribute| {
                        Some(SchemaAttribute {
                            name: attribute.name()?.to_owned(),
                            // Cognito's default for an attribute that does not say is mutable.
                            mutable: attribute.mutable().unwrap_or(true),
                        })
                    })
                    .collect();
                Ok(PoolSchema::new(attributes))
            },
        ))
    }
}

fn local_error(kind: DirectoryErrorKind, code: &str) -> DirectoryError {
    DirectoryError {
        kind,
        code: code.to_owned(),
        request_id: None,
    }
}

/// What cognito-local (an emulator) says for AdminUpdateUserAttributes on an unknown
/// user, where Cognito says `UserNotFoundException`.
const EMULATOR_NO_SUCH_USER: &str = "User not authorized";

fn update_error_kind(error: &UpdateError) -> DirectoryErrorKind {
    match error {
        UpdateError::UserNotFoundException(_) => DirectoryErrorKind::UserNotFound,
        // Only that exact message: any other NotAuthorizedException (Cognito refusing
        // attrgate itself) stays a 502.
        UpdateError::NotAuthorizedException(refused)
            if refused.message() == Some(EMULATOR_NO_SUCH_USER) =>
        {
            DirectoryErrorKind::UserNotFound
        }
        UpdateError::ResourceNotFoundException(_) => DirectoryErrorKind::PoolNotFound,
        UpdateError::AliasExistsException(_) => DirectoryErrorKind::AliasExists,
        UpdateError::InvalidParameterException(_)
        | UpdateError::UserLambdaValidationException(_) => DirectoryErrorKind::InvalidParameter,
        UpdateError::TooManyRequestsException(_) => DirectoryErrorKind::Throttled,
        _ => DirectoryErrorKind::Upstream,
    }
}

fn get_user_error_kind(error: &GetUserError) -> DirectoryErrorKind {
    match error {
        GetUserError::UserNotFoundException(_) => DirectoryErrorKind::UserNotFound,
        GetUserError::ResourceNotFoundException(_) => DirectoryErrorKind::PoolNotFound,
        GetUserError::TooManyRequestsException(_) => DirectoryErrorKind::Throttled,
        _ => DirectoryErrorKind::Upstream,
    }
}

fn list_groups_error_kind(error: &ListGroupsError) -> DirectoryErrorKind {
    match error {
        ListGroupsError::UserNotFoundException(_) => DirectoryErrorKind::UserNotFound,
        ListGroupsError::ResourceNotFoundException(_) => DirectoryErrorKind::PoolNotFound,
        ListGroupsError::TooManyRequestsException(_) => DirectoryErrorKind::Throttled,
        _ => DirectoryErrorKind::Upstream,
    }
}

fn describe_error_kind(error: &DescribeError) -> DirectoryErrorKind {
    match error {
        DescribeError::ResourceNotFoundException(_) => DirectoryErrorKind::PoolNotFound,
        DescribeError::TooManyRequestsException(_) => DirectoryErrorKind::Throttled,
        // Not the caller's fault: attrgate asked for a pool id that passed its input rules.
        _ => DirectoryErrorKind::Upstream,
    }
}

/// Maps any operation's SDK error: service errors by `kind_of`, transport errors alike.
fn map_sdk_error<E, R>(
    error: SdkError<E, R>,
    kind_of: impl FnOnce(&E) -> DirectoryErrorKind,
) -> DirectoryError
where
    E: ProvideErrorMetadata + RequestId,
{
    match error {
        SdkError::ServiceError(service) => {
            let error = service.into_err();
            DirectoryError {
                kind: kind_of(&error),
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
