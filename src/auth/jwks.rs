//! One issuer's JSON Web Key Set, fetched over HTTP(S) and cached by `kid`.
//! An unknown kid triggers at most one refetch per `REFETCH_INTERVAL` (start-up and periodic
//! fetches do not count against it); a failed fetch keeps
//! the cached keys. Symmetric (`oct`) keys in a JWKS are ignored: never HMAC with a JWKS.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(10);
const MAX_JWKS_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub(crate) struct CachedKey {
    pub key: DecodingKey,
    /// The `alg` the JWK declares, if any: a token must then use exactly it.
    pub alg: Option<Algorithm>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("failed to fetch JWKS from {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("failed to fetch JWKS from {url}: status {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("JWKS from {url} is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge { url: String },
    #[error("JWKS from {url} is not a valid key set")]
    Invalid {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

pub(crate) struct JwksCache {
    url: String,
    http: reqwest::Client,
    keys: RwLock<Arc<HashMap<String, CachedKey>>>,
    fetched_once: AtomicBool,
    /// Serialises fetches (single flight).
    fetching: Mutex<()>,
    /// When an unknown kid last caused a refetch; such refetches are rate limited.
    last_kid_refetch: Mutex<Option<Instant>>,
    min_interval: Duration,
}

pub(crate) enum Lookup {
    Found(CachedKey),
    Unknown,
    NeverFetched,
}

impl JwksCache {
    pub(crate) fn new(url: String, http: reqwest::Client, min_interval: Duration) -> Self {
        Self {
            url,
            http,
            keys: RwLock::new(Arc::new(HashMap::new())),
            fetched_once: AtomicBool::new(false),
            fetching: Mutex::new(()),
            last_kid_refetch: Mutex::new(None),
            min_interval,
        }
    }

    pub(crate) fn fetched_once(&self) -> bool {
        self.fetched_once.load(Ordering::Acquire)
    }

    /// Finds `kid`, refetching the set once if it is unknown and the last attempt is old enough.
    pub(crate) async fn lookup(&self, kid: &str) -> Lookup {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Lookup::Found(key.clone());
        }
        {
            let mut last = self.last_kid_refetch.lock().await;
            // Another request may have refreshed while this one waited for the lock.
            if let Some(key) = self.keys.read().await.get(kid) {
                return Lookup::Found(key.clone());
            }
            if last.is_none_or(|at| at.elapsed() >= self.min_interval) {
                *last = Some(Instant::now());
                if let Err(error) = self.refresh().await {
                    tracing::warn!(error = %crate::report::chain(&error), "JWKS refetch failed; keeping the cached keys");
                }
            }
        }
        match self.keys.read().await.get(kid) {
            Some(key) => Lookup::Found(key.clone()),
            None if !self.fetched_once() => Lookup::NeverFetched,
            None => Lookup::Unknown,
        }
    }

    /// Fetches the set now (start-up, periodic refresh, or an unknown kid), one fetch at a time.
    pub(crate) async fn refresh(&self) -> Result<usize, FetchError> {
        let _single_flight = self.fetching.lock().await;
        self.fetch_and_store().await
    }

    async fn fetch_and_store(&self) -> Result<usize, FetchError> {
        let http_error = |source: reqwest::Error| FetchError::Http {
            url: self.url.clone(),
            source,
        };
        let mut response = self.http.get(&self.url).send().await.map_err(http_error)?;
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: self.url.clone(),
                status: response.status(),
            });
        }
        // Read at most the limit, whatever the server claims or sends.
        let too_large = || FetchError::TooLarge {
            url: self.url.clone(),
        };
        if response
            .content_length()
            .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(http_error)? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|source| FetchError::Invalid {
            url: self.url.clone(),
            source,
        })?;
        let keys = usable_keys(&set);
        let count = keys.len();
        *self.keys.write().await = Arc::new(keys);
        self.fetched_once.store(true, Ordering::Release);
        tracing::info!(url = %self.url, keys = count, "fetched JWKS");
        Ok(count)
    }
}

fn usable_keys(set: &JwkSet) -> HashMap<String, CachedKey> {
    set.keys
        .iter()
        .filter(|jwk| !matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            let alg = match jwk.common.key_algorithm {
                Some(declared) => Some(Algorithm::try_from(declared).ok()?),
                None => None,
            };
            Some((kid, CachedKey { key, alg }))
        })
        .collect()
}
