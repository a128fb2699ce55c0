//! # figure2-test-control: drive a Figure2 authorization server from your tests
//!
//! **Never for production.** The standalone authorization server offers this API only when
//! started with `--test-control`, and then only on a loopback address (unless
//! `--test-control-allow-non-loopback` is also given). Anyone who can reach it can move the
//! server's clock, make token requests fail and create users and clients.
//!
//! It is not part of OAuth: it lets the tests of *other* projects put a realistic
//! authorization server (rotation, reuse detection, expiry) in front of their client and
//! then make the hard cases happen on purpose:
//!
//! | call | method and path (below the issuer) | body → answer |
//! |---|---|---|
//! | [`ControlClient::clock`] | `GET /control/clock` | → [`ClockState`] |
//! | [`ControlClient::advance_clock`] | `POST /control/clock/advance` | [`AdvanceClock`] → [`ClockState`] |
//! | [`ControlClient::queue_fault`] | `POST /control/faults` | [`FaultRequest`] → 201 [`QueuedFault`] |
//! | [`ControlClient::faults`] | `GET /control/faults` | → [`FaultList`] |
//! | [`ControlClient::clear_faults`] | `DELETE /control/faults` | → 204 |
//! | [`ControlClient::create_user`] | `POST /control/users` | [`NewUser`] → 201 |
//! | [`ControlClient::create_client`] | `POST /control/clients` | [`NewClient`] → 201 |
//! | [`ControlClient::families`] | `GET /control/families?subject=&client_id=` | → [`FamilyList`] |
//! | [`ControlClient::revoke_families`] | `POST /control/families/revoke` | [`FamilyFilter`] → [`Revoked`] |
//!
//! Errors are `{"error": "...", "error_description": "..."}` ([`ControlError`]) with 400,
//! 404 or 409. The README at the repository root gives a curl example for every call.

use bytes::Bytes;
use figure2_http::HttpClient;
use http::Method;
use serde::{Deserialize, Serialize};

/// Where the API lives, below the issuer's path.
pub const CONTROL_PREFIX: &str = "/control";

/// The server's clock: its own time and how far it has been moved ahead of the system clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockState {
    /// The server's current time, seconds since the Unix epoch.
    pub now: u64,
    /// Seconds added to the system clock by [`ControlClient::advance_clock`] so far.
    pub offset: u64,
}

/// `POST /control/clock/advance`: move the clock forward (never back: issued tokens carry
/// `iat` and time going backwards would make them "issued in the future").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdvanceClock {
    /// Seconds to add.
    pub seconds: u64,
}

/// What happens to a matching token request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum Fault {
    /// Answer with this error instead of handling the request: nothing is committed.
    /// `status` defaults to the code's RFC 6749 §5.2 status (400, 401 for
    /// `invalid_client`, 500 for `server_error`, 503 for `temporarily_unavailable`).
    Error {
        error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
    },
    /// Handle the request (a refresh is committed: the presented token is rotated), then
    /// close the connection without sending the answer: the response lost after the commit.
    LoseResponse,
    /// Wait this many milliseconds (real time) before handling the request.
    Delay { delay_ms: u64 },
}

/// `POST /control/faults`: queue a fault for the next token request(s) that match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRequest {
    /// Match only this `grant_type` (`refresh_token`, `authorization_code`, …); any if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
    /// Match only requests naming this client (Basic or body credentials); any if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(flatten)]
    pub fault: Fault,
    /// How many matching requests meet the fault (default 1).
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

impl FaultRequest {
    /// One matching request of any grant and client meets `fault`.
    pub fn next(fault: Fault) -> Self {
        Self { grant_type: None, client_id: None, fault, times: 1 }
    }

    pub fn for_grant_type(mut self, grant_type: &str) -> Self {
        self.grant_type = Some(grant_type.to_owned());
        self
    }

    pub fn for_client(mut self, client_id: &str) -> Self {
        self.client_id = Some(client_id.to_owned());
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
}

/// A fault waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedFault {
    pub id: u64,
    /// Matching requests it will still meet.
    pub remaining: u32,
    #[serde(flatten)]
    pub request: FaultRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultList {
    pub faults: Vec<QueuedFault>,
}

/// `POST /control/users`: a resource owner who can log in at `/authorize` (and use the
/// password grant), with the OpenID Connect claims of `userinfo` and `id_token`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    pub username: String,
    /// Stored as an argon2id hash.
    pub password: String,
    /// Claims such as `email`, `name` or any custom claim (see the README's OpenID
    /// Connect section for which scope releases which claim).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// `POST /control/clients`: a client as in the `[[clients]]` table of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewClient {
    pub client_id: String,
    /// The secret itself (stored as its SHA-256 digest); absent for a public client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// `authorization_code`, `refresh_token`, `password`, `client_credentials`.
    pub grant_types: Vec<String>,
    /// The most this client may be granted, space-separated.
    pub scope: String,
}

/// A refresh-token family: one grant and the chain of refresh tokens rotated from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub id: i64,
    pub client_id: String,
    pub subject: String,
    pub scope: String,
    /// Seconds since the Unix epoch (server clock).
    pub created_at: u64,
    pub last_used_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyList {
    pub families: Vec<Family>,
}

/// Which families to list or revoke. Revoking needs at least one field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// How many families a revocation ended (already revoked ones are not counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub revoked: u64,
}

/// The error body of every refused call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlError {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlClientError {
    #[error(transparent)]
    Http(#[from] figure2_http::ClientError),
    #[error("the control API refused the call ({status}): {error}: {description}")]
    Refused { status: u16, error: String, description: String },
    #[error("unexpected answer ({status}): {body}")]
    Unexpected { status: u16, body: String },
}

/// A typed client of the test-control API.
#[derive(Debug, Clone)]
pub struct ControlClient {
    base: String,
    http: HttpClient,
}

impl ControlClient {
    /// `issuer` is the authorization server's issuer identifier, e.g. `http://127.0.0.1:8080`.
    pub fn new(issuer: &str) -> Self {
        Self::with_http(issuer, HttpClient::new())
    }

    pub fn with_http(issuer: &str, http: HttpClient) -> Self {
        Self { base: format!("{}{CONTROL_PREFIX}", issuer.trim_end_matches('/')), http }
    }

    pub async fn clock(&self) -> Result<ClockState, ControlClientError> {
        self.call(Method::GET, "/clock", None::<&()>, 200).await
    }

    /// Moves the server's clock `seconds` forward; tokens expire without waiting.
    pub async fn advance_clock(&self, seconds: u64) -> Result<ClockState, ControlClientError> {
        self.call(Method::POST, "/clock/advance", Some(&AdvanceClock { seconds }), 200).await
    }

    pub async fn queue_fault(&self, fault: &FaultRequest) -> Result<QueuedFault, ControlClientError> {
        self.call(Method::POST, "/faults", Some(fault), 201).await
    }

    pub async fn faults(&self) -> Result<FaultList, ControlClientError> {
        self.call(Method::GET, "/faults", None::<&()>, 200).await
    }

    pub async fn clear_faults(&self) -> Result<(), ControlClientError> {
        self.call_empty(Method::DELETE, "/faults", None::<&()>).await
    }

    pub async fn create_user(&self, user: &NewUser) -> Result<(), ControlClientError> {
        self.call_empty(Method::POST, "/users", Some(user)).await
    }

    pub async fn create_client(&self, client: &NewClient) -> Result<(), ControlClientError> {
        self.call_empty(Method::POST, "/clients", Some(client)).await
    }

    /// Families matching `filter` (`id` is ignored here), newest first.
    pub async fn families(&self, filter: &FamilyFilter) -> Result<FamilyList, ControlClientError> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &filter.subject {
            query.push(("subject", s));
        }
        if let Some(c) = &filter.client_id {
            query.push(("client_id", c));
        }
        let query = serde_urlencoded::to_string(&query).unwrap_or_default();
        let path = if query.is_empty() { "/families".to_owned() } else { format!("/families?{query}") };
        self.call(Method::GET, &path, None::<&()>, 200).await
    }

    pub async fn revoke_families(&self, filter: &FamilyFilter) -> Result<Revoked, ControlClientError> {
        self.call(Method::POST, "/families/revoke", Some(filter), 200).await
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<figure2_http::ReceivedResponse, ControlClientError> {
        let url = format!("{}{path}", self.base);
        let body = body.map(|b| Bytes::from(serde_json::to_vec(b).unwrap_or_default()));
        let headers: &[(&str, &str)] = if body.is_some() { &[("content-type", "application/json")] } else { &[] };
        let response = self.http.send(method, &url, headers, body).await?;
        if response.status >= 400 {
            return Err(match serde_json::from_slice::<ControlError>(&response.body) {
                Ok(e) => ControlClientError::Refused {
                    status: response.status,
                    error: e.error,
                    description: e.error_description,
                },
                Err(_) => ControlClientError::Unexpected { status: response.status, body: response.body_text() },
            });
        }
        Ok(response)
    }

    async fn call<B: Serialize, T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        expected: u16,
    ) -> Result<T, ControlClientError> {
        let response = self.send(method, path, body).await?;
        if response.status != expected {
            return Err(ControlClientError::Unexpected { status: response.status, body: response.body_text() });
        }
        serde_json::from_slice(&response.body)
            .map_err(|_| ControlClientError::Unexpected { status: response.status, body: response.body_text() })
    }

    async fn call_empty<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ControlClientError> {
        let response = self.send(method, path, body).await?;
        match response.status {
            200 | 201 | 204 => Ok(()),
            status => Err(ControlClientError::Unexpected { status, body: response.body_text() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_requests_read_as_documented() {
        let f: FaultRequest = serde_json::from_str(
            r#"{"grant_type":"refresh_token","fault":"error","error":"temporarily_unavailable","status":503}"#,
        )
        .unwrap();
        assert_eq!(f.times, 1);
        assert_eq!(f.grant_type.as_deref(), Some("refresh_token"));
        assert_eq!(
            f.fault,
            Fault::Error { error: "temporarily_unavailable".into(), error_description: None, status: Some(503) }
        );
        let lost: FaultRequest = serde_json::from_str(r#"{"fault":"lose_response","times":2}"#).unwrap();
        assert_eq!((lost.fault, lost.times), (Fault::LoseResponse, 2));
        let delay = FaultRequest::next(Fault::Delay { delay_ms: 5 });
        let text = serde_json::to_string(&delay).unwrap();
        assert_eq!(text, r#"{"fault":"delay","delay_ms":5,"times":1}"#);
        assert!(serde_json::from_str::<FaultRequest>(r#"{"fault":"explode"}"#).is_err());
    }
}
