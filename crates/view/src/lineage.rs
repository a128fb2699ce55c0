//! The refresh-token lineage: each family (one per grant, step B) as the chain of its
//! generations, each marked active, used, accepted during grace, revoked by reuse,
//! revoked or expired.
//!
//! Derived from the trace alone, as a learner would reason about it, with no query to
//! the authorization server: a token response (B, H) adds a generation, a refresh (G)
//! that succeeds retires the token it presented, a refused replay of a retired token
//! revokes the family (RFC 9700 §4.14.2), an RFC 7009 revocation ends it, and the
//! server's [`RefreshPolicy`] says when tokens expire and whether there is a grace period.

use figure2_protocol::FlowStep;
use figure2_protocol::refresh::RefreshPolicy;
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
    #[serde(skip)]
    last_used_at: u64,
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
    /// A refresh whose answer was lost: the token it presented, waiting for the
    /// network's account of what the server issued.
    lost_refresh: Option<(String, u64)>,
    /// The latest time seen (for events that carry none).
    now: u64,
}

fn field<'x>(list: &'x [(String, String)], name: &str) -> Option<&'x str> {
    list.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
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

    /// Tokens past their lifetime, families past their idle lifetime.
    fn expire(&mut self, now: u64) {
        let idle = self.policy.refresh_token_idle_lifetime;
        for family in &mut self.lineage.families {
            if family.state != FamilyState::Live {
                continue;
            }
            let live_expired = family
                .generations
                .iter()
                .filter(|g| g.status == GenerationStatus::Active)
                .any(|g| g.expires_at.is_some_and(|exp| now >= exp));
            let idle_expired = idle.is_some_and(|idle| now >= family.last_used_at.saturating_add(idle));
            if live_expired || idle_expired {
                family.end(FamilyState::Expired, GenerationStatus::Expired, now);
            }
        }
    }

    fn issue(&mut self, family: usize, token: String, t: u64, delivered: bool) {
        let f = &mut self.lineage.families[family];
        let expires_at = self.policy.expiry_for_new_token(t, f.created_at);
        let generation = f.generations.len();
        f.generations.push(Generation {
            generation,
            token,
            issued_at: t,
            expires_at,
            status: GenerationStatus::Active,
            replayed: false,
            delivered,
        });
    }

    fn exchange(&mut self, x: &TracedExchange) {
        let issued = field(&x.response, "refresh_token").filter(|v| v.starts_with("rt#")).map(str::to_owned);
        match x.request_letter {
            FlowStep::A => {
                if let (200, Some(token)) = (x.status, issued) {
                    let number = self.lineage.families.len() + 1;
                    self.lineage.families.push(Family {
                        number,
                        client_id: x.client_id.clone(),
                        created_at: x.t,
                        state: FamilyState::Live,
                        ended_at: None,
                        generations: Vec::new(),
                        last_used_at: x.t,
                    });
                    self.issue(number - 1, token, x.t, true);
                }
            }
            FlowStep::G => {
                let Some(presented) = field(&x.request, "refresh_token").map(str::to_owned) else { return };
                match x.status {
                    200 => self.refreshed(&presented, issued, x.t, true),
                    500.. => self.lost_refresh = Some((presented, x.t)),
                    _ => self.refused(&presented, &x.client_id, x.t),
                }
            }
            _ => {}
        }
    }

    /// A refresh succeeded: retire what it presented (or, in the grace period, the live
    /// successor) and add the new generation.
    fn refreshed(&mut self, presented: &str, issued: Option<String>, t: u64, delivered: bool) {
        let Some((f, g)) = self.lineage.find(presented) else { return };
        let family = &mut self.lineage.families[f];
        family.last_used_at = t;
        let Some(new) = issued else {
            // No rotation (§6: the new refresh token is optional): the same token lives on.
            return;
        };
        if family.generations[g].status == GenerationStatus::Used {
            family.generations[g].status = GenerationStatus::AcceptedDuringGrace;
        }
        for generation in &mut family.generations {
            if generation.status == GenerationStatus::Active {
                generation.status = GenerationStatus::Used;
            }
        }
        self.issue(f, new, t, delivered);
    }

    /// A refresh was refused (`invalid_grant`, or `invalid_scope`).
    fn refused(&mut self, presented: &str, client_id: &str, t: u64) {
        let Some((f, g)) = self.lineage.find(presented) else { return };
        let revoke_on_reuse = self.policy.revokes_family_on_reuse();
        let family = &mut self.lineage.families[f];
        if family.client_id != client_id {
            // §6: bound to the client it was issued to; nothing changes.
            return;
        }
        match family.generations[g].status {
            GenerationStatus::Used | GenerationStatus::AcceptedDuringGrace => {
                // RFC 9700 §4.14.2: a retired token came back.
                family.generations[g].replayed = true;
                if revoke_on_reuse {
                    family.end(FamilyState::RevokedByReuse, GenerationStatus::RevokedByReuse, t);
                }
            }
            // The live token refused for another reason than scope: it expired (or its
            // family's idle or absolute lifetime passed).
            GenerationStatus::Active if family.state == FamilyState::Live => {
                family.end(FamilyState::Expired, GenerationStatus::Expired, t);
            }
            _ => {}
        }
    }

    /// The runner's account of things the client did not see: a lost token response
    /// (it names the refresh token the server issued) and RFC 7009 revocations.
    fn network(&mut self, what: &Happening) {
        match what {
            Happening::Revoked { refresh_token, status: 200, .. } => {
                if let Some((f, _)) = self.lineage.find(refresh_token) {
                    self.lineage.families[f].end(FamilyState::Revoked, GenerationStatus::Revoked, self.now);
                }
            }
            Happening::ResponseLost { status: 200, refresh_token, .. } => {
                if let Some((presented, t)) = self.lost_refresh.take() {
                    self.refreshed(&presented, refresh_token.clone(), t, false);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figure2_runner::wire::RawHttp;

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
            raw: RawHttp::default(),
            access_token: None,
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
