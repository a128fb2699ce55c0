//! `GET /metrics` — what the resource server answered, in the Prometheus text format
//! (OpenMetrics 1.0), with `prometheus-client`.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `figure2_resource_requests_total` | counter | `outcome` | protected-resource requests: `served` (step D), `no_token` (RFC 6750 §3.1 bare challenge), or the §3.1 error code |
//! | `figure2_resource_rejections_total` | counter | `error` | refusals by RFC 6750 §3.1 error code: `invalid_request`, `invalid_token` (step F), `insufficient_scope` |
//! | `figure2_resource_request_duration_seconds` | histogram | `outcome` | time to answer a protected-resource request |

use figure2_http::HttpResponse;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

/// The resource server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabels, Counter>,
    rejections: Family<ErrorLabels, Counter>,
    duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// 50 µs to ~0.8 s in 15 doubling buckets: a cached token is checked in microseconds.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "figure2_resource_requests",
            "Protected-resource requests by outcome (served, no_token, or the RFC 6750 §3.1 error code)",
            requests.clone(),
        );
        let rejections = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "figure2_resource_rejections",
            "Protected-resource requests refused, by RFC 6750 §3.1 error code",
            rejections.clone(),
        );
        let duration: Family<OutcomeLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "figure2_resource_request_duration_seconds",
            "Seconds to answer a protected-resource request, by outcome",
            duration.clone(),
        );
        Self { registry, requests, rejections, duration }
    }
}

impl Metrics {
    /// Records one answered protected-resource request. The outcome is read from the
    /// answer itself: every RFC 6750 §3.1 code has its own status (400, 401, 403), and a
    /// 401 without `error=` is the bare challenge of a request with no token.
    pub(crate) fn observe(&self, response: &HttpResponse, took: Duration) {
        let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok());
        let outcome = match response.status().as_u16() {
            200 => "served",
            401 if challenge.is_some_and(|c| c.contains("error=")) => "invalid_token",
            401 => "no_token",
            403 => "insufficient_scope",
            400 | 413 => "invalid_request",
            _ => "other",
        };
        self.requests.get_or_create(&OutcomeLabels { outcome }).inc();
        if matches!(outcome, "invalid_token" | "insufficient_scope" | "invalid_request") {
            self.rejections.get_or_create(&ErrorLabels { error: outcome }).inc();
        }
        self.duration.get_or_create(&OutcomeLabels { outcome }).observe(took.as_secs_f64());
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

pub(crate) fn handle(metrics: &Metrics, method: &http::Method) -> HttpResponse {
    if method != http::Method::GET && method != http::Method::HEAD {
        return figure2_http::text(405, "text/plain", "use GET", &[("allow", "GET, HEAD")]);
    }
    figure2_http::text(
        200,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        metrics.encode(),
        &[("cache-control", "no-store")],
    )
}
