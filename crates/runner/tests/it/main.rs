//! Integration tests of the runner core: the conformance catalogue passes against
//! Figure2's own roles, and fails exactly where it should against deliberately broken ones.

mod conformance;
mod first_use;
