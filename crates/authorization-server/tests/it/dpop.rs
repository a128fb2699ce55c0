//! RFC 9449 (DPoP) at the token endpoint: every MUST of §4.3 for the proof, §5 binding
//! of access and refresh tokens, §6 `cnf.jkt`, §8 server nonces, §5.1 metadata.

use crate::support::*;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use figure2_http::ReceivedResponse;
use figure2_protocol::dpop::{ProofClaims, ProofKey, TYP};
use figure2_protocol::pkce::CodeVerifier;
use http::Method;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) fn new_key() -> ProofKey {
    let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap();
    ProofKey::from_es256_pkcs8(pkcs8.as_ref()).unwrap()
}

pub(crate) fn unique_jti() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// The claims of a good proof for `POST {issuer}/token` at the server's `now`.
fn claims(server: &TestServer) -> ProofClaims {
    ProofClaims {
        jti: unique_jti(),
        htm: "POST".into(),
        htu: server.url("/token"),
        iat: server.clock_now().into(),
        ath: None,
        nonce: None,
    }
}

trait Now {
    fn clock_now(&self) -> u64;
}

impl Now for TestServer {
    fn clock_now(&self) -> u64 {
        figure2_protocol::Clock::now(&self.clock)
    }
}

/// POST /token with `auth`, `params` and the given `DPoP` header values.
pub(crate) async fn token_with_proofs(
    server: &TestServer,
    auth: Auth,
    params: &[(&str, &str)],
    proofs: &[&str],
) -> ReceivedResponse {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    let basic;
    let mut headers = vec![FORM];
    match auth {
        Auth::Basic(id, secret) => {
            basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value(id, secret);
            headers.push(("authorization", basic.as_str()));
        }
        Auth::Post(id, secret) => {
            pairs.push(("client_id", id));
            pairs.push(("client_secret", secret));
        }
        Auth::Public(id) => pairs.push(("client_id", id)),
        Auth::Anonymous => {}
    }
    for p in proofs {
        headers.push(("dpop", p));
    }
    let path = format!("{}/token", server.base_path());
    server.send_raw(Method::POST, &path, &headers, form(&pairs)).await
}

pub(crate) const PASSWORD: [(&str, &str); 3] =
    [("grant_type", "password"), ("username", "alice"), ("password", "alice-password")];

async fn password_with(server: &TestServer, proof: &str) -> ReceivedResponse {
    token_with_proofs(server, DEMO, &PASSWORD, &[proof]).await
}

async fn refresh_with(server: &TestServer, auth: Auth, rt: &str, proof: Option<&str>) -> ReceivedResponse {
    let params = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    token_with_proofs(server, auth, &params, proof.as_slice()).await
}

/// The claims of an access token (signature checked with the JWKS).
async fn access_claims(server: &TestServer, body: &Value) -> Value {
    verify_with_jwks(&field(body, "access_token"), &server.jwks().await).unwrap().1
}

/// Steps A→B for public-client by the code flow, the exchange carrying `proof` (if any).
async fn public_code_grant(server: &TestServer, key: Option<&ProofKey>) -> Value {
    let verifier = CodeVerifier::from_random(&[7; 32]);
    let redirect = "http://127.0.0.1:8092/callback";
    let query = form(&[
        ("response_type", "code"),
        ("client_id", "public-client"),
        ("redirect_uri", redirect),
        ("scope", "read"),
        ("state", "s"),
        ("code_challenge", &verifier.s256_challenge()),
        ("code_challenge_method", "S256"),
    ]);
    let body =
        form(&[("request", &query), ("username", "alice"), ("password", "alice-password"), ("decision", "approve")]);
    let r = server.send_raw(Method::POST, "/authorize", &[FORM], body).await;
    assert_eq!(r.status, 303, "{}", r.body_text());
    let code = query_params(r.header("location").unwrap()).get("code").unwrap().to_owned();
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", verifier.as_str()),
    ];
    let proof = key.map(|k| k.sign(&claims(server)).unwrap());
    ok_json(&token_with_proofs(server, PUBLIC, &params, proof.as_deref().as_slice()).await)
}

#[tokio::test]
async fn rfc9449_5_1_metadata_lists_asymmetric_proof_algorithms() {
    let server = Setup::demo().start().await;
    let m = server.metadata().await;
    let algs: Vec<&str> =
        m["dpop_signing_alg_values_supported"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(algs.contains(&"ES256"), "{algs:?}");
    assert!(algs.iter().all(|a| !a.starts_with("HS") && *a != "none"), "{algs:?}");
}

#[tokio::test]
async fn rfc9449_5_a_proof_binds_the_access_token_cnf_jkt_and_token_type_dpop() {
    let server = Setup::demo().start().await;
    let key = new_key();
    let b = ok_json(&password_with(&server, &key.sign(&claims(&server)).unwrap()).await);
    assert_eq!(b["token_type"], "DPoP");
    let at = access_claims(&server, &b).await;
    assert_eq!(at["cnf"]["jkt"], key.thumbprint());
    // RFC 9449 §6.2: introspection tells the binding.
    let i = server.introspect(DEMO, &field(&b, "access_token")).await;
    assert_eq!((i["token_type"].as_str(), i["cnf"]["jkt"].as_str()), (Some("DPoP"), Some(key.thumbprint())));
    // Without a proof: a Bearer token, no cnf.
    let plain = server.password_grant(DEMO, None).await;
    assert_eq!(plain["token_type"], "Bearer");
    assert!(access_claims(&server, &plain).await.get("cnf").is_none());
    // §5: a confidential client's refresh token is bound to its credentials, not the key:
    // it refreshes without a proof (a Bearer token) or with another key.
    let rt = field(&b, "refresh_token");
    let h = ok_json(&refresh_with(&server, DEMO, &rt, None).await);
    assert_eq!(h["token_type"], "Bearer");
    let other = new_key();
    let h2 = ok_json(
        &refresh_with(&server, DEMO, &field(&h, "refresh_token"), Some(&other.sign(&claims(&server)).unwrap())).await,
    );
    assert_eq!(access_claims(&server, &h2).await["cnf"]["jkt"], other.thumbprint());
}

#[tokio::test]
async fn rfc9449_5_public_client_refresh_token_is_bound_to_the_key() {
    let server = Setup::demo().start().await;
    let key = new_key();
    let b = public_code_grant(&server, Some(&key)).await;
    assert_eq!(b["token_type"], "DPoP");
    let rt = field(&b, "refresh_token");
    // A thief with the refresh token and no key: no proof, or a proof with their own key.
    assert_error(&refresh_with(&server, PUBLIC, &rt, None).await, 400, "invalid_grant");
    let thief = new_key();
    assert_error(
        &refresh_with(&server, PUBLIC, &rt, Some(&thief.sign(&claims(&server)).unwrap())).await,
        400,
        "invalid_grant",
    );
    // The holder is unaffected (the thief's attempts revoked nothing) and keeps rotating.
    server.clock.advance(3600);
    let h = ok_json(&refresh_with(&server, PUBLIC, &rt, Some(&key.sign(&claims(&server)).unwrap())).await);
    assert_eq!(h["token_type"], "DPoP");
    assert_eq!(access_claims(&server, &h).await["cnf"]["jkt"], key.thumbprint());
    let rt1 = field(&h, "refresh_token");
    assert_ne!(rt1, rt, "a bound public client still rotates by default (RFC 9700 §4.14.2 allows either)");
    assert_eq!(server.introspect(DEMO, &rt1).await["cnf"]["jkt"], key.thumbprint());
    // The binding is the family's: the rotated token needs the key too.
    assert_error(&refresh_with(&server, PUBLIC, &rt1, None).await, 400, "invalid_grant");
    ok_json(&refresh_with(&server, PUBLIC, &rt1, Some(&key.sign(&claims(&server)).unwrap())).await);
}

#[tokio::test]
async fn rfc9449_5_unbound_public_family_stays_unbound() {
    let server = Setup::demo().start().await;
    let b = public_code_grant(&server, None).await;
    assert_eq!(b["token_type"], "Bearer");
    // A proof on refresh binds the new access token only.
    let key = new_key();
    let h = ok_json(
        &refresh_with(&server, PUBLIC, &field(&b, "refresh_token"), Some(&key.sign(&claims(&server)).unwrap())).await,
    );
    assert_eq!(h["token_type"], "DPoP");
    ok_json(&refresh_with(&server, PUBLIC, &field(&h, "refresh_token"), None).await);
}

#[tokio::test]
async fn rfc9449_5_confidential_binding_when_configured() {
    let server = Setup::demo().configure(|c| c.dpop_bind_confidential_refresh_tokens = true).start().await;
    let key = new_key();
    let b = ok_json(&password_with(&server, &key.sign(&claims(&server)).unwrap()).await);
    let rt = field(&b, "refresh_token");
    assert_error(&refresh_with(&server, DEMO, &rt, None).await, 400, "invalid_grant");
    ok_json(&refresh_with(&server, DEMO, &rt, Some(&key.sign(&claims(&server)).unwrap())).await);
}

/// Sends a proof made by `make` from a good key and good claims; expects invalid_dpop_proof.
async fn refused(server: &TestServer, proof: String) -> Value {
    let r = password_with(server, &proof).await;
    assert_error(&r, 400, "invalid_dpop_proof")
}

#[tokio::test]
async fn rfc9449_4_3_wrong_htm_or_htu_is_invalid_dpop_proof() {
    let server = Setup::demo().start().await;
    let key = new_key();
    refused(&server, key.sign(&ProofClaims { htm: "GET".into(), ..claims(&server) }).unwrap()).await;
    refused(&server, key.sign(&ProofClaims { htm: "post".into(), ..claims(&server) }).unwrap()).await;
    let other = format!("http://{}/other", server.addr);
    refused(&server, key.sign(&ProofClaims { htu: other, ..claims(&server) }).unwrap()).await;
    refused(
        &server,
        key.sign(&ProofClaims { htu: "https://elsewhere.example/token".into(), ..claims(&server) }).unwrap(),
    )
    .await;
    // §4.3 point 9: query and fragment ignored, scheme and host case-insensitive.
    let htu = format!("HTTP://{}/token?x=1#y", server.addr);
    ok_json(&password_with(&server, &key.sign(&ProofClaims { htu, ..claims(&server) }).unwrap()).await);
}

#[tokio::test]
async fn rfc9449_4_3_stale_or_future_iat_is_invalid_dpop_proof() {
    let server = Setup::demo().start().await;
    let key = new_key();
    let now = server.clock_now();
    refused(&server, key.sign(&ProofClaims { iat: (now - 61).into(), ..claims(&server) }).unwrap()).await;
    refused(&server, key.sign(&ProofClaims { iat: (now + 6).into(), ..claims(&server) }).unwrap()).await;
    ok_json(
        &password_with(&server, &key.sign(&ProofClaims { iat: (now - 60).into(), ..claims(&server) }).unwrap()).await,
    );
    // A proof made now and presented after the window is stale too.
    let late = key.sign(&claims(&server)).unwrap();
    server.clock.advance(61);
    refused(&server, late).await;
}

#[tokio::test]
async fn rfc9449_11_1_reused_jti_is_invalid_dpop_proof() {
    let server = Setup::demo().start().await;
    let key = new_key();
    let proof = key.sign(&claims(&server)).unwrap();
    ok_json(&password_with(&server, &proof).await);
    let body = refused(&server, proof.clone()).await;
    assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
    // Another proof with the same jti (new iat, same key) is a replay too.
    let mut c = claims(&server);
    c.jti = figure2_protocol::access_token::decode_unverified(&proof).unwrap().1["jti"].as_str().unwrap().into();
    server.clock.advance(1);
    c.iat = server.clock_now().into();
    refused(&server, key.sign(&c).unwrap()).await;
}

#[tokio::test]
async fn rfc9449_4_3_header_rules_private_key_symmetric_alg_typ_signature() {
    let server = Setup::demo().start().await;
    let key = new_key();
    let payload = serde_json::to_value(claims(&server)).unwrap();
    let jwk = key.public_jwk().clone();
    let with_header = |h: Value| key.sign_raw(&h, &payload).unwrap();
    // Point 7: private key material in jwk.
    let mut private = jwk.clone();
    private["d"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]));
    refused(&server, with_header(json!({"typ": TYP, "alg": "ES256", "jwk": private}))).await;
    // Point 5: a symmetric algorithm (with an oct key), and none.
    let oct = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(b"shared secret")});
    refused(&server, with_header(json!({"typ": TYP, "alg": "HS256", "jwk": oct}))).await;
    refused(&server, with_header(json!({"typ": TYP, "alg": "HS256", "jwk": jwk}))).await;
    refused(&server, with_header(json!({"typ": TYP, "alg": "none", "jwk": jwk}))).await;
    // Point 4: typ.
    refused(&server, with_header(json!({"typ": "JWT", "alg": "ES256", "jwk": jwk}))).await;
    // Point 6: signed by another key than the jwk.
    refused(&server, with_header(json!({"typ": TYP, "alg": "ES256", "jwk": new_key().public_jwk()}))).await;
    // Point 3: a missing claim.
    let no_jti = json!({"htm": "POST", "htu": server.url("/token"), "iat": server.clock_now()});
    refused(&server, key.sign_raw(&json!({"typ": TYP, "alg": "ES256", "jwk": jwk}), &no_jti).unwrap()).await;
    // Point 2: not a JWT.
    refused(&server, "not-a-jwt".into()).await;
    // Point 1: two DPoP headers.
    let (a, b) = (key.sign(&claims(&server)).unwrap(), key.sign(&claims(&server)).unwrap());
    assert_error(&token_with_proofs(&server, DEMO, &PASSWORD, &[&a, &b]).await, 400, "invalid_dpop_proof");
}

#[tokio::test]
async fn rfc9449_8_nonce_dance_use_dpop_nonce_then_success() {
    let server = Setup::demo().configure(|c| c.dpop_nonce = true).start().await;
    let key = new_key();
    let r = password_with(&server, &key.sign(&claims(&server)).unwrap()).await;
    assert_error(&r, 400, "use_dpop_nonce");
    let nonce = r.header("dpop-nonce").expect("§8.1: DPoP-Nonce with use_dpop_nonce").to_owned();
    let wrong = ProofClaims { nonce: Some("made-up".into()), ..claims(&server) };
    assert_error(&password_with(&server, &key.sign(&wrong).unwrap()).await, 400, "use_dpop_nonce");
    let with = ProofClaims { nonce: Some(nonce.clone()), ..claims(&server) };
    let ok = password_with(&server, &key.sign(&with).unwrap()).await;
    assert_eq!(ok_json(&ok)["token_type"], "DPoP");
    assert_eq!(ok.header("dpop-nonce"), Some(nonce.as_str()), "the current nonce goes with every answer");
    // §8.2: after the nonce's lifetime (and one more), the server asks for a new one.
    server.clock.advance(601);
    let stale = ProofClaims { nonce: Some(nonce.clone()), ..claims(&server) };
    let r = password_with(&server, &key.sign(&stale).unwrap()).await;
    assert_error(&r, 400, "use_dpop_nonce");
    assert_ne!(r.header("dpop-nonce"), Some(nonce.as_str()));
}

#[tokio::test]
async fn rfc9449_5_the_binding_is_stored_and_survives_a_restart() {
    let db = TempDb::new("dpop-restart");
    let clock = figure2_protocol::SimulatedClock::starting_at(START);
    let setup = || Setup::demo().configure(|c| c.dpop_bind_confidential_refresh_tokens = true);
    let first = setup().database(&db).clock(&clock).start().await;
    let key = new_key();
    let b = ok_json(&password_with(&first, &key.sign(&claims(&first)).unwrap()).await);
    let addr = first.addr;
    first.stop().await;
    let second = setup().database(&db).clock(&clock).listen_on(addr).start().await;
    let rt = field(&b, "refresh_token");
    assert_error(&refresh_with(&second, DEMO, &rt, None).await, 400, "invalid_grant");
    ok_json(&refresh_with(&second, DEMO, &rt, Some(&key.sign(&claims(&second)).unwrap())).await);
    second.stop().await;
}
