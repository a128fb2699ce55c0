//! The roles' internal rejection reasons, shown to the learner next to the wire's error
//! code. On the wire the authorization server says only `invalid_grant` (RFC 6749 §5.2)
//! and the resource server only `invalid_token` (RFC 6750 §3.1): saying why would help an
//! attacker. The reason (`RefreshRejection::Reused`, `TokenRejection::Expired`, …) goes
//! to the role's log, as a `reason` field next to the refused token's fingerprint
//! (`rt` at step G, `token` at step F).
//!
//! [`ReasonLayer`] is a `tracing` layer that keeps those pairs, so the trace can put the
//! reason beside the exchange that carried the token. It reads the stable `reason_code`
//! the roles log next to their English `reason`, and keeps the typed [`Rejection`]: the
//! views translate it by variant, never by parsing the English. It is keyed by fingerprint, not by
//! thread or task, because the servers answer on tasks of their own.

use figure2_client::{Exchange, Step};
use figure2_protocol::access_token::AccessTokenRejection;
use figure2_protocol::dpop::DpopRejection;
use figure2_protocol::family::RefreshRejection;
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::fingerprint;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Filter};

/// The newest reasons, by the fingerprint of the refused token. Bounded: the oldest
/// half is dropped past this many.
const KEPT: usize = 4096;

/// Why a role refused a token, as the role knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The authorization server refused a refresh token (step G → H).
    Refresh(RefreshRejection),
    /// The resource server refused an access token (step E → F).
    AccessToken(AccessTokenRejection),
    /// The resource server refused a token longer than it reads.
    AccessTokenTooLarge,
    /// The access token's `crit` header names extensions the resource server does not know.
    UnsupportedCritical,
    /// The key with the token's `kid` is not for the header's `alg`.
    KeyAlgorithmMismatch,
    /// The resource server refused a DPoP proof or its key binding (RFC 9449 §4.3, §7.1).
    Dpop(DpopRejection),
}

impl Rejection {
    /// The reason a role's `reason_code` names (the resource server's codes are tried
    /// for `token`, the authorization server's for `rt`).
    pub fn from_code(code: &str, at_resource_server: bool) -> Option<Self> {
        if !at_resource_server {
            return RefreshRejection::from_code(code).map(Self::Refresh);
        }
        match code {
            "too_large" => Some(Self::AccessTokenTooLarge),
            "unsupported_critical" => Some(Self::UnsupportedCritical),
            "key_algorithm_mismatch" => Some(Self::KeyAlgorithmMismatch),
            _ => AccessTokenRejection::from_code(code)
                .map(Self::AccessToken)
                .or_else(|| DpopRejection::from_code(code).map(Self::Dpop)),
        }
    }

    /// Every reason the roles can give, for the translation test.
    pub fn all() -> Vec<Self> {
        let mut all: Vec<Self> = RefreshRejection::ALL.into_iter().map(Self::Refresh).collect();
        all.extend(AccessTokenRejection::ALL.into_iter().map(Self::AccessToken));
        all.extend([Self::AccessTokenTooLarge, Self::UnsupportedCritical, Self::KeyAlgorithmMismatch]);
        all.extend(DpopRejection::all().into_iter().map(Self::Dpop));
        all
    }
}

/// In the role's own (English) words.
impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refresh(r) => r.fmt(f),
            Self::AccessToken(r) => r.fmt(f),
            Self::AccessTokenTooLarge => f.write_str("token exceeds the resource server's size limit"),
            Self::UnsupportedCritical => {
                f.write_str("crit header names extensions this server does not understand (RFC 7515 §4.1.11)")
            }
            Self::KeyAlgorithmMismatch => {
                f.write_str("the key with this kid is not for the header's alg (RFC 8725 §3.1)")
            }
            Self::Dpop(r) => r.fmt(f),
        }
    }
}

/// Exports carry the stable code (`reused`, `expired`, `replayed`, …).
impl serde::Serialize for Rejection {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Refresh(r) => s.serialize_str(r.code()),
            Self::AccessToken(r) => s.serialize_str(r.code()),
            Self::AccessTokenTooLarge => s.serialize_str("too_large"),
            Self::UnsupportedCritical => s.serialize_str("unsupported_critical"),
            Self::KeyAlgorithmMismatch => s.serialize_str("key_algorithm_mismatch"),
            Self::Dpop(r) => s.serialize_str(&r.code()),
        }
    }
}

fn reasons() -> &'static Mutex<HashMap<String, Rejection>> {
    static REASONS: OnceLock<Mutex<HashMap<String, Rejection>>> = OnceLock::new();
    REASONS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Records the `reason` of the roles' refusals.
pub struct ReasonLayer;

/// The layer, filtered to the two servers' refusals; compose it into a subscriber
/// (the `figure2` binary does).
pub fn layer<S>() -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    ReasonLayer.with_filter(filter())
}

fn filter<S>() -> impl Filter<S> {
    Targets::new()
        .with_target("figure2_authorization_server", LevelFilter::INFO)
        .with_target("figure2_resource_server", LevelFilter::INFO)
}

/// Installs the layer as the global subscriber unless one is already set (which then
/// should include [`layer`]). Called by every world, so tests need no set-up.
pub fn install() {
    use tracing_subscriber::layer::SubscriberExt;
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer()));
    });
}

#[derive(Default)]
struct Fields {
    reason_code: Option<String>,
    /// The fingerprint of the refused token, and whether the resource server refused it.
    token: Option<(String, bool)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "reason_code" => self.reason_code = Some(value.to_owned()),
            // The fingerprint of the refused refresh token (AS) or access token (RS).
            "rt" => self.token = Some((value.trim_start_matches("rt#").to_owned(), false)),
            "token" => self.token = Some((value.trim_start_matches("at#").to_owned(), true)),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for ReasonLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (Some(code), Some((token, at_resource_server))) = (fields.reason_code, fields.token)
            && let Some(reason) = Rejection::from_code(&code, at_resource_server)
            && let Ok(mut reasons) = reasons().lock()
        {
            if reasons.len() >= KEPT {
                let old: Vec<String> = reasons.keys().take(KEPT / 2).cloned().collect();
                old.iter().for_each(|k| _ = reasons.remove(k));
            }
            reasons.insert(token, reason);
        }
    }
}

/// Why the exchange's token was refused, if it was and the role said why.
pub fn reason_for(x: &Exchange) -> Option<Rejection> {
    if x.status < 400 {
        return None;
    }
    let token = match x.step {
        Step::Refresh => FormParams::parse(x.request_body.as_bytes()).ok()?.get("refresh_token")?.to_owned(),
        Step::ProtectedResource | Step::InvalidToken => {
            let auth = x.request_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("authorization"))?;
            auth.1.split_once(' ')?.1.trim().to_owned()
        }
        Step::AuthorizationGrant => return None,
    };
    reasons().lock().ok()?.get(&fingerprint(&token)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_names_its_reason() {
        for reason in Rejection::all() {
            let code = serde_json::to_value(reason).unwrap();
            let at_rs = !matches!(reason, Rejection::Refresh(_));
            assert_eq!(Rejection::from_code(code.as_str().unwrap(), at_rs), Some(reason), "{code}");
        }
    }
}
