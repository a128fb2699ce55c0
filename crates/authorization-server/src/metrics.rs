//! `GET /metrics` — what the authorization server did, in the Prometheus text format
//! (OpenMetrics 1.0, which Prometheus scrapes natively), with `prometheus-client`.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `figure2_token_requests_total` | counter | `grant_type`, `outcome` | every `POST /token`: `outcome` is `success` or the RFC 6749 §5.2 error code |
//! | `figure2_token_request_duration_seconds` | histogram | `grant_type` | time from the request's body to its answer |
//! | `figure2_refresh_outcomes_total` | counter | `outcome` | steps G→H decided: `rotated`, `accepted` (no rotation), `accepted_in_grace`, `reuse_detected`, `revoked`, `expired`, `idle_expired`, `invalid_scope`, `subject_removed`, `dpop_key_mismatch`, `unknown`, `wrong_client` |
//! | `figure2_refresh_families_revoked_total` | counter | — | families revoked because a rotated refresh token came back (RFC 9700 §4.14.2) |
//! | `figure2_userinfo_requests_total` | counter | `outcome` | `GET/POST /userinfo`: `success` or the RFC 6750 §3.1 error code |
//! | `figure2_store_statements_total` | counter | — | statements this instance sent to its database (`BEGIN` and `COMMIT` included); only where the store counts them (PostgreSQL) |
//!
//! Label values come from fixed lists (an unknown `grant_type` is `other`), so a client
//! cannot grow the number of series.

use crate::store::{RefreshOutcome, Store};
use figure2_http::HttpResponse;
use figure2_protocol::ErrorResponse;
use figure2_protocol::family::RefreshRejection;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenRequestLabels {
    grant_type: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GrantLabels {
    grant_type: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.25 ms to ~4 s in 15 doubling buckets: a refresh on an idle machine takes well under a
/// millisecond, an argon2 password check tens of milliseconds, an overloaded fsync seconds.
pub(crate) fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The authorization server's metrics (one set per server: tests run several in one process).
pub struct Metrics {
    registry: Registry,
    token_requests: Family<TokenRequestLabels, Counter>,
    token_duration: HistogramFamily<GrantLabels>,
    refresh_outcomes: Family<OutcomeLabels, Counter>,
    families_revoked: Counter,
    userinfo_requests: Family<OutcomeLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let token_requests = Family::<TokenRequestLabels, Counter>::default();
        registry.register(
            "figure2_token_requests",
            "Token requests (RFC 6749 §3.2) by grant_type and outcome (success or the §5.2 error code)",
            token_requests.clone(),
        );
        let token_duration: HistogramFamily<GrantLabels> = Family::new_with_constructor(latency_histogram);
        registry.register(
            "figure2_token_request_duration_seconds",
            "Seconds from a token request's body to its answer, by grant_type",
            token_duration.clone(),
        );
        let refresh_outcomes = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "figure2_refresh_outcomes",
            "Refresh requests (RFC 6749 §6, steps G-H) by decision",
            refresh_outcomes.clone(),
        );
        let families_revoked = Counter::default();
        registry.register(
            "figure2_refresh_families_revoked",
            "Refresh-token families revoked because a rotated token was presented again (RFC 9700 §4.14.2)",
            families_revoked.clone(),
        );
        let userinfo_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "figure2_userinfo_requests",
            "UserInfo requests (OpenID Connect Core §5.3) by outcome (success or the RFC 6750 §3.1 error code)",
            userinfo_requests.clone(),
        );
        Self { registry, token_requests, token_duration, refresh_outcomes, families_revoked, userinfo_requests }
    }
}

/// The grant types with a series of their own; anything else is `other`.
fn grant_label(grant_type: Option<&str>) -> &'static str {
    match grant_type {
        Some("authorization_code") => "authorization_code",
        Some("refresh_token") => "refresh_token",
        Some("password") => "password",
        Some("client_credentials") => "client_credentials",
        None => "none",
        Some(_) => "other",
    }
}

impl Metrics {
    /// Adds the store's own counters (read from the store at each scrape), where it keeps
    /// any: `figure2_store_statements_total` for PostgreSQL.
    pub fn observe_store(&mut self, store: Arc<dyn Store>) {
        if store.statements_executed().is_some() {
            self.registry.register_collector(Box::new(StoreStatements(store)));
        }
    }

    /// One answered token request.
    pub(crate) fn token_request(&self, grant_type: Option<&str>, error: Option<&ErrorResponse>, took: Duration) {
        let grant_type = grant_label(grant_type);
        let outcome = error.map_or("success", |e| e.error.as_str());
        self.token_requests.get_or_create(&TokenRequestLabels { grant_type, outcome }).inc();
        self.token_duration.get_or_create(&GrantLabels { grant_type }).observe(took.as_secs_f64());
    }

    /// A token request answered by an injected fault (test control): counted as the
    /// error it answered with, or `lost` when no answer was sent.
    pub(crate) fn token_request_outcome(&self, grant_type: Option<&str>, outcome: &str) {
        let outcome = match outcome {
            "invalid_request" => "invalid_request",
            "invalid_client" => "invalid_client",
            "invalid_grant" => "invalid_grant",
            "unauthorized_client" => "unauthorized_client",
            "unsupported_grant_type" => "unsupported_grant_type",
            "invalid_scope" => "invalid_scope",
            "server_error" => "server_error",
            "temporarily_unavailable" => "temporarily_unavailable",
            "lost" => "lost",
            _ => "other",
        };
        self.token_requests.get_or_create(&TokenRequestLabels { grant_type: grant_label(grant_type), outcome }).inc();
    }

    /// Steps G→H decided (the hook in the token endpoint's refresh grant).
    pub fn refresh_outcome(&self, outcome: &RefreshOutcome) {
        let label = match &outcome.transition.decision {
            Ok(g) if g.within_grace_period => "accepted_in_grace",
            Ok(g) if g.new_refresh_token.is_some() => "rotated",
            Ok(_) => "accepted",
            Err(rejection) => {
                if *rejection == RefreshRejection::Reused && outcome.transition.revokes_family() {
                    self.families_revoked.inc();
                }
                match rejection {
                    RefreshRejection::Reused => "reuse_detected",
                    RefreshRejection::Revoked => "revoked",
                    RefreshRejection::Expired => "expired",
                    RefreshRejection::Idle => "idle_expired",
                    RefreshRejection::ScopeExceedsGrant | RefreshRejection::ScopeExceedsClientRegistration => {
                        "invalid_scope"
                    }
                    RefreshRejection::SubjectRemoved => "subject_removed",
                    // RFC 9449 §5: a DPoP-bound family refreshed without its key.
                    RefreshRejection::DpopProofMissing | RefreshRejection::DpopKeyMismatch => "dpop_key_mismatch",
                    RefreshRejection::Unknown => "unknown",
                    RefreshRejection::IssuedToAnotherClient => "wrong_client",
                }
            }
        };
        self.refresh_outcomes.get_or_create(&OutcomeLabels { outcome: label }).inc();
    }

    pub(crate) fn userinfo_request(&self, outcome: &'static str) {
        self.userinfo_requests.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// `figure2_store_statements_total`: the store's own count, read at each scrape (the
/// store counts every statement it sends; dividing the increase by the refreshes
/// answered gives the statements per refresh, which benchmarks report).
struct StoreStatements(Arc<dyn Store>);

impl std::fmt::Debug for StoreStatements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreStatements")
    }
}

impl Collector for StoreStatements {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(statements) = self.0.statements_executed() else { return Ok(()) };
        let counter = ConstCounter::new(statements);
        let metric = encoder.encode_descriptor(
            "figure2_store_statements",
            "Statements sent to the database by this instance (BEGIN and COMMIT included)",
            None,
            counter.metric_type(),
        )?;
        counter.encode(metric)
    }
}

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn handle(server: &crate::AuthorizationServer, method: &http::Method) -> HttpResponse {
    if method != http::Method::GET && method != http::Method::HEAD {
        return figure2_http::text(405, "text/plain", "use GET", &[("allow", "GET, HEAD")]);
    }
    figure2_http::text(200, CONTENT_TYPE, server.metrics.encode(), &[("cache-control", "no-store")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_labels_stay_bounded() {
        let m = Metrics::default();
        m.token_request(Some("refresh_token"), None, Duration::from_millis(2));
        m.token_request(Some("made-up-grant-type"), None, Duration::from_millis(2));
        m.token_request_outcome(Some("refresh_token"), "anything at all");
        let text = m.encode();
        assert!(text.contains("figure2_token_requests_total{grant_type=\"refresh_token\",outcome=\"success\"} 1"));
        assert!(text.contains("figure2_token_requests_total{grant_type=\"other\",outcome=\"success\"} 1"));
        assert!(text.contains("figure2_token_requests_total{grant_type=\"refresh_token\",outcome=\"other\"} 1"));
        assert!(
            text.contains("figure2_token_request_duration_seconds_bucket{le=\"0.004\",grant_type=\"refresh_token\"} 1")
        );
        assert!(text.contains("# TYPE figure2_token_requests counter"));
        assert!(text.ends_with("# EOF\n"));
    }
}
