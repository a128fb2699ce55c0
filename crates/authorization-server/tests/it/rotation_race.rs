//! Atomic rotation under load: one refresh token presented by 100 clients at the same
//! instant, each on its own connection (RFC 9700 §4.14.2, ARCHITECTURE.md "at most one
//! live refresh token per family").
//!
//! `SqliteStore::refresh` runs the check and the replacement in one `BEGIN IMMEDIATE`
//! transaction, so the 100 requests are serialised: the first finds the token live and
//! rotates it, every later one finds it retired.
//! - Without a grace period, a retired token is reuse: exactly one 200, 99 × 400
//!   `invalid_grant`, and the family is revoked (the winner's new token dies too).
//! - With `refresh_token_reuse_interval`, a retired token that is the live token's
//!   immediate predecessor is accepted within the interval. Every later request presents
//!   such a token (each grace refresh re-points the predecessors to the new live token),
//!   so all 100 succeed, one after the other: each rotation retires the token the
//!   previous one issued. What always holds, and what is asserted: no 5xx, at most one
//!   live token in the family afterwards, and every refresh token handed out but the
//!   newest one retired.

use crate::support::*;
use figure2_http::{HttpClient, ReceivedResponse};
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::family::RefreshTokenStatus;
use figure2_protocol::secret::digest;
use http::Method;
use std::collections::HashSet;
use std::sync::Arc;

const N: usize = 100;

/// Presents `refresh_token` `n` times at once, each request on a fresh connection.
async fn storm(server: &TestServer, refresh_token: &str, n: usize) -> Vec<ReceivedResponse> {
    let url = server.url("/token");
    let basic = ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let body = form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]);
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            // A client of its own: its own connection pool, hence its own connection.
            let http = HttpClient::new();
            let (url, basic, body, barrier) = (url.clone(), basic.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let headers = [FORM, ("authorization", basic.as_str())];
                http.send(Method::POST, &url, &headers, Some(body.into())).await.expect("HTTP exchange")
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("request task"));
    }
    answers
}

/// Splits the answers into the granted token responses and the number of refusals,
/// asserting that every answer is a 200 or a 400 `invalid_grant` (never a 5xx).
fn tally(answers: &[ReceivedResponse]) -> (Vec<serde_json::Value>, usize) {
    let mut granted = Vec::new();
    let mut refused = 0;
    for r in answers {
        assert!(r.status < 500, "server error under contention: {} {}", r.status, r.body_text());
        if r.status == 200 {
            granted.push(ok_json(r));
        } else {
            assert_error(r, 400, "invalid_grant");
            refused += 1;
        }
    }
    (granted, refused)
}

/// The store's view of each token: how many are the family's live (`Active`) token.
async fn statuses(server: &TestServer, tokens: &[String]) -> Vec<RefreshTokenStatus> {
    let mut statuses = Vec::new();
    for t in tokens {
        let info = server.server.store().refresh_token_info(digest(t)).await.expect("store lookup");
        statuses.push(info.expect("every token handed out is stored").status());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9700_4_14_2_hundred_concurrent_refreshes_of_one_token_succeed_exactly_once() {
    let server = Setup::demo().start().await;
    let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");

    let (granted, refused) = tally(&storm(&server, &rt0, N).await);
    assert_eq!(granted.len(), 1, "exactly one refresh wins the race");
    assert_eq!(refused, N - 1, "every other presentation is invalid_grant");

    // The 99 losers presented a retired token: reuse, so the family is revoked and the
    // winner's new token is dead too (RFC 9700 §4.14.2). Nothing in the family is live.
    let winner = field(&granted[0], "refresh_token");
    let all = [rt0.clone(), winner.clone()];
    assert!(statuses(&server, &all).await.iter().all(|s| *s == RefreshTokenStatus::Revoked));
    server.refresh_refused(DEMO, &winner).await;
    server.refresh_refused(DEMO, &rt0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9700_4_14_2_hundred_concurrent_refreshes_without_reuse_revocation_still_rotate_once() {
    // With revoke_family_on_reuse off, the race still has one winner, and the winner's
    // token is the family's one live token afterwards.
    let server = Setup::demo().configure(|c| c.revoke_family_on_reuse = Some(false)).start().await;
    let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");

    let (granted, refused) = tally(&storm(&server, &rt0, N).await);
    assert_eq!((granted.len(), refused), (1, N - 1));
    let winner = field(&granted[0], "refresh_token");
    let s = statuses(&server, &[rt0.clone(), winner.clone()]).await;
    assert!(matches!(s[0], RefreshTokenStatus::Retired { .. }), "{s:?}");
    assert_eq!(s[1], RefreshTokenStatus::Active);
    server.refresh_ok(DEMO, &winner, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9700_4_14_2_hundred_concurrent_refreshes_within_the_reuse_interval_leave_one_live_token() {
    let server = Setup::demo().configure(|c| c.refresh_token_reuse_interval = Some(30)).start().await;
    let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");

    let (granted, refused) = tally(&storm(&server, &rt0, N).await);
    // The simulated clock does not move: every request after the first presents the live
    // token's immediate predecessor within the interval, and is accepted (see the module
    // documentation). Each acceptance rotated the family once more.
    assert_eq!((granted.len(), refused), (N, 0));
    let issued: Vec<String> = granted.iter().map(|g| field(g, "refresh_token")).collect();
    assert_eq!(issued.iter().collect::<HashSet<_>>().len(), N, "every answer carries a fresh refresh token");

    // At most one live token in the family: exactly one of the tokens handed out, and
    // every other one (and rt0) retired.
    let s = statuses(&server, &issued).await;
    let live: Vec<&String> =
        issued.iter().zip(&s).filter(|(_, s)| **s == RefreshTokenStatus::Active).map(|(t, _)| t).collect();
    assert_eq!(live.len(), 1, "one live token, got {s:?}");
    assert!(
        s.iter().filter(|s| **s != RefreshTokenStatus::Active).all(|s| matches!(s, RefreshTokenStatus::Retired { .. }))
    );
    assert!(matches!(statuses(&server, std::slice::from_ref(&rt0)).await[0], RefreshTokenStatus::Retired { .. }));
    let live = live[0].clone();

    // The grace period is a window, not a pardon: once it has passed, presenting the
    // original token is reuse and revokes the family, the live token included.
    server.clock.advance(31);
    server.refresh_refused(DEMO, &rt0).await;
    server.refresh_refused(DEMO, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9700_4_14_2_concurrent_refreshes_of_a_token_two_generations_old_never_get_grace() {
    // The same storm with a token the family has rotated past twice: reuse even inside
    // the interval, so nobody wins and the family is revoked.
    let server = Setup::demo().configure(|c| c.refresh_token_reuse_interval = Some(30)).start().await;
    let rt0 = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let rt1 = field(&server.refresh_ok(DEMO, &rt0, None).await, "refresh_token");
    let rt2 = field(&server.refresh_ok(DEMO, &rt1, None).await, "refresh_token");

    let (granted, refused) = tally(&storm(&server, &rt0, N).await);
    assert_eq!((granted.len(), refused), (0, N));
    assert!(statuses(&server, &[rt0, rt1, rt2.clone()]).await.iter().all(|s| *s == RefreshTokenStatus::Revoked));
    server.refresh_refused(DEMO, &rt2).await;
}
