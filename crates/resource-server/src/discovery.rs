//! RFC 8414 §3: finding the authorization server's signing keys before Figure 2 starts,
//! and keeping them current while it runs.
//!
//! Trusted keys age like any cached HTTP response (RFC 9111 §4.2): the JWKS response's
//! `Cache-Control: max-age` (or `Expires` minus `Date`) says how long the key set is
//! fresh, bounded by [`crate::ResourceServerConfig::jwks_cache_floor`] and
//! [`crate::ResourceServerConfig::jwks_cache_ceiling`]. Once stale, the set is fetched
//! again (by the background task of [`crate::serve`], or by the first request that
//! notices, against the injected clock) and replaces the old one wholesale: a key the
//! issuer no longer publishes stops verifying, and so do the verified-token cache's
//! entries made with the old set. A key set is therefore trusted at most
//! `min(max(lifetime, floor), ceiling)` seconds after it was fetched.
//!
//! A token naming an unknown `kid` triggers a prompt re-fetch (the issuer may have just
//! rotated its key). Only re-fetches that did not find their `kid` (or failed) count
//! against the rate limit: after [`crate::ResourceServerConfig::jwks_refetch_max_misses`]
//! of them within `jwks_refetch_min_interval` seconds, unknown kids wait until the oldest
//! is that old (with the defaults, at most 5 wasted fetches per 30 s, whatever tokens an
//! attacker sends). The start-up fetch and the scheduled ones never count, so a freshly
//! published key is accepted at once unless that many misses just happened; then it
//! waits at most the interval (or until the set goes stale).

use crate::keys::KeySet;
use crate::{ResourceServer, ResourceServerConfig};
use figure2_http::discovery::get_json;
use figure2_http::{ClientError, HttpClient};
use figure2_protocol::{Clock, UnixTime};
use http::{HeaderMap, header};
use jsonwebtoken::jwk::JwkSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

/// How long a JWKS re-fetch on the request path may take before the request gives up on it.
const REFETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub use figure2_http::discovery::DiscoveryError;

/// When the key set was fetched and what the fetches since allow (guarded by the tokio
/// mutex that serialises fetches).
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchState {
    /// When the recent unknown-`kid` re-fetches that did not find their `kid` (or failed)
    /// ran, oldest first; only those within `jwks_refetch_min_interval` are kept.
    misses: std::collections::VecDeque<UnixTime>,
}

impl FetchState {
    /// Whether another unknown-kid re-fetch may run at `now`.
    fn may_refetch(&mut self, now: UnixTime, config: &ResourceServerConfig) -> bool {
        while self.misses.front().is_some_and(|&miss| now.saturating_sub(miss) >= config.jwks_refetch_min_interval) {
            self.misses.pop_front();
        }
        self.misses.len() < config.jwks_refetch_max_misses
    }
}

impl ResourceServer {
    /// RFC 8414: GET the issuer's metadata, check its `issuer` (§3.3), then GET its
    /// `jwks_uri` and cache the keys for as long as the response allows. No network call
    /// happens per request after this, except when the key set goes stale or a token
    /// names an unknown `kid`.
    pub async fn discover(
        config: ResourceServerConfig,
        clock: Arc<dyn Clock>,
        http: HttpClient,
    ) -> Result<Arc<Self>, DiscoveryError> {
        let metadata = figure2_http::discover(&http, &config.issuer).await?;
        let jwks_uri = metadata.jwks_uri()?.to_owned();
        let fetched_at = clock.now();
        let (keys, lifetime) = fetch_keys(&http, &jwks_uri, &config, fetched_at).await?;
        if keys.is_empty() {
            return Err(DiscoveryError::NoUsableKeys { url: jwks_uri });
        }
        tracing::info!(issuer = %config.issuer, jwks_uri = %jwks_uri, keys = ?keys, lifetime, "discovered the authorization server");
        let verified = crate::verified::VerifiedTokens::new(config.verified_token_cache);
        // RFC 7662 §2: reporting first uses needs the introspection endpoint (RFC 8414 §2).
        let introspection_endpoint = match &config.report_first_use {
            Some(_) => Some(
                metadata
                    .introspection_endpoint
                    .clone()
                    .ok_or(figure2_protocol::metadata::MetadataError::Missing("introspection_endpoint"))?,
            ),
            None => None,
        };
        let first_use = crate::first_use::FirstUse::new(
            config.report_first_use.clone(),
            introspection_endpoint,
            config.first_use_memory,
        );
        let dpop = crate::dpop::DpopState::new(&config);
        Ok(Arc::new(Self {
            verified,
            dpop,
            first_use,
            config,
            clock,
            http,
            metadata,
            jwks_uri,
            keys: RwLock::new(Arc::new(keys)),
            keys_stale_at: AtomicU64::new(fetched_at.saturating_add(lifetime)),
            jwks_fetch: tokio::sync::Mutex::new(FetchState::default()),
            metrics: crate::metrics::Metrics::default(),
        }))
    }

    /// The keys as of the last successful fetch. The lock is held only to clone an `Arc`.
    pub(crate) fn current_keys(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// When the current key set goes stale (seconds since the epoch, injected clock).
    pub fn keys_stale_at(&self) -> UnixTime {
        self.keys_stale_at.load(Ordering::Acquire)
    }

    /// The keys to verify with now: the current set, fetched again first if it is stale.
    pub(crate) async fn fresh_keys(&self) -> Arc<KeySet> {
        if self.clock.now() >= self.keys_stale_at() {
            self.refresh_keys_if_stale().await;
        }
        self.current_keys()
    }

    /// Fetches the JWKS again if the current set is stale (RFC 9111 §4.2). Concurrent
    /// callers queue on one lock, so a stale set costs one fetch. If the fetch fails, the
    /// old keys stay (an authorization server restarting must not stop every request)
    /// and the next attempt waits `jwks_refetch_min_interval` seconds.
    pub async fn refresh_keys_if_stale(&self) {
        let _state = self.jwks_fetch.lock().await;
        let now = self.clock.now();
        // Another caller may have refreshed while this one waited.
        if now < self.keys_stale_at() {
            return;
        }
        match self.fetch_with_timeout(now).await {
            Ok((fresh, lifetime)) => {
                tracing::info!(keys = ?fresh, lifetime, "key set was stale; JWKS re-fetched");
                self.install(fresh, now, lifetime);
            }
            Err(e) => {
                let retry = now.saturating_add(self.config.jwks_refetch_min_interval.max(1));
                self.keys_stale_at.store(retry, Ordering::Release);
                tracing::warn!(error = %e, retry_at = retry, "key set is stale and the JWKS re-fetch failed; keeping the cached keys");
            }
        }
    }

    /// Re-fetches the JWKS because a token named `kid`, which we do not know, unless too
    /// many such re-fetches missed lately (see the module docs). Concurrent callers queue
    /// on one lock, so a burst of tokens with one new kid costs one fetch.
    pub(crate) async fn keys_after_refetch(&self, kid: &str) -> Arc<KeySet> {
        let mut state = self.jwks_fetch.lock().await;
        // Another request may have fetched while this one waited for the lock.
        let keys = self.current_keys();
        if keys.contains_kid(kid) {
            return keys;
        }
        let now = self.clock.now();
        if !state.may_refetch(now, &self.config) {
            tracing::debug!(kid, "unknown kid; too many re-fetches missed lately to fetch again");
            return keys;
        }
        match self.fetch_with_timeout(now).await {
            Ok((fresh, lifetime)) => {
                let found = fresh.contains_kid(kid);
                tracing::info!(kid, found, keys = ?fresh, "unknown kid; JWKS re-fetched");
                if !found {
                    state.misses.push_back(now);
                }
                self.install(fresh, now, lifetime)
            }
            Err(e) => {
                state.misses.push_back(now);
                tracing::warn!(kid, error = %e, "unknown kid; JWKS re-fetch failed, keeping the cached keys");
                keys
            }
        }
    }

    /// Replaces the key set (keys no longer published are gone; the verified-token cache
    /// ignores entries of the old set) and records when the new one goes stale.
    fn install(&self, fresh: KeySet, now: UnixTime, lifetime: u64) -> Arc<KeySet> {
        let fresh = Arc::new(fresh);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        self.keys_stale_at.store(now.saturating_add(lifetime), Ordering::Release);
        fresh
    }

    async fn fetch_with_timeout(&self, now: UnixTime) -> Result<(KeySet, u64), DiscoveryError> {
        match tokio::time::timeout(REFETCH_TIMEOUT, fetch_keys(&self.http, &self.jwks_uri, &self.config, now)).await {
            Ok(result) => result,
            Err(_) => Err(DiscoveryError::Fetch(ClientError::Timeout(self.jwks_uri.clone()))),
        }
    }
}

/// GETs the JWK Set; returns its usable keys and how long they stay fresh (seconds).
async fn fetch_keys(
    http: &HttpClient,
    jwks_uri: &str,
    config: &ResourceServerConfig,
    now: UnixTime,
) -> Result<(KeySet, u64), DiscoveryError> {
    let (set, headers): (JwkSet, _) = get_json(http, jwks_uri).await?;
    let (keys, skipped) = KeySet::from_jwks(&set);
    for s in skipped {
        tracing::debug!(kid = ?s.kid, reason = s.reason, "JWK not used");
    }
    Ok((keys, key_set_lifetime(&headers, now, config.jwks_cache_floor, config.jwks_cache_ceiling)))
}

/// How long a fetched JWK Set stays fresh, in seconds (RFC 9111 §4.2.1): `max-age` of
/// `Cache-Control` (`no-cache`/`no-store` count as 0), else `Expires` minus `Date` (or
/// minus `now` without `Date`), else the ceiling; always within `[floor, ceiling]`.
pub fn key_set_lifetime(headers: &HeaderMap, now: UnixTime, floor: u64, ceiling: u64) -> u64 {
    let ceiling = ceiling.max(floor);
    lifetime_from_headers(headers, now).unwrap_or(ceiling).clamp(floor, ceiling)
}

fn lifetime_from_headers(headers: &HeaderMap, now: UnixTime) -> Option<u64> {
    let mut max_age = None;
    for value in headers.get_all(header::CACHE_CONTROL).iter().filter_map(|v| v.to_str().ok()) {
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = directive.split_once('=').map_or((directive, None), |(n, a)| (n.trim(), Some(a.trim())));
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(0);
            }
            // RFC 9111 §5.2.2.1: delta-seconds, possibly quoted by lenient senders.
            if name.eq_ignore_ascii_case("max-age")
                && let Some(seconds) = arg.and_then(|a| a.trim_matches('"').parse::<u64>().ok())
            {
                max_age = Some(max_age.map_or(seconds, |m: u64| m.min(seconds)));
            }
        }
    }
    if max_age.is_some() {
        return max_age;
    }
    // RFC 9111 §5.3: an invalid Expires (such as "0") means already expired.
    let expires = headers.get(header::EXPIRES)?.to_str().ok()?;
    let Ok(expires) = httpdate::parse_http_date(expires) else { return Some(0) };
    let base = match headers.get(header::DATE).and_then(|d| d.to_str().ok()).map(httpdate::parse_http_date) {
        Some(Ok(date)) => date,
        _ => std::time::UNIX_EPOCH + Duration::from_secs(now),
    };
    Some(expires.duration_since(base).map_or(0, |d| d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn rfc9111_4_2_1_freshness_lifetime_within_floor_and_ceiling() {
        let life = |pairs: &[(&'static str, &'static str)]| key_set_lifetime(&headers(pairs), 0, 30, 300);
        assert_eq!(life(&[("cache-control", "max-age=60")]), 60);
        assert_eq!(life(&[("cache-control", "public, MAX-AGE=\"120\"")]), 120);
        assert_eq!(life(&[("cache-control", "max-age=5")]), 30, "floor");
        assert_eq!(life(&[("cache-control", "max-age=86400")]), 300, "ceiling");
        assert_eq!(life(&[("cache-control", "no-store")]), 30);
        assert_eq!(life(&[("cache-control", "no-cache, max-age=100")]), 30);
        assert_eq!(life(&[]), 300, "no caching information: the ceiling");
        assert_eq!(life(&[("cache-control", "max-age=bogus")]), 300);
        // Expires minus Date when there is no max-age; max-age wins over Expires.
        let date = ("date", "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(life(&[date, ("expires", "Sun, 06 Nov 1994 08:51:37 GMT")]), 120);
        assert_eq!(life(&[date, ("expires", "Sun, 06 Nov 1994 08:49:00 GMT")]), 30);
        assert_eq!(life(&[date, ("expires", "0")]), 30, "an invalid Expires is already expired");
        assert_eq!(life(&[date, ("expires", "Sun, 06 Nov 1994 08:51:37 GMT"), ("cache-control", "max-age=90")]), 90);
        // Without Date, Expires is measured from the injected now.
        let now = 784_111_777; // 1994-11-06T08:49:37Z
        let h = headers(&[("expires", "Sun, 06 Nov 1994 08:50:37 GMT")]);
        assert_eq!(key_set_lifetime(&h, now, 30, 300), 60);
    }
}
