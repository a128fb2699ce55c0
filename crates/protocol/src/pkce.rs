//! RFC 7636: Proof Key for Code Exchange, which binds the authorization code of step A to
//! the client that asked for it. RFC 9700 §2.1.1 makes it a MUST for public clients.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkceError {
    #[error("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~] (RFC 7636 §4.1)")]
    MalformedVerifier,
    #[error("code_challenge must be 43 characters of base64url (RFC 7636 §4.2)")]
    MalformedChallenge,
    #[error("code_challenge_method must be S256")]
    UnsupportedMethod,
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved`.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeVerifier(String);

impl std::fmt::Debug for CodeVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier([redacted])")
    }
}

fn is_unreserved(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

impl CodeVerifier {
    pub fn parse(s: &str) -> Result<Self, PkceError> {
        if (43..=128).contains(&s.len()) && s.chars().all(is_unreserved) {
            Ok(Self(s.to_owned()))
        } else {
            Err(PkceError::MalformedVerifier)
        }
    }

    /// A verifier from 32 random bytes (RFC 7636 §4.1 RECOMMENDS 32 octets, base64url).
    pub fn from_random(random: &[u8; 32]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(random))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 7636 §4.2: `S256`: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))).
    pub fn s256_challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// Validates the `code_challenge` and `code_challenge_method` of an authorization request.
/// Only `S256` is accepted: RFC 9700 §2.1.1 says clients SHOULD use it, and `plain` adds
/// nothing when S256 is available.
pub fn parse_challenge(challenge: &str, method: Option<&str>) -> Result<String, PkceError> {
    // RFC 7636 §4.3: the method defaults to "plain" when absent, which we do not support.
    if method != Some("S256") {
        return Err(PkceError::UnsupportedMethod);
    }
    if challenge.len() != 43 || !challenge.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(PkceError::MalformedChallenge);
    }
    Ok(challenge.to_owned())
}

/// RFC 7636 §4.6: the server recomputes the challenge from the verifier and compares.
pub fn verify(verifier: &CodeVerifier, challenge: &str) -> bool {
    crate::secret::constant_time_eq(verifier.s256_challenge().as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let v = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(v.s256_challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(verify(&v, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!verify(&v, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    }

    #[test]
    fn verifier_syntax() {
        assert!(CodeVerifier::parse(&"a".repeat(42)).is_err());
        assert!(CodeVerifier::parse(&"a".repeat(129)).is_err());
        assert!(CodeVerifier::parse(&format!("{}!", "a".repeat(42))).is_err());
        assert_eq!(CodeVerifier::from_random(&[7; 32]).as_str().len(), 43);
    }

    #[test]
    fn challenge_method() {
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(parse_challenge(c, Some("S256")).is_ok());
        assert_eq!(parse_challenge(c, None), Err(PkceError::UnsupportedMethod));
        assert_eq!(parse_challenge(c, Some("plain")), Err(PkceError::UnsupportedMethod));
        assert_eq!(parse_challenge("short", Some("S256")), Err(PkceError::MalformedChallenge));
    }
}
