//! The harness itself: starts every server in a child process, sets up tokens and chains,
//! then measures every line in turn, several rounds after a warm-up, and reports the
//! medians and the ratios against the baselines measured in the same run.

use crate::child::Child;
use crate::load::{self, Work};
use crate::postgres::{self, Availability};
use crate::procfs;
use crate::report::{
    LineReport, MemoryReport, Ratio, Report, Sample, ScenarioSuite, Settings, Setup, Skipped, median_f64,
};
use crate::targets::{demo_client, demo_user};
use figure2_authorization_server::SqliteStore;
use figure2_authorization_server::store::{Grant, NewRefreshToken};
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::{Clock, Scope, SystemClock};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every line, in the order they run in each round.
pub const LINES: [&str; 13] = [
    "hello",
    "verify",
    "standin",
    "rs-repeated",
    "rs-distinct",
    "as-refresh",
    "as-refresh-norotation",
    "as-refresh-pg1",
    "as-refresh-pg2",
    "as-refresh-pg3",
    "as-password",
    "client-cycles",
    "scenarios",
];

#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// A short run (under a minute) that proves the harness works; figures are rough.
    #[arg(long)]
    pub quick: bool,
    /// Print the report as JSON on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json_file: Option<PathBuf>,
    /// Measured rounds [default: 5; quick: 1].
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Seconds each line is measured per round [default: 5; quick: 1].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of warm-up per line before the rounds [default: 2; quick: 0.3].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Connections (or clients) per line.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Connections of the password-grant line (argon2 bound).
    #[arg(long, default_value_t = 4)]
    pub password_concurrency: usize,
    /// Live refresh-token families put in the authorization server's store beforehand
    /// [default: 1000000; quick: 20000].
    #[arg(long)]
    pub families: Option<u64>,
    /// Distinct access tokens of the rs-distinct line [default: 10000; quick: 2000].
    #[arg(long)]
    pub pool: Option<usize>,
    /// Run only these lines (comma-separated): hello, verify, standin, rs-repeated,
    /// rs-distinct, as-refresh, as-refresh-norotation, as-refresh-pg1, as-refresh-pg2,
    /// as-refresh-pg3, as-password, client-cycles, scenarios.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The `authorization-server` binary the PostgreSQL lines run [default: the one beside
    /// this executable]. PostgreSQL itself is the one FIGURE2_TEST_POSTGRES names.
    #[arg(long, env = "FIGURE2_AS_BINARY")]
    pub as_binary: Option<PathBuf>,
    /// The scenario files' directory [default: the repository's scenarios/].
    #[arg(long)]
    pub scenarios: Option<PathBuf>,
}

struct Plan {
    settings: Settings,
    duration: Duration,
    warmup: Duration,
    scenarios: PathBuf,
    only: Vec<String>,
    as_binary: Option<PathBuf>,
}

impl Plan {
    fn from(opts: Options) -> Result<Self, String> {
        let quick = opts.quick;
        let rounds = opts.rounds.unwrap_or(if quick { 1 } else { 5 });
        let duration = opts.duration.unwrap_or(if quick { 1.0 } else { 5.0 });
        let warmup = opts.warmup.unwrap_or(if quick { 0.3 } else { 2.0 });
        let families = opts.families.unwrap_or(if quick { 20_000 } else { 1_000_000 });
        let pool = opts.pool.unwrap_or(if quick { 2_000 } else { 10_000 });
        // Every loop of the harness is bounded: so are its inputs.
        if !(1..=100).contains(&rounds) {
            return Err("--rounds must be 1 to 100".into());
        }
        if !(0.05..=600.0).contains(&duration) || !(0.0..=600.0).contains(&warmup) {
            return Err("--duration must be 0.05 to 600 s and --warmup 0 to 600 s".into());
        }
        if !(1..=1024).contains(&opts.concurrency) || !(1..=1024).contains(&opts.password_concurrency) {
            return Err("--concurrency and --password-concurrency must be 1 to 1024".into());
        }
        if families > 10_000_000 || !(1..=1_000_000).contains(&pool) {
            return Err("--families must be at most 10000000 and --pool 1 to 1000000".into());
        }
        if let Some(unknown) = opts.only.iter().find(|l| !LINES.contains(&l.as_str())) {
            return Err(format!("--only: unknown line {unknown:?} (lines: {})", LINES.join(", ")));
        }
        let scenarios =
            opts.scenarios.unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios")));
        Ok(Self {
            settings: Settings {
                mode: if quick { "quick" } else { "full" }.into(),
                rounds,
                duration_s: duration,
                warmup_s: warmup,
                concurrency: opts.concurrency,
                password_concurrency: opts.password_concurrency,
                families,
                token_pool: pool,
            },
            duration: Duration::from_secs_f64(duration),
            warmup: Duration::from_secs_f64(warmup),
            scenarios,
            only: opts.only,
            as_binary: opts.as_binary,
        })
    }

    fn wants(&self, line: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|l| l == line)
    }

    /// How long a child may live: the whole planned run, twice, plus setup time.
    fn child_lifetime(&self) -> u64 {
        let per_round = (self.settings.duration_s + 1.0) * LINES.len() as f64 + 10.0;
        let planned = per_round * f64::from(self.settings.rounds) + (self.settings.warmup_s + 1.0) * LINES.len() as f64;
        (planned * 2.0) as u64 + 1200
    }
}

pub fn main(opts: Options) -> ExitCode {
    let json = opts.json;
    let json_file = opts.json_file.clone();
    match run(opts) {
        Ok(report) => {
            if let Some(path) = json_file {
                let written = serde_json::to_string_pretty(&report)
                    .map_err(|e| e.to_string())
                    .and_then(|text| std::fs::write(&path, text + "\n").map_err(|e| e.to_string()));
                if let Err(e) = written {
                    eprintln!("figure2-bench: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("figure2-bench: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.to_table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("figure2-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(message: impl std::fmt::Display) {
    eprintln!("[figure2-bench] {message}");
}

/// A directory removed when the run ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, String> {
        let mut suffix = [0u8; 6];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut suffix);
        let dir = std::env::temp_dir().join(format!(
            "figure2-bench-{}-{}",
            std::process::id(),
            figure2_protocol::secret::encode_token(&suffix)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Self(dir))
    }

    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

enum Measure {
    /// Load from this process against a child's address.
    Load { child: usize, addr: SocketAddr, work: Work },
    /// The child runs client cycles itself and reports.
    Cycles { child: usize },
    /// Load spread over the first `count` PostgreSQL instances (connection `i` to
    /// instance `i % count`).
    Instances { count: usize, work: Work },
}

struct Line {
    name: &'static str,
    role: &'static str,
    description: String,
    concurrency: usize,
    measure: Measure,
    samples: Vec<Sample>,
}

fn basic() -> String {
    let (id, secret) = demo_client();
    ClientAuthentication::basic_header_value(id, secret)
}

fn run(opts: Options) -> Result<Report, String> {
    let began = Instant::now();
    let load_average_before = procfs::load_average();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let plan = Plan::from(opts)?;
    let c = plan.settings.concurrency;
    let lifetime = plan.child_lifetime();
    let loader =
        tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("load runtime: {e}"))?;
    let tmp = TempDir::new()?;
    let mut children: Vec<Child> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    let mut memory = MemoryReport::default();
    let mut setup = Setup {
        store_fill: "store not filled (no authorization-server line)".into(),
        store_fill_s: 0.0,
        chains: "no refresh chains (no refresh line)".into(),
        token_pool: "no token pool (no resource-server line)".into(),
        postgres: "no PostgreSQL line".into(),
    };
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut cluster: Option<postgres::Cluster> = None;
    let basic = basic();

    // Baseline: hello.
    if plan.wants("hello") {
        progress("starting the hello baseline");
        let child = Child::spawn("hello", &[], lifetime)?;
        let addr = child.addr("addr")?;
        let request = Arc::new(load::request("GET", addr, "/", &[], b""));
        children.push(child);
        lines.push(Line {
            name: "hello",
            role: "baseline",
            description: "figure2_http::serve answering 200 \"hello\"".into(),
            concurrency: c,
            measure: Measure::Load { child: children.len() - 1, addr, work: Work::Fixed(request) },
            samples: Vec::new(),
        });
    }

    // The resource server (with its authorization server), the token pool, and the
    // verify-only baseline that checks the very same tokens.
    if plan.wants("rs-repeated") || plan.wants("rs-distinct") || plan.wants("verify") {
        progress("starting the resource server (and the authorization server it discovers)");
        let child = Child::spawn("rs", &[], lifetime)?;
        let rs_addr = child.addr("addr")?;
        let as_addr = child.addr("as")?;
        let rs_index = children.len();
        children.push(child);
        let n = plan.settings.token_pool;
        progress(format!("issuing {n} access tokens (client_credentials grant over HTTP)"));
        let form = "grant_type=client_credentials&scope=read";
        let issued = Instant::now();
        let requests = vec![load::token_request(as_addr, &basic, form); n];
        let bodies = loader.block_on(load::send_all(as_addr, requests, 4))?;
        let tokens: Vec<String> = bodies.iter().filter_map(|b| load::access_token_of(b)).collect();
        if tokens.len() != n {
            return Err("the authorization server did not issue every access token".into());
        }
        setup.token_pool = format!(
            "{n} distinct access tokens (ES256 JWTs, {} bytes each) issued by the real authorization server's \
             client_credentials grant over HTTP in {:.1} s",
            tokens[0].len(),
            issued.elapsed().as_secs_f64()
        );
        let bearer = |addr: SocketAddr, path: &str, token: &str| {
            load::request("GET", addr, path, &[("authorization", &format!("Bearer {token}"))], b"")
        };
        if plan.wants("verify") {
            let jwks = loader.block_on(load::send_all(
                as_addr,
                vec![load::request("GET", as_addr, "/jwks.json", &[], b"")],
                1,
            ))?;
            let jwks: serde_json::Value = serde_json::from_slice(&jwks[0]).map_err(|e| format!("JWKS: {e}"))?;
            let jwk = jwks["keys"].as_array().and_then(|k| k.last()).ok_or("the JWKS has no key")?.to_string();
            progress("starting the verify-only baseline");
            let child = Child::spawn("verify", &["--jwk".into(), jwk], lifetime)?;
            let addr = child.addr("addr")?;
            children.push(child);
            let pool = tokens.iter().map(|t| bearer(addr, "/", t)).collect();
            lines.push(Line {
                name: "verify",
                role: "baseline",
                description: format!(
                    "a bare handler verifying the bearer ES256 JWT with jsonwebtoken (key parsed once); \
                     the same {n} tokens as rs-distinct"
                ),
                concurrency: c,
                measure: Measure::Load { child: children.len() - 1, addr, work: Work::Pool(Arc::new(pool)) },
                samples: Vec::new(),
            });
        }
        if plan.wants("rs-repeated") {
            let request = Arc::new(bearer(rs_addr, "/resource/read", &tokens[0]));
            lines.push(Line {
                name: "rs-repeated",
                role: "resource server",
                description: "GET /resource/read with one valid token, again and again (steps C, D)".into(),
                concurrency: c,
                measure: Measure::Load { child: rs_index, addr: rs_addr, work: Work::Fixed(request) },
                samples: Vec::new(),
            });
        }
        if plan.wants("rs-distinct") {
            let pool = tokens.iter().map(|t| bearer(rs_addr, "/resource/read", t)).collect();
            lines.push(Line {
                name: "rs-distinct",
                role: "resource server",
                description: format!(
                    "GET /resource/read walking a pool of {n} distinct valid tokens in order (a token comes \
                     back only after all the others)"
                ),
                concurrency: c,
                measure: Measure::Load { child: rs_index, addr: rs_addr, work: Work::Pool(Arc::new(pool)) },
                samples: Vec::new(),
            });
        }
    }

    // Baseline: the in-memory refresh stand-in, one chain per connection.
    if plan.wants("standin") {
        let tokens: Vec<String> = (0..c).map(|_| random_token()).collect();
        progress(format!("starting the refresh stand-in ({} extra entries)", plan.settings.families));
        let child = Child::spawn(
            "standin",
            // `--tokens=…`: a base64url token may start with '-', which clap would read as a flag.
            &[format!("--tokens={}", tokens.join(",")), "--prefill".into(), plan.settings.families.to_string()],
            lifetime,
        )?;
        let addr = child.addr("addr")?;
        children.push(child);
        lines.push(Line {
            name: "standin",
            role: "baseline",
            description: format!(
                "a bare refresh grant: form parse, HashMap lookup and swap under a mutex ({} entries), \
                 ES256 sign (jsonwebtoken), JSON",
                plan.settings.families + c as u64
            ),
            concurrency: c,
            measure: Measure::Load {
                child: children.len() - 1,
                addr,
                work: Work::Chains { addrs: vec![addr], basic: basic.as_str().into(), tokens },
            },
            samples: Vec::new(),
        });
    }

    // The authorization server over a durable SQLite file holding many live families.
    if plan.wants("as-refresh") || plan.wants("as-refresh-norotation") {
        let db = tmp.file("as.db");
        let families = plan.settings.families;
        // One chain per connection and line, started in the store like the rest: the first
        // refresh token of a chain is stored exactly as the password grant would store it.
        let rotating: Vec<String> = (0..c).map(|_| random_token()).collect();
        let fixed: Vec<String> = (0..c).map(|_| random_token()).collect();
        let chain_digests: Vec<[u8; 32]> =
            rotating.iter().chain(&fixed).map(|t| figure2_protocol::secret::digest(t)).collect();
        progress(format!("filling the store with {families} live refresh-token families"));
        let filled = Instant::now();
        fill_store(&db, families, &chain_digests)?;
        setup.store_fill_s = filled.elapsed().as_secs_f64();
        setup.store_fill = format!(
            "{families} live families (each with one active refresh token) put in the SQLite file in {:.1} s by \
             SqliteStore::create_families_bulk (one transaction, random digests inserted in order), before the \
             authorization server process opened it",
            setup.store_fill_s
        );
        setup.chains = format!(
            "{} refresh-token chains (one per connection and line) started the same way, in the same \
             transaction, with known tokens: a family and its first refresh token, as the password grant \
             stores them (argon2 and the first access token are all that is skipped)",
            chain_digests.len()
        );
        memory.as_families = families + chain_digests.len() as u64;
        progress("starting the authorization servers (rotation on and off, one store)");
        let child = Child::spawn("as", &["--db".into(), db], lifetime)?;
        let on = child.addr("addr")?;
        let off = child.addr("rotation_off")?;
        memory.as_at_start = procfs::memory(child.pid());
        let as_index = children.len();
        children.push(child);
        if plan.wants("as-refresh") {
            lines.push(Line {
                name: "as-refresh",
                role: "authorization server",
                description: "POST /token grant_type=refresh_token, rotation on, durable SQLite file; each \
                              connection presents the refresh token its previous answer returned (steps G, H)"
                    .into(),
                concurrency: c,
                measure: Measure::Load {
                    child: as_index,
                    addr: on,
                    work: Work::Chains { addrs: vec![on], basic: basic.as_str().into(), tokens: rotating },
                },
                samples: Vec::new(),
            });
        }
        if plan.wants("as-refresh-norotation") {
            lines.push(Line {
                name: "as-refresh-norotation",
                role: "authorization server",
                description: "the same with rotation off: each connection presents its one refresh token again".into(),
                concurrency: c,
                measure: Measure::Load {
                    child: as_index,
                    addr: off,
                    work: Work::Chains { addrs: vec![off], basic: basic.as_str().into(), tokens: fixed },
                },
                samples: Vec::new(),
            });
        }
    }

    // The refresh grant over PostgreSQL: 1, 2 and 3 instances of the real binary over one
    // scratch schema holding as many families as the SQLite file.
    let pg_lines: Vec<(&'static str, usize)> = [("as-refresh-pg1", 1), ("as-refresh-pg2", 2), ("as-refresh-pg3", 3)]
        .into_iter()
        .filter(|(name, _)| plan.wants(name))
        .collect();
    if !pg_lines.is_empty() {
        match postgres::availability(plan.as_binary.clone())? {
            Availability::Skipped(why) => {
                progress(format!("skipping the PostgreSQL lines: {why}"));
                for (name, _) in &pg_lines {
                    skipped.push(Skipped { line: (*name).into(), reason: why.clone() });
                }
                setup.postgres = format!("PostgreSQL lines skipped: {why}");
            }
            Availability::Ready { base_url, binary } => {
                let families = plan.settings.families;
                let chains: Vec<Vec<String>> =
                    pg_lines.iter().map(|_| (0..c).map(|_| random_token()).collect()).collect();
                let digests: Vec<[u8; 32]> =
                    chains.iter().flatten().map(|t| figure2_protocol::secret::digest(t)).collect();
                progress(format!(
                    "PostgreSQL: a scratch schema with {families} live families, then {} instances of {}",
                    postgres::MAX_INSTANCES,
                    binary.display()
                ));
                let (started, fill_s) = postgres::start(&loader, &base_url, &binary, &tmp.0, families, &digests)?;
                setup.postgres = format!(
                    "PostgreSQL {}: a scratch schema with {families} live families ({} chains made through \
                     PostgresStore::create_family, the rest in one INSERT … SELECT on the server) in {fill_s:.1} s; \
                     {} instances of {} (--database that schema, rotation on, RUST_LOG=warn), connection i of a \
                     line to instance i % N; PostgreSQL CPU: {}",
                    started.server_version,
                    digests.len(),
                    postgres::MAX_INSTANCES,
                    binary.display(),
                    started.postmaster_note
                );
                for ((name, count), tokens) in pg_lines.iter().zip(chains) {
                    let addrs = started.instances[..*count].iter().map(|i| i.addr).collect();
                    lines.push(Line {
                        name,
                        role: "authorization server",
                        description: format!(
                            "POST /token grant_type=refresh_token, rotation on, over PostgreSQL (row lock per \
                             refresh); {count} instance(s) of the real binary over one schema, the connections \
                             spread over them; CPU = the instances' processes"
                        ),
                        concurrency: c,
                        measure: Measure::Instances {
                            count: *count,
                            work: Work::Chains { addrs, basic: basic.as_str().into(), tokens },
                        },
                        samples: Vec::new(),
                    });
                }
                cluster = Some(started);
            }
        }
    }

    // The password grant on an authorization server of its own: argon2's memory (19 MiB
    // per verification, kept by each blocking thread's allocator arena) would otherwise
    // blur the memory figure of the refresh server above.
    if plan.wants("as-password") {
        progress("starting an authorization server for the password grant");
        let child = Child::spawn("as", &["--db".into(), tmp.file("password.db")], lifetime)?;
        let addr = child.addr("addr")?;
        children.push(child);
        let (user, password) = demo_user();
        let form = format!("grant_type=password&username={user}&password={password}&scope=read+write");
        lines.push(Line {
            name: "as-password",
            role: "authorization server",
            description: "POST /token grant_type=password (argon2id verification; each answer starts a new \
                          family; a server and store of its own); no target"
                .into(),
            concurrency: plan.settings.password_concurrency,
            measure: Measure::Load {
                child: children.len() - 1,
                addr,
                work: Work::Fixed(Arc::new(load::token_request(addr, &basic, &form))),
            },
            samples: Vec::new(),
        });
    }

    if plan.wants("client-cycles") {
        progress(format!("starting {c} clients against both servers (shared simulated clock)"));
        let child = Child::spawn(
            "cycles",
            &["--db".into(), tmp.file("cycles.db"), "--clients".into(), c.to_string()],
            lifetime,
        )?;
        children.push(child);
        lines.push(Line {
            name: "client-cycles",
            role: "client",
            description: "figure2_client::Client: call (C, D); the shared SimulatedClock moves one access-token \
                          lifetime; call again (G, H, C, D); in-process with both real servers (durable store); \
                          CPU = the servers' threads"
                .into(),
            concurrency: c,
            measure: Measure::Cycles { child: children.len() - 1 },
            samples: Vec::new(),
        });
    }

    let scenarios = if plan.wants("scenarios") { Some(load_scenarios(&plan.scenarios)?) } else { None };
    let scenario_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    // Warm-up: every line once, not recorded.
    if !plan.warmup.is_zero() {
        progress(format!("warm-up: {:.1} s per line", plan.settings.warmup_s));
        for line in &mut lines {
            measure(&loader, &mut children, cluster.as_ref(), line, plan.warmup)?;
        }
        if let Some(scenarios) = &scenarios {
            scenario_runtime.block_on(run_scenarios(scenarios));
        }
    }

    let mut suite_rounds = Vec::new();
    let mut suite_failed = Vec::new();
    for round in 1..=plan.settings.rounds {
        progress(format!("round {round} of {}", plan.settings.rounds));
        for line in &mut lines {
            let sample = measure(&loader, &mut children, cluster.as_ref(), line, plan.duration)?;
            progress(format!(
                "  {:<22} {:>9.0}/s  p50 {:>6} µs  p99 {:>6} µs  cpu {:>7} µs  errors {}{}",
                line.name,
                sample.rps,
                sample.p50_us,
                sample.p99_us,
                sample.server_cpu_us.map_or("-".into(), |c| format!("{c:.1}")),
                sample.errors,
                match (sample.database_cpu_us, sample.statements_per_request) {
                    (None, None) => String::new(),
                    (db, st) => format!(
                        "  postgres {} µs  {} stmts",
                        db.map_or("-".into(), |c| format!("{c:.1}")),
                        st.map_or("-".into(), |s| format!("{s:.2}"))
                    ),
                }
            ));
            line.samples.push(sample);
            if let Measure::Load { child, .. } = &line.measure {
                let pid = children[*child].pid();
                match line.name {
                    "as-refresh" => memory.as_under_load = procfs::memory(pid),
                    "rs-distinct" => memory.rs_under_load = procfs::memory(pid),
                    "as-password" => memory.as_password = procfs::memory(pid),
                    _ => {}
                }
            }
        }
        if let Some(scenarios) = &scenarios {
            let (wall, failed) = scenario_runtime.block_on(run_scenarios(scenarios));
            progress(format!("  {:<22} {:>9.2} s for {} files", "scenarios", wall, scenarios.len()));
            suite_rounds.push(wall);
            suite_failed = failed;
        }
    }
    for child in children {
        child.stop();
    }
    // The instances stop, then the scratch schema goes.
    drop(cluster);
    drop(tmp);

    let line_reports: Vec<LineReport> = lines.iter().map(summarise).collect();
    let mut ratios = Vec::new();
    let find = |name: &str| lines.iter().find(|l| l.name == name);
    let paired = |a: &Line, b: &Line, f: &dyn Fn(&Sample, &Sample) -> f64| {
        median_f64(a.samples.iter().zip(&b.samples).map(|(x, y)| f(x, y)).collect())
    };
    let rps = |x: &Sample, y: &Sample| if y.rps > 0.0 { x.rps / y.rps } else { 0.0 };
    if let (Some(a), Some(b)) = (find("rs-repeated"), find("hello")) {
        let value = paired(a, b, &rps);
        ratios.push(Ratio {
            name: "rs-repeated / hello (req/s)".into(),
            value,
            target: ">= 0.80".into(),
            met: value >= 0.8,
        });
    }
    if let (Some(a), Some(b)) = (find("rs-distinct"), find("verify")) {
        let value = paired(a, b, &rps);
        ratios.push(Ratio {
            name: "rs-distinct / verify (req/s)".into(),
            value,
            target: ">= 0.90".into(),
            met: value >= 0.9,
        });
    }
    if let (Some(a), Some(b)) = (find("as-refresh"), find("standin")) {
        let value = paired(a, b, &rps);
        ratios.push(Ratio {
            name: "as-refresh / standin (req/s)".into(),
            value,
            target: ">= 0.80".into(),
            met: value >= 0.8,
        });
        let value = paired(a, b, &|x, y| if y.p99_us > 0 { x.p99_us as f64 / y.p99_us as f64 } else { 0.0 });
        ratios.push(Ratio {
            name: "as-refresh p99 / standin p99".into(),
            value,
            target: "<= 2.00".into(),
            met: value <= 2.0,
        });
    }
    if let Some(a) = find("as-refresh") {
        let errors: u64 = a.samples.iter().map(|s| s.errors).sum();
        ratios.push(Ratio {
            name: "as-refresh errors (all rounds)".into(),
            value: errors as f64,
            target: "= 0".into(),
            met: errors == 0,
        });
    }
    if let (Some(a), Some(b)) = (find("as-refresh-norotation"), find("standin")) {
        let value = paired(a, b, &rps);
        ratios.push(Ratio {
            name: "as-refresh-norotation / standin (req/s)".into(),
            value,
            target: "-".into(),
            met: true,
        });
    }
    for (name, _) in &pg_lines {
        let Some(a) = find(name) else { continue };
        // Against the stand-in baseline and the SQLite line, measured in the same rounds.
        for base in ["standin", "as-refresh"] {
            if let Some(b) = find(base) {
                ratios.push(Ratio {
                    name: format!("{name} / {base} (req/s)"),
                    value: paired(a, b, &rps),
                    target: "-".into(),
                    met: true,
                });
            }
        }
        if let Some(b) = find("standin") {
            let value = paired(a, b, &|x, y| if y.p99_us > 0 { x.p99_us as f64 / y.p99_us as f64 } else { 0.0 });
            ratios.push(Ratio { name: format!("{name} p99 / standin p99"), value, target: "-".into(), met: true });
        }
        if *name != "as-refresh-pg1"
            && let Some(b) = find("as-refresh-pg1")
        {
            ratios.push(Ratio {
                name: format!("{name} / as-refresh-pg1 (req/s)"),
                value: paired(a, b, &rps),
                target: "-".into(),
                met: true,
            });
        }
        let errors: u64 = a.samples.iter().map(|s| s.errors).sum();
        ratios.push(Ratio {
            name: format!("{name} errors (all rounds)"),
            value: errors as f64,
            target: "= 0".into(),
            met: errors == 0,
        });
    }
    let scenario_suite = scenarios.map(|s| {
        let wall = median_f64(suite_rounds.clone());
        ScenarioSuite {
            files: s.len(),
            passed: s.len() - suite_failed.len(),
            failed: suite_failed,
            wall_s: wall,
            rounds_s: suite_rounds,
            target_s: 2.0,
            met: wall < 2.0,
        }
    });
    let targets_met =
        ratios.iter().all(|r| r.met) && scenario_suite.as_ref().is_none_or(|s| s.met && s.failed.is_empty());
    Ok(Report {
        harness: format!("figure2-bench {}", env!("CARGO_PKG_VERSION")),
        command,
        machine: procfs::machine(),
        versions: versions(),
        settings: plan.settings,
        setup,
        lines: line_reports,
        skipped,
        ratios,
        scenario_suite,
        memory,
        targets_met,
        total_s: began.elapsed().as_secs_f64(),
        load_average_before,
        load_average_after: procfs::load_average(),
    })
}

/// A sample of a run from this process's load generator.
fn sample_of(o: load::RunOutcome) -> Sample {
    let secs = o.elapsed.as_secs_f64().max(1e-9);
    let per = |ticks: Option<u64>| ticks.filter(|_| o.requests > 0).map(|t| procfs::ticks_to_us(t) / o.requests as f64);
    Sample {
        rps: o.requests as f64 / secs,
        p50_us: o.latency.value_at_quantile(0.5),
        p99_us: o.latency.value_at_quantile(0.99),
        server_cpu_us: per(o.server_cpu_ticks),
        loader_cpu_us: per(o.loader_cpu_ticks),
        database_cpu_us: per(o.database_cpu_ticks),
        requests: o.requests,
        errors: o.errors,
        elapsed_s: secs,
        first_error: o.first_error,
        http_per_cycle: None,
        process_cpu_us: None,
        statements_per_request: None,
    }
}

fn measure(
    loader: &tokio::runtime::Runtime,
    children: &mut [Child],
    cluster: Option<&postgres::Cluster>,
    line: &mut Line,
    duration: Duration,
) -> Result<Sample, String> {
    match &mut line.measure {
        Measure::Load { child, addr, work } => {
            let pid = children[*child].pid();
            Ok(sample_of(loader.block_on(load::run(*addr, work, line.concurrency, duration, &[pid], None))?))
        }
        Measure::Instances { count, work } => {
            let cluster = cluster.ok_or("no PostgreSQL instances")?;
            let used = &cluster.instances[..*count];
            let pids: Vec<u32> = used.iter().map(postgres::Instance::pid).collect();
            let addrs: Vec<SocketAddr> = used.iter().map(|i| i.addr).collect();
            let before = loader.block_on(postgres::statements(&addrs))?;
            let o =
                loader.block_on(load::run(addrs[0], work, line.concurrency, duration, &pids, cluster.postmaster))?;
            let after = loader.block_on(postgres::statements(&addrs))?;
            let requests = o.requests;
            let mut sample = sample_of(o);
            sample.statements_per_request =
                (requests > 0).then(|| after.saturating_sub(before) as f64 / requests as f64);
            Ok(sample)
        }
        Measure::Cycles { child } => {
            let r = children[*child].command(&format!("cycles {}", duration.as_secs_f64()))?;
            if let Some(e) = r["error"].as_str() {
                return Err(format!("client cycles: {e}"));
            }
            let n = r["requests"].as_u64().unwrap_or(0);
            let per =
                |ticks: &serde_json::Value| ticks.as_u64().filter(|_| n > 0).map(|t| procfs::ticks_to_us(t) / n as f64);
            let secs = r["elapsed_s"].as_f64().unwrap_or(0.0).max(1e-9);
            let server = per(&r["server_cpu_ticks"]);
            let process = per(&r["process_cpu_ticks"]);
            Ok(Sample {
                rps: n as f64 / secs,
                p50_us: r["p50_us"].as_u64().unwrap_or(0),
                p99_us: r["p99_us"].as_u64().unwrap_or(0),
                server_cpu_us: server,
                // The clients' threads: the whole process less the servers' threads.
                loader_cpu_us: process.zip(server).map(|(p, s)| (p - s).max(0.0)),
                requests: n,
                errors: r["errors"].as_u64().unwrap_or(0),
                elapsed_s: secs,
                first_error: r["first_error"].as_str().map(str::to_owned),
                http_per_cycle: r["http_requests"].as_u64().filter(|_| n > 0).map(|h| h as f64 / n as f64),
                process_cpu_us: process,
                database_cpu_us: None,
                statements_per_request: None,
            })
        }
    }
}

fn summarise(line: &Line) -> LineReport {
    let med = |f: &dyn Fn(&Sample) -> f64| median_f64(line.samples.iter().map(f).collect());
    let cpu: Vec<f64> = line.samples.iter().filter_map(|s| s.server_cpu_us).collect();
    let loader: Vec<f64> = line.samples.iter().filter_map(|s| s.loader_cpu_us).collect();
    LineReport {
        name: line.name.into(),
        role: line.role.into(),
        description: line.description.clone(),
        concurrency: line.concurrency,
        unit: if matches!(line.measure, Measure::Cycles { .. }) { "cycle" } else { "request" }.into(),
        rps: med(&|s| s.rps),
        p50_us: med(&|s| s.p50_us as f64) as u64,
        p99_us: med(&|s| s.p99_us as f64) as u64,
        server_cpu_us: (!cpu.is_empty()).then(|| median_f64(cpu)),
        loader_cpu_us: (!loader.is_empty()).then(|| median_f64(loader)),
        instances: match line.measure {
            Measure::Instances { count, .. } => Some(count),
            _ => None,
        },
        database_cpu_us: {
            let v: Vec<f64> = line.samples.iter().filter_map(|s| s.database_cpu_us).collect();
            (!v.is_empty()).then(|| median_f64(v))
        },
        statements_per_request: {
            let v: Vec<f64> = line.samples.iter().filter_map(|s| s.statements_per_request).collect();
            (!v.is_empty()).then(|| median_f64(v))
        },
        errors: line.samples.iter().map(|s| s.errors).sum(),
        requests: line.samples.iter().map(|s| s.requests).sum(),
        rounds: line.samples.clone(),
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    figure2_protocol::secret::encode_token(&bytes)
}

/// Puts `n` live families in the store at `path` through the store's bulk path, plus one
/// family for each of `chains` (the digests of known first refresh tokens). The other
/// families' refresh tokens are random digests that no one will present: only the
/// store's size matters to the measured lines.
fn fill_store(path: &str, n: u64, chains: &[[u8; 32]]) -> Result<(), String> {
    let store = SqliteStore::open(path).map_err(|e| e.to_string())?;
    let mut digests: Vec<[u8; 32]> = (0..n)
        .map(|_| {
            let mut d = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut d);
            d
        })
        .chain(chains.iter().copied())
        .collect();
    let n = digests.len() as u64;
    // The token table is keyed by digest: inserting in key order appends to the B-tree.
    digests.sort_unstable();
    let now = SystemClock.now();
    let scope = Scope::parse("read write").map_err(|e| e.to_string())?;
    let (client_id, _) = demo_client();
    let grant = Grant { client_id: client_id.into(), subject: demo_user().0.into(), scope, dpop_jkt: None };
    let expires_at = Some(now + 14 * 24 * 3600);
    let families = digests.into_iter().map(move |digest| (grant.clone(), NewRefreshToken { digest, expires_at }));
    let made = store.create_families_bulk(families, now).map_err(|e| e.to_string())?;
    if made != n {
        return Err(format!("the store took {made} families of {n}"));
    }
    Ok(())
}

fn load_scenarios(dir: &std::path::Path) -> Result<Vec<figure2_runner::Scenario>, String> {
    let files = figure2_runner::Scenario::files_in(dir);
    if files.is_empty() {
        return Err(format!("no scenario files in {}", dir.display()));
    }
    let scenarios: Vec<_> = files
        .iter()
        .map(|p| figure2_runner::Scenario::load(&p.display().to_string()).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    // The suite's time is the in-process SQLite world's; PostgreSQL has its own lines.
    Ok(scenarios.into_iter().filter(|s| !s.needs_postgres()).collect())
}

/// Runs every scenario one after another; returns the wall time and the failed ones.
async fn run_scenarios(scenarios: &[figure2_runner::Scenario]) -> (f64, Vec<String>) {
    let start = Instant::now();
    let mut failed = Vec::new();
    for s in scenarios {
        match figure2_runner::run(s, &mut |_| {}).await {
            Ok(report) if report.passed => {}
            Ok(report) => failed.push(format!(
                "{}: {}",
                s.id,
                report.failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )),
            Err(e) => failed.push(format!("{}: {e}", s.id)),
        }
    }
    (start.elapsed().as_secs_f64(), failed)
}

fn versions() -> Vec<(String, String)> {
    vec![
        ("rustc".into(), env!("F2B_RUSTC").into()),
        ("hyper".into(), env!("F2B_VERSION_HYPER").into()),
        ("tokio".into(), env!("F2B_VERSION_TOKIO").into()),
        ("jsonwebtoken".into(), env!("F2B_VERSION_JSONWEBTOKEN").into()),
        ("aws-lc-rs".into(), env!("F2B_VERSION_AWS_LC_RS").into()),
        ("rusqlite".into(), env!("F2B_VERSION_RUSQLITE").into()),
        ("sqlite".into(), rusqlite::version().into()),
        ("hdrhistogram".into(), env!("F2B_VERSION_HDRHISTOGRAM").into()),
    ]
}
