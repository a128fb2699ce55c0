//! Integration tests of the client role, one binary. wiremock stands in for the
//! authorization server (steps B, H) and the resource server (steps D, F) over real HTTP
//! on 127.0.0.1; time is a `SimulatedClock` that tests advance (no sleeping).

mod support;

mod binary;
mod concurrency;
mod dpop;
mod grant;
mod observer;
mod refresh;
mod resource;
