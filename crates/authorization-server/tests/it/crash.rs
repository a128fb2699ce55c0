//! Crash safety of the real `authorization-server` binary: SIGKILL in the middle of a
//! refresh storm loses nothing a client was told, and brings nothing back to life.
//!
//! The process runs on a temp SQLite file and a loopback port with the system clock.
//! Eight independent token families are refreshed in a loop, each by its own client,
//! and the process is killed (`Child::kill` sends SIGKILL on Unix: no shutdown code
//! runs) while requests are in flight. Then:
//! 1. The database file alone, before any restart: every refresh token the server
//!    answered 200 for is stored (the answer of step H goes out only after the commit),
//!    every older token of its family is retired, nothing is revoked, and the newest
//!    one is the family's live token, unless a request presenting it was in flight at
//!    the kill and committed without its answer reaching the client (a lost response).
//! 2. A new process on the same file: each family's newest token works.
//! 3. No rotated or revoked token works again. Checked last, because presenting a
//!    rotated token revokes its family by design (RFC 9700 §4.14.2).
//!
//! Bounded: at most a few seconds of refreshing, no fixed sleeps (readiness is polled).

use crate::support::*;
use figure2_authorization_server::SqliteStore;
use figure2_http::{HttpClient, ReceivedResponse};
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::family::RefreshTokenStatus;
use figure2_protocol::secret::digest;
use http::Method;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const DEMO_CONFIG_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/demo.toml");
/// Independent families refreshed at once.
const CHAINS: usize = 8;
/// The kill comes after this many answered refreshes (or when the storm times out).
const KILL_AFTER: usize = CHAINS * 30;
/// A chain stops on its own after this many refreshes (never reached before the kill
/// on a sane machine; it bounds the storm if the kill is late).
const MAX_PER_CHAIN: usize = 400;

/// A running `authorization-server` process, killed (SIGKILL) and reaped on drop.
pub(crate) struct ServerProcess {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
    http: HttpClient,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl ServerProcess {
    /// Starts the binary on `db` and a free loopback port, and waits until `/health` answers.
    async fn start(db: &TempDb, name: &str) -> Self {
        Self::start_on(db.path.to_str().expect("UTF-8 temp path"), &db.path, name, None).await
    }

    /// Starts the binary with `--database database` (a SQLite file or a PostgreSQL URL)
    /// and `--issuer issuer` (default: its own address) on a free loopback port, its log
    /// beside `log_base`, and waits until `/health` answers.
    pub(crate) async fn start_on(database: &str, log_base: &Path, name: &str, issuer: Option<&str>) -> Self {
        // The port is found by binding port 0 and releasing it; another process could
        // take it in between, so a failed start is retried on a new port.
        let mut last_log = String::new();
        for attempt in 0..3 {
            let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
            let log = log_base.with_extension(format!("{name}-{attempt}.log"));
            let stderr = std::fs::File::create(&log).expect("log file");
            let issuer = issuer.map_or_else(|| format!("http://{addr}"), str::to_owned);
            let child = Command::new(env!("CARGO_BIN_EXE_authorization-server"))
                .args(["--config", DEMO_CONFIG_PATH, "--database", database])
                .args(["--listen", &addr.to_string(), "--issuer", &issuer])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("spawn the authorization-server binary");
            let http = HttpClient::new().with_timeout(Duration::from_secs(5));
            let mut process = Self { child, addr, log, http };
            match process.wait_until_healthy(Duration::from_secs(15)).await {
                Ok(()) => return process,
                Err(why) => last_log = format!("{why}\n{}", std::fs::read_to_string(&process.log).unwrap_or_default()),
            }
        }
        panic!("the authorization server did not start: {last_log}");
    }

    async fn wait_until_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let url = format!("http://{}/health", self.addr);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited early with {status}"));
            }
            if let Ok(r) = self.http.send(Method::GET, &url, &[], None).await
                && r.status == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("no answer on /health in time".into());
            }
            // Polling interval, not synchronisation: the loop ends as soon as it answers.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, then reap.
    pub(crate) fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }

    pub(crate) fn remote(&self) -> Remote {
        Remote { base: format!("http://{}", self.addr), http: self.http.clone() }
    }
}

/// Talks to the process as demo-client (`client_secret_basic`).
#[derive(Clone)]
pub(crate) struct Remote {
    pub(crate) base: String,
    pub(crate) http: HttpClient,
}

impl Remote {
    pub(crate) async fn post(&self, endpoint: &str, params: &[(&str, &str)]) -> Result<ReceivedResponse, String> {
        let basic = ClientAuthentication::basic_header_value("demo-client", "demo-secret");
        let headers = [FORM, ("authorization", basic.as_str())];
        let url = format!("{}{endpoint}", self.base);
        self.http.send(Method::POST, &url, &headers, Some(form(params).into())).await.map_err(|e| e.to_string())
    }

    pub(crate) async fn refresh(&self, refresh_token: &str) -> Result<ReceivedResponse, String> {
        self.post("/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
    }

    pub(crate) async fn first_refresh_token(&self) -> String {
        let params = [("grant_type", "password"), ("username", "alice"), ("password", "alice-password")];
        field(&ok_json(&self.post("/token", &params).await.expect("password grant")), "refresh_token")
    }
}

/// What one client saw of its family.
struct Chain {
    /// Every refresh token the server gave it, oldest first (index 0: from the grant).
    tokens: Vec<String>,
    /// Its last request got no answer: the server may or may not have committed it.
    interrupted: bool,
}

impl Chain {
    fn newest(&self) -> &str {
        self.tokens.last().expect("a chain starts with a token")
    }
}

/// Refreshes one family in a loop until the server stops answering (or a bound is hit).
async fn refresh_loop(
    remote: Remote,
    first: String,
    answered: Arc<AtomicUsize>,
    wake: Arc<tokio::sync::Notify>,
) -> Chain {
    let mut chain = Chain { tokens: vec![first], interrupted: false };
    let deadline = Instant::now() + Duration::from_secs(8);
    while chain.tokens.len() <= MAX_PER_CHAIN && Instant::now() < deadline {
        match remote.refresh(chain.newest()).await {
            Ok(r) => {
                // Before the kill, every refresh of the newest token must succeed.
                let body = ok_json(&r);
                chain.tokens.push(field(&body, "refresh_token"));
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

fn status_in(store: &SqliteStore, token: &str) -> Option<RefreshTokenStatus> {
    store.refresh_token_info_blocking(digest(token)).expect("read the database").map(|info| info.status())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_a_refresh_storm_loses_no_answered_token_and_revives_no_retired_one() {
    let started = Instant::now();
    let db = TempDb::new("crash");
    let mut first = ServerProcess::start(&db, "first").await;
    let remote = first.remote();

    // A family that is revoked before the crash (RFC 7009): it must stay dead.
    let revoked = {
        let rt0 = remote.first_refresh_token().await;
        let rt1 = field(&ok_json(&remote.refresh(&rt0).await.expect("refresh")), "refresh_token");
        let r = remote.post("/revoke", &[("token", &rt1)]).await.expect("revoke");
        assert_eq!(r.status, 200, "{}", r.body_text());
        vec![rt0, rt1]
    };

    let mut firsts = Vec::new();
    for _ in 0..CHAINS {
        firsts.push(remote.first_refresh_token().await);
    }
    let answered = Arc::new(AtomicUsize::new(0));
    let wake = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = firsts
        .into_iter()
        .map(|rt| {
            // One HTTP client per chain: chains do not share connections.
            let remote =
                Remote { base: remote.base.clone(), http: HttpClient::new().with_timeout(Duration::from_secs(5)) };
            tokio::spawn(refresh_loop(remote, rt, answered.clone(), wake.clone()))
        })
        .collect();
    // Kill while the chains are still refreshing.
    let _ = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
    first.kill();
    let mut chains = Vec::new();
    for task in tasks {
        chains.push(task.await.expect("refresh loop"));
    }
    let total = answered.load(Ordering::SeqCst);
    let interrupted = chains.iter().filter(|c| c.interrupted).count();
    assert!(total >= CHAINS, "the storm barely started: {total} refreshes answered");
    assert!(interrupted > 0, "the kill came after every chain had stopped: nothing was in flight");
    eprintln!("crash test: {total} refreshes answered, {interrupted} of {CHAINS} chains cut mid-request by SIGKILL");

    // 1. The file as the crash left it.
    let mut lost_answers = 0;
    {
        let store =
            SqliteStore::open(db.path.to_str().expect("UTF-8 path")).expect("open the database after the crash");
        for (i, chain) in chains.iter().enumerate() {
            let (newest, older) = chain.tokens.split_last().expect("non-empty chain");
            for (generation, token) in older.iter().enumerate() {
                let status = status_in(&store, token);
                assert!(
                    matches!(status, Some(RefreshTokenStatus::Retired { .. })),
                    "chain {i} token #{generation}: {status:?}, expected retired"
                );
            }
            match status_in(&store, newest) {
                Some(RefreshTokenStatus::Active) => {}
                // The in-flight request committed a rotation whose answer never arrived.
                Some(RefreshTokenStatus::Retired { .. }) if chain.interrupted => lost_answers += 1,
                other => panic!("chain {i}: the newest answered token is {other:?} after the crash"),
            }
        }
        assert_eq!(status_in(&store, &revoked[1]), Some(RefreshTokenStatus::Revoked));
    }

    // 2. A new process on the same file: the newest token of every family works.
    let second = ServerProcess::start(&db, "second").await;
    let remote = second.remote();
    let mut successors = Vec::new();
    for (i, chain) in chains.iter().enumerate() {
        let active =
            json_body(&remote.post("/introspect", &[("token", chain.newest())]).await.expect("introspect"))["active"]
                .as_bool()
                .expect("active is a boolean");
        let r = remote.refresh(chain.newest()).await.expect("refresh after restart");
        if active {
            let body = ok_json(&r);
            successors.push(Some(field(&body, "refresh_token")));
        } else {
            // The lost-response case of step 1: that token was rotated, so it is reuse.
            assert!(chain.interrupted, "chain {i}: an unrotated token is inactive after restart");
            assert_error(&r, 400, "invalid_grant");
            successors.push(None);
        }
    }
    assert_eq!(successors.iter().filter(|s| s.is_none()).count(), lost_answers);
    eprintln!("crash test: {lost_answers} rotations committed whose answer the kill cut off");

    // 3. Nothing rotated or revoked works again.
    for (i, chain) in chains.iter().enumerate() {
        for (generation, token) in chain.tokens.iter().enumerate().rev().skip(1) {
            let r = remote.refresh(token).await.expect("replay after restart");
            assert_eq!(r.status, 400, "chain {i}: rotated token #{generation} worked again: {}", r.body_text());
            assert_error(&r, 400, "invalid_grant");
        }
        // The replays were reuse: the family, with the token issued after the restart, is revoked.
        if let Some(successor) = &successors[i] {
            assert_error(&remote.refresh(successor).await.expect("refresh"), 400, "invalid_grant");
        }
    }
    for token in &revoked {
        assert_error(&remote.refresh(token).await.expect("refresh"), 400, "invalid_grant");
    }
    drop(second);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}
