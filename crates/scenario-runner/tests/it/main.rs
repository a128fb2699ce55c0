//! Integration tests of the runner: the conformance catalogue passes against Figure2's
//! own roles, and fails exactly where it should against deliberately broken ones.

mod conformance;
mod docs;
mod live;
