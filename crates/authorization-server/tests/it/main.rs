//! Integration tests of the authorization server over real HTTP on 127.0.0.1.
//!
//! Every test starts its own server with the demo configuration (`config/demo.toml`),
//! `:memory:` storage (or a temp file for restarts) and a `SimulatedClock` that tests
//! advance to expire tokens: nothing sleeps. Test names say which RFC rule they check.

mod support;

mod authorization_code;
mod client_auth;
mod client_credentials;
mod concurrency;
mod control;
mod crash;
mod crash_postgres;
mod discovery;
mod dpop;
mod errors;
mod introspection;
mod keys;
mod limits;
mod metrics;
mod migration;
mod model;
mod oidc;
mod password;
mod postgres;
mod presets;
mod refresh;
mod registration;
mod restart;
mod revocation;
mod robustness;
mod rotation_race;
