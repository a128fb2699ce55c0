//! RFC 9449 DPoP at the token endpoint (steps A/G → B/H): the proof in the `DPoP`
//! header is checked by `figure2_protocol::dpop::validate_proof` against the token
//! endpoint's URL, this server's clock, its `jti` memory and (if configured) its nonces.
//! A valid proof's key thumbprint goes into the access token (`cnf.jkt`, §6.1) and, for a
//! public client (or a confidential one if configured), into the refresh-token family (§5).
//!
//! ```text
//! POST /token                                HTTP/1.1 400 Bad Request
//! DPoP: <proof without nonce>          ──►   DPoP-Nonce: eyJ7S_zG.eyJH0-Z.HX4w-7v
//!                                            {"error":"use_dpop_nonce"}       (§8)
//! ```

use crate::AuthorizationServer;
use crate::config::DpopConfig;
use figure2_protocol::ErrorResponse;
use figure2_protocol::dpop::{self, NonceCheck, Nonces, ProofExpectations, ReplayCache, ValidatedProof};
use std::sync::Mutex;

/// The token endpoint's DPoP memory: the `jti`s it has seen and its nonces.
#[derive(Debug)]
pub(crate) struct DpopState {
    replay: ReplayCache,
    nonces: Mutex<Nonces>,
}

impl DpopState {
    pub(crate) fn new(config: &DpopConfig) -> Self {
        Self { replay: ReplayCache::new(config.jti_cache_size), nonces: Mutex::new(Nonces::new(config.nonce_lifetime)) }
    }
}

/// A token request's DPoP outcome: the refusal to send, with the nonce to send with it.
pub(crate) struct DpopRefusal {
    pub error: ErrorResponse,
    pub nonce: Option<String>,
}

impl AuthorizationServer {
    /// The nonce to send in `DPoP-Nonce` now, if nonces are on (§8.1).
    pub(crate) fn dpop_nonce(&self) -> Option<String> {
        if !self.config.dpop.nonce {
            return None;
        }
        let mut nonces = self.dpop.nonces.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(nonces.current(self.now(), crate::random_token))
    }

    /// RFC 9449 §4.3 at the token endpoint: `Ok(None)` without a `DPoP` header,
    /// `Ok(Some(proof))` for a valid proof, else `invalid_dpop_proof` or `use_dpop_nonce`.
    pub(crate) fn check_dpop_proof(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<ValidatedProof>, Box<DpopRefusal>> {
        let refuse = |rejection: dpop::DpopRejection| {
            tracing::info!(reason = %rejection, "DPoP proof refused");
            let nonce = (rejection == dpop::DpopRejection::UseNonce).then(|| self.dpop_nonce()).flatten();
            Box::new(DpopRefusal { error: rejection.to_error(), nonce })
        };
        let values: Vec<&str> =
            parts.headers.get_all(dpop::DPOP_HEADER).iter().map(|v| v.to_str().unwrap_or("")).collect();
        let Some(proof) = dpop::single_proof(&values).map_err(refuse)? else { return Ok(None) };
        let now = self.now();
        let token_endpoint = format!("{}/token", self.config.issuer);
        let accepts = |nonce: &str| {
            self.dpop.nonces.lock().unwrap_or_else(std::sync::PoisonError::into_inner).accepts(nonce, now)
        };
        let expect = ProofExpectations {
            // The handler sees POST only (read_form refused the rest).
            method: parts.method.as_str(),
            uri: &token_endpoint,
            now,
            max_age: self.config.dpop.proof_max_age,
            leeway: self.config.dpop.proof_leeway,
            allowed_algorithms: &dpop::SUPPORTED_ALGORITHMS,
            access_token: None,
            nonce: if self.config.dpop.nonce { NonceCheck::Required(&accepts) } else { NonceCheck::NotUsed },
        };
        dpop::validate_proof(proof, &expect, &self.dpop.replay).map(Some).map_err(refuse)
    }
}
