//! The in-process world a scenario runs in: the authorization server and the resource
//! server on ephemeral 127.0.0.1 ports, sharing one [`SimulatedClock`] with the clients,
//! as quinn-proto's test driver steps its peers in virtual time, but over real HTTP.

use figure2_authorization_server::{AuthorizationServer, ConfigFile};
use figure2_client::{Client, ClientConfig, Observer};
use figure2_http::HttpClient;
use figure2_protocol::SimulatedClock;
use figure2_protocol::secret::Secret;
use figure2_resource_server::{ResourceServer, ResourceServerConfig};
use std::sync::Arc;
use tokio::sync::oneshot;

/// The demo configuration the authorization server starts from.
pub const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// The clients of the demo configuration, with the secrets the config stores digests of.
pub const DEMO_CLIENTS: [(&str, Option<&str>); 3] =
    [("demo-client", Some("demo-secret")), ("other-client", Some("other-secret")), ("public-client", None)];

/// The demo resource owners and their passwords.
pub const DEMO_USERS: [(&str, &str); 2] = [("alice", "alice-password"), ("bob", "bob-password")];

/// When scenarios start: 2026-01-01T00:00:00Z, so traces are reproducible.
pub const SCENARIO_EPOCH: u64 = 1_767_225_600;

#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot start a role: {0}")]
    Start(String),
}

pub struct World {
    pub clock: SimulatedClock,
    pub authorization_server: Arc<AuthorizationServer>,
    pub resource_server: Arc<ResourceServer>,
    pub issuer: String,
    pub resource_url: String,
    pub http: HttpClient,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl World {
    /// Starts both servers with the demo configuration plus `overrides` (a TOML table of
    /// authorization-server options, as in a scenario's `[config]`).
    pub async fn start(overrides: &toml::Table) -> Result<Self, WorldError> {
        let clock = SimulatedClock::starting_at(SCENARIO_EPOCH);
        let as_listener = bind().await?;
        let rs_listener = bind().await?;
        let issuer = format!("http://{}", as_listener.local_addr().map_err(|e| WorldError::Start(e.to_string()))?);
        let rs_addr = rs_listener.local_addr().map_err(|e| WorldError::Start(e.to_string()))?;

        let mut table: toml::Table = toml::from_str(DEMO_CONFIG).map_err(|e| WorldError::Config(e.to_string()))?;
        table.insert("issuer".into(), issuer.clone().into());
        table.insert("database".into(), ":memory:".into());
        table.remove("listen");
        for (k, v) in overrides {
            table.insert(k.clone(), v.clone());
        }
        let file: ConfigFile = table.try_into().map_err(|e: toml::de::Error| WorldError::Config(e.to_string()))?;
        let config = file.resolve().map_err(|e| WorldError::Config(e.to_string()))?;
        let audience = config.audience.clone();
        let authorization_server =
            AuthorizationServer::new(config, Arc::new(clock.clone())).map_err(|e| WorldError::Start(e.to_string()))?;

        let http = HttpClient::new();
        let mut stops = Vec::new();
        let mut tasks = Vec::new();
        let (stop, stopped) = oneshot::channel();
        stops.push(stop);
        tasks.push(tokio::spawn(figure2_authorization_server::serve(
            as_listener,
            authorization_server.clone(),
            async {
                let _ = stopped.await;
            },
        )));

        // The resource server finds the authorization server the way it would in
        // production: RFC 8414 metadata, then the JWKS.
        let rs_config = ResourceServerConfig::new(issuer.clone(), audience);
        let resource_server = ResourceServer::discover(rs_config, Arc::new(clock.clone()), http.clone())
            .await
            .map_err(|e| WorldError::Start(e.to_string()))?;
        let (stop, stopped) = oneshot::channel();
        stops.push(stop);
        tasks.push(tokio::spawn(figure2_resource_server::serve(rs_listener, resource_server.clone(), async {
            let _ = stopped.await;
        })));
        let world = Self {
            clock,
            authorization_server,
            resource_server,
            issuer,
            resource_url: format!("http://{rs_addr}"),
            http,
            stops,
            tasks,
        };
        Ok(world)
    }

    /// A client of the demo configuration, sharing the world's clock.
    pub fn client(&self, client_id: &str, observer: Observer) -> Option<Client> {
        let (_, secret) = DEMO_CLIENTS.iter().find(|(id, _)| *id == client_id)?;
        let config = ClientConfig::new(client_id, secret.map(Secret::new), format!("{}/token", self.issuer));
        Some(Client::new(config, Arc::new(self.clock.clone()), self.http.clone()).with_observer(observer))
    }

    pub fn secret_of(client_id: &str) -> Option<&'static str> {
        DEMO_CLIENTS.iter().find(|(id, _)| *id == client_id).and_then(|(_, s)| *s)
    }

    /// Stops both servers and waits for them.
    pub async fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

async fn bind() -> Result<tokio::net::TcpListener, WorldError> {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| WorldError::Start(e.to_string()))
}
