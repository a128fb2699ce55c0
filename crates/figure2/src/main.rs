//! `figure2`: runs RFC 6749 Figure 2 scenarios and prints the annotated trace.

//!
//! A thin command line over the other crates: `figure2-runner` plays scenarios,
//! `figure2-view` shows them (text, exports, the live page), `figure2-conformance` checks
//! anyone's servers or client.

use clap::{Parser, Subcommand};

mod check_cli;
mod compare_cli;
mod live_cli;

#[derive(Parser)]
#[command(
    version,
    about = "Watch RFC 6749 Figure 2 (refreshing an expired access token) happen between three real HTTP services"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
// Parsed once per run: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run scenario files (default: scenarios/figure2.toml) and print their traces.
    Run {
        /// Scenario files or directories of them.
        scenarios: Vec<String>,
        /// Print only each scenario's verdict.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        export: live_cli::ExportArgs,
    },
    /// Run scenarios under several refresh-policy presets and print them side by side.
    Compare(compare_cli::CompareArgs),
    /// Serve a page that draws Figure 2 and animates each exchange as it happens.
    Serve(live_cli::ServeArgs),
    /// Regenerate docs/transcripts (Markdown and Mermaid of every scenario).
    ExportDocs(live_cli::ExportDocsArgs),
    /// Run the conformance catalogue's server checks against an authorization server and
    /// resource server (Figure2's own in-process roles when --issuer is omitted).
    Check(check_cli::CheckArgs),
    /// Run the conformance catalogue's client checks against Figure2's client library, or
    /// against any client program given after `--` (see the contract in `--help`).
    #[command(after_help = CLIENT_CONTRACT)]
    CheckClient(check_cli::CheckClientArgs),
}

const CLIENT_CONTRACT: &str = "The client program is started once per check with FIGURE2_ISSUER, \
FIGURE2_TOKEN_ENDPOINT, FIGURE2_RESOURCE_URL, FIGURE2_CLIENT_ID, FIGURE2_CLIENT_SECRET, FIGURE2_USERNAME, \
FIGURE2_PASSWORD, FIGURE2_SCOPE, FIGURE2_CALL_TIMES (comma-separated seconds after the grant at which to GET the \
resource) and FIGURE2_CONCURRENCY (requests at once at each time). It does the password grant, makes the calls, \
and exits 0 if every call ended 200, 3 if the resource owner must authorize again, anything else otherwise.";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{EnvFilter, Layer};
    // Logs to stderr as RUST_LOG says; and, whatever RUST_LOG says, the roles' reasons
    // for refusing a token reach the trace (see figure2_runner::reasons).
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()));
    let subscriber = tracing_subscriber::registry().with(log).with(figure2_runner::reasons::layer());
    let _ = tracing::subscriber::set_global_default(subscriber);
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Check(args)) => check_cli::check(args).await,
        Some(Command::CheckClient(args)) => check_cli::check_client(args).await,
        Some(Command::Run { scenarios, quiet, export }) => live_cli::run(scenarios, quiet, export).await,
        Some(Command::Compare(args)) => compare_cli::run(args).await,
        Some(Command::Serve(args)) => live_cli::serve(args).await,
        Some(Command::ExportDocs(args)) => live_cli::export_docs(args).await,
        None => live_cli::run(Vec::new(), false, live_cli::ExportArgs::default()).await,
    };
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("figure2: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

/// Expands directories into their scenario files, sorted.
fn expand(paths: Vec<String>) -> Vec<String> {
    let mut files = Vec::new();
    for p in paths {
        let path = std::path::Path::new(&p);
        if path.is_dir() {
            files.extend(figure2_runner::Scenario::files_in(path).iter().map(|f| f.display().to_string()));
        } else {
            files.push(p);
        }
    }
    files
}
