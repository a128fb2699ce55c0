//! `authorization-server`: the authorization server of Figure 2 as a standalone process.

use clap::{Parser, Subcommand};
use figure2_authorization_server::control::ControlledClock;
use figure2_authorization_server::{AuthorizationServer, ConfigFile, serve};
use figure2_protocol::{Clock, SystemClock};
use std::sync::Arc;

#[derive(Parser)]
#[command(version, about = "Figure2 authorization server: steps B and H of RFC 6749 Figure 2")]
struct Cli {
    /// TOML configuration file (see config/demo.toml).
    #[arg(long, env = "FIGURE2_CONFIG", default_value = "config/demo.toml")]
    config: String,
    /// Address to listen on (overrides `listen` in the file).
    #[arg(long, env = "FIGURE2_AS_LISTEN")]
    listen: Option<String>,
    /// Issuer identifier (overrides `issuer` in the file), e.g. http://127.0.0.1:8080
    #[arg(long, env = "FIGURE2_ISSUER")]
    issuer: Option<String>,
    /// Where the state is kept (overrides `database` in the file): a SQLite file, or a
    /// PostgreSQL URL (`postgres://user:password@host/db`) that several instances share.
    #[arg(long, env = "FIGURE2_DATABASE")]
    database: Option<String>,
    /// Access token lifetime in seconds (overrides the file).
    #[arg(long, env = "FIGURE2_ACCESS_TOKEN_LIFETIME")]
    access_token_lifetime: Option<u64>,
    /// Refresh token lifetime in seconds (overrides the file).
    #[arg(long, env = "FIGURE2_REFRESH_TOKEN_LIFETIME")]
    refresh_token_lifetime: Option<u64>,
    /// Rotation: issue a new refresh token on every refresh (overrides the file).
    #[arg(long, env = "FIGURE2_ALWAYS_ISSUE_NEW_REFRESH_TOKEN")]
    always_issue_new_refresh_token: Option<bool>,
    /// Refresh-token policy of a real server (overrides `preset` in the file; options set
    /// in the file still apply): figure2, oidc-provider, hydra, hydra-graceful, keycloak,
    /// keycloak-revoke, dex, rauthy, kanidm, mas, duende, duende-onetime, spring, auth0.
    #[arg(long, env = "FIGURE2_PRESET")]
    preset: Option<String>,
    /// NEVER IN PRODUCTION. Serve the test-control API under /control/ (move the clock,
    /// inject faults into token requests, create users and clients, list and revoke
    /// families). Refused unless the listen address is loopback.
    #[arg(long, env = "FIGURE2_TEST_CONTROL")]
    test_control: bool,
    /// With --test-control: allow a non-loopback listen address (a test network only).
    #[arg(long, env = "FIGURE2_TEST_CONTROL_ALLOW_NON_LOOPBACK", requires = "test_control")]
    test_control_allow_non_loopback: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Print the argon2id hash of a password for a [[users]] entry (reads one line from stdin).
    HashPassword,
    /// Print the SHA-256 hex digest of a client secret for a [[clients]] entry (reads stdin).
    HashSecret,
    /// Add a new signing key; the old ones stay published until retired.
    RotateKey,
    /// Remove a signing key from the JWKS (restart a running server to apply it). Tokens
    /// it signed then stop verifying: here at once, at a resource server once its cached
    /// JWKS goes stale (the JWKS says max-age=60; Figure2's resource server trusts a key
    /// set 30 to 300 s).
    RetireKey { kid: String },
    /// List the signing keys.
    ListKeys,
}

fn read_stdin_line() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim_end_matches(['\r', '\n']).to_owned()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("authorization-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Some(Command::HashPassword) => {
            println!("{}", figure2_authorization_server::config::hash_password(&read_stdin_line())?);
            return Ok(());
        }
        Some(Command::HashSecret) => {
            println!("{}", figure2_protocol::secret::digest_hex(&read_stdin_line()));
            return Ok(());
        }
        _ => {}
    }
    let mut file = ConfigFile::load(&cli.config)?;
    if cli.issuer.is_some() {
        file.issuer = cli.issuer;
    }
    if let Some(db) = cli.database {
        file.database = db;
    }
    if let Some(l) = cli.access_token_lifetime {
        file.access_token_lifetime = l;
    }
    if let Some(l) = cli.refresh_token_lifetime {
        file.refresh_token_lifetime = Some(l);
    }
    if let Some(r) = cli.always_issue_new_refresh_token {
        file.always_issue_new_refresh_token = Some(r);
    }
    if cli.preset.is_some() {
        file.preset = cli.preset;
    }
    let listen = cli.listen.or(file.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let config = file.resolve()?;
    if let Some(preset) = &config.preset {
        tracing::info!(preset, policy = ?config.refresh, "refresh-token preset");
    }
    // With test control the clock is the system clock plus an offset the API moves.
    let controlled = cli.test_control.then(|| Arc::new(ControlledClock::new(Arc::new(SystemClock))));
    let clock: Arc<dyn Clock> = match &controlled {
        Some(c) => c.clone(),
        None => Arc::new(SystemClock),
    };
    let server = AuthorizationServer::open(config, clock).await?;
    match cli.command {
        Some(Command::RotateKey) => {
            println!("{}", server.rotate_signing_key()?);
            return Ok(());
        }
        Some(Command::RetireKey { kid }) => {
            if !server.retire_signing_key(&kid)? {
                return Err(format!("{kid} is not a retirable key (unknown, or the one that signs)").into());
            }
            return Ok(());
        }
        Some(Command::ListKeys) => {
            for k in server.jwks()["keys"].as_array().into_iter().flatten() {
                println!("{} {}", k["kid"].as_str().unwrap_or(""), k["alg"].as_str().unwrap_or(""));
            }
            return Ok(());
        }
        _ => {}
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    if let Some(clock) = controlled {
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() && !cli.test_control_allow_non_loopback {
            return Err(format!(
                "--test-control on {addr} would let anyone who can reach it control this server: \
                 listen on a loopback address, or add --test-control-allow-non-loopback on a test network"
            )
            .into());
        }
        server.enable_test_control(clock);
        tracing::warn!(%addr, "TEST CONTROL IS ON: /control/ can move the clock and break token requests; never use this in production");
    }
    tracing::info!(issuer = server.issuer(), listen = %listener.local_addr()?, "authorization server ready");
    serve(listener, server, figure2_http::shutdown_signal()).await?;
    tracing::info!("authorization server stopped");
    Ok(())
}
