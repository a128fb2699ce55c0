//! `figure2 run --format/--lang`, `figure2 serve` and `figure2 export-docs`: the trace
//! in other languages and formats, the live view, and the committed transcripts.

use figure2_runner::trace::TraceEvent;
use figure2_runner::{DEFAULT_SCENARIO, Scenario};
use figure2_view::export::{self, Format};
use figure2_view::lang::Lang;
use figure2_view::text;
use figure2_view::web::{self, Live};
use std::io::Write;

/// Options of `figure2 run` beyond the plain English text trace.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// text (the trace), mermaid (sequence diagram), markdown (transcript) or json (the events).
    #[arg(long, default_value = "text", value_parser = ["text", "mermaid", "markdown", "json"])]
    pub format: String,
    /// The language of the narration: en or zh.
    #[arg(long, default_value = "en", env = "FIGURE2_LANG")]
    pub lang: String,
    /// Normalise the text trace too (ports, fingerprints, key ids), as the other formats are.
    #[arg(long)]
    pub stable: bool,
}

impl Default for ExportArgs {
    /// The plain English text trace, streamed as it happens.
    fn default() -> Self {
        Self { format: "text".into(), lang: "en".into(), stable: false }
    }
}

/// Options of `figure2 serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The scenario the page plays (default: scenarios/figure2.toml).
    pub scenario: Option<String>,
    /// Where to listen; port 0 picks a free one. The page's URL is printed.
    #[arg(long, default_value = "127.0.0.1:8700")]
    pub listen: String,
}

/// Options of `figure2 export-docs`.
#[derive(clap::Args, Debug)]
pub struct ExportDocsArgs {
    /// The workspace root (holds scenarios/ and docs/).
    #[arg(long, default_value = ".")]
    pub root: String,
    /// Only report whether docs/transcripts is up to date (exit 1 if not).
    #[arg(long)]
    pub check: bool,
}

fn load(path: Option<&str>) -> Result<(Scenario, String), String> {
    match path {
        Some(p) => Ok((Scenario::load(p).map_err(|e| e.to_string())?, p.to_owned())),
        None => {
            // Works from any directory: fall back to the copy built into the binary.
            let text = std::fs::read_to_string(DEFAULT_SCENARIO)
                .unwrap_or_else(|_| include_str!("../../../scenarios/figure2.toml").to_owned());
            Ok((Scenario::from_toml(DEFAULT_SCENARIO, &text).map_err(|e| e.to_string())?, DEFAULT_SCENARIO.into()))
        }
    }
}

/// `figure2 run`: plays each scenario and prints its trace in the chosen format and
/// language (`--quiet`: only the verdicts and the unmet expectations).
pub async fn run(paths: Vec<String>, quiet: bool, args: ExportArgs) -> Result<bool, String> {
    let format: Format = args.format.parse()?;
    let lang: Lang = args.lang.parse()?;
    let sources: Vec<Option<String>> =
        if paths.is_empty() { vec![None] } else { super::expand(paths).into_iter().map(Some).collect() };
    let (mut passed, mut failed) = (0, 0);
    for source in &sources {
        let (scenario, name) = load(source.as_deref())?;
        // The text trace streams as it happens unless it must be normalised first.
        let streaming = format == Format::Text && !args.stable && !quiet;
        let stdout = std::io::stdout();
        let mut emit = |event: &TraceEvent| {
            if streaming {
                let mut out = stdout.lock();
                let _ = text::print_text_in(event, lang, &mut out);
                let _ = out.flush();
            }
        };
        let recorded = export::record(&scenario, &name, &mut emit).await.map_err(|e| e.to_string())?;
        if quiet {
            println!("{} {}", if recorded.passed { "ok    " } else { "FAILED" }, scenario.id);
            for f in &recorded.failures {
                println!("       {f}");
            }
        } else if !streaming {
            print!("{}", export::render(&recorded, format, lang, args.stable));
        }
        if recorded.passed {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    if sources.len() > 1 {
        println!("\n{passed} passed, {failed} failed");
    }
    Ok(failed == 0)
}

/// `figure2 serve`: the live view, until Ctrl-C.
pub async fn serve(args: ServeArgs) -> Result<bool, String> {
    let (scenario, _) = load(args.scenario.as_deref())?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await.map_err(|e| format!("{}: {e}", args.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let live = Live::start(scenario).await?;
    println!("Figure 2, live: open http://{address}/ in a browser (Ctrl-C to stop)");
    let _ = std::io::stdout().flush();
    web::serve(listener, live, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(true)
}

/// `figure2 export-docs`: regenerates (or checks) docs/transcripts.
pub async fn export_docs(args: ExportDocsArgs) -> Result<bool, String> {
    let root = std::path::Path::new(&args.root);
    if args.check {
        let stale = export::stale_docs(root).await?;
        for s in &stale {
            println!("stale: {s}");
        }
        if !stale.is_empty() {
            println!("run `{}` to refresh them", export::DOCS_COMMAND);
        }
        return Ok(stale.is_empty());
    }
    let written = export::write_docs(root).await?;
    println!("wrote {} files under {}", written.len(), root.join(export::DOCS_DIR).display());
    Ok(true)
}
