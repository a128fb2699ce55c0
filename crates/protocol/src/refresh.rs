//! RFC 6749 §6: refreshing an access token, steps G and H of Figure 2, with the refresh
//! token protections of RFC 9700 §4.14 (rotation and reuse detection).
//!
//! The authorization server MUST (§6):
//! - require client authentication for confidential clients and authenticate the client;
//! - validate that the refresh token was issued to the authenticated client;
//! - validate the refresh token;
//! - grant a scope no wider than originally granted ("equal or lesser").
//!
//! With rotation (`always_issue_new_refresh_token`) every refresh returns a new refresh
//! token and retires the presented one. RFC 9700 §4.14.2: if a retired token is presented
//! again, one of two parties is an attacker, so the server revokes the whole family (the
//! live token too) and both must go back to step A.
//!
//! This module holds the policy (data); [`crate::family`] applies it.

use crate::clock::UnixTime;

/// The refresh-token policy, in the option names users know from other servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Whether a new refresh token is issued on every refresh, retiring the old one
    /// (rotation, RFC 9700 §4.14.2). Default on.
    pub always_issue_new_refresh_token: bool,
    /// Lifetime of each refresh token from its issue, in seconds (`None`: no limit).
    pub refresh_token_lifetime: Option<u64>,
    /// Idle (sliding) lifetime: the family dies if unused this long.
    pub refresh_token_idle_lifetime: Option<u64>,
    /// Absolute lifetime of a family from the original grant (step B).
    pub refresh_token_absolute_lifetime: Option<u64>,
    /// Grace period after rotation in which the immediately previous token is still
    /// accepted (lost responses, concurrent refreshes). Default 0: none.
    pub refresh_token_reuse_interval: u64,
    /// Revoke the whole family when a retired token is replayed (RFC 9700 §4.14.2).
    pub revoke_family_on_reuse: bool,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            always_issue_new_refresh_token: true,
            refresh_token_lifetime: Some(14 * 24 * 3600),
            refresh_token_idle_lifetime: None,
            refresh_token_absolute_lifetime: None,
            refresh_token_reuse_interval: 0,
            revoke_family_on_reuse: true,
        }
    }
}

impl RefreshPolicy {
    /// When a refresh token issued at `now` in a family granted at `family_created_at`
    /// expires: its own lifetime, capped by the family's absolute lifetime.
    pub fn expiry_for_new_token(&self, now: UnixTime, family_created_at: UnixTime) -> Option<UnixTime> {
        let own = self.refresh_token_lifetime.map(|l| now.saturating_add(l));
        let family = self.refresh_token_absolute_lifetime.map(|l| family_created_at.saturating_add(l));
        match (own, family) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
