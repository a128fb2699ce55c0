//! RFC 8414 metadata and the RFC 7517 JWK Set.

use crate::support::*;
use figure2_protocol::client_auth::ClientAuthentication;
use http::Method;

#[tokio::test]
async fn rfc8414_2_metadata_names_issuer_endpoints_grants_and_s256() {
    let server = Setup::demo().start().await;
    let r = server.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(r.status, 200);
    let m = json_body(&r);
    let issuer = &server.issuer;
    // RFC 8414 §3.3: "The issuer value returned MUST be identical to the authorization
    // server's issuer identifier value into which the well-known URI string was inserted".
    assert_eq!(m["issuer"], issuer.as_str());
    assert_eq!(m["authorization_endpoint"], format!("{issuer}/authorize"));
    assert_eq!(m["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(m["jwks_uri"], format!("{issuer}/jwks.json"));
    assert_eq!(m["revocation_endpoint"], format!("{issuer}/revoke"));
    assert_eq!(m["introspection_endpoint"], format!("{issuer}/introspect"));
    assert_eq!(m["response_types_supported"], serde_json::json!(["code"]));
    let grants: Vec<&str> = m["grant_types_supported"].as_array().unwrap().iter().filter_map(|g| g.as_str()).collect();
    for g in ["authorization_code", "refresh_token", "password", "client_credentials"] {
        assert!(grants.contains(&g), "{g} missing from {grants:?}");
    }
    assert_eq!(m["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    let auth_methods = m["token_endpoint_auth_methods_supported"].as_array().unwrap();
    assert!(auth_methods.contains(&"client_secret_basic".into()));
    assert!(auth_methods.contains(&"client_secret_post".into()));
    // RFC 9207 §3.
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    let scopes = m["scopes_supported"].as_array().unwrap();
    for s in ["read", "write", "admin"] {
        assert!(scopes.contains(&s.into()), "{s} missing from scopes_supported");
    }
}

#[tokio::test]
async fn rfc8414_3_metadata_and_jwks_accept_get_only() {
    let server = Setup::demo().start().await;
    for path in ["/.well-known/oauth-authorization-server", "/jwks.json"] {
        let r = server.send_raw(Method::POST, path, &[FORM], "x=1").await;
        assert_eq!(r.status, 405, "POST {path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
}

#[tokio::test]
async fn rfc9068_2_1_jwks_publishes_the_kid_access_tokens_carry() {
    let server = Setup::demo().start().await;
    let metadata = server.metadata().await;
    let r = server.http.send(Method::GET, &field(&metadata, "jwks_uri"), &[], None).await.unwrap();
    assert_eq!(r.status, 200);
    let jwks = json_body(&r);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    // RFC 7517 §4: a public EC key only, marked for signatures.
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "ES256");
    assert!(key.get("d").is_none(), "the private key must never be published");

    let tokens = server.token(DEMO, &[("grant_type", "client_credentials")]).await;
    let at = field(&ok_json(&tokens), "access_token");
    assert_eq!(kid_of(&at), field(key, "kid"));
    verify_with_jwks(&at, &jwks).expect("access token verifies with the published key");
}

#[tokio::test]
async fn rfc8414_3_1_issuer_with_path_serves_metadata_under_suffixed_well_known_uri() {
    let server = Setup::demo().tenant("/tenant").start().await;
    let addr = server.addr;
    assert_eq!(server.issuer, format!("http://{addr}/tenant"));

    // §3.1: the well-known string goes between the host and the path component.
    let r = server.get("/.well-known/oauth-authorization-server/tenant").await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let m = json_body(&r);
    assert_eq!(m["issuer"], server.issuer.as_str());
    assert_eq!(m["token_endpoint"], format!("http://{addr}/tenant/token"));
    assert_eq!(m["jwks_uri"], format!("http://{addr}/tenant/jwks.json"));

    // The token endpoint lives below the issuer's path, and tokens name the full issuer.
    let basic = ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let auth = ("authorization", basic.as_str());
    let r = server.send_raw(Method::POST, "/tenant/token", &[FORM, auth], "grant_type=client_credentials").await;
    let body = ok_json(&r);
    let jwks = json_body(&server.get("/tenant/jwks.json").await);
    let (_, claims) = verify_with_jwks(&field(&body, "access_token"), &jwks).unwrap();
    assert_eq!(claims["iss"], server.issuer.as_str());

    // Nothing answers outside the issuer's path.
    assert_eq!(server.get("/.well-known/oauth-authorization-server").await.status, 404);
    let r = server.send_raw(Method::POST, "/token", &[FORM, auth], "grant_type=client_credentials").await;
    assert_eq!(r.status, 404);
}

/// RFC 9110 §9.3.2: HEAD is GET without the content, on every GET route; a 405 lists
/// HEAD wherever it lists GET (§15.5.6).
#[tokio::test]
async fn rfc9110_9_3_2_head_on_every_get_route() {
    let server = Setup::demo().start().await;
    let authorize = "/authorize?response_type=code&client_id=demo-client&state=s&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    for path in ["/.well-known/oauth-authorization-server", "/jwks.json", "/health", authorize] {
        let get = server.send_raw(Method::GET, path, &[], "").await;
        let head = server.send_raw(Method::HEAD, path, &[], "").await;
        assert_eq!((head.status, head.body.len()), (get.status, 0), "HEAD {path}");
        assert_eq!(head.header("content-type"), get.header("content-type"), "HEAD {path}");
        assert_eq!(head.header("content-length"), get.header("content-length"), "HEAD {path}");
    }
    let r = server.send_raw(Method::PUT, "/authorize", &[], "").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST, HEAD")));
    // POST-only endpoints refuse HEAD like GET.
    for path in ["/token", "/revoke", "/introspect"] {
        let r = server.send_raw(Method::HEAD, path, &[], "").await;
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")), "HEAD {path}");
    }
}
