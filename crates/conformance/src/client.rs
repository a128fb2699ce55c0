//! Client checks: the checker plays a scripted authorization server and resource server
//! and watches what a client does around refresh: does it skip to step G when it knows
//! the token expired (E), retry exactly once after `invalid_token` or any other 401 to a
//! request that carried a token (F, G, H), leave `insufficient_scope` alone, refresh once
//! when requests race, keep the rotated refresh token, stop on `invalid_grant`, and keep
//! the refresh token away from the resource server?
//!
//! The client under test is Figure2's own library (in-process, simulated clock) or any
//! program given as a command, which must follow this contract (all in environment
//! variables):
//!
//! | variable | meaning |
//! |---|---|
//! | `FIGURE2_TOKEN_ENDPOINT` | the scripted token endpoint |
//! | `FIGURE2_ISSUER` | its issuer (RFC 8414 metadata is served) |
//! | `FIGURE2_RESOURCE_URL` | the protected resource to call with GET |
//! | `FIGURE2_CLIENT_ID`, `FIGURE2_CLIENT_SECRET` | client credentials (HTTP Basic or post) |
//! | `FIGURE2_USERNAME`, `FIGURE2_PASSWORD`, `FIGURE2_SCOPE` | for the password grant (step A) |
//! | `FIGURE2_CALL_TIMES` | comma-separated seconds after the grant at which to call the resource |
//! | `FIGURE2_CONCURRENCY` | how many requests to make at once at each of those times |
//!
//! The program obtains tokens with the password grant, makes the calls, and exits 0 if
//! every call ended 200, 3 if the resource owner must authorize again, other codes
//! otherwise.

use super::{CheckResult, Keyword, Role, Verdict};
use figure2_http::{HttpResponse, Incoming, Limits};
use figure2_protocol::bearer::{BearerChallenge, BearerErrorCode, extract_bearer_token};
use figure2_protocol::form::FormParams;
use figure2_protocol::{Clock, SimulatedClock};
use serde::Deserialize;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCatalogue {
    pub role: Role,
    #[serde(rename = "check")]
    pub checks: Vec<ClientCheck>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCheck {
    pub id: String,
    pub section: String,
    pub keyword: Keyword,
    pub summary: String,
    #[serde(default)]
    pub script: Script,
    /// Seconds after the grant at which the client calls the resource.
    pub calls: Vec<u64>,
    #[serde(default = "one")]
    pub concurrency: u32,
    #[serde(default)]
    pub expect: ClientExpect,
}

fn one() -> u32 {
    1
}

/// How the scripted servers behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    /// `expires_in` of every access token.
    pub expires_in: u64,
    /// Whether each refresh returns a new refresh token (and retires the old one).
    pub rotate: bool,
    /// `ok` or `invalid_grant`.
    pub refresh: String,
    /// `validate` (expired → invalid_token), `invalid_token_once` (the first access
    /// token is refused once, as if revoked), `invalid_token_always`; `bare_401_once`,
    /// `bare_401_always` (a 401 with a bare `WWW-Authenticate: Bearer`) and
    /// `no_challenge_401_once` (a 401 with no challenge at all), as resource servers in
    /// the wild answer; `insufficient_scope` (403, RFC 6750 §3.1, every time).
    pub resource: String,
}

impl Default for Script {
    fn default() -> Self {
        Self { expires_in: 60, rotate: true, refresh: "ok".into(), resource: "validate".into() }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientExpect {
    pub refresh_requests: Option<usize>,
    pub max_refresh_requests: Option<usize>,
    pub max_resource_requests: Option<usize>,
    /// Whether an expired access token may reach the resource server.
    pub expired_token_presented: Option<bool>,
    /// Every refresh presents the newest refresh token issued.
    #[serde(default)]
    pub presents_newest_refresh_token: bool,
    /// The refresh token must never reach the resource server.
    #[serde(default)]
    pub refresh_token_stays_private: bool,
    /// `ok` or `reauthorize`.
    pub outcome: Option<String>,
    /// Requests the client may make after being told `invalid_grant`.
    pub requests_after_invalid_grant: Option<usize>,
}

/// One request the scripted servers saw.
#[derive(Debug, Clone)]
struct Seen {
    to_resource: bool,
    at: u64,
    everything: String,
    access_token: Option<String>,
    presented_refresh_token: Option<String>,
    /// The family's live refresh token when the request arrived.
    live_refresh_token: Option<String>,
    answered_invalid_grant: bool,
}

#[derive(Default)]
struct Ledger {
    seen: Vec<Seen>,
    /// (token, issued_at)
    access_tokens: Vec<(String, u64)>,
    refresh_tokens: Vec<String>,
    live_refresh_token: Option<String>,
    refused_once: bool,
}

struct Scripted {
    script: Script,
    /// `expires_in` as told to the client (scaled down for programs run in real time).
    expires_in: u64,
    /// Milliseconds on the scripted servers' clock.
    now_ms: Box<dyn Fn() -> u64 + Send + Sync>,
    issuer: String,
    ledger: Mutex<Ledger>,
}

const CLIENT_ID: &str = "conformance-client";
const CLIENT_SECRET: &str = "conformance-secret";
const USERNAME: &str = "alice";
const PASSWORD: &str = "alice-password";

impl figure2_http::Handler for Scripted {
    async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> HttpResponse {
        let (parts, body) = request.into_parts();
        let body = figure2_http::read_body(body, 64 * 1024).await.unwrap_or_default();
        let body_text = String::from_utf8_lossy(&body).into_owned();
        let headers: String =
            parts.headers.iter().map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes()))).collect();
        let everything = format!("{} {}\n{headers}\n{body_text}", parts.method, parts.uri);
        let now = (self.now_ms)();
        let path = parts.uri.path();
        if path == figure2_protocol::metadata::WELL_KNOWN_SUFFIX {
            let m = serde_json::json!({
                "issuer": self.issuer,
                "token_endpoint": format!("{}/token", self.issuer),
                "response_types_supported": ["code"],
                "grant_types_supported": ["password", "refresh_token"],
            });
            return figure2_http::json(200, &m, &[]);
        }
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        if path == "/token" {
            let form = FormParams::parse(&body).unwrap_or_default();
            let mut seen = Seen {
                to_resource: false,
                at: now,
                everything,
                access_token: None,
                presented_refresh_token: form.get("refresh_token").map(str::to_owned),
                live_refresh_token: ledger.live_refresh_token.clone(),
                answered_invalid_grant: false,
            };
            let answer = match form.get("grant_type") {
                Some("password")
                    if form.get("username") == Some(USERNAME) && form.get("password") == Some(PASSWORD) =>
                {
                    Some(self.issue(&mut ledger, now, true))
                }
                Some("refresh_token") if self.script.refresh == "ok" => {
                    let presented = form.get("refresh_token");
                    if presented.is_some() && presented == ledger.live_refresh_token.as_deref() {
                        let rotate = self.script.rotate;
                        Some(self.issue(&mut ledger, now, rotate))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let response = match answer {
                Some(body) => figure2_http::json(200, &body, &figure2_protocol::token_response::NO_STORE_HEADERS),
                None => {
                    seen.answered_invalid_grant = true;
                    figure2_http::json(400, &serde_json::json!({"error": "invalid_grant"}), &[])
                }
            };
            ledger.seen.push(seen);
            return response;
        }
        // The protected resource.
        let authorization = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = extract_bearer_token(authorization).ok().flatten().map(str::to_owned);
        let issued = token.as_ref().and_then(|t| ledger.access_tokens.iter().find(|(a, _)| a == t).map(|(_, at)| *at));
        let first = ledger.access_tokens.first().map(|(t, _)| t.clone());
        ledger.seen.push(Seen {
            to_resource: true,
            at: now,
            everything,
            access_token: token.clone(),
            presented_refresh_token: None,
            live_refresh_token: None,
            answered_invalid_grant: false,
        });
        let script = self.script.resource.as_str();
        let refuse = match (issued, script) {
            (None, _) => true,
            (Some(_), "invalid_token_always" | "bare_401_always" | "insufficient_scope") => true,
            (Some(_), "invalid_token_once" | "bare_401_once" | "no_challenge_401_once")
                if !ledger.refused_once && token == first =>
            {
                ledger.refused_once = true;
                true
            }
            (Some(issued_at), _) => now >= issued_at + self.expires_in * 1000,
        };
        if !refuse {
            return figure2_http::json(200, &serde_json::json!({"resource": "read"}), &[]);
        }
        match script {
            // As many resource servers in the wild answer: a bare challenge, or none.
            "bare_401_once" | "bare_401_always" => {
                figure2_http::text(401, "text/plain", "", &[("www-authenticate", "Bearer")])
            }
            "no_challenge_401_once" => figure2_http::text(401, "text/plain", "Unauthorized", &[]),
            "insufficient_scope" => {
                let challenge = BearerChallenge::error("figure2", BearerErrorCode::InsufficientScope, "needs admin")
                    .with_scope("admin");
                figure2_http::json(
                    403,
                    &serde_json::json!({"error": "insufficient_scope"}),
                    &[("www-authenticate", &challenge.to_header_value())],
                )
            }
            _ => {
                let challenge =
                    BearerChallenge::error("figure2", BearerErrorCode::InvalidToken, "The access token is not valid");
                figure2_http::json(
                    401,
                    &serde_json::json!({"error": "invalid_token"}),
                    &[("www-authenticate", &challenge.to_header_value())],
                )
            }
        }
    }
}

impl Scripted {
    fn issue(&self, ledger: &mut Ledger, now: u64, new_refresh_token: bool) -> serde_json::Value {
        let n = ledger.access_tokens.len() + 1;
        let access_token = format!("figure2-at-{n}-{}", random_suffix());
        ledger.access_tokens.push((access_token.clone(), now));
        let mut body = serde_json::json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": "read",
        });
        if new_refresh_token || ledger.live_refresh_token.is_none() {
            let rt = format!("figure2-rt-{}-{}", ledger.refresh_tokens.len() + 1, random_suffix());
            ledger.refresh_tokens.push(rt.clone());
            ledger.live_refresh_token = Some(rt.clone());
            body["refresh_token"] = serde_json::json!(rt);
        }
        body
    }
}

fn random_suffix() -> String {
    let mut r = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut r);
    r.iter().map(|b| format!("{b:02x}")).collect()
}

/// Programs under test run in real time, so their checks run this many times faster
/// than the catalogue says (an `expires_in` of 60 becomes 12 seconds).
pub const COMMAND_TIME_SCALE: u64 = 5;

/// What a client under test is told (the contract's variables, and the shared clock
/// for in-process drivers).
#[derive(Debug, Clone)]
pub struct Env {
    pub issuer: String,
    pub token_endpoint: String,
    pub resource_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    pub scope: String,
    /// Seconds after the grant at which to call the resource.
    pub calls: Vec<u64>,
    pub concurrency: u32,
    pub clock: SimulatedClock,
}

/// An in-process client under test.
pub type Driver = Arc<dyn Fn(Env) -> std::pin::Pin<Box<dyn std::future::Future<Output = Ending> + Send>> + Send + Sync>;

/// The client under test.
#[derive(Clone)]
pub enum Subject {
    /// Any program following the contract in this module's documentation.
    Command(Vec<String>),
    /// A client in this process, on the simulated clock: Figure2's own client library
    /// (injected by the runner, which knows the roles; the checker does not), or a
    /// deliberately broken one in tests.
    InProcess(Driver),
}

/// What the client reported at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Ok,
    Reauthorize,
    Failed(String),
}

pub async fn run_catalogue(catalogue: &ClientCatalogue, subject: &Subject) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in &catalogue.checks {
        results.push(run_check(check, subject).await);
    }
    results
}

pub async fn run_check(check: &ClientCheck, subject: &Subject) -> CheckResult {
    let (verdict, reason) = match exercise(check, subject).await {
        Ok((ending, ledger, expires_in)) => judge(check, &ending, &ledger, expires_in),
        Err(e) => (Verdict::Fail, e),
    };
    CheckResult {
        id: check.id.clone(),
        role: Role::Client,
        section: check.section.clone(),
        keyword: check.keyword,
        summary: check.summary.clone(),
        verdict,
        reason,
    }
}

async fn exercise(check: &ClientCheck, subject: &Subject) -> Result<(Ending, Ledger, u64), String> {
    let simulated = SimulatedClock::starting_at(figure2_protocol::SIMULATION_EPOCH);
    let (now_ms, expires_in): (Box<dyn Fn() -> u64 + Send + Sync>, u64) = match subject {
        Subject::Command(_) => {
            let start = std::time::Instant::now();
            let scaled = (check.script.expires_in / COMMAND_TIME_SCALE).max(1);
            (Box::new(move || start.elapsed().as_millis() as u64), scaled)
        }
        _ => {
            let clock = simulated.clone();
            (Box::new(move || clock.now() * 1000), check.script.expires_in)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let scripted = Arc::new(Scripted {
        script: check.script.clone(),
        expires_in,
        now_ms,
        issuer: base.clone(),
        ledger: Mutex::new(Ledger::default()),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(figure2_http::serve(listener, scripted.clone(), Limits::default(), async {
        let _ = stopped.await;
    }));
    let env = Env {
        issuer: base.clone(),
        token_endpoint: format!("{base}/token"),
        resource_url: format!("{base}/resource"),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        username: USERNAME.into(),
        password: PASSWORD.into(),
        scope: "read".into(),
        calls: check.calls.clone(),
        concurrency: check.concurrency,
        clock: simulated,
    };
    let ending = match subject {
        Subject::InProcess(driver) => Ok(driver(env).await),
        Subject::Command(argv) => drive_command(&env, argv).await,
    };
    let _ = stop.send(());
    let _ = server.await;
    let ledger = std::mem::take(&mut *scripted.ledger.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((ending?, ledger, expires_in))
}

/// Runs the futures concurrently on this task and collects their results in order.
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().flatten().collect()
}

pub fn worst(a: Ending, b: Ending) -> Ending {
    match (&a, &b) {
        (Ending::Reauthorize, _) | (_, Ending::Ok) => a,
        _ => b,
    }
}

async fn drive_command(env: &Env, argv: &[String]) -> Result<Ending, String> {
    let (program, args) = argv.split_first().ok_or("no command given")?;
    let scale = COMMAND_TIME_SCALE as f64;
    let times: Vec<String> = env.calls.iter().map(|t| format!("{:.2}", *t as f64 / scale)).collect();
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("FIGURE2_ISSUER", &env.issuer)
        .env("FIGURE2_TOKEN_ENDPOINT", &env.token_endpoint)
        .env("FIGURE2_RESOURCE_URL", &env.resource_url)
        .env("FIGURE2_CLIENT_ID", &env.client_id)
        .env("FIGURE2_CLIENT_SECRET", &env.client_secret)
        .env("FIGURE2_USERNAME", &env.username)
        .env("FIGURE2_PASSWORD", &env.password)
        .env("FIGURE2_SCOPE", &env.scope)
        .env("FIGURE2_CALL_TIMES", times.join(","))
        .env("FIGURE2_CONCURRENCY", env.concurrency.to_string())
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    // Real time: the last call's time plus a margin, then the client is stopped.
    let last = env.calls.iter().max().copied().unwrap_or(0) / COMMAND_TIME_SCALE;
    let bound = std::time::Duration::from_secs(last + 20);
    match tokio::time::timeout(bound, child.wait()).await {
        Ok(Ok(status)) => Ok(match status.code() {
            Some(0) => Ending::Ok,
            Some(3) => Ending::Reauthorize,
            other => Ending::Failed(format!("the client exited with {other:?}")),
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            let _ = child.kill().await;
            Ok(Ending::Failed(format!("the client did not finish within {}s", bound.as_secs())))
        }
    }
}

fn judge(check: &ClientCheck, ending: &Ending, ledger: &Ledger, expires_in: u64) -> (Verdict, String) {
    let e = &check.expect;
    let refreshes: Vec<&Seen> =
        ledger.seen.iter().filter(|s| !s.to_resource && s.presented_refresh_token.is_some()).collect();
    let resource: Vec<&Seen> = ledger.seen.iter().filter(|s| s.to_resource).collect();
    let mut problems = Vec::new();
    let ending_name = match ending {
        Ending::Ok => "ok".to_owned(),
        Ending::Reauthorize => "reauthorize".to_owned(),
        Ending::Failed(why) => format!("failed ({why})"),
    };
    match &e.outcome {
        Some(want) if !ending_name.starts_with(want.as_str()) => {
            problems.push(format!("expected the client to end {want}, it ended {ending_name}"))
        }
        None if *ending != Ending::Ok => problems.push(format!("the client ended {ending_name}")),
        _ => {}
    }
    if let Some(n) = e.refresh_requests
        && refreshes.len() != n
    {
        problems.push(format!("expected {n} refresh request(s), saw {}", refreshes.len()));
    }
    if let Some(n) = e.max_refresh_requests
        && refreshes.len() > n
    {
        problems.push(format!("expected at most {n} refresh request(s), saw {}", refreshes.len()));
    }
    if let Some(n) = e.max_resource_requests
        && resource.len() > n
    {
        problems.push(format!("expected at most {n} resource request(s), saw {}", resource.len()));
    }
    if e.expired_token_presented == Some(false) {
        let expired = resource.iter().filter(|s| {
            let issued =
                ledger.access_tokens.iter().find(|(t, _)| Some(t) == s.access_token.as_ref()).map(|(_, at)| *at);
            issued.is_some_and(|at| s.at >= at + expires_in * 1000)
        });
        let n = expired.count();
        if n > 0 {
            problems.push(format!("presented an access token it knew had expired {n} time(s) (step E: skip to G)"));
        }
    }
    if e.presents_newest_refresh_token
        && let Some(stale) = refreshes.iter().find(|s| s.presented_refresh_token != s.live_refresh_token)
    {
        let number = |t: &Option<String>| {
            t.as_ref().and_then(|t| ledger.refresh_tokens.iter().position(|rt| rt == t)).map_or(0, |i| i + 1)
        };
        problems.push(format!(
            "presented refresh token #{} when #{} was the live one (the rotated token was not kept)",
            number(&stale.presented_refresh_token),
            number(&stale.live_refresh_token)
        ));
    }
    if e.refresh_token_stays_private {
        for s in &resource {
            if ledger.refresh_tokens.iter().any(|rt| s.everything.contains(rt.as_str())) {
                problems.push("sent a refresh token to the resource server".into());
                break;
            }
        }
    }
    if let Some(n) = e.requests_after_invalid_grant
        && let Some(pos) = ledger.seen.iter().position(|s| s.answered_invalid_grant)
    {
        let after = ledger.seen.len() - pos - 1;
        if after > n {
            problems.push(format!("made {after} request(s) after invalid_grant (expected at most {n})"));
        }
    }
    if problems.is_empty() { (Verdict::Pass, String::new()) } else { (Verdict::Fail, problems.join("; ")) }
}
