//! The child side of the harness (`figure2-bench serve TARGET`): each measured server in
//! a process of its own, on the same stack (`figure2_http::serve`, a multi-threaded tokio
//! runtime, loopback TCP).
//!
//! | target | what it serves |
//! |---|---|
//! | `hello` | baseline: `200 hello`, nothing else |
//! | `verify` | baseline: verifies an ES256 JWT with jsonwebtoken (key parsed once), nothing else |
//! | `standin` | baseline: a bare refresh grant: form parse, HashMap lookup and swap under a mutex, ES256 sign, JSON |
//! | `rs` | the real resource server, discovered against a real in-process authorization server |
//! | `as` | two real authorization servers (rotation on, rotation off) over one durable SQLite store |
//! | `cycles` | both real servers and `figure2_client::Client`s sharing one `SimulatedClock` |
//!
//! No tracing subscriber is installed: the servers' `info` logs are off, as they would be
//! under load in production (logging every request is a cost of its own).

use crate::procfs;
use bytes::Bytes;
use figure2_authorization_server::{AuthorizationServer, ConfigFile, SqliteStore};
use figure2_client::{Client, ClientConfig};
use figure2_http::{Handler, HttpClient, HttpResponse, Incoming, Limits};
use figure2_protocol::access_token::{AccessTokenClaims, Audience};
use figure2_protocol::secret::{ClientSecret, Secret};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{Clock, SimulatedClock, SystemClock};
use figure2_resource_server::{ResourceServer, ResourceServerConfig};
use figure2_runner::world::{DEMO_CLIENTS, DEMO_CONFIG, DEMO_USERS};
use http::{Method, Request};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The name of every thread of the servers' runtime (so that, in the `cycles` target,
/// the servers' CPU time can be told from the clients').
pub const SERVER_THREAD: &str = "f2-srv";

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// hello, verify, standin, rs, as or cycles.
    pub target: String,
    /// verify: the JWK (JSON) of the key that signed the tokens.
    #[arg(long)]
    pub jwk: Option<String>,
    /// standin: the first refresh token of each chain.
    #[arg(long, value_delimiter = ',')]
    pub tokens: Vec<String>,
    /// standin: extra live entries in the map (to match the authorization server's store).
    #[arg(long, default_value_t = 0)]
    pub prefill: u64,
    /// as, cycles: the SQLite file.
    #[arg(long)]
    pub db: Option<String>,
    /// cycles: how many clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// The process ends by itself after this many seconds, whatever happens.
    #[arg(long, default_value_t = 3600)]
    pub max_seconds: u64,
}

/// The demo client every line authenticates as (RFC 6749 §2.3.1 Basic).
pub fn demo_client() -> (&'static str, &'static str) {
    let (id, secret) = DEMO_CLIENTS[0];
    (id, secret.unwrap_or_default())
}

pub fn demo_user() -> (&'static str, &'static str) {
    DEMO_USERS[0]
}

pub fn serve_main(args: ServeArgs) -> ExitCode {
    let max = args.max_seconds;
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(max));
        eprintln!("figure2-bench serve: --max-seconds {max} reached; exiting");
        std::process::exit(3);
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().thread_name(SERVER_THREAD).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("figure2-bench serve: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let host = match runtime.block_on(start(&args, stop_rx)) {
        Ok(host) => host,
        Err(e) => {
            eprintln!("figure2-bench serve {}: {e}", args.target);
            return ExitCode::FAILURE;
        }
    };
    println!("READY {}", host.ready);
    let _ = std::io::stdout().flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match (&host.cycles, words.as_slice()) {
            (Some(cycles), ["cycles", seconds]) => match seconds.parse::<f64>() {
                Ok(s) if (0.0..=600.0).contains(&s) => cycles.run(Duration::from_secs_f64(s)),
                _ => json!({"error": "cycles SECONDS, at most 600"}),
            },
            _ => json!({"error": format!("unknown command {line:?}")}),
        };
        println!("RESULT {reply}");
        let _ = std::io::stdout().flush();
    }
    let _ = stop_tx.send(true);
    drop(host);
    runtime.shutdown_timeout(Duration::from_secs(5));
    ExitCode::SUCCESS
}

struct Host {
    ready: Value,
    cycles: Option<Cycles>,
}

async fn bind() -> Result<TcpListener, String> {
    TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("bind 127.0.0.1:0: {e}"))
}

fn addr_of(listener: &TcpListener) -> Result<String, String> {
    listener.local_addr().map(|a| a.to_string()).map_err(|e| e.to_string())
}

/// Serves `handler` on `listener` with the shared stack until the harness says stop.
fn spawn_serve<H: Handler>(listener: TcpListener, handler: Arc<H>, stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    tokio::spawn(figure2_http::serve(listener, handler, Limits::default(), async move {
        let _ = stop.wait_for(|s| *s).await;
    }));
}

async fn start(args: &ServeArgs, stop: watch::Receiver<bool>) -> Result<Host, String> {
    let listener = bind().await?;
    let addr = addr_of(&listener)?;
    let ready = |extra: Value| {
        let mut v = json!({"addr": addr});
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    };
    match args.target.as_str() {
        "hello" => {
            spawn_serve(listener, Arc::new(Hello), &stop);
            Ok(Host { ready: ready(json!({})), cycles: None })
        }
        "verify" => {
            let jwk = args.jwk.as_deref().ok_or("verify needs --jwk")?;
            spawn_serve(listener, Arc::new(VerifyOnly::new(jwk)?), &stop);
            Ok(Host { ready: ready(json!({})), cycles: None })
        }
        "standin" => {
            let standin = RefreshStandIn::new(&args.tokens, args.prefill)?;
            spawn_serve(listener, Arc::new(standin), &stop);
            Ok(Host { ready: ready(json!({})), cycles: None })
        }
        "rs" => {
            // The authorization server only issues the tokens and publishes its keys here.
            let as_listener = bind().await?;
            let issuer = format!("http://{}", addr_of(&as_listener)?);
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let server = AuthorizationServer::new(as_config(&issuer, ":memory:", true)?, clock.clone())
                .map_err(|e| e.to_string())?;
            let audience = server.config().audience.clone();
            spawn_serve(as_listener, server, &stop);
            let rs =
                ResourceServer::discover(ResourceServerConfig::new(issuer.clone(), audience), clock, HttpClient::new())
                    .await
                    .map_err(|e| e.to_string())?;
            spawn_serve(listener, rs, &stop);
            Ok(Host { ready: ready(json!({"as": issuer.trim_start_matches("http://")})), cycles: None })
        }
        "as" => {
            // Two servers over one store: the same durable file, rotation on and off.
            let db = args.db.as_deref().ok_or("as needs --db")?;
            let store = Arc::new(SqliteStore::open(db).map_err(|e| e.to_string())?);
            let off_listener = bind().await?;
            let off_issuer = format!("http://{}", addr_of(&off_listener)?);
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let on = AuthorizationServer::with_store(
                as_config(&format!("http://{addr}"), db, true)?,
                clock.clone(),
                store.clone(),
            )
            .map_err(|e| e.to_string())?;
            let off = AuthorizationServer::with_store(as_config(&off_issuer, db, false)?, clock, store)
                .map_err(|e| e.to_string())?;
            spawn_serve(listener, on, &stop);
            spawn_serve(off_listener, off, &stop);
            Ok(Host { ready: ready(json!({"rotation_off": off_issuer.trim_start_matches("http://")})), cycles: None })
        }
        "cycles" => {
            let db = args.db.as_deref().ok_or("cycles needs --db")?;
            let cycles = Cycles::start(listener, db, args.clients.clamp(1, 1024), &stop).await?;
            Ok(Host { ready: ready(json!({"clients": cycles.clients.len()})), cycles: Some(cycles) })
        }
        other => Err(format!("unknown target {other:?}")),
    }
}

/// The demo configuration with this issuer, database and rotation setting.
pub fn as_config(issuer: &str, database: &str, rotation: bool) -> Result<figure2_authorization_server::Config, String> {
    let mut table: toml::Table = toml::from_str(DEMO_CONFIG).map_err(|e| e.to_string())?;
    table.insert("issuer".into(), issuer.into());
    table.insert("database".into(), database.into());
    table.insert("always_issue_new_refresh_token".into(), rotation.into());
    table.remove("listen");
    let file: ConfigFile = table.try_into().map_err(|e: toml::de::Error| e.to_string())?;
    file.resolve().map_err(|e| e.to_string())
}

/// Baseline: the bare stack.
struct Hello;

impl Handler for Hello {
    async fn handle(self: Arc<Self>, _request: Request<Incoming>) -> HttpResponse {
        figure2_http::text(200, "text/plain", Bytes::from_static(b"hello"), &[])
    }
}

/// Baseline: a handler that only verifies the bearer JWT (ES256, jsonwebtoken with the
/// aws_lc_rs backend, key and validation built once), as a minimal service would.
struct VerifyOnly {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
}

impl VerifyOnly {
    fn new(jwk: &str) -> Result<Self, String> {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(jwk).map_err(|e| format!("--jwk: {e}"))?;
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| format!("--jwk: {e}"))?;
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        // Signature only: the same switches the resource server uses.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        Ok(Self { key, validation })
    }
}

impl Handler for VerifyOnly {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token.map(|t| jsonwebtoken::decode::<AccessTokenClaims>(t, &self.key, &self.validation)) {
            Some(Ok(_)) => figure2_http::text(200, "text/plain", Bytes::from_static(b"ok"), &[]),
            _ => figure2_http::text(401, "text/plain", Bytes::from_static(b"invalid"), &[]),
        }
    }
}

/// Baseline: the refresh grant with nothing around it. The map is keyed by the refresh
/// token itself; each refresh removes the presented token and inserts a new one (rotation).
struct RefreshStandIn {
    families: Mutex<HashMap<String, Arc<StandInFamily>>>,
    key: jsonwebtoken::EncodingKey,
    header: jsonwebtoken::Header,
}

struct StandInFamily {
    client_id: String,
    subject: String,
    scope: String,
}

#[derive(serde::Deserialize)]
struct StandInForm {
    grant_type: String,
    refresh_token: String,
}

#[derive(serde::Serialize)]
struct StandInAnswer<'a> {
    access_token: String,
    token_type: &'a str,
    expires_in: u64,
    refresh_token: String,
    scope: &'a str,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    figure2_protocol::secret::encode_token(&bytes)
}

impl RefreshStandIn {
    fn new(tokens: &[String], prefill: u64) -> Result<Self, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(|e| e.to_string())?;
        let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
        let header = figure2_protocol::access_token::header(jsonwebtoken::Algorithm::ES256, "standin");
        let (client_id, _) = demo_client();
        let family = Arc::new(StandInFamily {
            client_id: client_id.to_owned(),
            subject: demo_user().0.to_owned(),
            scope: "read write".to_owned(),
        });
        let mut families = HashMap::with_capacity(tokens.len() + prefill as usize);
        for t in tokens {
            families.insert(t.clone(), family.clone());
        }
        for _ in 0..prefill.min(10_000_000) {
            families.insert(random_token(), family.clone());
        }
        Ok(Self { families: Mutex::new(families), key, header })
    }
}

impl Handler for RefreshStandIn {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
        let error = |status, code: &str| figure2_http::json(status, &json!({ "error": code }), &[]);
        if request.method() != Method::POST {
            return error(405, "invalid_request");
        }
        let Ok(body) = figure2_http::read_body(request.into_body(), 16 * 1024).await else {
            return error(400, "invalid_request");
        };
        let Ok(form) = serde_urlencoded::from_bytes::<StandInForm>(&body) else {
            return error(400, "invalid_request");
        };
        if form.grant_type != "refresh_token" {
            return error(400, "unsupported_grant_type");
        }
        let new_token = random_token();
        let family = {
            let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
            let Some(family) = families.remove(&form.refresh_token) else {
                drop(families);
                return error(400, "invalid_grant");
            };
            families.insert(new_token.clone(), family.clone());
            family
        };
        let now = SystemClock.now();
        let mut jti = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut jti);
        let claims = AccessTokenClaims {
            iss: "http://127.0.0.1".into(),
            sub: family.subject.clone(),
            aud: Audience::One("figure2-resource-server".into()),
            exp: (now + 3600).into(),
            iat: now.into(),
            nbf: None,
            jti: figure2_protocol::secret::encode_token(&jti),
            client_id: family.client_id.clone(),
            scope: Some(family.scope.clone()),
            cnf: None,
        };
        let Ok(access_token) = jsonwebtoken::encode(&self.header, &claims, &self.key) else {
            return error(500, "server_error");
        };
        let answer = StandInAnswer {
            access_token,
            token_type: "Bearer",
            expires_in: 3600,
            refresh_token: new_token,
            scope: &family.scope,
        };
        figure2_http::json(200, &answer, &figure2_protocol::token_response::NO_STORE_HEADERS)
    }
}

/// Counts the requests a handler answered (to tell how many HTTP exchanges a client cycle took).
struct Counted<H> {
    inner: Arc<H>,
    count: Arc<AtomicU64>,
}

impl<H: Handler> Handler for Counted<H> {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.clone().handle(request).await
    }
}

/// The client library doing full cycles against both real servers: (C)→(D), the shared
/// simulated clock moves past the access token's expiry, then (G)→(H) and (C)→(D) again.
struct Cycles {
    runtime: tokio::runtime::Runtime,
    clients: Vec<Client>,
    clock: SimulatedClock,
    read_url: String,
    lifetime: u64,
    requests: Arc<AtomicU64>,
}

impl Cycles {
    async fn start(
        rs_listener: TcpListener,
        db: &str,
        clients: usize,
        stop: &watch::Receiver<bool>,
    ) -> Result<Self, String> {
        let clock = SimulatedClock::starting_at(SystemClock.now());
        let as_listener = bind().await?;
        let issuer = format!("http://{}", addr_of(&as_listener)?);
        let read_url = format!("http://{}/resource/read", addr_of(&rs_listener)?);
        let mut config = as_config(&issuer, db, true)?;
        // Refresh tokens never expire on their own: the clock moves one access-token
        // lifetime per cycle of every client, so simulated years go by.
        config.refresh.refresh_token_lifetime = None;
        let lifetime = config.access_token_lifetime;
        let audience = config.audience.clone();
        let server = AuthorizationServer::new(config, Arc::new(clock.clone())).map_err(|e| e.to_string())?;
        let requests = Arc::new(AtomicU64::new(0));
        spawn_serve(as_listener, Arc::new(Counted { inner: server, count: requests.clone() }), stop);
        let rs = ResourceServer::discover(
            ResourceServerConfig::new(issuer.clone(), audience),
            Arc::new(clock.clone()),
            HttpClient::new(),
        )
        .await
        .map_err(|e| e.to_string())?;
        spawn_serve(rs_listener, Arc::new(Counted { inner: rs, count: requests.clone() }), stop);

        // The clients run on a runtime of their own, on the harness's main thread.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let (client_id, secret) = demo_client();
        let (user, password) = demo_user();
        let token_endpoint = format!("{issuer}/token");
        let made = std::thread::scope(|s| {
            s.spawn(|| {
                runtime.block_on(async {
                    let mut made = Vec::new();
                    for _ in 0..clients {
                        let config =
                            ClientConfig::new(client_id, Some(ClientSecret::new(secret)), token_endpoint.clone());
                        let client = Client::new(config, Arc::new(clock.clone()), HttpClient::new());
                        // Steps A and B, once per client (argon2: not measured).
                        client
                            .request_token(TokenRequest::Password {
                                username: user.to_owned(),
                                password: Secret::new(password),
                                scope: None,
                            })
                            .await
                            .map_err(|e| e.to_string())?;
                        made.push(client);
                    }
                    Ok::<_, String>(made)
                })
            })
            .join()
            .map_err(|_| "client setup panicked".to_owned())?
        })?;
        Ok(Self { runtime, clients: made, clock, read_url, lifetime, requests })
    }

    /// Runs cycles in lockstep until `duration` has passed. The clock is shared, so one
    /// client moving it would expire every other client's token mid-flight; instead every
    /// client makes its first call, then the clock moves once, then every client makes its
    /// second call (which refreshes first): each cycle is exactly C D G H C D per client.
    fn run(&self, duration: Duration) -> Value {
        let server_before = procfs::own_threads_cpu_ticks(SERVER_THREAD);
        let process_before = procfs::process_cpu_ticks(std::process::id()).unwrap_or(0);
        let requests_before = self.requests.load(Ordering::Relaxed);
        let start = Instant::now();
        let deadline = start + duration;
        let barrier = Arc::new(tokio::sync::Barrier::new(self.clients.len()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let outcomes = self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for client in &self.clients {
                let (client, clock, url, lifetime) =
                    (client.clone(), self.clock.clone(), self.read_url.clone(), self.lifetime);
                let (barrier, stop) = (barrier.clone(), stop.clone());
                tasks.spawn(async move {
                    let (mut cycles, mut errors, mut latency) = (0u64, 0u64, crate::load::histogram());
                    let mut first_error = None;
                    loop {
                        let began = Instant::now();
                        // (C)→(D) with the current token.
                        let first = client.call(Method::GET, &url, None).await;
                        if barrier.wait().await.is_leader() {
                            // The access tokens expire...
                            clock.advance(lifetime);
                            let enough = cycles + 1 >= crate::load::MAX_REQUESTS_PER_CONNECTION;
                            if enough || Instant::now() >= deadline {
                                stop.store(true, Ordering::SeqCst);
                            }
                        }
                        barrier.wait().await;
                        // ...so the client knows to skip to (G)→(H), then (C)→(D).
                        let second = client.call(Method::GET, &url, None).await;
                        cycles += 1;
                        latency.saturating_record(began.elapsed().as_micros().max(1) as u64);
                        for r in [first, second] {
                            match r {
                                Ok(r) if r.status == 200 => {}
                                Ok(r) => {
                                    errors += 1;
                                    first_error.get_or_insert_with(|| format!("HTTP {}", r.status));
                                }
                                Err(e) => {
                                    errors += 1;
                                    first_error.get_or_insert_with(|| e.to_string());
                                }
                            }
                        }
                        // Set before the second barrier, so every client reads the same value.
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    (cycles, errors, latency, first_error)
                });
            }
            let mut all = Vec::new();
            while let Some(Ok(o)) = tasks.join_next().await {
                all.push(o);
            }
            all
        });
        let elapsed = start.elapsed();
        let mut latency = crate::load::histogram();
        let (mut cycles, mut errors, mut first_error) = (0, 0, None);
        for (c, e, l, f) in outcomes {
            cycles += c;
            errors += e;
            let _ = latency.add(&l);
            first_error = first_error.or(f);
        }
        json!({
            "requests": cycles,
            "errors": errors,
            "elapsed_s": elapsed.as_secs_f64(),
            "p50_us": latency.value_at_quantile(0.5),
            "p99_us": latency.value_at_quantile(0.99),
            "server_cpu_ticks": procfs::own_threads_cpu_ticks(SERVER_THREAD).saturating_sub(server_before),
            "process_cpu_ticks": procfs::process_cpu_ticks(std::process::id()).unwrap_or(0).saturating_sub(process_before),
            "http_requests": self.requests.load(Ordering::Relaxed) - requests_before,
            "first_error": first_error,
        })
    }
}
