//! Property tests of the refresh-token family machine (`figure2_protocol::family`):
//! random histories of refreshes, replays of old generations, other clients, revocations,
//! clock moves and registration changes, under random policies. After every event:
//!
//! - a revoked family never grants again;
//! - the scope never grows: no access token beyond the grant, the refresh token keeps
//!   the grant's scope (RFC 6749 §6);
//! - at most one token of a family is live;
//! - a retired token outside the grace period never works;
//! - reuse revokes the family when the policy says so (RFC 9700 §4.14.2), and only then;
//!   a policy that revokes only the presented token forgets it, one that revokes nothing
//!   writes nothing;
//! - a recovery stays within every limit the policy sets: time, count, use;
//! - an idempotent retry hands back the live token itself and writes nothing;
//! - and, so that a machine refusing everything cannot pass: the live token of a family
//!   that is neither revoked, expired nor idle works for its own client.

use figure2_protocol::Scope;
use figure2_protocol::family::{
    ClientRegistration, FamilyEffect, Grant, PresentedToken, RefreshRejection, RefreshRequest, RefreshTokenFamily,
    RefreshTokenStatus,
};
use figure2_protocol::refresh::{RefreshPolicy, ReuseRevokes};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Event {
    /// The newest token, optionally asking for a scope.
    Refresh {
        scope: Option<usize>,
    },
    /// A token `back` generations old (a replay, a lost response's retry).
    Replay {
        back: usize,
    },
    OtherClient,
    Revoke,
    Advance {
        seconds: u64,
    },
    RemoveSubject,
    NarrowClient,
    /// Introspection saw the live token's access token in use.
    UseAccessToken,
}

const SCOPES: [&str; 4] = ["read", "write", "read write", "admin"];

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => prop::option::weighted(0.3, 0..4usize).prop_map(|scope| Event::Refresh { scope }),
        3 => (1..4usize).prop_map(|back| Event::Replay { back }),
        1 => Just(Event::OtherClient),
        1 => Just(Event::Revoke),
        3 => prop::sample::select(vec![1u64, 5, 10, 29, 31, 59, 61, 200, 1_000]).prop_map(|seconds| Event::Advance { seconds }),
        1 => Just(Event::RemoveSubject),
        1 => Just(Event::NarrowClient),
        2 => Just(Event::UseAccessToken),
    ]
}

fn policy() -> impl Strategy<Value = RefreshPolicy> {
    let recovery = (
        prop::sample::select(vec![None, Some(0u32), Some(1), Some(2)]),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::sample::select(vec![ReuseRevokes::Family, ReuseRevokes::PresentedToken, ReuseRevokes::Nothing]),
        prop::sample::select(vec![None, Some(70u8)]),
    );
    let base = (
        prop::bool::weighted(0.85),
        prop::sample::select(vec![None, Some(100u64), Some(1_000)]),
        prop::sample::select(vec![None, Some(60u64)]),
        prop::sample::select(vec![None, Some(300u64)]),
        prop::sample::select(vec![0u64, 3, 10, 30]),
    );
    // Half the cases run a shipped preset as it is.
    let random = (base, recovery).prop_map(
        |((rotate, lifetime, idle, absolute, reuse_interval), (max_reuse, unused, idempotent, on_reuse, percent))| {
            RefreshPolicy {
                always_issue_new_refresh_token: rotate,
                rotate_after_lifetime_percent: percent,
                refresh_token_lifetime: lifetime,
                refresh_token_idle_lifetime: idle,
                refresh_token_absolute_lifetime: absolute,
                refresh_token_reuse_interval: reuse_interval,
                refresh_token_max_reuse: max_reuse,
                reuse_while_successor_unused: unused,
                reuse_returns_issued_successor: idempotent,
                on_reuse,
                issue_refresh_tokens_to_public_clients: true,
            }
        },
    );
    let preset = prop::sample::select(figure2_protocol::presets::all()).prop_map(|p| p.policy);
    prop_oneof![random, preset]
}

fn scope(s: &str) -> Scope {
    Scope::parse(s).unwrap()
}

/// Every token the family ever had, as a store keeps them.
struct History {
    family: RefreshTokenFamily,
    tokens: Vec<PresentedToken>,
    client_scope: Scope,
    subject_registered: bool,
    now: u64,
    minted: u8,
    /// Token indexes the store forgot (reuse revoking only the presented token).
    forgotten: Vec<usize>,
}

impl History {
    fn present(
        &mut self,
        t: usize,
        client: &str,
        requested: Option<Scope>,
        policy: &RefreshPolicy,
    ) -> Result<(), TestCaseError> {
        self.minted = self.minted.wrapping_add(1);
        let request = RefreshRequest {
            client: ClientRegistration { client_id: client.into(), scope: self.client_scope.clone(), public: false },
            subject_registered: self.subject_registered,
            requested_scope: requested.clone(),
            dpop_jkt: None,
            replacement: [self.minted; 32],
            access_token_id: Some([self.minted; 32]),
            now: self.now,
        };
        if self.forgotten.contains(&t) {
            return Ok(()); // the store no longer knows it: `Unknown`, decided before the machine
        }
        let token = self.tokens[t];
        let was_revoked = self.family.revoked.is_some();
        let status = self.family.status_of(&token);
        let transition = self.family.refresh(&token, &request, policy);
        match &transition.decision {
            Ok(granted) => {
                prop_assert!(!was_revoked, "a revoked family granted");
                prop_assert!(granted.access_token_scope.is_subset_of(&self.family.grant.scope), "scope grew");
                prop_assert!(granted.access_token_scope.is_subset_of(&self.client_scope), "beyond the client's scope");
                prop_assert_eq!(&granted.refresh_token_scope, &self.family.grant.scope);
                if let RefreshTokenStatus::Retired { at, predecessor_of_live } = status {
                    prop_assert!(predecessor_of_live, "a token several generations old worked");
                    prop_assert!(policy.allows_recovery(), "recovery under a policy that allows none");
                    if policy.refresh_token_reuse_interval > 0 {
                        prop_assert!(
                            self.now <= at + policy.refresh_token_reuse_interval,
                            "a token retired at {} worked at {} outside the grace period",
                            at,
                            self.now
                        );
                    }
                    if let Some(max) = policy.refresh_token_max_reuse {
                        prop_assert!(token.reuses < max, "reused {} times, max {}", token.reuses + 1, max);
                    }
                    if policy.reuse_while_successor_unused {
                        prop_assert!(
                            !self.family.live.unwrap().access_token_used,
                            "recovered after the successor was used"
                        );
                    }
                    prop_assert!(granted.within_grace_period);
                    if policy.reuse_returns_issued_successor {
                        // Idempotent: the live token itself, and nothing written but a count.
                        prop_assert!(granted.reissued);
                        prop_assert_eq!(granted.new_refresh_token, self.family.live);
                        prop_assert!(
                            transition.effects.iter().all(|e| matches!(e, FamilyEffect::RecordReuse { .. })),
                            "an idempotent retry wrote more than a count"
                        );
                    }
                } else {
                    prop_assert!(!granted.within_grace_period && !granted.reissued);
                }
            }
            Err(RefreshRejection::Reused) => {
                prop_assert_eq!(transition.revokes_family(), policy.on_reuse == ReuseRevokes::Family);
                let forgets = transition.effects.contains(&FamilyEffect::ForgetPresented);
                prop_assert_eq!(forgets, policy.on_reuse == ReuseRevokes::PresentedToken);
                if policy.on_reuse == ReuseRevokes::Nothing {
                    prop_assert!(transition.effects.is_empty());
                }
            }
            Err(RefreshRejection::SubjectRemoved) => prop_assert!(transition.revokes_family()),
            Err(_) => prop_assert!(!transition.revokes_family(), "only reuse and a removed subject revoke"),
        }
        // Non-vacuity: a healthy live token works for its own client.
        let healthy = !was_revoked
            && status == RefreshTokenStatus::Active
            && client == "c1"
            && self.subject_registered
            && requested.is_none()
            && token.expires_at.is_none_or(|exp| self.now < exp)
            && policy.refresh_token_idle_lifetime.is_none_or(|idle| self.now < self.family.last_used_at + idle)
            && !self.family.grant.scope.intersection(&self.client_scope).is_empty();
        if healthy {
            prop_assert!(transition.decision.is_ok(), "a healthy live token was refused: {:?}", transition.decision);
        }
        for effect in &transition.effects {
            match effect {
                FamilyEffect::RetireLive { generation, at, .. } => {
                    for t in self.tokens.iter_mut().filter(|t| t.generation == *generation) {
                        t.retired_at = Some(*at);
                    }
                }
                FamilyEffect::IssueLive(live) => self.tokens.push(PresentedToken {
                    generation: live.generation,
                    expires_at: live.expires_at,
                    retired_at: None,
                    reuses: 0,
                }),
                FamilyEffect::RecordReuse { reuses } => self.tokens[t].reuses = *reuses,
                FamilyEffect::ForgetPresented => self.forgotten.push(t),
                FamilyEffect::DiscardLive { generation, .. } => {
                    let discarded = self.tokens.iter().position(|t| t.generation == *generation);
                    self.forgotten.extend(discarded);
                }
                _ => {}
            }
            self.family.apply(effect);
        }
        let live = self.tokens.iter().filter(|t| self.family.status_of(t) == RefreshTokenStatus::Active).count();
        prop_assert!(live <= 1, "{} live tokens in one family", live);
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_family_machine_keeps_its_invariants(policy in policy(), granted in 0..3usize, events in prop::collection::vec(event(), 1..60)) {
        let now = 1_700_000_000;
        let grant = Grant { client_id: "c1".into(), subject: "alice".into(), scope: scope(SCOPES[granted]), dpop_jkt: None };
        let expires_at = policy.expiry_for_new_token(now, now);
        let family = RefreshTokenFamily::new(grant, Some(([0; 32], expires_at)), now);
        let mut h = History {
            family,
            tokens: vec![PresentedToken { generation: 0, expires_at, retired_at: None, reuses: 0 }],
            client_scope: scope("read write"),
            subject_registered: true,
            now,
            minted: 0,
            forgotten: Vec::new(),
        };
        for event in events {
            match event {
                Event::Refresh { scope: s } => {
                    let t = h.tokens.len() - 1;
                    h.present(t, "c1", s.map(|i| scope(SCOPES[i])), &policy)?;
                }
                Event::Replay { back } => {
                    let t = h.tokens.len().saturating_sub(1 + back);
                    h.present(t, "c1", None, &policy)?;
                }
                Event::OtherClient => {
                    let t = h.tokens.len() - 1;
                    h.present(t, "c2", None, &policy)?;
                }
                Event::Revoke => {
                    for effect in h.family.revoke(h.now, "test") {
                        h.family.apply(&effect);
                    }
                }
                Event::Advance { seconds } => h.now += seconds,
                Event::RemoveSubject => h.subject_registered = false,
                Event::NarrowClient => h.client_scope = scope("read"),
                Event::UseAccessToken => {
                    if let Some(id) = h.family.live.and_then(|l| l.access_token_id) {
                        for effect in h.family.access_token_used(&id, h.now) {
                            h.family.apply(&effect);
                        }
                    }
                }
            }
            if h.family.revoked.is_some() {
                // A revoked family never works again, whatever is presented.
                for t in 0..h.tokens.len() {
                    let request = RefreshRequest {
                        client: ClientRegistration { client_id: "c1".into(), scope: h.client_scope.clone(), public: false },
                        subject_registered: true,
                        requested_scope: None,
                        dpop_jkt: None,
                        replacement: [255; 32],
                        access_token_id: None,
                        now: h.now,
                    };
                    prop_assert!(h.family.refresh(&h.tokens[t], &request, &policy).decision.is_err());
                }
            }
        }
    }
}
