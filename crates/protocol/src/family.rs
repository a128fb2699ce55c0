//! The refresh-token family as a sans-IO state machine: everything steps G and H decide
//! about a refresh token, in one place.
//!
//! A *family* is one grant (step B) and the chain of refresh tokens issued for it: with
//! rotation each refresh (G → H) retires the presented token and issues its successor
//! (RFC 9700 §4.14.2). [`RefreshTokenFamily`] holds what the authorization server knows
//! about a family; [`RefreshTokenFamily::refresh`] takes one event — a token presented
//! by a client for a scope at `now`, under a [`RefreshPolicy`] — and returns the
//! [`Transition`]: the decision that answers step H and the [`FamilyEffect`]s to
//! persist. It never reads a clock, a database or the network. A store applies the
//! effects inside its transaction and decides nothing; [`RefreshTokenFamily::apply`]
//! replays them in memory (the runner's lineage, the model tests).
//!
//! ```text
//!   G: client presents rt#n ──► family.refresh(presented, request, policy)
//!                                   │
//!          ┌────────────────────────┴─────────────────────────┐
//!     decision (step H)                              effects (persisted, then H is sent)
//!     Ok(scope, new token)   or                      RetireLive, IssueLive, SetGraceFloor,
//!     Err(RefreshRejection → invalid_grant)          Touch, Revoke, RecordReuse,
//!                                                    ForgetPresented, AccessTokenUsed,
//!                                                    DiscardLive
//! ```
//!
//! Recovery (a retired token accepted again) and what reuse revokes are data of the
//! [`RefreshPolicy`]: time, count and use limits, idempotent retries, the blast radius.
//! Products' policies are values of it ([`crate::presets`]), never branches here.

use crate::clock::UnixTime;
use crate::error::{ErrorCode, ErrorResponse};
use crate::refresh::{RefreshPolicy, ReuseRevokes};
use crate::scope::Scope;
use crate::secret::TokenDigest;

/// 0 for the refresh token of step B, then one more per rotation.
pub type Generation = u64;

/// The grant at the root of a family: who authorized which client for what (step B).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub client_id: String,
    /// The resource owner (`sub`).
    pub subject: String,
    /// The scope the resource owner granted: every refresh token of the family carries it
    /// (RFC 6749 §6: "identical to that of the refresh token included by the client").
    pub scope: Scope,
    /// RFC 9449 §5: the RFC 7638 thumbprint of the DPoP key the family's refresh tokens
    /// are bound to (`None`: not bound). Set at step B, never changed: every refresh
    /// must prove possession of this key.
    pub dpop_jkt: Option<String>,
}

/// The family's one live refresh token, known by its SHA-256 digest only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveToken {
    pub digest: TokenDigest,
    pub generation: Generation,
    pub issued_at: UnixTime,
    /// `None`: no lifetime of its own.
    pub expires_at: Option<UnixTime>,
    /// Digest of the `jti` of the access token issued with it (`None` for tokens of
    /// step B and of older releases): how introspection finds the family.
    pub access_token_id: Option<TokenDigest>,
    /// Whether that access token was seen in use (RFC 7662 introspection): ends
    /// usage-based recovery ([`RefreshPolicy::reuse_while_successor_unused`]).
    pub access_token_used: bool,
}

/// Why a family was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub at: UnixTime,
    pub reason: String,
}

/// Reasons the machine gives to [`FamilyEffect::Revoke`] (stores keep them as text).
pub mod reason {
    /// RFC 9700 §4.14.2: a retired refresh token was presented again.
    pub const REUSE_DETECTED: &str = "refresh token reuse detected";
    /// The resource owner is no longer registered: the grant died with them.
    pub const SUBJECT_REMOVED: &str = "resource owner no longer registered";
    /// RFC 7009 §2.1: the client revoked the refresh token.
    pub const REVOKED_BY_CLIENT: &str = "revoked (RFC 7009)";
    /// RFC 6749 §4.1.2: the authorization code that made the family was used twice.
    pub const CODE_REUSED: &str = "authorization code reused";
}

/// What the authorization server knows about one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenFamily {
    pub grant: Grant,
    /// When the grant was made (step B): the start of the absolute lifetime.
    pub created_at: UnixTime,
    /// When the family was last refreshed (or created): the start of the idle lifetime.
    pub last_used_at: UnixTime,
    /// `None` when the client was issued no refresh token.
    pub live: Option<LiveToken>,
    /// Retired tokens of this generation or later are the *immediate predecessors* of the
    /// live token: only they may use the grace period, never a token several rotations
    /// old. An ordinary rotation moves the floor to the token it retires; a refresh within
    /// grace leaves it, so every predecessor keeps its own grace window.
    pub grace_floor: Generation,
    pub revoked: Option<Revocation>,
}

/// What the store found under the presented token's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresentedToken {
    pub generation: Generation,
    pub expires_at: Option<UnixTime>,
    /// When rotation retired it; `None` while it is the live token.
    pub retired_at: Option<UnixTime>,
    /// How many times it was accepted again after its retirement (count grace).
    pub reuses: u32,
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

/// The decision to answer step H.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGranted {
    /// The scope of the new access token: the requested one, or the original grant.
    pub access_token_scope: Scope,
    /// §6: "If a new refresh token is issued, the refresh token scope MUST be identical
    /// to that of the refresh token included by the client in the request."
    pub refresh_token_scope: Scope,
    /// The new refresh token, when the refresh rotates (the presented one is retired).
    pub new_refresh_token: Option<LiveToken>,
    /// Accepted as an immediate predecessor of the live token (recovery).
    pub within_grace_period: bool,
    /// `new_refresh_token` is the successor already issued, handed back again
    /// (idempotent retry, [`RefreshPolicy::reuse_returns_issued_successor`]): nothing
    /// rotated, and the server re-derives the token from the presented one.
    pub reissued: bool,
}

/// Why a refresh was refused. Precise for logs and traces; on the wire all but
/// the two scope rejections are `invalid_grant` (§5.2), so an attacker
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
    #[error("the client may no longer be granted this scope")]
    ScopeExceedsClientRegistration,
    #[error("the resource owner is no longer registered")]
    SubjectRemoved,
    #[error("refresh token is DPoP-bound and the request carried no DPoP proof")]
    DpopProofMissing,
    #[error("refresh token is bound to another DPoP key")]
    DpopKeyMismatch,
}

impl RefreshRejection {
    /// Every reason, for tools that name them (the trace, its translations).
    pub const ALL: [Self; 11] = [
        Self::Unknown,
        Self::IssuedToAnotherClient,
        Self::Revoked,
        Self::Reused,
        Self::Expired,
        Self::Idle,
        Self::ScopeExceedsGrant,
        Self::ScopeExceedsClientRegistration,
        Self::SubjectRemoved,
        Self::DpopProofMissing,
        Self::DpopKeyMismatch,
    ];

    /// A stable name for logs and traces (`reason_code`), unlike the English `Display`.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::IssuedToAnotherClient => "issued_to_another_client",
            Self::Revoked => "revoked",
            Self::Reused => "reused",
            Self::Expired => "expired",
            Self::Idle => "idle",
            Self::ScopeExceedsGrant => "scope_exceeds_grant",
            Self::ScopeExceedsClientRegistration => "scope_exceeds_client_registration",
            Self::SubjectRemoved => "subject_removed",
            Self::DpopProofMissing => "dpop_proof_missing",
            Self::DpopKeyMismatch => "dpop_key_mismatch",
        }
    }

    /// The reason a [`RefreshRejection::code`] names.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }
}

impl RefreshRejection {
    pub fn error_code(self) -> ErrorCode {
        match self {
            // §5.2 invalid_scope: "exceeds the scope granted by the resource owner".
            Self::ScopeExceedsGrant | Self::ScopeExceedsClientRegistration => ErrorCode::InvalidScope,
            _ => ErrorCode::InvalidGrant,
        }
    }

    pub fn to_error(self) -> ErrorResponse {
        let description = match self {
            Self::ScopeExceedsGrant => "requested scope exceeds the scope originally granted",
            Self::ScopeExceedsClientRegistration => "the client may no longer be granted this scope",
            // Do not tell which of the invalid_grant checks failed (RFC 9700 §4.14).
            _ => "refresh token is invalid, expired or revoked",
        };
        ErrorResponse::new(self.error_code(), description)
    }
}

/// The client's registration as it is *now* (not as it was at step B): a refresh never
/// yields more than the current registration allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    pub client_id: String,
    /// The most this client may be granted today.
    pub scope: Scope,
    /// A public client (RFC 6749 §2.1): no credentials.
    pub public: bool,
}

/// One presentation of a refresh token (step G), after client authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRequest {
    /// The authenticated client, as registered now.
    pub client: ClientRegistration,
    /// Whether the family's resource owner is still registered.
    pub subject_registered: bool,
    /// The `scope` parameter of the request, if any.
    pub requested_scope: Option<Scope>,
    /// RFC 9449: the RFC 7638 thumbprint of the key of the request's valid DPoP proof,
    /// if it carried one (the token endpoint has checked the proof itself).
    pub dpop_jkt: Option<String>,
    /// The digest of the replacement token the server drew for this request; stored as
    /// the live token if the refresh rotates, discarded otherwise.
    pub replacement: TokenDigest,
    /// The digest of the `jti` of the access token this refresh will issue.
    pub access_token_id: Option<TokenDigest>,
    pub now: UnixTime,
}

/// A write the decision requires. Stores apply every effect of a transition in one
/// transaction, and step H goes out only after it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FamilyEffect {
    /// Rotation: the live token (`digest`) is retired at `at`.
    RetireLive { digest: TokenDigest, generation: Generation, at: UnixTime },
    /// A new live token.
    IssueLive(LiveToken),
    /// See [`RefreshTokenFamily::grace_floor`].
    SetGraceFloor(Generation),
    /// The family was used at `at` (idle lifetime).
    Touch { at: UnixTime },
    /// The whole family is revoked: every token of it, live or retired, is refused from now on.
    Revoke { at: UnixTime, reason: &'static str },
    /// The presented (retired) token was accepted again: it has now been reused `reuses`
    /// times (count grace).
    RecordReuse { reuses: u32 },
    /// Reuse revokes only the presented token: the store forgets it (then it is unknown).
    ForgetPresented,
    /// The live token's access token was seen in use (ends usage-based recovery).
    AccessTokenUsed { at: UnixTime },
    /// Usage-based recovery: the live token, never used, is forgotten (not retired).
    DiscardLive { digest: TokenDigest, generation: Generation },
}

/// The outcome of one event: the answer of step H and what to persist before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub decision: Result<RefreshGranted, RefreshRejection>,
    pub effects: Vec<FamilyEffect>,
}

impl Transition {
    fn refused(rejection: RefreshRejection) -> Self {
        Self { decision: Err(rejection), effects: Vec::new() }
    }

    /// Whether the transition revokes the family.
    pub fn revokes_family(&self) -> bool {
        self.effects.iter().any(|e| matches!(e, FamilyEffect::Revoke { .. }))
    }
}

impl RefreshTokenFamily {
    /// Step B: a new family, with its first refresh token if the client gets one.
    pub fn new(grant: Grant, first: Option<(TokenDigest, Option<UnixTime>)>, now: UnixTime) -> Self {
        Self {
            grant,
            created_at: now,
            last_used_at: now,
            live: first.map(|(digest, expires_at)| LiveToken {
                digest,
                generation: 0,
                issued_at: now,
                expires_at,
                access_token_id: None,
                access_token_used: false,
            }),
            grace_floor: 0,
            revoked: None,
        }
    }

    /// Where the presented token stands in this family.
    pub fn status_of(&self, presented: &PresentedToken) -> RefreshTokenStatus {
        if self.revoked.is_some() {
            return RefreshTokenStatus::Revoked;
        }
        match (presented.retired_at, self.live) {
            (None, Some(live)) if live.generation == presented.generation => RefreshTokenStatus::Active,
            (at, live) => RefreshTokenStatus::Retired {
                at: at.unwrap_or(0),
                // Only a token retired by the issue of the live token may use grace.
                predecessor_of_live: live.is_some_and(|live| {
                    presented.generation >= self.grace_floor && presented.generation < live.generation
                }),
            },
        }
    }

    /// RFC 6749 §6, steps G → H: decides a refresh and lists the writes it needs.
    ///
    /// The checks run in this order, and the first that fails decides:
    /// 1. §6: the token was issued to the authenticated client;
    /// 2. RFC 9449 §5: a DPoP-bound family's token comes with a proof of its key. Checked
    ///    before reuse detection, without effects: a thief without the key can neither use
    ///    the token nor get the holder's family revoked;
    /// 3. the family is not revoked;
    /// 4. the resource owner is still registered (else the family is revoked);
    /// 5. RFC 9700 §4.14.2: a retired token is reuse (the family is revoked if the policy
    ///    says so), unless it is an immediate predecessor of the live token within the
    ///    grace period;
    /// 6. the token's lifetime and the family's idle lifetime;
    /// 7. §6: the scope is "equal or lesser" than the grant, and within what the client
    ///    may be granted today.
    pub fn refresh(&self, presented: &PresentedToken, request: &RefreshRequest, policy: &RefreshPolicy) -> Transition {
        let now = request.now;
        // §6: "validate the refresh token ... was issued to the authenticated client".
        if self.grant.client_id != request.client.client_id {
            return Transition::refused(RefreshRejection::IssuedToAnotherClient);
        }
        // RFC 9449 §5: a refresh token bound to a DPoP key MUST be used with a proof of
        // possession of that key; "invalid_grant" otherwise.
        if let Some(bound) = &self.grant.dpop_jkt {
            match &request.dpop_jkt {
                None => return Transition::refused(RefreshRejection::DpopProofMissing),
                Some(jkt) if !crate::secret::constant_time_eq(jkt.as_bytes(), bound.as_bytes()) => {
                    return Transition::refused(RefreshRejection::DpopKeyMismatch);
                }
                Some(_) => {}
            }
        }
        let within_grace_period = match self.status_of(presented) {
            RefreshTokenStatus::Revoked => return Transition::refused(RefreshRejection::Revoked),
            _ if !request.subject_registered => {
                // The grant cannot outlive its resource owner: refuse and end the family.
                return Transition {
                    decision: Err(RefreshRejection::SubjectRemoved),
                    effects: vec![FamilyEffect::Revoke { at: now, reason: reason::SUBJECT_REMOVED }],
                };
            }
            RefreshTokenStatus::Active => false,
            RefreshTokenStatus::Retired { at, predecessor_of_live } => {
                let successor_used = self.live.is_some_and(|live| live.access_token_used);
                if predecessor_of_live && policy.allows_reuse(at, presented.reuses, successor_used, now) {
                    true
                } else {
                    // RFC 9700 §4.14.2: one of the two holders is an attacker; revoke the
                    // active refresh token too, so both must go back to step A (or less,
                    // if the policy says so).
                    let effects = match policy.on_reuse {
                        ReuseRevokes::Family => vec![FamilyEffect::Revoke { at: now, reason: reason::REUSE_DETECTED }],
                        ReuseRevokes::PresentedToken => vec![FamilyEffect::ForgetPresented],
                        ReuseRevokes::Nothing => Vec::new(),
                    };
                    return Transition { decision: Err(RefreshRejection::Reused), effects };
                }
            }
        };
        // RFC 7519 §4.1.4 semantics: valid only *before* the expiry instant.
        if presented.expires_at.is_some_and(|exp| now >= exp) {
            return Transition::refused(RefreshRejection::Expired);
        }
        if policy.refresh_token_idle_lifetime.is_some_and(|idle| now >= self.last_used_at.saturating_add(idle)) {
            return Transition::refused(RefreshRejection::Idle);
        }
        let access_token_scope = match self.scope_for(request) {
            Ok(scope) => scope,
            Err(rejection) => return Transition::refused(rejection),
        };
        let mut effects = Vec::with_capacity(4);
        if within_grace_period && policy.refresh_token_max_reuse.is_some() {
            effects.push(FamilyEffect::RecordReuse { reuses: presented.reuses.saturating_add(1) });
        }
        if within_grace_period && policy.reuse_returns_issued_successor {
            // Idempotent retry (Dex): the successor already issued, again; nothing rotates
            // and the family is not touched (the retry is not a new use).
            return Transition {
                decision: Ok(RefreshGranted {
                    access_token_scope,
                    refresh_token_scope: self.grant.scope.clone(),
                    new_refresh_token: self.live,
                    within_grace_period,
                    reissued: true,
                }),
                effects,
            };
        }
        let rotate = self.rotates(policy, request);
        let mut new_refresh_token = None;
        if rotate {
            let next = self.live.map_or(presented.generation, |live| live.generation.max(presented.generation)) + 1;
            if let Some(live) = self.live
                && within_grace_period
                && policy.reuse_while_successor_unused
            {
                // matrix-authentication-service: the successor was never used, so it was
                // lost; it is revoked outright rather than kept as a predecessor.
                effects.push(FamilyEffect::DiscardLive { digest: live.digest, generation: live.generation });
            } else if let Some(live) = self.live {
                effects.push(FamilyEffect::RetireLive { digest: live.digest, generation: live.generation, at: now });
                if !within_grace_period {
                    // The retired live token is now the one immediate predecessor.
                    effects.push(FamilyEffect::SetGraceFloor(live.generation));
                }
            }
            let token = LiveToken {
                digest: request.replacement,
                generation: next,
                issued_at: now,
                expires_at: policy.expiry_for_new_token(now, self.created_at),
                // Kept only where usage-based recovery needs it (one index write less).
                access_token_id: request.access_token_id.filter(|_| policy.reuse_while_successor_unused),
                access_token_used: false,
            };
            effects.push(FamilyEffect::IssueLive(token));
            new_refresh_token = Some(token);
        }
        effects.push(FamilyEffect::Touch { at: now });
        Transition {
            decision: Ok(RefreshGranted {
                access_token_scope,
                refresh_token_scope: self.grant.scope.clone(),
                new_refresh_token,
                within_grace_period,
                reissued: false,
            }),
            effects,
        }
    }

    /// Whether this refresh issues a new refresh token.
    fn rotates(&self, policy: &RefreshPolicy, request: &RefreshRequest) -> bool {
        // RFC 9700 §4.14.2: a public client's refresh tokens MUST be sender-constrained or
        // rotated. An unbound public client's are rotated always; a DPoP-bound family is
        // sender-constrained (RFC 9449 §5), so the policy decides (rotation by default).
        if request.client.public && self.grant.dpop_jkt.is_none() {
            return true;
        }
        let Some(live) = self.live else { return policy.always_issue_new_refresh_token };
        let since_issue = request.now.saturating_sub(live.issued_at);
        if policy.reuse_returns_issued_successor && since_issue <= policy.refresh_token_reuse_interval {
            // Dex: within the reuse interval of its issue the live token is handed back
            // as it is, so a retry of the refresh that made it gets the same answer.
            return false;
        }
        if policy.always_issue_new_refresh_token {
            return true;
        }
        // oidc-provider: rotate once the token has lived `percent` of its lifetime.
        match (policy.rotate_after_lifetime_percent, live.expires_at) {
            (Some(percent), Some(exp)) => {
                let lifetime = exp.saturating_sub(live.issued_at);
                since_issue.saturating_mul(100) >= lifetime.saturating_mul(u64::from(percent))
            }
            _ => false,
        }
    }

    /// RFC 7662: the access token `access_token_id` (digest of its `jti`) was seen in use.
    /// If it is the live token's, usage-based recovery of its predecessors ends.
    pub fn access_token_used(&self, access_token_id: &TokenDigest, now: UnixTime) -> Vec<FamilyEffect> {
        match self.live {
            Some(live) if !live.access_token_used && live.access_token_id.as_ref() == Some(access_token_id) => {
                vec![FamilyEffect::AccessTokenUsed { at: now }]
            }
            _ => Vec::new(),
        }
    }

    /// RFC 6749 §6 "equal or lesser", bounded by the client's registration today.
    fn scope_for(&self, request: &RefreshRequest) -> Result<Scope, RefreshRejection> {
        let granted = &self.grant.scope;
        let allowed = &request.client.scope;
        match &request.requested_scope {
            // §6: "MUST NOT include any scope not originally granted by the resource owner".
            Some(scope) if !scope.is_subset_of(granted) => Err(RefreshRejection::ScopeExceedsGrant),
            // The same answer a new grant gets for a scope the client may no longer have
            // (§5.2 invalid_scope).
            Some(scope) if !scope.is_subset_of(allowed) => Err(RefreshRejection::ScopeExceedsClientRegistration),
            Some(scope) => Ok(scope.clone()),
            // §6: "if omitted is treated as equal to the scope originally granted", narrowed
            // to what the client may still have; the response then carries `scope` (§5.1).
            None => {
                let scope = granted.intersection(allowed);
                if scope.is_empty() && !granted.is_empty() {
                    Err(RefreshRejection::ScopeExceedsClientRegistration)
                } else {
                    Ok(scope)
                }
            }
        }
    }

    /// RFC 7009 §2.1 (and end of session): revokes the family. No effect if it already is.
    pub fn revoke(&self, now: UnixTime, reason: &'static str) -> Vec<FamilyEffect> {
        if self.revoked.is_some() { Vec::new() } else { vec![FamilyEffect::Revoke { at: now, reason }] }
    }

    /// RFC 7662 §2.2 `active`: the token could be used for a refresh right now (a token
    /// usable only through the grace period is not active).
    pub fn is_active(&self, presented: &PresentedToken, now: UnixTime, policy: &RefreshPolicy) -> bool {
        self.status_of(presented) == RefreshTokenStatus::Active
            && presented.expires_at.is_none_or(|exp| now < exp)
            && policy.refresh_token_idle_lifetime.is_none_or(|idle| now < self.last_used_at.saturating_add(idle))
    }

    /// Applies one effect to the in-memory family, as a store applies it to its rows.
    pub fn apply(&mut self, effect: &FamilyEffect) {
        match effect {
            FamilyEffect::RetireLive { .. } | FamilyEffect::DiscardLive { .. } => self.live = None,
            FamilyEffect::IssueLive(token) => self.live = Some(*token),
            FamilyEffect::SetGraceFloor(generation) => self.grace_floor = *generation,
            FamilyEffect::Touch { at } => self.last_used_at = *at,
            FamilyEffect::Revoke { at, reason } => {
                if self.revoked.is_none() {
                    self.revoked = Some(Revocation { at: *at, reason: (*reason).to_owned() });
                }
            }
            FamilyEffect::AccessTokenUsed { .. } => {
                if let Some(live) = &mut self.live {
                    live.access_token_used = true;
                }
            }
            // Token-level state: the store applies them to the presented token's row.
            FamilyEffect::RecordReuse { .. } | FamilyEffect::ForgetPresented => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RefreshPolicy = RefreshPolicy {
        always_issue_new_refresh_token: true,
        refresh_token_lifetime: Some(1_000),
        refresh_token_idle_lifetime: None,
        refresh_token_absolute_lifetime: None,
        refresh_token_reuse_interval: 0,
        rotate_after_lifetime_percent: None,
        refresh_token_max_reuse: None,
        reuse_while_successor_unused: false,
        reuse_returns_issued_successor: false,
        on_reuse: ReuseRevokes::Family,
        issue_refresh_tokens_to_public_clients: true,
    };

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn family() -> RefreshTokenFamily {
        let grant =
            Grant { client_id: "c1".into(), subject: "alice".into(), scope: scope("read write"), dpop_jkt: None };
        RefreshTokenFamily::new(grant, Some(([0; 32], Some(1_000))), 0)
    }

    fn request(now: UnixTime, replacement: u8) -> RefreshRequest {
        RefreshRequest {
            client: ClientRegistration { client_id: "c1".into(), scope: scope("read write"), public: false },
            subject_registered: true,
            requested_scope: None,
            dpop_jkt: None,
            replacement: [replacement; 32],
            access_token_id: Some([replacement.wrapping_add(100); 32]),
            now,
        }
    }

    fn live(f: &RefreshTokenFamily) -> PresentedToken {
        let l = f.live.unwrap();
        PresentedToken { generation: l.generation, expires_at: l.expires_at, retired_at: None, reuses: 0 }
    }

    /// Runs a refresh and applies its effects; returns the decision and, for a retired
    /// token, what the store would keep of it.
    fn step(
        f: &mut RefreshTokenFamily,
        presented: PresentedToken,
        req: &RefreshRequest,
        policy: &RefreshPolicy,
    ) -> (Result<RefreshGranted, RefreshRejection>, Option<PresentedToken>) {
        let t = f.refresh(&presented, req, policy);
        let mut retired = None;
        for e in &t.effects {
            if let FamilyEffect::RetireLive { generation, at, .. } = e {
                retired = Some(PresentedToken {
                    generation: *generation,
                    expires_at: f.live.unwrap().expires_at,
                    retired_at: Some(*at),
                    reuses: 0,
                });
            }
            f.apply(e);
        }
        (t.decision, retired)
    }

    #[test]
    fn rotation_retires_the_presented_token_and_reuse_revokes_the_family() {
        let mut f = family();
        let rt0 = live(&f);
        let (ok, retired) = step(&mut f, rt0, &request(10, 1), &POLICY);
        let new = ok.unwrap().new_refresh_token.unwrap();
        assert_eq!((new.generation, new.issued_at, new.expires_at), (1, 10, Some(1_010)));
        let rt0 = retired.unwrap();
        assert_eq!(f.status_of(&rt0), RefreshTokenStatus::Retired { at: 10, predecessor_of_live: true });
        let t = f.refresh(&rt0, &request(11, 2), &POLICY);
        assert_eq!(t.decision, Err(RefreshRejection::Reused));
        assert!(t.revokes_family());
        for e in &t.effects {
            f.apply(e);
        }
        assert_eq!(f.refresh(&live(&f), &request(12, 3), &POLICY).decision, Err(RefreshRejection::Revoked));
    }

    #[test]
    fn grace_accepts_only_immediate_predecessors_within_the_interval() {
        let grace = RefreshPolicy { refresh_token_reuse_interval: 10, ..POLICY };
        let mut f = family();
        let p = live(&f);
        let (_, rt0) = step(&mut f, p, &request(100, 1), &grace);
        let rt0 = rt0.unwrap();
        // Lost response: the predecessor again, within grace, rotates again.
        let (ok, rt1) = step(&mut f, rt0, &request(105, 2), &grace);
        assert!(ok.unwrap().within_grace_period);
        let rt1 = rt1.unwrap();
        // Both rt0 and rt1 are predecessors of the live rt2, each within its own window.
        assert!(matches!(f.status_of(&rt0), RefreshTokenStatus::Retired { predecessor_of_live: true, .. }));
        assert!(matches!(f.status_of(&rt1), RefreshTokenStatus::Retired { predecessor_of_live: true, .. }));
        assert_eq!(f.refresh(&rt0, &request(111, 3), &grace).decision, Err(RefreshRejection::Reused));
        assert!(f.refresh(&rt1, &request(115, 3), &grace).decision.is_ok());
        // An ordinary rotation of the live token: rt0 and rt1 are two generations old.
        let p = live(&f);
        let (_, rt2) = step(&mut f, p, &request(106, 4), &grace);
        assert!(matches!(f.status_of(&rt1), RefreshTokenStatus::Retired { predecessor_of_live: false, .. }));
        assert_eq!(f.refresh(&rt1, &request(107, 5), &grace).decision, Err(RefreshRejection::Reused));
        assert!(f.refresh(&rt2.unwrap(), &request(107, 5), &grace).decision.is_ok());
    }

    #[test]
    fn bound_to_client_and_scope_equal_or_lesser() {
        let f = family();
        let mut other = request(1, 1);
        other.client.client_id = "c2".into();
        assert_eq!(f.refresh(&live(&f), &other, &POLICY).decision, Err(RefreshRejection::IssuedToAnotherClient));
        let mut narrower = request(1, 1);
        narrower.requested_scope = Some(scope("read"));
        let ok = f.refresh(&live(&f), &narrower, &POLICY).decision.unwrap();
        assert_eq!(
            (ok.access_token_scope.to_string(), ok.refresh_token_scope.to_string()),
            ("read".into(), "read write".into())
        );
        let mut wider = request(1, 1);
        wider.requested_scope = Some(scope("read admin"));
        let err = f.refresh(&live(&f), &wider, &POLICY).decision.unwrap_err();
        assert_eq!(err, RefreshRejection::ScopeExceedsGrant);
        assert_eq!(err.error_code(), crate::ErrorCode::InvalidScope);
    }

    #[test]
    fn registration_today_bounds_the_refresh() {
        let f = family();
        // The client's registered scope narrowed to `read`: an omitted scope narrows.
        let mut narrowed = request(1, 1);
        narrowed.client.scope = scope("read");
        assert_eq!(f.refresh(&live(&f), &narrowed, &POLICY).decision.unwrap().access_token_scope, scope("read"));
        narrowed.requested_scope = Some(scope("read write"));
        let err = f.refresh(&live(&f), &narrowed, &POLICY).decision.unwrap_err();
        assert_eq!(
            (err, err.error_code()),
            (RefreshRejection::ScopeExceedsClientRegistration, crate::ErrorCode::InvalidScope)
        );
        narrowed.client.scope = scope("admin");
        narrowed.requested_scope = None;
        assert_eq!(
            f.refresh(&live(&f), &narrowed, &POLICY).decision,
            Err(RefreshRejection::ScopeExceedsClientRegistration)
        );
        // The resource owner removed: invalid_grant, and the family is revoked.
        let mut removed = request(1, 1);
        removed.subject_registered = false;
        let t = f.refresh(&live(&f), &removed, &POLICY);
        assert_eq!(t.decision, Err(RefreshRejection::SubjectRemoved));
        assert_eq!(RefreshRejection::SubjectRemoved.error_code(), crate::ErrorCode::InvalidGrant);
        assert!(t.revokes_family());
    }

    #[test]
    fn public_clients_always_rotate() {
        let no_rotation = RefreshPolicy { always_issue_new_refresh_token: false, ..POLICY };
        let f = family();
        assert!(f.refresh(&live(&f), &request(1, 1), &no_rotation).decision.unwrap().new_refresh_token.is_none());
        let mut public = request(1, 1);
        public.client.public = true;
        assert!(f.refresh(&live(&f), &public, &no_rotation).decision.unwrap().new_refresh_token.is_some());
    }

    #[test]
    fn dpop_bound_families_need_a_proof_of_their_key() {
        let mut f = family();
        f.grant.dpop_jkt = Some("jkt-1".into());
        let mut public = request(1, 1);
        public.client.public = true;
        // RFC 9449 §5: no proof, or another key: invalid_grant, and nothing changes (the
        // thief cannot get the holder's family revoked).
        let t = f.refresh(&live(&f), &public, &POLICY);
        assert_eq!((t.decision, t.effects.len()), (Err(RefreshRejection::DpopProofMissing), 0));
        public.dpop_jkt = Some("jkt-2".into());
        let t = f.refresh(&live(&f), &public, &POLICY);
        assert_eq!((t.decision, t.effects.len()), (Err(RefreshRejection::DpopKeyMismatch), 0));
        assert_eq!(RefreshRejection::DpopKeyMismatch.error_code(), crate::ErrorCode::InvalidGrant);
        public.dpop_jkt = Some("jkt-1".into());
        assert!(f.refresh(&live(&f), &public, &POLICY).decision.unwrap().new_refresh_token.is_some());
        // Sender-constrained: RFC 9700 §4.14.2 no longer forces rotation; the policy decides.
        let no_rotation = RefreshPolicy { always_issue_new_refresh_token: false, ..POLICY };
        assert!(f.refresh(&live(&f), &public, &no_rotation).decision.unwrap().new_refresh_token.is_none());
        // Even a retired token presented without the key is refused before reuse detection.
        let p = live(&f);
        let (_, rt0) = step(&mut f, p, &public, &POLICY);
        let mut thief = request(2, 2);
        thief.client.public = true;
        let t = f.refresh(&rt0.unwrap(), &thief, &POLICY);
        assert_eq!((t.revokes_family(), t.decision), (false, Err(RefreshRejection::DpopProofMissing)));
    }

    #[test]
    fn lifetimes_expiry_is_exclusive_idle_and_absolute() {
        let f = family();
        assert!(f.refresh(&live(&f), &request(999, 1), &POLICY).decision.is_ok());
        assert_eq!(f.refresh(&live(&f), &request(1_000, 1), &POLICY).decision, Err(RefreshRejection::Expired));
        let idle = RefreshPolicy { refresh_token_idle_lifetime: Some(50), ..POLICY };
        assert!(f.refresh(&live(&f), &request(49, 1), &idle).decision.is_ok());
        assert_eq!(f.refresh(&live(&f), &request(50, 1), &idle).decision, Err(RefreshRejection::Idle));
        let absolute = RefreshPolicy { refresh_token_absolute_lifetime: Some(300), ..POLICY };
        let ok = f.refresh(&live(&f), &request(200, 1), &absolute).decision.unwrap();
        assert_eq!(ok.new_refresh_token.unwrap().expires_at, Some(300));
    }

    #[test]
    fn reuse_without_revocation_policy_revokes_nothing() {
        let keep = RefreshPolicy { on_reuse: ReuseRevokes::Nothing, ..POLICY };
        let mut f = family();
        let p = live(&f);
        let (_, rt0) = step(&mut f, p, &request(10, 1), &keep);
        let t = f.refresh(&rt0.unwrap(), &request(11, 2), &keep);
        assert_eq!(t.decision, Err(RefreshRejection::Reused));
        assert!(t.effects.is_empty());
    }

    fn apply_all(f: &mut RefreshTokenFamily, t: &Transition) {
        for e in &t.effects {
            f.apply(e);
        }
    }

    #[test]
    fn reuse_revoking_only_the_presented_token_keeps_the_live_one() {
        let only_token = RefreshPolicy { on_reuse: ReuseRevokes::PresentedToken, ..POLICY };
        let mut f = family();
        let p = live(&f);
        let (_, rt0) = step(&mut f, p, &request(10, 1), &only_token);
        let t = f.refresh(&rt0.unwrap(), &request(11, 2), &only_token);
        assert_eq!(
            (t.decision.clone(), t.effects.clone()),
            (Err(RefreshRejection::Reused), vec![FamilyEffect::ForgetPresented])
        );
        apply_all(&mut f, &t);
        assert!(f.refresh(&live(&f), &request(12, 3), &only_token).decision.is_ok());
    }

    #[test]
    fn count_grace_accepts_a_predecessor_max_reuse_times_without_a_time_limit() {
        // Keycloak "Refresh Token Max Reuse" = 1: one more use of a retired token.
        let count = RefreshPolicy { refresh_token_max_reuse: Some(1), ..POLICY };
        let mut f = family();
        let p = live(&f);
        let (_, rt0) = step(&mut f, p, &request(10, 1), &count);
        let mut rt0 = rt0.unwrap();
        let t = f.refresh(&rt0, &request(500, 2), &count);
        assert!(t.decision.as_ref().unwrap().within_grace_period);
        assert!(t.effects.contains(&FamilyEffect::RecordReuse { reuses: 1 }));
        apply_all(&mut f, &t);
        rt0.reuses = 1;
        let t = f.refresh(&rt0, &request(501, 3), &count);
        assert_eq!(t.decision, Err(RefreshRejection::Reused));
        assert!(t.revokes_family());
        // Some(0) is no recovery at all, even with a time window.
        let none = RefreshPolicy { refresh_token_max_reuse: Some(0), refresh_token_reuse_interval: 30, ..POLICY };
        assert!(!none.allows_recovery());
    }

    #[test]
    fn usage_based_recovery_ends_when_the_successors_access_token_is_used() {
        let mas = RefreshPolicy { reuse_while_successor_unused: true, on_reuse: ReuseRevokes::Nothing, ..POLICY };
        let mut f = family();
        let p = live(&f);
        let (_, rt0) = step(&mut f, p, &request(10, 1), &mas);
        let rt0 = rt0.unwrap();
        // The response was lost: the successor's access token was never used.
        let before = f.clone();
        assert!(f.refresh(&rt0, &request(900, 2), &mas).decision.unwrap().within_grace_period);
        // Introspection saw the successor's access token: now rt0 is reuse.
        let used = f.access_token_used(&[101; 32], 20);
        assert_eq!(used, vec![FamilyEffect::AccessTokenUsed { at: 20 }]);
        assert!(f.access_token_used(&[7; 32], 20).is_empty(), "another access token changes nothing");
        for e in &used {
            f.apply(e);
        }
        assert!(f.access_token_used(&[101; 32], 21).is_empty(), "recorded once");
        let t = f.refresh(&rt0, &request(30, 2), &mas);
        assert_eq!(t.decision, Err(RefreshRejection::Reused));
        assert!(t.effects.is_empty());
        assert_ne!(before, f);
    }

    #[test]
    fn idempotent_retry_returns_the_successor_already_issued() {
        let dex = RefreshPolicy {
            refresh_token_reuse_interval: 3,
            reuse_returns_issued_successor: true,
            on_reuse: ReuseRevokes::Nothing,
            ..POLICY
        };
        let mut f = family();
        // Within 3 s of its issue the live token is not rotated (the same token again).
        let ok = f.refresh(&live(&f), &request(2, 1), &dex).decision.unwrap();
        assert!(ok.new_refresh_token.is_none());
        let p = live(&f);
        let (ok, rt0) = step(&mut f, p, &request(10, 1), &dex);
        let successor = ok.unwrap().new_refresh_token.unwrap();
        let rt0 = rt0.unwrap();
        // The retry within the interval: the same successor, no effect at all.
        let t = f.refresh(&rt0, &request(12, 2), &dex);
        let again = t.decision.unwrap();
        assert!(again.reissued && again.within_grace_period);
        assert_eq!(again.new_refresh_token, Some(successor));
        assert!(t.effects.is_empty());
        // After it: reuse, and nothing is revoked.
        let t = f.refresh(&rt0, &request(14, 2), &dex);
        assert_eq!((t.decision, t.effects.is_empty()), (Err(RefreshRejection::Reused), true));
    }

    #[test]
    fn rotation_near_expiry_only() {
        // oidc-provider: confidential clients rotate once 70 % of the lifetime passed.
        let oidc =
            RefreshPolicy { always_issue_new_refresh_token: false, rotate_after_lifetime_percent: Some(70), ..POLICY };
        let f = family(); // issued at 0, expires at 1000
        assert!(f.refresh(&live(&f), &request(699, 1), &oidc).decision.unwrap().new_refresh_token.is_none());
        assert!(f.refresh(&live(&f), &request(700, 1), &oidc).decision.unwrap().new_refresh_token.is_some());
    }
}
