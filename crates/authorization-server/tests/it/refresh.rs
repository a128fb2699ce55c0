//! Steps G→H: refreshing an access token (RFC 6749 §6) with the refresh token
//! protections of RFC 9700 §4.14 (rotation, reuse detection, lifetimes).

use crate::support::*;

/// Steps A→B for alice and demo-client: the first refresh token.
async fn first_refresh_token(server: &TestServer, scope: Option<&str>) -> String {
    field(&server.password_grant(DEMO, scope).await, "refresh_token")
}

#[tokio::test]
async fn rfc6749_6_refresh_returns_new_access_token_and_rotated_refresh_token() {
    let server = Setup::demo().start().await;
    let b = server.password_grant(DEMO, None).await;
    server.clock.advance(3600); // the access token has expired (step F), time to refresh
    let h = server.refresh_ok(DEMO, &field(&b, "refresh_token"), None).await;
    assert_eq!(h["token_type"], "Bearer");
    assert_eq!(h["expires_in"], 3600);
    assert_eq!(h["scope"], "read write");
    let new_at = field(&h, "access_token");
    assert_ne!(new_at, field(&b, "access_token"));
    let new_rt = field(&h, "refresh_token");
    assert_ne!(new_rt, field(&b, "refresh_token"), "rotation is on by default");
    let (_, claims) = verify_with_jwks(&new_at, &server.jwks().await).unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "demo-client");
    assert_eq!(claims["iat"], START + 3600);
    assert_eq!(claims["exp"], START + 7200);
    // The new refresh token works in its turn.
    let h2 = server.refresh_ok(DEMO, &new_rt, None).await;
    assert_ne!(field(&h2, "refresh_token"), new_rt);
}

#[tokio::test]
async fn rfc9700_4_14_2_replayed_refresh_token_is_invalid_grant_and_revokes_the_family() {
    let server = Setup::demo().start().await;
    let rt0 = first_refresh_token(&server, None).await;
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    // The rotated token is presented again: an attacker or the client, one of them stole it.
    server.refresh_refused(DEMO, &rt0).await;
    // "the authorization server cannot determine which party submitted the invalid
    // refresh token, it will revoke the active refresh token": the legitimate one dies too.
    server.refresh_refused(DEMO, &rt1).await;
    assert_eq!(server.introspect(DEMO, &rt1).await, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn rfc6749_6_without_rotation_no_new_refresh_token_and_the_same_one_keeps_working() {
    let server = Setup::demo().configure(|c| c.always_issue_new_refresh_token = Some(false)).start().await;
    let rt = first_refresh_token(&server, None).await;
    for _ in 0..3 {
        server.clock.advance(3600);
        let h = server.refresh_ok(DEMO, &rt, None).await;
        // §6: the server MAY issue a new refresh token; here it does not.
        assert!(h.get("refresh_token").is_none(), "{h}");
        assert!(h["access_token"].is_string());
    }
}

#[tokio::test]
async fn rfc6749_6_narrower_scope_narrows_the_access_token_but_not_the_grant() {
    let server = Setup::demo().start().await;
    let rt0 = first_refresh_token(&server, None).await;
    let jwks = server.jwks().await;
    let narrow = server.refresh_ok(DEMO, &rt0, Some("read")).await;
    assert_eq!(narrow["scope"], "read");
    let (_, claims) = verify_with_jwks(&field(&narrow, "access_token"), &jwks).unwrap();
    assert_eq!(claims["scope"], "read");
    // "If a new refresh token is issued, the refresh token scope MUST be identical to that
    // of the refresh token included by the client in the request."
    let rt1 = field(&narrow, "refresh_token");
    assert_eq!(server.introspect(DEMO, &rt1).await["scope"], "read write");
    // Scope omitted: "treated as equal to the scope originally granted".
    let full = server.refresh_ok(DEMO, &rt1, None).await;
    assert_eq!(full["scope"], "read write");
    let (_, claims) = verify_with_jwks(&field(&full, "access_token"), &jwks).unwrap();
    assert_eq!(claims["scope"], "read write");
}

#[tokio::test]
async fn rfc6749_6_refresh_with_broader_scope_is_invalid_scope() {
    let server = Setup::demo().start().await;
    let rt = first_refresh_token(&server, Some("read")).await;
    // "MUST NOT include any scope not originally granted by the resource owner": write is
    // within the client's registration but not in this grant.
    assert_error(&server.refresh(DEMO, &rt, Some("read write")).await, 400, "invalid_scope");
    assert_error(&server.refresh(DEMO, &rt, Some("admin")).await, 400, "invalid_scope");
    // A refused scope does not burn the token.
    let h = server.refresh_ok(DEMO, &rt, None).await;
    assert_eq!(h["scope"], "read");
}

#[tokio::test]
async fn rfc6749_6_refresh_token_of_another_client_is_invalid_grant() {
    let server = Setup::demo().start().await;
    let rt = first_refresh_token(&server, None).await;
    // "validate that the refresh token was issued to the authenticated client"
    server.refresh_refused(OTHER, &rt).await;
    server.refresh_refused(Auth::Post("other-client", "other-secret"), &rt).await;
    // The attempt did not harm the real client's token.
    server.refresh_ok(DEMO, &rt, None).await;
}

#[tokio::test]
async fn rfc6749_5_2_expired_refresh_token_is_invalid_grant() {
    let server = Setup::demo().configure(|c| c.refresh_token_lifetime = Some(600)).start().await;
    let rt0 = first_refresh_token(&server, None).await;
    server.clock.advance(599);
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    // Each refresh token lives refresh_token_lifetime from its own issue.
    assert_eq!(server.introspect(DEMO, &rt1).await["exp"], START + 599 + 600);
    server.clock.advance(600);
    server.refresh_refused(DEMO, &rt1).await;
}

#[tokio::test]
async fn rfc6749_5_2_expired_refresh_token_default_lifetime_is_fourteen_days() {
    let server = Setup::demo().configure(|c| c.always_issue_new_refresh_token = Some(false)).start().await;
    let rt = first_refresh_token(&server, None).await;
    server.clock.advance(14 * 24 * 3600 - 1);
    server.refresh_ok(DEMO, &rt, None).await;
    server.clock.advance(1);
    server.refresh_refused(DEMO, &rt).await;
}

#[tokio::test]
async fn rfc6749_5_2_unknown_refresh_token_is_invalid_grant() {
    let server = Setup::demo().start().await;
    for rt in ["tGzv3JOkF0XG5Qx2TlKWIA", "a", &"x".repeat(2000)] {
        let body = assert_error(&server.refresh(DEMO, rt, None).await, 400, "invalid_grant");
        assert!(body.get("access_token").is_none());
    }
    // §5.2: a missing refresh_token parameter is a malformed request instead.
    assert_error(&server.token(DEMO, &[("grant_type", "refresh_token")]).await, 400, "invalid_request");
}

#[tokio::test]
async fn rfc9700_4_14_2_reuse_interval_accepts_the_previous_token_for_30_seconds() {
    let server = Setup::demo().configure(|c| c.refresh_token_reuse_interval = Some(30)).start().await;
    let rt0 = first_refresh_token(&server, None).await;
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    // The response carrying rt1 was lost: the client retries with rt0 within the interval.
    server.clock.advance(30);
    let retry = server.refresh_ok(DEMO, &rt0, None).await;
    let rt2 = field(&retry, "refresh_token");
    assert!(rt2 != rt0 && rt2 != rt1);
    // The family is intact: the newest token works.
    server.refresh_ok(DEMO, &rt2, None).await;
}

#[tokio::test]
async fn rfc9700_4_14_2_previous_token_after_the_reuse_interval_is_reuse() {
    let server = Setup::demo().configure(|c| c.refresh_token_reuse_interval = Some(30)).start().await;
    let rt0 = first_refresh_token(&server, None).await;
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    server.clock.advance(31);
    server.refresh_refused(DEMO, &rt0).await;
    // Reuse detected: the family is revoked.
    server.refresh_refused(DEMO, &rt1).await;
}

// Regression (a bug this suite found): a refresh token two generations old is accepted within the reuse interval.
// RFC 9700 §4.14.2 (and the server's own contract in figure2_protocol::refresh: "only the
// token retired by the issue of the live token may use the grace period: never one several
// generations old"). SqliteStore::refresh re-points `retired_by` of the *live* token's
// predecessors to the replacement on every rotation, so after rt0 → rt1 → rt2, rt0 again
// looks like the predecessor of the live token rt2.
// Request: POST /token grant_type=refresh_token&refresh_token=<rt0> (Basic demo-client),
// with refresh_token_reuse_interval = 30, rt0 → rt1 → rt2 at the same instant.
// Expected: 400 {"error":"invalid_grant"} and the family revoked (rt2 refused).
#[tokio::test]
async fn rfc9700_4_14_2_token_two_generations_old_is_reuse_even_within_the_interval() {
    let server = Setup::demo().configure(|c| c.refresh_token_reuse_interval = Some(30)).start().await;
    let rt0 = first_refresh_token(&server, None).await;
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    let rt2 = field(&server.refresh_ok(DEMO, &rt1, None).await, "refresh_token");
    server.clock.advance(5);
    server.refresh_refused(DEMO, &rt0).await;
    server.refresh_refused(DEMO, &rt2).await;
}

#[tokio::test]
async fn rfc9700_4_14_2_token_retired_by_a_grace_refresh_is_still_within_the_interval() {
    let server = Setup::demo().configure(|c| c.refresh_token_reuse_interval = Some(30)).start().await;
    let rt0 = first_refresh_token(&server, None).await;
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    // A retry with rt0 (grace) yields rt2; rt1, the token retired by that, is now the
    // immediate predecessor of the live token and still within its interval.
    server.clock.advance(10);
    let rt2 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    let rt3 = field(&server.refresh_ok(DEMO, &rt1, None).await, "refresh_token");
    assert_ne!(rt2, rt3);
    server.refresh_ok(DEMO, &rt3, None).await;
}

#[tokio::test]
async fn rfc9700_4_14_2_idle_lifetime_ends_an_unused_family() {
    let server = Setup::demo().configure(|c| c.refresh_token_idle_lifetime = Some(100)).start().await;
    let mut rt = first_refresh_token(&server, None).await;
    // Used every 99 s, the family lives on past the idle lifetime.
    for _ in 0..3 {
        server.clock.advance(99);
        rt = field(&server.refresh_ok(DEMO, &rt, None).await, "refresh_token");
    }
    // Left alone for the idle lifetime, it dies.
    server.clock.advance(100);
    server.refresh_refused(DEMO, &rt).await;
    assert_eq!(server.introspect(DEMO, &rt).await, serde_json::json!({"active": false}));
}

#[tokio::test]
async fn rfc9700_4_14_2_absolute_lifetime_caps_the_family_from_the_original_grant() {
    let server = Setup::demo().configure(|c| c.refresh_token_absolute_lifetime = Some(250)).start().await;
    let rt0 = first_refresh_token(&server, None).await;
    server.clock.advance(100);
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    server.clock.advance(100);
    let rt2 = field(&server.refresh_ok(DEMO, &rt1, None).await, "refresh_token");
    // Rotation does not extend the family past START + 250.
    assert_eq!(server.introspect(DEMO, &rt2).await["exp"], START + 250);
    server.clock.advance(49);
    let rt3 = field(&server.refresh_ok(DEMO, &rt2, None).await, "refresh_token");
    server.clock.advance(1);
    server.refresh_refused(DEMO, &rt3).await;
}
