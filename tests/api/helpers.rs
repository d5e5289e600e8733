//! Test harness: moto (one per test process), a JWKS server, token minting, and
//! `spawn_app()` returning a `TestApp` with typed request helpers.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use attrgate::config::Settings;
use attrgate::startup::Application;
use aws_config::BehaviorVersion;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::{Credentials, Region};
use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, AttributeType, MessageActionType, SchemaAttributeType,
};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub(crate) const AUDIT_KEY: &str = "test-audit-key-test-audit-key-0123456789";
pub(crate) const BATCH_SECRET: &str = "test-batch-secret-test-batch-secret-0123";
pub(crate) const AUDIENCE: &str = "attrgate";
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

// ---------- moto ----------

struct Moto {
    url: String,
    // Held open for the life of the test process; when it closes, the wrapper shell kills moto.
    _stdin: Mutex<ChildStdin>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn moto_binary() -> PathBuf {
    if let Ok(path) = std::env::var("ATTRGATE_MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    panic!(
        "moto_server not found: these tests need the Cognito emulator. Run scripts/bootstrap-python \
         (or scripts/test), or set ATTRGATE_MOTO_SERVER to a moto_server binary."
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `command` (a shell command line) in the background for the life of this test
/// process, waits until it listens on `port` of 127.0.0.1, and returns the pipe that
/// keeps it alive: when this process's end of it closes (process exit), the wrapper
/// shell kills the server.
pub(crate) fn background_server(name: &str, command: &str, port: u16) -> ChildStdin {
    let script = format!("{command} & m=$!; read _; kill $m");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("start {name}: {error}"));
    let stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || child.wait());
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{name} did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stdin
}

/// The URL of this process's moto server, started on first use.
pub(crate) fn moto_url() -> String {
    MOTO.get_or_init(|| {
        let binary = moto_binary();
        assert!(
            binary.exists(),
            "moto_server not found at {}",
            binary.display()
        );
        let port = free_port();
        let command = format!(
            "'{}' -H 127.0.0.1 -p {port} >/dev/null 2>&1",
            binary.display()
        );
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            _stdin: Mutex::new(background_server("moto_server", &command, port)),
        }
    })
    .url
    .clone()
}

pub(crate) async fn cognito_client(region: &str) -> Client {
    cognito_client_at(&moto_url(), region).await
}

/// An SDK client for the Cognito emulator at `endpoint`, with test credentials.
pub(crate) async fn cognito_client_at(endpoint: &str, region: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .load()
        .await;
    Client::new(&config)
}

/// Creates a fresh pool (so tests never share state) with mutable `custom:plan` and
/// `custom:tenant_id`.
pub(crate) async fn create_pool(client: &Client) -> String {
    create_pool_with(client, &[("plan", true), ("tenant_id", true)]).await
}

/// Creates a fresh pool with these string attributes (`name` without `custom:` for
/// custom ones, the bare name to change a standard one), each mutable or not.
pub(crate) async fn create_pool_with(client: &Client, attributes: &[(&str, bool)]) -> String {
    let mut request = client
        .create_user_pool()
        .pool_name(format!("test-{}", uuid::Uuid::new_v4()));
    for (name, mutable) in attributes {
        request = request.schema(
            SchemaAttributeType::builder()
                .name(*name)
                .attribute_data_type(AttributeDataType::String)
                .mutable(*mutable)
                .build(),
        );
    }
    request
        .send()
        .await
        .expect("create a user pool in moto")
        .user_pool()
        .and_then(|pool| pool.id())
        .unwrap()
        .to_owned()
}

pub(crate) async fn create_user(
    client: &Client,
    pool_id: &str,
    username: &str,
    attributes: &[(&str, &str)],
) {
    let mut request = client
        .admin_create_user()
        .user_pool_id(pool_id)
        .username(username)
        .message_action(MessageActionType::Suppress);
    for (name, value) in attributes {
        request = request.user_attributes(
            AttributeType::builder()
                .name(*name)
                .value(*value)
                .build()
                .unwrap(),
        );
    }
    request.send().await.expect("create a user in moto");
}

/// Creates a group in the pool and puts the user in it.
pub(crate) async fn add_to_group(client: &Client, pool_id: &str, group: &str, username: &str) {
    // The group may exist already (several users of one test); only the add must work.
    let _ = client
        .create_group()
        .user_pool_id(pool_id)
        .group_name(group)
        .send()
        .await;
    client
        .admin_add_user_to_group()
        .user_pool_id(pool_id)
        .group_name(group)
        .username(username)
        .send()
        .await
        .expect("add a user to a group in moto");
}

pub(crate) async fn user_attributes(
    client: &Client,
    pool_id: &str,
    username: &str,
) -> HashMap<String, String> {
    client
        .admin_get_user()
        .user_pool_id(pool_id)
        .username(username)
        .send()
        .await
        .expect("read the user from moto")
        .user_attributes()
        .iter()
        .map(|a| {
            (
                a.name().to_owned(),
                a.value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

// ---------- keys, JWKS and tokens ----------

pub(crate) fn key_pem(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/keys/{name}")).unwrap()
}

pub(crate) fn rsa_key(name: &str) -> EncodingKey {
    EncodingKey::from_rsa_pem(&key_pem(name)).unwrap()
}

pub(crate) fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk
}

/// A JWKS served over HTTP on 127.0.0.1, whose keys a test may change, counting fetches.
/// A Cognito stand-in on a free port of 127.0.0.1, for tests that need answers moto
/// cannot give: `answer(target, body)` gives each call's status and AWS JSON 1.1 body,
/// where `target` is its `X-Amz-Target` (`AWSCognitoIdentityProviderService.Operation`).
/// Returns its URL.
pub(crate) fn cognito_stand_in<F>(answer: F) -> String
where
    F: Fn(&str, &[u8]) -> (u16, String) + Clone + Send + 'static,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        let answer = answer.clone();
        App::new().default_service(web::to(
            move |req: actix_web::HttpRequest, body: web::Bytes| {
                let target = req
                    .headers()
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let (status, text) = answer(target, &body);
                async move {
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                        .insert_header(("content-type", "application/x-amz-json-1.1"))
                        .insert_header(("x-amzn-requestid", "stub-request-id"))
                        .body(text)
                }
            },
        ))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    url
}

#[derive(Clone)]
pub(crate) struct JwksServer {
    pub url: String,
    pub issuer: String,
    pub keys: Arc<Mutex<JwkSet>>,
    pub fetches: Arc<AtomicUsize>,
    /// While set, the server answers 500 instead of the key set.
    pub failing: Arc<AtomicBool>,
}

impl JwksServer {
    pub(crate) async fn start(keys: Vec<Jwk>) -> Self {
        let keys = Arc::new(Mutex::new(JwkSet { keys }));
        let fetches = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let (served, counted, broken) = (keys.clone(), fetches.clone(), failing.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (served, counted, broken) = (served.clone(), counted.clone(), broken.clone());
            App::new().route(
                "/.well-known/jwks.json",
                web::get().to(move || {
                    let (served, counted, broken) =
                        (served.clone(), counted.clone(), broken.clone());
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        if broken.load(Ordering::SeqCst) {
                            return HttpResponse::InternalServerError().finish();
                        }
                        let set = served.lock().unwrap().clone();
                        HttpResponse::Ok().json(set)
                    }
                }),
            )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        let base = format!("http://127.0.0.1:{port}");
        Self {
            url: format!("{base}/.well-known/jwks.json"),
            issuer: base,
            keys,
            fetches,
            failing,
        }
    }

    pub(crate) fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

pub(crate) fn now() -> i64 {
    jsonwebtoken::get_current_timestamp() as i64
}

/// Claims for a token from `issuer` with `roles`; tests edit them to build attacks.
pub(crate) fn claims(issuer: &str, roles: &[&str]) -> Value {
    json!({
        "iss": issuer,
        "sub": "test-service",
        "aud": AUDIENCE,
        "iat": now(),
        "nbf": now() - 5,
        "exp": now() + 600,
        "roles": roles,
    })
}

pub(crate) fn sign(claims: &Value, key: &EncodingKey, alg: Algorithm, kid: Option<&str>) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

// ---------- the application ----------

pub(crate) struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub cognito: Client,
    pub pool_id: String,
    pub audit_path: PathBuf,
    pub jwks: JwksServer,
    pub batch_issuer: String,
    signing_key: EncodingKey,
}

pub(crate) const PRIMARY_KID: &str = "issuer-a-1";

/// Options for `spawn_app_with`.
pub(crate) struct Options {
    pub policy_file: PathBuf,
    pub cognito_endpoint: Option<String>,
    pub cognito_timeout_seconds: u64,
    pub validate_schema: bool,
    pub extra_config: String,
    /// YAML lines added under `cognito:` (indented by two spaces).
    pub cognito_extra: String,
    /// The JWKS server answers errors from the start (as if down), and the app is
    /// returned without waiting for it to be ready.
    pub jwks_down: bool,
    pub audit_path: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            policy_file: PathBuf::from(format!("{FIXTURES}/policy.yaml")),
            cognito_endpoint: None,
            cognito_timeout_seconds: 10,
            validate_schema: true,
            extra_config: String::new(),
            cognito_extra: String::new(),
            jwks_down: false,
            audit_path: None,
        }
    }
}

pub(crate) fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("attrgate-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub(crate) async fn spawn_app_with(options: Options) -> TestApp {
    let signing_key = rsa_key("issuer-a-rsa.pem");
    let jwks = JwksServer::start(vec![jwk(&signing_key, Algorithm::RS256, PRIMARY_KID)]).await;
    jwks.failing.store(options.jwks_down, Ordering::SeqCst);
    let audit_path = options
        .audit_path
        .unwrap_or_else(|| temp_dir().join("audit.jsonl"));
    let endpoint = options.cognito_endpoint.unwrap_or_else(moto_url);
    let batch_issuer = "https://batch.test".to_owned();
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
policy_file: "{policy}"
cognito:
  endpoint_url: "{endpoint}"
  timeout_seconds: {timeout}
  validate_schema: {validate_schema}
{cognito_extra}auth:
  leeway_seconds: 0
  issuers:
    - issuer: "{issuer}"
      jwks_url: "{jwks_url}"
      audiences: [{AUDIENCE}]
      roles_claim: /roles
      claims: {{tenant: /tenant_id}}
      algorithms: [RS256, ES256]
    - issuer: "{batch_issuer}"
      hmac_secret_env: TEST_BATCH_SECRET
      audiences: [{AUDIENCE}]
      roles_claim: /roles
audit:
  path: "{audit}"
  hmac_key_env: TEST_AUDIT_KEY
{extra}
"#,
        policy = options.policy_file.display(),
        issuer = jwks.issuer,
        jwks_url = jwks.url,
        audit = audit_path.display(),
        extra = options.extra_config,
        timeout = options.cognito_timeout_seconds,
        validate_schema = options.validate_schema,
        cognito_extra = options.cognito_extra,
    );
    let settings =
        Settings::from_yaml(&yaml, Path::new("test-config.yaml"), Vec::new()).expect("test config");
    let secrets: BTreeMap<String, String> = [
        ("TEST_AUDIT_KEY".to_owned(), AUDIT_KEY.to_owned()),
        ("TEST_BATCH_SECRET".to_owned(), BATCH_SECRET.to_owned()),
    ]
    .into();
    let aws = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .region(Region::new("us-east-1"))
        .load()
        .await;
    let application =
        Application::build_with(settings, aws, &move |name| secrets.get(name).cloned())
            .await
            .expect("build the application");
    let port = application.port();
    tokio::spawn(application.run_until_stopped());
    let cognito = cognito_client("us-east-1").await;
    let pool_id = create_pool(&cognito).await;
    create_user(
        &cognito,
        &pool_id,
        "ann",
        &[("email", "ann@example.com"), ("given_name", "Ann")],
    )
    .await;
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        http: reqwest::Client::new(),
        cognito,
        pool_id,
        audit_path,
        jwks,
        batch_issuer,
        signing_key,
    };
    if !options.jwks_down {
        app.wait_until_ready().await;
    }
    app
}

pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    async fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .http
                .get(format!("{}/readyz", self.address))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if matches!(status, Ok(200)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the app did not become ready: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A valid token from the primary issuer with these roles.
    pub(crate) fn token(&self, roles: &[&str]) -> String {
        sign(
            &claims(&self.jwks.issuer, roles),
            &self.signing_key,
            Algorithm::RS256,
            Some(PRIMARY_KID),
        )
    }

    pub(crate) fn token_with(&self, claims: &Value) -> String {
        sign(
            claims,
            &self.signing_key,
            Algorithm::RS256,
            Some(PRIMARY_KID),
        )
    }

    pub(crate) fn attributes_url(&self, pool_id: &str, username: &str) -> String {
        format!(
            "{}/pools/{pool_id}/users/{username}/attributes",
            self.address
        )
    }

    /// PATCHes a JSON body for `ann` in this test's pool.
    pub(crate) async fn patch(&self, token: &str, body: Value) -> Answer {
        self.patch_to(&self.pool_id.clone(), "ann", token, body, "")
            .await
    }

    /// PATCHes `{"attributes": attributes}` for `ann` with a fresh token holding `roles`.
    pub(crate) async fn patch_as(&self, roles: &[&str], attributes: Value) -> Answer {
        self.patch(&self.token(roles), json!({ "attributes": attributes }))
            .await
    }

    pub(crate) async fn patch_to(
        &self,
        pool_id: &str,
        username: &str,
        token: &str,
        body: Value,
        query: &str,
    ) -> Answer {
        let response = self
            .http
            .patch(format!("{}{query}", self.attributes_url(pool_id, username)))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        Answer::from(response).await
    }

    pub(crate) async fn patch_raw(
        &self,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = self
            .http
            .patch(self.attributes_url(&self.pool_id, "ann"))
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        Answer::from(request.send().await.unwrap()).await
    }

    /// GETs `username`'s attributes in this test's pool with `token`.
    pub(crate) async fn read(&self, token: &str, username: &str) -> Answer {
        let response = self
            .http
            .get(self.attributes_url(&self.pool_id, username))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        Answer::from(response).await
    }

    /// PATCHes `{"attributes": attributes}` for `username` with `If-Match: etag`.
    pub(crate) async fn patch_if_match(
        &self,
        token: &str,
        username: &str,
        attributes: Value,
        etag: &str,
    ) -> Answer {
        let response = self
            .http
            .patch(self.attributes_url(&self.pool_id, username))
            .bearer_auth(token)
            .header("if-match", etag)
            .json(&json!({ "attributes": attributes }))
            .send()
            .await
            .unwrap();
        Answer::from(response).await
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        Answer::from(
            self.http
                .get(format!("{}{path}", self.address))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn ann(&self) -> HashMap<String, String> {
        user_attributes(&self.cognito, &self.pool_id, "ann").await
    }

    pub(crate) fn audit_records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit_path).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("audit lines are JSON"))
            .collect()
    }

    pub(crate) fn audit_text(&self) -> String {
        std::fs::read_to_string(&self.audit_path).unwrap_or_default()
    }
}

impl Answer {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Self {
            status,
            headers,
            body,
        }
    }

    pub(crate) fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The attribute names of a 403's `denied` list, in order.
    pub(crate) fn denied_attributes(&self) -> Vec<String> {
        self.body["denied"]
            .as_array()
            .map(|denied| {
                denied
                    .iter()
                    .map(|d| d["attribute"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts a problem+json error with this status and the documented fields.
    pub(crate) fn assert_problem(&self, status: u16) {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        assert_eq!(self.content_type(), "application/problem+json");
        for field in ["type", "title", "status", "detail", "request_id"] {
            assert!(
                self.body.get(field).is_some(),
                "problem lacks {field}: {}",
                self.body
            );
        }
    }
}
