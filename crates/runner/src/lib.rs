//! # figure2-runner: the whole of Figure 2, driven from scenario files
//!
//! The runner core composes the roles: it starts the authorization server and the
//! resource server in-process on ephemeral 127.0.0.1 ports, gives all three roles one
//! simulated clock ([`world`]), plays the client (and, for the authorization code grant,
//! the resource owner's browser) step by step ([`run`]), and records every exchange as a
//! typed [`trace::TraceEvent`] labelled with its Figure 2 step:
//!
//! ```text
//! (A) client → AS   grant            (B) AS → client   access token & refresh token
//! (C) client → RS   access token     (D) RS → client   protected resource
//! (E) client → RS   access token     (F) RS → client   invalid_token (expired)
//! (G) client → AS   refresh token    (H) AS → client   new access token (& refresh token)
//! ```
//!
//! Time moves only when a scenario says `do = "advance"`: nothing sleeps. Rendering the
//! trace (text, Markdown, Mermaid, the live page) is `figure2-view`'s job; [`checks`]
//! points the conformance checker at the roles of this world.
//!
//! Read first: [`scenario`] (what a scenario file says), then [`run::Session::step`].

pub mod checks;
pub mod compare;
pub mod reasons;
pub mod run;
pub mod scenario;
pub mod trace;
pub mod wire;
pub mod world;

pub use run::{Report, Session, run};
pub use scenario::Scenario;

/// The scenario `figure2` runs when given none.
pub const DEFAULT_SCENARIO: &str = "scenarios/figure2.toml";
