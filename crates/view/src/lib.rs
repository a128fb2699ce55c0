//! # figure2-view: what a learner sees of Figure 2
//!
//! The runner (`figure2-runner`) records a run as typed trace events; this crate shows
//! them: the text trace ([`text`]), exports to Markdown, Mermaid and JSON and the
//! committed transcripts under `docs/transcripts` ([`export`]), the live page that draws
//! Figure 2 and animates steps A to H as they happen ([`web`]), the refresh-token lineage
//! panel ([`lineage`]), and every word of it in English and Chinese ([`lang`]).
//!
//! Read first: [`text::print_text_in`], then [`web`].

pub mod compare;
pub mod export;
pub mod lang;
pub mod lineage;
pub mod text;
pub mod web;
