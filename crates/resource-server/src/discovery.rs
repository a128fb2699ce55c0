//! RFC 8414 §3: finding the authorization server's signing keys before Figure 2 starts,
//! and re-fetching them (rate limited) when a token names a key we have not seen.

use crate::keys::KeySet;
use crate::{ResourceServer, ResourceServerConfig};
use figure2_http::{ClientError, HttpClient};
use figure2_protocol::Clock;
use figure2_protocol::metadata::{self, AuthorizationServerMetadata, MetadataError};
use http::Method;
use jsonwebtoken::jwk::JwkSet;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// How long a JWKS re-fetch on the request path may take before the request gives up on it.
const REFETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("issuer {0:?} is not a URL a metadata URL can be built from (RFC 8414 §3.1)")]
    InvalidIssuer(String),
    #[error(transparent)]
    Fetch(#[from] ClientError),
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url} did not return the expected JSON: {source}")]
    Json { url: String, source: serde_json::Error },
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("the JWK Set at {url} holds no key usable for verifying access tokens")]
    NoUsableKeys { url: String },
}

impl DiscoveryError {
    /// Whether trying again later may help (the authorization server may not be up yet).
    /// A bad issuer URL or an issuer mismatch will not fix itself.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::InvalidIssuer(_) | Self::Metadata(MetadataError::IssuerMismatch { .. }))
    }
}

impl ResourceServer {
    /// RFC 8414: GET the issuer's metadata, check its `issuer` (§3.3), then GET its
    /// `jwks_uri` and cache the keys. No network call happens per request after this,
    /// except a rate-limited JWKS re-fetch when a token names an unknown `kid`.
    pub async fn discover(
        config: ResourceServerConfig,
        clock: Arc<dyn Clock>,
        http: HttpClient,
    ) -> Result<Arc<Self>, DiscoveryError> {
        let url = metadata::metadata_url(&config.issuer)
            .ok_or_else(|| DiscoveryError::InvalidIssuer(config.issuer.clone()))?;
        let metadata: AuthorizationServerMetadata = get_json(&http, &url).await?;
        // RFC 8414 §3.3: the metadata's issuer MUST be identical to the one we asked for.
        metadata.validate_for_issuer(&config.issuer)?;
        let jwks_uri = metadata.jwks_uri()?.to_owned();
        let keys = fetch_keys(&http, &jwks_uri).await?;
        if keys.is_empty() {
            return Err(DiscoveryError::NoUsableKeys { url: jwks_uri });
        }
        tracing::info!(issuer = %config.issuer, jwks_uri = %jwks_uri, keys = ?keys, "discovered the authorization server");
        let fetched_at = clock.now();
        let verified = crate::verified::VerifiedTokens::new(config.verified_token_cache);
        Ok(Arc::new(Self {
            verified,
            config,
            clock,
            http,
            metadata,
            jwks_uri,
            keys: RwLock::new(Arc::new(keys)),
            last_jwks_fetch: tokio::sync::Mutex::new(fetched_at),
            metrics: crate::metrics::Metrics::default(),
        }))
    }

    /// The keys as of the last successful fetch. The lock is held only to clone an `Arc`.
    pub(crate) fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-fetches the JWKS because a token named `kid`, which we do not know, unless a
    /// fetch happened less than `jwks_refetch_min_interval` seconds ago. Concurrent
    /// callers queue on one lock, so a burst of unknown-kid tokens costs one fetch.
    pub(crate) async fn keys_after_refetch(&self, kid: &str) -> Arc<KeySet> {
        let mut last_fetch = self.last_jwks_fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        let keys = self.current_keys();
        if keys.contains_kid(kid) {
            return keys;
        }
        let now = self.clock.now();
        if now.saturating_sub(*last_fetch) < self.config.jwks_refetch_min_interval {
            tracing::debug!(kid, "unknown kid; JWKS fetched too recently to fetch again");
            return keys;
        }
        // A failed attempt counts too, so an unreachable server is not hammered.
        *last_fetch = now;
        let fetched = match tokio::time::timeout(REFETCH_TIMEOUT, fetch_keys(&self.http, &self.jwks_uri)).await {
            Ok(result) => result,
            Err(_) => Err(DiscoveryError::Fetch(ClientError::Timeout(self.jwks_uri.clone()))),
        };
        match fetched {
            Ok(fresh) => {
                tracing::info!(kid, keys = ?fresh, "unknown kid; JWKS re-fetched");
                let fresh = Arc::new(fresh);
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
                fresh
            }
            Err(e) => {
                tracing::warn!(kid, error = %e, "unknown kid; JWKS re-fetch failed, keeping the cached keys");
                keys
            }
        }
    }
}

async fn fetch_keys(http: &HttpClient, jwks_uri: &str) -> Result<KeySet, DiscoveryError> {
    let set: JwkSet = get_json(http, jwks_uri).await?;
    let (keys, skipped) = KeySet::from_jwks(&set);
    for s in skipped {
        tracing::debug!(kid = ?s.kid, reason = s.reason, "JWK not used");
    }
    Ok(keys)
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &HttpClient, url: &str) -> Result<T, DiscoveryError> {
    let response = http.send(Method::GET, url, &[("accept", "application/json")], None).await?;
    if response.status != 200 {
        return Err(DiscoveryError::Status { url: url.to_owned(), status: response.status });
    }
    serde_json::from_slice(&response.body).map_err(|source| DiscoveryError::Json { url: url.to_owned(), source })
}
