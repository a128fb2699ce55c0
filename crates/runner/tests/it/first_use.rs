//! Usage-based recovery (preset `mas`) is produced by the real roles: the resource server
//! reports an access token's first use through RFC 7662 introspection, and only then does
//! the authorization server refuse the retired refresh token (scenarios/recovery-usage-based.toml).

use figure2_runner::Scenario;
use figure2_runner::run::run;

fn scenario() -> Scenario {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios/recovery-usage-based.toml");
    Scenario::load(path).expect("scenario")
}

#[tokio::test]
async fn the_mas_preset_ends_recovery_once_the_resource_server_reports_the_first_use() {
    let report = run(&scenario(), &mut |_| {}).await.expect("runs");
    assert!(report.passed, "{:?}", report.failures);
}

/// The same scenario with a resource server that never reports: the authorization server
/// never learns the successor's access token was used, so the thief's replay is accepted
/// and, since recovery revokes the unused successor, the client's own session ends.
#[tokio::test]
async fn without_first_use_reports_the_replay_is_accepted_and_the_client_logged_out() {
    let mut scenario = scenario();
    scenario.resource_server.report_first_use = Some(false);
    let report = run(&scenario, &mut |_| {}).await.expect("runs");
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(failures.iter().any(|f| f.starts_with("step 5") && f.contains("status 400 (got 200)")), "{failures:?}");
    assert!(failures.iter().any(|f| f.starts_with("step 6") && f.contains("status 200 (got 400)")), "{failures:?}");
}
