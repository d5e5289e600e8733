//! Builds the application from settings: loads the policy, opens the audit log, prepares
//! JWT verification and the Cognito client, binds the listener, and wires the routes.
//! `main` and the end-to-end tests build the very same `Application`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, Service};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{App, HttpMessage, HttpResponse, HttpServer, web};
use aws_config::{BehaviorVersion, SdkConfig};
use secrecy::SecretString;
use tracing_actix_web::{RequestId, TracingLogger};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::audit::{AuditCounters, AuditError, AuditLog, KeyError, ValueHasher};
use crate::auth::{REFETCH_INTERVAL, Verifier};
use crate::cognito::{CognitoDirectory, UserDirectory};
use crate::config::{ConfigError, Settings};
use crate::error::{ApiError, ErrorKind};
use crate::limit::RateLimiter;
use crate::metrics::Metrics;
use crate::openapi::ApiDoc;
use crate::policy_reload::PolicyReloader;
use crate::policy_source::{LoadError, PolicySource};
use crate::routes::{self, attributes::AttributeService};
use crate::schema_cache::SchemaCache;

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
    #[error("failed to build the HTTP client for JWKS: {0}")]
    Http(String),
    #[error("failed to listen on {address}: {source}")]
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
        let policy = web::Data::new(PolicySource::load(&settings.policy_file)?);
        let hasher = ValueHasher::from_env_value(
            &settings.audit.hmac_key_env,
            secrets(&settings.audit.hmac_key_env),
        )?;
        let metrics = Arc::new(Metrics::new());
        metrics.set_policy_revision(None, policy.current().revision());
        let reloader = PolicyReloader::new(policy.clone().into_inner(), metrics.clone());
        let audit = AuditLog::open(
            &settings.audit.path,
            settings.audit.rotate_bytes,
            AuditCounters {
                records: metrics.audit_records.clone(),
                failures: metrics.audit_failures.clone(),
                syncs: metrics.audit_syncs.clone(),
            },
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| StartupError::Http(e.to_string()))?;
        let verifier = web::Data::new(Verifier::new(
            &settings.auth,
            http,
            REFETCH_INTERVAL,
            |name| secrets(name).map(SecretString::from),
        )?);
        spawn_jwks_refresh(&verifier);

        let directory: Arc<dyn UserDirectory> =
            Arc::new(CognitoDirectory::new(aws, settings.cognito.clone()));
        let schemas = settings.cognito.validate_schema.then(|| {
            SchemaCache::new(
                directory.clone(),
                Duration::from_secs(settings.cognito.schema_ttl_seconds),
                metrics.cognito_seconds.clone(),
            )
        });
        let service = web::Data::new(AttributeService {
            policy: policy.clone().into_inner(),
            audit: audit.clone(),
            directory,
            schemas,
            hasher,
            metrics: metrics.clone(),
            limiter: RateLimiter::new(
                settings.rate_limit.per_caller_per_second,
                settings.rate_limit.burst,
            ),
            max_body_bytes: settings.max_body_bytes,
        });
        let audit = web::Data::new(audit);
        let metrics = web::Data::from(metrics);

        let listener = TcpListener::bind(settings.listen).map_err(|source| StartupError::Bind {
            address: settings.listen.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: settings.listen.to_string(),
                source,
            })?
            .port();
        let openapi = ApiDoc::openapi();
        let server = HttpServer::new(move || {
            let metrics_for_requests = metrics.clone();
            App::new()
                .wrap_fn(move |req, srv| {
                    let metrics = metrics_for_requests.clone();
                    // A fixed label set: a client must not be able to mint new series.
                    let method: &'static str = match req.method().as_str() {
                        "GET" => "GET",
                        "HEAD" => "HEAD",
                        "POST" => "POST",
                        "PUT" => "PUT",
                        "PATCH" => "PATCH",
                        "DELETE" => "DELETE",
                        "OPTIONS" => "OPTIONS",
                        _ => "other",
                    };
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        let route = res
                            .request()
                            .match_pattern()
                            .unwrap_or_else(|| "unmatched".into());
                        // One access line per request, inside its span (so it carries the request_id).
                        tracing::info!(%route, %method, status = res.status().as_u16(), "request handled");
                        metrics
                            .http_requests
                            .with_label_values(&[
                                route.as_str(),
                                method,
                                res.status().as_str(),
                            ])
                            .inc();
                        let id = res
                            .request()
                            .extensions()
                            .get::<RequestId>()
                            .map(ToString::to_string);
                        if let Some(value) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                            res.headers_mut()
                                .insert(HeaderName::from_static("x-request-id"), value);
                        }
                        Ok(res)
                    }
                })
                .wrap(TracingLogger::default())
                .app_data(policy.clone())
                .app_data(audit.clone())
                .app_data(verifier.clone())
                .app_data(metrics.clone())
                .app_data(service.clone())
                .configure(routes::configure)
                .service(
                    SwaggerUi::new("/docs/{_:.*}")
                        .url("/openapi.json", openapi.clone())
                        .config(crate::openapi::swagger_ui_config()),
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
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: settings.listen.to_string(),
            source,
        })?
        .run();
        reloader.spawn();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn not_found(req: actix_web::HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorKind::NotFound,
        "no such route",
        crate::auth::request_id(&req),
    ))
}

fn spawn_jwks_refresh(verifier: &web::Data<Verifier>) {
    for cache in verifier.jwks_caches() {
        tokio::spawn(async move {
            loop {
                let wait = match cache.refresh().await {
                    Ok(_) => JWKS_REFRESH,
                    Err(error) => {
                        tracing::warn!(%error, "JWKS fetch failed; keeping any cached keys");
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
