//! Settings: the YAML config file of SPEC.md plus `ATTRGATE__SECTION__KEY` environment overrides.
//! Reads files and the environment; depends on no other attrgate module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

pub const ENV_PREFIX: &str = "ATTRGATE__";
pub const MAX_LEEWAY_SECONDS: u64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    /// The settings as read could not be laid out for the environment overrides.
    #[error("cannot apply environment overrides to {path}")]
    Layout {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid environment override {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub listen: SocketAddr,
    pub policy_file: PathBuf,
    /// Largest accepted request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub cognito: CognitoSettings,
    pub auth: AuthSettings,
    pub audit: AuditSettings,
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// Change events: audit records delivered to sinks (docs/events.md).
    #[serde(default)]
    pub events: EventsSettings,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CognitoSettings {
    /// A local Cognito emulator, e.g. `http://127.0.0.1:5000`.
    pub endpoint_url: Option<String>,
    /// Fixes the region; otherwise it is the part of the pool id before `_`.
    pub region: Option<String>,
    /// How long one Cognito operation may take, retries included.
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// Check each request's attribute names against the pool's schema (DescribeUserPool):
    /// attributes the pool lacks, and immutable ones, are a 422 before the policy.
    #[serde(default = "default_true")]
    pub validate_schema: bool,
    /// How long a pool's schema is cached.
    #[serde(default = "default_schema_ttl_seconds")]
    pub schema_ttl_seconds: u64,
    /// When set, only pools in these regions are served; any other is a 422 before any
    /// connection is made.
    #[serde(default)]
    pub allowed_regions: Option<Vec<String>>,
    /// attrgate's own budget of Cognito calls, below Cognito's account quota.
    #[serde(default)]
    pub quota: QuotaSettings,
    /// How long an update waits for a user that another change holds (one writer per
    /// user) before it gets 429 `user_busy`.
    #[serde(default = "default_user_lock_wait_ms")]
    pub user_lock_wait_ms: u64,
}

fn default_user_lock_wait_ms() -> u64 {
    2000
}

impl CognitoSettings {
    fn validate(&self) -> Result<(), String> {
        if self.timeout_seconds == 0 || self.timeout_seconds > 300 {
            return Err("cognito.timeout_seconds must be 1 to 300".into());
        }
        if self.user_lock_wait_ms == 0 || self.user_lock_wait_ms > 60_000 {
            return Err("cognito.user_lock_wait_ms must be 1 to 60000".into());
        }
        if self.schema_ttl_seconds == 0 || self.schema_ttl_seconds > 86_400 {
            return Err("cognito.schema_ttl_seconds must be 1 to 86400".into());
        }
        let quota = &self.quota;
        if !(quota.user_update_per_second > 0.0
            && quota.user_read_per_second > 0.0
            && quota.burst_seconds > 0.0
            && quota.replicas > 0)
        {
            return Err(
                "cognito.quota: the rates, burst_seconds and replicas must all be greater than 0"
                    .into(),
            );
        }
        check_redis_url("cognito.quota.redis_url", quota.redis_url.as_deref())?;
        if self.allowed_regions.as_ref().is_some_and(Vec::is_empty) {
            return Err("cognito.allowed_regions, when set, must list a region".into());
        }
        Ok(())
    }
}

impl Default for CognitoSettings {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            region: None,
            timeout_seconds: default_timeout_seconds(),
            validate_schema: true,
            schema_ttl_seconds: default_schema_ttl_seconds(),
            allowed_regions: None,
            quota: QuotaSettings::default(),
            user_lock_wait_ms: default_user_lock_wait_ms(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    /// A token whose `exp` is further than this from now is refused.
    #[serde(default = "default_max_token_lifetime_seconds")]
    pub max_token_lifetime_seconds: u64,
    pub issuers: Vec<IssuerSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    pub issuer: String,
    pub jwks_url: Option<String>,
    /// Name of the environment variable that holds the HS256/384/512 secret.
    pub hmac_secret_env: Option<String>,
    pub audiences: Vec<String>,
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Named caller facts for the policy's `equals_claim`: name -> JSON Pointer.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    pub algorithms: Option<Vec<Algorithm>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    pub path: PathBuf,
    /// Name of the environment variable that holds the key for value HMACs.
    pub hmac_key_env: String,
    /// Start a new file once the current one reaches this many bytes; the chain
    /// continues across files. Unset: never rotate.
    #[serde(default)]
    pub rotate_bytes: Option<u64>,
    /// Names this gateway in every record and checkpoint; default: the host name.
    #[serde(default)]
    pub replica_id: Option<String>,
    /// Signed checkpoints of the chain's head; unset: none are written.
    #[serde(default)]
    pub checkpoint: Option<CheckpointSettings>,
}

/// Signed checkpoints: every `every_records` records or `every_seconds`, whichever
/// comes first, and at a clean shutdown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSettings {
    /// The checkpoint file, meant for another volume than the log.
    pub path: PathBuf,
    /// The environment variable holding the Ed25519 private key (PKCS#8 PEM, as
    /// written by `attrgate audit keygen`).
    pub signing_key_env: String,
    #[serde(default = "default_checkpoint_records")]
    pub every_records: u64,
    #[serde(default = "default_checkpoint_seconds")]
    pub every_seconds: u64,
}

fn default_checkpoint_records() -> u64 {
    1000
}
fn default_checkpoint_seconds() -> u64 {
    60
}

impl AuditSettings {
    fn validate(&self) -> Result<(), String> {
        if self
            .replica_id
            .as_deref()
            .is_some_and(|id| id.trim().is_empty() || id.chars().any(char::is_control))
        {
            return Err("audit.replica_id must be non-empty, without control characters".into());
        }
        if let Some(checkpoint) = &self.checkpoint
            && (checkpoint.every_records == 0 || checkpoint.every_seconds == 0)
        {
            return Err(
                "audit.checkpoint.every_records and every_seconds must be at least 1".into(),
            );
        }
        if self.rotate_bytes.is_some_and(|bytes| bytes < 4096) {
            return Err("audit.rotate_bytes must be at least 4096".into());
        }
        Ok(())
    }

    /// `replica_id`, or the host name, or `attrgate`.
    #[must_use]
    pub fn replica(&self) -> String {
        self.replica_id.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .or_else(|| std::env::var("HOSTNAME").ok())
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| "attrgate".to_owned())
        })
    }
}

/// The event types a sink may be sent.
pub const EVENT_TYPES: &[&str] = &["attrgate.attributes.updated", "attrgate.attributes.denied"];

/// Change events: every `updated` record (and `denied`, when listed in `types`) of the
/// audit log, delivered to each sink at least once, in `seq` order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSettings {
    /// The event types delivered, from [`EVENT_TYPES`].
    #[serde(default = "default_event_types")]
    pub types: Vec<String>,
    #[serde(default)]
    pub sinks: Vec<SinkSettings>,
    /// The longest wait between two tries of a failed delivery (backoff doubles from
    /// 0.2 s up to this, with jitter).
    #[serde(default = "default_max_backoff_seconds")]
    pub max_backoff_seconds: u64,
    /// At most this many records are read, delivered and acknowledged (cursor fsync'ed)
    /// as one batch.
    #[serde(default = "default_batch_records")]
    pub batch_records: usize,
}

impl Default for EventsSettings {
    fn default() -> Self {
        Self {
            types: default_event_types(),
            sinks: Vec::new(),
            max_backoff_seconds: default_max_backoff_seconds(),
            batch_records: default_batch_records(),
        }
    }
}

fn default_event_types() -> Vec<String> {
    vec![EVENT_TYPES[0].to_owned()]
}
fn default_max_backoff_seconds() -> u64 {
    30
}
fn default_batch_records() -> usize {
    100
}

/// One sink: a name (for its cursor file, metrics and `events replay --sink`) and
/// exactly one kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    pub name: String,
    #[serde(default)]
    pub webhook: Option<WebhookSettings>,
    #[serde(default)]
    pub eventbridge: Option<EventBridgeSettings>,
    /// How long one delivery may take before it counts as failed (a hung sink).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

/// POST each event, signed per the Standard Webhooks convention.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// The environment variable holding the signing secret, `whsec_<base64>`.
    pub secret_env: String,
}

/// `PutEvents` to an EventBridge bus.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeSettings {
    pub bus_name: String,
    /// Otherwise the region of the AWS chain.
    #[serde(default)]
    pub region: Option<String>,
    /// An emulator, e.g. `http://127.0.0.1:5000`.
    #[serde(default)]
    pub endpoint_url: Option<String>,
}

impl EventBridgeSettings {
    fn validate(&self, at: &str) -> Result<(), String> {
        let name = &self.bus_name;
        let plain = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain && !name.starts_with("arn:") {
            return Err(format!(
                "{at}: eventbridge.bus_name {name:?} must be a bus name (letters, digits, . _ -) or an event-bus ARN"
            ));
        }
        if self.region.as_deref().is_some_and(|region| {
            region.is_empty()
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        }) {
            return Err(format!("{at}: eventbridge.region is not a region name"));
        }
        if let Some(endpoint) = &self.endpoint_url {
            let ok = (endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                && reqwest::Url::parse(endpoint).is_ok();
            if !ok {
                return Err(format!(
                    "{at}: eventbridge.endpoint_url must be an http:// or https:// URL"
                ));
            }
        }
        Ok(())
    }
}

/// What kind of sink, as metrics and `/readyz` name it.
impl SinkSettings {
    #[must_use]
    pub fn kind(&self) -> &'static str {
        if self.webhook.is_some() {
            "webhook"
        } else {
            "eventbridge"
        }
    }
}

impl EventsSettings {
    fn validate(&self) -> Result<(), String> {
        if self.types.is_empty() {
            return Err("events.types must list at least one type".into());
        }
        for kind in &self.types {
            if !EVENT_TYPES.contains(&kind.as_str()) {
                return Err(format!(
                    "events.types: unknown type {kind:?}; known: {}",
                    EVENT_TYPES.join(", ")
                ));
            }
        }
        if self.max_backoff_seconds == 0 || self.max_backoff_seconds > 3600 {
            return Err("events.max_backoff_seconds must be 1 to 3600".into());
        }
        if self.batch_records == 0 || self.batch_records > 10_000 {
            return Err("events.batch_records must be 1 to 10000".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, sink) in self.sinks.iter().enumerate() {
            let at = format!("events.sinks[{i}]");
            let valid_name = !sink.name.is_empty()
                && sink.name.len() <= 64
                && sink.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid_name {
                return Err(format!(
                    "{at}: name {:?} must be 1 to 64 of a-z, 0-9, - and _",
                    sink.name
                ));
            }
            if !names.insert(sink.name.as_str()) {
                return Err(format!("{at}: the sink name {:?} is used twice", sink.name));
            }
            let at = format!("events.sinks[{i}] ({})", sink.name);
            match (&sink.webhook, &sink.eventbridge) {
                (Some(webhook), None) => {
                    let scheme_ok =
                        webhook.url.starts_with("https://") || webhook.url.starts_with("http://");
                    // Not quoted: a URL may carry credentials.
                    if !scheme_ok || reqwest::Url::parse(&webhook.url).is_err() {
                        return Err(format!(
                            "{at}: webhook.url must be an http:// or https:// URL"
                        ));
                    }
                    if webhook.secret_env.trim().is_empty() {
                        return Err(format!(
                            "{at}: webhook.secret_env must name an environment variable"
                        ));
                    }
                }
                (None, Some(bus)) => bus.validate(&at)?,
                _ => {
                    return Err(format!(
                        "{at}: a sink has exactly one kind: webhook or eventbridge"
                    ));
                }
            }
            if sink.timeout_seconds == 0 || sink.timeout_seconds > 300 {
                return Err(format!("{at}: timeout_seconds must be 1 to 300"));
            }
        }
        Ok(())
    }
}

/// Token buckets in front of every Cognito call, per category and region: over the
/// budget a request gets 429 at once instead of throttling the whole account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    /// AdminUpdateUserAttributes (Cognito's `UserUpdate` category).
    #[serde(default = "default_user_update_per_second")]
    pub user_update_per_second: f64,
    /// AdminGetUser, AdminListGroupsForUser, DescribeUserPool (`UserRead`).
    #[serde(default = "default_user_read_per_second")]
    pub user_read_per_second: f64,
    /// The bucket holds this many seconds of rate.
    #[serde(default = "default_burst_seconds")]
    pub burst_seconds: f64,
    /// How many gateways share the budget: each keeps rate / replicas, without
    /// `redis_url` and while Redis does not answer.
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// One budget in Redis (or Valkey) shared by every replica: `redis://host:port/db`.
    #[serde(default)]
    pub redis_url: Option<String>,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            user_update_per_second: default_user_update_per_second(),
            user_read_per_second: default_user_read_per_second(),
            burst_seconds: default_burst_seconds(),
            replicas: default_replicas(),
            redis_url: None,
        }
    }
}

fn default_user_update_per_second() -> f64 {
    20.0
}
fn default_user_read_per_second() -> f64 {
    100.0
}
fn default_burst_seconds() -> f64 {
    1.0
}
fn default_replicas() -> u32 {
    1
}

/// attrgate's own per-caller limit: a token bucket keyed by (iss, sub).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Sustained requests per second per caller; 0 turns the limit off.
    #[serde(default = "default_per_second")]
    pub per_caller_per_second: u32,
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Share each caller's limit across replicas through Redis (may be the same URL as
    /// `cognito.quota.redis_url`). While Redis does not answer, each replica allows
    /// the rate / `cognito.quota.replicas`.
    #[serde(default)]
    pub redis_url: Option<String>,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            per_caller_per_second: default_per_second(),
            burst: default_burst(),
            redis_url: None,
        }
    }
}

/// A plain `redis://` URL with a host; this build has no TLS for Redis (`rediss://`).
fn check_redis_url(key: &str, url: Option<&str>) -> Result<(), String> {
    let Some(url) = url else { return Ok(()) };
    let rest = url.strip_prefix("redis://").ok_or_else(|| {
        format!(
            "{key} must start with redis:// (rediss:// is not supported: put Redis on a private network or behind a TLS sidecar)"
        )
    })?;
    let host = rest.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with('/') || host.starts_with(':') {
        return Err(format!(
            "{key} must name a host, as in redis://127.0.0.1:6379/0"
        ));
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("{key} is not a valid Redis URL: {e}"))
}

fn default_max_body_bytes() -> usize {
    16 * 1024
}
fn default_timeout_seconds() -> u64 {
    10
}
fn default_true() -> bool {
    true
}
fn default_schema_ttl_seconds() -> u64 {
    300
}
fn default_leeway_seconds() -> u64 {
    30
}
fn default_max_token_lifetime_seconds() -> u64 {
    86_400
}
fn default_roles_claim() -> String {
    "/roles".to_owned()
}
fn default_per_second() -> u32 {
    50
}
fn default_burst() -> u32 {
    100
}

pub const JWKS_ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];
pub const HMAC_ALGORITHMS: &[Algorithm] = &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

impl IssuerSettings {
    /// The algorithms this issuer's tokens may use: the configured list, or the family default.
    pub fn allowed_algorithms(&self) -> Vec<Algorithm> {
        match (&self.algorithms, self.jwks_url.is_some()) {
            (Some(list), _) => list.clone(),
            (None, true) => JWKS_ALGORITHMS.to_vec(),
            (None, false) => HMAC_ALGORITHMS.to_vec(),
        }
    }
}

impl Settings {
    /// Loads the file, applies `ATTRGATE__…` overrides from the process environment, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&source, path, std::env::vars())
    }

    pub fn from_yaml(
        source: &str,
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        // Parsing into the typed struct first gives errors that name the line.
        let mut settings: Settings =
            serde_saphyr::from_str(source).map_err(|source| ConfigError::Parse {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        let overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(key, _)| key.starts_with(ENV_PREFIX))
            .collect();
        if !overrides.is_empty() {
            let mut tree =
                serde_json::to_value(&settings).map_err(|source| ConfigError::Layout {
                    path: path.to_owned(),
                    source,
                })?;
            for (var, value) in &overrides {
                apply_override(&mut tree, var, value)?;
            }
            settings = serde_json::from_value(tree).map_err(|e| ConfigError::Env {
                var: overrides
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                message: e.to_string(),
            })?;
        }
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.auth.leeway_seconds > MAX_LEEWAY_SECONDS {
            return invalid(format!(
                "auth.leeway_seconds is {}, at most {MAX_LEEWAY_SECONDS} is allowed",
                self.auth.leeway_seconds
            ));
        }
        self.cognito.validate().map_err(ConfigError::Invalid)?;
        if self.auth.max_token_lifetime_seconds == 0 {
            return invalid("auth.max_token_lifetime_seconds must be at least 1".into());
        }
        if self.auth.issuers.is_empty() {
            return invalid("auth.issuers must list at least one issuer".into());
        }
        if self.max_body_bytes == 0 {
            return invalid("max_body_bytes must be greater than 0".into());
        }
        if self.rate_limit.per_caller_per_second > 0 && self.rate_limit.burst == 0 {
            return invalid("rate_limit.burst must be at least 1 when the limit is on".into());
        }
        if let Err(message) =
            check_redis_url("rate_limit.redis_url", self.rate_limit.redis_url.as_deref())
        {
            return invalid(message);
        }
        self.audit.validate().map_err(ConfigError::Invalid)?;
        self.events.validate().map_err(ConfigError::Invalid)?;
        if self.audit.hmac_key_env.trim().is_empty() {
            return invalid("audit.hmac_key_env must name an environment variable".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, issuer) in self.auth.issuers.iter().enumerate() {
            let at = format!("auth.issuers[{i}] ({})", issuer.issuer);
            if issuer.issuer.is_empty() {
                return invalid(format!("{at}: issuer must not be empty"));
            }
            if !seen.insert(issuer.issuer.as_str()) {
                return invalid(format!("{at}: the same issuer is configured twice"));
            }
            if issuer.audiences.is_empty() {
                return invalid(format!("{at}: audiences must list at least one audience"));
            }
            // "" would point at the whole claims object: never a list of roles.
            if !issuer.roles_claim.starts_with('/') {
                return invalid(format!(
                    "{at}: roles_claim must be a JSON Pointer such as /roles, got {:?}",
                    issuer.roles_claim
                ));
            }
            for (name, pointer) in &issuer.claims {
                if name.trim().is_empty() {
                    return invalid(format!("{at}: a claim name must not be empty"));
                }
                if !pointer.starts_with('/') {
                    return invalid(format!(
                        "{at}: claims.{name} must be a JSON Pointer such as /tenant_id, got {pointer:?}"
                    ));
                }
            }
            let algorithms = issuer.allowed_algorithms();
            if algorithms.is_empty() {
                return invalid(format!("{at}: algorithms must not be empty"));
            }
            match (&issuer.jwks_url, &issuer.hmac_secret_env) {
                (Some(_), Some(_)) | (None, None) => {
                    return invalid(format!(
                        "{at}: set exactly one of jwks_url and hmac_secret_env"
                    ));
                }
                (Some(url), None) => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) {
                        return invalid(format!("{at}: jwks_url must be an http(s) URL"));
                    }
                    if let Some(alg) = algorithms.iter().find(|a| HMAC_ALGORITHMS.contains(a)) {
                        return invalid(format!(
                            "{at}: {alg:?} is an HMAC algorithm and is never accepted with a JWKS"
                        ));
                    }
                }
                (None, Some(_)) => {
                    if let Some(alg) = algorithms.iter().find(|a| !HMAC_ALGORITHMS.contains(a)) {
                        return invalid(format!(
                            "{at}: an hmac_secret_env issuer takes HS256/HS384/HS512 only, not {alg:?}"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sets one `ATTRGATE__A__B__0__C` variable in the settings tree.
/// A number segment indexes a list. The value is read as JSON when it parses and the
/// current value is not a string (so `[a, b]`, numbers and booleans work), else as a string.
fn apply_override(tree: &mut serde_json::Value, var: &str, raw: &str) -> Result<(), ConfigError> {
    let env_error = |message: String| ConfigError::Env {
        var: var.to_owned(),
        message,
    };
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_lowercase)
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(env_error("empty path segment".into()));
    }
    let mut node = tree;
    for (depth, segment) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        node = match node {
            serde_json::Value::Array(items) => {
                let index: usize = segment
                    .parse()
                    .map_err(|_| env_error(format!("'{segment}' must be a list index")))?;
                items
                    .get_mut(index)
                    .ok_or_else(|| env_error(format!("no list item {index}")))?
            }
            serde_json::Value::Object(map) => {
                if !map.contains_key(segment) && !last {
                    map.insert(
                        segment.clone(),
                        serde_json::Value::Object(Default::default()),
                    );
                }
                map.entry(segment.clone())
                    .or_insert(serde_json::Value::Null)
            }
            _ => {
                return Err(env_error(format!(
                    "'{segment}' is below a value that is not a section"
                )));
            }
        };
    }
    *node = match (&*node, serde_json::from_str::<serde_json::Value>(raw)) {
        (serde_json::Value::String(_), _) | (_, Err(_)) => {
            serde_json::Value::String(raw.to_owned())
        }
        (_, Ok(parsed)) => parsed,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
listen: 127.0.0.1:8080
policy_file: policies/default.yaml
cognito:
  endpoint_url: http://127.0.0.1:5000
auth:
  issuers:
    - issuer: https://idp.example
      jwks_url: https://idp.example/jwks.json
      audiences: [attrgate]
audit:
  path: audit/attrgate.jsonl
  hmac_key_env: ATTRGATE_AUDIT_HMAC_KEY
"#;

    fn load(source: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Settings::from_yaml(source, Path::new("test.yaml"), env)
    }

    #[test]
    fn a_minimal_config_loads_with_documented_defaults() {
        let settings = load(MINIMAL, &[]).unwrap();

        assert_eq!(settings.max_body_bytes, 16 * 1024);
        assert_eq!(settings.auth.leeway_seconds, 30);
        assert_eq!(settings.cognito.timeout_seconds, 10);
        assert!(settings.cognito.validate_schema);
        assert_eq!(settings.cognito.schema_ttl_seconds, 300);
        assert_eq!(settings.auth.issuers[0].roles_claim, "/roles");
        assert!(
            !settings.auth.issuers[0]
                .allowed_algorithms()
                .contains(&Algorithm::HS256)
        );
    }

    #[test]
    fn an_unknown_key_stops_loading_and_names_the_key() {
        let source = MINIMAL.replace("listen:", "listne: x\nlisten:");

        let error = crate::report::chain(&load(&source, &[]).unwrap_err());

        assert!(error.contains("listne"), "{error}");
        assert!(
            error.starts_with("invalid config file test.yaml: "),
            "{error}"
        );
    }

    #[test]
    fn environment_overrides_replace_nested_and_listed_values() {
        let settings = load(
            MINIMAL,
            &[
                ("ATTRGATE__COGNITO__REGION", "eu-west-1"),
                ("ATTRGATE__LISTEN", "127.0.0.1:9999"),
                ("ATTRGATE__AUTH__LEEWAY_SECONDS", "5"),
                ("ATTRGATE__AUTH__ISSUERS__0__AUDIENCES", r#"["a","b"]"#),
                ("OTHER__LISTEN", "ignored"),
            ],
        )
        .unwrap();

        assert_eq!(settings.cognito.region.as_deref(), Some("eu-west-1"));
        assert_eq!(settings.listen.port(), 9999);
        assert_eq!(settings.auth.leeway_seconds, 5);
        assert_eq!(settings.auth.issuers[0].audiences, ["a", "b"]);
    }

    #[test]
    fn an_override_of_an_unknown_key_is_an_error() {
        let error = load(MINIMAL, &[("ATTRGATE__AUDIT__NOPE", "1")]).unwrap_err();

        assert!(matches!(error, ConfigError::Env { .. }), "{error}");
    }

    #[test]
    fn schema_validation_can_be_turned_off_and_its_ttl_is_bounded() {
        let off = load(MINIMAL, &[("ATTRGATE__COGNITO__VALIDATE_SCHEMA", "false")]).unwrap();
        let zero = load(MINIMAL, &[("ATTRGATE__COGNITO__SCHEMA_TTL_SECONDS", "0")]).unwrap_err();

        assert!(!off.cognito.validate_schema);
        assert!(zero.to_string().contains("schema_ttl_seconds"), "{zero}");
    }

    #[test]
    fn redis_urls_load_and_anything_but_a_plain_redis_url_with_a_host_is_refused() {
        let set = |key: &str, url: &str| load(MINIMAL, &[(key, url)]);
        let quota = "ATTRGATE__COGNITO__QUOTA__REDIS_URL";
        let limit = "ATTRGATE__RATE_LIMIT__REDIS_URL";

        let shared = set(quota, "redis://10.0.0.5:6379/2").unwrap();
        let with_password = set(limit, "redis://:secret@redis.internal:6379").unwrap();
        let errors: Vec<String> = [
            (quota, "rediss://redis.internal:6380"),
            (quota, "http://redis.internal"),
            (limit, "redis://"),
            (limit, "redis://:6379"),
        ]
        .iter()
        .map(|(key, url)| set(key, url).unwrap_err().to_string())
        .collect();

        assert_eq!(
            shared.cognito.quota.redis_url.as_deref(),
            Some("redis://10.0.0.5:6379/2")
        );
        assert!(with_password.rate_limit.redis_url.is_some());
        assert!(
            errors[0].contains("rediss:// is not supported"),
            "{errors:?}"
        );
        assert!(errors[1].contains("cognito.quota.redis_url must start with redis://"));
        assert!(
            errors[2].contains("rate_limit.redis_url must name a host"),
            "{errors:?}"
        );
        assert!(errors[3].contains("must name a host"), "{errors:?}");
    }

    #[test]
    fn event_sinks_load_and_each_bad_one_is_refused_naming_what_is_wrong() {
        let with = |sinks: &str| load(&format!("{MINIMAL}events:\n  sinks:\n{sinks}"), &[]);
        let good = with(
            "    - name: crm\n      webhook: {url: \"https://crm.internal/hook\", secret_env: S}\n    - name: bus\n      eventbridge: {bus_name: users, region: eu-west-1}\n",
        )
        .unwrap();
        let refused = |sinks: &str| {
            let error = with(sinks).unwrap_err();
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        };

        assert_eq!(good.events.sinks.len(), 2);
        assert_eq!(good.events.types, ["attrgate.attributes.updated"]);
        assert_eq!(good.events.sinks[1].kind(), "eventbridge");
        assert!(refused("    - name: k\n      kafka: {topic: t}\n").contains("kafka"));
        assert!(
            refused("    - name: k\n").contains("exactly one kind"),
            "a sink without a kind"
        );
        assert!(
            refused("    - name: CRM\n      eventbridge: {bus_name: b}\n").contains("name \"CRM\"")
        );
        assert!(
            refused("    - name: a\n      eventbridge: {bus_name: b}\n    - name: a\n      eventbridge: {bus_name: c}\n")
                .contains("used twice")
        );
        let secret_url = refused(
            "    - name: a\n      webhook: {url: \"ftp://user:hunter2@host/x\", secret_env: S}\n",
        );
        assert!(secret_url.contains("webhook.url must be"), "{secret_url}");
        assert!(!secret_url.contains("hunter2"), "{secret_url}");
        assert!(
            refused("    - name: a\n      eventbridge: {bus_name: \"a/b\"}\n").contains("bus_name")
        );
        assert!(
            refused("    - name: a\n      eventbridge: {bus_name: b, endpoint_url: \"localhost:5000\"}\n")
                .contains("endpoint_url")
        );
        let bad_type = load(
            &format!("{MINIMAL}events:\n  types: [attrgate.attributes.deleted]\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(bad_type.contains("unknown type"), "{bad_type}");
    }

    #[test]
    fn leeway_above_300_seconds_is_refused() {
        let error = load(MINIMAL, &[("ATTRGATE__AUTH__LEEWAY_SECONDS", "301")]).unwrap_err();

        assert!(error.to_string().contains("at most 300"), "{error}");
    }

    #[test]
    fn hmac_algorithms_are_refused_for_a_jwks_issuer_and_none_is_not_an_algorithm() {
        let hs = MINIMAL.replace(
            "audiences: [attrgate]",
            "audiences: [attrgate]\n      algorithms: [RS256, HS256]",
        );
        let none = MINIMAL.replace(
            "audiences: [attrgate]",
            "audiences: [attrgate]\n      algorithms: [none]",
        );

        assert!(
            load(&hs, &[])
                .unwrap_err()
                .to_string()
                .contains("never accepted with a JWKS")
        );
        assert!(load(&none, &[]).is_err());
    }

    #[test]
    fn an_empty_roles_claim_pointer_is_refused_at_start_up() {
        let empty = MINIMAL.replace(
            "audiences: [attrgate]",
            "audiences: [attrgate]\n      roles_claim: \"\"",
        );

        assert!(
            load(&empty, &[])
                .unwrap_err()
                .to_string()
                .contains("JSON Pointer")
        );
    }

    #[test]
    fn an_issuer_needs_exactly_one_key_source() {
        let both = MINIMAL.replace(
            "audiences: [attrgate]",
            "audiences: [attrgate]\n      hmac_secret_env: X",
        );

        assert!(
            load(&both, &[])
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
    }
}
