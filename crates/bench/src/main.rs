//! # figure2-bench: Figure2 measured against its own baselines, in one run
//!
//! ```text
//! figure2-bench            # the full run: 5 rounds × 5 s per line after a warm-up (~5 min)
//! figure2-bench --quick    # under a minute: proves the harness works, rough figures
//! figure2-bench --json     # the same report as JSON on stdout
//! ```
//!
//! Every measured server runs in a child process (`figure2-bench serve TARGET`, see
//! [`targets`]), on the same stack as Figure2's roles (`figure2_http::serve`). The load
//! generator ([`load`]) runs in this process: closed-loop keep-alive HTTP/1.1 connections
//! to 127.0.0.1, a latency histogram per line, and the server's CPU time read from
//! /proc over the measured interval ([`procfs`]). Lines run interleaved, round after
//! round, and each ratio compares two lines measured back to back in the same round
//! ([`run`]). BENCHMARKS.md at the repository root records a run.

mod child;
mod load;
mod postgres;
mod procfs;
mod report;
mod run;
mod targets;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "figure2-bench",
    version,
    about = "Measures Figure2's servers and client against baselines on the same hyper stack, in one run"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: run::Options,
}

#[derive(Subcommand)]
enum Command {
    /// Hosts one measured server; the harness runs itself this way (not for direct use).
    #[command(hide = true)]
    Serve(targets::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve(args)) => targets::serve_main(args),
        None => run::main(cli.run),
    }
}
