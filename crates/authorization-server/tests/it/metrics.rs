//! `GET /metrics` (issue 13): after a scenario, the counters say exactly what happened.

use crate::support::*;

/// The value of one sample line (`name{labels} value`) of the OpenMetrics text, 0 if absent.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

#[tokio::test]
async fn metrics_count_token_requests_and_refresh_outcomes_of_a_scenario() {
    let server = Setup::demo()
        .configure(|f| {
            f.refresh_token_reuse_interval = Some(30);
            f.refresh_token_lifetime = Some(600);
        })
        .start()
        .await;
    // B: two grants.
    let a = server.password_grant(DEMO, Some("read")).await;
    let b = server.password_grant(DEMO, Some("read write")).await;
    // G→H: rotation, then the old token again within the grace period.
    let a1 = server.refresh_ok(DEMO, &field(&a, "refresh_token"), None).await;
    server.refresh_ok(DEMO, &field(&a, "refresh_token"), None).await;
    // Beyond the grace period the old token is reuse: the family is revoked...
    server.clock.advance(31);
    server.refresh_refused(DEMO, &field(&a, "refresh_token")).await;
    // ...and its live token is refused as revoked.
    server.refresh_refused(DEMO, &field(&a1, "refresh_token")).await;
    // A wider scope than granted: invalid_scope.
    let r = server.refresh(DEMO, &field(&b, "refresh_token"), Some("read write admin")).await;
    assert_error(&r, 400, "invalid_scope");
    // Expiry.
    server.clock.advance(601);
    server.refresh_refused(DEMO, &field(&b, "refresh_token")).await;
    // A bad client secret.
    let r = server.refresh(Auth::Basic("demo-client", "wrong"), &field(&b, "refresh_token"), None).await;
    assert_error(&r, 401, "invalid_client");

    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("application/openmetrics-text"));
    let text = r.body_text();
    let tokens = |grant: &str, outcome: &str| {
        sample(&text, &format!("figure2_token_requests_total{{grant_type=\"{grant}\",outcome=\"{outcome}\"}}"))
    };
    assert_eq!(tokens("password", "success"), 2.0);
    assert_eq!(tokens("refresh_token", "success"), 2.0);
    assert_eq!(tokens("refresh_token", "invalid_grant"), 3.0);
    assert_eq!(tokens("refresh_token", "invalid_scope"), 1.0);
    assert_eq!(tokens("refresh_token", "invalid_client"), 1.0);
    let refresh = |outcome: &str| sample(&text, &format!("figure2_refresh_outcomes_total{{outcome=\"{outcome}\"}}"));
    assert_eq!(refresh("rotated"), 1.0);
    assert_eq!(refresh("accepted_in_grace"), 1.0);
    assert_eq!(refresh("reuse_detected"), 1.0);
    assert_eq!(refresh("revoked"), 1.0);
    assert_eq!(refresh("invalid_scope"), 1.0);
    assert_eq!(refresh("expired"), 1.0);
    assert_eq!(sample(&text, "figure2_refresh_families_revoked_total"), 1.0);
    // Every answered token request is in the latency histogram once.
    assert_eq!(sample(&text, "figure2_token_request_duration_seconds_count{grant_type=\"refresh_token\"}"), 7.0);
    assert_eq!(sample(&text, "figure2_token_request_duration_seconds_count{grant_type=\"password\"}"), 2.0);
    assert!(text.ends_with("# EOF\n"));
}

/// `figure2_store_statements_total`: where the store counts its statements (PostgreSQL),
/// `/metrics` shows the count, and a refresh moves it by what the store actually sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_statements_are_counted_on_postgres_and_absent_on_sqlite() {
    let sqlite = Setup::demo().start().await;
    let text = sqlite.get("/metrics").await.body_text();
    assert!(!text.contains("figure2_store_statements"), "SQLite does not count statements:\n{text}");

    let Some(db) = scratch_postgres("store_statements_metric").await else { return };
    let server = Setup::demo().postgres(db.url()).start().await;
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let statements = || async { sample(&server.get("/metrics").await.body_text(), "figure2_store_statements_total") };
    let before = statements().await;
    assert!(before > 0.0, "the password grant's family was written with counted statements");
    assert_eq!(server.server.store().statements_executed(), Some(before as u64));
    server.refresh_ok(DEMO, &rt, None).await;
    let after = statements().await;
    let per_refresh = after - before;
    // At least BEGIN, the family's row lock, the token's row, one write, COMMIT.
    assert!(per_refresh >= 5.0, "{per_refresh} statements for one refresh");
    assert_eq!(server.server.store().statements_executed(), Some(after as u64));
    let text = server.get("/metrics").await.body_text();
    assert!(text.contains("# TYPE figure2_store_statements counter"), "{text}");
}
