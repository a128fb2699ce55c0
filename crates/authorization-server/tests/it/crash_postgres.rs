//! Crash safety of two real `authorization-server` processes over one PostgreSQL database
//! (issue 11): SIGKILL of one instance in the middle of a refresh storm across both loses
//! nothing a client was told, and brings nothing back to life.
//!
//! Both processes run the binary with `--database` the same scratch schema and one issuer
//! (as behind a load balancer). Independent families are refreshed in a loop, each by its
//! own client, which sends its requests to the two instances in turn and always presents
//! the newest refresh token it got a 200 for. Instance A is killed (SIGKILL: no shutdown
//! code runs, its connections to PostgreSQL drop, PostgreSQL rolls back whatever it had
//! not committed) while requests are in flight at both. Then:
//! 1. The database alone, before anything else: every refresh token a client got a 200
//!    for is stored, every older token of its family is retired, nothing is revoked, and
//!    the newest one is the family's live token, unless the client's last request went
//!    to the killed instance and got no answer (committed there, answer lost).
//! 2. Through the surviving instance B: each family's newest token works (a new
//!    successor), or, in the lost-answer case of step 1, is refused as the reuse it is.
//! 3. The killed instance restarted over the same schema: the successors B issued work
//!    there too (one state, whichever instance answers).
//! 4. No rotated or revoked token works again, at the restarted instance nor at B.
//!    Checked last, because presenting a rotated token revokes its family by design
//!    (RFC 9700 §4.14.2).
//!
//! Bounded: a few seconds of refreshing, no fixed sleeps (readiness is polled). Without
//! `FIGURE2_TEST_POSTGRES` it says so and returns; with `FIGURE2_REQUIRE_POSTGRES` (CI)
//! it fails instead.

use crate::crash::{Remote, ServerProcess};
use crate::support::*;
use figure2_authorization_server::PostgresStore;
use figure2_authorization_server::store::Store;
use figure2_http::HttpClient;
use figure2_protocol::family::RefreshTokenStatus;
use figure2_protocol::secret::digest;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Independent families refreshed at once (half their requests at each instance).
const CHAINS: usize = 12;
/// The kill comes after this many answered refreshes (or when the storm times out).
const KILL_AFTER: usize = CHAINS * 20;
/// A chain stops on its own after this many refreshes (bounds the storm if the kill is late).
const MAX_PER_CHAIN: usize = 400;
/// The issuer both instances name, as behind one load balancer.
const ISSUER: &str = "http://figure2.invalid";

/// What one client saw of its family.
struct Chain {
    /// Every refresh token the servers gave it, oldest first (index 0: from the grant).
    tokens: Vec<String>,
    /// Which instance answered each refresh (`tokens[k + 1]` came from `answered_by[k]`).
    answered_by: Vec<usize>,
    /// Its last request got no answer (it went to the killed instance): that instance
    /// may or may not have committed it.
    interrupted: bool,
}

impl Chain {
    fn newest(&self) -> &str {
        self.tokens.last().expect("a chain starts with a token")
    }
}

/// Refreshes one family in a loop, request `k` to instance `(start + k) % 2`, until an
/// instance stops answering (or a bound is hit). Every answer before that must be a 200:
/// the client presents only the newest token it was given.
async fn refresh_loop(
    remotes: [Remote; 2],
    start: usize,
    first: String,
    answered: Arc<AtomicUsize>,
    wake: Arc<tokio::sync::Notify>,
) -> Chain {
    let mut chain = Chain { tokens: vec![first], answered_by: Vec::new(), interrupted: false };
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut k = start;
    while chain.tokens.len() <= MAX_PER_CHAIN && Instant::now() < deadline {
        let instance = k % 2;
        k += 1;
        match remotes[instance].refresh(chain.newest()).await {
            Ok(r) => {
                assert!(r.status < 500, "instance {instance} answered {}: {}", r.status, r.body_text());
                let body = ok_json(&r);
                chain.tokens.push(field(&body, "refresh_token"));
                chain.answered_by.push(instance);
                if answered.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    wake.notify_one();
                }
            }
            Err(_) => {
                chain.interrupted = true;
                break;
            }
        }
    }
    chain
}

async fn status_in(store: &PostgresStore, token: &str) -> Option<RefreshTokenStatus> {
    store.refresh_token_info(digest(token)).await.expect("read the database").map(|info| info.status())
}

/// A client of its own per chain: chains do not share connections.
fn fresh(remote: &Remote) -> Remote {
    Remote { base: remote.base.clone(), http: HttpClient::new().with_timeout(Duration::from_secs(5)) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_one_instance_during_a_refresh_storm_over_postgres_loses_no_answered_token_and_revives_none() {
    let Some(db) = scratch_postgres("sigkill_postgres").await else { return };
    let started = Instant::now();
    let logs = TempDb::new("crash-postgres");
    let mut a = ServerProcess::start_on(db.url(), &logs.path, "a", Some(ISSUER)).await;
    let b = ServerProcess::start_on(db.url(), &logs.path, "b", Some(ISSUER)).await;
    let (remote_a, remote_b) = (a.remote(), b.remote());

    // A family revoked before the crash (RFC 7009), at A, after a rotation at B: it must stay dead.
    let revoked = {
        let rt0 = remote_a.first_refresh_token().await;
        let rt1 = field(&ok_json(&remote_b.refresh(&rt0).await.expect("refresh")), "refresh_token");
        let r = remote_a.post("/revoke", &[("token", &rt1)]).await.expect("revoke");
        assert_eq!(r.status, 200, "{}", r.body_text());
        vec![rt0, rt1]
    };

    let mut firsts = Vec::new();
    for i in 0..CHAINS {
        firsts.push(if i % 2 == 0 { &remote_a } else { &remote_b }.first_refresh_token().await);
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let wake = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = firsts
        .into_iter()
        .enumerate()
        .map(|(i, rt)| {
            let remotes = [fresh(&remote_a), fresh(&remote_b)];
            tokio::spawn(refresh_loop(remotes, i, rt, answered.clone(), wake.clone()))
        })
        .collect();
    // Kill A while the chains are still refreshing at both instances.
    let _ = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
    a.kill();
    let mut chains = Vec::new();
    for task in tasks {
        chains.push(task.await.expect("refresh loop"));
    }
    let total = answered.load(Ordering::SeqCst);
    let interrupted = chains.iter().filter(|c| c.interrupted).count();
    let by_b = chains.iter().flat_map(|c| &c.answered_by).filter(|&&i| i == 1).count();
    assert!(total >= CHAINS * 2, "the storm barely started: {total} refreshes answered");
    assert!(by_b > 0 && by_b < total, "the storm went to both instances: {by_b} of {total} answered by B");
    assert!(interrupted > 0, "the kill came after every chain had stopped: nothing was in flight");
    eprintln!(
        "postgres crash test: {total} refreshes answered ({by_b} by the survivor), {interrupted} of {CHAINS} \
         chains stopped by the SIGKILL"
    );

    // 1. The database as the crash left it (B is idle: the chains have all stopped).
    let mut lost_answers = 0;
    {
        let store = PostgresStore::connect(db.url()).await.expect("connect after the crash");
        for (i, chain) in chains.iter().enumerate() {
            let (newest, older) = chain.tokens.split_last().expect("non-empty chain");
            for (generation, token) in older.iter().enumerate() {
                let status = status_in(&store, token).await;
                assert!(
                    matches!(status, Some(RefreshTokenStatus::Retired { .. })),
                    "chain {i} token #{generation}: {status:?}, expected retired"
                );
            }
            match status_in(&store, newest).await {
                Some(RefreshTokenStatus::Active) => {}
                // The request cut by the kill committed a rotation whose answer never arrived.
                Some(RefreshTokenStatus::Retired { .. }) if chain.interrupted => lost_answers += 1,
                other => panic!("chain {i}: the newest acknowledged token is {other:?} after the crash"),
            }
        }
        assert_eq!(status_in(&store, &revoked[1]).await, Some(RefreshTokenStatus::Revoked));
    }

    // 2. The surviving instance carries every family on from its newest acknowledged token.
    let mut successors = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let active = json_body(&remote_b.post("/introspect", &[("token", chain.newest())]).await.expect("introspect"))
            ["active"]
            .as_bool()
            .expect("active is a boolean");
        let r = remote_b.refresh(chain.newest()).await.expect("refresh at the survivor");
        assert!(r.status < 500, "chain {i}: the survivor answered {}: {}", r.status, r.body_text());
        if active {
            successors.push(Some(field(&ok_json(&r), "refresh_token")));
        } else {
            // The lost-answer case of step 1: that token was rotated, so this is reuse.
            assert!(chain.interrupted, "chain {i}: an unrotated token is inactive at the survivor");
            assert_error(&r, 400, "invalid_grant");
            successors.push(None);
        }
    }
    assert_eq!(successors.iter().filter(|s| s.is_none()).count(), lost_answers);
    eprintln!("postgres crash test: {lost_answers} rotations committed whose answer the kill cut off");

    // 3. The killed instance restarted over the same schema: what B issued works there.
    let restarted = ServerProcess::start_on(db.url(), &logs.path, "a-restarted", Some(ISSUER)).await;
    let remote_a = restarted.remote();
    let mut latest = Vec::new();
    for (i, successor) in successors.iter().enumerate() {
        latest.push(match successor {
            Some(rt) => {
                let r = remote_a.refresh(rt).await.expect("refresh at the restarted instance");
                assert_eq!(r.status, 200, "chain {i}: {}", r.body_text());
                Some(field(&ok_json(&r), "refresh_token"))
            }
            None => None,
        });
    }

    // 4. Nothing rotated or revoked works again, at either instance.
    let remotes = [&remote_a, &remote_b];
    for (i, chain) in chains.iter().enumerate() {
        let retired = chain.tokens.iter().chain(successors[i].iter());
        for (generation, token) in retired.enumerate() {
            let at = remotes[generation % 2];
            let r = at.refresh(token).await.expect("replay");
            assert_eq!(r.status, 400, "chain {i}: rotated token #{generation} worked again: {}", r.body_text());
            assert_error(&r, 400, "invalid_grant");
        }
        // The replays were reuse: the family, with its newest token, is revoked everywhere.
        if let Some(newest) = &latest[i] {
            for at in remotes {
                assert_error(&at.refresh(newest).await.expect("refresh"), 400, "invalid_grant");
            }
        }
    }
    for token in &revoked {
        for at in remotes {
            assert_error(&at.refresh(token).await.expect("refresh"), 400, "invalid_grant");
        }
    }
    drop((restarted, b));
    assert!(started.elapsed() < Duration::from_secs(40), "took {:?}", started.elapsed());
}
