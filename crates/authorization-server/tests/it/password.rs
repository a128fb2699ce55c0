//! Steps A→B with the resource owner password credentials grant (RFC 6749 §4.3) and the
//! RFC 9068 access token it yields.

use crate::support::*;

#[tokio::test]
async fn rfc6749_4_3_3_password_grant_returns_bearer_access_and_refresh_token() {
    let server = Setup::demo().start().await;
    let r =
        server.token(DEMO, &[("grant_type", "password"), ("username", "alice"), ("password", "alice-password")]).await;
    // §5.1: 200, application/json, Cache-Control: no-store, Pragma: no-cache.
    let body = ok_json(&r);
    assert!(!field(&body, "access_token").is_empty());
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let rt = field(&body, "refresh_token");
    // §10.10: unguessable; Appendix A.17: VSCHAR only.
    assert!(rt.len() >= 22, "refresh token too short: {rt}");
    assert!(rt.chars().all(|c| ('\x20'..='\x7e').contains(&c)));
    // No scope requested: the client's registered scope (§3.3 default).
    assert_eq!(body["scope"], "read write");
}

#[tokio::test]
async fn rfc9068_2_access_token_is_an_es256_at_jwt_with_the_required_claims() {
    let server = Setup::demo().start().await;
    let body = server.password_grant(DEMO, Some("read")).await;
    assert_eq!(body["scope"], "read");
    let at = field(&body, "access_token");
    let jwks = server.jwks().await;
    let (header, claims) = verify_with_jwks(&at, &jwks).expect("signature verifies with the JWKS");
    // §2.1: typ at+jwt, an asymmetric alg, and the kid of a published key.
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(kids(&jwks)[0].as_str()));
    // §2.2: iss, exp, aud, sub, client_id, iat, jti (and scope, §2.2.3).
    assert_eq!(claims["iss"], server.issuer.as_str());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["iat"], START);
    assert_eq!(claims["exp"], START + 3600);
    assert_eq!(claims["client_id"], "demo-client");
    assert_eq!(claims["scope"], "read");
    assert!(!field(&claims, "jti").is_empty());

    // Another token of the same grant has another jti (RFC 7519 §4.1.7).
    let again = server.refresh_ok(DEMO, &field(&body, "refresh_token"), None).await;
    let (_, claims2) = verify_with_jwks(&field(&again, "access_token"), &jwks).unwrap();
    assert_ne!(claims2["jti"], claims["jti"]);
}

#[tokio::test]
async fn rfc6749_5_2_wrong_resource_owner_password_is_invalid_grant() {
    let server = Setup::demo().start().await;
    let r =
        server.token(DEMO, &[("grant_type", "password"), ("username", "alice"), ("password", "bob-password")]).await;
    let body = assert_error(&r, 400, "invalid_grant");
    assert!(body.get("access_token").is_none());
    // An unknown user is refused the same way (no username oracle).
    let r = server.token(DEMO, &[("grant_type", "password"), ("username", "mallory"), ("password", "x")]).await;
    assert_error(&r, 400, "invalid_grant");
}

#[tokio::test]
async fn rfc6749_4_3_2_password_grant_without_password_is_invalid_request() {
    let server = Setup::demo().start().await;
    let r = server.token(DEMO, &[("grant_type", "password"), ("username", "alice")]).await;
    assert_error(&r, 400, "invalid_request");
    // §3.2: an empty value counts as omitted.
    let r = server.token(DEMO, &[("grant_type", "password"), ("username", "alice"), ("password", "")]).await;
    assert_error(&r, 400, "invalid_request");
}
