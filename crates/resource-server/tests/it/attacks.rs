//! Attacks with crafted JWTs, which the scenario runner cannot make (it only drives the
//! real authorization server). `token_checks.rs` already covers `alg: none`, HS256 signed
//! with the public key, an ES384 header on the P-256 key, and a `typ: JWT` token; here:
//! - an OpenID Connect ID token, signed by the issuer's real key, presented as an access
//!   token (RFC 9068 §4, RFC 8725 §3.11: explicit typing keeps token kinds apart);
//! - algorithm confusion between asymmetric families with the default allow-list
//!   (RFC 8725 §3.1: the key decides the algorithm, not the token);
//! - keys smuggled in the token itself: `jwk`, `jku`, `x5u` (RFC 8725 §3.10, RFC 7515
//!   §4.1.2-§4.1.5): keys come only from the discovered `jwks_uri`.

use crate::support::{Harness, Signer, b64, challenge, json_body};
use figure2_protocol::access_token;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, Header};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

/// Asserts a 401 `invalid_token` whose description contains `needle`.
async fn assert_invalid_token(h: &Harness, token: &str, needle: &str) {
    let r = h.get("/resource/read", Some(token)).await;
    assert_eq!(r.status, 401, "{}", r.body_text());
    let c = challenge(&r);
    assert!(c.contains(r#"error="invalid_token""#) && c.contains(needle), "{c} should mention {needle:?}");
    assert_eq!(json_body(&r)["error"], "invalid_token");
}

#[tokio::test]
async fn oidc_id_token_signed_by_the_issuer_is_not_an_access_token() {
    let h = Harness::start().await;
    let now = h.claims().iat.whole_seconds();
    // An ID token as an OpenID provider sharing the signing key would issue it: typ JWT,
    // aud = the client, a nonce, no scope. A client (or an attacker holding a user's ID
    // token) presents it at the resource server.
    let id_token_claims = json!({
        "iss": h.issuer(), "sub": "alice", "aud": "demo-client", "azp": "demo-client",
        "exp": now + 300, "iat": now, "auth_time": now, "nonce": "n-0S6_WzA2Mj",
    });
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(h.signer.kid.clone());
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_invalid_token(&h, &h.signer.sign_with_header(&header, &id_token_claims), "typ must be at+jwt").await;

    // Even mislabelled at+jwt, an ID token is for the client, not for this resource
    // server: the audience check refuses it (RFC 9068 §4 "aud").
    let mislabelled = json!({
        "iss": h.issuer(), "sub": "alice", "aud": "demo-client", "client_id": "demo-client",
        "exp": now + 300, "iat": now, "jti": "id-1", "scope": "read write", "nonce": "n-0S6_WzA2Mj",
    });
    assert_invalid_token(&h, &h.signer.sign(&mislabelled), "not meant for this resource server").await;
    // Without client_id and jti (RFC 9068 §2.2 requires them), it is not even well formed.
    let mut bare = id_token_claims.clone();
    bare["aud"] = json!(crate::support::AUDIENCE);
    assert_invalid_token(&h, &h.signer.sign(&bare), "malformed").await;
}

#[tokio::test]
async fn algorithm_confusion_between_key_families_is_refused_with_the_default_allow_list() {
    // RS256 and EdDSA are on the default allow-list, but the key named by kid is P-256:
    // the token does not get to choose how the key is used.
    let h = Harness::start().await;
    let payload = b64(serde_json::to_vec(&h.claims()).expect("claims"));
    for alg in ["RS256", "EdDSA"] {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k1"}}"#));
        // A signature of the right size for the claimed algorithm would not help either.
        let token = format!("{header}.{payload}.{}", b64([7u8; 256]));
        assert_invalid_token(&h, &token, "does not match its key").await;
    }
    // Algorithms outside the allow-list are refused before any key is looked at.
    for alg in ["PS256", "ES384", "HS512"] {
        let header = b64(format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"k1"}}"#));
        assert_invalid_token(&h, &format!("{header}.{payload}.c2ln"), "algorithm is not accepted").await;
    }
}

#[tokio::test]
async fn keys_carried_by_the_token_itself_are_never_trusted() {
    let h = Harness::start().await;
    let attacker = Signer::generate("k1");
    let attacker_jwk: Jwk = serde_json::from_value(attacker.jwk()).expect("JWK");
    // The attacker even hosts its key set, on the issuer's own host.
    let attacker_jwks = format!("{}/attacker-jwks", h.issuer());
    Mock::given(method("GET"))
        .and(path("/attacker-jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "keys": [attacker.jwk()] })))
        .mount(&h.mock)
        .await;

    // Embedded jwk (CVE-2018-0114 style) under the real kid: verified with the real key.
    let mut header = access_token::header(Algorithm::ES256, "k1");
    header.jwk = Some(attacker_jwk.clone());
    assert_invalid_token(&h, &attacker.sign_with_header(&header, &h.claims()), "signature is invalid").await;

    // A kid of its own, with jku / x5u pointing at its key set: the kid is unknown in the
    // discovered JWKS, and the URLs are never fetched.
    let mut header = access_token::header(Algorithm::ES256, "attacker-key");
    header.jwk = Some(attacker_jwk);
    header.jku = Some(attacker_jwks.clone());
    header.x5u = Some(attacker_jwks);
    assert_invalid_token(&h, &attacker.sign_with_header(&header, &h.claims()), "unknown key").await;

    let requests = h.mock.received_requests().await.unwrap_or_default();
    assert!(requests.iter().all(|r| r.url.path() != "/attacker-jwks"), "the token's jku/x5u was followed");
    // The genuine token still works: nothing was cached from the attacker.
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
}
