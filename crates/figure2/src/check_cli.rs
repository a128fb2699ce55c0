//! `figure2 check` and `figure2 check-client`: the conformance catalogue against anyone's
//! servers or client.

use figure2_conformance::{
    CatalogueFile, ConformanceReport, Format, client, client_catalogue, server, server_catalogue,
};
use figure2_http::HttpClient;
use figure2_runner::checks;

/// Options of `figure2 check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// The authorization server's issuer identifier (RFC 8414): its metadata is fetched
    /// from the well-known URL. Omit it to check Figure2's own roles in-process.
    #[arg(long)]
    pub issuer: Option<String>,
    #[arg(long, default_value = "demo-client")]
    pub client_id: String,
    #[arg(long, env = "FIGURE2_CHECK_CLIENT_SECRET", default_value = "demo-secret")]
    pub client_secret: String,
    /// A second client, for the checks that a refresh token is bound to its client.
    #[arg(long)]
    pub other_client_id: Option<String>,
    #[arg(long, env = "FIGURE2_CHECK_OTHER_CLIENT_SECRET")]
    pub other_client_secret: Option<String>,
    /// A resource owner for the password grant (one way to get tokens; most servers today
    /// do not offer it: see --token-command and --refresh-token).
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long, env = "FIGURE2_CHECK_PASSWORD")]
    pub password: Option<String>,
    /// A shell command run whenever a check needs a new token family (by any grant, e.g.
    /// an authorization-code login driven with curl); it prints an RFC 6749 §5.1 token
    /// response as JSON. It gets FIGURE2_ISSUER, FIGURE2_TOKEN_ENDPOINT,
    /// FIGURE2_AUTHORIZATION_ENDPOINT, FIGURE2_CLIENT_ID, FIGURE2_CLIENT_SECRET, FIGURE2_SCOPE.
    #[arg(long)]
    pub token_command: Option<String>,
    /// One refresh token of the client: the checks that need only one family use it in
    /// turn (each starts with a refresh); the checks that spend a family are skipped.
    #[arg(long, env = "FIGURE2_CHECK_REFRESH_TOKEN")]
    pub refresh_token: Option<String>,
    /// Let the client credentials grant (RFC 6749 §4.4) give the checks that need only an
    /// access token (most resource-server checks) their token.
    #[arg(long)]
    pub client_credentials: bool,
    /// The scope to ask for (password grant, token command, client credentials).
    #[arg(long)]
    pub scope: Option<String>,
    /// A protected resource (GET) the granted token can read: enables the resource-server checks.
    #[arg(long)]
    pub resource: Option<String>,
    /// A protected resource the granted scope does not cover (for insufficient_scope). The
    /// checker narrows the token to one scope value that still reads --resource first.
    #[arg(long)]
    pub insufficient_scope_url: Option<String>,
    /// The longest a check may wait for a token to expire, in seconds; longer ones are skipped.
    #[arg(long, default_value_t = 90)]
    pub max_wait: u64,
    /// Run only the checks whose id starts with one of these (comma-separated, or the
    /// option repeated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// table, json or junit.
    #[arg(long, default_value = "table")]
    pub format: Format,
    /// The server binds this client's refresh tokens to its DPoP key (RFC 9449 §5: always
    /// for a public client; for a confidential one only where configured): enables the
    /// checks that refresh with another key or without a proof.
    #[arg(long)]
    pub dpop_bound_refresh_tokens: bool,
}

/// Options of `figure2 check-client`.
#[derive(clap::Args, Debug)]
pub struct CheckClientArgs {
    /// Run only the checks whose id starts with one of these (comma-separated, or the
    /// option repeated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// table, json or junit.
    #[arg(long, default_value = "table")]
    pub format: Format,
    /// Catalogue seconds per real second for a client program (60-second tokens live 12 s
    /// at 5); 1 runs the catalogue's own times.
    #[arg(long, default_value_t = client::COMMAND_TIME_SCALE)]
    pub time_scale: u64,
    /// The access tokens' expires_in told to a client program, in seconds (default: the
    /// catalogue's divided by --time-scale, long enough for --client-leeway).
    #[arg(long)]
    pub token_lifetime: Option<u64>,
    /// Seconds before expiry at which the client program refreshes on its own (Authlib: 60);
    /// calls meant to fall before expiry come before that.
    #[arg(long, default_value_t = 0)]
    pub client_leeway: u64,
    /// Where each check's files go for a client program: ID.stdout, ID.stderr and ID.trace
    /// (the requests seen and the answers given).
    #[arg(long, default_value = "figure2-check-client")]
    pub output_dir: std::path::PathBuf,
    /// The client program and its arguments (after `--`). Without it, Figure2's own client
    /// library is checked in-process.
    #[arg(last = true)]
    pub command: Vec<String>,
}

fn keep(only: &[String], id: &str) -> bool {
    only.is_empty() || only.iter().any(|prefix| id.starts_with(prefix.as_str()))
}

/// Prints the report and returns whether no MUST failed.
fn finish(report: &ConformanceReport, format: Format) -> bool {
    print!("{}", report.render(format));
    !report.failed_absolute()
}

pub async fn check(args: CheckArgs) -> Result<bool, String> {
    let Some(issuer) = args.issuer.clone() else {
        let mut report = checks::run_in_process(&checks::in_process_config()).await?;
        report.results.retain(|r| keep(&args.only, &r.id));
        return Ok(finish(&report, args.format));
    };
    let issuer = issuer.trim_end_matches('/').to_owned();
    let http = HttpClient::new().with_timeout(std::time::Duration::from_secs(20));
    let (metadata, metadata_url) = figure2_http::discover_any(&http, &issuer).await.map_err(|e| e.to_string())?;
    if metadata_url.ends_with("/.well-known/openid-configuration") {
        eprintln!("no RFC 8414 metadata (404); using OpenID Connect Discovery: {metadata_url}");
    }
    let target = server::Target {
        issuer,
        metadata,
        client_id: args.client_id,
        client_secret: args.client_secret,
        other_client: args.other_client_id.zip(args.other_client_secret),
        user: args.username.zip(args.password),
        sources: server::TokenSources {
            command: args.token_command,
            refresh_token: args.refresh_token.map(server::TokenSources::shared_refresh_token),
            client_credentials: args.client_credentials,
        },
        scope: args.scope,
        resource: args.resource,
        scope_limited_resource: args.insufficient_scope_url,
        time: server::TimeSource::Real { max_wait: args.max_wait },
        metadata_url: Some(metadata_url),
        forge: None,
        dpop_bound_refresh_tokens: args.dpop_bound_refresh_tokens,
        http,
    };
    let mut report = ConformanceReport::default();
    for file in CatalogueFile::SERVERS {
        let mut catalogue = server_catalogue(file)?;
        catalogue.checks.retain(|c| keep(&args.only, &c.id));
        for check in &catalogue.checks {
            let result = server::run_check(catalogue.role, check, &target).await;
            eprintln!("  {:<40} {:?}", result.id, result.verdict);
            report.results.push(result);
        }
    }
    Ok(finish(&report, args.format))
}

pub async fn check_client(args: CheckClientArgs) -> Result<bool, String> {
    let external = !args.command.is_empty();
    let subject = if external {
        std::fs::create_dir_all(&args.output_dir)
            .map_err(|e| format!("cannot create {}: {e}", args.output_dir.display()))?;
        client::Subject::Command(client::Command {
            argv: args.command,
            timing: client::Timing {
                scale: args.time_scale.max(1),
                token_lifetime: args.token_lifetime,
                client_leeway: args.client_leeway,
            },
            output_dir: Some(args.output_dir.clone()),
        })
    } else {
        checks::client_library()
    };
    let mut catalogue = client_catalogue()?;
    catalogue.checks.retain(|c| keep(&args.only, &c.id));
    let mut report = ConformanceReport::default();
    let total = catalogue.checks.len();
    for (i, check) in catalogue.checks.iter().enumerate() {
        eprintln!("  [{}/{total}] {} ...", i + 1, check.id);
        let result = client::run_check(check, &subject).await;
        eprintln!("  [{}/{total}] {:<40} {:?}", i + 1, result.id, result.verdict);
        report.results.push(result);
    }
    if external {
        eprintln!("the client's output and a trace of each check: {}/", args.output_dir.display());
    }
    Ok(finish(&report, args.format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CheckClientArgs,
    }

    #[test]
    fn only_takes_several_prefixes_comma_separated_or_repeated() {
        let cli = Cli::parse_from(["check-client", "--only", "CL-9700,CL-6-concurrent", "--only", "CL-5.2"]);
        assert_eq!(cli.args.only, ["CL-9700", "CL-6-concurrent", "CL-5.2"]);
        assert!(keep(&cli.args.only, "CL-6-concurrent-keeps-rotated-token"));
        assert!(!keep(&cli.args.only, "CL-6-keeps-rotated-token"));
        assert!(keep(&[], "anything"), "no --only: every check");
    }
}
