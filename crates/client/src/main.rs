//! `client`: the demo client of Figure 2. It discovers the token endpoint (RFC 8414),
//! gets tokens with the password grant (A/B), then calls the resource server (C/D) and
//! lets the library refresh (E/F, G/H) as tokens expire, printing each exchange as one
//! line with its Figure 2 letters.
//!
//! It outlives the servers' restarts: a failed exchange (connection refused, timeout, a 5xx)
//! is retried with a bounded exponential backoff, keeping the tokens; only a refused refresh
//! token (`invalid_grant`) sends it back to step (A).

use clap::Parser;
use figure2_client::{Client, ClientConfig, ClientError, Observer, Step, TokenSet};
use figure2_http::HttpClient;
use figure2_protocol::metadata::AuthorizationServerMetadata;
use figure2_protocol::secret::{ClientSecret, Secret};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{Clock, Scope, SystemClock};
use http::Method;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

mod contract;

/// How long to wait for the authorization server to come up.
const DISCOVERY_PATIENCE: Duration = Duration::from_secs(60);
/// `--once`: how long past expiry the resource server may keep accepting the token (clock
/// leeway) before we give up waiting for step F.
const ONCE_LEEWAY: u64 = 120;
/// `--once` without `expires_in`: how long to keep trying for step F.
const ONCE_UNKNOWN_EXPIRY: u64 = 900;
/// The first pause after a failed exchange; it doubles on each failure in a row...
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// ...up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(16);

#[derive(Parser, Debug)]
#[command(
    name = "client",
    version,
    about = "The client of RFC 6749 Figure 2: A/B, then C/D, E/F, G/H as tokens expire"
)]
struct Args {
    /// Issuer identifier of the authorization server (RFC 8414 discovery).
    #[arg(long, env = "FIGURE2_ISSUER")]
    issuer: String,
    /// Protected resource to call, e.g. http://127.0.0.1:8081/resource/read.
    #[arg(long, env = "FIGURE2_RESOURCE")]
    resource: String,
    #[arg(long, env = "FIGURE2_CLIENT_ID", default_value = "demo-client")]
    client_id: String,
    /// Client secret (client_secret_basic); without one the client is public.
    #[arg(long, env = "FIGURE2_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Resource owner for the password grant (RFC 6749 §4.3; legacy, demo only).
    #[arg(long, env = "FIGURE2_USERNAME", default_value = "alice")]
    username: String,
    /// The resource owner's password (default: alice's in config/demo.toml).
    #[arg(long, env = "FIGURE2_PASSWORD", hide_env_values = true, default_value = "alice-password")]
    password: String,
    /// Scope to request (RFC 6749 §3.3).
    #[arg(long, env = "FIGURE2_SCOPE", default_value = "read write", value_parser = parse_scope)]
    scope: Scope,
    /// Seconds between resource calls.
    #[arg(long, env = "FIGURE2_INTERVAL", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Ignore `expires_in`: present the access token until the resource server refuses it
    /// (E/F), instead of skipping to (G) when the client knows it expired (RFC 6749 §1.5 (E)).
    #[arg(long, env = "FIGURE2_IGNORE_EXPIRES_IN", value_parser = clap::builder::BoolishValueParser::new())]
    ignore_expires_in: bool,
    /// Run A to H once (A/B, C/D, wait for expiry, E/F, G/H, C/D) and exit.
    #[arg(long)]
    once: bool,
    /// RFC 9449: hold a DPoP key and bind the tokens to it (proofs to both servers).
    #[arg(long, env = "FIGURE2_DPOP", value_parser = clap::builder::BoolishValueParser::new())]
    dpop: bool,
    /// Be the client under `figure2 check-client`: read its contract from the environment
    /// (FIGURE2_TOKEN_ENDPOINT, FIGURE2_RESOURCE_URL, FIGURE2_CALL_TIMES, ...) and ignore
    /// every other option.
    #[arg(long)]
    contract: bool,
}

fn parse_scope(s: &str) -> Result<Scope, figure2_protocol::scope::MalformedScope> {
    Scope::parse(s)
}

/// The steps seen, with their status, for `--once` to check.
type Seen = Arc<Mutex<Vec<(Step, u16)>>>;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // `figure2 check-client` runs us with its contract in the environment.
    if std::env::args().any(|a| a == "--contract") {
        return contract::run().await;
    }
    let args = Args::parse();
    let once = args.once;
    tokio::select! {
        result = run(args) => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("client: {e}");
                ExitCode::FAILURE
            }
        },
        () = figure2_http::shutdown_signal() => {
            eprintln!("client: stopping");
            // `--once` did not finish its run.
            if once { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let http = HttpClient::new().with_timeout(Duration::from_secs(10));
    let metadata = discover(&http, &args.issuer).await?;
    let token_endpoint = metadata.token_endpoint().map_err(|e| e.to_string())?.to_owned();
    let mut config =
        ClientConfig::new(args.client_id.clone(), args.client_secret.clone().map(ClientSecret::new), token_endpoint);
    config.dpop = args.dpop;
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let observer: Observer = Arc::new(move |exchange| {
        println!("{}", exchange.summary());
        if let Ok(mut seen) = record.lock() {
            seen.push((exchange.step, exchange.status));
        }
    });
    let client = Client::new(config, Arc::new(SystemClock), http).with_observer(observer);
    authorize_patiently(&client, &args).await?;
    if args.once { run_once(&client, &args, &seen).await } else { run_forever(&client, &args).await }
}

/// RFC 8414 discovery, retried while the authorization server starts.
async fn discover(http: &HttpClient, issuer: &str) -> Result<AuthorizationServerMetadata, String> {
    let deadline = Instant::now() + DISCOVERY_PATIENCE;
    loop {
        match Client::discover(http, issuer).await {
            Ok(metadata) => return Ok(metadata),
            // Not listening yet: wait. Anything else (wrong issuer, bad JSON) will not mend.
            Err(ClientError::Http(e)) if Instant::now() < deadline => {
                tracing::info!(error = %e, "authorization server not reachable yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(format!("discovery at {issuer} failed: {e}")),
        }
    }
}

/// Steps A→B with the password grant (RFC 6749 §4.3).
async fn authorize(client: &Client, args: &Args) -> Result<(), ClientError> {
    let grant = TokenRequest::Password {
        username: args.username.clone(),
        password: Secret::new(args.password.clone()),
        scope: Some(args.scope.clone()),
    };
    client.request_token(grant).await.map(drop)
}

/// Steps A→B at startup. The authorization server answered discovery, but it may be
/// restarting: a failed exchange is retried for a while. A refusal (wrong password, unknown
/// client) is final.
async fn authorize_patiently(client: &Client, args: &Args) -> Result<(), String> {
    let deadline = Instant::now() + DISCOVERY_PATIENCE;
    let mut backoff = Backoff::default();
    loop {
        match authorize(client, args).await {
            Ok(()) => return Ok(()),
            Err(e @ ClientError::Http(_)) if Instant::now() < deadline => backoff.pause(&e).await,
            Err(e) => return Err(format!("(A)->(B) failed: {e}")),
        }
    }
}

/// C/D every interval; the library does E/F and G/H; back to A when the grant is gone.
/// Any other failure (a server restarting: connection refused, timeout, 5xx) keeps the
/// tokens and is retried after a bounded backoff.
async fn run_forever(client: &Client, args: &Args) -> Result<(), String> {
    let mut ticker = tokio::time::interval(Duration::from_secs(args.interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backoff = Backoff::default();
    loop {
        ticker.tick().await;
        if args.ignore_expires_in {
            forget_expiry(client);
        }
        match client.call(Method::GET, &args.resource, None).await {
            Ok(_) => backoff.reset(),
            Err(
                e
                @ (ClientError::ReauthorizationRequired(_) | ClientError::NotAuthorized | ClientError::NoRefreshToken),
            ) => {
                println!("back to (A): {e}");
                if let Err(e) = authorize(client, args).await {
                    backoff.pause(&format!("(A)->(B) failed: {e}")).await;
                }
            }
            Err(e) => backoff.pause(&e).await,
        }
    }
}

/// The pause after a failed exchange: [`FIRST_BACKOFF`], doubling on every failure in a
/// row up to [`MAX_BACKOFF`].
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn delay(&self) -> Duration {
        FIRST_BACKOFF.saturating_mul(1 << self.failures.min(8)).min(MAX_BACKOFF)
    }

    async fn pause(&mut self, error: &dyn std::fmt::Display) {
        let delay = self.delay();
        self.failures = self.failures.saturating_add(1);
        eprintln!("client: {error}; retrying in {}s", delay.as_secs());
        tokio::time::sleep(delay).await;
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `--ignore-expires-in`: forget when the access token expires, so that the client presents
/// it anyway and meets step F instead of skipping to G.
fn forget_expiry(client: &Client) {
    if let Some(tokens) = client.tokens().filter(|t| t.expires_at.is_some()) {
        client.set_tokens(Some(TokenSet { expires_at: None, ..tokens }));
    }
}

/// A to H once: C/D, wait for the access token to expire, then E/F, G/H, C/D.
async fn run_once(client: &Client, args: &Args, seen: &Seen) -> Result<(), String> {
    // The resource server may still be starting (`docker compose run` with no wait).
    let deadline = Instant::now() + DISCOVERY_PATIENCE;
    let mut backoff = Backoff::default();
    let first = loop {
        match client.call(Method::GET, &args.resource, None).await {
            Ok(response) => break response,
            Err(e @ ClientError::Http(_)) if Instant::now() < deadline => backoff.pause(&e).await,
            Err(e) => return Err(e.to_string()),
        }
    };
    if first.status != 200 {
        return Err(format!("(C)->(D) answered {}", first.status));
    }
    let clock = SystemClock;
    let expires_at = client.tokens().and_then(|t| t.expires_at);
    let give_up = match expires_at {
        Some(at) => {
            let wait = at.saturating_sub(clock.now()) + 1;
            println!("waiting {wait}s for the access token to expire");
            tokio::time::sleep(Duration::from_secs(wait)).await;
            at + ONCE_LEEWAY
        }
        None => clock.now() + ONCE_UNKNOWN_EXPIRY,
    };
    loop {
        // A client that knows the token expired skips to (G) (RFC 6749 §1.5 (E)). To show
        // E and F, this run forgets `expires_at` and presents the stale token.
        forget_expiry(client);
        let mark = seen.lock().map(|s| s.len()).unwrap_or(0);
        let response = client.call(Method::GET, &args.resource, None).await.map_err(|e| e.to_string())?;
        let steps: Vec<(Step, u16)> = seen.lock().map(|s| s[mark..].to_vec()).unwrap_or_default();
        let expected = [Step::InvalidToken, Step::Refresh, Step::ProtectedResource];
        if steps.iter().map(|(step, _)| *step).eq(expected) && response.status == 200 {
            println!("A to H done");
            return Ok(());
        }
        if steps.iter().any(|(step, _)| *step != Step::ProtectedResource) || response.status != 200 {
            return Err(format!("expected (E)->(F), (G)->(H), (C)->(D) 200; got {steps:?}"));
        }
        // Still accepted (the resource server allows some clock skew): try again.
        if clock.now() >= give_up {
            return Err("the resource server kept accepting the access token; no (F)".into());
        }
        tokio::time::sleep(Duration::from_secs(args.interval)).await;
    }
}
