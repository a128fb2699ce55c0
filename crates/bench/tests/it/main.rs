//! Smoke test: the harness runs end to end with tiny durations and reports every line,
//! ratio and section. It checks the report's structure, never its numbers (beyond "no
//! errors" and "some statements per refresh"). The PostgreSQL lines run where
//! `FIGURE2_TEST_POSTGRES` names a server and the `authorization-server` binary is built
//! (`cargo test --workspace` builds it); with `FIGURE2_REQUIRE_POSTGRES` (CI) they must.

use serde_json::Value;
use std::process::Command;

#[test]
fn quick_run_reports_every_line_and_section() {
    let output = Command::new(env!("CARGO_BIN_EXE_figure2-bench"))
        .args([
            "--quick",
            "--json",
            "--rounds",
            "1",
            "--duration",
            "0.2",
            "--warmup",
            "0.05",
            "--concurrency",
            "4",
            "--password-concurrency",
            "2",
            "--families",
            "500",
            "--pool",
            "50",
        ])
        .output()
        .expect("the harness runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "harness failed:\n{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stderr}"));

    assert!(report["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    let versions = report["versions"].as_array().expect("versions");
    assert!(versions.iter().any(|v| v[0] == "hyper"), "{versions:?}");

    let lines = report["lines"].as_array().expect("lines");
    let names: Vec<&str> = lines.iter().filter_map(|l| l["name"].as_str()).collect();
    for wanted in [
        "hello",
        "verify",
        "standin",
        "rs-repeated",
        "rs-distinct",
        "as-refresh",
        "as-refresh-norotation",
        "as-password",
        "client-cycles",
    ] {
        assert!(names.contains(&wanted), "no line {wanted}: {names:?}");
    }
    for line in lines {
        for field in ["rps", "p50_us", "p99_us", "errors", "requests", "concurrency"] {
            assert!(line[field].is_number(), "{} lacks {field}: {line}", line["name"]);
        }
        assert!(line["server_cpu_us"].is_number() || line["server_cpu_us"].is_null());
        assert_eq!(line["rounds"].as_array().map(Vec::len), Some(1), "{line}");
    }

    // The PostgreSQL lines: measured where PostgreSQL is configured (CI requires it),
    // otherwise skipped with the reason in the report.
    let pg_lines = ["as-refresh-pg1", "as-refresh-pg2", "as-refresh-pg3"];
    let skipped = report["skipped"].as_array().expect("skipped");
    if std::env::var_os("FIGURE2_REQUIRE_POSTGRES").is_some() || names.contains(&"as-refresh-pg1") {
        for (instances, wanted) in pg_lines.iter().enumerate() {
            let line =
                lines.iter().find(|l| l["name"] == *wanted).unwrap_or_else(|| panic!("no line {wanted}: {skipped:?}"));
            assert_eq!(line["instances"].as_u64(), Some(instances as u64 + 1), "{line}");
            assert_eq!(line["errors"].as_u64(), Some(0), "{line}");
            assert!(line["requests"].as_u64().is_some_and(|n| n > 0), "{line}");
            // Every refresh is at least BEGIN, a locked read, a write and COMMIT.
            assert!(line["statements_per_request"].as_f64().is_some_and(|s| s >= 4.0), "{line}");
            assert!(line["database_cpu_us"].is_number() || line["database_cpu_us"].is_null(), "{line}");
        }
        assert!(
            report["setup"]["postgres"].as_str().is_some_and(|s| s.starts_with("PostgreSQL ")),
            "{}",
            report["setup"]
        );
    } else {
        for wanted in pg_lines {
            let s = skipped
                .iter()
                .find(|s| s["line"] == wanted)
                .unwrap_or_else(|| panic!("{wanted} neither ran nor was skipped"));
            assert!(s["reason"].as_str().is_some_and(|r| !r.is_empty()), "{s}");
        }
    }

    let ratios: Vec<&str> =
        report["ratios"].as_array().expect("ratios").iter().filter_map(|r| r["name"].as_str()).collect();
    for wanted in ["rs-repeated / hello", "rs-distinct / verify", "as-refresh / standin", "as-refresh p99"] {
        assert!(ratios.iter().any(|r| r.starts_with(wanted)), "no ratio {wanted}: {ratios:?}");
    }
    let suite = &report["scenario_suite"];
    assert!(suite["files"].as_u64().is_some_and(|n| n > 0), "{suite}");
    assert!(suite["wall_s"].is_number());
    assert!(report["memory"]["as_under_load"]["rss_kib"].is_number(), "{}", report["memory"]);
    assert!(report["memory"]["rs_under_load"]["rss_kib"].is_number(), "{}", report["memory"]);
    assert!(report["targets_met"].is_boolean());
}
