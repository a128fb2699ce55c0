//! The refresh-token lineage: each family (one per grant, step B) as the chain of its
//! generations, each marked active, used, accepted during grace, revoked by reuse,
//! revoked or expired.
//!
//! Derived from the trace alone, with no query to the authorization server, by feeding
//! what the trace shows to the same family state machine the server runs
//! (`figure2_protocol::family`): a token response (B) starts a family, each refresh (G)
//! is a presentation whose effects (retire, issue, revoke) mark the generations, an
//! RFC 7009 revocation ends the family, and the server's [`RefreshPolicy`] says when
//! tokens expire and how much recovery it allows. No rule is written here again.

use figure2_protocol::family::{
    ClientRegistration, FamilyEffect, Grant, PresentedToken, RefreshRejection, RefreshRequest, RefreshTokenFamily,
    Transition,
};
use figure2_protocol::refresh::RefreshPolicy;
use figure2_protocol::{FlowStep, Scope};
use figure2_runner::trace::{Happening, TraceEvent, TracedExchange};
use serde::Serialize;

/// Where a refresh token stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GenerationStatus {
    /// The family's live token.
    Active,
    /// Presented in a refresh that rotated it: retired.
    Used,
    /// Retired, then presented again within the reuse interval and accepted.
    AcceptedDuringGrace,
    /// Live when a retired token of its family was replayed: the server revoked it.
    RevokedByReuse,
    /// Revoked by the client (RFC 7009).
    Revoked,
    /// Past its lifetime (or the family's idle or absolute lifetime).
    Expired,
}

/// Where a family stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyState {
    Live,
    RevokedByReuse,
    Revoked,
    Expired,
}

#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    /// 0 for the token of step B, then one more per rotation.
    pub generation: usize,
    /// The fingerprint, `rt#…`.
    pub token: String,
    pub issued_at: u64,
    pub expires_at: Option<u64>,
    pub status: GenerationStatus,
    /// Presented again after it was retired (reuse).
    pub replayed: bool,
    /// False when the response carrying it was lost: the client never saw it.
    pub delivered: bool,
    /// What a store would keep of it, for the family machine.
    #[serde(skip)]
    presented: PresentedToken,
}

#[derive(Debug, Clone, Serialize)]
pub struct Family {
    /// 1 for the first grant of the trace.
    pub number: usize,
    pub client_id: String,
    pub created_at: u64,
    pub state: FamilyState,
    pub ended_at: Option<u64>,
    pub generations: Vec<Generation>,
    /// The same state machine the authorization server runs, fed with what the trace shows.
    #[serde(skip)]
    machine: RefreshTokenFamily,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Lineage {
    pub families: Vec<Family>,
}

impl Family {
    fn end(&mut self, state: FamilyState, live_becomes: GenerationStatus, t: u64) {
        if self.state != FamilyState::Live {
            return;
        }
        self.state = state;
        self.ended_at = Some(t);
        for g in &mut self.generations {
            if g.status == GenerationStatus::Active {
                g.status = live_becomes;
            }
        }
    }

    fn generation_index(&self, generation: u64) -> Option<usize> {
        self.generations.iter().position(|g| g.presented.generation == generation)
    }

    /// Writes a transition's effects, as a store would, and marks the generations.
    fn apply(&mut self, presented: usize, effects: &[FamilyEffect], issued: Option<&str>, delivered: bool) {
        for effect in effects {
            match effect {
                FamilyEffect::RetireLive { generation, at, .. } => {
                    if let Some(g) = self.generation_index(*generation) {
                        self.generations[g].presented.retired_at = Some(*at);
                        if self.generations[g].status == GenerationStatus::Active {
                            self.generations[g].status = GenerationStatus::Used;
                        }
                    }
                }
                FamilyEffect::IssueLive(live) => {
                    let token = issued.map_or_else(|| format!("rt#gen{}", live.generation), str::to_owned);
                    self.generations.push(Generation {
                        generation: self.generations.len(),
                        token,
                        issued_at: live.issued_at,
                        expires_at: live.expires_at,
                        status: GenerationStatus::Active,
                        replayed: false,
                        delivered,
                        presented: PresentedToken {
                            generation: live.generation,
                            expires_at: live.expires_at,
                            retired_at: None,
                            reuses: 0,
                        },
                    });
                }
                FamilyEffect::RecordReuse { reuses } => self.generations[presented].presented.reuses = *reuses,
                // Reuse that revokes only the presented token; usage-based recovery that
                // forgets the unused successor: either way the token is gone.
                FamilyEffect::ForgetPresented => self.generations[presented].status = GenerationStatus::Revoked,
                FamilyEffect::DiscardLive { generation, .. } => {
                    if let Some(g) = self.generation_index(*generation) {
                        self.generations[g].status = GenerationStatus::Revoked;
                    }
                }
                _ => {}
            }
            self.machine.apply(effect);
        }
    }
}

impl Lineage {
    /// The lineage after `events`, under the authorization server's `policy`.
    pub fn from_events(events: &[TraceEvent], policy: &RefreshPolicy) -> Self {
        let mut builder = Builder { lineage: Lineage::default(), policy, lost_refresh: None, now: 0 };
        for event in events {
            builder.observe(event);
        }
        builder.lineage
    }

    /// The family and generation of a token fingerprint (`rt#…`).
    fn find(&self, token: &str) -> Option<(usize, usize)> {
        self.families
            .iter()
            .enumerate()
            .find_map(|(f, family)| family.generations.iter().position(|g| g.token == token).map(|g| (f, g)))
    }
}

struct Builder<'a> {
    lineage: Lineage,
    policy: &'a RefreshPolicy,
    /// A refresh whose answer was lost: the client and the token it presented, waiting
    /// for the network's account of what the server issued.
    lost_refresh: Option<(String, String, u64)>,
    /// The latest time seen (for events that carry none).
    now: u64,
}

fn field<'x>(list: &'x [(String, String)], name: &str) -> Option<&'x str> {
    list.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The trace shows fingerprints only; the machine needs a digest per token, any one.
fn digest_of(fingerprint: &str) -> figure2_protocol::secret::TokenDigest {
    figure2_protocol::secret::digest(fingerprint)
}

impl Builder<'_> {
    fn observe(&mut self, event: &TraceEvent) {
        match event {
            TraceEvent::Step { t, .. } | TraceEvent::Clock { t, .. } => {
                self.now = *t;
                self.expire(*t);
            }
            TraceEvent::Exchange(x) => {
                self.now = x.t;
                self.expire(x.t);
                self.exchange(x);
            }
            TraceEvent::Network { what } => self.network(what),
            _ => {}
        }
    }

    /// Families whose live token the machine no longer takes: past its lifetime, or the
    /// family past its idle lifetime.
    fn expire(&mut self, now: u64) {
        for family in &mut self.lineage.families {
            if family.state != FamilyState::Live {
                continue;
            }
            let live = family.generations.iter().find(|g| g.status == GenerationStatus::Active);
            if live.is_some_and(|g| !family.machine.is_active(&g.presented, now, self.policy)) {
                family.end(FamilyState::Expired, GenerationStatus::Expired, now);
            }
        }
    }

    fn exchange(&mut self, x: &TracedExchange) {
        let issued = field(&x.response, "refresh_token").filter(|v| v.starts_with("rt#")).map(str::to_owned);
        match x.request_letter {
            FlowStep::A => {
                if let (200, Some(token)) = (x.status, issued) {
                    let scope = field(&x.response, "scope").and_then(|s| Scope::parse(s).ok()).unwrap_or_default();
                    // The trace does not show a DPoP key binding: the lineage follows the tokens only.
                    let grant = Grant { client_id: x.client_id.clone(), subject: String::new(), scope, dpop_jkt: None };
                    let expires_at = self.policy.expiry_for_new_token(x.t, x.t);
                    let machine = RefreshTokenFamily::new(grant, Some((digest_of(&token), expires_at)), x.t);
                    self.lineage.families.push(Family {
                        number: self.lineage.families.len() + 1,
                        client_id: x.client_id.clone(),
                        created_at: x.t,
                        state: FamilyState::Live,
                        ended_at: None,
                        generations: vec![Generation {
                            generation: 0,
                            token,
                            issued_at: x.t,
                            expires_at,
                            status: GenerationStatus::Active,
                            replayed: false,
                            delivered: true,
                            presented: PresentedToken { generation: 0, expires_at, retired_at: None, reuses: 0 },
                        }],
                        machine,
                    });
                }
            }
            FlowStep::G => {
                let Some(presented) = field(&x.request, "refresh_token").map(str::to_owned) else { return };
                match x.status {
                    200 => self.refreshed(&x.client_id, &presented, issued, x.t, true),
                    500.. => self.lost_refresh = Some((x.client_id.clone(), presented, x.t)),
                    _ => self.refused(&x.client_id, &presented, x.t),
                }
            }
            _ => {}
        }
    }

    /// Runs the family machine on a presentation the trace shows.
    fn transition(&self, f: usize, g: usize, client_id: &str, issued: Option<&str>, t: u64) -> Transition {
        let family = &self.lineage.families[f];
        let request = RefreshRequest {
            // The trace does not show registrations: taken as unchanged since the grant.
            client: ClientRegistration {
                client_id: client_id.to_owned(),
                scope: family.machine.grant.scope.clone(),
                public: false,
            },
            subject_registered: true,
            requested_scope: None,
            replacement: digest_of(issued.unwrap_or_default()),
            access_token_id: None,
            dpop_jkt: None,
            now: t,
        };
        family.machine.refresh(&family.generations[g].presented, &request, self.policy)
    }

    /// A refresh succeeded (step H): the machine says what it retired and issued.
    fn refreshed(&mut self, client_id: &str, presented: &str, issued: Option<String>, t: u64, delivered: bool) {
        let Some((f, g)) = self.lineage.find(presented) else { return };
        let mut transition = self.transition(f, g, client_id, issued.as_deref(), t);
        let family = &mut self.lineage.families[f];
        let was_retired = family.generations[g].status == GenerationStatus::Used;
        match &transition.decision {
            // An idempotent retry handed back the successor already issued: nothing new.
            Ok(granted) if granted.reissued => {}
            Ok(_) => {}
            Err(_) => {
                // The server knew more than the trace shows (a changed registration or
                // policy): follow what it did, a plain rotation if it issued a token.
                transition.effects.clear();
                if let (Some(live), Some(token)) = (family.machine.live, issued.as_deref()) {
                    transition.effects = vec![
                        FamilyEffect::RetireLive { digest: live.digest, generation: live.generation, at: t },
                        FamilyEffect::IssueLive(figure2_protocol::family::LiveToken {
                            digest: digest_of(token),
                            generation: live.generation + 1,
                            issued_at: t,
                            expires_at: self.policy.expiry_for_new_token(t, family.created_at),
                            access_token_id: None,
                            access_token_used: false,
                        }),
                    ];
                }
                transition.effects.push(FamilyEffect::Touch { at: t });
            }
        }
        family.apply(g, &transition.effects, issued.as_deref(), delivered);
        if was_retired {
            family.generations[g].status = GenerationStatus::AcceptedDuringGrace;
        }
    }

    /// A refresh was refused (`invalid_grant`, or `invalid_scope`).
    fn refused(&mut self, client_id: &str, presented: &str, t: u64) {
        let Some((f, g)) = self.lineage.find(presented) else { return };
        let transition = self.transition(f, g, client_id, None, t);
        let family = &mut self.lineage.families[f];
        let retired =
            matches!(family.generations[g].status, GenerationStatus::Used | GenerationStatus::AcceptedDuringGrace);
        if retired && transition.decision != Err(RefreshRejection::IssuedToAnotherClient) {
            // Presented again after its retirement, whatever the answer.
            family.generations[g].replayed = true;
        }
        match transition.decision {
            Err(RefreshRejection::Reused) => {
                // RFC 9700 §4.14.2: a retired token came back.
                let revokes = transition.revokes_family();
                family.apply(g, &transition.effects, None, true);
                if revokes {
                    family.end(FamilyState::RevokedByReuse, GenerationStatus::RevokedByReuse, t);
                }
            }
            Err(RefreshRejection::Expired | RefreshRejection::Idle) => {
                family.end(FamilyState::Expired, GenerationStatus::Expired, t);
            }
            // §6: bound to the client it was issued to; another client changes nothing.
            Err(RefreshRejection::IssuedToAnotherClient) => {}
            Err(_) => family.apply(g, &transition.effects, None, true),
            // The machine would have granted it: the server knew more than the trace
            // (a changed registration, a restart on another policy). A live token refused
            // other than for scope is taken as expired.
            Ok(_) => {
                if family.generations[g].status == GenerationStatus::Active && family.state == FamilyState::Live {
                    family.end(FamilyState::Expired, GenerationStatus::Expired, t);
                }
            }
        }
    }

    /// The runner's account of things the client did not see: a lost token response
    /// (it names the refresh token the server issued) and RFC 7009 revocations.
    fn network(&mut self, what: &Happening) {
        match what {
            Happening::Revoked { refresh_token, status: 200, .. } => {
                if let Some((f, _)) = self.lineage.find(refresh_token) {
                    let family = &mut self.lineage.families[f];
                    let revoke = family.machine.revoke(self.now, figure2_protocol::family::reason::REVOKED_BY_CLIENT);
                    family.apply(0, &revoke, None, true);
                    family.end(FamilyState::Revoked, GenerationStatus::Revoked, self.now);
                }
            }
            Happening::ResponseLost { status: 200, refresh_token, .. } => {
                if let Some((client_id, presented, t)) = self.lost_refresh.take() {
                    self.refreshed(&client_id, &presented, refresh_token.clone(), t, false);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(
        letter: FlowStep,
        client: &str,
        status: u16,
        request: &[(&str, &str)],
        response: &[(&str, &str)],
        t: u64,
    ) -> TraceEvent {
        let pairs = |l: &[(&str, &str)]| l.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        TraceEvent::Exchange(TracedExchange {
            client_id: client.into(),
            request_letter: letter,
            response_letter: FlowStep::ALL[FlowStep::ALL.iter().position(|s| *s == letter).unwrap_or(0) + 1],
            to: "authorization server",
            method: "POST".into(),
            path: "/token".into(),
            request: pairs(request),
            status,
            response: pairs(response),
            error: None,
            rejection: None,
            t,
            raw: Box::default(),
            access_token: None,
            dpop_proof: None,
        })
    }

    const RT1: &str = "rt#00000001";
    const RT2: &str = "rt#00000002";
    const RT3: &str = "rt#00000003";

    fn statuses(l: &Lineage) -> Vec<GenerationStatus> {
        l.families[0].generations.iter().map(|g| g.status).collect()
    }

    #[test]
    fn rotation_then_reuse_revokes_the_family() {
        use GenerationStatus::*;
        let events = vec![
            x(FlowStep::A, "c", 200, &[], &[("refresh_token", RT1)], 0),
            x(FlowStep::G, "c", 200, &[("refresh_token", RT1)], &[("refresh_token", RT2)], 10),
            x(FlowStep::G, "c", 400, &[("refresh_token", RT1)], &[("error", "invalid_grant")], 20),
        ];
        let policy = RefreshPolicy::default();
        let l = Lineage::from_events(&events[..2], &policy);
        assert_eq!(statuses(&l), [Used, Active]);
        let l = Lineage::from_events(&events, &policy);
        assert_eq!(statuses(&l), [Used, RevokedByReuse]);
        assert!(l.families[0].generations[0].replayed);
        assert_eq!(l.families[0].state, FamilyState::RevokedByReuse);
    }

    #[test]
    fn grace_expiry_and_other_clients() {
        use GenerationStatus::*;
        let grace = RefreshPolicy { refresh_token_reuse_interval: 30, ..RefreshPolicy::default() };
        let events = vec![
            x(FlowStep::A, "c", 200, &[], &[("refresh_token", RT1)], 0),
            x(FlowStep::G, "c", 504, &[("refresh_token", RT1)], &[], 1),
            TraceEvent::Network {
                what: Happening::ResponseLost { status: 200, path: "/token".into(), refresh_token: Some(RT2.into()) },
            },
            x(FlowStep::G, "c", 200, &[("refresh_token", RT1)], &[("refresh_token", RT3)], 11),
            x(FlowStep::G, "other", 400, &[("refresh_token", RT3)], &[("error", "invalid_grant")], 12),
        ];
        let l = Lineage::from_events(&events, &grace);
        assert_eq!(statuses(&l), [AcceptedDuringGrace, Used, Active]);
        assert!(!l.families[0].generations[1].delivered);
        let short = RefreshPolicy { refresh_token_lifetime: Some(100), ..RefreshPolicy::default() };
        let l = Lineage::from_events(&[events[0].clone(), TraceEvent::Clock { advanced_by: 100, t: 100 }], &short);
        assert_eq!(statuses(&l), [Expired]);
        assert_eq!(l.families[0].state, FamilyState::Expired);
    }
}
