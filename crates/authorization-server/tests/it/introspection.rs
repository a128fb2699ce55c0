//! Token introspection (RFC 7662).

use crate::support::*;
use serde_json::json;

#[tokio::test]
async fn rfc7662_2_2_live_refresh_token_is_active_with_client_scope_and_sub() {
    let server = Setup::demo().start().await;
    let rt = field(&server.password_grant(DEMO, Some("read")).await, "refresh_token");
    let answer = server.introspect(DEMO, &rt).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], "demo-client");
    assert_eq!(answer["scope"], "read");
    assert_eq!(answer["sub"], "alice");
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["iss"], server.issuer.as_str());
    assert_eq!(answer["iat"], START);
    assert_eq!(answer["exp"], START + 14 * 24 * 3600);
    // RFC 7662 §2.2: token_type is an RFC 6749 §7.1 type, never the RFC 7009 hint value
    // `refresh_token`; a refresh token has no such type, so the OPTIONAL member is absent.
    assert_eq!(answer.get("token_type"), None, "{answer}");
}

#[tokio::test]
async fn rfc7662_2_2_rotated_or_revoked_refresh_token_is_exactly_inactive() {
    let server = Setup::demo().start().await;
    let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    // §2.2: for an inactive token the server "SHOULD NOT include any additional information".
    assert_eq!(server.introspect(DEMO, &rt0).await, json!({"active": false}));
    assert_eq!(server.introspect(DEMO, &rt1).await["active"], true);
    assert_eq!(server.revoke(DEMO, &rt1, None).await.status, 200);
    assert_eq!(server.introspect(DEMO, &rt1).await, json!({"active": false}));
    // Unknown and garbage tokens alike.
    assert_eq!(server.introspect(DEMO, "nope").await, json!({"active": false}));
    assert_eq!(server.introspect(DEMO, "a.b.c").await, json!({"active": false}));
}

#[tokio::test]
async fn rfc7662_2_2_access_token_is_active_with_its_claims() {
    let server = Setup::demo().start().await;
    let body = server.password_grant(DEMO, None).await;
    let at = field(&body, "access_token");
    let (_, claims) = verify_with_jwks(&at, &server.jwks().await).unwrap();
    let answer = server.introspect(OTHER, &at).await;
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["client_id"], "demo-client");
    assert_eq!(answer["scope"], "read write");
    assert_eq!(answer["sub"], "alice");
    assert_eq!(answer["aud"], AUDIENCE);
    assert_eq!(answer["iss"], server.issuer.as_str());
    assert_eq!(answer["exp"], START + 3600);
    assert_eq!(answer["iat"], START);
    assert_eq!(answer["jti"], claims["jti"]);
}

#[tokio::test]
async fn rfc7662_2_2_expired_access_token_is_inactive() {
    let server = Setup::demo().start().await;
    let at = field(&ok_json(&server.token(DEMO, &[("grant_type", "client_credentials")]).await), "access_token");
    server.clock.advance(3599);
    assert_eq!(server.introspect(DEMO, &at).await["active"], true);
    // RFC 7519 §4.1.4: not accepted "on or after" exp.
    server.clock.advance(1);
    assert_eq!(server.introspect(DEMO, &at).await, json!({"active": false}));
}

#[tokio::test]
async fn rfc7662_2_2_tampered_access_token_is_inactive() {
    let server = Setup::demo().start().await;
    let at = field(&ok_json(&server.token(DEMO, &[("grant_type", "client_credentials")]).await), "access_token");
    let mut parts: Vec<String> = at.split('.').map(str::to_owned).collect();
    // Flip the payload to claim another subject, keep the signature.
    let payload = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &parts[1]).unwrap();
    let forged = String::from_utf8(payload).unwrap().replace("\"sub\":\"demo-client\"", "\"sub\":\"admin\"");
    parts[1] = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, forged);
    assert_eq!(server.introspect(DEMO, &parts.join(".")).await, json!({"active": false}));
}

#[tokio::test]
async fn rfc7662_2_1_introspection_requires_client_authentication() {
    let server = Setup::demo().start().await;
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let r = server.post_form("/introspect", Auth::Anonymous, &[("token", &rt)]).await;
    let body = assert_error(&r, 401, "invalid_client");
    assert!(body.get("active").is_none());
    let r = server.post_form("/introspect", Auth::Basic("demo-client", "bad"), &[("token", &rt)]).await;
    assert_error(&r, 401, "invalid_client");
}

// Regression (a bug this suite found): the public client (no credentials at all) can introspect any token, e.g. another
// client's live refresh token, and learns its subject, scope and client_id. RFC 7662 §2.1:
// "To prevent token scanning attacks, the endpoint MUST also require some form of
// authorization to access this endpoint"; the server's own metadata lists only
// client_secret_basic and client_secret_post in introspection_endpoint_auth_methods_supported
// (no "none"), but revocation::introspect accepts ClientAuthentication::None.
// Request: POST /introspect client_id=public-client&token=<demo-client's refresh token>
#[tokio::test]
async fn rfc7662_2_1_public_client_cannot_introspect() {
    let server = Setup::demo().start().await;
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let r = server.post_form("/introspect", PUBLIC, &[("token", &rt)]).await;
    assert_error(&r, 401, "invalid_client");
}

/// RFC 7519 §2: the authorization server's own checks (`/introspect`, `/revoke`) read a
/// NumericDate with a fraction like any other; RFC 7662 §2.2 answers integers (rounded
/// down, as the expiry check rounds them).
#[tokio::test]
async fn rfc7519_2_fractional_exp_is_read_by_introspection_and_revocation() {
    let server = Setup::demo().start().await;
    let at = field(&server.password_grant(DEMO, None).await, "access_token");
    let (_, mut claims) = verify_with_jwks(&at, &server.jwks().await).unwrap();
    claims["exp"] = json!(START as f64 + 100.5);
    claims["iat"] = json!(START as f64 - 0.25);
    let fractional = server.server.signing_key().sign_jwt(&claims).unwrap();
    let answer = server.introspect(DEMO, &fractional).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["exp"], START + 100);
    assert_eq!(answer["iat"], START - 1);
    // Recognised as one of ours: a JWT access token cannot be revoked (RFC 7009 §2.2.1).
    assert_error(&server.revoke(DEMO, &fractional, None).await, 400, "unsupported_token_type");
    // Never active during the second its exp falls in.
    server.clock.advance(100);
    assert_eq!(server.introspect(DEMO, &fractional).await, json!({"active": false}));
}
