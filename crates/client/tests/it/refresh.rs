//! Steps G→H: when the client refreshes, what it sends (RFC 6749 §6) and what it keeps
//! (§5.1, RFC 9700 §4.14.2 rotation).

use crate::support::*;
use figure2_client::{ClientError, Step};
use figure2_protocol::client_auth::TokenEndpointAuthMethod;
use figure2_protocol::{ErrorCode, Scope};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn known_expiry_skips_e_f_and_goes_straight_to_g() {
    let h = Harness::new().await;
    h.authorize().await;
    resource_ok("at0").expect(0).mount(&h.rs).await;
    resource_ok("at1").expect(1).mount(&h.rs).await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;

    h.clock.advance(LIFETIME); // now == expires_at: expired (RFC 6749 §1.5 (E)).
    assert_eq!(h.call().await.unwrap().status, 200);
    // G/H then C/D; the stale token never went out, so there is no E/F.
    assert_eq!(h.steps(), [Step::AuthorizationGrant, Step::Refresh, Step::ProtectedResource]);
    assert_eq!(h.client.tokens().unwrap().expires_at, Some(START + 2 * LIFETIME));
}

#[tokio::test]
async fn not_yet_expired_token_is_used_as_is() {
    let h = Harness::new().await;
    h.authorize().await;
    resource_ok("at0").expect(1).mount(&h.rs).await;
    h.clock.advance(LIFETIME - 1);
    assert_eq!(h.call().await.unwrap().status, 200);
    assert!(h.refresh_requests().await.is_empty());
}

#[tokio::test]
async fn expiry_margin_refreshes_early() {
    let h = Harness::build(TokenEndpointAuthMethod::ClientSecretBasic, Some(CLIENT_SECRET), 30).await;
    h.authorize().await;
    resource_ok("at1").expect(1).mount(&h.rs).await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
    h.clock.advance(LIFETIME - 30);
    assert_eq!(h.call().await.unwrap().status, 200);
}

#[tokio::test]
async fn rotated_refresh_token_is_stored_and_used_next_time() {
    let h = Harness::new().await;
    h.authorize().await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
    refresh_mock("rt1", "at2", Some("rt2")).expect(1).mount(&h.auth).await;

    let first = h.client.refresh(None).await.unwrap();
    assert!(first.refresh_token.is_some_and(|rt| rt.ct_eq("rt1")));
    let second = h.client.refresh(None).await.unwrap();
    assert!(second.access_token.ct_eq("at2"));
    assert!(second.refresh_token.is_some_and(|rt| rt.ct_eq("rt2")));
    assert_eq!(second.generation, 3);

    let presented: Vec<String> =
        h.refresh_requests().await.iter().map(|f| f.get("refresh_token").unwrap_or_default().to_owned()).collect();
    assert_eq!(presented, ["rt0", "rt1"]);
}

#[tokio::test]
async fn h_without_refresh_token_keeps_the_old_one() {
    let h = Harness::new().await;
    h.authorize().await;
    refresh_mock("rt0", "at1", None).expect(2).mount(&h.auth).await;
    let t = h.client.refresh(None).await.unwrap();
    assert!(t.access_token.ct_eq("at1"));
    assert!(t.refresh_token.is_some_and(|rt| rt.ct_eq("rt0")));
    // §5.1: no scope in H means the scope of the grant is unchanged.
    assert_eq!(t.scope, Some(Scope::parse("read write").unwrap()));
    // And it is presented again next time.
    h.client.refresh(None).await.unwrap();
}

#[tokio::test]
async fn invalid_grant_requires_reauthorization_and_clears_tokens() {
    let h = Harness::new().await;
    h.authorize().await;
    any_refresh(token_error(400, "invalid_grant")).expect(1).mount(&h.auth).await;
    resource_ok("at0").expect(0).mount(&h.rs).await;

    h.clock.advance(LIFETIME);
    match h.call().await {
        Err(ClientError::ReauthorizationRequired(error)) => assert_eq!(error.error, ErrorCode::InvalidGrant),
        other => panic!("{other:?}"),
    }
    assert!(h.client.tokens().is_none());
    // Back to step A, nothing else.
    assert!(matches!(h.call().await, Err(ClientError::NotAuthorized)));
    h.authorize().await;
    assert!(h.client.tokens().is_some_and(|t| t.generation == 2));
}

#[tokio::test]
async fn other_refresh_errors_keep_the_tokens() {
    let h = Harness::new().await;
    h.authorize().await;
    any_refresh(token_error(401, "invalid_client")).mount(&h.auth).await;
    match h.client.refresh(None).await {
        Err(ClientError::TokenEndpoint { status: 401, error }) => assert_eq!(error.error, ErrorCode::InvalidClient),
        other => panic!("{other:?}"),
    }
    assert!(h.client.tokens().is_some_and(|t| t.access_token.ct_eq("at0")));
}

#[tokio::test]
async fn g_scope_narrowing_is_sent_in_the_body() {
    let h = Harness::new().await;
    h.authorize().await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
    let read = Scope::parse("read").unwrap();
    let t = h.client.refresh(Some(read.clone())).await.unwrap();
    // §5.1: H left out `scope`, so it is the one requested.
    assert_eq!(t.scope, Some(read));
    let forms = h.refresh_requests().await;
    assert_eq!(forms[0].get("scope"), Some("read"));
    assert_eq!(forms[0].get("refresh_token"), Some("rt0"));
}

#[tokio::test]
async fn g_without_scope_sends_no_scope_and_h_scope_wins() {
    let h = Harness::new().await;
    h.authorize().await;
    any_refresh(tokens("at1", None, Some("read"))).mount(&h.auth).await;
    let t = h.client.refresh(None).await.unwrap();
    assert_eq!(h.refresh_requests().await[0].get("scope"), None);
    assert_eq!(t.scope, Some(Scope::parse("read").unwrap()));
}

#[tokio::test]
async fn refresh_token_never_reaches_the_resource_server() {
    let h = Harness::new().await;
    h.authorize().await;
    resource_invalid_token("at0").mount(&h.rs).await;
    resource_ok("at1").mount(&h.rs).await;
    resource_ok("at2").mount(&h.rs).await;
    refresh_mock("rt0", "at1", Some("rt1")).mount(&h.auth).await;
    refresh_mock("rt1", "at2", Some("rt2")).mount(&h.auth).await;
    Mock::given(method("POST")).and(path("/token")).respond_with(ResponseTemplate::new(500)).mount(&h.auth).await;

    h.call().await.unwrap(); // E/F, G/H, C/D
    h.clock.advance(LIFETIME);
    h.call().await.unwrap(); // G/H, C/D
    h.call().await.unwrap(); // C/D

    let requests = h.rs.received_requests().await.unwrap();
    assert_eq!(requests.len(), 4);
    for request in &requests {
        let mut seen = request.url.to_string();
        for (name, value) in &request.headers {
            seen.push_str(&format!("\n{name}: {}", value.to_str().unwrap_or_default()));
        }
        seen.push_str(&String::from_utf8_lossy(&request.body));
        for rt in ["rt0", "rt1", "rt2"] {
            assert!(!seen.contains(rt), "refresh token {rt} sent to the resource server: {seen}");
        }
    }
    // ...and every refresh token went to the token endpoint only.
    assert_eq!(h.refresh_requests().await.len(), 2);
}

/// A proxy's 429 or 503 (or a gateway's 502/504) says nothing about the refresh token:
/// the client keeps it, reports when to try again, and the retry presents the same token
/// (matrix-org/matrix-js-sdk#5495 dropped it and logged people out).
#[tokio::test]
async fn busy_or_unreachable_token_endpoint_keeps_the_refresh_token() {
    for status in [429u16, 502, 503, 504] {
        let h = Harness::new().await;
        h.authorize().await;
        // Even a body claiming invalid_grant is not the server's §5.2 verdict on a 429/5xx.
        let busy = ResponseTemplate::new(status)
            .insert_header("retry-after", "10")
            .set_body_raw(r#"{"error":"invalid_grant"}"#, "application/json");
        any_refresh(busy).up_to_n_times(1).expect(1).mount(&h.auth).await;
        let err = h.client.refresh(None).await.unwrap_err();
        assert!(
            matches!(err, ClientError::Unavailable { status: s, retry_after: Some(10) } if s == status),
            "{status}: {err:?}"
        );
        assert!(h.client.tokens().and_then(|t| t.refresh_token).is_some_and(|rt| rt.ct_eq("rt0")), "{status}");
        refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
        assert!(h.client.refresh(None).await.unwrap().access_token.ct_eq("at1"), "{status}");
    }
}

#[tokio::test]
async fn html_503_without_retry_after_keeps_the_refresh_token() {
    let h = Harness::new().await;
    h.authorize().await;
    any_refresh(ResponseTemplate::new(503).set_body_raw("<html>down</html>", "text/html")).mount(&h.auth).await;
    let err = h.client.refresh(None).await.unwrap_err();
    assert!(matches!(err, ClientError::Unavailable { status: 503, retry_after: None }), "{err:?}");
    assert!(h.client.tokens().is_some());
}
