//! A real authorization server on 127.0.0.1 with the demo configuration, a simulated
//! clock, and helpers to talk to it over HTTP and check its answers.

use bytes::Bytes;
use figure2_authorization_server::{AuthorizationServer, ConfigFile, serve};
use figure2_http::{HttpClient, ReceivedResponse};
use figure2_protocol::SimulatedClock;
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::form::FormParams;
use http::Method;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The simulated time every server starts at.
pub const START: u64 = 1_700_000_000;
pub const DEMO_CONFIG: &str = include_str!("../../../../config/demo.toml");
pub const AUDIENCE: &str = "figure2-resource-server";
pub const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// How a request authenticates its client (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy)]
pub enum Auth {
    /// `client_secret_basic`.
    Basic(&'static str, &'static str),
    /// `client_secret_post`.
    Post(&'static str, &'static str),
    /// A public client naming itself with `client_id` only.
    Public(&'static str),
    /// Nothing at all.
    Anonymous,
}

pub const DEMO: Auth = Auth::Basic("demo-client", "demo-secret");
pub const OTHER: Auth = Auth::Basic("other-client", "other-secret");
pub const PUBLIC: Auth = Auth::Public("public-client");

/// How to start a server: the demo configuration with `:memory:` storage by default.
pub struct Setup {
    file: ConfigFile,
    tenant: String,
    clock: SimulatedClock,
    listen: SocketAddr,
    issuer: Option<String>,
}

impl Setup {
    pub fn demo() -> Self {
        let mut file = ConfigFile::from_toml(DEMO_CONFIG).expect("demo.toml parses");
        file.database = ":memory:".into();
        Self {
            file,
            tenant: String::new(),
            clock: SimulatedClock::starting_at(START),
            listen: "127.0.0.1:0".parse().expect("loopback address"),
            issuer: None,
        }
    }

    /// Adjusts the configuration file (lifetimes, rotation, ...).
    pub fn configure(mut self, f: impl FnOnce(&mut ConfigFile)) -> Self {
        f(&mut self.file);
        self
    }

    /// An issuer with a path component (RFC 8414 §3.1), e.g. `/tenant`.
    pub fn tenant(mut self, path: &str) -> Self {
        self.tenant = path.to_owned();
        self
    }

    /// Shares a clock with another server (restarts).
    pub fn clock(mut self, clock: &SimulatedClock) -> Self {
        self.clock = clock.clone();
        self
    }

    pub fn database(mut self, db: &TempDb) -> Self {
        self.file.database = db.path.to_str().expect("UTF-8 temp path").to_owned();
        self
    }

    /// One issuer for several instances (as behind a load balancer); requests still go to
    /// this instance's own address.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.to_owned());
        self
    }

    /// Keeps the state in PostgreSQL (`url` from [`scratch_postgres`]).
    pub fn postgres(mut self, url: &str) -> Self {
        self.file.database = url.to_owned();
        self
    }

    /// Listens on a given address (a restart keeps its port, hence its issuer).
    pub fn listen_on(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    pub async fn start(self) -> TestServer {
        let listener = TcpListener::bind(self.listen).await.expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let issuer = format!("http://{addr}{}", self.tenant);
        let mut file = self.file;
        file.issuer = Some(self.issuer.clone().unwrap_or_else(|| issuer.clone()));
        let config = file.resolve().expect("test configuration resolves");
        let server = AuthorizationServer::open(config, Arc::new(self.clock.clone())).await.expect("server starts");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, server.clone(), async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            issuer,
            clock: self.clock,
            server,
            http: HttpClient::new(),
            shutdown: Some(tx),
            task: Some(task),
        }
    }
}

/// A running authorization server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub issuer: String,
    pub clock: SimulatedClock,
    pub server: Arc<AuthorizationServer>,
    pub http: HttpClient,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestServer {
    /// Shuts the server down and waits until it has stopped serving.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server stops cleanly");
        }
    }

    /// An endpoint below the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Sends anything to a path of the host (not necessarily below the issuer).
    pub async fn send_raw(
        &self,
        method: Method,
        host_path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> ReceivedResponse {
        let url = format!("http://{}{host_path}", self.addr);
        self.http.send(method, &url, headers, Some(body.into())).await.expect("HTTP exchange")
    }

    pub async fn get(&self, host_path: &str) -> ReceivedResponse {
        self.send_raw(Method::GET, host_path, &[], Bytes::new()).await
    }

    /// The issuer's path component (`""` or `/tenant`).
    pub fn base_path(&self) -> &str {
        let rest = self.issuer.strip_prefix("http://").unwrap_or(&self.issuer);
        rest.find('/').map_or("", |i| &rest[i..])
    }

    /// POSTs a form to an endpoint below the issuer, authenticating as `auth`.
    pub async fn post_form(&self, endpoint: &str, auth: Auth, params: &[(&str, &str)]) -> ReceivedResponse {
        let mut pairs: Vec<(&str, &str)> = params.to_vec();
        let basic;
        let mut headers = vec![FORM];
        match auth {
            Auth::Basic(id, secret) => {
                basic = ClientAuthentication::basic_header_value(id, secret);
                headers.push(("authorization", basic.as_str()));
            }
            Auth::Post(id, secret) => {
                pairs.push(("client_id", id));
                pairs.push(("client_secret", secret));
            }
            Auth::Public(id) => pairs.push(("client_id", id)),
            Auth::Anonymous => {}
        }
        let body = form(&pairs);
        let path = format!("{}{endpoint}", self.base_path());
        self.send_raw(Method::POST, &path, &headers, body).await
    }

    pub async fn token(&self, auth: Auth, params: &[(&str, &str)]) -> ReceivedResponse {
        self.post_form("/token", auth, params).await
    }

    /// Steps A→B with the password grant for alice; must succeed.
    pub async fn password_grant(&self, auth: Auth, scope: Option<&str>) -> Value {
        let mut params = vec![("grant_type", "password"), ("username", "alice"), ("password", "alice-password")];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        ok_json(&self.token(auth, &params).await)
    }

    /// Step G.
    pub async fn refresh(&self, auth: Auth, refresh_token: &str, scope: Option<&str>) -> ReceivedResponse {
        let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        self.token(auth, &params).await
    }

    /// Steps G→H; must succeed.
    pub async fn refresh_ok(&self, auth: Auth, refresh_token: &str, scope: Option<&str>) -> Value {
        ok_json(&self.refresh(auth, refresh_token, scope).await)
    }

    /// Step G with a token that must be refused with `invalid_grant`.
    pub async fn refresh_refused(&self, auth: Auth, refresh_token: &str) {
        let r = self.refresh(auth, refresh_token, None).await;
        assert_error(&r, 400, "invalid_grant");
    }

    pub async fn revoke(&self, auth: Auth, token: &str, hint: Option<&str>) -> ReceivedResponse {
        let mut params = vec![("token", token)];
        if let Some(hint) = hint {
            params.push(("token_type_hint", hint));
        }
        self.post_form("/revoke", auth, &params).await
    }

    /// RFC 7662 §2.1; the answer must be a 200 JSON body.
    pub async fn introspect(&self, auth: Auth, token: &str) -> Value {
        let r = self.post_form("/introspect", auth, &[("token", token)]).await;
        assert_eq!(r.status, 200, "introspection: {}", r.body_text());
        assert_no_store(&r);
        json_body(&r)
    }

    pub async fn metadata(&self) -> Value {
        let r = self.get(&format!("/.well-known/oauth-authorization-server{}", self.base_path())).await;
        assert_eq!(r.status, 200, "metadata: {}", r.body_text());
        json_body(&r)
    }

    pub async fn jwks(&self) -> Value {
        let r = self.get(&format!("{}/jwks.json", self.base_path())).await;
        assert_eq!(r.status, 200, "jwks: {}", r.body_text());
        json_body(&r)
    }
}

/// A database file in the temp directory, removed (with its WAL files) on drop.
pub struct TempDb {
    pub path: PathBuf,
}

impl TempDb {
    pub fn new(name: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let unique = format!(
            "figure2-as-it-{name}-{}-{}-{nanos}.db",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let db = Self { path: std::env::temp_dir().join(unique) };
        db.remove();
        db
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Encodes a form body.
pub fn form(pairs: &[(&str, &str)]) -> String {
    figure2_protocol::form::encode(pairs.iter().map(|(k, v)| (*k, Some(*v))))
}

/// Parses the query of a URL (a `Location`) as form parameters.
pub fn query_params(url: &str) -> FormParams {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    FormParams::parse(query.as_bytes()).expect("well-formed query")
}

#[track_caller]
pub fn json_body(r: &ReceivedResponse) -> Value {
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct:?}, body {}", r.body_text());
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body_text()))
}

/// RFC 6749 §5.1: `Cache-Control: no-store` and `Pragma: no-cache`.
#[track_caller]
pub fn assert_no_store(r: &ReceivedResponse) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "Cache-Control of {} {}", r.status, r.body_text());
    assert_eq!(r.header("pragma"), Some("no-cache"), "Pragma of {} {}", r.status, r.body_text());
}

/// A successful §5.1 token response: 200, JSON, no-store headers.
#[track_caller]
pub fn ok_json(r: &ReceivedResponse) -> Value {
    assert_eq!(r.status, 200, "expected 200, got {}: {}", r.status, r.body_text());
    assert_no_store(r);
    json_body(r)
}

/// A §5.2 error response: the status, a JSON body whose `error` is `code`, an
/// `error_description` (if any) of allowed characters only, and the no-store headers.
#[track_caller]
pub fn assert_error(r: &ReceivedResponse, status: u16, code: &str) -> Value {
    assert_eq!(r.status, status, "expected {status} {code}, got {}: {}", r.status, r.body_text());
    let body = json_body(r);
    assert_eq!(body["error"], code, "error code in {body}");
    if let Some(d) = body.get("error_description") {
        let d = d.as_str().expect("error_description is a string");
        assert!(d.chars().all(figure2_protocol::error::is_error_text_char), "§5.2 charset: {d:?}");
    }
    assert_no_store(r);
    body
}

/// A string member of a JSON object.
#[track_caller]
pub fn field(v: &Value, name: &str) -> String {
    v[name].as_str().unwrap_or_else(|| panic!("{name} missing from {v}")).to_owned()
}

/// The `kid` in a JWT's header.
pub fn kid_of(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).expect("JWT header").kid.expect("kid in header")
}

/// Verifies a JWT access token's signature with the key named by its `kid` in `jwks`
/// (what a resource server does in step D). Time-based claims are not checked here: the
/// simulated clock is in 2023.
pub fn verify_with_jwks(jwt: &str, jwks: &Value) -> Result<(Header, Value), String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    let kid = header.kid.clone().ok_or("no kid")?;
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| e.to_string())?;
    let jwk = set.find(&kid).ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Value>(jwt, &key, &validation).map_err(|e| e.to_string())?;
    Ok((data.header, data.claims))
}

/// The `kid`s a JWKS publishes, in order.
pub fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"].as_array().expect("keys array").iter().map(|k| field(k, "kid")).collect()
}

/// A fresh PostgreSQL schema for one test, or `None` (the test then returns at once) if no
/// PostgreSQL server is configured. Panics where PostgreSQL is required (CI).
pub async fn scratch_postgres(test: &str) -> Option<figure2_authorization_server::store::postgres::ScratchDatabase> {
    let base = postgres_server(test)?;
    Some(
        figure2_authorization_server::store::postgres::ScratchDatabase::create(&base)
            .await
            .expect("create a scratch schema"),
    )
}

/// The configured PostgreSQL server's URL, or `None` (skip) — panics where it is required.
pub fn postgres_server(test: &str) -> Option<String> {
    use figure2_authorization_server::store::postgres::{TEST_DATABASE_ENV, test_database};
    match test_database() {
        Ok(Some(base)) => Some(base),
        Ok(None) => {
            eprintln!("{test}: skipped: no PostgreSQL server ({TEST_DATABASE_ENV} is not set)");
            None
        }
        Err(e) => panic!("{test}: {e}"),
    }
}
