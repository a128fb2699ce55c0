//! State kept in the SQLite file survives a restart: refresh-token families, rotation
//! history and signing keys.

use crate::support::*;
use figure2_protocol::SimulatedClock;
use serde_json::json;

#[tokio::test]
async fn restart_keeps_refresh_tokens_and_the_signing_key() {
    let db = TempDb::new("restart");
    let clock = SimulatedClock::starting_at(START);
    let first = Setup::demo().database(&db).clock(&clock).start().await;
    let (addr, issuer) = (first.addr, first.issuer.clone());
    let b = first.password_grant(DEMO, None).await;
    let (at0, rt0) = (field(&b, "access_token"), field(&b, "refresh_token"));
    let jwks_before = first.jwks().await;
    first.stop().await;

    clock.advance(600);
    // Same file, same port (hence the same issuer), same clock.
    let second = Setup::demo().database(&db).clock(&clock).listen_on(addr).start().await;
    assert_eq!(second.issuer, issuer);
    // The same key is published: tokens issued before the restart still verify (step D).
    let jwks_after = second.jwks().await;
    assert_eq!(jwks_after, jwks_before);
    let (_, claims) = verify_with_jwks(&at0, &jwks_after).expect("old access token verifies after restart");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(second.introspect(DEMO, &at0).await["active"], true);
    // The refresh token issued before the restart still works (step G → H).
    assert_eq!(second.introspect(DEMO, &rt0).await["active"], true);
    let h = second.refresh_ok(DEMO, &rt0, None).await;
    let at1 = field(&h, "access_token");
    assert_eq!(kid_of(&at1), kid_of(&at0), "no new key was made on restart");
    verify_with_jwks(&at1, &jwks_after).unwrap();
    second.stop().await;
}

#[tokio::test]
async fn restart_keeps_rotation_history_so_reuse_is_still_detected() {
    let db = TempDb::new("reuse");
    let clock = SimulatedClock::starting_at(START);
    let first = Setup::demo().database(&db).clock(&clock).start().await;
    let addr = first.addr;
    let rt0 = field(&first.password_grant(DEMO, None).await, "refresh_token");
    let rt1 = field(&first.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    // A second family, revoked before the restart.
    let other = field(&first.password_grant(DEMO, None).await, "refresh_token");
    assert_eq!(first.revoke(DEMO, &other, None).await.status, 200);
    first.stop().await;

    let second = Setup::demo().database(&db).clock(&clock).listen_on(addr).start().await;
    assert_eq!(second.introspect(DEMO, &rt0).await, json!({"active": false}));
    assert_eq!(second.introspect(DEMO, &other).await, json!({"active": false}));
    second.refresh_refused(DEMO, &other).await;
    // Replaying the retired rt0 is still detected as reuse and revokes rt1's family.
    second.refresh_refused(DEMO, &rt0).await;
    second.refresh_refused(DEMO, &rt1).await;
    second.stop().await;
}

#[tokio::test]
async fn restart_keeps_used_authorization_codes_used() {
    use http::Method;
    let db = TempDb::new("codes");
    let clock = SimulatedClock::starting_at(START);
    let first = Setup::demo().database(&db).clock(&clock).start().await;
    let addr = first.addr;
    let query = form(&[("response_type", "code"), ("client_id", "demo-client"), ("state", "r")]);
    let body = form(&[("request", &query), ("username", "bob"), ("password", "bob-password"), ("decision", "approve")]);
    let r = first.send_raw(Method::POST, "/authorize", &[FORM], body).await;
    assert_eq!(r.status, 303, "{}", r.body_text());
    let code = query_params(r.header("location").unwrap()).get("code").unwrap().to_owned();
    let b = ok_json(&first.token(DEMO, &[("grant_type", "authorization_code"), ("code", &code)]).await);
    first.stop().await;

    let second = Setup::demo().database(&db).clock(&clock).listen_on(addr).start().await;
    let r = second.token(DEMO, &[("grant_type", "authorization_code"), ("code", &code)]).await;
    assert_error(&r, 400, "invalid_grant");
    // §4.1.2: the replay revokes what the code issued, across the restart too.
    second.refresh_refused(DEMO, &field(&b, "refresh_token")).await;
    second.stop().await;
}
