//! The roles' internal rejection reasons, shown to the learner next to the wire's error
//! code. On the wire the authorization server says only `invalid_grant` (RFC 6749 §5.2)
//! and the resource server only `invalid_token` (RFC 6750 §3.1): saying why would help an
//! attacker. The reason (`RefreshRejection::Reused`, `TokenRejection::Expired`, …) goes
//! to the role's log, as a `reason` field next to the refused token's fingerprint
//! (`rt` at step G, `token` at step F).
//!
//! [`ReasonLayer`] is a `tracing` layer that keeps those pairs, so the trace can put the
//! reason beside the exchange that carried the token. It is keyed by fingerprint, not by
//! thread or task, because the servers answer on tasks of their own.

use figure2_client::{Exchange, Step};
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

fn reasons() -> &'static Mutex<HashMap<String, String>> {
    static REASONS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
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
    reason: Option<String>,
    token: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "reason" => self.reason = Some(value.to_owned()),
            // The fingerprint of the refused refresh token (AS) or access token (RS).
            "rt" | "token" => self.token = Some(value.trim_start_matches("rt#").trim_start_matches("at#").to_owned()),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for ReasonLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let (Some(reason), Some(token)) = (fields.reason, fields.token)
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
pub fn reason_for(x: &Exchange) -> Option<String> {
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
    reasons().lock().ok()?.get(&fingerprint(&token)).cloned()
}
