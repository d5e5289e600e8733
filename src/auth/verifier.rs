//! Verifies a bearer token against the configured issuers and returns the `Caller`.
//! A token verifies only with its own issuer's keys and algorithms; header `jku`, `x5u`
//! and `jwk` are never used. Depends on config for the issuer list.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::AuthError;
use super::jwks::{JwksCache, Lookup};
use crate::config::{AuthSettings, ConfigError, IssuerSettings};
use crate::identity::Caller;

/// The shortest HMAC secret accepted: 256 bits, as RFC 7518 asks for HS256.
pub(super) const MIN_HMAC_SECRET_BYTES: usize = 32;

enum KeySource {
    Jwks(Arc<JwksCache>),
    Hmac(DecodingKey),
}

struct Issuer {
    name: String,
    audiences: HashSet<String>,
    roles_claim: String,
    /// Claim name -> JSON Pointer.
    claims: Vec<(String, String)>,
    algorithms: Vec<Algorithm>,
    keys: KeySource,
}

pub(crate) struct Verifier {
    issuers: HashMap<String, Issuer>,
    leeway_seconds: u64,
    max_lifetime_seconds: u64,
}

impl Verifier {
    /// Builds the verifier. `secret` reads an environment variable (injected for tests).
    pub(crate) fn new(
        settings: &AuthSettings,
        http: reqwest::Client,
        refetch_interval: Duration,
        secret: impl Fn(&str) -> Option<SecretString>,
    ) -> Result<Self, ConfigError> {
        let issuers = settings
            .issuers
            .iter()
            .map(|issuer| {
                let keys = key_source(issuer, &http, refetch_interval, &secret)?;
                Ok((
                    issuer.issuer.clone(),
                    Issuer {
                        name: issuer.issuer.clone(),
                        audiences: issuer.audiences.iter().cloned().collect(),
                        roles_claim: issuer.roles_claim.clone(),
                        claims: issuer
                            .claims
                            .iter()
                            .map(|(name, pointer)| (name.clone(), pointer.clone()))
                            .collect(),
                        algorithms: issuer.allowed_algorithms(),
                        keys,
                    },
                ))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self {
            issuers,
            leeway_seconds: settings.leeway_seconds,
            max_lifetime_seconds: settings.max_token_lifetime_seconds,
        })
    }

    /// The JWKS caches, for start-up fetching, periodic refresh and readiness.
    pub(crate) fn jwks_caches(&self) -> Vec<Arc<JwksCache>> {
        self.issuers
            .values()
            .filter_map(|issuer| match &issuer.keys {
                KeySource::Jwks(cache) => Some(cache.clone()),
                KeySource::Hmac(_) => None,
            })
            .collect()
    }

    /// True once every JWKS issuer's keys have been fetched at least once.
    pub(crate) fn keys_ready(&self) -> bool {
        self.jwks_caches().iter().all(|cache| cache.fetched_once())
    }

    pub(crate) async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let (header, unverified) =
            preflight(token, self.leeway_seconds, self.max_lifetime_seconds)?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::UnknownIssuer)?;
        let issuer = self.issuers.get(iss).ok_or(AuthError::UnknownIssuer)?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(AuthError::DisallowedAlgorithm);
        }
        let key = match &issuer.keys {
            KeySource::Hmac(key) => key.clone(),
            KeySource::Jwks(cache) => {
                let kid = header.kid.as_deref().ok_or(AuthError::UnknownKey)?;
                match cache.lookup(kid).await {
                    Lookup::Found(found) => {
                        if found.alg.is_some_and(|alg| alg != header.alg) {
                            return Err(AuthError::DisallowedAlgorithm);
                        }
                        found.key
                    }
                    Lookup::Unknown => return Err(AuthError::UnknownKey),
                    Lookup::NeverFetched => return Err(AuthError::KeysUnavailable),
                }
            }
        };

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway_seconds;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below: aud, or client_id when there is no aud
        validation.set_issuer(&[&issuer.name]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| map_jwt_error(e.kind()))?
            .claims;

        check_audience(&claims, &issuer.audiences)?;
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|sub| !sub.is_empty())
            .ok_or(AuthError::MissingClaim("sub"))?;
        let (roles, named) = caller_facts(&claims, &issuer.roles_claim, &issuer.claims)?;
        Ok(Caller {
            iss: issuer.name.clone(),
            sub: sub.to_owned(),
            roles,
            claims: named,
        })
    }
}

fn key_source(
    issuer: &IssuerSettings,
    http: &reqwest::Client,
    refetch_interval: Duration,
    secret: &impl Fn(&str) -> Option<SecretString>,
) -> Result<KeySource, ConfigError> {
    if let Some(url) = &issuer.jwks_url {
        return Ok(KeySource::Jwks(Arc::new(JwksCache::new(
            url.clone(),
            http.clone(),
            refetch_interval,
        ))));
    }
    let var = issuer.hmac_secret_env.as_deref().unwrap_or_default();
    let value = secret(var).ok_or_else(|| {
        ConfigError::Invalid(format!(
            "issuer {}: environment variable {var} (hmac_secret_env) is not set",
            issuer.issuer
        ))
    })?;
    if value.expose_secret().len() < MIN_HMAC_SECRET_BYTES {
        return Err(ConfigError::Invalid(format!(
            "issuer {}: the secret in {var} must be at least {MIN_HMAC_SECRET_BYTES} bytes",
            issuer.issuer
        )));
    }
    Ok(KeySource::Hmac(DecodingKey::from_secret(
        value.expose_secret().as_bytes(),
    )))
}

/// Everything done with a token before its signature is checked: the header, `crit`,
/// the claims as JSON, and their times. Fuzzed (`fuzz/fuzz_targets/jwt_preflight.rs`).
///
/// # Errors
/// The token is malformed, names a critical extension, or has bad times.
pub(crate) fn preflight(
    token: &str,
    leeway_seconds: u64,
    max_lifetime_seconds: u64,
) -> Result<(jsonwebtoken::Header, Value), AuthError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
    reject_critical_extensions(token)?;
    let unverified: Value =
        jsonwebtoken::dangerous::insecure_decode_claims(token).map_err(|_| AuthError::Malformed)?;
    check_times(&unverified, leeway_seconds, max_lifetime_seconds)?;
    Ok((header, unverified))
}

/// A caller's named claims: name to its string values.
type NamedClaims = BTreeMap<String, Vec<String>>;

/// The roles and named claims a token's (not yet verified) claims would give.
///
/// # Errors
/// The roles claim has another shape than a string or an array of strings.
pub(crate) fn caller_facts(
    claims: &Value,
    roles_claim: &str,
    names: &[(String, String)],
) -> Result<(Vec<String>, NamedClaims), AuthError> {
    Ok((roles(claims, roles_claim)?, named_claims(claims, names)))
}

/// `exp` and `iat` must be numbers when present; `iat` may not be in the future
/// (beyond the leeway), and `exp` may not be further away than the lifetime limit.
fn check_times(
    claims: &Value,
    leeway_seconds: u64,
    max_lifetime_seconds: u64,
) -> Result<(), AuthError> {
    let now = jsonwebtoken::get_current_timestamp();
    let number = |name: &'static str| match claims.get(name) {
        None => Ok(None),
        Some(value) => value.as_f64().map(Some).ok_or(AuthError::NotANumber(name)),
    };
    // Seconds since the epoch fit an f64 exactly.
    let (now, leeway, lifetime) = (
        now as f64,
        leeway_seconds as f64,
        max_lifetime_seconds as f64,
    );
    if number("iat")?.is_some_and(|iat| iat > now + leeway) {
        return Err(AuthError::IssuedInFuture);
    }
    if number("exp")?.is_some_and(|exp| exp > now + lifetime + leeway) {
        return Err(AuthError::LifetimeTooLong);
    }
    number("nbf")?;
    Ok(())
}

/// RFC 7515 §4.1.11: a `crit` header names extensions that must be understood; attrgate
/// understands none, so any `crit` is refused.
fn reject_critical_extensions(token: &str) -> Result<(), AuthError> {
    use base64::Engine;
    let encoded = token.split('.').next().unwrap_or_default();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| AuthError::Malformed)?;
    let header: Value = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    if header.get("crit").is_some() {
        return Err(AuthError::UnsupportedCritical);
    }
    Ok(())
}

fn map_jwt_error(kind: &JwtErrorKind) -> AuthError {
    match kind {
        JwtErrorKind::ExpiredSignature => AuthError::Expired,
        JwtErrorKind::ImmatureSignature => AuthError::NotYetValid,
        JwtErrorKind::InvalidIssuer => AuthError::UnknownIssuer,
        JwtErrorKind::InvalidAudience => AuthError::WrongAudience,
        JwtErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
            AuthError::MissingClaim("exp")
        }
        JwtErrorKind::MissingRequiredClaim(_) => AuthError::MissingClaim("iss"),
        JwtErrorKind::InvalidAlgorithm | JwtErrorKind::InvalidAlgorithmName => {
            AuthError::DisallowedAlgorithm
        }
        JwtErrorKind::InvalidSignature
        | JwtErrorKind::InvalidRsaKey(_)
        | JwtErrorKind::InvalidEcdsaKey
        | JwtErrorKind::InvalidEddsaKey
        | JwtErrorKind::InvalidKeyFormat => AuthError::BadSignature,
        _ => AuthError::Malformed,
    }
}

/// `aud` (a string or an array) must name a configured audience; without `aud`,
/// `client_id` must, as in Cognito access tokens.
fn check_audience(claims: &Value, audiences: &HashSet<String>) -> Result<(), AuthError> {
    let matches = match (claims.get("aud"), claims.get("client_id")) {
        (Some(Value::String(aud)), _) => audiences.contains(aud),
        (Some(Value::Array(list)), _) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| audiences.contains(aud)),
        (Some(_), _) => false,
        (None, Some(Value::String(client_id))) => audiences.contains(client_id),
        (None, _) => false,
    };
    if matches {
        Ok(())
    } else {
        Err(AuthError::WrongAudience)
    }
}

/// The issuer's named claims that the token carries as a string or an array of
/// strings; any other shape (or a missing claim) is left out, so conditions on it fail.
fn named_claims(claims: &Value, names: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    names
        .iter()
        .filter_map(|(name, pointer)| {
            let values = match claims.pointer(pointer)? {
                Value::String(one) => vec![one.clone()],
                Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()?,
                _ => return None,
            };
            Some((name.clone(), values))
        })
        .collect()
}

fn roles(claims: &Value, pointer: &str) -> Result<Vec<String>, AuthError> {
    match claims.pointer(pointer) {
        None | Some(Value::Null) => Ok(Vec::new()),
        // RFC 6749 §3.3: scope tokens are separated by U+0020 only; a role name may hold
        // any other whitespace.
        Some(Value::String(roles)) => Ok(roles
            .split(' ')
            .filter(|role| !role.is_empty())
            .map(str::to_owned)
            .collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or(AuthError::InvalidRoles)
            })
            .collect(),
        Some(_) => Err(AuthError::InvalidRoles),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";
    const ISSUER: &str = "https://batch.example";

    fn verifier() -> Verifier {
        let settings: AuthSettings = serde_json::from_value(json!({
            "leeway_seconds": 0,
            "issuers": [{
                "issuer": ISSUER,
                "hmac_secret_env": "SECRET",
                "audiences": ["attrgate"],
                "roles_claim": "/realm/roles"
            }]
        }))
        .unwrap();
        Verifier::new(
            &settings,
            reqwest::Client::new(),
            REFETCH_INTERVAL_FOR_TESTS,
            |_| Some(SecretString::from(SECRET)),
        )
        .unwrap()
    }

    const REFETCH_INTERVAL_FOR_TESTS: Duration = Duration::from_secs(10);

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn sign(claims: Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_token_signed_with_the_issuers_secret_verifies_and_space_separated_roles_split() {
        let token = sign(
            json!({"iss": ISSUER, "sub": "svc", "aud": "attrgate", "exp": now() + 60, "realm": {"roles": "a  b"}}),
        );

        let caller = rt().block_on(verifier().verify(&token)).unwrap();

        assert_eq!(
            caller,
            Caller {
                iss: ISSUER.into(),
                sub: "svc".into(),
                roles: vec!["a".into(), "b".into()],
                claims: BTreeMap::new(),
            }
        );
    }

    #[test]
    fn named_claims_are_strings_or_arrays_of_strings_and_anything_else_is_absent() {
        let claims = json!({"tenant_id": "t-1", "tenants": ["a", "b"], "n": 7, "mixed": ["a", 1]});
        let names: Vec<(String, String)> = [
            ("tenant", "/tenant_id"),
            ("tenants", "/tenants"),
            ("number", "/n"),
            ("mixed", "/mixed"),
            ("missing", "/nope"),
        ]
        .iter()
        .map(|(n, p)| ((*n).to_owned(), (*p).to_owned()))
        .collect();

        let named = named_claims(&claims, &names);

        assert_eq!(
            named,
            BTreeMap::from([
                ("tenant".to_owned(), vec!["t-1".to_owned()]),
                ("tenants".to_owned(), vec!["a".to_owned(), "b".to_owned()]),
            ])
        );
    }

    #[test]
    fn client_id_stands_in_for_a_missing_aud() {
        let good =
            sign(json!({"iss": ISSUER, "sub": "s", "client_id": "attrgate", "exp": now() + 60}));
        let bad = sign(json!({"iss": ISSUER, "sub": "s", "client_id": "other", "exp": now() + 60}));

        assert!(rt().block_on(verifier().verify(&good)).is_ok());
        assert_eq!(
            rt().block_on(verifier().verify(&bad)),
            Err(AuthError::WrongAudience)
        );
    }

    #[test]
    fn an_aud_of_another_service_is_refused_even_with_a_matching_client_id() {
        let token = sign(
            json!({"iss": ISSUER, "sub": "s", "aud": ["x", "y"], "client_id": "attrgate", "exp": now() + 60}),
        );

        assert_eq!(
            rt().block_on(verifier().verify(&token)),
            Err(AuthError::WrongAudience)
        );
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        let token = sign(json!({"iss": ISSUER, "sub": "s", "aud": "attrgate"}));

        assert_eq!(
            rt().block_on(verifier().verify(&token)),
            Err(AuthError::MissingClaim("exp"))
        );
    }

    #[test]
    fn a_roles_claim_with_non_strings_is_refused() {
        let token = sign(
            json!({"iss": ISSUER, "sub": "s", "aud": "attrgate", "exp": now() + 60, "realm": {"roles": [1]}}),
        );

        assert_eq!(
            rt().block_on(verifier().verify(&token)),
            Err(AuthError::InvalidRoles)
        );
    }

    #[test]
    fn a_short_hmac_secret_stops_start_up() {
        let settings: AuthSettings = serde_json::from_value(json!({
            "issuers": [{"issuer": ISSUER, "hmac_secret_env": "S", "audiences": ["a"]}]
        }))
        .unwrap();

        let result = Verifier::new(
            &settings,
            reqwest::Client::new(),
            REFETCH_INTERVAL_FOR_TESTS,
            |_| Some(SecretString::from("short")),
        );

        assert!(
            result
                .err()
                .unwrap()
                .to_string()
                .contains("at least 32 bytes")
        );
    }
}
