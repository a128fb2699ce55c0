//! # figure2-authorization-server: steps B and H of Figure 2
//!
//! ```text
//!   Client --(A)-- Authorization Grant --> Authorization Server
//!          <-(B)-- Access Token & Refresh Token --
//!   Client --(G)-- Refresh Token --------> Authorization Server
//!          <-(H)-- Access Token & Optional Refresh Token --
//! ```
//!
//! The authorization server authenticates the client, validates the grant or the refresh
//! token, and issues JWT access tokens (RFC 9068) and opaque refresh tokens. It also
//! publishes what the other roles need to find and trust it.
//!
//! | endpoint | file | RFC |
//! |---|---|---|
//! | `POST /token` | [`endpoints::token`], then one file per grant in [`grants`] | RFC 6749 §3.2, §4.1.3, §4.3, §4.4, §5, §6 |
//! | `GET/POST /authorize` | [`endpoints::authorize`] | RFC 6749 §4.1, RFC 7636, RFC 9207 |
//! | `GET /.well-known/oauth-authorization-server` | [`endpoints::discovery`] | RFC 8414 |
//! | `GET /jwks.json` | [`endpoints::discovery`], [`keys`] | RFC 7517, RFC 9068 |
//! | `POST /revoke` | [`endpoints::revocation`] | RFC 7009 |
//! | `POST /introspect` | [`endpoints::introspection`] | RFC 7662 |
//! | `GET /.well-known/openid-configuration`, `/userinfo`, `/end_session` | [`oidc`] | OpenID Connect Core, Discovery, RP-Initiated Logout |
//! | `GET /metrics` | [`metrics`] | Prometheus / OpenMetrics text |
//! | `/control/*` (only with `--test-control`; never in production) | [`control`] | — |
//! | `DPoP` header at `POST /token` | `dpop` | RFC 9449 §4.3, §5, §8 |
//!
//! | grant (`grant_type`) | file | RFC |
//! |---|---|---|
//! | `authorization_code` | [`grants::authorization_code`] | RFC 6749 §4.1.3, RFC 7636 §4.6 |
//! | `password` | [`grants::password`] | RFC 6749 §4.3 (legacy) |
//! | `client_credentials` | [`grants::client_credentials`] | RFC 6749 §4.4 |
//! | `refresh_token` | [`grants::refresh_token`] | RFC 6749 §6, RFC 9700 §4.14 |
//!
//! Every rule is decided in `figure2_protocol` (a refresh by the family state machine,
//! `figure2_protocol::family`); this crate reads requests, calls it, persists what it
//! decides in a [`store::Store`] and writes answers.

pub mod config;
pub mod control;
mod dpop;
pub mod endpoints;
pub mod grants;
pub mod keys;
pub mod metrics;
pub mod oidc;
mod passwords;
mod request;
pub mod store;

use endpoints::{authorize, discovery, introspection, revocation, token};
pub(crate) use request::{authorization_header, oauth_error, random_token, read_form};

use figure2_http::Incoming;
use figure2_http::{HttpResponse, Limits};
use figure2_protocol::Clock;
use figure2_protocol::client_auth::RegisteredClient;
use std::sync::{Arc, RwLock};

pub use config::{Config, ConfigFile};
pub use store::{PostgresStore, SqliteStore, Store};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
}

/// The authorization server: configuration, clock, store and signing keys.
pub struct AuthorizationServer {
    config: Config,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    /// Published keys, oldest first; the last one signs.
    keys: RwLock<Vec<Arc<keys::SigningKey>>>,
    /// The path part of the issuer (`""` or `/tenant`): every endpoint lives below it.
    base_path: String,
    /// The argon2 verifiers: a fixed pool, so a burst of logins cannot grow memory.
    passwords: passwords::PasswordVerifier,
    /// The refresh policy, shared with every refresh command.
    refresh_policy: Arc<figure2_protocol::refresh::RefreshPolicy>,
    /// Who is registered now (resource owners), for the refresh decision.
    directory: Arc<dyn store::Directory>,
    /// The key idempotent retries derive successors with (see `grants::refresh_token`).
    successor_key: aws_lc_rs::hmac::Key,
    // Issue 13: metrics, OpenID Connect state, the test-control API and what it creates.
    metrics: metrics::Metrics,
    control: std::sync::OnceLock<control::TestControl>,
    runtime: Arc<control::RuntimeRegistry>,
    /// RFC 9449: the `jti`s seen and the nonces of the token endpoint.
    dpop: dpop::DpopState,
}

impl std::fmt::Debug for AuthorizationServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationServer").field("issuer", &self.config.issuer).finish_non_exhaustive()
    }
}

/// The realm named in `WWW-Authenticate` challenges.
pub const REALM: &str = "figure2";

impl AuthorizationServer {
    /// Opens the SQLite store named in the configuration (for PostgreSQL, see
    /// [`AuthorizationServer::open`]).
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, ServerError> {
        if store::postgres::is_postgres_url(&config.database) {
            return Err(store::StoreError::Postgres(
                "a postgres:// database needs AuthorizationServer::open (async)".into(),
            )
            .into());
        }
        let store = Arc::new(SqliteStore::open(&config.database)?);
        Self::with_store(config, clock, store)
    }

    /// Opens the store the configuration's `database` names: a `postgres://` or
    /// `postgresql://` URL connects to PostgreSQL (several instances may share it), any
    /// other value is a SQLite file.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Arc<Self>, ServerError> {
        if !store::postgres::is_postgres_url(&config.database) {
            return Self::new(config, clock);
        }
        let store = Arc::new(store::PostgresStore::connect(&config.database).await?);
        // with_store waits for the store's key thread (its own connection and runtime),
        // never for this runtime: blocking here briefly at start-up is safe.
        Self::with_store(config, clock, store)
    }

    /// Builds the server over any store. Loads the signing keys kept in the store, or
    /// makes the first one.
    pub fn with_store(config: Config, clock: Arc<dyn Clock>, store: Arc<dyn Store>) -> Result<Arc<Self>, ServerError> {
        let base_path = config
            .issuer
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or_default();
        let refresh_policy = Arc::new(config.refresh.clone());
        let runtime = Arc::new(control::RuntimeRegistry::default());
        let directory = Arc::new(Users(config.users.keys().cloned().collect(), runtime.clone()));
        let successor_key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &store.server_secret("refresh-successor")?);
        let dpop = dpop::DpopState::new(&config.dpop, &store.server_secret("dpop-nonce")?);
        let mut metrics = metrics::Metrics::default();
        metrics.observe_store(store.clone());
        let server = Self {
            config,
            clock,
            store,
            keys: RwLock::new(Vec::new()),
            base_path,
            passwords: passwords::PasswordVerifier::new(),
            refresh_policy,
            directory,
            successor_key,
            metrics,
            control: std::sync::OnceLock::new(),
            runtime,
            dpop,
        };
        server.load_keys()?;
        Ok(Arc::new(server))
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The successor of `refresh_token` under an idempotent-retry policy: HMAC-SHA-256
    /// under the server's successor key, encoded as every refresh token (256 bits).
    fn derive_successor(&self, refresh_token: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.successor_key, refresh_token.as_bytes());
        figure2_protocol::secret::encode_token(tag.as_ref())
    }

    fn client(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.config.clients.get(client_id).or_else(|| self.runtime.client(client_id))
    }

    /// The server's metrics (what `GET /metrics` shows).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// Checks a resource owner's password (the password grant, the login page); an
    /// unknown username is checked against a dummy hash so that the time of the answer
    /// does not reveal which usernames exist. See [`passwords`] for the bounds.
    pub(crate) async fn verify_resource_owner(&self, username: &str, password: String) -> bool {
        let phc = self.config.users.get(username).cloned().or_else(|| self.runtime.password_hash(username));
        self.passwords.verify(password, phc).await
    }

    /// Start-up: loads the stored keys; the configured algorithm signs, so if no key is
    /// stored, or the newest has another algorithm, a new key is made for it (the old
    /// ones stay published). Instances starting together over one shared database add
    /// one key between them ([`Store::add_first_signing_key`]).
    fn load_keys(&self) -> Result<(), ServerError> {
        let mut stored = self.store.signing_keys()?;
        let wanted = keys::algorithm_name(self.config.signing_algorithm);
        if stored.last().is_none_or(|k| k.alg != wanted) {
            let now = self.now();
            let key = keys::SigningKey::generate(self.config.signing_algorithm, keys::new_kid(now), now)?;
            stored = self.store.add_first_signing_key(&store::StoredKey {
                kid: key.kid.clone(),
                alg: wanted.to_owned(),
                pkcs8: key.pkcs8().to_vec(),
                created_at: now,
            })?;
        }
        self.install_keys(stored)
    }

    /// Replaces the published keys with `stored` (oldest first; the last one signs).
    fn install_keys(&self, stored: Vec<store::StoredKey>) -> Result<(), ServerError> {
        let current = self.published_keys();
        let mut loaded = Vec::with_capacity(stored.len());
        for k in stored {
            // Keys already parsed are kept as they are.
            if let Some(known) = current.iter().find(|c| c.kid == k.kid) {
                loaded.push(known.clone());
                continue;
            }
            let alg = keys::parse_algorithm(&k.alg)?;
            loaded.push(Arc::new(keys::SigningKey::from_pkcs8(alg, k.kid, k.created_at, k.pkcs8)?));
        }
        if loaded.is_empty() {
            return Ok(()); // never publish an empty key set
        }
        if let Ok(mut keys) = self.keys.write() {
            *keys = loaded;
        }
        Ok(())
    }

    /// Reloads the signing keys from the store: with a shared store (PostgreSQL), a key
    /// added or retired at another instance. `serve` does this every
    /// [`store::postgres::KEY_RELOAD_INTERVAL`] for a shared store. Blocking (a short
    /// query on the store's own connection).
    pub fn reload_signing_keys(&self) -> Result<(), ServerError> {
        let stored = self.store.signing_keys()?;
        self.install_keys(stored)
    }

    /// Adds a new signing key with a new `kid`; it signs from now on. Older keys stay in
    /// the JWKS so tokens they signed still verify until they expire (then remove them
    /// with [`AuthorizationServer::retire_signing_key`]).
    pub fn rotate_signing_key(&self) -> Result<String, ServerError> {
        let now = self.now();
        let key = keys::SigningKey::generate(self.config.signing_algorithm, keys::new_kid(now), now)?;
        self.store.add_signing_key(&store::StoredKey {
            kid: key.kid.clone(),
            alg: keys::algorithm_name(key.alg).to_owned(),
            pkcs8: key.pkcs8().to_vec(),
            created_at: now,
        })?;
        let kid = key.kid.clone();
        if let Ok(mut keys) = self.keys.write() {
            keys.push(Arc::new(key));
        }
        tracing::info!(%kid, "signing key added");
        Ok(kid)
    }

    /// Removes a key from the JWKS: tokens it signed stop verifying.
    pub fn retire_signing_key(&self, kid: &str) -> Result<bool, ServerError> {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        if keys.len() <= 1 || keys.last().is_some_and(|k| k.kid == kid) {
            return Ok(false); // never remove the key that signs
        }
        let before = keys.len();
        keys.retain(|k| k.kid != kid);
        if keys.len() != before {
            self.store.remove_signing_key(kid)?;
        }
        Ok(keys.len() != before)
    }

    /// The key that signs access tokens now.
    pub fn signing_key(&self) -> Arc<keys::SigningKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        // with_store guarantees at least one key.
        keys.last().cloned().expect("the authorization server always has a signing key")
    }

    fn published_keys(&self) -> Vec<Arc<keys::SigningKey>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn route<'a>(&self, path: &'a str) -> Option<&'a str> {
        if path.starts_with("/.well-known/") {
            return Some(path);
        }
        path.strip_prefix(self.base_path.as_str())
    }
}

impl figure2_http::Handler for AuthorizationServer {
    async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> HttpResponse {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let well_known = format!("{}{}", figure2_protocol::metadata::WELL_KNOWN_SUFFIX, self.base_path);
        let route = self.route(&path).unwrap_or("");
        match route {
            p if p == well_known => discovery::metadata(&self, &method),
            oidc::DISCOVERY_PATH if path == format!("{}{}", self.base_path, oidc::DISCOVERY_PATH) => {
                oidc::openid_configuration(&self, &method)
            }
            "/userinfo" => oidc::userinfo(&self, request).await,
            "/end_session" => oidc::end_session(&self, request).await,
            "/metrics" => metrics::handle(&self, &method),
            p if p.starts_with("/control/") => control::handle(&self, p, request).await,
            "/jwks.json" => discovery::jwks(&self, &method),
            "/token" => token::handle(&self, request).await,
            "/authorize" => authorize::handle(&self, request).await,
            "/revoke" => revocation::handle(&self, request).await,
            "/introspect" => introspection::handle(&self, request).await,
            "/health" => figure2_http::json(200, &serde_json::json!({"status": "ok"}), &[]),
            _ => figure2_http::json(404, &serde_json::json!({"error": "not_found"}), &[]),
        }
    }
}

/// The registered resource owners, as the refresh decision asks about them: the
/// configured ones and those the test-control API created.
struct Users(std::collections::HashSet<String>, Arc<control::RuntimeRegistry>);

impl store::Directory for Users {
    fn subject_registered(&self, subject: &str) -> bool {
        self.0.contains(subject) || self.1.password_hash(subject).is_some()
    }
}

/// Serves the authorization server on an already-bound listener until `shutdown`. Over a
/// shared store, reloads the signing keys every [`store::postgres::KEY_RELOAD_INTERVAL`]
/// meanwhile (a key rotated at another instance is published and accepted here too).
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Arc<AuthorizationServer>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let reloader = server.store.shared().then(|| {
        let server = server.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(store::postgres::KEY_RELOAD_INTERVAL);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                let server = server.clone();
                match tokio::task::spawn_blocking(move || server.reload_signing_keys()).await {
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not reload the signing keys"),
                    Err(e) => tracing::warn!(error = %e, "the key reload task failed"),
                    Ok(Ok(())) => {}
                }
            }
        })
    });
    let served = figure2_http::serve(listener, server, Limits::default(), shutdown).await;
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    served
}
