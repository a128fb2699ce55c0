//! # figure2-scenario-runner: the whole of Figure 2, driven from scenario files
//!
//! The runner composes the other crates: it starts the authorization server and the
//! resource server in-process on ephemeral 127.0.0.1 ports, gives all three roles one
//! simulated clock, plays the client (and, for the authorization code grant, the
//! resource owner's browser), and prints every exchange labelled with its letter:
//!
//! ```text
//! (A) client → AS   grant            (B) AS → client   access token & refresh token
//! (C) client → RS   access token     (D) RS → client   protected resource
//! (E) client → RS   access token     (F) RS → client   invalid_token (expired)
//! (G) client → AS   refresh token    (H) AS → client   new access token (& refresh token)
//! ```
//!
//! Time moves only when a scenario says `do = "advance"`: nothing sleeps.

pub mod conformance;
pub mod export;
pub mod lang;
pub mod lineage;
pub mod run;
pub mod scenario;
pub mod trace;
pub mod web;
pub mod wire;
pub mod world;

pub use run::{Report, Session, run};
pub use scenario::Scenario;

/// The scenario `figure2` runs when given none.
pub const DEFAULT_SCENARIO: &str = "scenarios/figure2.toml";
