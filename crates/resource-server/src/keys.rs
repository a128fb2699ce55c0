//! The issuer's verification keys, parsed once from its JWK Set (RFC 7517 §5) and kept as
//! ready-to-use [`DecodingKey`]s so that a request only looks a key up by `kid`.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use std::collections::HashMap;

/// One verification key of the issuer.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    /// The algorithm this key may verify. `None` only for an RSA key published without
    /// `alg`, which then verifies any RSA algorithm the allow-list admits.
    alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
    /// Performance: an ES256 key as aws-lc parsed it once (jsonwebtoken, with the same
    /// aws-lc algorithm, parses the point again on every verification). `None` for the
    /// other algorithms, or if aws-lc refused the point: then `key` verifies (or refuses).
    pub(crate) parsed_es256: Option<ParsedPublicKey>,
}

/// What a lookup by (`kid`, `alg`) found.
pub(crate) enum KeyLookup<'a> {
    Found(&'a VerificationKey),
    /// No key has this `kid`: the issuer may have rotated keys since the last fetch.
    UnknownKid,
    /// A key has this `kid` but is for another algorithm (RFC 8725 §3.1: the key decides
    /// the algorithm, not the token).
    AlgorithmMismatch,
}

/// The usable keys of one JWKS fetch, by `kid`.
#[derive(Clone, Default)]
pub struct KeySet {
    // RFC 7517 §4.5: keys of different types may share a kid, hence a list.
    by_kid: HashMap<String, Vec<VerificationKey>>,
    /// Unique to each fetch: the verified-token cache remembers which keys verified a
    /// token, and ignores what older keys verified.
    id: KeySetId,
}

/// Which JWKS fetch a [`KeySet`] came from (0 is only the empty default). The verified-
/// token cache keys its entries by it, so the arrow points from the cache to the keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeySetId(u64);

impl KeySetId {
    /// An id for tests that need key sets without fetching them.
    #[cfg(test)]
    pub(crate) fn of(n: u64) -> Self {
        Self(n)
    }
}

/// Numbers the key sets (0 is only the empty default).
static NEXT_KEY_SET_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&str> = self.by_kid.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeySet").field("kids", &kids).finish()
    }
}

/// A JWK left out of the key set, and why (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    pub kid: Option<String>,
    pub reason: &'static str,
}

impl KeySet {
    /// Keeps the signature-verification keys of `set` and reports the others.
    pub fn from_jwks(set: &JwkSet) -> (Self, Vec<SkippedKey>) {
        let id = NEXT_KEY_SET_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut keys = Self { by_kid: HashMap::new(), id: KeySetId(id) };
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            match admit(jwk) {
                Ok(key) => {
                    // admit() refuses keys without a kid.
                    if let Some(kid) = kid {
                        keys.by_kid.entry(kid).or_default().push(key);
                    }
                }
                Err(reason) => skipped.push(SkippedKey { kid, reason }),
            }
        }
        (keys, skipped)
    }

    /// Which fetch these keys came from.
    pub fn id(&self) -> KeySetId {
        self.id
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum()
    }

    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    pub(crate) fn find(&self, kid: &str, alg: Algorithm) -> KeyLookup<'_> {
        let Some(candidates) = self.by_kid.get(kid) else { return KeyLookup::UnknownKid };
        candidates
            .iter()
            .find(|k| match k.alg {
                Some(key_alg) => key_alg == alg,
                None => k.key.family() == alg.family(),
            })
            .map_or(KeyLookup::AlgorithmMismatch, KeyLookup::Found)
    }
}

/// Decides whether a JWK may verify access-token signatures, and for which algorithm.
fn admit(jwk: &Jwk) -> Result<VerificationKey, &'static str> {
    if jwk.common.key_id.is_none() {
        return Err("no kid: tokens name their key by kid");
    }
    // RFC 7517 §4.2, §4.3: keep only keys meant for verifying signatures.
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("use is not sig"),
    }
    if let Some(ops) = &jwk.common.key_operations
        && !ops.iter().any(|op| matches!(op, KeyOperations::Verify))
    {
        return Err("key_ops lacks verify");
    }
    let declared = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => Some(Algorithm::try_from(ka).map_err(|_| "alg is not a JWS signature algorithm")?),
    };
    // RFC 8725 §2.1: a published symmetric key would let anyone holding the JWKS mint tokens.
    if declared.is_some_and(|a| a.family() == AlgorithmFamily::Hmac) {
        return Err("HMAC keys are never accepted");
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            // RFC 7518 §3.4: ES256 is P-256, ES384 is P-384.
            let curve_alg = match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err("unsupported EC curve"),
            };
            if declared.is_some_and(|a| a != curve_alg) {
                return Err("alg does not fit crv");
            }
            Some(curve_alg)
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            // RFC 8037 §3.1: EdDSA with Ed25519.
            if okp.curve != EllipticCurve::Ed25519 {
                return Err("unsupported OKP curve");
            }
            if declared.is_some_and(|a| a != Algorithm::EdDSA) {
                return Err("alg does not fit crv");
            }
            Some(Algorithm::EdDSA)
        }
        AlgorithmParameters::RSA(_) => {
            if declared.is_some_and(|a| a.family() != AlgorithmFamily::Rsa) {
                return Err("alg does not fit kty");
            }
            declared
        }
        AlgorithmParameters::OctetKey(_) => return Err("symmetric (oct) keys are never accepted"),
        _ => return Err("unsupported kty"),
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|_| "unusable key material")?;
    let parsed_es256 = (alg == Some(Algorithm::ES256))
        .then(|| key.try_get_as_bytes().ok())
        .flatten()
        .and_then(|point| ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).ok());
    Ok(VerificationKey { alg, key, parsed_es256 })
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7517 Appendix A.1 example public keys (EC P-256 and RSA).
    const RFC7517_A1: &str = r#"{"keys":
       [
         {"kty":"EC",
          "crv":"P-256",
          "x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",
          "y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM",
          "use":"enc",
          "kid":"1"},

         {"kty":"RSA",
          "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
          "e":"AQAB",
          "alg":"RS256",
          "kid":"2011-04-29"}
       ]
     }"#;

    fn set(json: &str) -> JwkSet {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rfc7517_a1_keeps_the_signing_key_only() {
        let (keys, skipped) = KeySet::from_jwks(&set(RFC7517_A1));
        assert_eq!(keys.len(), 1);
        assert!(matches!(keys.find("2011-04-29", Algorithm::RS256), KeyLookup::Found(_)));
        assert!(matches!(keys.find("2011-04-29", Algorithm::PS256), KeyLookup::AlgorithmMismatch));
        assert!(matches!(keys.find("1", Algorithm::ES256), KeyLookup::UnknownKid));
        assert_eq!(skipped, vec![SkippedKey { kid: Some("1".into()), reason: "use is not sig" }]);
    }

    #[test]
    fn ec_key_without_alg_is_bound_to_its_curve() {
        let (keys, _) = KeySet::from_jwks(&set(
            r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}"#,
        ));
        assert!(matches!(keys.find("k", Algorithm::ES256), KeyLookup::Found(_)));
        assert!(matches!(keys.find("k", Algorithm::ES384), KeyLookup::AlgorithmMismatch));
        assert!(matches!(keys.find("k", Algorithm::HS256), KeyLookup::AlgorithmMismatch));
    }

    #[test]
    fn refuses_symmetric_mismatched_and_kidless_keys() {
        let (keys, skipped) = KeySet::from_jwks(&set(r#"{"keys":[
              {"kty":"oct","k":"c2VjcmV0","kid":"hmac"},
              {"kty":"oct","k":"c2VjcmV0","kid":"hmac2","alg":"HS256"},
              {"kty":"EC","crv":"P-256","kid":"wrong-alg","alg":"ES384","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
              {"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
              {"kty":"EC","crv":"P-256","kid":"enc-only","key_ops":["encrypt"],"x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"},
              {"kty":"XYZ","kid":"alien"}
            ]}"#));
        assert!(keys.is_empty(), "{keys:?}");
        let reasons: Vec<&str> = skipped.iter().map(|s| s.reason).collect();
        assert_eq!(
            reasons,
            vec![
                "symmetric (oct) keys are never accepted",
                "HMAC keys are never accepted",
                "alg does not fit crv",
                "no kid: tokens name their key by kid",
                "key_ops lacks verify",
                "unsupported kty",
            ]
        );
    }
}
