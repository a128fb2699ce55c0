//! Signing key rotation (RFC 7517 JWK Set with several keys, RFC 9068 `kid`).

use crate::support::*;
use figure2_protocol::SimulatedClock;

async fn client_credentials_token(server: &TestServer) -> String {
    field(&ok_json(&server.token(DEMO, &[("grant_type", "client_credentials")]).await), "access_token")
}

#[tokio::test]
async fn rfc7517_key_rotation_publishes_both_keys_and_new_tokens_carry_the_new_kid() {
    let server = Setup::demo().start().await;
    let old_at = client_credentials_token(&server).await;
    let old_kid = kid_of(&old_at);
    assert_eq!(kids(&server.jwks().await), vec![old_kid.clone()]);

    server.clock.advance(1);
    let new_kid = server.server.rotate_signing_key().expect("rotate");
    assert_ne!(new_kid, old_kid);
    let jwks = server.jwks().await;
    assert_eq!(kids(&jwks), vec![old_kid.clone(), new_kid.clone()]);
    let new_at = client_credentials_token(&server).await;
    assert_eq!(kid_of(&new_at), new_kid);
    // Both verify against the published set, and the server itself still accepts both.
    verify_with_jwks(&old_at, &jwks).expect("old token still verifies");
    verify_with_jwks(&new_at, &jwks).expect("new token verifies");
    assert_eq!(server.introspect(DEMO, &old_at).await["active"], true);
    assert_eq!(server.introspect(DEMO, &new_at).await["active"], true);

    // Retiring the old key removes it: its tokens stop verifying.
    assert!(server.server.retire_signing_key(&old_kid).expect("retire"));
    let jwks = server.jwks().await;
    assert_eq!(kids(&jwks), vec![new_kid.clone()]);
    assert!(verify_with_jwks(&old_at, &jwks).is_err());
    assert_eq!(server.introspect(DEMO, &old_at).await, serde_json::json!({"active": false}));
    verify_with_jwks(&new_at, &jwks).unwrap();
}

#[tokio::test]
async fn rfc7517_the_signing_key_cannot_be_retired() {
    let server = Setup::demo().start().await;
    let kid = kids(&server.jwks().await).remove(0);
    assert!(!server.server.retire_signing_key(&kid).unwrap(), "the only key");
    server.clock.advance(1);
    let new_kid = server.server.rotate_signing_key().unwrap();
    assert!(!server.server.retire_signing_key(&new_kid).unwrap(), "the key that signs");
    assert!(!server.server.retire_signing_key("no-such-kid").unwrap());
    assert_eq!(kids(&server.jwks().await), vec![kid, new_kid]);
}

#[tokio::test]
async fn rotated_keys_survive_a_restart_and_the_newest_still_signs() {
    let db = TempDb::new("keys");
    let clock = SimulatedClock::starting_at(START);
    let first = Setup::demo().database(&db).clock(&clock).start().await;
    let addr = first.addr;
    let old_at = client_credentials_token(&first).await;
    clock.advance(1);
    let new_kid = first.server.rotate_signing_key().unwrap();
    let jwks_before = first.jwks().await;
    first.stop().await;

    let second = Setup::demo().database(&db).clock(&clock).listen_on(addr).start().await;
    let jwks = second.jwks().await;
    assert_eq!(jwks, jwks_before);
    verify_with_jwks(&old_at, &jwks).unwrap();
    assert_eq!(kid_of(&client_credentials_token(&second).await), new_kid);
    second.stop().await;
}

// Regression (a bug this suite found) (minor, not an RFC rule; persistence of the "newest key signs" contract of
// AuthorizationServer::rotate_signing_key): keys are reloaded `ORDER BY created_at, kid`
// (store.rs, signing_keys), and created_at has one-second resolution while kids end in a
// random suffix. Keys rotated within the same second come back in random order after a
// restart, so an older key may sign instead of the newest one. With 8 rotations in one
// second the test below fails about 7 times in 8.
// Expected: after restart, new access tokens carry the kid returned by the last
#[tokio::test]
async fn keys_rotated_within_one_second_keep_their_order_across_a_restart() {
    let db = TempDb::new("same-second");
    let clock = SimulatedClock::starting_at(START);
    let first = Setup::demo().database(&db).clock(&clock).start().await;
    let addr = first.addr;
    let mut newest = String::new();
    for _ in 0..8 {
        newest = first.server.rotate_signing_key().unwrap();
    }
    first.stop().await;
    let second = Setup::demo().database(&db).clock(&clock).listen_on(addr).start().await;
    assert_eq!(kid_of(&client_credentials_token(&second).await), newest);
    second.stop().await;
}
