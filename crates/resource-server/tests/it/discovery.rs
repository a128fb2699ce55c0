//! RFC 8414 discovery, and the JWKS re-fetch when the authorization server rotates keys.

use crate::support::{Harness, NowSecs, Signer, challenge, jwks, mount_authorization_server};
use figure2_http::HttpClient;
use figure2_protocol::SimulatedClock;
use figure2_protocol::metadata::{MetadataError, WELL_KNOWN_SUFFIX};
use figure2_resource_server::{DiscoveryError, ResourceServer, ResourceServerConfig};
use serde_json::json;
use std::sync::Arc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn discover(issuer: String) -> Result<Arc<ResourceServer>, DiscoveryError> {
    let config = ResourceServerConfig::new(issuer, crate::support::AUDIENCE);
    ResourceServer::discover(config, Arc::new(SimulatedClock::starting_at(0)), HttpClient::new()).await
}

#[tokio::test]
async fn a_new_key_is_accepted_right_after_start_up_and_misses_are_rate_limited() {
    let h = Harness::start().await;
    assert_eq!(h.jwks_fetches().await, 1, "discovery");
    let k2 = Signer::generate("k2");
    h.publish_jwks(&jwks(&[&h.signer, &k2])).await; // also resets the request log

    // Issue 10 kind 3: the start-up fetch does not hold back the re-fetch, so a key
    // published right after the resource server started is accepted at once.
    let r = h.get("/resource/read", Some(&k2.sign(&h.claims()))).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(h.jwks_fetches().await, 1);
    // Known now: no further fetch.
    assert_eq!(h.get("/resource/read", Some(&k2.sign(&h.claims()))).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1);

    // Kids that are not published: each costs a re-fetch, which misses, up to five...
    for i in 0..5 {
        let r = h.get("/resource/read", Some(&Signer::generate(&format!("x{i}")).sign(&h.claims()))).await;
        assert_eq!(r.status, 401);
        assert!(challenge(&r).contains("unknown key"));
        assert_eq!(h.jwks_fetches().await, 2 + i);
    }
    // ...then unknown kids cost nothing until the oldest miss is 30 s old.
    h.clock.advance(29);
    let k3 = Signer::generate("k3");
    assert_eq!(h.get("/resource/read", Some(&k3.sign(&h.claims()))).await.status, 401);
    assert_eq!(h.jwks_fetches().await, 6);
    // Even a key published meanwhile waits: the price of the bound.
    h.publish_jwks(&jwks(&[&h.signer, &k2, &k3])).await;
    assert_eq!(h.get("/resource/read", Some(&k3.sign(&h.claims()))).await.status, 401);
    assert_eq!(h.jwks_fetches().await, 0);
    h.clock.advance(1);
    assert_eq!(h.get("/resource/read", Some(&k3.sign(&h.claims()))).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1);
}

/// Issue 10 kind 3: after `rotate-key`, `retire-key OLD` and a restart the JWKS lists
/// only the new key; tokens signed with the retired key are refused as soon as the key
/// set goes stale (`Cache-Control: max-age=60`), even one the verified-token cache holds.
#[tokio::test]
async fn a_retired_key_is_refused_once_the_key_set_is_stale() {
    let h = Harness::start().await;
    let old = h.token();
    assert_eq!(h.get("/resource/read", Some(&old)).await.status, 200, "verified and cached");
    let k2 = Signer::generate("k2");
    h.publish_jwks_with(&jwks(&[&k2]), &[("cache-control", "max-age=60")]).await;
    // The key set fetched at start-up had no caching headers: the ceiling (300 s) bounds it.
    h.clock.advance(299);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200, "still within the key set's lifetime");
    assert_eq!(h.jwks_fetches().await, 0);
    h.clock.advance(1);
    let r = h.get("/resource/read", Some(&h.token())).await;
    assert_eq!(r.status, 401, "the retired key no longer verifies");
    assert!(challenge(&r).contains("unknown key"), "{}", challenge(&r));
    // The refresh of the stale set, then one unknown-kid re-fetch that misses (each
    // retired-key token costs one, at most five per 30 s).
    assert_eq!(h.jwks_fetches().await, 2);
    assert_eq!(h.get("/resource/read", Some(&old)).await.status, 401);
    assert_eq!(h.jwks_fetches().await, 3);
    // The new key's tokens work; the new set honours max-age=60.
    assert_eq!(h.get("/resource/read", Some(&k2.sign(&h.claims()))).await.status, 200);
    let k2_token = k2.sign(&h.claims());
    assert_eq!(h.get("/resource/read", Some(&k2_token)).await.status, 200);
    let k3 = Signer::generate("k3");
    h.publish_jwks_with(&jwks(&[&k3]), &[("cache-control", "max-age=60")]).await;
    h.clock.advance(59);
    assert_eq!(h.get("/resource/read", Some(&k2_token)).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 0);
    h.clock.advance(1);
    assert_eq!(h.get("/resource/read", Some(&k2_token)).await.status, 401, "60 s later is past max-age=60");
    // The stale refresh, then an unknown-kid re-fetch that misses.
    assert_eq!(h.jwks_fetches().await, 2);
}

#[tokio::test]
async fn the_key_set_lifetime_is_bounded_by_floor_and_ceiling() {
    let h = Harness::start().await;
    // no-store: trusted for the floor (30 s), not fetched per request.
    h.publish_jwks_with(&jwks(&[&h.signer]), &[("cache-control", "no-store")]).await;
    h.clock.advance(300);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1);
    h.clock.advance(29);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1);
    h.clock.advance(1);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 2);
    // A day of max-age: trusted for the ceiling (300 s) only.
    h.publish_jwks_with(&jwks(&[&h.signer]), &[("cache-control", "max-age=86400")]).await;
    h.clock.advance(30);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1);
    h.clock.advance(299);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1);
    h.clock.advance(1);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 2);
    assert_eq!(h.server.keys_stale_at(), h.clock.now_secs() + 300);
}

#[tokio::test]
async fn a_failed_scheduled_refresh_keeps_the_keys_and_retries_after_the_interval() {
    let h = Harness::start().await;
    h.mock.reset().await; // the authorization server now answers 404 to everything
    h.clock.advance(300);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200, "stale but the only keys there are");
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1, "one attempt, then wait");
    h.clock.advance(30);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 2);
}

#[tokio::test]
async fn rotated_out_keys_stop_working_after_a_refetch() {
    let h = Harness::start().await;
    let old = h.token();
    let k2 = Signer::generate("k2");
    h.publish_jwks(&jwks(&[&k2])).await;
    h.clock.advance(30);
    assert_eq!(h.get("/resource/read", Some(&k2.sign(&h.claims()))).await.status, 200);
    assert_eq!(h.get("/resource/read", Some(&old)).await.status, 401);
}

#[tokio::test]
async fn concurrent_unknown_kids_cause_one_refetch() {
    let h = Arc::new(Harness::start().await);
    let k2 = Signer::generate("k2");
    h.publish_jwks(&jwks(&[&h.signer, &k2])).await;
    h.clock.advance(60);
    let token = k2.sign(&h.claims());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (h, token) = (h.clone(), token.clone());
        tasks.push(tokio::spawn(async move { h.get("/resource/read", Some(&token)).await.status }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(h.jwks_fetches().await, 1);
}

#[tokio::test]
async fn failed_refetch_keeps_the_cached_keys() {
    let h = Harness::start().await;
    h.mock.reset().await; // the authorization server now answers 404 to everything
    h.clock.advance(30);
    let k2 = Signer::generate("k2");
    assert_eq!(h.get("/resource/read", Some(&k2.sign(&h.claims()))).await.status, 401);
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
}

#[tokio::test]
async fn issuer_mismatch_is_refused_and_not_retryable() {
    let mock = MockServer::start().await;
    let metadata = json!({"issuer": "http://evil.example", "jwks_uri": format!("{}/jwks", mock.uri()), "response_types_supported": ["code"]});
    Mock::given(method("GET"))
        .and(path(WELL_KNOWN_SUFFIX))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata))
        .mount(&mock)
        .await;
    let err = discover(mock.uri()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Metadata(MetadataError::IssuerMismatch { .. })), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn discovery_errors() {
    // Nothing mounted: the metadata URL answers 404.
    let mock = MockServer::start().await;
    let err = discover(mock.uri()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Status { status: 404, .. }), "{err}");
    assert!(err.is_retryable());

    // Nobody listening: a transport error, worth retrying.
    let unused = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = unused.local_addr().unwrap();
    drop(unused);
    let err = discover(format!("http://{addr}")).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Fetch(_)), "{err}");
    assert!(err.is_retryable());

    let err = discover("not a url".into()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::InvalidIssuer(_)));

    // A JWKS with nothing usable in it.
    let mock = MockServer::start().await;
    mount_authorization_server(&mock, &json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]})).await;
    let err = discover(mock.uri()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::NoUsableKeys { .. }), "{err}");

    // Metadata that is not JSON.
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(WELL_KNOWN_SUFFIX))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&mock)
        .await;
    let err = discover(mock.uri()).await.unwrap_err();
    assert!(matches!(err, DiscoveryError::Json { .. }), "{err}");
}

#[tokio::test]
async fn issuer_with_a_path_uses_the_rfc8414_3_1_url() {
    let mock = MockServer::start().await;
    let issuer = format!("{}/tenant1", mock.uri());
    let signer = Signer::generate("k1");
    let metadata =
        json!({"issuer": issuer, "jwks_uri": format!("{}/jwks", mock.uri()), "response_types_supported": ["code"]});
    Mock::given(method("GET"))
        .and(path(format!("{WELL_KNOWN_SUFFIX}/tenant1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(metadata))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks(&[&signer])))
        .mount(&mock)
        .await;
    let server = discover(issuer.clone()).await.expect("discovery");
    assert_eq!(server.metadata().issuer, issuer);
}
