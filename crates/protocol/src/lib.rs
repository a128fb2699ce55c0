//! # figure2-protocol: the sans-IO core of Figure 2
//!
//! Every rule Figure2 enforces lives here, as plain types and pure functions that cite
//! their RFC section. Nothing in this crate touches a socket or reads the clock: the
//! servers and the client are thin I/O shells that parse a request, call into this crate
//! with `now` and any randomness as arguments, and write the answer back.
//!
//! ```text
//!   +--------+                                           +---------------+
//!   |        |--(A)------- Authorization Grant --------->|               |
//!   |        |<-(B)----------- Access Token -------------|               |
//!   |        |               & Refresh Token             |               |
//!   |        |                            +----------+   |               |
//!   |        |--(C)---- Access Token ---->|          |   |               |
//!   |        |<-(D)- Protected Resource --| Resource |   | Authorization |
//!   | Client |                            |  Server  |   |     Server    |
//!   |        |--(E)---- Access Token ---->|          |   |               |
//!   |        |<-(F)- Invalid Token Error -|          |   |               |
//!   |        |                            +----------+   |               |
//!   |        |--(G)----------- Refresh Token ----------->|               |
//!   |        |<-(H)----------- Access Token -------------|               |
//!   +--------+           & Optional Refresh Token        +---------------+
//!                 RFC 6749 Figure 2: Refreshing an Expired Access Token
//! ```
//!
//! | module | steps | RFC |
//! |---|---|---|
//! | [`token_request`], [`client_auth`], [`form`] | A, G | RFC 6749 §2.3.1, §3.2, §4, §6 |
//! | [`token_response`], [`error`] | B, H | RFC 6749 §5.1, §5.2 |
//! | [`family`], [`refresh`] | G → H | RFC 6749 §6, RFC 9700 §4.14 |
//! | [`scope`] | A, G | RFC 6749 §3.3 |
//! | [`pkce`], [`authorization`] | A | RFC 7636, RFC 6749 §4.1 |
//! | [`access_token`], [`numeric_date`] | B, D, F, H | RFC 9068, RFC 7519 §2 |
//! | [`bearer`] | C, D, E, F | RFC 6750 §2.1, §3 |
//! | [`dpop`] | A, B, C–H | RFC 9449 (DPoP), RFC 7638 |
//! | [`metadata`] | discovery | RFC 8414 |
//! | [`revocation`], [`introspection`] | after H | RFC 7009, RFC 7662 |
//! | [`flow`] | the names A to H themselves | RFC 6749 §1.5 |
//! | [`secret`], [`clock`] | all | RFC 6749 §10.10, RFC 9700 |
//! | [`syntax`] | B, F, H (headers) | RFC 9110 §5.6.4 |

pub mod access_token;
pub mod authorization;
pub mod bearer;
pub mod client_auth;
pub mod clock;
pub mod dpop;
pub mod error;
pub mod family;
pub mod flow;
pub mod form;
#[doc(hidden)]
pub mod fuzzing;
pub mod introspection;
pub mod metadata;
pub mod numeric_date;
pub mod pkce;
pub mod presets;
pub mod refresh;
pub mod revocation;
pub mod scope;
pub mod secret;
pub mod syntax;
pub mod token_request;
pub mod token_response;

pub use clock::{Clock, SIMULATION_EPOCH, SimulatedClock, SystemClock, UnixTime};
pub use error::{ErrorCode, ErrorResponse};
pub use flow::FlowStep;
pub use numeric_date::NumericDate;
pub use scope::Scope;
