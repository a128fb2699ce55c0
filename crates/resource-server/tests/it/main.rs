//! Integration tests of the resource server over real HTTP on loopback, with wiremock as
//! the authorization server and a simulated clock (no test sleeps).

mod attacks;
mod discovery;
mod dpop;
mod first_use;
mod metrics;
mod requests;
mod steps;
mod support;
mod token_checks;
