//! Every file in `scenarios/` is a test of its own: it must run and meet every
//! expectation. A failing file fails the suite with its trace and the unmet expectations.

use figure2_scenario_runner::{Scenario, run, trace};
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::PathBuf;

fn scenario_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = walk(&dir);
    files.sort();
    files
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            // The conformance catalogue has its own format and its own test.
            if path.file_name().is_some_and(|n| n == "conformance") {
                continue;
            }
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|x| x == "toml") {
            out.push(path);
        }
    }
    out
}

fn run_file(path: PathBuf) -> Result<(), Failed> {
    let scenario = Scenario::load(&path.display().to_string()).map_err(|e| Failed::from(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    let mut text = Vec::new();
    let report = runtime
        .block_on(run(&scenario, &mut |event| {
            let _ = trace::print_text(event, &mut text);
        }))
        .map_err(|e| Failed::from(e.to_string()))?;
    if report.passed {
        Ok(())
    } else {
        Err(Failed::from(format!(
            "{}\n\nunmet expectations:\n  {}",
            String::from_utf8_lossy(&text),
            report.failures.join("\n  ")
        )))
    }
}

fn main() {
    let args = Arguments::from_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let trials: Vec<Trial> = scenario_files()
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
            Trial::test(name, move || run_file(path))
        })
        .collect();
    assert!(!trials.is_empty(), "no scenario files found");
    libtest_mimic::run(&args, trials).exit();
}
