//! The tokens the client holds between steps B and H (RFC 6749 §5.1).

use figure2_protocol::secret::{AccessToken, RefreshToken};
use figure2_protocol::{Scope, UnixTime};

/// The client's current tokens. `Debug` never shows them ([`AccessToken`] and [`RefreshToken`] print `[redacted]`).
#[derive(Clone, Debug)]
pub struct TokenSet {
    pub access_token: AccessToken,
    /// Absent when the server issued none (e.g. RFC 6749 §4.4.3, client credentials).
    pub refresh_token: Option<RefreshToken>,
    /// `now + expires_in` when the token arrived; `None` if the server did not say.
    pub expires_at: Option<UnixTime>,
    /// The scope granted (RFC 6749 §3.3), if known.
    pub scope: Option<Scope>,
    /// Bumps on every new access token; lets concurrent callers refresh only once.
    pub generation: u64,
    /// RFC 9449 §5: the access token is DPoP-bound (`token_type: DPoP`): it goes to the
    /// resource server with the `DPoP` scheme and a proof.
    pub dpop_bound: bool,
}

impl TokenSet {
    /// Whether the client *knows* the access token expired (RFC 6749 §1.5 (E): then it
    /// "skips to step (G)"), treating it as expired `margin` seconds early.
    pub fn is_expired(&self, now: UnixTime, margin: u64) -> bool {
        self.expires_at.is_some_and(|at| now.saturating_add(margin) >= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(expires_at: Option<UnixTime>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new("at"),
            refresh_token: Some(RefreshToken::new("rt")),
            expires_at,
            scope: None,
            generation: 1,
            dpop_bound: false,
        }
    }

    #[test]
    fn expiry_with_margin() {
        let t = tokens(Some(1_000));
        assert!(!t.is_expired(999, 0));
        assert!(t.is_expired(1_000, 0));
        assert!(t.is_expired(990, 10));
        assert!(!t.is_expired(989, 10));
        assert!(!tokens(None).is_expired(u64::MAX, 0));
    }

    #[test]
    fn debug_is_redacted() {
        let s = format!("{:?}", tokens(None));
        assert!(!s.contains("\"at\"") && !s.contains("\"rt\""), "{s}");
        assert!(s.contains("[redacted]"));
    }
}
