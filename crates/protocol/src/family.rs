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
//!     Err(RefreshRejection → invalid_grant)          Touch, Revoke
//! ```

use crate::clock::UnixTime;
use crate::error::{ErrorCode, ErrorResponse};
use crate::refresh::RefreshPolicy;
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
}

/// The family's one live refresh token, known by its SHA-256 digest only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveToken {
    pub digest: TokenDigest,
    pub generation: Generation,
    pub issued_at: UnixTime,
    /// `None`: no lifetime of its own.
    pub expires_at: Option<UnixTime>,
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
    /// Accepted as the immediately previous token within the reuse interval.
    pub within_grace_period: bool,
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
    /// The digest of the replacement token the server drew for this request; stored as
    /// the live token if the refresh rotates, discarded otherwise.
    pub replacement: TokenDigest,
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
            live: first.map(|(digest, expires_at)| LiveToken { digest, generation: 0, issued_at: now, expires_at }),
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
    /// 2. the family is not revoked;
    /// 3. the resource owner is still registered (else the family is revoked);
    /// 4. RFC 9700 §4.14.2: a retired token is reuse (the family is revoked if the policy
    ///    says so), unless it is an immediate predecessor of the live token within the
    ///    grace period;
    /// 5. the token's lifetime and the family's idle lifetime;
    /// 6. §6: the scope is "equal or lesser" than the grant, and within what the client
    ///    may be granted today.
    pub fn refresh(&self, presented: &PresentedToken, request: &RefreshRequest, policy: &RefreshPolicy) -> Transition {
        let now = request.now;
        // §6: "validate the refresh token ... was issued to the authenticated client".
        if self.grant.client_id != request.client.client_id {
            return Transition::refused(RefreshRejection::IssuedToAnotherClient);
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
                let interval = policy.refresh_token_reuse_interval;
                if predecessor_of_live && interval > 0 && now <= at.saturating_add(interval) {
                    true
                } else {
                    // RFC 9700 §4.14.2: one of the two holders is an attacker; revoke the
                    // active refresh token too, so both must go back to step A.
                    let effects = if policy.revoke_family_on_reuse {
                        vec![FamilyEffect::Revoke { at: now, reason: reason::REUSE_DETECTED }]
                    } else {
                        Vec::new()
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
        // RFC 9700 §4.14.2: a public client's refresh tokens MUST be sender-constrained or
        // rotated; Figure2 does not sender-constrain them, so it rotates them always.
        let rotate = policy.always_issue_new_refresh_token || request.client.public;
        let mut effects = Vec::with_capacity(4);
        let mut new_refresh_token = None;
        if rotate {
            let next = self.live.map_or(presented.generation, |live| live.generation.max(presented.generation)) + 1;
            if let Some(live) = self.live {
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
            }),
            effects,
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
            FamilyEffect::RetireLive { .. } => self.live = None,
            FamilyEffect::IssueLive(token) => self.live = Some(*token),
            FamilyEffect::SetGraceFloor(generation) => self.grace_floor = *generation,
            FamilyEffect::Touch { at } => self.last_used_at = *at,
            FamilyEffect::Revoke { at, reason } => {
                if self.revoked.is_none() {
                    self.revoked = Some(Revocation { at: *at, reason: (*reason).to_owned() });
                }
            }
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
        revoke_family_on_reuse: true,
    };

    fn scope(s: &str) -> Scope {
        Scope::parse(s).unwrap()
    }

    fn family() -> RefreshTokenFamily {
        let grant = Grant { client_id: "c1".into(), subject: "alice".into(), scope: scope("read write") };
        RefreshTokenFamily::new(grant, Some(([0; 32], Some(1_000))), 0)
    }

    fn request(now: UnixTime, replacement: u8) -> RefreshRequest {
        RefreshRequest {
            client: ClientRegistration { client_id: "c1".into(), scope: scope("read write"), public: false },
            subject_registered: true,
            requested_scope: None,
            replacement: [replacement; 32],
            now,
        }
    }

    fn live(f: &RefreshTokenFamily) -> PresentedToken {
        let l = f.live.unwrap();
        PresentedToken { generation: l.generation, expires_at: l.expires_at, retired_at: None }
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
        let keep = RefreshPolicy { revoke_family_on_reuse: false, ..POLICY };
        let mut f = family();
        let p = live(&f);
        let (_, rt0) = step(&mut f, p, &request(10, 1), &keep);
        let t = f.refresh(&rt0.unwrap(), &request(11, 2), &keep);
        assert_eq!(t.decision, Err(RefreshRejection::Reused));
        assert!(t.effects.is_empty());
    }
}
