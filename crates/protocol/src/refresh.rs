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

use crate::clock::UnixTime;
use crate::error::{ErrorCode, ErrorResponse};
use crate::scope::Scope;

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

/// Where a stored refresh token stands in its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenStatus {
    /// The family's one live token.
    Active,
    /// Replaced by rotation at `at`. `predecessor_of_live` says whether it was retired
    /// by the issue of the family's current live token (only such a token may use the
    /// grace period: never one several generations old).
    Retired { at: UnixTime, predecessor_of_live: bool },
    /// Revoked: by RFC 7009, by reuse detection, or by a reused authorization code.
    Revoked,
}

/// What the server knows about a presented refresh token (looked up by its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenState {
    pub client_id: String,
    /// The scope of the original grant (§6 "originally granted by the resource owner").
    pub scope: Scope,
    pub status: RefreshTokenStatus,
    pub expires_at: Option<UnixTime>,
    /// When the family was last refreshed (for the idle lifetime).
    pub last_used_at: UnixTime,
}

impl RefreshTokenState {
    /// RFC 7662 §2.2 `active`: the token could be used right now (a token usable only
    /// through the grace period is not active).
    pub fn is_active(&self, now: UnixTime, policy: &RefreshPolicy) -> bool {
        self.status == RefreshTokenStatus::Active
            && check_refresh(Some(self), &self.client_id, None, now, policy).is_ok()
    }
}

/// The decision to answer step H.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGranted {
    /// The scope of the new access token: the requested one, or the original grant.
    pub access_token_scope: Scope,
    /// §6: "If a new refresh token is issued, the refresh token scope MUST be identical
    /// to that of the refresh token included by the client in the request."
    pub refresh_token_scope: Scope,
    /// Whether to issue a new refresh token and retire the presented one.
    pub rotate: bool,
    /// Accepted as the immediately previous token within the reuse interval.
    pub within_grace_period: bool,
}

/// Why a refresh was refused. Precise for logs and traces; on the wire all but
/// [`RefreshRejection::ScopeExceedsGrant`] are `invalid_grant` (§5.2), so an attacker
/// learns nothing about which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefreshRejection {
    #[error("unknown refresh token")]
    Unknown,
    #[error("refresh token was issued to another client")]
    IssuedToAnotherClient,
    #[error("refresh token has been revoked")]
    Revoked,
    #[error("refresh token was already used (rotated): reuse detected")]
    Reused,
    #[error("refresh token has expired")]
    Expired,
    #[error("refresh token family unused past its idle lifetime")]
    Idle,
    #[error("requested scope exceeds the scope originally granted")]
    ScopeExceedsGrant,
}

impl RefreshRejection {
    pub fn error_code(self) -> ErrorCode {
        match self {
            // §5.2 invalid_scope: "exceeds the scope granted by the resource owner".
            Self::ScopeExceedsGrant => ErrorCode::InvalidScope,
            _ => ErrorCode::InvalidGrant,
        }
    }

    pub fn to_error(self) -> ErrorResponse {
        let description = match self {
            Self::ScopeExceedsGrant => "requested scope exceeds the scope originally granted",
            // Do not tell which of the invalid_grant checks failed (RFC 9700 §4.14).
            _ => "refresh token is invalid, expired or revoked",
        };
        ErrorResponse::new(self.error_code(), description)
    }

    /// RFC 9700 §4.14.2: on reuse the server revokes the active refresh token too.
    pub fn revokes_family(self, policy: &RefreshPolicy) -> bool {
        self == Self::Reused && policy.revoke_family_on_reuse
    }
}

/// RFC 6749 §6: decides whether `client_id` may refresh with this token for `requested`
/// scope at `now`. Client authentication has already succeeded.
pub fn check_refresh(
    token: Option<&RefreshTokenState>,
    client_id: &str,
    requested: Option<&Scope>,
    now: UnixTime,
    policy: &RefreshPolicy,
) -> Result<RefreshGranted, RefreshRejection> {
    let token = token.ok_or(RefreshRejection::Unknown)?;
    // §6: "validate the refresh token ... was issued to the authenticated client".
    if token.client_id != client_id {
        return Err(RefreshRejection::IssuedToAnotherClient);
    }
    let within_grace_period = match token.status {
        RefreshTokenStatus::Active => false,
        RefreshTokenStatus::Revoked => return Err(RefreshRejection::Revoked),
        RefreshTokenStatus::Retired { at, predecessor_of_live } => {
            let interval = policy.refresh_token_reuse_interval;
            if predecessor_of_live && interval > 0 && now <= at.saturating_add(interval) {
                true
            } else {
                return Err(RefreshRejection::Reused);
            }
        }
    };
    // RFC 7519 §4.1.4 semantics: valid only *before* the expiry instant.
    if token.expires_at.is_some_and(|exp| now >= exp) {
        return Err(RefreshRejection::Expired);
    }
    if policy.refresh_token_idle_lifetime.is_some_and(|idle| now >= token.last_used_at.saturating_add(idle)) {
        return Err(RefreshRejection::Idle);
    }
    // §6: the scope "MUST NOT include any scope not originally granted by the resource
    // owner, and if omitted is treated as equal to the scope originally granted".
    let access_token_scope = match requested {
        Some(scope) if !scope.is_subset_of(&token.scope) => return Err(RefreshRejection::ScopeExceedsGrant),
        Some(scope) => scope.clone(),
        None => token.scope.clone(),
    };
    Ok(RefreshGranted {
        access_token_scope,
        refresh_token_scope: token.scope.clone(),
        rotate: policy.always_issue_new_refresh_token,
        within_grace_period,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(scope: &str) -> RefreshTokenState {
        RefreshTokenState {
            client_id: "c1".into(),
            scope: Scope::parse(scope).unwrap(),
            status: RefreshTokenStatus::Active,
            expires_at: Some(1_000),
            last_used_at: 0,
        }
    }

    fn check(
        t: &RefreshTokenState,
        client: &str,
        scope: Option<&str>,
        now: u64,
    ) -> Result<RefreshGranted, RefreshRejection> {
        let scope = scope.map(|s| Scope::parse(s).unwrap());
        check_refresh(Some(t), client, scope.as_ref(), now, &RefreshPolicy::default())
    }

    #[test]
    fn equal_or_lesser_scope() {
        let t = live("read write");
        let g = check(&t, "c1", Some("read"), 10).unwrap();
        assert_eq!(g.access_token_scope.to_string(), "read");
        assert_eq!(g.refresh_token_scope.to_string(), "read write");
        assert_eq!(check(&t, "c1", None, 10).unwrap().access_token_scope.to_string(), "read write");
        let err = check(&t, "c1", Some("read admin"), 10).unwrap_err();
        assert_eq!(err, RefreshRejection::ScopeExceedsGrant);
        assert_eq!(err.error_code(), ErrorCode::InvalidScope);
    }

    #[test]
    fn bound_to_client() {
        assert_eq!(check(&live("read"), "c2", None, 10), Err(RefreshRejection::IssuedToAnotherClient));
    }

    #[test]
    fn expiry_is_exclusive() {
        assert!(check(&live("read"), "c1", None, 999).is_ok());
        assert_eq!(check(&live("read"), "c1", None, 1_000), Err(RefreshRejection::Expired));
    }

    #[test]
    fn reuse_and_grace() {
        let mut t = live("read");
        t.status = RefreshTokenStatus::Retired { at: 100, predecessor_of_live: true };
        assert_eq!(check(&t, "c1", None, 100), Err(RefreshRejection::Reused));
        let grace = RefreshPolicy { refresh_token_reuse_interval: 10, ..RefreshPolicy::default() };
        let ok = check_refresh(Some(&t), "c1", None, 110, &grace).unwrap();
        assert!(ok.within_grace_period);
        assert_eq!(check_refresh(Some(&t), "c1", None, 111, &grace), Err(RefreshRejection::Reused));
        // Several generations old: never within grace.
        t.status = RefreshTokenStatus::Retired { at: 100, predecessor_of_live: false };
        assert_eq!(check_refresh(Some(&t), "c1", None, 101, &grace), Err(RefreshRejection::Reused));
        assert!(RefreshRejection::Reused.revokes_family(&grace));
        t.status = RefreshTokenStatus::Revoked;
        assert_eq!(check_refresh(Some(&t), "c1", None, 101, &grace), Err(RefreshRejection::Revoked));
    }

    #[test]
    fn idle_and_absolute_lifetimes() {
        let p = RefreshPolicy {
            refresh_token_lifetime: Some(100),
            refresh_token_absolute_lifetime: Some(150),
            refresh_token_idle_lifetime: Some(50),
            ..RefreshPolicy::default()
        };
        assert_eq!(p.expiry_for_new_token(0, 0), Some(100));
        assert_eq!(p.expiry_for_new_token(120, 0), Some(150));
        let mut t = live("read");
        t.last_used_at = 10;
        assert!(check_refresh(Some(&t), "c1", None, 59, &p).is_ok());
        assert_eq!(check_refresh(Some(&t), "c1", None, 60, &p), Err(RefreshRejection::Idle));
    }

    #[test]
    fn unknown_token_is_invalid_grant_without_detail() {
        let e = check_refresh(None, "c1", None, 0, &RefreshPolicy::default()).unwrap_err();
        assert_eq!(e.to_error().error, ErrorCode::InvalidGrant);
        assert_eq!(e.to_error().error_description.as_deref(), Some("refresh token is invalid, expired or revoked"));
    }
}
