//! RFC 9449 at the resource server: the `DPoP` scheme (§7.1), every §4.3 check of the
//! proof with `ath`, the `cnf.jkt` binding, `WWW-Authenticate: DPoP` with `algs`, a bound
//! token presented as Bearer (§7.2), and nonces (§9).

use crate::support::*;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use figure2_http::ReceivedResponse;
use figure2_protocol::dpop::{Confirmation, DpopChallenge, ProofClaims, ProofKey, TYP, access_token_hash};
use http::Method;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

fn new_key() -> ProofKey {
    let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap();
    ProofKey::from_es256_pkcs8(pkcs8.as_ref()).unwrap()
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// A token bound to `key` (`cnf.jkt`).
fn bound_token(h: &Harness, key: &ProofKey) -> String {
    let mut claims = h.claims();
    claims.cnf = Some(Confirmation { jkt: Some(key.thumbprint().to_owned()) });
    h.signer.sign(&claims)
}

/// A good proof for `GET path` with `token`.
fn proof_claims(h: &Harness, method: &str, path: &str, token: &str) -> ProofClaims {
    ProofClaims {
        jti: format!("rs-jti-{}", JTI.fetch_add(1, Ordering::SeqCst)),
        htm: method.into(),
        htu: h.url(path),
        iat: h.clock.now_secs().into(),
        ath: Some(access_token_hash(token)),
        nonce: None,
    }
}

async fn dpop_get(h: &Harness, path: &str, token: &str, proofs: &[&str]) -> ReceivedResponse {
    let auth = format!("DPoP {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    for p in proofs {
        headers.push(("dpop", p));
    }
    h.send(Method::GET, path, &headers, None).await
}

/// The DPoP challenge of an answer (among the WWW-Authenticate values).
#[track_caller]
fn dpop_challenge(r: &ReceivedResponse) -> DpopChallenge {
    r.headers
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(DpopChallenge::parse)
        .unwrap_or_else(|| panic!("no DPoP challenge on HTTP {}: {:?}", r.status, r.headers))
}

#[track_caller]
fn assert_dpop_error(r: &ReceivedResponse, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.body_text());
    let c = dpop_challenge(r);
    assert_eq!(c.error.map(|e| e.as_str()), Some(error), "{c:?}");
    assert!(c.algs.as_deref().is_some_and(|a| a.split(' ').any(|a| a == "ES256")), "§7.1 algs: {c:?}");
    assert_eq!(json_body(r)["error"], error);
}

#[tokio::test]
async fn rfc9449_7_1_dpop_scheme_with_a_good_proof_is_served() {
    let h = Harness::start().await;
    let key = new_key();
    let token = bound_token(&h, &key);
    let proof = key.sign(&proof_claims(&h, "GET", "/resource/read", &token)).unwrap();
    let r = dpop_get(&h, "/resource/read", &token, &[&proof]).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    // The same proof again is a replay (§11.1).
    assert_dpop_error(&dpop_get(&h, "/resource/read", &token, &[&proof]).await, 401, "invalid_dpop_proof");
    // A fresh proof for the same token works again (a token is used many times, each
    // with its own proof).
    let again = key.sign(&proof_claims(&h, "GET", "/resource/read", &token)).unwrap();
    assert_eq!(dpop_get(&h, "/resource/read", &token, &[&again]).await.status, 200);
    // A bound token still meets the scope rules, in the DPoP challenge.
    let admin = key.sign(&proof_claims(&h, "GET", "/resource/admin", &token)).unwrap();
    let r = dpop_get(&h, "/resource/admin", &token, &[&admin]).await;
    assert_dpop_error(&r, 403, "insufficient_scope");
    assert_eq!(dpop_challenge(&r).scope.as_deref(), Some("admin"));
}

#[tokio::test]
async fn rfc9449_7_1_unauthenticated_requests_get_a_dpop_challenge_with_algs() {
    let h = Harness::start().await;
    let r = h.get("/resource/read", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(challenge(&r), r#"Bearer realm="figure2""#, "the Bearer challenge comes first");
    let c = dpop_challenge(&r);
    assert!(c.error.is_none());
    assert!(c.algs.unwrap().split(' ').all(|a| !a.starts_with("HS")));
}

#[tokio::test]
async fn rfc9449_7_2_a_bound_token_presented_as_bearer_is_refused() {
    let h = Harness::start().await;
    let key = new_key();
    let token = bound_token(&h, &key);
    let r = h.get("/resource/read", Some(&token)).await;
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains(r#"error="invalid_token""#), "{}", challenge(&r));
    // Even with a proof beside it: the scheme says Bearer.
    let proof = key.sign(&proof_claims(&h, "GET", "/resource/read", &token)).unwrap();
    let auth = format!("Bearer {token}");
    let r = h.send(Method::GET, "/resource/read", &[("authorization", &auth), ("dpop", &proof)], None).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn rfc9449_4_3_12_proof_key_must_be_the_bound_key_and_tokens_must_be_bound() {
    let h = Harness::start().await;
    let key = new_key();
    let token = bound_token(&h, &key);
    let thief = new_key();
    let stolen = thief.sign(&proof_claims(&h, "GET", "/resource/read", &token)).unwrap();
    assert_dpop_error(&dpop_get(&h, "/resource/read", &token, &[&stolen]).await, 401, "invalid_token");
    // An unbound (Bearer) token is not a DPoP token.
    let plain = h.token();
    let proof = key.sign(&proof_claims(&h, "GET", "/resource/read", &plain)).unwrap();
    assert_dpop_error(&dpop_get(&h, "/resource/read", &plain, &[&proof]).await, 401, "invalid_token");
    // An invalid token with a good proof: invalid_token in the DPoP challenge.
    h.clock.advance(301);
    let proof = key.sign(&proof_claims(&h, "GET", "/resource/read", &token)).unwrap();
    assert_dpop_error(&dpop_get(&h, "/resource/read", &token, &[&proof]).await, 401, "invalid_token");
}

#[tokio::test]
async fn rfc9449_4_3_every_bad_proof_is_invalid_dpop_proof() {
    let h = Harness::start().await;
    let key = new_key();
    let token = bound_token(&h, &key);
    let good = || proof_claims(&h, "GET", "/resource/read", &token);
    let bad = [
        ("wrong ath", ProofClaims { ath: Some(access_token_hash("another token")), ..good() }),
        ("no ath", ProofClaims { ath: None, ..good() }),
        ("wrong htm", ProofClaims { htm: "POST".into(), ..good() }),
        ("wrong htu", ProofClaims { htu: h.url("/resource/write"), ..good() }),
        ("other host", ProofClaims { htu: "http://rs.example/resource/read".into(), ..good() }),
        ("stale iat", ProofClaims { iat: (h.clock.now_secs() - 61).into(), ..good() }),
        ("future iat", ProofClaims { iat: (h.clock.now_secs() + 6).into(), ..good() }),
    ];
    for (what, claims) in bad {
        let r = dpop_get(&h, "/resource/read", &token, &[&key.sign(&claims).unwrap()]).await;
        assert_eq!(r.status, 401, "{what}");
        assert_dpop_error(&r, 401, "invalid_dpop_proof");
    }
    let payload = serde_json::to_value(good()).unwrap();
    let mut private = key.public_jwk().clone();
    private["d"] = json!("AAAA");
    let headers = [
        ("private key in jwk", json!({"typ": TYP, "alg": "ES256", "jwk": private})),
        ("symmetric alg", json!({"typ": TYP, "alg": "HS256", "jwk": key.public_jwk()})),
        ("typ", json!({"typ": "JWT", "alg": "ES256", "jwk": key.public_jwk()})),
        ("another key", json!({"typ": TYP, "alg": "ES256", "jwk": new_key().public_jwk()})),
    ];
    for (what, header) in headers {
        let r = dpop_get(&h, "/resource/read", &token, &[&key.sign_raw(&header, &payload).unwrap()]).await;
        assert_eq!(r.status, 401, "{what}");
        assert_dpop_error(&r, 401, "invalid_dpop_proof");
    }
    // No proof, two proofs.
    assert_dpop_error(&dpop_get(&h, "/resource/read", &token, &[]).await, 401, "invalid_dpop_proof");
    let (a, b) = (key.sign(&good()).unwrap(), key.sign(&good()).unwrap());
    assert_dpop_error(&dpop_get(&h, "/resource/read", &token, &[&a, &b]).await, 401, "invalid_dpop_proof");
    // Query and fragment are not part of htu (§4.3 point 9).
    let query = key.sign(&good()).unwrap();
    let auth = format!("DPoP {token}");
    let r = h.send(Method::GET, "/resource/read?x=1", &[("authorization", &auth), ("dpop", &query)], None).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
}

#[tokio::test]
async fn rfc9449_9_resource_server_nonce() {
    let h = Harness::start_with(|c| c.dpop_nonce = true).await;
    let key = new_key();
    let token = bound_token(&h, &key);
    let first = key.sign(&proof_claims(&h, "GET", "/resource/read", &token)).unwrap();
    let r = dpop_get(&h, "/resource/read", &token, &[&first]).await;
    assert_dpop_error(&r, 401, "use_dpop_nonce");
    let nonce = r.header("dpop-nonce").expect("§9: DPoP-Nonce with use_dpop_nonce").to_owned();
    let with = ProofClaims { nonce: Some(nonce.clone()), ..proof_claims(&h, "GET", "/resource/read", &token) };
    let r = dpop_get(&h, "/resource/read", &token, &[&key.sign(&with).unwrap()]).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("dpop-nonce"), Some(nonce.as_str()));
}
