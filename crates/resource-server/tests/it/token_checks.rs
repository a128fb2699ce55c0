//! RFC 9068 §4: every way a token can be refused is step F, `invalid_token`, 401.

use crate::support::{Harness, NowSecs, Signer, b64, challenge, json_body};
use figure2_protocol::access_token;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Asserts a 401 `invalid_token` whose description contains `needle`.
async fn assert_invalid_token(h: &Harness, token: &str, needle: &str) {
    let r = h.get("/resource/read", Some(token)).await;
    assert_eq!(r.status, 401, "{}", r.body_text());
    let c = challenge(&r);
    assert!(c.starts_with(r#"Bearer realm="figure2", error="invalid_token", error_description=""#), "{c}");
    assert!(c.contains(needle), "{c} should mention {needle:?}");
    assert_eq!(json_body(&r)["error"], "invalid_token");
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn tampered_signature_and_payload() {
    let h = Harness::start().await;
    let token = h.token();
    let (signed, sig) = token.rsplit_once('.').unwrap();
    // Flip one signature character (keeping it a valid base64url character).
    let mut sig: Vec<u8> = sig.as_bytes().to_vec();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{signed}.{}", String::from_utf8(sig).unwrap());
    assert_invalid_token(&h, &tampered, "signature is invalid").await;

    // Swap in a payload that grants admin, keeping the original signature.
    let mut claims = h.claims();
    claims.scope = Some("read write admin".into());
    let (header_b64, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let forged = format!("{header_b64}.{}.{sig}", b64(serde_json::to_vec(&claims).unwrap()));
    assert_invalid_token(&h, &forged, "signature is invalid").await;

    // No signature at all.
    assert_invalid_token(&h, &format!("{signed}."), "signature is invalid").await;
}

#[tokio::test]
async fn signed_by_another_key_with_the_same_kid() {
    let h = Harness::start().await;
    let impostor = Signer::generate("k1");
    assert_invalid_token(&h, &impostor.sign(&h.claims()), "signature is invalid").await;
}

#[tokio::test]
async fn wrong_issuer_and_wrong_audience() {
    let h = Harness::start().await;
    let mut c = h.claims();
    c.iss = "http://evil.example".into();
    assert_invalid_token(&h, &h.signer.sign(&c), "another issuer").await;
    let mut c = h.claims();
    c.iss = format!("{}/", h.issuer()); // RFC 9068 §4: exact match, no normalisation
    assert_invalid_token(&h, &h.signer.sign(&c), "another issuer").await;
    let mut c = h.claims();
    c.aud = access_token::Audience::One("some-other-api".into());
    assert_invalid_token(&h, &h.signer.sign(&c), "not meant for this resource server").await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let h = Harness::start().await;
    let header = b64(br#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#);
    let payload = b64(serde_json::to_vec(&h.claims()).unwrap());
    assert_invalid_token(&h, &format!("{header}.{payload}."), "algorithm is not accepted").await;
    let header = b64(br#"{"alg":"None","typ":"at+jwt","kid":"k1"}"#);
    assert_invalid_token(&h, &format!("{header}.{payload}.c2ln"), "algorithm is not accepted").await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    // RFC 8725 §2.1: the algorithm-confusion attack.
    let h = Harness::start().await;
    let header = access_token::header(Algorithm::HS256, &h.signer.kid);
    for secret in [h.signer.public.clone(), serde_json::to_vec(&h.signer.jwk()).unwrap()] {
        let token = jsonwebtoken::encode(&header, &h.claims(), &EncodingKey::from_secret(&secret)).unwrap();
        assert_invalid_token(&h, &token, "algorithm is not accepted").await;
    }
    // Even if the deployment wrongly allowed HS256, no JWKS key is ever an HMAC key.
    let lax = Harness::start_with(|c| c.allowed_algorithms.push(Algorithm::HS256)).await;
    let header = access_token::header(Algorithm::HS256, &lax.signer.kid);
    let token = jsonwebtoken::encode(&header, &lax.claims(), &EncodingKey::from_secret(&lax.signer.public)).unwrap();
    assert_invalid_token(&lax, &token, "does not match its key").await;
}

#[tokio::test]
async fn key_algorithm_must_match_header_algorithm() {
    let h = Harness::start_with(|c| c.allowed_algorithms.push(Algorithm::ES384)).await;
    let header = b64(br#"{"alg":"ES384","typ":"at+jwt","kid":"k1"}"#);
    let payload = b64(serde_json::to_vec(&h.claims()).unwrap());
    assert_invalid_token(&h, &format!("{header}.{payload}.c2ln"), "does not match its key").await;
}

#[tokio::test]
async fn id_token_shaped_jwt_is_refused() {
    // RFC 9068 §4: typ must be at+jwt; an OpenID Connect ID token has typ JWT (or none).
    let h = Harness::start().await;
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k1".into());
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    assert_invalid_token(&h, &h.signer.sign_with_header(&header, &h.claims()), "typ must be at+jwt").await;
    header.typ = None;
    assert_invalid_token(&h, &h.signer.sign_with_header(&header, &h.claims()), "typ must be at+jwt").await;
    // The long form is accepted.
    header.typ = Some("application/at+jwt".into());
    let r = h.get("/resource/read", Some(&h.signer.sign_with_header(&header, &h.claims()))).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn token_without_kid_or_with_crit_is_refused() {
    let h = Harness::start().await;
    let mut header = access_token::header(Algorithm::ES256, "k1");
    header.kid = None;
    assert_invalid_token(&h, &h.signer.sign_with_header(&header, &h.claims()), "unknown key").await;
    let mut header = access_token::header(Algorithm::ES256, "k1");
    header.crit = Some(vec!["exp".into()]);
    assert_invalid_token(&h, &h.signer.sign_with_header(&header, &h.claims()), "critical").await;
}

#[tokio::test]
async fn missing_required_claims_make_a_malformed_token() {
    let h = Harness::start().await;
    let c = h.claims();
    let without_client_id = json!({"iss": c.iss, "sub": c.sub, "aud": crate::support::AUDIENCE, "exp": c.exp, "iat": c.iat, "jti": c.jti, "scope": "read"});
    assert_invalid_token(&h, &h.signer.sign(&without_client_id), "malformed").await;
    let without_exp = json!({"iss": c.iss, "sub": c.sub, "aud": crate::support::AUDIENCE, "iat": c.iat, "jti": c.jti, "client_id": "x", "scope": "read"});
    assert_invalid_token(&h, &h.signer.sign(&without_exp), "malformed").await;
    assert_invalid_token(&h, "abc.def.ghi", "malformed").await;
    assert_invalid_token(&h, "abc", "malformed").await;
}

#[tokio::test]
async fn oversize_token_is_refused_unparsed() {
    let h = Harness::start().await;
    let huge = "a".repeat(8193);
    assert_invalid_token(&h, &huge, "too large").await;
    // A valid token padded past a smaller limit.
    let small = Harness::start_with(|c| c.max_token_bytes = 64).await;
    assert_invalid_token(&small, &small.token(), "too large").await;
}

/// RFC 7519 §2: NumericDate "can represent non-integer values": a correctly signed token
/// whose `exp` has a fraction or exponent notation is valid (the issue's inputs), and is
/// refused from the second its `exp` falls in (conservative rounding).
#[tokio::test]
async fn rfc7519_2_fractional_and_exponent_numeric_dates_are_accepted() {
    let h = Harness::start().await;
    let now = h.clock.now_secs();
    let c = h.claims();
    let claims = |exp: Value, iat: Value, nbf: Option<Value>| {
        let mut j = json!({"iss": c.iss, "sub": c.sub, "aud": crate::support::AUDIENCE, "exp": exp, "iat": iat,
            "jti": c.jti, "client_id": c.client_id, "scope": "read"});
        if let Some(nbf) = nbf {
            j["nbf"] = nbf;
        }
        h.signer.sign(&j)
    };
    let fractional = claims(json!(now as f64 + 300.5), json!(now as f64 + 0.25), Some(json!(now as f64 - 0.5)));
    // The issue's inputs, byte for byte on the wire: `exp` with a fraction, and in
    // exponent notation (as `1.795989379e9`).
    let raw = |exp: &str| {
        h.signer.sign_raw_payload(&format!(
            r#"{{"iss":{},"sub":"alice","aud":"{}","exp":{exp},"iat":{now},"jti":"j-raw","client_id":"demo-client","scope":"read"}}"#,
            json!(c.iss),
            crate::support::AUDIENCE,
        ))
    };
    let exponent = raw(&format!("{}e-1", (now + 300) * 10));
    let with_fraction = raw(&format!("{}.5", now + 300));
    let exponent_fraction = raw(&format!("{}.5e-1", (now + 300) * 10));
    for token in [&fractional, &exponent, &with_fraction, &exponent_fraction] {
        let r = h.get("/resource/read", Some(token)).await;
        assert_eq!(r.status, 200, "{}", r.body_text());
    }
    // exp = now + 300.5: at now + 300 some instant of that second is past it: expired.
    h.clock.advance(299);
    assert_eq!(h.get("/resource/read", Some(&fractional)).await.status, 200);
    h.clock.advance(1);
    assert_invalid_token(&h, &fractional, "expired").await;
    // Strings, negatives stay malformed.
    for (exp, iat) in [(json!(format!("{}", now + 300)), json!(now)), (json!(now + 300), json!(-1))] {
        let token = claims(exp, iat, None);
        assert_invalid_token(&h, &token, "malformed").await;
    }
}
