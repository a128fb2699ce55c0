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
    /// A resource owner for the password grant (how the checker obtains tokens).
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long, env = "FIGURE2_CHECK_PASSWORD")]
    pub password: Option<String>,
    /// The scope to ask for in the password grant.
    #[arg(long)]
    pub scope: Option<String>,
    /// A protected resource (GET) the granted token can read: enables the resource-server checks.
    #[arg(long)]
    pub resource: Option<String>,
    /// A protected resource the granted scope does not cover (for insufficient_scope).
    #[arg(long)]
    pub insufficient_scope_url: Option<String>,
    /// The longest a check may wait for a token to expire, in seconds; longer ones are skipped.
    #[arg(long, default_value_t = 90)]
    pub max_wait: u64,
    /// Run only the checks whose id starts with this.
    #[arg(long)]
    pub only: Option<String>,
    /// table, json or junit.
    #[arg(long, default_value = "table")]
    pub format: Format,
}

/// Options of `figure2 check-client`.
#[derive(clap::Args, Debug)]
pub struct CheckClientArgs {
    /// Run only the checks whose id starts with this.
    #[arg(long)]
    pub only: Option<String>,
    /// table, json or junit.
    #[arg(long, default_value = "table")]
    pub format: Format,
    /// The client program and its arguments (after `--`). Without it, Figure2's own client
    /// library is checked in-process.
    #[arg(last = true)]
    pub command: Vec<String>,
}

fn keep(only: &Option<String>, id: &str) -> bool {
    only.as_ref().is_none_or(|prefix| id.starts_with(prefix.as_str()))
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
    let metadata = figure2_http::discover(&http, &issuer).await.map_err(|e| e.to_string())?;
    let target = server::Target {
        issuer,
        metadata,
        client_id: args.client_id,
        client_secret: args.client_secret,
        other_client: args.other_client_id.zip(args.other_client_secret),
        user: args.username.zip(args.password),
        scope: args.scope,
        resource: args.resource,
        scope_limited_resource: args.insufficient_scope_url,
        time: server::TimeSource::Real { max_wait: args.max_wait },
        forge: None,
        http,
    };
    let mut report = ConformanceReport::default();
    for file in CatalogueFile::SERVERS {
        let mut catalogue = server_catalogue(file)?;
        catalogue.checks.retain(|c| keep(&args.only, &c.id));
        for check in &catalogue.checks {
            let result = server::run_check(catalogue.role, check, &target).await;
            if args.format == Format::Table {
                eprintln!("  {:<40} {:?}", result.id, result.verdict);
            }
            report.results.push(result);
        }
    }
    Ok(finish(&report, args.format))
}

pub async fn check_client(args: CheckClientArgs) -> Result<bool, String> {
    let subject =
        if args.command.is_empty() { checks::client_library() } else { client::Subject::Command(args.command) };
    let mut catalogue = client_catalogue()?;
    catalogue.checks.retain(|c| keep(&args.only, &c.id));
    let report = ConformanceReport { results: client::run_catalogue(&catalogue, &subject).await };
    Ok(finish(&report, args.format))
}
