//! `resource-server`: Figure 2's resource server (steps C-F) as a standalone process.
//!
//! It discovers the authorization server (RFC 8414), retrying while that server starts,
//! then serves until SIGTERM or Ctrl-C.

use clap::Parser;
use figure2_http::HttpClient;
use figure2_protocol::{Clock, SystemClock};
use figure2_resource_server::clock_follow::{FollowedClock, serve_following};
use figure2_resource_server::{DEFAULT_AUDIENCE, DEFAULT_REALM, ResourceServer, ResourceServerConfig, serve};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const DISCOVERY_ATTEMPTS: u32 = 60;
const DISCOVERY_PAUSE: Duration = Duration::from_secs(1);

/// Figure 2's resource server: validates RFC 9068 JWT access tokens locally and answers
/// per RFC 6750.
#[derive(Debug, Parser)]
#[command(name = "resource-server", version)]
struct Args {
    /// The authorization server's issuer identifier, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "FIGURE2_ISSUER")]
    issuer: String,
    /// Address to listen on.
    #[arg(long, env = "FIGURE2_RS_LISTEN", default_value = "127.0.0.1:8081")]
    listen: String,
    /// The `aud` value access tokens must carry.
    #[arg(long, env = "FIGURE2_AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    audience: String,
    /// Seconds of clock skew tolerated on exp, nbf and iat.
    #[arg(long, env = "FIGURE2_LEEWAY", default_value_t = 0)]
    leeway: u64,
    /// The realm of the WWW-Authenticate challenge.
    #[arg(long, env = "FIGURE2_REALM", default_value = DEFAULT_REALM)]
    realm: String,
    /// TESTS ONLY: follow the clock of an authorization server started with
    /// --test-control (its issuer URL): tokens expire here when its clock is moved.
    #[arg(long, env = "FIGURE2_CLOCK_FROM")]
    clock_from: Option<String>,
    /// The URL clients reach this server at (e.g. https://api.example behind a proxy),
    /// against which DPoP proofs' htu is checked; default http:// and the Host header.
    #[arg(long, env = "FIGURE2_RS_PUBLIC_URL")]
    public_url: Option<String>,
    /// RFC 9449 §9: require a server-provided nonce in DPoP proofs.
    #[arg(long, env = "FIGURE2_RS_DPOP_NONCE")]
    dpop_nonce: bool,
    /// RFC 7662: introspect each access token the first time it is served, so that the
    /// authorization server learns it was used (usage-based recovery: preset mas). Needs
    /// --introspection-client-id and --introspection-client-secret.
    #[arg(long, env = "FIGURE2_RS_REPORT_FIRST_USE")]
    report_first_use: bool,
    /// This resource server's client id at the authorization server (for introspection).
    #[arg(long, env = "FIGURE2_RS_CLIENT_ID")]
    introspection_client_id: Option<String>,
    /// Its client secret (HTTP Basic, RFC 6749 §2.3.1).
    #[arg(long, env = "FIGURE2_RS_CLIENT_SECRET", hide_env_values = true)]
    introspection_client_secret: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    // One shutdown signal, watched both while discovering and while serving.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        figure2_http::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });

    let mut config = ResourceServerConfig::new(args.issuer, args.audience);
    config.leeway = args.leeway;
    config.realm = args.realm;
    config.public_url = args.public_url;
    config.dpop_nonce = args.dpop_nonce;
    if args.report_first_use {
        let (Some(client_id), Some(secret)) = (args.introspection_client_id, args.introspection_client_secret) else {
            tracing::error!("--report-first-use needs --introspection-client-id and --introspection-client-secret");
            return ExitCode::FAILURE;
        };
        config.report_first_use = Some(figure2_resource_server::IntrospectionClient {
            client_id,
            client_secret: figure2_protocol::secret::ClientSecret::new(secret),
        });
    }
    let http = HttpClient::new().with_timeout(Duration::from_secs(5));
    let followed = args.clock_from.as_deref().map(|issuer| Arc::new(FollowedClock::new(issuer, http.clone())));
    let clock: Arc<dyn Clock> = match &followed {
        Some(f) => f.clone(),
        None => Arc::new(SystemClock),
    };

    let server = match discover_with_retries(config, clock, http, stop_rx.clone()).await {
        Discovery::Ready(server) => server,
        Discovery::Stopped => {
            tracing::info!("stopped before discovery completed");
            return ExitCode::SUCCESS;
        }
        Discovery::Failed => return ExitCode::FAILURE,
    };

    let listener = match tokio::net::TcpListener::bind(&args.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %args.listen, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let mut stop = stop_rx;
    let shutdown = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
        tracing::info!("shutting down");
    };
    let served = match followed {
        Some(clock) => {
            tracing::warn!("following the authorization server's test-control clock (tests only)");
            serve_following(listener, server, clock, shutdown).await
        }
        None => serve(listener, server, shutdown).await,
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            ExitCode::FAILURE
        }
    }
}

enum Discovery {
    Ready(Arc<ResourceServer>),
    /// SIGTERM or Ctrl-C arrived first.
    Stopped,
    /// Logged already.
    Failed,
}

/// RFC 8414 discovery, retried while the authorization server may still be starting.
async fn discover_with_retries(
    config: ResourceServerConfig,
    clock: Arc<dyn Clock>,
    http: HttpClient,
    mut stop: watch::Receiver<bool>,
) -> Discovery {
    for attempt in 1..=DISCOVERY_ATTEMPTS {
        let error = tokio::select! {
            result = ResourceServer::discover(config.clone(), clock.clone(), http.clone()) => match result {
                Ok(server) => return Discovery::Ready(server),
                Err(e) => e,
            },
            _ = stop.wait_for(|stopped| *stopped) => return Discovery::Stopped,
        };
        if !error.is_retryable() {
            tracing::error!(issuer = %config.issuer, error = %error, "discovery failed; not retrying");
            return Discovery::Failed;
        }
        if attempt == DISCOVERY_ATTEMPTS {
            tracing::error!(
                issuer = %config.issuer,
                error = %error,
                "could not discover the authorization server after {DISCOVERY_ATTEMPTS} attempts; giving up"
            );
            return Discovery::Failed;
        }
        tracing::warn!(attempt, issuer = %config.issuer, error = %error, "discovery failed; retrying in 1 s");
        tokio::select! {
            () = tokio::time::sleep(DISCOVERY_PAUSE) => {}
            _ = stop.wait_for(|stopped| *stopped) => return Discovery::Stopped,
        }
    }
    Discovery::Failed
}
