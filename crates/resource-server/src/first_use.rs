//! Reporting an access token's first use to the authorization server (step D), for
//! usage-based recovery of refresh tokens.
//!
//! ```text
//!   client ──(C) at#2──▶ resource server ── validates locally (RFC 9068 §4) ──▶ (D)
//!                               │ first time this jti is seen:
//!                               └──POST /introspect token=at#2 (RFC 7662 §2.1)──▶ AS
//!                                         AS: "the successor's access token was used"
//! ```
//!
//! An authorization server with usage-based recovery (matrix-authentication-service,
//! preset `mas`: `reuse_while_successor_unused`) accepts a retired refresh token again
//! only while the access token issued with its successor has never been used: a lost
//! token response leaves that access token unused, a client that received it uses it.
//! The authorization server cannot see a use by itself: this resource server validates
//! JWTs locally and never calls it. With [`crate::ResourceServerConfig::report_first_use`]
//! set, it introspects each access token the first time it serves it (RFC 7662 §2.1, as
//! a MAS homeserver introspects), and the authorization server records the use. Later
//! uses of the same token cost nothing: the `jti` digests already reported are kept in a
//! bounded memory (one a token; when full, the oldest are forgotten and reported again if
//! they come back, which the authorization server records idempotently).
//!
//! The answer also counts: RFC 7662 §2.2 `"active": false` means the authorization
//! server no longer stands behind the token (revoked, or its family revoked where the
//! server ties them), and the request is refused with `invalid_token` (RFC 6750 §3.1).
//! If the authorization server cannot be reached, the locally validated token is served
//! (a report must not turn an outage of the authorization server into an outage of the
//! resource server) and the report is tried again on the token's next use.

use figure2_http::HttpClient;
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::introspection::IntrospectionResponse;
use figure2_protocol::secret::{ClientSecret, TokenDigest, digest};
use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The resource server's own client registration at the authorization server, for RFC
/// 7662 introspection (§2.1: the protected resource authenticates to the endpoint).
#[derive(Debug, Clone)]
pub struct IntrospectionClient {
    pub client_id: String,
    pub client_secret: ClientSecret,
}

/// What the authorization server said about a token's first use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// Already reported, or reporting is off: nothing was asked.
    NotNeeded,
    /// RFC 7662 §2.2 `"active": true`: the use is recorded.
    Recorded,
    /// `"active": false`: the authorization server no longer stands behind the token.
    Inactive,
    /// The authorization server could not be asked (logged); tried again next time.
    Failed,
}

/// The `jti` digests already reported, oldest first, at most `capacity`.
pub(crate) struct FirstUse {
    client: Option<IntrospectionClient>,
    endpoint: Option<String>,
    capacity: usize,
    reported: Mutex<Reported>,
}

#[derive(Default)]
struct Reported {
    set: HashSet<TokenDigest>,
    order: VecDeque<TokenDigest>,
}

impl FirstUse {
    pub(crate) fn new(client: Option<IntrospectionClient>, endpoint: Option<String>, capacity: usize) -> Self {
        Self { client, endpoint, capacity: capacity.max(1), reported: Mutex::default() }
    }

    fn already_reported(&self, jti: &TokenDigest) -> bool {
        self.reported.lock().unwrap_or_else(PoisonError::into_inner).set.contains(jti)
    }

    fn remember(&self, jti: TokenDigest) {
        let mut r = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        if !r.set.insert(jti) {
            return;
        }
        r.order.push_back(jti);
        while r.order.len() > self.capacity {
            if let Some(oldest) = r.order.pop_front() {
                r.set.remove(&oldest);
            }
        }
    }

    /// Reports `token` (whose `jti` is `jti`) unless it was reported before.
    pub(crate) async fn report(&self, http: &HttpClient, token: &str, jti: &str) -> Report {
        let (Some(client), Some(endpoint)) = (&self.client, &self.endpoint) else { return Report::NotNeeded };
        let key = digest(jti);
        if self.already_reported(&key) {
            return Report::NotNeeded;
        }
        // RFC 7662 §2.1: token and token_type_hint, form-encoded; the caller authenticates
        // (client_secret_basic, RFC 6749 §2.3.1).
        let body = figure2_protocol::form::encode([("token", Some(token)), ("token_type_hint", Some("access_token"))]);
        let basic = ClientAuthentication::basic_header_value(&client.client_id, client.client_secret.expose());
        let headers = [
            ("authorization", basic.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", "application/json"),
        ];
        let answer = match http.send(http::Method::POST, endpoint, &headers, Some(body.into())).await {
            Ok(r) if r.status == 200 => serde_json::from_slice::<IntrospectionResponse>(&r.body).ok(),
            Ok(r) => {
                tracing::warn!(status = r.status, endpoint = %endpoint, "reporting an access token's first use: introspection refused");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, endpoint = %endpoint, "reporting an access token's first use: introspection failed");
                None
            }
        };
        match answer {
            Some(a) if a.active => {
                self.remember(key);
                Report::Recorded
            }
            Some(_) => Report::Inactive,
            None => Report::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_of_reported_tokens_is_bounded() {
        let first_use = FirstUse::new(None, None, 2);
        for n in 0..3u8 {
            first_use.remember([n; 32]);
        }
        assert!(!first_use.already_reported(&[0; 32]), "the oldest is forgotten");
        assert!(first_use.already_reported(&[1; 32]) && first_use.already_reported(&[2; 32]));
        first_use.remember([2; 32]);
        assert_eq!(first_use.reported.lock().unwrap().order.len(), 2);
    }
}
