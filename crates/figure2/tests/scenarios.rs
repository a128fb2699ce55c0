//! Every file in `scenarios/` is a test of its own: it must run and meet every
//! expectation. A failing file fails the suite with its trace and the unmet expectations.

use figure2_runner::{Scenario, run};
use figure2_view::text;
use libtest_mimic::{Arguments, Failed, Trial};
use std::path::PathBuf;

fn scenario_files() -> Vec<PathBuf> {
    Scenario::files_in(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios"))
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
            let _ = text::print_text(event, &mut text);
        }))
        .map_err(|e| Failed::from(e.to_string()))?;
    if report.passed {
        Ok(())
    } else {
        Err(Failed::from(format!(
            "{}\n\nunmet expectations:\n  {}",
            String::from_utf8_lossy(&text),
            report.failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  ")
        )))
    }
}

fn main() {
    let args = Arguments::from_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Scenarios with several authorization servers need PostgreSQL: without one they are
    // listed as ignored (the reason is printed), except where it is required (CI).
    let postgres = figure2_authorization_server::store::postgres::test_database();
    let trials: Vec<Trial> = scenario_files()
        .into_iter()
        .map(|path| {
            let name = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
            let needs_postgres = Scenario::load(&path.display().to_string()).is_ok_and(|s| s.needs_postgres());
            let skip = needs_postgres && matches!(postgres, Ok(None));
            if skip {
                eprintln!(
                    "{name}: ignored: it runs several authorization servers over PostgreSQL; \
                     set FIGURE2_TEST_POSTGRES (e.g. export FIGURE2_TEST_POSTGRES=$(bash scripts/postgres-up.sh))"
                );
            }
            Trial::test(name, move || run_file(path)).with_ignored_flag(skip)
        })
        .collect();
    assert!(!trials.is_empty(), "no scenario files found");
    libtest_mimic::run(&args, trials).exit();
}
