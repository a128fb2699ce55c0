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
//! This module holds the policy (data); the family state machine (`family.rs`) applies
//! it: the arrow points from the machine to its policy, never back.

use crate::clock::UnixTime;

/// What a detected reuse revokes (RFC 9700 §4.14.2 asks for the whole family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReuseRevokes {
    /// The family: the live token too, so both holders go back to step A (RFC 9700
    /// §4.14.2; oidc-provider, Hydra, Keycloak "Revoke Refresh Token", Kanidm, Auth0).
    #[default]
    Family,
    /// Only the presented token is forgotten; the live token keeps working.
    PresentedToken,
    /// Nothing: the replay is refused and that is all (Dex, Rauthy, Duende, MAS).
    Nothing,
}

impl ReuseRevokes {
    /// The name used in configuration files (`on_reuse = "family"`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Family => "family",
            Self::PresentedToken => "token",
            Self::Nothing => "nothing",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Family, Self::PresentedToken, Self::Nothing].into_iter().find(|r| r.name() == name)
    }
}

/// The refresh-token policy, in the option names users know from other servers. Every
/// product's policy is a value of this type (see [`crate::presets`]); the family machine
/// (`family.rs`) is the only code that reads it.
///
/// A *retired* token is accepted again (recovery from a lost response or a concurrent
/// refresh) only if it is an immediate predecessor of the live token and every recovery
/// limit that is set allows it:
/// - time: within `refresh_token_reuse_interval` seconds of its retirement (Hydra
///   `rotation_grace_period`, Auth0 "reuse interval", Rauthy, Dex `reuseInterval`);
/// - count: at most `refresh_token_max_reuse` times after its retirement (Keycloak
///   "Refresh Token Max Reuse", Hydra `rotation_grace_reuse_count`);
/// - use: while the access token issued with the live token has not been used
///   (matrix-authentication-service).
///
/// With no limit set (all zero / `None` / `false`) there is no recovery: every retired
/// token is reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshPolicy {
    /// Whether a new refresh token is issued on every refresh, retiring the old one
    /// (rotation, RFC 9700 §4.14.2). Default on. Public clients always rotate.
    pub always_issue_new_refresh_token: bool,
    /// Without `always_issue_new_refresh_token`: rotate anyway once this percentage of
    /// the token's lifetime has passed (oidc-provider rotates at 70 %). `None`: never.
    pub rotate_after_lifetime_percent: Option<u8>,
    /// Lifetime of each refresh token from its issue, in seconds (`None`: no limit).
    pub refresh_token_lifetime: Option<u64>,
    /// Idle (sliding) lifetime: the family dies if unused this long.
    pub refresh_token_idle_lifetime: Option<u64>,
    /// Absolute lifetime of a family from the original grant (step B).
    pub refresh_token_absolute_lifetime: Option<u64>,
    /// Time grace: seconds after rotation in which an immediate predecessor of the live
    /// token is still accepted (lost responses, concurrent refreshes). 0: no time window
    /// (then only a count or a use limit can allow a recovery).
    pub refresh_token_reuse_interval: u64,
    /// Count grace: how many times a retired token may be accepted again. `None`: no
    /// count limit (the other limits decide); `Some(0)`: never.
    pub refresh_token_max_reuse: Option<u32>,
    /// Usage-based recovery: accept an immediate predecessor while the access token
    /// issued with the live token has not been used (the authorization server learns of
    /// a use through RFC 7662 introspection).
    pub reuse_while_successor_unused: bool,
    /// Idempotent retry (Dex): a recovery returns the successor already issued instead
    /// of rotating again, and the live token presented within `refresh_token_reuse_interval`
    /// of its issue is not rotated. The successor is derived from its predecessor with
    /// a server key (HMAC-SHA-256), so nothing but digests is stored.
    pub reuse_returns_issued_successor: bool,
    /// What a detected reuse revokes.
    pub on_reuse: ReuseRevokes,
    /// Whether public clients (RFC 6749 §2.1) get refresh tokens at all (Spring
    /// Authorization Server gives them none).
    pub issue_refresh_tokens_to_public_clients: bool,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        Self {
            always_issue_new_refresh_token: true,
            rotate_after_lifetime_percent: None,
            refresh_token_lifetime: Some(14 * 24 * 3600),
            refresh_token_idle_lifetime: None,
            refresh_token_absolute_lifetime: None,
            refresh_token_reuse_interval: 0,
            refresh_token_max_reuse: None,
            reuse_while_successor_unused: false,
            reuse_returns_issued_successor: false,
            on_reuse: ReuseRevokes::Family,
            issue_refresh_tokens_to_public_clients: true,
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

    /// Whether any recovery of a retired token is possible under this policy.
    pub fn allows_recovery(&self) -> bool {
        self.refresh_token_max_reuse != Some(0)
            && (self.refresh_token_reuse_interval > 0
                || self.refresh_token_max_reuse.is_some()
                || self.reuse_while_successor_unused)
    }

    /// Whether a retired immediate predecessor of the live token may be accepted again:
    /// retired at `retired_at`, accepted `reuses` times since, the live token's access
    /// token used or not. Every limit that is set must allow it.
    pub fn allows_reuse(&self, retired_at: UnixTime, reuses: u32, successor_used: bool, now: UnixTime) -> bool {
        self.allows_recovery()
            && (self.refresh_token_reuse_interval == 0
                || now <= retired_at.saturating_add(self.refresh_token_reuse_interval))
            && self.refresh_token_max_reuse.is_none_or(|max| reuses < max)
            && !(self.reuse_while_successor_unused && successor_used)
    }

    /// Whether reuse revokes the family.
    pub fn revokes_family_on_reuse(&self) -> bool {
        self.on_reuse == ReuseRevokes::Family
    }
}
