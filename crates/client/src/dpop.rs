//! RFC 9449 DPoP for the client: one ES256 key per session (made with the system CSPRNG,
//! never stored), a proof for each request (`figure2_protocol::dpop::ProofKey` signs it),
//! and the last nonce each server gave (§8 at the token endpoint, §9 at the resource
//! server), keyed by origin.

use crate::ClientError;
use figure2_protocol::UnixTime;
use figure2_protocol::dpop::{
    DpopChallenge, DpopChallengeError, NONCE_HEADER, ProofClaims, ProofKey, access_token_hash,
};
use http::HeaderMap;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

pub(crate) struct DpopSession {
    pub(crate) key: ProofKey,
    /// origin (`scheme://host:port`) → the last `DPoP-Nonce` it sent.
    nonces: Mutex<HashMap<String, String>>,
}

impl DpopSession {
    /// A fresh P-256 key for this session.
    pub(crate) fn generate() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        // Key generation fails only if the OS has no randomness: nothing sensible to go on.
        let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .expect("the system CSPRNG makes a P-256 key");
        let key = ProofKey::from_es256_pkcs8(pkcs8.as_ref()).expect("a freshly made P-256 key parses");
        Self { key, nonces: Mutex::new(HashMap::new()) }
    }

    /// §4.2: a proof for `method url` (query and fragment left out of `htu`), with `ath`
    /// for an access token and the server's last nonce if it gave one.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        now: UnixTime,
    ) -> Result<String, ClientError> {
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| ClientError::Protocol("no randomness for a DPoP jti".into()))?;
        let htu = url.split(['?', '#']).next().unwrap_or(url).to_owned();
        let nonce =
            origin(url).and_then(|o| self.nonces.lock().unwrap_or_else(PoisonError::into_inner).get(&o).cloned());
        let claims = ProofClaims {
            jti: figure2_protocol::secret::encode_token(&jti),
            htm: method.to_owned(),
            htu,
            iat: now.into(),
            ath: access_token.map(access_token_hash),
            nonce,
        };
        self.key.sign(&claims).map_err(|e| ClientError::Protocol(format!("cannot sign a DPoP proof: {e}")))
    }

    /// Keeps the `DPoP-Nonce` of an answer from `url`'s server; whether it is new.
    pub(crate) fn remember_nonce(&self, url: &str, headers: &HeaderMap) -> bool {
        let (Some(nonce), Some(origin)) = (headers.get(NONCE_HEADER).and_then(|v| v.to_str().ok()), origin(url)) else {
            return false;
        };
        // §8.1: nonce = 1*NQCHAR; anything else is not sent back.
        if nonce.is_empty() || !nonce.chars().all(|c| matches!(c, '\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')) {
            return false;
        }
        let mut nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        nonces.insert(origin, nonce.to_owned()).as_deref() != Some(nonce)
    }
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

/// The DPoP challenge among the `WWW-Authenticate` headers (RFC 9449 §7.1).
pub(crate) fn dpop_challenge(headers: &HeaderMap) -> Option<DpopChallenge> {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(DpopChallenge::parse)
}

/// §9: the resource server wants a nonce.
pub(crate) fn asks_nonce(headers: &HeaderMap) -> bool {
    dpop_challenge(headers).and_then(|c| c.error) == Some(DpopChallengeError::UseDpopNonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_name_the_request_and_nonces_are_kept_per_origin() {
        let s = DpopSession::generate();
        let mut h = HeaderMap::new();
        h.insert(NONCE_HEADER, "n-1".parse().unwrap());
        assert!(s.remember_nonce("http://AS.example:8080/token", &h));
        assert!(!s.remember_nonce("http://as.example:8080/other", &h), "same nonce again");
        let proof = s.proof("POST", "http://as.example:8080/token?x#y", Some("at"), 10).unwrap();
        let (header, claims) = figure2_protocol::access_token::decode_unverified(&proof).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert!(header["jwk"].get("d").is_none());
        assert_eq!(claims["htu"], "http://as.example:8080/token");
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["ath"], access_token_hash("at"));
        let other = s.proof("GET", "http://rs.example/r", None, 10).unwrap();
        let (_, claims) = figure2_protocol::access_token::decode_unverified(&other).unwrap();
        assert!(claims.get("nonce").is_none());
        let mut bad = HeaderMap::new();
        bad.insert(NONCE_HEADER, "has space".parse().unwrap());
        assert!(!s.remember_nonce("http://rs.example/r", &bad));
    }
}
