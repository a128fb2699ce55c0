//! The refresh grant over PostgreSQL with 1, 2 and 3 authorization-server instances
//! (issue 11): child processes of the real `authorization-server` binary, each with
//! `--database` the same scratch schema, the load spread over them connection by
//! connection (as a round-robin balancer would).
//!
//! What is read besides the load generator's figures:
//! - the CPU time of the instances (`/proc/PID/stat`) and of the PostgreSQL cluster: the
//!   postmaster (found as the parent of a backend, `SELECT pg_backend_pid()`), its live
//!   children (backends, WAL writer, checkpointer, …) and the children it reaped;
//! - the statements each instance sent, from its `/metrics`
//!   (`figure2_store_statements_total`), before and after each measured interval.
//!
//! PostgreSQL is the one `FIGURE2_TEST_POSTGRES` names (`scripts/postgres-up.sh`). Without
//! it the lines are skipped and the report says why; with `FIGURE2_REQUIRE_POSTGRES` (CI)
//! that is an error instead.

use crate::load::{self, Connection};
use crate::procfs;
use crate::targets::{demo_client, demo_user};
use figure2_authorization_server::PostgresStore;
use figure2_authorization_server::store::postgres::{REQUIRE_ENV, ScratchDatabase, TEST_DATABASE_ENV, test_database};
use figure2_authorization_server::store::{Grant, NewRefreshToken, Store};
use figure2_protocol::{Clock, Scope, SystemClock};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The most instances a line uses.
pub const MAX_INSTANCES: usize = 3;

/// The issuer every instance names, as behind one balancer.
const ISSUER: &str = "http://figure2-bench.invalid";

/// Where the PostgreSQL lines run, or why they do not.
pub enum Availability {
    Ready { base_url: String, binary: PathBuf },
    Skipped(String),
}

/// Finds PostgreSQL and the `authorization-server` binary. `Err` where PostgreSQL is
/// required (`FIGURE2_REQUIRE_POSTGRES`) but either is missing.
pub fn availability(binary: Option<PathBuf>) -> Result<Availability, String> {
    let required = std::env::var_os(REQUIRE_ENV).is_some();
    let base_url = match test_database()? {
        Some(url) => url,
        None => {
            return Ok(Availability::Skipped(format!(
                "no PostgreSQL server: {TEST_DATABASE_ENV} is not set (start one with \
                 `export {TEST_DATABASE_ENV}=$(bash scripts/postgres-up.sh)`)"
            )));
        }
    };
    let binary = match binary {
        Some(path) => path,
        None => default_binary()?,
    };
    if !binary.is_file() {
        let why = format!(
            "no authorization-server binary at {} (build it: `cargo build --release -p figure2-authorization-server`, \
             or name one with --as-binary)",
            binary.display()
        );
        return if required {
            Err(format!("{REQUIRE_ENV} is set but there is {why}"))
        } else {
            Ok(Availability::Skipped(why))
        };
    }
    Ok(Availability::Ready { base_url, binary })
}

/// `authorization-server` beside this executable (`target/release/` or `target/debug/`),
/// or one directory up for a test binary in `target/debug/deps/`.
fn default_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the harness binary: {e}"))?;
    let dir = exe.parent().ok_or("the harness binary has no directory")?;
    let beside = dir.join("authorization-server");
    if !beside.is_file()
        && dir.ends_with("deps")
        && let Some(up) = dir.parent()
    {
        return Ok(up.join("authorization-server"));
    }
    Ok(beside)
}

/// One `authorization-server` process, SIGKILLed (by its handle) and reaped on drop.
pub struct Instance {
    process: std::process::Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Starts the binary on a free loopback port and waits (at most 30 s) for `/health`.
    fn start(
        loader: &tokio::runtime::Runtime,
        binary: &Path,
        config: &Path,
        database: &str,
        log: PathBuf,
    ) -> Result<Self, String> {
        let mut last = String::new();
        // The port is found by binding port 0 and releasing it; another process could take
        // it in between, so a failed start is retried on a new port.
        for _ in 0..3 {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
            let stderr = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let process = Command::new(binary)
                .arg("--config")
                .arg(config)
                .args(["--database", database, "--listen", &addr.to_string(), "--issuer", ISSUER])
                .args(["--always-issue-new-refresh-token", "true"])
                // Warnings only: logging every request would be a cost of its own.
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
            let mut instance = Self { process, addr, log: log.clone() };
            match loader.block_on(instance.wait_until_healthy(Duration::from_secs(30))) {
                Ok(()) => return Ok(instance),
                Err(e) => last = format!("{e}: {}", std::fs::read_to_string(&log).unwrap_or_default()),
            }
        }
        Err(format!("the authorization server did not start: {last}"))
    }

    async fn wait_until_healthy(&mut self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let request = load::request("GET", self.addr, "/health", &[], b"");
        loop {
            if let Some(status) = self.process.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("exited early with {status}"));
            }
            if let Ok(mut conn) = Connection::open(self.addr).await
                && conn.exchange(&request).await.is_ok_and(|a| a.status == 200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("no answer on /health in time".into());
            }
            // A polling interval: the loop ends as soon as the server answers.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Our own child, by its handle (never by name).
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The running PostgreSQL setup: the scratch schema and the instances over it.
pub struct Cluster {
    /// Dropped after the instances (field order): the schema goes once nothing uses it.
    pub instances: Vec<Instance>,
    _scratch: ScratchDatabase,
    /// The postmaster's pid, if this machine can see it.
    pub postmaster: Option<u32>,
    /// How the CPU of PostgreSQL is read, or why it is not.
    pub postmaster_note: String,
    pub server_version: String,
}

/// Makes a scratch schema, fills it, and starts [`MAX_INSTANCES`] instances over it.
/// `chains` are the first refresh tokens' digests of the lines' chains (a family each);
/// `families` more live families hold random digests no one presents.
pub fn start(
    loader: &tokio::runtime::Runtime,
    base_url: &str,
    binary: &Path,
    dir: &Path,
    families: u64,
    chains: &[[u8; 32]],
) -> Result<(Cluster, f64), String> {
    let scratch = loader.block_on(ScratchDatabase::create(base_url)).map_err(|e| format!("PostgreSQL: {e}"))?;
    let url = scratch.url().to_owned();
    let filled = Instant::now();
    let (postmaster, server_version) = loader.block_on(fill(&url, families, chains))?;
    let fill_s = filled.elapsed().as_secs_f64();
    let postmaster_note = match postmaster {
        Some(pid) => format!("postmaster pid {pid} and its children, from /proc"),
        None => "PostgreSQL's processes are not visible on this machine: its CPU is not reported".into(),
    };
    let config = dir.join("as-postgres.toml");
    std::fs::write(&config, figure2_runner::world::DEMO_CONFIG).map_err(|e| format!("{}: {e}", config.display()))?;
    let mut instances = Vec::with_capacity(MAX_INSTANCES);
    for i in 0..MAX_INSTANCES {
        instances.push(Instance::start(loader, binary, &config, &url, dir.join(format!("as-postgres-{i}.log")))?);
    }
    Ok((Cluster { instances, _scratch: scratch, postmaster, postmaster_note, server_version }, fill_s))
}

/// Applies the schema (through the store), makes the chains' families through the store,
/// then the other families in one statement on the server, and returns the postmaster's
/// pid (if visible) and the server's version.
async fn fill(url: &str, families: u64, chains: &[[u8; 32]]) -> Result<(Option<u32>, String), String> {
    let pg = |e: tokio_postgres::Error| format!("PostgreSQL: {e}");
    let store = PostgresStore::connect(url).await.map_err(|e| format!("PostgreSQL: {e}"))?;
    let now = SystemClock.now();
    let scope = Scope::parse("read write").map_err(|e| e.to_string())?;
    let (client_id, _) = demo_client();
    let grant = Grant { client_id: client_id.into(), subject: demo_user().0.into(), scope, dpop_jkt: None };
    let expires_at = Some(now + 14 * 24 * 3600);
    for digest in chains {
        store
            .create_family(grant.clone(), Some(NewRefreshToken { digest: *digest, expires_at }), now)
            .await
            .map_err(|e| format!("PostgreSQL: {e}"))?;
    }
    drop(store);
    let config: tokio_postgres::Config = url.parse().map_err(pg)?;
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.map_err(pg)?;
    let connection = tokio::spawn(connection);
    // The families table as the store's first migration makes it (bench-only bulk fill:
    // a family and its one live refresh token, as the password grant stores them).
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let salt = figure2_protocol::secret::encode_token(&salt);
    let n = i64::try_from(families).map_err(|e| e.to_string())?;
    let expires = expires_at.map(|e| e as i64);
    client
        .execute(
            "WITH f AS (
                 INSERT INTO families (client_id, subject, scope, created_at, last_used_at, live_digest,
                                       live_generation, live_issued_at, live_expires_at)
                 SELECT $1, $2, $3, $4, $4, sha256(convert_to($6 || i::text, 'UTF8')), 0, $4, $5
                 FROM generate_series(1::bigint, $7) AS i
                 RETURNING id, live_digest)
             INSERT INTO refresh_tokens (digest, family_id, generation, issued_at, expires_at)
             SELECT live_digest, id, 0, $4, $5 FROM f",
            &[&grant.client_id, &grant.subject, &grant.scope.to_string(), &(now as i64), &expires, &salt, &n],
        )
        .await
        .map_err(pg)?;
    client.batch_execute("ANALYZE families; ANALYZE refresh_tokens").await.map_err(pg)?;
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.map_err(pg)?.get(0);
    let version: String = client.query_one("SHOW server_version", &[]).await.map_err(pg)?.get(0);
    // The backend's parent is the postmaster, if this machine sees the same process
    // (not another host or a container's own pid namespace): then both are `postgres`.
    let postmaster = u32::try_from(backend)
        .ok()
        .filter(|&pid| procfs::command_name(pid).is_some_and(|c| c.starts_with("postgres")))
        .and_then(procfs::parent_pid)
        .filter(|&pid| procfs::command_name(pid).is_some_and(|c| c.starts_with("postgres")));
    drop(client);
    let _ = connection.await;
    Ok((postmaster, version))
}

/// `figure2_store_statements_total` of each instance in `addrs`, summed.
pub async fn statements(addrs: &[SocketAddr]) -> Result<u64, String> {
    let mut total = 0;
    for &addr in addrs {
        let body = load::send_all(addr, vec![load::request("GET", addr, "/metrics", &[], b"")], 1).await?;
        let text = String::from_utf8_lossy(&body[0]);
        total += text
            .lines()
            .find_map(|l| l.strip_prefix("figure2_store_statements_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| {
                format!(
                    "the authorization server at {addr} does not export figure2_store_statements_total \
                     (an older binary? rebuild it)"
                )
            })? as u64;
    }
    Ok(total)
}
