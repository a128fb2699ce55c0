//! Secrets: access tokens, refresh tokens, authorization codes, client secrets, passwords.
//!
//! RFC 6749 §10.4 and §10.10: tokens must be unguessable (we use 256 bits from a CSPRNG,
//! supplied by the caller), and kept confidential in storage, so the authorization server
//! stores only a SHA-256 digest. A fast digest is the right tool here: the input is a
//! high-entropy random string, not a password, so there is nothing to brute-force.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret type: a string that never prints (`Debug` and `Display` show `[redacted]`)
/// and is not comparable with `==` (use `ct_eq`, constant time). The token types also
/// keep their JSON form (`#[serde(transparent)]`), so the wire format does not change.
macro_rules! secret_type {
    ($(#[$attr:meta])* $name:ident) => {
        $(#[$attr])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The secret itself, for putting on the wire.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Constant-time comparison.
            pub fn ct_eq(&self, other: &str) -> bool {
                constant_time_eq(self.0.as_bytes(), other.as_bytes())
            }

            /// Loggable stand-in (see [`fingerprint`]).
            pub fn fingerprint(&self) -> String {
                fingerprint(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

secret_type!(
    /// Any other secret, such as a resource owner's password (RFC 6749 §4.3.2).
    Secret
);
secret_type!(
    /// RFC 6749 §1.4: the credential presented to the resource server (steps C, E).
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    AccessToken
);
secret_type!(
    /// RFC 6749 §1.5: the credential presented to the authorization server for a new
    /// access token (step G).
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    RefreshToken
);
secret_type!(
    /// RFC 6749 §4.1.2: the one-time code the authorization endpoint returns (step A).
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    AuthorizationCode
);
secret_type!(
    /// RFC 6749 §2.3.1: the password of a confidential client.
    #[derive(serde::Serialize, serde::Deserialize)]
    #[serde(transparent)]
    ClientSecret
);

/// The SHA-256 digest of a token, the form in which tokens and client secrets are stored.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A short, non-reversible name for a token, safe for logs and traces: the first 8 hex
/// digits of its SHA-256 digest, e.g. `rt#3f9a12c0`.
pub fn fingerprint(token: &str) -> String {
    let d = digest(token);
    format!("{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Checks a presented client secret against its stored SHA-256 digest in constant time.
pub fn verify_secret_digest(presented: &str, stored: &TokenDigest) -> bool {
    constant_time_eq(&digest(presented), stored)
}

/// Encodes random bytes (from the caller's CSPRNG) as an opaque token: base64url without
/// padding, which is a valid RFC 6749 Appendix A.17 `refresh-token` (VSCHAR only).
pub fn encode_token(random: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// Parses a stored digest written as 64 hex digits (the form used in config files).
pub fn parse_digest_hex(hex: &str) -> Option<TokenDigest> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

pub fn digest_hex(token: &str) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret([redacted]) [redacted]");
        assert!(s.ct_eq("hunter2"));
        assert!(!s.ct_eq("hunter3"));
    }

    #[test]
    fn secrets_in_the_rfc_words_never_print_and_keep_their_json() {
        let t = RefreshToken::new("tGzv3JOkF0XG5Qx2TlKWIA");
        assert_eq!(format!("{t:?} {t}"), "RefreshToken([redacted]) [redacted]");
        assert_eq!(format!("{:?}", AccessToken::new("x")), "AccessToken([redacted])");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"tGzv3JOkF0XG5Qx2TlKWIA\"");
        let back: RefreshToken = serde_json::from_str("\"tGzv3JOkF0XG5Qx2TlKWIA\"").unwrap();
        assert!(back.ct_eq(t.expose()) && !back.ct_eq("other"));
    }

    #[test]
    fn digest_round_trip() {
        let hex = digest_hex("s3cret");
        assert_eq!(parse_digest_hex(&hex), Some(digest("s3cret")));
        assert!(verify_secret_digest("s3cret", &digest("s3cret")));
        assert!(!verify_secret_digest("s3cre", &digest("s3cret")));
        assert_eq!(parse_digest_hex("zz"), None);
    }

    #[test]
    fn tokens_are_vschar() {
        let t = encode_token(&[0xff; 32]);
        assert_eq!(t.len(), 43);
        assert!(t.chars().all(|c| ('\x20'..='\x7e').contains(&c)));
        assert_eq!(fingerprint(&t).len(), 8);
    }
}
