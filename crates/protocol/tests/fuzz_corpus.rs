//! The fuzz targets' seed corpus (and every crash input found so far) as a regression
//! test: each file under `fuzz/corpus/<target>/` goes through the same function the
//! `cargo fuzz` target calls (`figure2_protocol::fuzzing`), and none may panic.
//!
//! Fuzz for real with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target>` from the repository
//! root (see the README's Security section).

use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_goes_through_its_target_without_panicking() {
    let mut failures = Vec::new();
    let mut total = 0;
    for (name, target) in figure2_protocol::fuzzing::TARGETS {
        let inputs = files(&corpus_root().join(name));
        assert!(!inputs.is_empty(), "fuzz/corpus/{name} has no seed inputs");
        for path in inputs {
            let data = std::fs::read(&path).expect("read corpus file");
            total += 1;
            if std::panic::catch_unwind(|| target(&data)).is_err() {
                failures.push(format!("{name}: {}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "inputs that panic:\n{}", failures.join("\n"));
    assert!(total >= 30, "only {total} corpus inputs");
}

#[test]
fn every_corpus_directory_has_a_target_and_a_fuzz_target_file() {
    let known: Vec<&str> = figure2_protocol::fuzzing::TARGETS.iter().map(|(name, _)| *name).collect();
    for entry in std::fs::read_dir(corpus_root()).expect("fuzz/corpus exists") {
        let name = entry.expect("directory entry").file_name().to_string_lossy().into_owned();
        assert!(known.contains(&name.as_str()), "fuzz/corpus/{name} has no target in figure2_protocol::fuzzing");
    }
    for name in known {
        let harness = corpus_root().join(format!("../fuzz_targets/{name}.rs"));
        assert!(harness.is_file(), "no {}", harness.display());
    }
}
