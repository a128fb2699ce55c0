//! `client`: the demo client of Figure 2. It discovers the token endpoint (RFC 8414),
//! gets tokens with the password grant (A/B), then calls the resource server (C/D) and
//! lets the library refresh (E/F, G/H) as tokens expire, printing each exchange as one
//! line with its Figure 2 letters.

use clap::Parser;
use figure2_client::{Client, ClientConfig, ClientError, Observer, Step};
use figure2_http::HttpClient;
use figure2_protocol::metadata::AuthorizationServerMetadata;
use figure2_protocol::secret::Secret;
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{Clock, Scope, SystemClock};
use http::Method;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long to wait for the authorization server to come up.
const DISCOVERY_PATIENCE: Duration = Duration::from_secs(60);
/// `--once`: how long past expiry the resource server may keep accepting the token (clock
/// leeway) before we give up waiting for step F.
const ONCE_LEEWAY: u64 = 120;
/// `--once` without `expires_in`: how long to keep trying for step F.
const ONCE_UNKNOWN_EXPIRY: u64 = 900;

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
    #[arg(long, default_value = "read write", value_parser = parse_scope)]
    scope: Scope,
    /// Seconds between resource calls.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    interval: u64,
    /// Run A to H once (A/B, C/D, wait for expiry, E/F, G/H, C/D) and exit.
    #[arg(long)]
    once: bool,
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
        () = shutdown_signal() => {
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
    let config = ClientConfig::new(args.client_id.clone(), args.client_secret.clone().map(Secret::new), token_endpoint);
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let observer: Observer = Arc::new(move |exchange| {
        println!("{}", exchange.summary());
        if let Ok(mut seen) = record.lock() {
            seen.push((exchange.step, exchange.status));
        }
    });
    let client = Client::new(config, Arc::new(SystemClock), http).with_observer(observer);
    authorize(&client, &args).await.map_err(|e| format!("(A)->(B) failed: {e}"))?;
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

/// C/D every interval; the library does E/F and G/H; back to A when the grant is gone.
async fn run_forever(client: &Client, args: &Args) -> Result<(), String> {
    let mut ticker = tokio::time::interval(Duration::from_secs(args.interval));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match client.call(Method::GET, &args.resource, None).await {
            Ok(_) => {}
            Err(
                e
                @ (ClientError::ReauthorizationRequired(_) | ClientError::NotAuthorized | ClientError::NoRefreshToken),
            ) => {
                println!("back to (A): {e}");
                if let Err(e) = authorize(client, args).await {
                    eprintln!("client: (A)->(B) failed: {e}");
                }
            }
            Err(e) => eprintln!("client: {e}"),
        }
    }
}

/// A to H once: C/D, wait for the access token to expire, then E/F, G/H, C/D.
async fn run_once(client: &Client, args: &Args, seen: &Seen) -> Result<(), String> {
    let first = client.call(Method::GET, &args.resource, None).await.map_err(|e| e.to_string())?;
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
        if let Some(tokens) = client.tokens() {
            client.set_tokens(Some(figure2_client::TokenSet { expires_at: None, ..tokens }));
        }
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

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
