//! `GET /metrics` (issue 13): after a scenario of steps C–F, the counters say what happened.

use crate::support::*;

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn metrics_count_answers_by_outcome_and_rfc6750_error_code() {
    let h = Harness::start().await;
    let token = h.token();
    // D twice, a bare challenge, a malformed header, insufficient_scope, then F (expired).
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 200);
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 200);
    assert_eq!(h.get("/resource/read", None).await.status, 401);
    assert_eq!(h.get_with_authorization("/resource/read", "Bearer").await.status, 400);
    assert_eq!(h.get("/resource/admin", Some(&token)).await.status, 403);
    h.clock.advance(301);
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 401);
    assert_eq!(h.get("/resource/read", Some("not-a-jwt")).await.status, 401);
    // Not a protected resource: not counted.
    assert_eq!(h.get("/health", None).await.status, 200);

    let r = h.get("/metrics", None).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = r.body_text();
    let requests = |o: &str| sample(&text, &format!("figure2_resource_requests_total{{outcome=\"{o}\"}}"));
    let rejections = |e: &str| sample(&text, &format!("figure2_resource_rejections_total{{error=\"{e}\"}}"));
    assert_eq!(requests("served"), 2.0);
    assert_eq!(requests("no_token"), 1.0);
    assert_eq!(rejections("invalid_request"), 1.0);
    assert_eq!(rejections("insufficient_scope"), 1.0);
    assert_eq!(rejections("invalid_token"), 2.0);
    assert_eq!(sample(&text, "figure2_resource_request_duration_seconds_count{outcome=\"served\"}"), 2.0);
    assert!(text.ends_with("# EOF\n"));
}
