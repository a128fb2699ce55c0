//! RFC 9449 DPoP at the token endpoint (steps A/G → B/H): the proof in the `DPoP`
//! header is checked by `figure2_protocol::dpop::validate_proof` against the token
//! endpoint's URL, this server's clock, its `jti` memory and (if configured) its nonces.
//! A valid proof's key thumbprint goes into the access token (`cnf.jkt`, §6.1) and, for a
//! public client (or a confidential one if configured), into the refresh-token family (§5).
//!
//! **Several instances** (a shared store, PostgreSQL): nonces are derived, not drawn —
//! HMAC-SHA-256 under a server secret kept in the store, of the nonce lifetime's window
//! number — so every instance issues the same nonce and accepts the others'. A `jti` is
//! checked in this instance's memory first and then in the store, so a proof replayed at
//! another instance is refused too (§11.1).
//!
//! ```text
//! POST /token                                HTTP/1.1 400 Bad Request
//! DPoP: <proof without nonce>          ──►   DPoP-Nonce: eyJ7S_zG.eyJH0-Z.HX4w-7v
//!                                            {"error":"use_dpop_nonce"}       (§8)
//! ```

use crate::AuthorizationServer;
use crate::config::DpopConfig;
use figure2_protocol::ErrorResponse;
use figure2_protocol::dpop::{self, NonceCheck, ProofExpectations, ReplayCache, ValidatedProof};
use figure2_protocol::secret::digest;

/// The token endpoint's DPoP memory: the `jti`s it has seen and the key its nonces are
/// derived with.
pub(crate) struct DpopState {
    replay: ReplayCache,
    nonce_key: aws_lc_rs::hmac::Key,
    nonce_lifetime: u64,
}

impl std::fmt::Debug for DpopState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopState").field("nonce_lifetime", &self.nonce_lifetime).finish_non_exhaustive()
    }
}

impl DpopState {
    /// `nonce_secret`: the store's `dpop-nonce` server secret (shared by every instance).
    pub(crate) fn new(config: &DpopConfig, nonce_secret: &[u8; 32]) -> Self {
        Self {
            replay: ReplayCache::new(config.jti_cache_size),
            nonce_key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, nonce_secret),
            nonce_lifetime: config.nonce_lifetime.max(1),
        }
    }

    /// The nonce of window `window` (`now / nonce_lifetime`).
    fn nonce_of(&self, window: u64) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.nonce_key, &window.to_be_bytes());
        figure2_protocol::secret::encode_token(&tag.as_ref()[..16])
    }

    /// §8.1: the nonce to send now; a new one every `nonce_lifetime` seconds.
    fn current_nonce(&self, now: u64) -> String {
        self.nonce_of(dpop::nonce_window(now, self.nonce_lifetime))
    }

    /// §8.2: the current nonce or the one before it (so a nonce is accepted for one to two
    /// lifetimes after it was first sent).
    fn accepts(&self, nonce: &str, now: u64) -> bool {
        dpop::accepted_nonce_windows(now, self.nonce_lifetime)
            .any(|w| figure2_protocol::secret::constant_time_eq(self.nonce_of(w).as_bytes(), nonce.as_bytes()))
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
        Some(self.dpop.current_nonce(self.now()))
    }

    /// [`AuthorizationServer::check_dpop_proof_here`], then, over a store other instances
    /// share, the `jti` in the store: a proof already used at another instance is a
    /// replay (§11.1). Fails closed: if the store cannot tell, the proof is refused.
    pub(crate) async fn check_dpop_proof(
        &self,
        parts: &http::request::Parts,
    ) -> Result<Option<ValidatedProof>, Box<DpopRefusal>> {
        let proof = self.check_dpop_proof_here(parts)?;
        if let Some(valid) = &proof
            && self.store.shared()
        {
            let until = valid.claims.iat.whole_seconds().saturating_add(self.config.dpop.proof_max_age);
            let first = self.store.first_dpop_jti_use(digest(&valid.claims.jti), until, self.now()).await;
            if !matches!(first, Ok(true)) {
                if let Err(e) = &first {
                    tracing::error!(error = %e, "could not record a DPoP proof's jti; refusing the proof");
                }
                tracing::info!(reason = %dpop::DpopRejection::Replayed, "DPoP proof refused");
                return Err(Box::new(DpopRefusal { error: dpop::DpopRejection::Replayed.to_error(), nonce: None }));
            }
        }
        Ok(proof)
    }

    /// RFC 9449 §4.3 at the token endpoint, with this instance's `jti` memory:
    /// `Ok(None)` without a `DPoP` header, `Ok(Some(proof))` for a valid proof, else
    /// `invalid_dpop_proof` or `use_dpop_nonce`.
    fn check_dpop_proof_here(&self, parts: &http::request::Parts) -> Result<Option<ValidatedProof>, Box<DpopRefusal>> {
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
        let accepts = |nonce: &str| self.dpop.accepts(nonce, now);
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
