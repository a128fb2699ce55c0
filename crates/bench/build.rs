//! Records the versions the report names: rustc's, and those of the crates that matter
//! to the figures, as Cargo.lock pins them.

use std::path::Path;
use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let lock = Path::new(&manifest).join("../../Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    for name in ["hyper", "tokio", "jsonwebtoken", "aws-lc-rs", "rusqlite", "hdrhistogram"] {
        let version = locked_version(&text, name).unwrap_or_else(|| "unknown".into());
        println!("cargo:rustc-env=F2B_VERSION_{}={version}", name.replace('-', "_").to_uppercase());
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().trim_start_matches("rustc ").to_owned())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=F2B_RUSTC={version}");
}

/// The version of the first `[[package]]` named `name` in Cargo.lock.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let next = lines.next()?;
            return next.trim().strip_prefix("version = \"")?.strip_suffix('"').map(str::to_owned);
        }
    }
    None
}
