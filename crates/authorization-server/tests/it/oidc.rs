//! OpenID Connect basics (issue 13): discovery, the `id_token` of the code grant and of a
//! refresh (Core §3.1.3.3, §12.2), UserInfo with RFC 6750 errors (Core §5.3), the
//! `offline_access` policy (Core §11) and RP-Initiated Logout (`end_session`).

use crate::support::*;
use figure2_http::ReceivedResponse;
use figure2_protocol::pkce::CodeVerifier;
use http::Method;
use serde_json::{Value, json};

const PUBLIC_REDIRECT: &str = "http://127.0.0.1:8092/callback";

/// The demo configuration with `openid` (and friends) allowed, and claims for alice.
pub fn oidc_setup() -> Setup {
    Setup::demo().configure(|f| {
        for c in &mut f.clients {
            c.scope = format!("openid profile email offline_access {}", c.scope);
        }
        let alice = f.users.iter_mut().find(|u| u.username == "alice").expect("alice");
        alice.claims = serde_json::from_value(json!({
            "name": "Alice Liddell", "email": "alice@example.com", "email_verified": true, "groups": ["testers"]
        }))
        .expect("claims");
    })
}

fn query(verifier: &CodeVerifier, scope: &str, nonce: Option<&str>) -> String {
    let challenge = verifier.s256_challenge();
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", "public-client"),
        ("redirect_uri", PUBLIC_REDIRECT),
        ("scope", scope),
        ("state", "s1"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    if let Some(n) = nonce {
        pairs.push(("nonce", n));
    }
    form(&pairs)
}

/// Alice logs in and approves; the code is exchanged (public client, PKCE).
pub async fn code_flow(server: &TestServer, scope: &str, nonce: Option<&str>) -> Value {
    let verifier = CodeVerifier::from_random(&[7; 32]);
    let q = query(&verifier, scope, nonce);
    let body = form(&[("request", &q), ("username", "alice"), ("password", "alice-password"), ("decision", "approve")]);
    let path = format!("{}/authorize", server.base_path());
    let r = server.send_raw(Method::POST, &path, &[FORM], body).await;
    assert_eq!(r.status, 303, "{}", r.body_text());
    let params = query_params(r.header("location").expect("Location"));
    let code = params.get("code").expect("code").to_owned();
    let r = server
        .token(
            PUBLIC,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", PUBLIC_REDIRECT),
                ("code_verifier", verifier.as_str()),
            ],
        )
        .await;
    ok_json(&r)
}

/// Verifies an ID Token's signature with the published keys; returns header and claims.
pub async fn id_token_claims(server: &TestServer, id_token: &str) -> (jsonwebtoken::Header, Value) {
    verify_with_jwks(id_token, &server.jwks().await).expect("the id_token verifies with the JWKS")
}

#[tokio::test]
async fn discovery_1_0_openid_configuration_lists_the_provider() {
    let server = oidc_setup().start().await;
    let r = server.get("/.well-known/openid-configuration").await;
    assert_eq!(r.status, 200);
    let doc = json_body(&r);
    assert_eq!(doc["issuer"], server.issuer);
    assert_eq!(doc["userinfo_endpoint"], server.url("/userinfo"));
    assert_eq!(doc["end_session_endpoint"], server.url("/end_session"));
    assert_eq!(doc["jwks_uri"], server.url("/jwks.json"));
    assert_eq!(doc["id_token_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(doc["subject_types_supported"], json!(["public"]));
    assert_eq!(doc["response_types_supported"], json!(["code"]));
    let scopes: Vec<&str> = doc["scopes_supported"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(scopes.contains(&"openid") && scopes.contains(&"offline_access"), "{scopes:?}");
    assert!(doc["claims_supported"].as_array().unwrap().contains(&json!("email")));
}

#[tokio::test]
async fn discovery_1_0_for_an_issuer_with_a_path_appends_the_well_known_path() {
    let server = oidc_setup().tenant("/tenant").start().await;
    let r = server.get("/tenant/.well-known/openid-configuration").await;
    assert_eq!(r.status, 200);
    assert_eq!(json_body(&r)["issuer"], server.issuer);
    assert_eq!(server.get("/.well-known/openid-configuration").await.status, 404);
}

#[tokio::test]
async fn core_3_1_3_3_code_grant_with_openid_returns_a_signed_id_token() {
    let server = oidc_setup().start().await;
    let tokens = code_flow(&server, "openid email read", Some("n-0S6_WzA2Mj")).await;
    let (header, claims) = id_token_claims(&server, &field(&tokens, "id_token")).await;
    assert_eq!(header.typ.as_deref(), Some("JWT"), "an ID Token is not an at+jwt access token");
    assert_eq!(header.kid.as_deref(), Some(kid_of(&field(&tokens, "access_token")).as_str()), "same keys");
    assert_eq!(claims["iss"], server.issuer);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "public-client");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["iat"], START);
    assert_eq!(claims["auth_time"], START);
    assert_eq!(claims["exp"], START + 3600);
    // Core §5.4: email is released by the email scope; name needs profile.
    assert_eq!(claims["email"], "alice@example.com");
    assert_eq!(claims["groups"], json!(["testers"]));
    assert!(claims.get("name").is_none(), "{claims}");
    // The access token is still an RFC 9068 access token for the resource server.
    let (at_header, _) = verify_with_jwks(&field(&tokens, "access_token"), &server.jwks().await).unwrap();
    assert_eq!(at_header.typ.as_deref(), Some("at+jwt"));
}

#[tokio::test]
async fn core_12_2_refreshed_id_token_keeps_iss_sub_aud_and_auth_time() {
    let server = oidc_setup().start().await;
    let first = code_flow(&server, "openid profile read", Some("abc")).await;
    let (_, original) = id_token_claims(&server, &field(&first, "id_token")).await;
    server.clock.advance(600);
    let refreshed = server.refresh_ok(PUBLIC, &field(&first, "refresh_token"), None).await;
    let (_, renewed) = id_token_claims(&server, &field(&refreshed, "id_token")).await;
    for claim in ["iss", "sub", "aud", "auth_time"] {
        assert_eq!(renewed[claim], original[claim], "{claim}");
    }
    assert_eq!(renewed["iat"], START + 600, "iat is the time of the new ID Token");
    assert_eq!(renewed["auth_time"], START, "no new auth_time");
    assert!(renewed.get("nonce").is_none(), "the nonce belongs to the authentication request");
    assert_eq!(renewed["name"], "Alice Liddell");
    // Narrowing the scope without openid: no id_token (plain OAuth 2.0 again).
    let narrowed = server.refresh_ok(PUBLIC, &field(&refreshed, "refresh_token"), Some("read")).await;
    assert!(narrowed.get("id_token").is_none(), "{narrowed}");
}

#[tokio::test]
async fn plain_oauth_without_openid_gets_no_id_token() {
    let server = oidc_setup().start().await;
    let tokens = code_flow(&server, "read", None).await;
    assert!(tokens.get("id_token").is_none(), "{tokens}");
    let refreshed = server.refresh_ok(PUBLIC, &field(&tokens, "refresh_token"), None).await;
    assert!(refreshed.get("id_token").is_none());
    // The password grant is not an OpenID Connect flow, even with openid.
    let password = server.password_grant(DEMO, Some("openid read")).await;
    assert!(password.get("id_token").is_none());
}

#[tokio::test]
async fn core_11_offline_access_policy_decides_the_refresh_token() {
    let server = oidc_setup().configure(|f| f.oidc.require_offline_access = true).start().await;
    let online = code_flow(&server, "openid read", None).await;
    assert!(online.get("refresh_token").is_none(), "no offline_access, no refresh token: {online}");
    assert!(online.get("id_token").is_some());
    let offline = code_flow(&server, "openid offline_access read", None).await;
    assert!(offline.get("refresh_token").is_some(), "{offline}");
    // Plain OAuth 2.0 is not affected by the OpenID Connect policy.
    let plain = code_flow(&server, "read", None).await;
    assert!(plain.get("refresh_token").is_some());

    let lenient = oidc_setup().start().await;
    assert!(code_flow(&lenient, "openid read", None).await.get("refresh_token").is_some());
}

async fn userinfo(server: &TestServer, headers: &[(&str, &str)]) -> ReceivedResponse {
    server.send_raw(Method::GET, "/userinfo", headers, "").await
}

#[tokio::test]
async fn core_5_3_userinfo_answers_with_the_users_claims_and_rfc6750_errors() {
    let server = oidc_setup().start().await;
    let tokens = code_flow(&server, "openid email", None).await;
    let bearer = format!("Bearer {}", field(&tokens, "access_token"));
    let r = userinfo(&server, &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        json_body(&r),
        json!({"sub": "alice", "email": "alice@example.com", "email_verified": true, "groups": ["testers"]})
    );
    // RFC 6750 §2.2: POST with a form-body token works too.
    let body = form(&[("access_token", &field(&tokens, "access_token"))]);
    let r = server.send_raw(Method::POST, "/userinfo", &[FORM], body).await;
    assert_eq!(r.status, 200);

    // RFC 6750 §3.1: no token, a bare challenge.
    let r = userinfo(&server, &[]).await;
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("Bearer realm=\"figure2\"")));
    // A bad token: invalid_token.
    let r = userinfo(&server, &[("authorization", "Bearer not.a.jwt")]).await;
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().contains("error=\"invalid_token\""));
    // An expired one too.
    server.clock.advance(3601);
    let r = userinfo(&server, &[("authorization", &bearer)]).await;
    assert_eq!(r.status, 401);
    // A token without openid: insufficient_scope.
    let plain = server.password_grant(DEMO, Some("read")).await;
    let r = userinfo(&server, &[("authorization", &format!("Bearer {}", field(&plain, "access_token")))]).await;
    assert_eq!(r.status, 403);
    assert!(r.header("www-authenticate").unwrap().contains("error=\"insufficient_scope\""));
    // Two methods at once: invalid_request.
    let both = form(&[("access_token", &field(&plain, "access_token"))]);
    let auth = format!("Bearer {}", field(&plain, "access_token"));
    let r = server.send_raw(Method::POST, "/userinfo", &[FORM, ("authorization", &auth)], both).await;
    assert_eq!(r.status, 400);
    assert!(r.header("www-authenticate").unwrap().contains("error=\"invalid_request\""));
}

#[tokio::test]
async fn rp_initiated_logout_revokes_every_family_of_the_user() {
    let server = oidc_setup().start().await;
    let tokens = code_flow(&server, "openid read", None).await;
    let other_grant = server.password_grant(DEMO, Some("read")).await;
    let bob =
        server.token(DEMO, &[("grant_type", "password"), ("username", "bob"), ("password", "bob-password")]).await;
    let bob = ok_json(&bob);
    let id_token = field(&tokens, "id_token");

    let end = |q: String| {
        let server = &server;
        async move { server.get(&format!("/end_session?{q}")).await }
    };
    // Without a hint this server cannot know the user (it keeps no login session).
    assert_eq!(end(String::new()).await.status, 400);
    // A post_logout_redirect_uri must be registered for the ID Token's client.
    let r = end(form(&[("id_token_hint", &id_token), ("post_logout_redirect_uri", "https://evil.example/")])).await;
    assert_eq!(r.status, 400);
    // An ID Token of another issuer (here: a forged signature) is refused.
    let forged = format!("{}x", &id_token[..id_token.len() - 1]);
    assert_eq!(end(form(&[("id_token_hint", &forged)])).await.status, 400);

    // An expired ID Token is still a good hint (RP-Initiated Logout §2).
    server.clock.advance(7200);
    let r =
        end(form(&[("id_token_hint", &id_token), ("post_logout_redirect_uri", PUBLIC_REDIRECT), ("state", "bye 1")]))
            .await;
    assert_eq!(r.status, 303, "{}", r.body_text());
    assert_eq!(r.header("location"), Some(format!("{PUBLIC_REDIRECT}?state=bye+1").as_str()));
    // Both of alice's grants are gone; bob's is not.
    server.refresh_refused(PUBLIC, &field(&tokens, "refresh_token")).await;
    server.refresh_refused(DEMO, &field(&other_grant, "refresh_token")).await;
    server.refresh_ok(DEMO, &field(&bob, "refresh_token"), None).await;
}
