//! Integration tests of the live view and the exports: the page in a headless browser,
//! and the committed transcripts in docs/ are up to date.

mod docs;
mod lang;
mod live;
