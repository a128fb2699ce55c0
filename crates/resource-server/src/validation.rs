//! RFC 9068 §4: validating a JWT access token locally, in the order that spends the least
//! work on a bad token: size, header, key, signature, then claims.

use crate::ResourceServer;
use crate::keys::{KeyLookup, VerificationKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use figure2_protocol::access_token::{self, AccessTokenClaims, AccessTokenRejection, Expectations};
use jsonwebtoken::Algorithm;
use jsonwebtoken::errors::ErrorKind;
use std::sync::Arc;

/// Why the resource server refused an access token. Every variant is `invalid_token` on
/// the wire (RFC 6750 §3.1); the precise reason goes to the log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    #[error("token exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// RFC 7515 §4.1.11: a `crit` header names extensions the recipient MUST understand;
    /// this server understands none.
    #[error("crit header names extensions this server does not understand (RFC 7515 §4.1.11)")]
    UnsupportedCritical,
    #[error("the key with this kid is not for the header's alg (RFC 8725 §3.1)")]
    KeyAlgorithmMismatch,
    #[error(transparent)]
    Token(#[from] AccessTokenRejection),
}

impl TokenRejection {
    /// A stable name for logs and traces (`reason_code`): `too_large`,
    /// `unsupported_critical`, `key_algorithm_mismatch`, or the
    /// [`AccessTokenRejection::code`] of the token's own fault.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::UnsupportedCritical => "unsupported_critical",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::Token(r) => r.code(),
        }
    }

    /// The short `error_description` sent with `invalid_token` (RFC 6750 §3).
    pub fn description(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "The access token is too large",
            Self::UnsupportedCritical => "The access token uses unsupported critical header parameters",
            Self::KeyAlgorithmMismatch => "The access token algorithm does not match its key",
            Self::Token(r) => match r {
                AccessTokenRejection::Malformed => "The access token is malformed",
                AccessTokenRejection::WrongType => "The token is not a JWT access token (typ must be at+jwt)",
                AccessTokenRejection::AlgorithmNotAllowed => "The access token algorithm is not accepted",
                AccessTokenRejection::UnknownKey => "The access token was signed with an unknown key",
                AccessTokenRejection::BadSignature => "The access token signature is invalid",
                // RFC 6750 §3's own example description.
                AccessTokenRejection::Expired => "The access token expired",
                AccessTokenRejection::NotYetValid => "The access token is not yet valid",
                AccessTokenRejection::IssuedInFuture => "The access token was issued in the future",
                AccessTokenRejection::WrongIssuer => "The access token was issued by another issuer",
                AccessTokenRejection::WrongAudience => "The access token is not meant for this resource server",
            },
        }
    }
}

impl ResourceServer {
    /// Steps D/F: validates `token` locally (no call to the authorization server) and
    /// returns its claims. The scope check is the caller's, as it depends on the resource.
    pub async fn validate_access_token(&self, token: &str) -> Result<AccessTokenClaims, TokenRejection> {
        self.validate(token).await.map(Arc::unwrap_or_clone)
    }

    /// [`Self::validate_access_token`], with the claims shared with the verified-token cache.
    pub(crate) async fn validate(&self, token: &str) -> Result<Arc<AccessTokenClaims>, TokenRejection> {
        let config = &self.config;
        if token.len() > config.max_token_bytes {
            return Err(TokenRejection::TooLarge { limit: config.max_token_bytes });
        }
        let expect = Expectations {
            issuer: &config.issuer,
            audience: &config.audience,
            allowed_algorithms: &config.allowed_algorithms,
            leeway: config.leeway,
        };
        // A token verified before with these keys: only the claim checks can answer
        // differently now (see `crate::verified`).
        let digest = figure2_protocol::secret::digest(token);
        // A stale key set is fetched again first: a key the issuer stopped publishing
        // must stop verifying (see `crate::discovery`).
        let mut keys = self.fresh_keys().await;
        if let Some(claims) = self.verified.get(&digest, keys.id()) {
            return match access_token::check_claims(&claims, &expect, self.clock.now()) {
                Ok(()) => Ok(claims),
                Err(rejection) => {
                    self.verified.remove(&digest);
                    Err(rejection.into())
                }
            };
        }
        // Fails for any alg jsonwebtoken does not know, `none` included (RFC 9068 §4
        // forbids `none`).
        let header = jsonwebtoken::decode_header(token).map_err(|_| undecodable_header(token))?;
        // RFC 9068 §4: typ must be at+jwt, alg must be one we accept.
        access_token::check_header(&header, &config.allowed_algorithms)?;
        if header.crit.is_some() {
            return Err(TokenRejection::UnsupportedCritical);
        }
        // RFC 9068 §4: the signature is checked with the issuer's keys, found by kid. The
        // header's jku/jwk/x5u are never followed: keys come only from the discovered jwks_uri.
        let kid = header.kid.as_deref().ok_or(AccessTokenRejection::UnknownKey)?;
        if matches!(keys.find(kid, header.alg), KeyLookup::UnknownKid) {
            // The issuer may have rotated its signing key since our last fetch.
            keys = self.keys_after_refetch(kid).await;
        }
        let key = match keys.find(kid, header.alg) {
            KeyLookup::Found(key) => key,
            KeyLookup::UnknownKid => return Err(AccessTokenRejection::UnknownKey.into()),
            KeyLookup::AlgorithmMismatch => return Err(TokenRejection::KeyAlgorithmMismatch),
        };
        let claims = verify_signature(token, key, header.alg)?;
        // RFC 9068 §4: iss, aud, exp (and nbf, iat) against the injected clock.
        access_token::check_claims(&claims, &expect, self.clock.now())?;
        let claims = Arc::new(claims);
        self.verified.insert(digest, claims.clone(), keys.id());
        Ok(claims)
    }
}

/// Verifies the signature and deserialises the claims: what `jsonwebtoken::decode` does
/// with its time and audience checks off (`check_claims` does them, against the injected
/// clock), in the same order with the same outcomes, but reading the header and the claims
/// once each (`decode` parses the header twice and the claims twice) and, for ES256, with
/// the key parsed once (performance).
fn verify_signature(token: &str, key: &VerificationKey, alg: Algorithm) -> Result<AccessTokenClaims, TokenRejection> {
    // JWS compact serialization (RFC 7515 §7.1), split at the last two dots as jsonwebtoken does.
    let (message, signature) = token.rsplit_once('.').ok_or(AccessTokenRejection::Malformed)?;
    let (_, payload) = message.rsplit_once('.').ok_or(AccessTokenRejection::Malformed)?;
    let verified = match &key.parsed_es256 {
        Some(parsed) if alg == Algorithm::ES256 => {
            let signature = URL_SAFE_NO_PAD.decode(signature).map_err(malformed)?;
            parsed.verify_sig(message.as_bytes(), &signature).is_ok()
        }
        _ => {
            jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key.key, alg).map_err(|e| match e.kind() {
                ErrorKind::InvalidAlgorithm
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidEcdsaKey
                | ErrorKind::InvalidEddsaKey
                | ErrorKind::InvalidRsaKey(_) => AccessTokenRejection::BadSignature.into(),
                // Bad base64.
                _ => TokenRejection::from(AccessTokenRejection::Malformed),
            })?
        }
    };
    if !verified {
        return Err(AccessTokenRejection::BadSignature.into());
    }
    // Bad base64, bad JSON, or claims missing a member RFC 9068 §2.2 requires.
    let claims = URL_SAFE_NO_PAD.decode(payload).map_err(malformed)?;
    serde_json::from_slice(&claims).map_err(malformed)
}

fn malformed<E>(_: E) -> TokenRejection {
    AccessTokenRejection::Malformed.into()
}

/// Names the reason a header did not decode, for the log: an `alg` jsonwebtoken does not
/// know (such as `none`) is a refused algorithm, anything else is a malformed token.
fn undecodable_header(token: &str) -> TokenRejection {
    let alg_is_unknown_string = access_token::decode_unverified(token)
        .is_some_and(|(header, _)| header.get("alg").is_some_and(serde_json::Value::is_string));
    if alg_is_unknown_string {
        AccessTokenRejection::AlgorithmNotAllowed.into()
    } else {
        AccessTokenRejection::Malformed.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_valid_error_text() {
        let all = [
            TokenRejection::TooLarge { limit: 1 },
            TokenRejection::UnsupportedCritical,
            TokenRejection::KeyAlgorithmMismatch,
            AccessTokenRejection::Malformed.into(),
            AccessTokenRejection::WrongType.into(),
            AccessTokenRejection::AlgorithmNotAllowed.into(),
            AccessTokenRejection::UnknownKey.into(),
            AccessTokenRejection::BadSignature.into(),
            AccessTokenRejection::Expired.into(),
            AccessTokenRejection::NotYetValid.into(),
            AccessTokenRejection::IssuedInFuture.into(),
            AccessTokenRejection::WrongIssuer.into(),
            AccessTokenRejection::WrongAudience.into(),
        ];
        for r in all {
            // RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
            assert!(r.description().chars().all(figure2_protocol::error::is_error_text_char), "{r:?}");
        }
    }

    #[test]
    fn alg_none_header_is_named_as_a_refused_algorithm() {
        // {"alg":"none","typ":"at+jwt"} . {"sub":"x"} . (empty signature)
        let token = "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.";
        assert!(jsonwebtoken::decode_header(token).is_err());
        assert_eq!(undecodable_header(token), AccessTokenRejection::AlgorithmNotAllowed.into());
        assert_eq!(undecodable_header("not.a.jwt"), AccessTokenRejection::Malformed.into());
    }
}
