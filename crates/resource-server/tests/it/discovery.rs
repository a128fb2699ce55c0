//! RFC 8414 discovery, and the JWKS re-fetch when the authorization server rotates keys.

use crate::support::{Harness, Signer, challenge, jwks, mount_authorization_server};
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
async fn key_rotation_refetches_the_jwks_at_most_once_per_interval() {
    let h = Harness::start().await;
    assert_eq!(h.jwks_fetches().await, 1, "discovery");
    let k2 = Signer::generate("k2");
    h.publish_jwks(&jwks(&[&h.signer, &k2])).await; // also resets the request log

    // Within the minimum interval since discovery: no re-fetch, the kid stays unknown.
    let r = h.get("/resource/read", Some(&k2.sign(&h.claims()))).await;
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("unknown key"));
    assert_eq!(h.jwks_fetches().await, 0);

    // Interval passed: the unknown kid triggers one re-fetch, and then the token works.
    h.clock.advance(30);
    let r = h.get("/resource/read", Some(&k2.sign(&h.claims()))).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(h.jwks_fetches().await, 1);
    // Known now: no further fetch.
    assert_eq!(h.get("/resource/read", Some(&k2.sign(&h.claims()))).await.status, 200);
    assert_eq!(h.jwks_fetches().await, 1);

    // A second unknown kid within the interval does not re-fetch.
    let k3 = Signer::generate("k3");
    h.clock.advance(29);
    assert_eq!(h.get("/resource/read", Some(&k3.sign(&h.claims()))).await.status, 401);
    assert_eq!(h.jwks_fetches().await, 1);
    // Once the interval has passed it does (and still fails: k3 is not published).
    h.clock.advance(1);
    assert_eq!(h.get("/resource/read", Some(&k3.sign(&h.claims()))).await.status, 401);
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
