//! Builds the application from settings: loads the policy, opens the audit log, prepares
//! JWT verification and the Cognito client, binds the listener, and wires the routes.
//! `main` and the end-to-end tests build the very same `Application`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use aws_config::{BehaviorVersion, SdkConfig};
use secrecy::SecretString;
use tracing_actix_web::TracingLogger;
use utoipa_swagger_ui::SwaggerUi;

use crate::audit::{
    AuditCounters, AuditError, AuditLog, CheckpointConfig, KeyError, ValueHasher, WriterOptions,
    signing_key_from_pem,
};
use crate::auth::{REFETCH_INTERVAL, Verifier};
use crate::cognito::CognitoDirectory;
use crate::config::{ConfigError, Settings};
use crate::events::EventsStatus;
use crate::http::error::ApiError;
use crate::http::middleware;
use crate::http::routes;
use crate::input::Regions;
use crate::limit::RateLimiter;
use crate::metrics::Metrics;
use crate::policy_reload::PolicyReloader;
use crate::policy_source::{LoadError, PolicySource};
use crate::quota::{QuotaGuard, QuotaMetrics};
use crate::schema_cache::SchemaCache;
use crate::shared_budget::{Mode, QuotaStatus, SharedBudget, show_mode};
use crate::update::{UpdateParts, UpdateService};
use crate::user_lock::UserLocks;

/// How often every JWKS is fetched again, to pick up rotated keys before they are used.
const JWKS_REFRESH: Duration = Duration::from_secs(300);
/// How soon a JWKS fetch that failed at start-up is tried again.
const JWKS_RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Policy(#[from] LoadError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    AuditKey(#[from] KeyError),
    #[error("Redis")]
    Redis(#[source] redis::RedisError),
    #[error("failed to build the HTTP client for JWKS")]
    Http(#[source] reqwest::Error),
    #[error("change events: {0}")]
    Events(String),
    #[error("failed to listen on {address}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
}

/// Reads a named secret, normally from the process environment.
pub type SecretLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

pub struct Application {
    port: u16,
    server: Server,
    audit: AuditLog,
}

/// Everything the server needs, built once from the settings.
struct Dependencies {
    routes: Routes,
    reloader: PolicyReloader,
}

impl Dependencies {
    async fn build(
        settings: &Settings,
        aws: SdkConfig,
        secrets: &SecretLookup,
    ) -> Result<Self, StartupError> {
        let policy = Arc::new(PolicySource::load(&settings.policy_file)?);
        let hasher = ValueHasher::from_env_value(
            &settings.audit.hmac_key_env,
            secrets(&settings.audit.hmac_key_env),
        )?;
        let metrics = Arc::new(Metrics::new());
        metrics.set_policy_revision(None, policy.current().revision());
        let reloader = PolicyReloader::new(policy.clone(), metrics.clone());
        let audit = AuditLog::open(
            &settings.audit.path,
            settings.audit.rotate_bytes,
            AuditCounters {
                records: metrics.audit_records.clone(),
                failures: metrics.audit_failures.clone(),
                syncs: metrics.audit_syncs.clone(),
            },
            writer_options(settings, secrets)?,
        )?;
        let events = crate::events::start(settings, audit.durable(), &metrics, &aws, secrets)
            .map_err(StartupError::Events)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(StartupError::Http)?;
        let verifier = web::Data::new(Verifier::new(
            &settings.auth,
            http,
            REFETCH_INTERVAL,
            |name| secrets(name).map(SecretString::from),
        )?);
        let Budgets {
            quota,
            limiter,
            status,
            locks,
        } = Budgets::build(settings, &metrics)?;
        let cognito = Arc::new(
            CognitoDirectory::new(aws, settings.cognito.clone())
                .timed_by(metrics.cognito_seconds.clone())
                .budgeted(quota),
        );
        let schemas = settings.cognito.validate_schema.then(|| {
            SchemaCache::new(
                cognito.clone(),
                Duration::from_secs(settings.cognito.schema_ttl_seconds),
            )
        });
        let updates = web::Data::new(UpdateService::new(UpdateParts {
            policy: policy.clone(),
            audit: audit.clone(),
            writer: cognito.clone(),
            reader: cognito,
            schemas,
            hasher,
            metrics: metrics.clone(),
            limiter,
            max_body_bytes: settings.max_body_bytes,
            regions: Regions {
                fixed: settings.cognito.region.clone(),
                allowed: settings.cognito.allowed_regions.clone(),
            },
            locks,
        }));
        let routes = Routes {
            policy: web::Data::from(policy),
            audit: web::Data::new(audit),
            verifier,
            metrics: web::Data::from(metrics),
            updates,
            quota: web::Data::new(status),
            events: web::Data::new(events),
        };
        Ok(Self { routes, reloader })
    }
}

impl Application {
    /// Builds with AWS credentials from the standard chain and secrets from the environment.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let aws = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self::build_with(settings, aws, &|name| std::env::var(name).ok()).await
    }

    /// Builds with a given AWS base config (credentials) and secret lookup.
    pub async fn build_with(
        settings: Settings,
        aws: SdkConfig,
        secrets: &SecretLookup,
    ) -> Result<Self, StartupError> {
        let Dependencies { routes, reloader } =
            Dependencies::build(&settings, aws, secrets).await?;
        warn_if_watched(&settings);
        spawn_jwks_refresh(&routes.verifier);
        let bind_error = |source| StartupError::Bind {
            address: settings.listen.to_string(),
            source,
        };
        let listener = TcpListener::bind(settings.listen).map_err(bind_error)?;
        let port = listener.local_addr().map_err(bind_error)?.port();
        let audit = routes.audit.get_ref().clone();
        let server = serve(listener, routes).map_err(bind_error)?;
        reloader.spawn();
        Ok(Self {
            port,
            server,
            audit,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server stops (SIGTERM, SIGINT), then signs a last checkpoint.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.audit.checkpoint_now().await;
        result
    }
}

/// The policy's directory is watched for changes: an audit log written there wakes the
/// watcher on every record (measured: about 80 us of CPU per update, scripts/bench-compare).
fn warn_if_watched(settings: &Settings) {
    if same_directory(&settings.policy_file, &settings.audit.path) {
        tracing::warn!(
            "audit.path is in the policy file's directory, which attrgate watches for \
             changes: every audit write wakes the watcher; put the audit log elsewhere"
        );
    }
}

/// Whether two files are in the same (existing) directory.
fn same_directory(a: &std::path::Path, b: &std::path::Path) -> bool {
    let directory = |path: &std::path::Path| {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        std::fs::canonicalize(parent.unwrap_or(std::path::Path::new("."))).ok()
    };
    let first = directory(a);
    first.is_some() && first == directory(b)
}

/// The Cognito budget and the per-caller limit, shared through Redis when configured.
struct Budgets {
    quota: QuotaGuard,
    limiter: RateLimiter,
    status: QuotaStatus,
    /// The user locks, in the quota's Redis when it has one.
    locks: UserLocks,
}

impl Budgets {
    fn build(settings: &Settings, metrics: &Metrics) -> Result<Self, StartupError> {
        let quota_settings = &settings.cognito.quota;
        let mut quota = QuotaGuard::new(
            quota_settings,
            Some(QuotaMetrics {
                tokens: metrics.quota_tokens.clone(),
                refusals: metrics.quota_refusals.clone(),
            }),
        );
        let connect = |url: &str, gauge| {
            let shared = Arc::new(SharedBudget::connect(url, gauge).map_err(StartupError::Redis)?);
            shared.spawn_probe();
            Ok::<_, StartupError>(shared)
        };
        let shared_quota = match &quota_settings.redis_url {
            Some(url) => Some(connect(url, Some(metrics.quota_backend.clone()))?),
            None => {
                show_mode(&metrics.quota_backend, Mode::Local);
                None
            }
        };
        if let Some(shared) = &shared_quota {
            quota = quota.shared(shared.clone());
        }
        let limit = &settings.rate_limit;
        let mut limiter = RateLimiter::new(limit.per_caller_per_second, limit.burst);
        if let Some(url) = &limit.redis_url {
            // The same Redis as the quota's shares its connection.
            let shared = match &shared_quota {
                Some(shared) if quota_settings.redis_url.as_deref() == Some(url) => shared.clone(),
                _ => connect(url, None)?,
            };
            limiter = limiter.shared(shared, quota_settings.replicas);
        }
        // A Redis lock outlives a crashed holder by at most the Cognito timeout.
        let locks = UserLocks::new(
            shared_quota.clone(),
            Duration::from_millis(settings.cognito.user_lock_wait_ms),
            Duration::from_secs(settings.cognito.timeout_seconds),
        );
        Ok(Self {
            quota,
            limiter,
            status: QuotaStatus::new(shared_quota),
            locks,
        })
    }
}

/// The replica name and, when configured, the checkpoint signer of the audit writer.
fn writer_options(
    settings: &Settings,
    secrets: &SecretLookup,
) -> Result<WriterOptions, StartupError> {
    let checkpoints = match &settings.audit.checkpoint {
        None => None,
        Some(checkpoint) => {
            let var = &checkpoint.signing_key_env;
            let pem = secrets(var).ok_or_else(|| {
                StartupError::Config(ConfigError::Invalid(format!(
                    "environment variable {var} (audit.checkpoint.signing_key_env) is not set"
                )))
            })?;
            let key = signing_key_from_pem(&pem).map_err(|error| {
                StartupError::Config(ConfigError::Invalid(format!("{var}: {error}")))
            })?;
            Some(CheckpointConfig {
                path: checkpoint.path.clone(),
                key,
                replica: settings.audit.replica(),
                every_records: checkpoint.every_records,
                every_seconds: checkpoint.every_seconds,
            })
        }
    };
    Ok(WriterOptions {
        replica: Some(settings.audit.replica()),
        checkpoints,
    })
}

/// The shared state the routes take as `web::Data`, each registered once.
#[derive(Clone)]
struct Routes {
    policy: web::Data<PolicySource>,
    audit: web::Data<AuditLog>,
    verifier: web::Data<Verifier>,
    metrics: web::Data<Metrics>,
    updates: web::Data<UpdateService>,
    quota: web::Data<QuotaStatus>,
    events: web::Data<EventsStatus>,
}

/// Starts the HTTP server on `listener` with every route and the middleware.
fn serve(listener: TcpListener, routes: Routes) -> std::io::Result<Server> {
    let openapi = crate::http::openapi::document();
    let server = HttpServer::new(move || {
        let routes = routes.clone();
        App::new()
            .wrap(from_fn(middleware::edge))
            .wrap(TracingLogger::<middleware::RedactedRootSpan>::new())
            .app_data(routes.policy)
            .app_data(routes.audit)
            .app_data(routes.verifier)
            .app_data(routes.metrics)
            .app_data(routes.updates)
            .app_data(routes.quota)
            .app_data(routes.events)
            .configure(routes::configure)
            .service(
                SwaggerUi::new("/docs/{_:.*}")
                    .url("/openapi.json", openapi.clone())
                    .config(crate::http::openapi::swagger_ui_config()),
            )
            .route(
                "/docs",
                web::get().to(|| async {
                    HttpResponse::PermanentRedirect()
                        .insert_header(("Location", "/docs/"))
                        .finish()
                }),
            )
            .default_service(web::to(not_found))
    })
    .listen(listener)?
    .run();
    Ok(server)
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::no_route())
}

fn spawn_jwks_refresh(verifier: &web::Data<Verifier>) {
    for cache in verifier.jwks_caches() {
        tokio::spawn(async move {
            loop {
                let wait = match cache.refresh().await {
                    Ok(_) => JWKS_REFRESH,
                    Err(error) => {
                        tracing::warn!(error = %crate::report::chain(&error), "JWKS fetch failed; keeping any cached keys");
                        if cache.fetched_once() {
                            JWKS_REFRESH
                        } else {
                            JWKS_RETRY
                        }
                    }
                };
                actix_web::rt::time::sleep(wait).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::same_directory;

    #[test]
    fn files_are_in_the_same_directory_however_the_path_is_written() {
        let dir = std::env::temp_dir().join(format!("attrgate-same-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("policy")).unwrap();

        assert!(same_directory(
            &dir.join("policy/default.yaml"),
            &dir.join("policy/../policy/audit.jsonl")
        ));
        assert!(!same_directory(
            &dir.join("policy/default.yaml"),
            &dir.join("audit.jsonl")
        ));
        assert!(!same_directory(
            Path::new("/no/such/dir/a"),
            Path::new("/no/such/dir/b")
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
