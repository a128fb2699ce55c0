//! The test-control API's guard rails (issue 13): off by default, and the binary refuses
//! it on a non-loopback address unless told explicitly. (The API itself is exercised with
//! Figure2's client under test in `crates/test-control/tests`.)

use crate::support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn test_control_is_off_by_default() {
    let server = Setup::demo().start().await;
    assert!(!server.server.test_control_enabled());
    for path in ["/control/clock", "/control/faults", "/control/families"] {
        assert_eq!(server.get(path).await.status, 404, "{path}");
    }
}

/// Runs the binary with `args` until it exits (bounded); returns (success, stderr).
fn run_binary(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authorization-server"))
        .args(["--config", concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/demo.toml"), "--database", ":memory:"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read");
            return (status.success(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the binary did not exit");
        }
        std::thread::park_timeout(Duration::from_millis(20));
    }
}

#[test]
fn the_binary_refuses_test_control_on_a_non_loopback_address() {
    let (ok, stderr) = run_binary(&["--listen", "0.0.0.0:0", "--test-control"]);
    assert!(!ok, "it must not serve");
    assert!(stderr.contains("--test-control-allow-non-loopback"), "{stderr}");
    // The allow flag alone (without --test-control) is a usage error too.
    let (ok, _) = run_binary(&["--listen", "127.0.0.1:0", "--test-control-allow-non-loopback"]);
    assert!(!ok);
}
