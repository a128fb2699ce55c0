//! RFC 9449 DPoP at the resource server (steps C/E → D/F): the `DPoP` authorization
//! scheme (§7.1) with its proof, checked by `figure2_protocol::dpop::validate_proof` with
//! `ath` (the proof goes with this access token) against the request's method and URI,
//! the injected clock, a bounded `jti` memory and (if configured) nonces (§9).
//!
//! ```text
//! GET /resource/read HTTP/1.1                HTTP/1.1 401 Unauthorized
//! Authorization: DPoP eyJhbGciOiJFUzI1NiIs…  WWW-Authenticate: DPoP error="use_dpop_nonce",
//! DPoP: eyJ0eXAiOiJkcG9wK2p3dCIs…(no nonce)    algs="ES256 ES384 EdDSA PS256 RS256"
//!                                            DPoP-Nonce: eyJ7S_zG.eyJH0-Z.HX4w-7v      (§9)
//! ```

use crate::ResourceServer;
use figure2_protocol::dpop::{self, DpopRejection, NonceCheck, Nonces, ProofExpectations, ReplayCache, ValidatedProof};
use std::sync::{Mutex, PoisonError};

/// The resource server's DPoP memory: the `jti`s it has seen and its nonces.
#[derive(Debug)]
pub(crate) struct DpopState {
    replay: ReplayCache,
    nonces: Mutex<Nonces>,
}

impl DpopState {
    pub(crate) fn new(config: &crate::ResourceServerConfig) -> Self {
        Self {
            replay: ReplayCache::new(config.dpop_jti_cache_size),
            nonces: Mutex::new(Nonces::new(config.dpop_nonce_lifetime)),
        }
    }
}

impl ResourceServer {
    /// The nonce to send in `DPoP-Nonce` now, if nonces are on (§9).
    pub(crate) fn dpop_nonce(&self) -> Option<String> {
        if !self.config.dpop_nonce {
            return None;
        }
        let mut nonces = self.dpop.nonces.lock().unwrap_or_else(PoisonError::into_inner);
        Some(nonces.current(self.clock.now(), || {
            let mut bytes = [0u8; 24];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
            figure2_protocol::secret::encode_token(&bytes)
        }))
    }

    /// The URI the request was sent to, as the client named it (§4.3 point 9): the
    /// configured public URL, else `http://{Host}{path}`.
    fn request_uri(&self, parts: &http::request::Parts) -> Option<String> {
        let path = parts.uri.path();
        match &self.config.public_url {
            Some(base) => Some(format!("{}{path}", base.trim_end_matches('/'))),
            None => {
                let host = parts.headers.get(http::header::HOST)?.to_str().ok()?;
                Some(format!("http://{host}{path}"))
            }
        }
    }

    /// RFC 9449 §7.1 / §4.3: the proof of a request using the `DPoP` scheme with
    /// `access_token`. The key binding (`cnf.jkt`) is checked once the token is validated.
    pub(crate) fn check_dpop_proof(
        &self,
        parts: &http::request::Parts,
        access_token: &str,
    ) -> Result<ValidatedProof, DpopRejection> {
        let values: Vec<&str> =
            parts.headers.get_all(dpop::DPOP_HEADER).iter().map(|v| v.to_str().unwrap_or("")).collect();
        let proof = dpop::single_proof(&values)?.ok_or(DpopRejection::Missing)?;
        let uri = self.request_uri(parts).ok_or(DpopRejection::WrongUri)?;
        let now = self.clock.now();
        let accepts = |nonce: &str| self.dpop.nonces.lock().unwrap_or_else(PoisonError::into_inner).accepts(nonce, now);
        // A HEAD reaches the handler as a GET (figure2_http); the proof names the method sent.
        let method =
            if parts.extensions.get::<figure2_http::HeadRequest>().is_some() { "HEAD" } else { parts.method.as_str() };
        let expect = ProofExpectations {
            method,
            uri: &uri,
            now,
            max_age: self.config.dpop_proof_max_age,
            leeway: self.config.dpop_proof_leeway,
            allowed_algorithms: &self.config.dpop_algorithms,
            access_token: Some(access_token),
            nonce: if self.config.dpop_nonce { NonceCheck::Required(&accepts) } else { NonceCheck::NotUsed },
        };
        dpop::validate_proof(proof, &expect, &self.dpop.replay)
    }
}
