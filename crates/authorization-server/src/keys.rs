//! Signing keys for the JWT access tokens of steps B and H (RFC 9068 §2.1), published as
//! a JWK Set (RFC 7517) at the `jwks_uri` so the resource server can verify them in
//! step D without calling us.
//!
//! Keys are parsed once and kept: signing then costs only the signature itself.
//! Several keys may be published at once; the newest one signs. Rotating adds a key
//! with a new `kid` and keeps the old one published so its tokens still verify.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use figure2_protocol::UnixTime;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("unsupported signing algorithm {0:?} (use ES256, RS256 or EdDSA)")]
    Unsupported(String),
    #[error("key material rejected: {0}")]
    Rejected(String),
}

/// The algorithms we can sign with, by their JWA names.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, KeyError> {
    match name {
        "ES256" => Ok(Algorithm::ES256),
        "RS256" => Ok(Algorithm::RS256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        other => Err(KeyError::Unsupported(other.to_owned())),
    }
}

pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::ES256 => "ES256",
        Algorithm::RS256 => "RS256",
        Algorithm::EdDSA => "EdDSA",
        _ => "unsupported",
    }
}

enum Pair {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// One parsed signing key.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub created_at: UnixTime,
    pair: Pair,
    /// PKCS#8 document, for storage.
    pkcs8: Vec<u8>,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key from the system CSPRNG.
    pub fn generate(alg: Algorithm, kid: String, created_at: UnixTime) -> Result<Self, KeyError> {
        let rejected = |e: &dyn std::fmt::Display| KeyError::Rejected(e.to_string());
        let pkcs8 = match alg {
            Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|e| rejected(&e))?
                .as_ref()
                .to_vec(),
            Algorithm::EdDSA => {
                Ed25519KeyPair::generate().and_then(|k| k.to_pkcs8v1()).map_err(|e| rejected(&e))?.as_ref().to_vec()
            }
            Algorithm::RS256 => {
                let k =
                    aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).map_err(|e| rejected(&e))?;
                AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&k).map_err(|e| rejected(&e))?.as_ref().to_vec()
            }
            other => return Err(KeyError::Unsupported(format!("{other:?}"))),
        };
        Self::from_pkcs8(alg, kid, created_at, pkcs8)
    }

    /// Loads a stored key.
    pub fn from_pkcs8(alg: Algorithm, kid: String, created_at: UnixTime, pkcs8: Vec<u8>) -> Result<Self, KeyError> {
        let rejected = |e: &dyn std::fmt::Display| KeyError::Rejected(e.to_string());
        let (pair, jwk) = match alg {
            Algorithm::ES256 => {
                let k = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).map_err(|e| rejected(&e))?;
                // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = k.public_key().as_ref();
                let jwk = json!({
                    "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                    "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
                });
                (Pair::Es256(k), jwk)
            }
            Algorithm::EdDSA => {
                let k = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|e| rejected(&e))?;
                let jwk =
                    json!({ "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(k.public_key().as_ref()) });
                (Pair::EdDsa(k), jwk)
            }
            Algorithm::RS256 => {
                let k = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|e| rejected(&e))?;
                let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(k.public_key());
                let jwk = json!({ "kty": "RSA", "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e) });
                (Pair::Rs256(k), jwk)
            }
            other => return Err(KeyError::Unsupported(format!("{other:?}"))),
        };
        let mut jwk = jwk;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(algorithm_name(alg));
        Ok(Self { kid, alg, created_at, pair, pkcs8, jwk })
    }

    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as a JWK (RFC 7517 §4), with `kid`, `use` and `alg`.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// Produces a JWS compact serialization (RFC 7515 §7.1) of `header` and `claims`.
    pub fn sign_jwt<C: serde::Serialize>(&self, claims: &C) -> Result<String, KeyError> {
        self.sign_jwt_with_header(&figure2_protocol::access_token::header(self.alg, &self.kid), claims)
    }

    /// Signs with any header (its `alg` must be this key's): the conformance checks use it
    /// to make tokens a resource server must refuse, such as an ID-token-shaped JWT.
    pub fn sign_jwt_with_header<C: serde::Serialize>(
        &self,
        header: &jsonwebtoken::Header,
        claims: &C,
    ) -> Result<String, KeyError> {
        let header = serde_json::to_vec(header).map_err(|e| KeyError::Rejected(e.to_string()))?;
        let claims = serde_json::to_vec(claims).map_err(|e| KeyError::Rejected(e.to_string()))?;
        let mut jwt = String::with_capacity(512);
        URL_SAFE_NO_PAD.encode_string(header, &mut jwt);
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jwt);
        let rng = SystemRandom::new();
        let signature: Vec<u8> = match &self.pair {
            Pair::Es256(k) => {
                k.sign(&rng, jwt.as_bytes()).map_err(|e| KeyError::Rejected(e.to_string()))?.as_ref().to_vec()
            }
            Pair::EdDsa(k) => k.sign(jwt.as_bytes()).as_ref().to_vec(),
            Pair::Rs256(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &rng, jwt.as_bytes(), &mut sig)
                    .map_err(|e| KeyError::Rejected(e.to_string()))?;
                sig
            }
        };
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(jwt)
    }

    /// A verifying key for our own checks (introspection, revocation).
    pub fn decoding_key(&self) -> Option<jsonwebtoken::DecodingKey> {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(self.jwk.clone()).ok()?;
        jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()
    }
}

/// A fresh `kid`: the date and random suffix keep it readable and unique.
pub fn new_kid(now: UnixTime) -> String {
    let mut r = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut r);
    format!("f2-{now}-{}", URL_SAFE_NO_PAD.encode(r))
}

impl crate::AuthorizationServer {
    /// Verifies one of our own access tokens against our keys and the clock.
    pub fn verify_access_token(&self, token: &str) -> Option<figure2_protocol::access_token::AccessTokenClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let allowed = [self.config.signing_algorithm];
        let allowed_all = figure2_protocol::access_token::DEFAULT_ALLOWED_ALGORITHMS;
        figure2_protocol::access_token::check_header(&header, &allowed_all).ok()?;
        let key = self.published_keys().into_iter().find(|k| Some(&k.kid) == header.kid.as_ref())?;
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<figure2_protocol::access_token::AccessTokenClaims>(
            token,
            &key.decoding_key()?,
            &validation,
        )
        .ok()?;
        let expect = figure2_protocol::access_token::Expectations {
            issuer: &self.config.issuer,
            audience: &self.config.audience,
            allowed_algorithms: &allowed,
            leeway: 0,
        };
        figure2_protocol::access_token::check_claims(&data.claims, &expect, self.now()).ok()?;
        Some(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation, decode, jwk::Jwk};

    #[test]
    fn every_algorithm_signs_tokens_jsonwebtoken_verifies() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let key = SigningKey::generate(alg, "k1".into(), 0).unwrap();
            let reloaded = SigningKey::from_pkcs8(alg, "k1".into(), 0, key.pkcs8().to_vec()).unwrap();
            let jwt = reloaded.sign_jwt(&json!({"sub": "alice"})).unwrap();
            let jwk: Jwk = serde_json::from_value(key.public_jwk().clone()).unwrap();
            let mut v = Validation::new(alg);
            v.required_spec_claims.clear();
            v.validate_exp = false;
            let data = decode::<Value>(&jwt, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
            assert_eq!(data.claims["sub"], "alice");
            assert_eq!(data.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(data.header.kid.as_deref(), Some("k1"));
        }
    }
}
