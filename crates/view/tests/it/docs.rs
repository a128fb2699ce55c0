//! docs/transcripts holds the Markdown and Mermaid exports of every scenario in
//! scenarios/. They are regenerated here and compared: after adding or changing a
//! scenario, run `cargo run -- export-docs` and commit the result.

use figure2_view::export::{DOCS_COMMAND, stale_docs};
use std::path::PathBuf;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_in_docs_are_up_to_date() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let stale = stale_docs(&root).await.expect("every scenario runs");
    assert!(
        stale.is_empty(),
        "docs/transcripts is stale:\n  {}\nRefresh it with `{DOCS_COMMAND}` (from the workspace root) and commit the result.",
        stale.join("\n  ")
    );
}
