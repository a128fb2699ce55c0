//! Steps C→D and E→F: presenting the access token (RFC 6750 §2.1), and which refusals
//! a refresh can cure (RFC 6750 §3.1).

use crate::support::*;
use figure2_client::{ClientError, Step};
use figure2_protocol::bearer::{BearerChallenge, BearerErrorCode};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn c_d_attaches_the_bearer_header() {
    let h = Harness::new().await;
    h.authorize().await;
    resource_ok("at0").expect(1).mount(&h.rs).await;
    let response = h.call().await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(&response.body[..], b"the protected resource");
    let requests = h.rs.received_requests().await.unwrap();
    assert_eq!(requests[0].headers["authorization"], "Bearer at0");
    // RFC 6750 §2.1 only: not in the query (§2.3) nor the body (§2.2).
    assert_eq!(requests[0].url.query(), None);
    assert!(requests[0].body.is_empty());
    assert_eq!(h.steps(), [Step::AuthorizationGrant, Step::ProtectedResource]);
}

#[tokio::test]
async fn call_before_a_is_not_authorized() {
    let h = Harness::new().await;
    assert!(matches!(h.call().await, Err(ClientError::NotAuthorized)));
    assert!(matches!(h.client.refresh(None).await, Err(ClientError::NotAuthorized)));
    assert!(h.rs.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn e_f_invalid_token_refreshes_once_and_retries_once() {
    let h = Harness::new().await;
    h.authorize().await;
    resource_invalid_token("at0").expect(1).mount(&h.rs).await;
    resource_ok("at1").expect(1).mount(&h.rs).await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;

    let response = h.call().await.unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(h.steps(), [Step::AuthorizationGrant, Step::InvalidToken, Step::Refresh, Step::ProtectedResource]);
    let t = h.client.tokens().unwrap();
    assert!(t.access_token.ct_eq("at1") && t.refresh_token.is_some_and(|rt| rt.ct_eq("rt1")));
    assert_eq!(t.generation, 2);
}

#[tokio::test]
async fn a_second_invalid_token_is_returned_not_looped() {
    let h = Harness::new().await;
    h.authorize().await;
    resource_invalid_token("at0").expect(1).mount(&h.rs).await;
    resource_invalid_token("at1").expect(1).mount(&h.rs).await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;

    let response = h.call().await.unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(response.bearer_challenge().and_then(|c| c.error), Some(BearerErrorCode::InvalidToken));
    assert_eq!(h.rs.received_requests().await.unwrap().len(), 2);
    assert_eq!(h.refresh_requests().await.len(), 1);
    assert_eq!(h.steps(), [Step::AuthorizationGrant, Step::InvalidToken, Step::Refresh, Step::InvalidToken]);
}

/// Answers every resource request with `response`; the client must not refresh.
async fn refused_without_refresh(response: ResponseTemplate, status: u16) {
    let h = Harness::new().await;
    h.authorize().await;
    Mock::given(method("GET")).and(path(RESOURCE)).respond_with(response).expect(1).mount(&h.rs).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_error(500, "server_error"))
        .expect(0)
        .mount(&h.auth)
        .await;
    let got = h.call().await.unwrap();
    assert_eq!(got.status, status);
    assert_eq!(h.steps(), [Step::AuthorizationGrant, Step::ProtectedResource]);
    assert!(h.client.tokens().is_some_and(|t| t.generation == 1));
}

/// Issue 10 kind 7: a 401 to a request that carried an access token means that token
/// was not accepted, whatever the challenge says (RFC 9110 §15.5.2): refresh once, retry
/// once. The inputs: a bare `WWW-Authenticate: Bearer`, none, another scheme.
#[tokio::test]
async fn f_any_401_to_a_presented_token_refreshes_once_and_retries_once() {
    let bare = BearerChallenge::unauthenticated("figure2").to_header_value();
    let answers = [
        ResponseTemplate::new(401).insert_header("www-authenticate", "Bearer"),
        ResponseTemplate::new(401).insert_header("www-authenticate", bare.as_str()),
        ResponseTemplate::new(401),
        ResponseTemplate::new(401).insert_header("www-authenticate", "Basic realm=\"x\""),
        ResponseTemplate::new(401).insert_header("www-authenticate", "Bearer error=\"vendor_specific\""),
    ];
    for answer in answers {
        let h = Harness::new().await;
        h.authorize().await;
        Mock::given(method("GET"))
            .and(path(RESOURCE))
            .and(wiremock::matchers::header("authorization", "Bearer at0"))
            .respond_with(answer)
            .expect(1)
            .mount(&h.rs)
            .await;
        resource_ok("at1").expect(1).mount(&h.rs).await;
        refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
        assert_eq!(h.call().await.unwrap().status, 200);
        assert_eq!(h.steps(), [Step::AuthorizationGrant, Step::InvalidToken, Step::Refresh, Step::ProtectedResource]);
    }
}

#[tokio::test]
async fn f_a_bare_401_again_after_the_refresh_is_returned_not_looped() {
    let h = Harness::new().await;
    h.authorize().await;
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&h.rs)
        .await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
    assert_eq!(h.call().await.unwrap().status, 401);
    assert_eq!(h.refresh_requests().await.len(), 1);
}

/// RFC 6750 §3.1: where an error code other than invalid_token is present it keeps its
/// meaning, even on a 401: a new token for the same grant would be no better.
#[tokio::test]
async fn known_non_token_errors_are_not_refreshed_even_on_401() {
    for error in [BearerErrorCode::InsufficientScope, BearerErrorCode::InvalidRequest] {
        let challenge = BearerChallenge::error("figure2", error, "no").to_header_value();
        refused_without_refresh(ResponseTemplate::new(401).insert_header("www-authenticate", challenge.as_str()), 401)
            .await;
    }
    let challenge = BearerChallenge::error("figure2", BearerErrorCode::InvalidRequest, "two methods").to_header_value();
    refused_without_refresh(ResponseTemplate::new(400).insert_header("www-authenticate", challenge.as_str()), 400)
        .await;
}

#[tokio::test]
async fn insufficient_scope_403_is_not_refreshed() {
    let challenge =
        BearerChallenge::error("figure2", BearerErrorCode::InsufficientScope, "needs admin").with_scope("admin");
    let response = ResponseTemplate::new(403).insert_header("www-authenticate", challenge.to_header_value().as_str());
    refused_without_refresh(response, 403).await;
}

#[tokio::test]
async fn invalid_token_among_several_challenges_is_found() {
    let h = Harness::new().await;
    h.authorize().await;
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .and(wiremock::matchers::header("authorization", "Bearer at0"))
        .respond_with(
            ResponseTemplate::new(401)
                .append_header("www-authenticate", "Basic realm=\"x\"")
                .append_header("www-authenticate", "Bearer error=invalid_token"),
        )
        .mount(&h.rs)
        .await;
    resource_ok("at1").mount(&h.rs).await;
    refresh_mock("rt0", "at1", None).expect(1).mount(&h.auth).await;
    assert_eq!(h.call().await.unwrap().status, 200);
}

#[tokio::test]
async fn body_is_sent_again_on_the_retry() {
    let h = Harness::new().await;
    h.authorize().await;
    let challenge = BearerChallenge::error("figure2", BearerErrorCode::InvalidToken, "expired").to_header_value();
    Mock::given(method("POST"))
        .and(path(RESOURCE))
        .and(wiremock::matchers::header("authorization", "Bearer at0"))
        .respond_with(ResponseTemplate::new(401).insert_header("www-authenticate", challenge.as_str()))
        .mount(&h.rs)
        .await;
    Mock::given(method("POST"))
        .and(path(RESOURCE))
        .and(wiremock::matchers::header("authorization", "Bearer at1"))
        .and(wiremock::matchers::body_string("payload"))
        .respond_with(ResponseTemplate::new(201))
        .expect(1)
        .mount(&h.rs)
        .await;
    refresh_mock("rt0", "at1", None).mount(&h.auth).await;
    let r = h.client.call(http::Method::POST, &h.resource_url(), Some(bytes::Bytes::from_static(b"payload"))).await;
    assert_eq!(r.unwrap().status, 201);
}
