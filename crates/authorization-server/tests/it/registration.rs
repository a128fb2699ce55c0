//! A refresh reads the registration as it is *now*, not only the stored grant (issue:
//! "refresh ignores what changed since the grant"). The authorization server restarts on
//! a changed configuration and the same families meet the change on their next refresh:
//!
//! | change | a live family's next refresh |
//! |---|---|
//! | resource owner removed | `invalid_grant`, and the family is revoked |
//! | client's scope narrowed | scope omitted: narrowed to the intersection, `scope` in the answer (RFC 6749 §5.1); asked for the removed part: `invalid_scope`; nothing left: `invalid_scope` |
//! | client no longer allowed `refresh_token` | `unauthorized_client` (§5.2); the family is kept |
//! | client removed | `invalid_client` (§5.2): it cannot authenticate |
//! | client made public | RFC 9700 §4.14.2: its refresh tokens rotate whatever the policy (`authorization_code.rs`) |

use crate::support::*;
use figure2_protocol::SimulatedClock;
use figure2_protocol::client_auth::GrantType;

/// Grants for alice and bob, then a restart on the configuration `change` makes.
async fn grant_then_restart(
    name: &str,
    grants: &[(&str, &str, &str)],
    change: impl FnOnce(&mut figure2_authorization_server::ConfigFile),
) -> (TempDb, TestServer, Vec<String>) {
    let db = TempDb::new(name);
    let clock = SimulatedClock::starting_at(START);
    let before = Setup::demo().database(&db).clock(&clock).start().await;
    let mut tokens = Vec::new();
    for (user, password, scope) in grants {
        let b = ok_json(
            &before
                .token(
                    DEMO,
                    &[("grant_type", "password"), ("username", user), ("password", password), ("scope", scope)],
                )
                .await,
        );
        tokens.push(field(&b, "refresh_token"));
    }
    let addr = before.addr;
    before.stop().await;
    let after = Setup::demo().database(&db).clock(&clock).listen_on(addr).configure(change).start().await;
    (db, after, tokens)
}

#[tokio::test]
async fn a_removed_resource_owner_s_refresh_is_invalid_grant_and_the_family_is_revoked() {
    let (_db, server, tokens) = grant_then_restart(
        "removed-user",
        &[("bob", "bob-password", "read write"), ("alice", "alice-password", "read")],
        |c| c.users.retain(|u| u.username != "bob"),
    )
    .await;
    // bob's password grant is refused, and so is his old refresh token, for good.
    let r = server.token(DEMO, &[("grant_type", "password"), ("username", "bob"), ("password", "bob-password")]).await;
    assert_error(&r, 400, "invalid_grant");
    assert_eq!(server.introspect(DEMO, &tokens[0]).await["active"], false);
    assert_error(&server.refresh(DEMO, &tokens[0], None).await, 400, "invalid_grant");
    let info = server.server.store().refresh_token_info(figure2_protocol::secret::digest(&tokens[0])).await.unwrap();
    assert!(info.unwrap().family.revoked.is_some(), "the family is revoked");
    // alice is untouched.
    server.refresh_ok(DEMO, &tokens[1], None).await;
    server.stop().await;
}

#[tokio::test]
async fn a_narrowed_client_scope_narrows_the_refresh_and_refuses_the_removed_part() {
    let (_db, server, tokens) = grant_then_restart(
        "narrowed-client",
        &[("alice", "alice-password", "read write"), ("alice", "alice-password", "write")],
        |c| c.clients.iter_mut().filter(|c| c.client_id == "demo-client").for_each(|c| c.scope = "read".into()),
    )
    .await;
    // A new grant for the removed scope is refused...
    let r = server
        .token(
            DEMO,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "alice-password"),
                ("scope", "read write"),
            ],
        )
        .await;
    assert_error(&r, 400, "invalid_scope");
    // ...and so is a refresh that asks for it; the family stays usable.
    assert_error(&server.refresh(DEMO, &tokens[0], Some("read write")).await, 400, "invalid_scope");
    // Scope omitted: narrowed to what the client may still have, and said so (§5.1).
    let h = server.refresh_ok(DEMO, &tokens[0], None).await;
    assert_eq!(h["scope"], "read");
    let (_, claims) = verify_with_jwks(&field(&h, "access_token"), &server.jwks().await).unwrap();
    assert_eq!(claims["scope"], "read");
    // A grant of `write` only: nothing is left for it.
    assert_error(&server.refresh(DEMO, &tokens[1], None).await, 400, "invalid_scope");
    server.stop().await;
}

#[tokio::test]
async fn a_client_no_longer_allowed_to_refresh_is_unauthorized_client_and_keeps_its_family() {
    let (_db, server, tokens) = grant_then_restart("no-refresh-grant", &[("alice", "alice-password", "read")], |c| {
        c.clients
            .iter_mut()
            .filter(|c| c.client_id == "demo-client")
            .for_each(|c| c.grant_types.retain(|g| *g != GrantType::RefreshToken));
    })
    .await;
    assert_error(&server.refresh(DEMO, &tokens[0], None).await, 400, "unauthorized_client");
    let info = server.server.store().refresh_token_info(figure2_protocol::secret::digest(&tokens[0])).await.unwrap();
    assert!(info.unwrap().family.revoked.is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_removed_client_cannot_authenticate_to_refresh() {
    let (_db, server, tokens) = grant_then_restart("removed-client", &[("alice", "alice-password", "read")], |c| {
        c.clients.retain(|c| c.client_id != "demo-client");
    })
    .await;
    assert_error(&server.refresh(DEMO, &tokens[0], None).await, 401, "invalid_client");
    server.stop().await;
}
