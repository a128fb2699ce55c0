//! Every preset of `figure2_protocol::presets`, over HTTP, on the three situations the
//! products disagree about: a lost response retried, two refreshes of one token at once,
//! and a stale generation replayed after the family moved on. Each row's expectations
//! follow the source the preset cites (see `crates/protocol/src/presets.rs`).

use crate::support::*;

/// What a preset's documented behaviour predicts.
struct Expect {
    preset: &'static str,
    /// The retry of a refresh whose answer was lost, 1 s later, is accepted.
    lost_retry_ok: bool,
    /// Both of two refreshes of one token at the same instant are accepted.
    concurrent_both_ok: bool,
    /// A token two generations old, replayed 60 s later, is accepted.
    stale_replay_ok: bool,
    /// After that replay the client's own newest token still works.
    live_after_replay_ok: bool,
}

const fn row(preset: &'static str, lost: bool, concurrent: bool, stale: bool, live: bool) -> Expect {
    Expect {
        preset,
        lost_retry_ok: lost,
        concurrent_both_ok: concurrent,
        stale_replay_ok: stale,
        live_after_replay_ok: live,
    }
}

const EXPECTED: &[Expect] = &[
    // RFC 9700 §4.14.2 strictly: reuse revokes the family.
    row("figure2", false, false, false, false),
    // defaults.js: a confidential client's token rotates only after 70 % of 14 days.
    row("oidc-provider", true, true, true, true),
    // config.schema.json rotation_grace_period = 0s; fosite handleRefreshTokenReuse.
    row("hydra", false, false, false, false),
    // 5 min grace for the immediate predecessor; an older token is reuse.
    row("hydra-graceful", true, true, false, false),
    // revokeRefreshToken = false: a used token stays valid.
    row("keycloak", true, true, true, true),
    // revokeRefreshToken = true, max reuse 0: the client session is detached.
    row("keycloak-revoke", false, false, false, false),
    // reuseInterval 3s returns the issued successor; a later claim is refused, nothing revoked.
    row("dex", true, true, false, true),
    // refresh_token_grace_time = 5; nothing revoked.
    row("rauthy", true, true, false, true),
    // oauth2.rs: reuse destroys the session.
    row("kanidm", false, false, false, false),
    // token.rs: accepted while the successor's access token is unused; replay keeps the session.
    row("mas", true, true, false, true),
    // RefreshTokenUsage = ReUse.
    row("duende", true, true, true, true),
    // OneTimeOnly: consumed tokens refused, nothing revoked.
    row("duende-onetime", false, false, false, true),
    // reuseRefreshTokens = true.
    row("spring", true, true, true, true),
    // 30 s reuse interval for the previous token; breach detection revokes the family.
    row("auth0", true, true, false, false),
];

async fn start(preset: &str) -> TestServer {
    let name = preset.to_owned();
    Setup::demo().configure(move |c| c.preset = Some(name)).start().await
}

/// The refresh token to use after a response: the new one, or the same if none came.
fn next(body: &serde_json::Value, presented: &str) -> String {
    body["refresh_token"].as_str().unwrap_or(presented).to_owned()
}

#[tokio::test]
async fn every_preset_is_tested_here() {
    let mut tested: Vec<&str> = EXPECTED.iter().map(|e| e.preset).collect();
    let mut shipped = figure2_protocol::presets::names();
    tested.sort_unstable();
    shipped.sort_unstable();
    assert_eq!(tested, shipped);
}

#[tokio::test]
async fn lost_response_retry_under_each_preset() {
    for e in EXPECTED {
        let server = start(e.preset).await;
        let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");
        server.clock.advance(10);
        let lost = server.refresh_ok(DEMO, &rt0, None).await; // the client never sees it
        server.clock.advance(1);
        let retry = server.refresh(DEMO, &rt0, None).await;
        assert_eq!(retry.status == 200, e.lost_retry_ok, "{}: lost-response retry: {}", e.preset, retry.body_text());
        if e.preset == "dex" {
            // Idempotent: the successor already issued, the same string.
            assert_eq!(json_body(&retry)["refresh_token"], lost["refresh_token"], "dex returns the issued successor");
        }
        server.stop().await;
    }
}

#[tokio::test]
async fn concurrent_refresh_under_each_preset() {
    for e in EXPECTED {
        let server = start(e.preset).await;
        let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");
        server.clock.advance(10);
        let (a, b) = tokio::join!(server.refresh(DEMO, &rt0, None), server.refresh(DEMO, &rt0, None));
        let ok = [&a, &b].iter().filter(|r| r.status == 200).count();
        assert!(ok >= 1, "{}: one of two concurrent refreshes must win", e.preset);
        assert_eq!(ok == 2, e.concurrent_both_ok, "{}: {} / {}", e.preset, a.body_text(), b.body_text());
        server.stop().await;
    }
}

#[tokio::test]
async fn stale_generation_replay_under_each_preset() {
    for e in EXPECTED {
        let server = start(e.preset).await;
        let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");
        server.clock.advance(10);
        let rt1 = next(&server.refresh_ok(DEMO, &rt0, None).await, &rt0);
        server.clock.advance(10);
        let rt2 = next(&server.refresh_ok(DEMO, &rt1, None).await, &rt1);
        server.clock.advance(60);
        // A second install of the client replays the token it kept from step B.
        let replay = server.refresh(DEMO, &rt0, None).await;
        assert_eq!(replay.status == 200, e.stale_replay_ok, "{}: stale replay: {}", e.preset, replay.body_text());
        let rt2 = if replay.status == 200 { next(&json_body(&replay), &rt2) } else { rt2 };
        let live = server.refresh(DEMO, &rt2, None).await;
        assert_eq!(live.status == 200, e.live_after_replay_ok, "{}: live token after replay", e.preset);
        server.stop().await;
    }
}

/// matrix-authentication-service: the predecessor is accepted again only while the access
/// token issued with its successor is unused; introspection (RFC 7662) is how the
/// authorization server learns of a use.
#[tokio::test]
async fn mas_recovery_ends_when_the_successors_access_token_is_introspected() {
    let server = start("mas").await;
    let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");
    server.clock.advance(10);
    let lost = server.refresh_ok(DEMO, &rt0, None).await;
    server.clock.advance(600);
    // Unused for ten minutes: still a lost response, still recoverable (no time limit).
    let retry = server.refresh_ok(DEMO, &rt0, None).await;
    // The retry retired the unused successor.
    server.refresh_refused(DEMO, &field(&lost, "refresh_token")).await;
    // The resource server introspects the access token of the retry: it is in use.
    assert_eq!(server.introspect(DEMO, &field(&retry, "access_token")).await["active"], true);
    server.refresh_refused(DEMO, &rt0).await;
    // Nothing was revoked: the client's token works.
    server.refresh_ok(DEMO, &field(&retry, "refresh_token"), None).await;
    server.stop().await;
}

/// Spring Authorization Server gives public clients no refresh token at all.
#[tokio::test]
async fn spring_gives_public_clients_no_refresh_token() {
    for (preset, expected) in [("spring", false), ("figure2", true)] {
        let server = start(preset).await;
        let policy = &server.server.config().refresh;
        assert_eq!(policy.issue_refresh_tokens_to_public_clients, expected, "{preset}");
        server.stop().await;
    }
}
