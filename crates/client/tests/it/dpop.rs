//! RFC 9449 for the client: a proof with every token request (checked here with the
//! protocol crate's own validator, as a server would), the `DPoP` scheme with `ath` at the
//! resource server, one retry on `use_dpop_nonce` at either server, single flight kept.

use crate::support::*;
use figure2_protocol::dpop::{
    self, DpopChallenge, DpopChallengeError, NonceCheck, ProofExpectations, ReplayCache, ValidatedProof,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use wiremock::matchers::{method, path};
use wiremock::{Mock, Request, ResponseTemplate};

/// Checks the request's proof as a server would (RFC 9449 §4.3).
fn check(
    r: &Request,
    uri: &str,
    access_token: Option<&str>,
    nonce: Option<&str>,
    cache: &ReplayCache,
) -> Result<ValidatedProof, dpop::DpopRejection> {
    let values: Vec<&str> = r.headers.get_all("dpop").iter().map(|v| v.to_str().unwrap()).collect();
    let proof = dpop::single_proof(&values)?.ok_or(dpop::DpopRejection::Missing)?;
    let accepts = |n: &str| Some(n) == nonce;
    let expect = ProofExpectations {
        method: r.method.as_str(),
        uri,
        now: START,
        max_age: 60,
        leeway: 5,
        allowed_algorithms: &dpop::SUPPORTED_ALGORITHMS,
        access_token,
        nonce: if nonce.is_some() { NonceCheck::Required(&accepts) } else { NonceCheck::NotUsed },
    };
    dpop::validate_proof(proof, &expect, cache)
}

fn dpop_tokens(at: &str, rt: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(json!({"access_token": at, "token_type": "DPoP", "expires_in": LIFETIME, "refresh_token": rt}))
        .insert_header("cache-control", "no-store")
}

#[tokio::test]
async fn rfc9449_5_token_requests_carry_a_valid_proof_and_dpop_tokens_are_accepted() {
    let h = Harness::dpop().await;
    let token_uri = format!("{}/token", h.auth.uri());
    let cache = Arc::new(ReplayCache::new(100));
    let jkt = h.client.dpop_thumbprint().unwrap().to_owned();
    let (uri, c, expected) = (token_uri.clone(), cache.clone(), jkt.clone());
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |r: &Request| match check(r, &uri, None, None, &c) {
            Ok(p) if p.jkt == expected => dpop_tokens("at0", "rt0"),
            other => ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_dpop_proof", "error_description": format!("{other:?}")})),
        })
        .mount(&h.auth)
        .await;
    let tokens = h.client.request_token(password_grant()).await.unwrap();
    assert!(tokens.dpop_bound);
    // The refresh (G) carries a new proof (a new jti) with the same key.
    let refreshed = h.client.refresh(None).await.unwrap();
    assert!(refreshed.dpop_bound);
    assert_eq!(cache.len(), 2);
}

#[tokio::test]
async fn rfc9449_8_the_client_retries_once_with_the_token_endpoints_nonce() {
    let h = Harness::dpop().await;
    let token_uri = format!("{}/token", h.auth.uri());
    let cache = Arc::new(ReplayCache::new(100));
    let (uri, c) = (token_uri.clone(), cache.clone());
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |r: &Request| match check(r, &uri, None, Some("server-nonce-1"), &c) {
            Ok(_) => dpop_tokens("at0", "rt0").insert_header("dpop-nonce", "server-nonce-1"),
            Err(dpop::DpopRejection::UseNonce) => ResponseTemplate::new(400)
                .set_body_json(json!({"error": "use_dpop_nonce"}))
                .insert_header("dpop-nonce", "server-nonce-1"),
            Err(e) => ResponseTemplate::new(400)
                .set_body_json(json!({"error": "invalid_dpop_proof", "error_description": format!("{e:?}")})),
        })
        .mount(&h.auth)
        .await;
    h.client.request_token(password_grant()).await.unwrap();
    assert_eq!(h.exchanges().len(), 2, "one use_dpop_nonce, one retry");
    // The nonce is remembered: the refresh needs no second dance.
    h.client.refresh(None).await.unwrap();
    assert_eq!(h.exchanges().len(), 3);
}

#[tokio::test]
async fn rfc9449_8_a_second_use_dpop_nonce_is_not_retried_again() {
    let h = Harness::dpop().await;
    let n = Arc::new(AtomicUsize::new(0));
    let counter = n.clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |_: &Request| {
            let i = counter.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "use_dpop_nonce"}))
                .insert_header("dpop-nonce", format!("nonce-{i}").as_str())
        })
        .mount(&h.auth)
        .await;
    assert!(h.client.request_token(password_grant()).await.is_err());
    assert_eq!(n.load(Ordering::SeqCst), 2, "retried once, no loop");
}

#[tokio::test]
async fn rfc9449_7_1_dpop_scheme_with_ath_at_the_resource_server_and_nonce_retry() {
    let h = Harness::dpop().await;
    Mock::given(method("POST")).and(path("/token")).respond_with(dpop_tokens("at0", "rt0")).mount(&h.auth).await;
    h.client.request_token(password_grant()).await.unwrap();
    let resource = h.resource_url();
    let cache = Arc::new(ReplayCache::new(100));
    let jkt = h.client.dpop_thumbprint().unwrap().to_owned();
    let (uri, c) = (resource.clone(), cache.clone());
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .respond_with(move |r: &Request| {
            let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
            if auth != "DPoP at0" {
                return ResponseTemplate::new(400);
            }
            match check(r, &uri, Some("at0"), Some("rs-nonce"), &c) {
                Ok(p) if p.jkt == jkt => ResponseTemplate::new(200).set_body_string("the protected resource"),
                Err(dpop::DpopRejection::UseNonce) => ResponseTemplate::new(401)
                    .insert_header(
                        "www-authenticate",
                        DpopChallenge::new("rs", &dpop::SUPPORTED_ALGORITHMS)
                            .with_error(DpopChallengeError::UseDpopNonce, "nonce please")
                            .to_header_value()
                            .as_str(),
                    )
                    .insert_header("dpop-nonce", "rs-nonce"),
                _ => ResponseTemplate::new(401).insert_header(
                    "www-authenticate",
                    DpopChallenge::new("rs", &dpop::SUPPORTED_ALGORITHMS)
                        .with_error(DpopChallengeError::InvalidDpopProof, "bad")
                        .to_header_value()
                        .as_str(),
                ),
            }
        })
        .mount(&h.rs)
        .await;
    let r = h.call().await.unwrap();
    assert_eq!(r.status, 200);
    // The nonce dance at the RS is not a refresh: no request went to the token endpoint.
    assert!(h.refresh_requests().await.is_empty());
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn rfc9449_7_1_invalid_dpop_proof_is_not_cured_by_a_refresh() {
    let h = Harness::dpop().await;
    Mock::given(method("POST")).and(path("/token")).respond_with(dpop_tokens("at0", "rt0")).mount(&h.auth).await;
    h.client.request_token(password_grant()).await.unwrap();
    let challenge = DpopChallenge::new("rs", &dpop::SUPPORTED_ALGORITHMS)
        .with_error(DpopChallengeError::InvalidDpopProof, "bad")
        .to_header_value();
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", challenge.as_str()))
        .mount(&h.rs)
        .await;
    assert_eq!(h.call().await.unwrap().status, 401);
    assert!(h.refresh_requests().await.is_empty());
}

#[tokio::test]
async fn single_flight_holds_with_dpop() {
    let h = Arc::new(Harness::dpop().await);
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form("grant_type", "password"))
        .respond_with(dpop_tokens("at0", "rt0"))
        .mount(&h.auth)
        .await;
    h.client.request_token(password_grant()).await.unwrap();
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form("grant_type", "refresh_token"))
        .respond_with(dpop_tokens("at1", "rt1").set_delay(std::time::Duration::from_millis(50)))
        .expect(1)
        .mount(&h.auth)
        .await;
    h.clock.advance(LIFETIME);
    let invalid = DpopChallenge::new("rs", &dpop::SUPPORTED_ALGORITHMS)
        .with_error(DpopChallengeError::InvalidToken, "expired")
        .to_header_value();
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .and(wiremock::matchers::header("authorization", "DPoP at1"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&h.rs)
        .await;
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", invalid.as_str()))
        .mount(&h.rs)
        .await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.call().await.map(|r| r.status) })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().unwrap(), 200);
    }
    assert_eq!(h.refresh_requests().await.len(), 1, "one refresh for four callers");
}
