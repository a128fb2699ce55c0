//! The in-process world a scenario runs in: the authorization server and the resource
//! server on ephemeral 127.0.0.1 ports, sharing one [`SimulatedClock`] with the clients,
//! as quinn-proto's test driver steps its peers in virtual time, but over real HTTP.
//!
//! Between the clients and the authorization server sits [`Network`], a forwarding hop
//! that owns the issuer's address. It lets a scenario lose a response after the server
//! has committed it (RFC 9700 §4.14's hard case) and restart the authorization server on
//! the same database while clients and the resource server keep the same issuer URL.
//!
//! With `instances = N` (N > 1) in a scenario's `[config]`, N authorization servers run
//! over one PostgreSQL database (a schema of their own, see
//! `figure2_authorization_server::store::postgres::ScratchDatabase`), all named by the
//! one issuer: the hop balances requests over them round-robin, as a load balancer
//! would, marks each answer with the instance that gave it, and lets a step send
//! concurrent requests to chosen instances.

use figure2_authorization_server::{AuthorizationServer, Config, ConfigFile};
use figure2_client::{Client, ClientConfig, Observer};
use figure2_http::{HttpClient, HttpResponse, Incoming, Limits};
use figure2_protocol::SimulatedClock;
use figure2_protocol::secret::ClientSecret;
use figure2_resource_server::{ResourceServer, ResourceServerConfig};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::oneshot;

/// The demo configuration the authorization server starts from.
pub const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// The clients of the demo configuration, with the secrets the config stores digests of.
pub const DEMO_CLIENTS: [(&str, Option<&str>); 3] =
    [("demo-client", Some("demo-secret")), ("other-client", Some("other-secret")), ("public-client", None)];

/// The resource server's own registration at the authorization server (`config/demo.toml`),
/// for RFC 7662 introspection when it reports first uses.
pub const RESOURCE_SERVER_CLIENT: (&str, &str) = ("figure2-resource-server", "resource-server-secret");

/// The demo resource owners and their passwords.
pub const DEMO_USERS: [(&str, &str); 2] = [("alice", "alice-password"), ("bob", "bob-password")];

/// When scenarios start: 2026-01-01T00:00:00Z, so traces are reproducible.
pub const SCENARIO_EPOCH: u64 = figure2_protocol::SIMULATION_EPOCH;

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot start a role: {0}")]
    Start(String),
    /// What the scenario needs is not on this machine (PostgreSQL for several instances).
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The response header by which the hop says which authorization-server instance (1, 2,
/// ...) answered, when there are several (as `X-Served-By` of real load balancers).
pub const INSTANCE_HEADER: &str = "x-figure2-instance";

/// The most authorization-server instances a scenario may ask for.
pub const MAX_INSTANCES: usize = 8;

/// What the network did to a token response: it reached the server, the server answered,
/// and the answer never reached the client. `Debug` leaves out the body: it holds tokens.
#[derive(Clone)]
pub struct LostResponse {
    pub path: String,
    pub status: u16,
    pub body: String,
}

impl std::fmt::Debug for LostResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LostResponse").field("path", &self.path).field("status", &self.status).finish_non_exhaustive()
    }
}

/// Rewrites the authorization server's answers on their way back (the path is given):
/// a deliberately broken authorization server, for proving that checks can fail.
pub type Mutator = Arc<dyn Fn(&str, &mut figure2_http::ReceivedResponse) + Send + Sync>;

/// Which of the authorization server's endpoints an outage cuts off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// Every endpoint: the authorization server is down.
    All,
    /// Only `POST /token`.
    Token,
    /// Only the JWKS (`/jwks.json`): the resource server cannot fetch keys.
    Jwks,
}

impl Endpoint {
    fn covers(self, path: &str) -> bool {
        match self {
            Self::All => true,
            Self::Token => path.ends_with("/token"),
            Self::Jwks => path.contains("jwks"),
        }
    }
}

/// The hop between the clients and the authorization server.
pub struct Network {
    /// One URL per authorization-server instance.
    backends: RwLock<Vec<String>>,
    /// Round-robin position over `backends`.
    next_backend: std::sync::atomic::AtomicUsize,
    /// Instances (indexes) the next token requests go to, in arrival order.
    token_routes: Mutex<std::collections::VecDeque<usize>>,
    http: HttpClient,
    clock: SimulatedClock,
    lose_next_token_response: AtomicBool,
    lost: Mutex<Vec<LostResponse>>,
    mutator: RwLock<Option<Mutator>>,
    /// Until when (simulated seconds), and for which endpoints, the server is unreachable.
    outage: Mutex<Option<(u64, Endpoint)>>,
    /// Statuses a proxy answers the next token requests with, without forwarding them.
    proxy_answers: Mutex<std::collections::VecDeque<u16>>,
    /// The next token request reaches the server twice (a transport retry); the client
    /// sees only the second answer.
    duplicate_next_token_request: AtomicBool,
}

impl Network {
    /// The authorization server's `endpoint` is unreachable for `seconds` of simulated
    /// time from now: the hop answers 502 Bad Gateway, as a reverse proxy would.
    pub fn cut_off(&self, endpoint: Endpoint, seconds: u64) {
        let until = figure2_protocol::Clock::now(&self.clock).saturating_add(seconds);
        if let Ok(mut o) = self.outage.lock() {
            *o = Some((until, endpoint));
        }
    }

    /// A proxy in front of the server answers the next token request with `status`
    /// (429 or 503, RFC 9110 §15.5.x/§15.6.4) and `Retry-After`, without forwarding it.
    pub fn proxy_answers_next_token_request(&self, status: u16) {
        if let Ok(mut q) = self.proxy_answers.lock() {
            q.push_back(status);
        }
    }

    /// The next token request is delivered twice; the first answer is never seen.
    pub fn duplicate_next_token_request(&self) {
        self.duplicate_next_token_request.store(true, Ordering::SeqCst);
    }

    /// The next answer of `POST /token` is dropped after the server has sent it.
    pub fn lose_next_token_response(&self) {
        self.lose_next_token_response.store(true, Ordering::SeqCst);
    }

    /// Breaks the authorization server on purpose (see [`Mutator`]).
    pub fn set_mutator(&self, mutator: Option<Mutator>) {
        if let Ok(mut m) = self.mutator.write() {
            *m = mutator;
        }
    }

    /// The next token requests go to these instances (0-based), one each, in the order
    /// they arrive; later ones are balanced round-robin again.
    pub fn route_next_token_requests(&self, instances: &[usize]) {
        if let Ok(mut routes) = self.token_routes.lock() {
            routes.extend(instances);
        }
    }

    /// The instance a request goes to, and its URL.
    fn backend_for(&self, is_token: bool) -> (usize, String) {
        let backends = self.backends.read().map(|b| b.clone()).unwrap_or_default();
        if backends.is_empty() {
            return (0, String::new());
        }
        let routed = if is_token { self.token_routes.lock().ok().and_then(|mut r| r.pop_front()) } else { None };
        let i = routed.unwrap_or_else(|| self.next_backend.fetch_add(1, Ordering::SeqCst)) % backends.len();
        (i, backends[i].clone())
    }

    pub fn take_lost(&self) -> Vec<LostResponse> {
        self.lost.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
    }
}

impl figure2_http::Handler for Network {
    async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> HttpResponse {
        let (parts, body) = request.into_parts();
        let body = match figure2_http::read_body(body, 64 * 1024).await {
            Ok(b) => b,
            Err(e) => return figure2_http::text(413, "text/plain", e.to_string(), &[]),
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let is_token = parts.uri.path().ends_with("/token");
        let (instance, backend) = self.backend_for(is_token);
        let several = self.backends.read().map(|b| b.len() > 1).unwrap_or(false);
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter(|(n, _)| *n != http::header::HOST && *n != http::header::CONTENT_LENGTH)
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str().to_owned(), v.to_owned())))
            .collect();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let url = format!("{backend}{path}");
        let now = figure2_protocol::Clock::now(&self.clock);
        let outage = self.outage.lock().ok().and_then(|o| *o);
        if let Some((until, endpoint)) = outage
            && now < until
            && endpoint.covers(parts.uri.path())
        {
            return figure2_http::text(
                502,
                "text/plain",
                "figure2 network: the authorization server is unreachable",
                &[],
            );
        }
        if is_token && let Some(status) = self.proxy_answers.lock().ok().and_then(|mut q| q.pop_front()) {
            // What nginx or a cloud load balancer sends: HTML, no OAuth error, a hint.
            let html = format!("<html><body><h1>{status}</h1>figure2 proxy: try again later</body></html>");
            return figure2_http::text(status, "text/html", html, &[("retry-after", "10")]);
        }
        // figure2_http hands a HEAD over as GET; the hop forwards what the client sent.
        let method = if parts.extensions.get::<figure2_http::HeadRequest>().is_some() {
            http::Method::HEAD
        } else {
            parts.method.clone()
        };
        if is_token && self.duplicate_next_token_request.swap(false, Ordering::SeqCst) {
            // A transport retry: the first attempt reached the server and was answered,
            // but the client had given up on it and sent the same bytes again.
            if let Ok(first) = self.http.send(method.clone(), &url, &pairs, Some(body.clone())).await
                && let Ok(mut lost) = self.lost.lock()
            {
                lost.push(LostResponse { path: path.clone(), status: first.status, body: first.body_text() });
            }
        }
        let mut answer = match self.http.send(method, &url, &pairs, Some(body)).await {
            Ok(answer) => answer,
            // The authorization server is down (restarting): as a real network would.
            Err(e) => return figure2_http::text(502, "text/plain", format!("figure2 network: {e}"), &[]),
        };
        if let Some(mutate) = self.mutator.read().ok().and_then(|m| m.clone()) {
            mutate(parts.uri.path(), &mut answer);
        }
        if is_token && self.lose_next_token_response.swap(false, Ordering::SeqCst) {
            if let Ok(mut lost) = self.lost.lock() {
                lost.push(LostResponse { path: path.clone(), status: answer.status, body: answer.body_text() });
            }
            // The client sees what a dropped connection gives a proxy: a gateway timeout.
            return figure2_http::text(504, "text/plain", "figure2 network: the response was lost", &[]);
        }
        let mut response = figure2_http::text(answer.status, "", answer.body.clone(), &[]);
        *response.headers_mut() = answer.headers.clone();
        response.headers_mut().remove(http::header::TRANSFER_ENCODING);
        if several && let Ok(value) = http::HeaderValue::from_str(&(instance + 1).to_string()) {
            response.headers_mut().insert(INSTANCE_HEADER, value);
        }
        response
    }
}

struct Running {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    fn spawn<F>(serve: impl FnOnce(tokio::sync::oneshot::Receiver<()>) -> F) -> Self
    where
        F: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel();
        Self { stop, task: tokio::spawn(serve(stopped)) }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A role's own clock: the shared clock plus an offset (seconds, may be negative), so a
/// scenario can put one role ahead of or behind the others.
#[derive(Debug, Clone)]
pub struct SkewedClock {
    base: SimulatedClock,
    offset: Arc<AtomicI64>,
}

impl SkewedClock {
    pub fn set_offset(&self, seconds: i64) {
        self.offset.store(seconds, Ordering::SeqCst);
    }
}

impl figure2_protocol::Clock for SkewedClock {
    fn now(&self) -> figure2_protocol::UnixTime {
        let base = figure2_protocol::Clock::now(&self.base);
        base.saturating_add_signed(self.offset.load(Ordering::SeqCst))
    }
}

/// Options of the roles other than the authorization server (whose options are the
/// scenario's `[config]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceServerOptions {
    /// Seconds of leeway the resource server allows on `exp`/`nbf`/`iat` (RFC 7519 §4.1.4).
    pub leeway: Option<u64>,
    /// Whether the resource server introspects each access token on its first use (RFC
    /// 7662), so the authorization server learns it was used. Unset: on exactly when the
    /// refresh policy reads it (`reuse_while_successor_unused`, preset `mas`), as a MAS
    /// homeserver introspects the tokens it is shown.
    pub report_first_use: Option<bool>,
}

pub struct World {
    pub clock: SimulatedClock,
    /// The authorization server's clock (the shared one plus a skew): the `iat` and `exp`
    /// it writes into tokens, and the refresh-token lifetimes it checks.
    pub authorization_server_clock: SkewedClock,
    /// The resource server's clock (the shared one plus a skew).
    pub resource_server_clock: SkewedClock,
    /// The clients' clock (the shared one plus a skew).
    pub client_clock: SkewedClock,
    /// The first authorization-server instance (the only one unless `instances > 1`).
    pub authorization_server: Arc<AuthorizationServer>,
    /// Every authorization-server instance, in the order the hop numbers them.
    pub authorization_servers: Vec<Arc<AuthorizationServer>>,
    pub resource_server: Arc<ResourceServer>,
    pub network: Arc<Network>,
    /// The issuer: the network hop's address, stable across restarts.
    pub issuer: String,
    pub resource_url: String,
    pub http: HttpClient,
    config: Config,
    database: std::path::PathBuf,
    /// The PostgreSQL schema several instances share (dropped with the world).
    postgres: Option<figure2_authorization_server::store::postgres::ScratchDatabase>,
    authorization: Vec<Running>,
    others: Vec<Running>,
}

impl World {
    /// Starts both servers with the demo configuration plus `overrides` (a TOML table of
    /// authorization-server options, as in a scenario's `[config]`). The store is a
    /// fresh SQLite file, deleted by [`World::stop`].
    pub async fn start(overrides: &toml::Table) -> Result<Self, WorldError> {
        Self::start_with(overrides, &ResourceServerOptions::default()).await
    }

    /// [`World::start`], with the resource server's options too.
    pub async fn start_with(overrides: &toml::Table, rs_options: &ResourceServerOptions) -> Result<Self, WorldError> {
        crate::reasons::install();
        let clock = SimulatedClock::starting_at(SCENARIO_EPOCH);
        let network_listener = bind().await?;
        let rs_listener = bind().await?;
        let issuer = format!("http://{}", local_addr(&network_listener)?);
        let resource_url = format!("http://{}", local_addr(&rs_listener)?);

        let database = std::env::temp_dir().join(format!("figure2-{}.db", random_suffix()));
        let mut table: toml::Table = toml::from_str(DEMO_CONFIG).map_err(|e| WorldError::Config(e.to_string()))?;
        table.insert("issuer".into(), issuer.clone().into());
        table.insert("database".into(), database.display().to_string().into());
        table.remove("listen");
        let mut overrides = overrides.clone();
        let instances = instances_of(overrides.remove("instances").as_ref())?;
        for (k, v) in &overrides {
            table.insert(k.clone(), v.clone());
        }
        let postgres = if instances > 1 { Some(scratch_postgres(instances).await?) } else { None };
        if let Some(scratch) = &postgres {
            table.insert("database".into(), scratch.url().into());
        }
        let file: ConfigFile = table.try_into().map_err(|e: toml::de::Error| WorldError::Config(e.to_string()))?;
        let config = file.resolve().map_err(|e| WorldError::Config(e.to_string()))?;

        let http = HttpClient::new();
        let network = Arc::new(Network {
            http: http.clone(),
            clock: clock.clone(),
            backends: RwLock::new(Vec::new()),
            next_backend: std::sync::atomic::AtomicUsize::new(0),
            token_routes: Mutex::new(Default::default()),
            lose_next_token_response: AtomicBool::new(false),
            lost: Mutex::new(Vec::new()),
            mutator: RwLock::new(None),
            outage: Mutex::new(None),
            proxy_answers: Mutex::new(Default::default()),
            duplicate_next_token_request: AtomicBool::new(false),
        });
        let mut others = Vec::new();
        let net = network.clone();
        others.push(Running::spawn(move |stopped| {
            figure2_http::serve(network_listener, net, Limits::default(), async {
                let _ = stopped.await;
            })
        }));
        let authorization_server_clock = SkewedClock { base: clock.clone(), offset: Arc::new(AtomicI64::new(0)) };
        let (authorization_servers, authorization) =
            start_authorization_servers(&config, &authorization_server_clock, &network, instances).await?;
        let authorization_server = authorization_servers[0].clone();

        // The resource server finds the authorization server the way it would in
        // production: RFC 8414 metadata, then the JWKS, with production settings (a new
        // kid is re-fetched at once; the key set ages per the JWKS's max-age).
        let mut rs_config = ResourceServerConfig::new(issuer.clone(), config.audience.clone());
        if let Some(leeway) = rs_options.leeway {
            rs_config.leeway = leeway;
        }
        if rs_options.report_first_use.unwrap_or(config.refresh.reuse_while_successor_unused) {
            let (client_id, secret) = RESOURCE_SERVER_CLIENT;
            rs_config.report_first_use = Some(figure2_resource_server::IntrospectionClient {
                client_id: client_id.into(),
                client_secret: ClientSecret::new(secret),
            });
        }
        let resource_server_clock = SkewedClock { base: clock.clone(), offset: Arc::new(AtomicI64::new(0)) };
        let resource_server =
            ResourceServer::discover(rs_config, Arc::new(resource_server_clock.clone()), http.clone())
                .await
                .map_err(|e| WorldError::Start(e.to_string()))?;
        let rs = resource_server.clone();
        others.push(Running::spawn(move |stopped| {
            figure2_resource_server::serve(rs_listener, rs, async {
                let _ = stopped.await;
            })
        }));
        let client_clock = SkewedClock { base: clock.clone(), offset: Arc::new(AtomicI64::new(0)) };
        Ok(Self {
            clock,
            authorization_server_clock,
            resource_server_clock,
            client_clock,
            authorization_server,
            authorization_servers,
            resource_server,
            network,
            issuer,
            resource_url,
            http,
            config,
            database,
            postgres,
            authorization,
            others,
        })
    }

    /// Stops the authorization server (every instance) and starts it again on the same
    /// database: no refresh token or signing key may be lost.
    pub async fn restart_authorization_server(&mut self) -> Result<(), WorldError> {
        for running in self.authorization.drain(..) {
            running.stop().await;
        }
        let instances = self.authorization_servers.len();
        let (servers, running) =
            start_authorization_servers(&self.config, &self.authorization_server_clock, &self.network, instances)
                .await?;
        self.authorization_server = servers[0].clone();
        self.authorization_servers = servers;
        self.authorization = running;
        Ok(())
    }

    /// A client of the demo configuration, sharing the world's clock.
    pub fn client(&self, client_id: &str, observer: Observer) -> Option<Client> {
        let (_, secret) = DEMO_CLIENTS.iter().find(|(id, _)| *id == client_id)?;
        let config = ClientConfig::new(client_id, secret.map(ClientSecret::new), format!("{}/token", self.issuer));
        Some(Client::new(config, Arc::new(self.client_clock.clone()), self.http.clone()).with_observer(observer))
    }

    pub fn secret_of(client_id: &str) -> Option<&'static str> {
        DEMO_CLIENTS.iter().find(|(id, _)| *id == client_id).and_then(|(_, s)| *s)
    }

    /// Stops every server and deletes the database.
    pub async fn stop(mut self) {
        for running in self.authorization.drain(..) {
            running.stop().await;
        }

        for running in self.others.drain(..) {
            running.stop().await;
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.database.display()));
        }
        // Idle connections hold no locks: the schema can go while the pools close.
        drop(self.postgres.take());
    }
}

/// Starts `instances` authorization servers over the configured store (one after the
/// other: the first makes the signing key the others load) and points the hop at them.
async fn start_authorization_servers(
    config: &Config,
    clock: &SkewedClock,
    network: &Arc<Network>,
    instances: usize,
) -> Result<(Vec<Arc<AuthorizationServer>>, Vec<Running>), WorldError> {
    let mut servers = Vec::with_capacity(instances);
    let mut running = Vec::with_capacity(instances);
    let mut backends = Vec::with_capacity(instances);
    for _ in 0..instances {
        let listener = bind().await?;
        backends.push(format!("http://{}", local_addr(&listener)?));
        let server = AuthorizationServer::open(config.clone(), Arc::new(clock.clone()))
            .await
            .map_err(|e| WorldError::Start(e.to_string()))?;
        let s = server.clone();
        running.push(Running::spawn(move |stopped| {
            figure2_authorization_server::serve(listener, s, async {
                let _ = stopped.await;
            })
        }));
        servers.push(server);
    }
    if let Ok(mut b) = network.backends.write() {
        *b = backends;
    }
    Ok((servers, running))
}

/// `instances` of a scenario's `[config]`: 1 (the default) to [`MAX_INSTANCES`].
fn instances_of(value: Option<&toml::Value>) -> Result<usize, WorldError> {
    let Some(value) = value else { return Ok(1) };
    value
        .as_integer()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| (1..=MAX_INSTANCES).contains(n))
        .ok_or_else(|| WorldError::Config(format!("instances must be 1 to {MAX_INSTANCES}, not {value}")))
}

/// A fresh PostgreSQL schema for several instances, or why there is none.
async fn scratch_postgres(
    instances: usize,
) -> Result<figure2_authorization_server::store::postgres::ScratchDatabase, WorldError> {
    use figure2_authorization_server::store::postgres::{ScratchDatabase, TEST_DATABASE_ENV, test_database};
    let base = test_database().map_err(WorldError::Unavailable)?.ok_or_else(|| {
        WorldError::Unavailable(format!(
            "this scenario runs {instances} authorization servers over one PostgreSQL database, and none is \
             configured: start one with `export {TEST_DATABASE_ENV}=$(bash scripts/postgres-up.sh)`"
        ))
    })?;
    ScratchDatabase::create(&base).await.map_err(|e| WorldError::Unavailable(format!("PostgreSQL at {base}: {e}")))
}

async fn bind() -> Result<tokio::net::TcpListener, WorldError> {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| WorldError::Start(e.to_string()))
}

fn local_addr(l: &tokio::net::TcpListener) -> Result<std::net::SocketAddr, WorldError> {
    l.local_addr().map_err(|e| WorldError::Start(e.to_string()))
}

fn random_suffix() -> String {
    let mut r = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut r);
    r.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_must_be_between_one_and_the_maximum() {
        assert_eq!(instances_of(None).unwrap(), 1);
        assert_eq!(instances_of(Some(&toml::Value::Integer(3))).unwrap(), 3);
        for bad in [toml::Value::Integer(0), toml::Value::Integer(9), toml::Value::String("2".into())] {
            assert!(matches!(instances_of(Some(&bad)), Err(WorldError::Config(_))), "{bad}");
        }
    }
}
