//! Token revocation (RFC 7009).

use crate::support::*;
use http::Method;

#[track_caller]
fn assert_revocation_ok(r: &figure2_http::ReceivedResponse) {
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_no_store(r);
}

#[tokio::test]
async fn rfc7009_2_1_revoking_a_refresh_token_ends_its_family() {
    let server = Setup::demo().start().await;
    let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    assert_revocation_ok(&server.revoke(DEMO, &rt1, Some("refresh_token")).await);
    server.refresh_refused(DEMO, &rt1).await;
    assert_eq!(server.introspect(DEMO, &rt1).await, serde_json::json!({"active": false}));
    // Revoking again is harmless.
    assert_revocation_ok(&server.revoke(DEMO, &rt1, None).await);
}

#[tokio::test]
async fn rfc7009_2_1_revocation_without_hint_or_with_a_wrong_hint_finds_the_refresh_token() {
    let server = Setup::demo().start().await;
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    // "If the server is unable to locate the token using the given hint, it MUST extend
    // its search across all of its supported token types."
    assert_revocation_ok(&server.revoke(Auth::Post("demo-client", "demo-secret"), &rt, Some("access_token")).await);
    server.refresh_refused(DEMO, &rt).await;
}

#[tokio::test]
async fn rfc7009_2_2_unknown_token_is_200() {
    let server = Setup::demo().start().await;
    // "invalid tokens do not cause an error response"
    for token in ["no-such-token", "eyJhbGciOiJub25lIn0.e30.", "x"] {
        assert_revocation_ok(&server.revoke(DEMO, token, None).await);
    }
}

#[tokio::test]
async fn rfc7009_2_1_revocation_requires_client_authentication() {
    let server = Setup::demo().start().await;
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let r = server.revoke(Auth::Anonymous, &rt, None).await;
    assert_error(&r, 401, "invalid_client");
    let r = server.revoke(Auth::Basic("demo-client", "wrong"), &rt, None).await;
    assert_error(&r, 401, "invalid_client");
    assert!(r.header("www-authenticate").is_some_and(|c| c.starts_with("Basic realm=")));
    // Nothing was revoked.
    server.refresh_ok(DEMO, &rt, None).await;
    // §2.1: the token parameter is REQUIRED.
    assert_error(&server.post_form("/revoke", DEMO, &[]).await, 400, "invalid_request");
}

#[tokio::test]
async fn rfc7009_2_1_a_client_cannot_revoke_another_clients_refresh_token() {
    let server = Setup::demo().start().await;
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let r = server.revoke(OTHER, &rt, None).await;
    // The server does not acknowledge the token exists (it answers as for an invalid
    // token); what matters is that the token survives.
    assert!(r.status == 200 || r.status == 400, "{}", r.status);
    server.refresh_ok(DEMO, &rt, None).await;
}

#[tokio::test]
async fn rfc7009_2_2_1_revoking_an_access_token_with_hint_is_unsupported_token_type() {
    let server = Setup::demo().start().await;
    let at = field(&ok_json(&server.token(DEMO, &[("grant_type", "client_credentials")]).await), "access_token");
    // JWT access tokens are self-contained and cannot be recalled before exp.
    let r = server.revoke(DEMO, &at, Some("access_token")).await;
    assert_error(&r, 400, "unsupported_token_type");
}

// Regression (a bug this suite found): revoking a JWT access token *without* token_type_hint (or with
// token_type_hint=refresh_token) answers 200, telling the client the token is revoked when it
// is still valid (it still introspects as active). RFC 7009 §2.1: token_type_hint is
// OPTIONAL and "the authorization server ... MUST extend its search across all of its
// supported token types"; §2.2 reserves 200 for "revoked successfully or ... an invalid
// token"; §2.2.1: unsupported_token_type when "the authorization server does not support
// the revocation of the presented token type". revocation.rs only checks access tokens
// when the hint is `access_token`.
// Request: POST /revoke (Basic demo-client) token=<valid access token>
#[tokio::test]
async fn rfc7009_2_2_1_revoking_an_access_token_without_hint_is_unsupported_token_type() {
    let server = Setup::demo().start().await;
    let at = field(&ok_json(&server.token(DEMO, &[("grant_type", "client_credentials")]).await), "access_token");
    assert_error(&server.revoke(DEMO, &at, None).await, 400, "unsupported_token_type");
    assert_error(&server.revoke(DEMO, &at, Some("refresh_token")).await, 400, "unsupported_token_type");
}

#[tokio::test]
async fn rfc7009_2_1_revocation_endpoint_accepts_post_only() {
    let server = Setup::demo().start().await;
    let r = server.send_raw(Method::GET, "/revoke?token=x", &[], "").await;
    assert_error(&r, 405, "invalid_request");
    assert_eq!(r.header("allow"), Some("POST"));
}
