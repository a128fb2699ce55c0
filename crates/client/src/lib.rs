//! # figure2-client: the client of RFC 6749 Figure 2
//!
//! The client plays the left-hand column of Figure 2 (RFC 6749 §1.5):
//!
//! | step | what the client does | where | RFC |
//! |---|---|---|---|
//! | (A)→(B) | presents an authorization grant, stores access and refresh token | [`Client::request_token`] | RFC 6749 §2.3.1, §4, §5 |
//! | (C)→(D) | presents the access token to the resource server | [`Client::call`] | RFC 6750 §2.1 |
//! | (E)→(F) | the same, and gets `invalid_token` back | [`Client::call`] | RFC 6750 §3, §3.1 |
//! | (G)→(H) | presents the refresh token, keeps the rotated one | [`Client::refresh`] | RFC 6749 §6, §5.1 |
//!
//! and the decisions between them:
//! - "If the client knows the access token expired, it skips to step (G)" (§1.5 (E)):
//!   [`Client::call`] checks `expires_at` on the injected [`Clock`](figure2_protocol::Clock)
//!   first, and refreshes without sending the stale token.
//! - On a 401 with `error="invalid_token"` (step F) it refreshes once and retries once;
//!   any other refusal (a bare challenge, 403 `insufficient_scope`) goes back to the caller.
//! - Concurrent callers that need a refresh share one (single flight, see `generation`
//!   in [`TokenSet`]): a rotating server (RFC 9700 §4.14.2) would otherwise see the same
//!   refresh token twice and revoke the whole family.
//! - With `ClientConfig::dpop` (RFC 9449) the client makes an ES256 key for the session,
//!   sends a proof with every token request and every use of a DPoP-bound access token
//!   (`Authorization: DPoP`, proof with `ath`), and retries once when a server answers
//!   `use_dpop_nonce` with a fresh `DPoP-Nonce` (§8, §9). See `dpop.rs`.
//! - `invalid_grant` on refresh means the grant is gone: [`ClientError::ReauthorizationRequired`],
//!   back to step (A).
//!
//! Messages are built and parsed by `figure2-protocol`; this crate only does the I/O and
//! keeps the tokens. Tokens never reach the log (only [`fingerprint`](figure2_protocol::secret::fingerprint)s);
//! the [`Observer`] sees the raw exchanges.

mod client;
mod dpop;
mod error;
mod exchange;
mod tokens;

pub use client::{Client, ClientConfig, ResourceResponse};
pub use error::ClientError;
pub use exchange::{Exchange, Observer, Step};
pub use tokens::TokenSet;
