//! A database file written by release 0.1.0 (commit e1422c9, `tests/fixtures/v1-store.db`,
//! made over HTTP with `config/demo.toml`; its tokens are in `v1-store.json`) opens with
//! this release: the schema migrates at start, every live refresh token still refreshes,
//! every retired or revoked one is still refused, and the signing keys are kept.

use crate::support::*;
use figure2_protocol::SimulatedClock;
use serde_json::Value;

const FIXTURE_DB: &[u8] = include_bytes!("../fixtures/v1-store.db");
const FIXTURE: &str = include_str!("../fixtures/v1-store.json");

fn tokens(fixture: &Value, kind: &str) -> Vec<String> {
    fixture[kind].as_array().expect("fixture list").iter().map(|t| field(t, "refresh_token")).collect()
}

/// A copy of the fixture, and a clock a minute after it was made.
fn copy_of_fixture(name: &str) -> (TempDb, SimulatedClock, Value) {
    let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture JSON");
    let db = TempDb::new(name);
    std::fs::write(&db.path, FIXTURE_DB).expect("write the fixture copy");
    let made_at = fixture["made_at"].as_u64().expect("made_at");
    (db, SimulatedClock::starting_at(made_at + 60), fixture)
}

#[tokio::test]
async fn a_0_1_0_file_keeps_working_live_tokens_refresh() {
    let (db, clock, fixture) = copy_of_fixture("migrate-live");
    let server = Setup::demo().database(&db).clock(&clock).start().await;
    for (token, expected) in tokens(&fixture, "live").iter().zip(fixture["live"].as_array().unwrap()) {
        let info = server.introspect(DEMO, token).await;
        assert_eq!(info["active"], true, "a live 0.1.0 token is active: {info}");
        assert_eq!(info["sub"], expected["subject"]);
        let h = server.refresh_ok(DEMO, token, None).await;
        assert_eq!(h["scope"], expected["scope"]);
        // Rotation goes on from the migrated state: the new token refreshes, the old is reuse.
        let next = field(&h, "refresh_token");
        server.refresh_ok(DEMO, &next, None).await;
    }
    // The two signing keys of the file are published, the newest signs.
    let jwks = server.jwks().await;
    assert_eq!(kids(&jwks).len(), 2, "{jwks}");
    let b = server.password_grant(DEMO, None).await;
    assert_eq!(kid_of(&field(&b, "access_token")), kids(&jwks)[1]);
    server.stop().await;
}

#[tokio::test]
async fn a_0_1_0_file_keeps_refusing_retired_and_revoked_tokens() {
    let (db, clock, fixture) = copy_of_fixture("migrate-refused");
    let server = Setup::demo().database(&db).clock(&clock).start().await;
    for token in tokens(&fixture, "revoked") {
        assert_eq!(server.introspect(DEMO, &token).await["active"], false);
        server.refresh_refused(DEMO, &token).await;
    }
    // A retired token of family A is reuse: refused, and (RFC 9700 §4.14.2) its family's
    // live token dies with it.
    let retired = tokens(&fixture, "retired");
    let live_of_a = &tokens(&fixture, "live")[0];
    assert_eq!(server.introspect(DEMO, &retired[0]).await["active"], false);
    server.refresh_refused(DEMO, &retired[0]).await;
    server.refresh_refused(DEMO, live_of_a).await;
    server.refresh_refused(DEMO, &retired[1]).await;
    // Family B is untouched.
    server.refresh_ok(DEMO, &tokens(&fixture, "live")[1], None).await;
    server.stop().await;
    // The migrated file opens again (the migration is not re-run).
    let again = Setup::demo().database(&db).clock(&clock).start().await;
    again.refresh_refused(DEMO, live_of_a).await;
    again.stop().await;
}
