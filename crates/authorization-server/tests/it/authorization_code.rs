//! The authorization code grant (RFC 6749 §4.1) with PKCE (RFC 7636) and the `iss`
//! authorization response parameter (RFC 9207).

use crate::support::*;
use figure2_http::ReceivedResponse;
use figure2_protocol::pkce::CodeVerifier;
use http::Method;

const PUBLIC_REDIRECT: &str = "http://127.0.0.1:8092/callback";
const DEMO_REDIRECT: &str = "http://127.0.0.1:8090/callback";

fn verifier(seed: u8) -> CodeVerifier {
    CodeVerifier::from_random(&[seed; 32])
}

/// A §4.1.1 authorization request query for public-client with an S256 challenge.
fn public_query(verifier: &CodeVerifier, state: &str) -> String {
    form(&[
        ("response_type", "code"),
        ("client_id", "public-client"),
        ("redirect_uri", PUBLIC_REDIRECT),
        ("scope", "read"),
        ("state", state),
        ("code_challenge", &verifier.s256_challenge()),
        ("code_challenge_method", "S256"),
    ])
}

/// The resource owner submits the login form.
async fn submit(server: &TestServer, query: &str, username: &str, password: &str, decision: &str) -> ReceivedResponse {
    let body = form(&[("request", query), ("username", username), ("password", password), ("decision", decision)]);
    server.send_raw(Method::POST, "/authorize", &[FORM], body).await
}

/// The `Location` of a 303, split into the URI before `?` and its query parameters.
#[track_caller]
fn redirected(r: &ReceivedResponse) -> (String, figure2_protocol::form::FormParams) {
    // RFC 9700 §4.12: 303 after a POST carrying credentials.
    assert_eq!(r.status, 303, "expected a redirect, got {}: {}", r.status, r.body_text());
    let location = r.header("location").expect("Location").to_owned();
    let base = location.split_once('?').map_or(location.as_str(), |(b, _)| b).to_owned();
    (base, query_params(&location))
}

/// Alice approves `query`; returns the code.
async fn code_for(server: &TestServer, query: &str) -> String {
    let (_, params) = redirected(&submit(server, query, "alice", "alice-password", "approve").await);
    params.get("code").expect("code in the redirect").to_owned()
}

async fn exchange(server: &TestServer, auth: Auth, code: &str, verifier: Option<&CodeVerifier>) -> ReceivedResponse {
    let mut params = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", PUBLIC_REDIRECT)];
    if let Some(v) = verifier {
        params.push(("code_verifier", v.as_str()));
    }
    server.token(auth, &params).await
}

#[track_caller]
fn assert_no_redirect(r: &ReceivedResponse, status: u16) {
    assert_eq!(r.status, status, "{}", r.body_text());
    assert!(r.header("location").is_none(), "must not redirect: {:?}", r.header("location"));
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/html"));
}

#[tokio::test]
async fn rfc6749_4_1_1_authorize_get_shows_the_login_form() {
    let server = Setup::demo().start().await;
    let query = public_query(&verifier(1), "xyz");
    let r = server.get(&format!("/authorize?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    // RFC 6749 §10.13: clickjacking.
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    let html = r.body_text();
    assert!(html.contains("<form method=\"post\""), "{html}");
    assert!(html.contains("name=\"password\""));
    assert!(html.contains("public-client"));
    assert!(html.contains("<code>read</code>"));
}

#[tokio::test]
async fn rfc6749_4_1_2_approval_redirects_with_code_state_and_iss() {
    let server = Setup::demo().start().await;
    let r = submit(&server, &public_query(&verifier(2), "af0ifjsldkj"), "alice", "alice-password", "approve").await;
    let (base, params) = redirected(&r);
    assert_eq!(base, PUBLIC_REDIRECT);
    assert!(params.get("code").is_some_and(|c| c.len() >= 22));
    // §4.1.2: state exactly as received.
    assert_eq!(params.get("state"), Some("af0ifjsldkj"));
    // RFC 9207 §2: iss is the issuer identifier.
    assert_eq!(params.get("iss"), Some(server.issuer.as_str()));
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn rfc7636_4_6_code_with_the_right_verifier_returns_tokens() {
    let server = Setup::demo().start().await;
    let v = verifier(3);
    let code = code_for(&server, &public_query(&v, "s")).await;
    let body = ok_json(&exchange(&server, PUBLIC, &code, Some(&v)).await);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    let (_, claims) = verify_with_jwks(&field(&body, "access_token"), &server.jwks().await).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "public-client");
    // The public client refreshes with its client_id only (§6: no authentication).
    let rt = field(&body, "refresh_token");
    let h = server.refresh_ok(PUBLIC, &rt, None).await;
    assert_eq!(h["scope"], "read");
}

#[tokio::test]
async fn rfc6749_4_1_3_confidential_client_exchanges_its_code_with_basic_auth() {
    let server = Setup::demo().start().await;
    // demo-client is confidential: PKCE is optional; redirect_uri omitted uses the registered one.
    let query = form(&[("response_type", "code"), ("client_id", "demo-client"), ("state", "q")]);
    let code = code_for(&server, &query).await;
    let body = ok_json(&server.token(DEMO, &[("grant_type", "authorization_code"), ("code", &code)]).await);
    assert_eq!(body["scope"], "read write");
    assert!(body["refresh_token"].is_string());
    // §4.1.3: the code was issued to demo-client, not to other-client.
    let code = code_for(&server, &query).await;
    let r = server
        .token(OTHER, &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", DEMO_REDIRECT)])
        .await;
    assert_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn rfc7636_4_6_wrong_or_missing_verifier_is_invalid_grant() {
    let server = Setup::demo().start().await;
    let v = verifier(4);
    let code = code_for(&server, &public_query(&v, "s")).await;
    let r = exchange(&server, PUBLIC, &code, Some(&verifier(5))).await;
    assert_error(&r, 400, "invalid_grant");
    let r = exchange(&server, PUBLIC, &code, None).await;
    assert_error(&r, 400, "invalid_grant");
    // A syntactically invalid verifier (§4.1: 43-128 characters) is a malformed request.
    let r = server
        .token(PUBLIC, &[("grant_type", "authorization_code"), ("code", &code), ("code_verifier", "short")])
        .await;
    assert_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn rfc6749_4_1_2_reused_code_is_invalid_grant_and_revokes_the_tokens_it_issued() {
    let server = Setup::demo().start().await;
    let v = verifier(6);
    let code = code_for(&server, &public_query(&v, "s")).await;
    let first = ok_json(&exchange(&server, PUBLIC, &code, Some(&v)).await);
    let rt = field(&first, "refresh_token");
    // "If an authorization code is used more than once, the authorization server MUST deny
    // the request and SHOULD revoke (when possible) all tokens previously issued based on
    // that authorization code."
    let r = exchange(&server, PUBLIC, &code, Some(&v)).await;
    assert_error(&r, 400, "invalid_grant");
    server.refresh_refused(PUBLIC, &rt).await;
}

#[tokio::test]
async fn rfc6749_4_1_2_code_expires_after_60_seconds() {
    let server = Setup::demo().start().await;
    let v = verifier(7);
    let query = public_query(&v, "s");
    let code = code_for(&server, &query).await;
    server.clock.advance(59);
    ok_json(&exchange(&server, PUBLIC, &code, Some(&v)).await);

    let code = code_for(&server, &query).await;
    server.clock.advance(60);
    assert_error(&exchange(&server, PUBLIC, &code, Some(&v)).await, 400, "invalid_grant");
}

#[tokio::test]
async fn rfc6749_4_1_3_redirect_uri_mismatch_is_invalid_grant() {
    let server = Setup::demo().start().await;
    let v = verifier(8);
    // The authorization request carried redirect_uri: the token request must repeat it.
    let code = code_for(&server, &public_query(&v, "s")).await;
    let mismatched = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://127.0.0.1:8092/other"),
        ("code_verifier", v.as_str()),
    ];
    assert_error(&server.token(PUBLIC, &mismatched).await, 400, "invalid_grant");
    let omitted = [("grant_type", "authorization_code"), ("code", &code), ("code_verifier", v.as_str())];
    assert_error(&server.token(PUBLIC, &omitted).await, 400, "invalid_grant");
}

#[tokio::test]
async fn rfc6749_4_1_2_1_unregistered_redirect_uri_is_shown_never_redirected_to() {
    let server = Setup::demo().start().await;
    let v = verifier(9);
    let evil = form(&[
        ("response_type", "code"),
        ("client_id", "public-client"),
        ("redirect_uri", "https://evil.example/callback"),
        ("state", "s"),
        ("code_challenge", &v.s256_challenge()),
        ("code_challenge_method", "S256"),
    ]);
    assert_no_redirect(&server.get(&format!("/authorize?{evil}")).await, 400);
    // Even after the resource owner "approves".
    assert_no_redirect(&submit(&server, &evil, "alice", "alice-password", "approve").await, 400);
    // Unknown or missing client_id: nowhere trustworthy to redirect to either.
    let unknown = form(&[("response_type", "code"), ("client_id", "nobody"), ("redirect_uri", PUBLIC_REDIRECT)]);
    assert_no_redirect(&server.get(&format!("/authorize?{unknown}")).await, 400);
    assert_no_redirect(&server.get("/authorize?response_type=code").await, 400);
}

#[tokio::test]
async fn rfc6749_4_1_2_1_response_type_token_redirects_unsupported_response_type_with_state() {
    let server = Setup::demo().start().await;
    let query = form(&[("response_type", "token"), ("client_id", "demo-client"), ("state", "st8")]);
    let (base, params) = redirected(&server.get(&format!("/authorize?{query}")).await);
    assert_eq!(base, DEMO_REDIRECT);
    assert_eq!(params.get("error"), Some("unsupported_response_type"));
    assert_eq!(params.get("state"), Some("st8"));
    assert_eq!(params.get("iss"), Some(server.issuer.as_str()));
    assert!(params.get("code").is_none());
}

#[tokio::test]
async fn rfc6749_4_1_2_1_scope_beyond_the_client_redirects_invalid_scope() {
    let server = Setup::demo().start().await;
    let query = form(&[("response_type", "code"), ("client_id", "demo-client"), ("scope", "admin"), ("state", "z")]);
    let (_, params) = redirected(&server.get(&format!("/authorize?{query}")).await);
    assert_eq!(params.get("error"), Some("invalid_scope"));
    assert_eq!(params.get("state"), Some("z"));
}

#[tokio::test]
async fn rfc6749_4_1_2_1_denial_redirects_access_denied() {
    let server = Setup::demo().start().await;
    let r = submit(&server, &public_query(&verifier(10), "deny-state"), "", "", "deny").await;
    let (base, params) = redirected(&r);
    assert_eq!(base, PUBLIC_REDIRECT);
    assert_eq!(params.get("error"), Some("access_denied"));
    assert_eq!(params.get("state"), Some("deny-state"));
    assert_eq!(params.get("iss"), Some(server.issuer.as_str()));
    assert!(params.get("code").is_none());
}

#[tokio::test]
async fn rfc6749_4_1_1_wrong_password_shows_a_401_page_and_no_code() {
    let server = Setup::demo().start().await;
    let r = submit(&server, &public_query(&verifier(11), "s"), "alice", "bob-password", "approve").await;
    assert_no_redirect(&r, 401);
    assert!(r.body_text().contains("Wrong username or password"));
    assert!(!r.body_text().contains("code="));
}

#[tokio::test]
async fn rfc9700_2_1_1_public_client_without_code_challenge_gets_invalid_request_redirect() {
    let server = Setup::demo().start().await;
    let query = form(&[("response_type", "code"), ("client_id", "public-client"), ("state", "p")]);
    let (base, params) = redirected(&server.get(&format!("/authorize?{query}")).await);
    assert_eq!(base, PUBLIC_REDIRECT);
    assert_eq!(params.get("error"), Some("invalid_request"));
    assert_eq!(params.get("state"), Some("p"));
    assert!(params.get("code").is_none());
}

#[tokio::test]
async fn rfc7636_4_3_plain_challenge_method_is_refused() {
    let server = Setup::demo().start().await;
    let v = verifier(12);
    for method in [Some("plain"), None] {
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", "public-client"),
            ("state", "m"),
            ("code_challenge", v.as_str()),
        ];
        if let Some(m) = method {
            pairs.push(("code_challenge_method", m));
        }
        let (_, params) = redirected(&server.get(&format!("/authorize?{}", form(&pairs))).await);
        assert_eq!(params.get("error"), Some("invalid_request"), "method {method:?}");
    }
}

#[tokio::test]
async fn rfc9700_4_14_2_a_public_client_s_refresh_tokens_rotate_even_with_rotation_off() {
    let server = Setup::demo().configure(|c| c.always_issue_new_refresh_token = Some(false)).start().await;
    let v = verifier(9);
    let code = code_for(&server, &public_query(&v, "s")).await;
    let rt0 = field(&ok_json(&exchange(&server, PUBLIC, &code, Some(&v)).await), "refresh_token");
    // Not sender-constrained, so rotated (and the old one refused) whatever the policy.
    let h = server.refresh_ok(PUBLIC, &rt0, None).await;
    assert_ne!(field(&h, "refresh_token"), rt0, "a public client's refresh token rotates");
    server.refresh_refused(PUBLIC, &rt0).await;
    // A confidential client under the same policy keeps its token.
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    assert!(server.refresh_ok(DEMO, &rt, None).await.get("refresh_token").is_none());
}
