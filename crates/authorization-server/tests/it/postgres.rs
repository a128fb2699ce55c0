//! Several authorization-server instances over one PostgreSQL database (issue 11).
//!
//! Each test makes a schema of its own and starts instances on 127.0.0.1:0 that share it
//! and one simulated clock. Without `FIGURE2_TEST_POSTGRES` they say so and return; with
//! `FIGURE2_REQUIRE_POSTGRES` (CI) they fail instead.
//!
//! RFC 9700 §4.14.2: whichever instance receives them, two presentations of one refresh
//! token are decided one after the other (the family's row lock): one winner, and the
//! others are reuse, answered `invalid_grant` (RFC 6749 §5.2), never a 5xx.

use crate::support::*;
use figure2_authorization_server::store::postgres::ScratchDatabase;
use figure2_http::{HttpClient, ReceivedResponse};
use figure2_protocol::SimulatedClock;
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::family::RefreshTokenStatus;
use figure2_protocol::secret::digest;
use http::Method;
use std::sync::Arc;

/// The issuer every instance names (as behind one load balancer).
const ISSUER: &str = "http://figure2.invalid";

/// `n` instances over `db`, sharing one clock and one issuer.
async fn instances(db: &ScratchDatabase, n: usize) -> Vec<TestServer> {
    instances_with(db, n, |_| {}).await
}

/// [`instances`], each configured by `f`.
async fn instances_with(
    db: &ScratchDatabase,
    n: usize,
    f: impl Fn(&mut figure2_authorization_server::ConfigFile),
) -> Vec<TestServer> {
    let clock = SimulatedClock::starting_at(START);
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        servers.push(Setup::demo().clock(&clock).issuer(ISSUER).postgres(db.url()).configure(&f).start().await);
    }
    servers
}

/// Presents `refresh_token` `n` times at once, request `i` to instance `i % instances`,
/// each on a connection of its own.
async fn storm(servers: &[TestServer], refresh_token: &str, n: usize) -> Vec<(usize, ReceivedResponse)> {
    let basic = ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let body = form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]);
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let instance = i % servers.len();
            let http = HttpClient::new();
            let url = servers[instance].url("/token");
            let (basic, body, barrier) = (basic.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let headers = [FORM, ("authorization", basic.as_str())];
                (instance, http.send(Method::POST, &url, &headers, Some(body.into())).await.expect("HTTP exchange"))
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_refreshes_over_three_instances_have_exactly_one_winner() {
    let Some(db) = scratch_postgres("hundred_concurrent_refreshes").await else { return };
    let servers = instances(&db, 3).await;
    let granted = servers[0].password_grant(DEMO, None).await;
    let rt = field(&granted, "refresh_token");

    let answers = storm(&servers, &rt, 100).await;
    let mut winners = Vec::new();
    let mut refused_by = [0usize; 3];
    for (instance, r) in &answers {
        assert!(r.status < 500, "instance {instance} answered {} under contention: {}", r.status, r.body_text());
        if r.status == 200 {
            winners.push((*instance, ok_json(r)));
        } else {
            // Never invalid_request (Hydra's answer to race losers): the loser presented a
            // token that is no longer live, RFC 6749 §5.2 `invalid_grant`.
            assert_error(r, 400, "invalid_grant");
            refused_by[*instance] += 1;
        }
    }
    assert_eq!(winners.len(), 1, "exactly one refresh wins across the instances: {winners:?}");
    assert_eq!(refused_by.iter().sum::<usize>(), 99);
    assert!(refused_by.iter().all(|&n| n > 0), "every instance refused some: {refused_by:?}");

    // The 99 losers presented a retired token: reuse (RFC 9700 §4.14.2) revoked the
    // family, so the winner's new token is refused too, at every instance.
    let new_rt = field(&winners[0].1, "refresh_token");
    for server in &servers {
        server.refresh_refused(DEMO, &new_rt).await;
    }
    let info = servers[2].server.store().refresh_token_info(digest(&new_rt)).await.expect("store").expect("stored");
    assert_eq!(info.status(), RefreshTokenStatus::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_at_any_instance_revokes_the_family_at_every_instance() {
    let Some(db) = scratch_postgres("replay_at_any_instance").await else { return };
    let servers = instances(&db, 3).await;
    for (rotate_at, replay_at) in [(0, 1), (1, 2), (2, 0), (1, 1)] {
        let rt1 = field(&servers[0].password_grant(DEMO, None).await, "refresh_token");
        let rt2 = field(&servers[rotate_at].refresh_ok(DEMO, &rt1, None).await, "refresh_token");
        // The thief (or a stale device) presents the rotated token at another instance.
        servers[replay_at].refresh_refused(DEMO, &rt1).await;
        for server in &servers {
            server.refresh_refused(DEMO, &rt2).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_publish_one_key_set_and_a_rotation_reaches_all() {
    let Some(db) = scratch_postgres("one_key_set").await else { return };
    let servers = instances(&db, 3).await;
    // Started one after the other over an empty database: one first key between them.
    let first = servers[0].jwks().await;
    assert_eq!(first["keys"].as_array().map(Vec::len), Some(1), "{first}");
    for server in &servers[1..] {
        assert_eq!(server.jwks().await, first);
    }
    // rotate-key at one instance; the others load it on their next reload (every
    // KEY_RELOAD_INTERVAL while serving; called directly here, nothing sleeps).
    let kid = servers[1].server.rotate_signing_key().expect("rotate");
    for server in &servers {
        server.server.reload_signing_keys().expect("reload");
        let jwks = server.jwks().await;
        let kids: Vec<_> =
            jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids.last(), Some(&kid), "the new key is published (and signs) everywhere");
        assert_eq!(server.server.signing_key().kid, kid);
    }
    // An access token signed at one instance is active at another (RFC 7662).
    let at = field(&servers[2].password_grant(DEMO, None).await, "access_token");
    let introspected = servers[0].introspect(DEMO, &at).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    // Retired at one instance, gone everywhere after the reload.
    let old = first["keys"][0]["kid"].as_str().unwrap().to_owned();
    assert!(servers[0].server.retire_signing_key(&old).expect("retire"));
    for server in &servers {
        server.server.reload_signing_keys().expect("reload");
        assert_eq!(server.jwks().await["keys"].as_array().map(Vec::len), Some(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_started_together_over_an_empty_database_add_one_key() {
    let Some(db) = scratch_postgres("started_together").await else { return };
    let clock = SimulatedClock::starting_at(START);
    let starts: Vec<_> = (0..3)
        .map(|_| {
            let (clock, url) = (clock.clone(), db.url().to_owned());
            tokio::spawn(async move { Setup::demo().clock(&clock).postgres(&url).start().await })
        })
        .collect();
    let mut servers = Vec::new();
    for start in starts {
        servers.push(start.await.expect("instance starts"));
    }
    let jwks = servers[0].jwks().await;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
    for server in &servers[1..] {
        assert_eq!(server.jwks().await, jwks);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_made_at_one_instance_refreshes_at_the_others_and_survives_their_restart() {
    let Some(db) = scratch_postgres("survives_restart").await else { return };
    let mut servers = instances(&db, 2).await;
    let mut rt = field(&servers[0].password_grant(DEMO, None).await, "refresh_token");
    for i in 0..6 {
        rt = field(&servers[i % 2].refresh_ok(DEMO, &rt, None).await, "refresh_token");
    }
    // Both instances go away; a new one over the same database carries on (no step A).
    let clock = servers[0].clock.clone();
    for server in servers.drain(..) {
        server.stop().await;
    }
    let fresh = Setup::demo().clock(&clock).postgres(db.url()).start().await;
    let next = fresh.refresh_ok(DEMO, &rt, None).await;
    assert_ne!(field(&next, "refresh_token"), rt);
    assert_eq!(fresh.server.store().live_family_count().await.expect("count"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_code_redemptions_at_two_instances_have_one_winner() {
    let Some(db) = scratch_postgres("code_redemptions").await else { return };
    let servers = instances(&db, 2).await;
    // A code saved through one instance's store, redeemed at both at once (RFC 6749 §4.1.2:
    // single use; the second use revokes what the first issued).
    let code = "postgres-test-code";
    let grant = figure2_protocol::authorization::AuthorizationCodeGrant {
        client_id: "demo-client".into(),
        subject: "alice".into(),
        scope: figure2_protocol::Scope::parse("read").unwrap(),
        redirect_uri: None,
        code_challenge: None,
        expires_at: START + 60,
    };
    servers[0].server.store().save_code(digest(code), grant).await.expect("save code");
    let params = [("grant_type", "authorization_code"), ("code", code)];
    let (a, b) = tokio::join!(servers[0].token(DEMO, &params), servers[1].token(DEMO, &params));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "one redemption wins: {} / {}", a.body_text(), b.body_text());
    let loser = if a.status == 400 { &a } else { &b };
    assert_error(loser, 400, "invalid_grant");
    let winner = if a.status == 200 { &a } else { &b };
    servers[1].refresh_refused(DEMO, &field(&ok_json(winner), "refresh_token")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpop_nonces_and_proof_jtis_are_shared_between_instances() {
    use crate::dpop::{PASSWORD, new_key, token_with_proofs, unique_jti};
    use figure2_protocol::dpop::ProofClaims;
    let Some(db) = scratch_postgres("dpop_shared").await else { return };
    let servers = instances_with(&db, 2, |c| c.dpop_nonce = true).await;
    let key = new_key();
    let now = figure2_protocol::Clock::now(&servers[0].clock);
    let claims = |nonce: Option<String>| ProofClaims {
        jti: unique_jti(),
        htm: "POST".into(),
        htu: format!("{ISSUER}/token"),
        iat: now.into(),
        ath: None,
        nonce,
    };
    // RFC 9449 §8: the nonce instance 1 hands out is accepted at instance 2.
    let r = token_with_proofs(&servers[0], DEMO, &PASSWORD, &[&key.sign(&claims(None)).unwrap()]).await;
    assert_error(&r, 400, "use_dpop_nonce");
    let nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    let proof = key.sign(&claims(Some(nonce.clone()))).unwrap();
    let ok = token_with_proofs(&servers[1], DEMO, &PASSWORD, &[&proof]).await;
    assert_eq!(ok_json(&ok)["token_type"], "DPoP");
    assert_eq!(ok.header("dpop-nonce"), Some(nonce.as_str()), "both instances send the same nonce");
    // §11.1: the same proof replayed at the other instance is refused.
    let replayed = token_with_proofs(&servers[0], DEMO, &PASSWORD, &[&proof]).await;
    let body = assert_error(&replayed, 400, "invalid_dpop_proof");
    assert!(body["error_description"].as_str().unwrap_or("").contains("already used"), "{body}");
}
