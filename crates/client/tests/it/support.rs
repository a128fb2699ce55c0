//! The stand-in servers, a client wired to them, and the exchange log.

use figure2_client::{Client, ClientConfig, Exchange, Step, TokenSet};
use figure2_http::HttpClient;
use figure2_protocol::bearer::{BearerChallenge, BearerErrorCode};
use figure2_protocol::client_auth::TokenEndpointAuthMethod;
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::{ClientSecret, Secret};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{Scope, SimulatedClock};
use serde_json::json;
use std::sync::{Arc, Mutex};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

pub const START: u64 = 1_700_000_000;
pub const LIFETIME: u64 = 300;
pub const RESOURCE: &str = "/resource/read";

/// RFC 6749 §2.3.1's example client.
pub const CLIENT_ID: &str = "s6BhdRkqt3";
pub const CLIENT_SECRET: &str = "gX1fBat3bV";

pub struct Harness {
    /// Stands in for the authorization server.
    pub auth: MockServer,
    /// Stands in for the resource server.
    pub rs: MockServer,
    pub clock: SimulatedClock,
    pub client: Client,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl Harness {
    /// A confidential client using `client_secret_basic`.
    pub async fn new() -> Self {
        Self::with_auth(TokenEndpointAuthMethod::ClientSecretBasic, Some(CLIENT_SECRET)).await
    }

    pub async fn with_auth(auth_method: TokenEndpointAuthMethod, secret: Option<&str>) -> Self {
        Self::build(auth_method, secret, 0).await
    }

    pub async fn build(auth_method: TokenEndpointAuthMethod, secret: Option<&str>, expiry_margin: u64) -> Self {
        Self::build_with(auth_method, secret, expiry_margin, false).await
    }

    /// A public client holding a DPoP key (RFC 9449).
    pub async fn dpop() -> Self {
        Self::build_with(TokenEndpointAuthMethod::None, None, 0, true).await
    }

    pub async fn build_with(
        auth_method: TokenEndpointAuthMethod,
        secret: Option<&str>,
        expiry_margin: u64,
        dpop: bool,
    ) -> Self {
        let auth = MockServer::start().await;
        let rs = MockServer::start().await;
        let clock = SimulatedClock::starting_at(START);
        let config = ClientConfig {
            client_id: CLIENT_ID.into(),
            client_secret: secret.map(ClientSecret::new),
            auth_method,
            token_endpoint: format!("{}/token", auth.uri()),
            expiry_margin,
            dpop,
        };
        let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
        let sink = log.clone();
        let client = Client::new(config, Arc::new(clock.clone()), HttpClient::new())
            .with_observer(Arc::new(move |e: &Exchange| sink.lock().unwrap().push(e.clone())));
        Self { auth, rs, clock, client, log }
    }

    pub fn resource_url(&self) -> String {
        format!("{}{RESOURCE}", self.rs.uri())
    }

    /// Step C (or E): GET the protected resource.
    pub async fn call(&self) -> Result<figure2_client::ResourceResponse, figure2_client::ClientError> {
        self.client.call(http::Method::GET, &self.resource_url(), None).await
    }

    /// Steps A→B with the password grant, answered with `at0`/`rt0`.
    pub async fn authorize(&self) -> TokenSet {
        let guard = Mock::given(method("POST"))
            .and(path("/token"))
            .and(form("grant_type", "password"))
            .respond_with(tokens("at0", Some("rt0"), None))
            .expect(1)
            .mount_as_scoped(&self.auth)
            .await;
        let tokens = self.client.request_token(password_grant()).await.unwrap();
        drop(guard);
        tokens
    }

    /// The steps observed so far.
    pub fn steps(&self) -> Vec<Step> {
        self.exchanges().iter().map(|e| e.step).collect()
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().unwrap().clone()
    }

    /// The refresh requests the authorization server received, as forms.
    pub async fn refresh_requests(&self) -> Vec<FormParams> {
        forms(&self.auth).await.into_iter().filter(|f| f.get("grant_type") == Some("refresh_token")).collect()
    }
}

pub fn password_grant() -> TokenRequest {
    TokenRequest::Password {
        username: "alice".into(),
        password: Secret::new("wonderland"),
        scope: Some(Scope::parse("read write").unwrap()),
    }
}

/// A §5.1 Bearer answer with `expires_in` = [`LIFETIME`].
pub fn tokens(at: &str, rt: Option<&str>, scope: Option<&str>) -> ResponseTemplate {
    let mut body = json!({"access_token": at, "token_type": "Bearer", "expires_in": LIFETIME});
    if let Some(rt) = rt {
        body["refresh_token"] = json!(rt);
    }
    if let Some(scope) = scope {
        body["scope"] = json!(scope);
    }
    ResponseTemplate::new(200)
        .set_body_json(body)
        .insert_header("cache-control", "no-store")
        .insert_header("pragma", "no-cache")
}

/// A §5.2 error answer.
pub fn token_error(status: u16, error: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": error, "error_description": "refused"}))
}

/// Matches a form body holding `name=value` (decoded).
pub fn form(name: &'static str, value: &'static str) -> impl Fn(&Request) -> bool + Send + Sync {
    move |r: &Request| FormParams::parse(&r.body).is_ok_and(|f| f.get(name) == Some(value))
}

/// The bodies of every request `server` received, as forms.
pub async fn forms(server: &MockServer) -> Vec<FormParams> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| FormParams::parse(&r.body).ok())
        .collect()
}

/// The refresh request (G) presenting `rt`, answered with `at`/`new_rt` (H).
pub fn refresh_mock(rt: &'static str, at: &str, new_rt: Option<&str>) -> Mock {
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form("grant_type", "refresh_token"))
        .and(form("refresh_token", rt))
        .respond_with(tokens(at, new_rt, None))
}

/// Every refresh request (G), whatever token it presents, answered with `response`.
pub fn any_refresh(response: ResponseTemplate) -> Mock {
    Mock::given(method("POST")).and(path("/token")).and(form("grant_type", "refresh_token")).respond_with(response)
}

/// The resource server accepting `at` (step D).
pub fn resource_ok(at: &str) -> Mock {
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .and(header("authorization", format!("Bearer {at}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_string("the protected resource"))
}

/// The resource server refusing `at` with `invalid_token` (step F, RFC 6750 §3).
pub fn resource_invalid_token(at: &str) -> Mock {
    let challenge = BearerChallenge::error("figure2", BearerErrorCode::InvalidToken, "The access token expired");
    Mock::given(method("GET"))
        .and(path(RESOURCE))
        .and(header("authorization", format!("Bearer {at}").as_str()))
        .respond_with(
            ResponseTemplate::new(401).insert_header("www-authenticate", challenge.to_header_value().as_str()),
        )
}
