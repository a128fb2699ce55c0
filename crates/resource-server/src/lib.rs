//! # figure2-resource-server: steps C, D, E and F of Figure 2
//!
//! ```text
//!   +--------+                            +----------+
//!   |        |--(C)---- Access Token ---->|          |
//!   |        |<-(D)- Protected Resource --| Resource |
//!   | Client |                            |  Server  |
//!   |        |--(E)---- Access Token ---->|          |
//!   |        |<-(F)- Invalid Token Error -|          |
//!   +--------+                            +----------+
//! ```
//!
//! The resource server receives the access token (C, E), validates it locally as an
//! RFC 9068 JWT with the authorization server's published keys (no call to the
//! authorization server per request), and either serves the resource (D) or answers
//! `invalid_token` (F).
//!
//! | file | what | RFC |
//! |---|---|---|
//! | [`handler`] | routes, token extraction, the 400/401/403 answers | RFC 6750 §2.1, §3, §3.1 |
//! | [`validation`] | header, key, signature and claim checks | RFC 9068 §4 |
//! | [`keys`] | the issuer's JWK Set, parsed once into verification keys | RFC 7517 §5, RFC 8725 §3.1 |
//! | [`discovery`] | metadata and JWKS fetch; the key set ages per its caching headers (floor, ceiling), rate-limited re-fetch on unknown `kid` | RFC 8414 §3, RFC 9111 §4.2 |
//! | [`metrics`] | `GET /metrics`: answers by outcome and RFC 6750 error code, latency | OpenMetrics |
//! | [`clock_follow`] | tests only: follow an authorization server's controlled clock | — |
//! | `dpop` | the `DPoP` scheme: proof with `ath`, `cnf.jkt` binding, nonces, `jti` memory | RFC 9449 §4.3, §7, §9 |
//! | `verified` | a bounded cache of tokens that passed every check (performance; changes no answer) | RFC 9068 §4 |
//! | [`first_use`] | optional: report a token's first use through introspection (usage-based recovery) | RFC 7662 §2 |
//!
//! Every rule itself lives in `figure2-protocol`; this crate reads requests, calls it with
//! the injected clock's `now`, and writes the answer.
//!
//! What it deliberately does not do: accept tokens in the query or a form body (RFC 9700
//! §2.4 discourages them), call introspection per request (only, when configured, on a
//! token's first use: [`first_use`]), or follow a token's `jku`/`jwk` header (keys come
//! only from the discovered `jwks_uri`).

pub mod clock_follow;
pub mod discovery;
mod dpop;
pub mod first_use;
pub mod handler;
pub mod keys;
pub mod metrics;
pub mod validation;
mod verified;

pub use discovery::DiscoveryError;
pub use first_use::IntrospectionClient;
pub use handler::{Resource, WRITE_BODY_LIMIT};
pub use validation::TokenRejection;

use figure2_http::{HttpClient, Limits};
use figure2_protocol::Clock;
use figure2_protocol::access_token::DEFAULT_ALLOWED_ALGORITHMS;
use figure2_protocol::metadata::AuthorizationServerMetadata;
use keys::KeySet;
use std::future::Future;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;

/// The `realm` of the `WWW-Authenticate` challenge unless configured otherwise.
pub const DEFAULT_REALM: &str = "figure2";
/// The `aud` this resource server expects unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "figure2-resource-server";

/// What the resource server trusts and expects.
#[derive(Debug, Clone)]
pub struct ResourceServerConfig {
    /// The authorization server's issuer identifier (RFC 8414 §2), e.g. `http://127.0.0.1:8080`.
    pub issuer: String,
    /// The `aud` a token must contain (RFC 9068 §4).
    pub audience: String,
    /// The `realm` of the `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
    pub realm: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway: u64,
    /// Signature algorithms accepted in the token header.
    pub allowed_algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Seconds: the window of the unknown-`kid` re-fetch rate limit (at most
    /// `jwks_refetch_max_misses` re-fetches that did not find their `kid`, or failed,
    /// within it; the start-up fetch and the scheduled refreshes do not count). Also the
    /// retry delay of a failed scheduled refresh.
    pub jwks_refetch_min_interval: u64,
    /// Unknown-`kid` re-fetches that may miss within `jwks_refetch_min_interval`.
    pub jwks_refetch_max_misses: usize,
    /// Seconds: the least time a fetched JWK Set is trusted before it is fetched again,
    /// whatever its `Cache-Control` says (`max-age=0`, `no-store`): bounds the load on
    /// the authorization server.
    pub jwks_cache_floor: u64,
    /// Seconds: the most time a fetched JWK Set is trusted before it is fetched again,
    /// whatever its caching headers say; also the lifetime when it has none. A key the
    /// issuer retires stops verifying at most this long after it leaves the JWKS.
    pub jwks_cache_ceiling: u64,
    /// Tokens longer than this are `invalid_token` without being parsed.
    pub max_token_bytes: usize,
    /// How many verified tokens to remember, so that a token presented again is not
    /// verified again (0: none). Never changes an answer; see the `verified` module.
    pub verified_token_cache: usize,
    /// The URL clients reach this server at (scheme, host, port, no path), against which
    /// a DPoP proof's `htu` is compared (RFC 9449 §4.3 point 9). `None`: `http://` and the
    /// request's `Host`.
    pub public_url: Option<String>,
    /// JWS algorithms accepted in DPoP proofs, listed in the challenge's `algs` (§7.1).
    pub dpop_algorithms: Vec<jsonwebtoken::Algorithm>,
    /// RFC 9449 §9: require a server nonce in DPoP proofs (`use_dpop_nonce`). Default false.
    pub dpop_nonce: bool,
    /// Seconds a nonce stays current (the previous one is accepted one period more).
    pub dpop_nonce_lifetime: u64,
    /// Seconds: how old a proof's `iat` may be (and how long its `jti` is remembered).
    pub dpop_proof_max_age: u64,
    /// Seconds a proof's `iat` may be ahead of this server's clock.
    pub dpop_proof_leeway: u64,
    /// How many `jti`s are remembered at once (RFC 9449 §11.1); when full of proofs still
    /// within `dpop_proof_max_age`, new proofs are refused.
    pub dpop_jti_cache_size: usize,
    /// RFC 7662: introspect each access token the first time it is served, with these
    /// client credentials, so that the authorization server learns it was used (usage-based
    /// recovery of refresh tokens, preset `mas`; see [`first_use`]). An `"active": false`
    /// answer refuses the token (`invalid_token`). `None` (the default): never call the
    /// authorization server per token. Needs `introspection_endpoint` in the metadata.
    pub report_first_use: Option<IntrospectionClient>,
    /// How many reported tokens are remembered (one `jti` digest each, 32 bytes).
    pub first_use_memory: usize,
}

impl ResourceServerConfig {
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            realm: DEFAULT_REALM.to_owned(),
            leeway: 0,
            allowed_algorithms: DEFAULT_ALLOWED_ALGORITHMS.to_vec(),
            jwks_refetch_min_interval: 30,
            jwks_refetch_max_misses: 5,
            jwks_cache_floor: 30,
            jwks_cache_ceiling: 300,
            max_token_bytes: 8192,
            verified_token_cache: 4096,
            public_url: None,
            dpop_algorithms: figure2_protocol::dpop::SUPPORTED_ALGORITHMS.to_vec(),
            dpop_nonce: false,
            dpop_nonce_lifetime: 300,
            dpop_proof_max_age: 60,
            dpop_proof_leeway: 5,
            dpop_jti_cache_size: 100_000,
            report_first_use: None,
            first_use_memory: 100_000,
        }
    }
}

/// The resource server: configuration, the injected clock, and the issuer's keys.
/// Built by [`ResourceServer::discover`]; serve it with [`serve`].
pub struct ResourceServer {
    config: ResourceServerConfig,
    clock: Arc<dyn Clock>,
    http: HttpClient,
    metadata: AuthorizationServerMetadata,
    jwks_uri: String,
    /// The keys of the last successful JWKS fetch. A std lock: it is held only to swap or
    /// clone an `Arc`, never across an await.
    keys: RwLock<Arc<KeySet>>,
    /// When `keys` goes stale (RFC 9111 §4.2, see [`discovery`]); checked on every
    /// request without a lock.
    keys_stale_at: std::sync::atomic::AtomicU64,
    /// Serialises JWKS fetches. A tokio lock: a fetch holds it across the HTTP call so
    /// that concurrent requests wait instead of stampeding.
    jwks_fetch: tokio::sync::Mutex<discovery::FetchState>,
    /// Tokens that passed every check, by digest (performance only).
    verified: verified::VerifiedTokens,
    /// `GET /metrics` (issue 13).
    metrics: metrics::Metrics,
    /// RFC 9449: the `jti`s seen and the nonces.
    dpop: dpop::DpopState,
    /// RFC 7662: the tokens whose first use was reported.
    first_use: first_use::FirstUse,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("config", &self.config)
            .field("jwks_uri", &self.jwks_uri)
            .field("keys", &self.current_keys())
            .finish_non_exhaustive()
    }
}

impl ResourceServer {
    pub fn config(&self) -> &ResourceServerConfig {
        &self.config
    }

    /// The authorization server metadata found by discovery (RFC 8414 §2).
    pub fn metadata(&self) -> &AuthorizationServerMetadata {
        &self.metadata
    }

    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }
}

/// Serves the resource server on an already-bound listener until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    server: Arc<ResourceServer>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, issuer = %server.config.issuer, "resource server listening");
    }
    // Keeps the key set fresh while no request comes (requests also refresh a stale set
    // themselves, so this only saves the first request after a quiet spell the wait).
    let refresher = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(KEY_REFRESH_TICK_SECONDS));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if server.clock.now() >= server.keys_stale_at() {
                    server.refresh_keys_if_stale().await;
                }
            }
        })
    };
    let served = figure2_http::serve(listener, server, Limits::default(), shutdown).await;
    refresher.abort();
    served
}

/// Seconds between the background checks of the key set's freshness (real time).
const KEY_REFRESH_TICK_SECONDS: u64 = 5;
