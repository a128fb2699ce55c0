//! Steps A→B: the grant, client authentication (RFC 6749 §2.3.1), reading §5.1 / §5.2.

use crate::support::*;
use figure2_client::{Client, ClientError};
use figure2_http::HttpClient;
use figure2_protocol::client_auth::TokenEndpointAuthMethod;
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::RefreshToken;
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{ErrorCode, Scope};
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_b_password_grant_stores_tokens_with_exact_basic_header() {
    let h = Harness::new().await;
    let tokens = h.authorize().await;

    assert!(tokens.access_token.ct_eq("at0"));
    assert!(tokens.refresh_token.as_ref().is_some_and(|rt| rt.ct_eq("rt0")));
    assert_eq!(tokens.expires_at, Some(START + LIFETIME));
    // §5.1: no scope in the answer means the one requested.
    assert_eq!(tokens.scope, Some(Scope::parse("read write").unwrap()));
    assert_eq!(tokens.generation, 1);
    assert!(h.client.tokens().is_some_and(|t| t.access_token.ct_eq("at0")));

    let requests = h.auth.received_requests().await.unwrap();
    let [request] = requests.as_slice() else { panic!("expected one token request, got {}", requests.len()) };
    assert_eq!(request.method.as_str(), "POST");
    // RFC 6749 §2.3.1's own example value.
    assert_eq!(request.headers["authorization"], "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW");
    assert_eq!(request.headers["content-type"], "application/x-www-form-urlencoded");
    assert_eq!(request.headers["accept"], "application/json");
    let form = FormParams::parse(&request.body).unwrap();
    assert_eq!(form.get("grant_type"), Some("password"));
    assert_eq!(form.get("username"), Some("alice"));
    assert_eq!(form.get("password"), Some("wonderland"));
    assert_eq!(form.get("scope"), Some("read write"));
    // §2.3.1: one method per request, so no credentials in the body.
    assert_eq!(form.get("client_id"), None);
    assert_eq!(form.get("client_secret"), None);
}

#[tokio::test]
async fn a_b_client_secret_post_puts_credentials_in_the_body() {
    let h = Harness::with_auth(TokenEndpointAuthMethod::ClientSecretPost, Some(CLIENT_SECRET)).await;
    h.authorize().await;
    let requests = h.auth.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
    let form = FormParams::parse(&requests[0].body).unwrap();
    assert_eq!(form.get("client_id"), Some(CLIENT_ID));
    assert_eq!(form.get("client_secret"), Some(CLIENT_SECRET));
    assert_eq!(form.get("grant_type"), Some("password"));
}

#[tokio::test]
async fn a_b_public_client_sends_only_its_client_id() {
    let h = Harness::with_auth(TokenEndpointAuthMethod::None, None).await;
    h.authorize().await;
    let requests = h.auth.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
    let form = FormParams::parse(&requests[0].body).unwrap();
    assert_eq!(form.get("client_id"), Some(CLIENT_ID));
    assert_eq!(form.get("client_secret"), None);
}

#[tokio::test]
async fn basic_without_a_secret_is_refused_before_sending() {
    let h = Harness::with_auth(TokenEndpointAuthMethod::ClientSecretBasic, None).await;
    let err = h.client.request_token(password_grant()).await.unwrap_err();
    assert!(matches!(err, ClientError::Http(figure2_http::ClientError::InvalidRequest(_))), "{err:?}");
    assert!(h.auth.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_b_client_credentials_without_refresh_token() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form("grant_type", "client_credentials"))
        .respond_with(tokens("cc0", None, Some("read")))
        .expect(1)
        .mount(&h.auth)
        .await;
    let t = h.client.request_token(TokenRequest::ClientCredentials { scope: None }).await.unwrap();
    assert!(t.refresh_token.is_none());
    assert_eq!(t.scope, Some(Scope::parse("read").unwrap()));

    // Expired and nothing to refresh with.
    h.clock.advance(LIFETIME);
    assert!(matches!(h.call().await, Err(ClientError::NoRefreshToken)));
    assert!(h.rs.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_b_error_is_token_endpoint_error() {
    let h = Harness::new().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(token_error(401, "invalid_client"))
        .mount(&h.auth)
        .await;
    match h.client.request_token(password_grant()).await {
        Err(ClientError::TokenEndpoint { status: 401, error }) => assert_eq!(error.error, ErrorCode::InvalidClient),
        other => panic!("{other:?}"),
    }
    assert!(h.client.tokens().is_none());
}

async fn grant_answered_with(response: ResponseTemplate) -> ClientError {
    let h = Harness::new().await;
    Mock::given(method("POST")).and(path("/token")).respond_with(response).mount(&h.auth).await;
    let err = h.client.request_token(password_grant()).await.unwrap_err();
    assert!(h.client.tokens().is_none());
    err
}

#[tokio::test]
async fn malformed_token_responses_are_protocol_errors() {
    let not_json = ResponseTemplate::new(200).set_body_string("{\"access_token\": ");
    assert!(matches!(grant_answered_with(not_json).await, ClientError::Protocol(_)));

    // RFC 6749 §7.1: a token type the client does not understand is not used.
    let mac = ResponseTemplate::new(200).set_body_json(json!({"access_token": "a", "token_type": "mac"}));
    assert!(matches!(grant_answered_with(mac).await, ClientError::Protocol(m) if m.contains("Bearer")));

    let no_type = ResponseTemplate::new(200).set_body_json(json!({"access_token": "a"}));
    assert!(matches!(grant_answered_with(no_type).await, ClientError::Protocol(_)));

    // RFC 6750 §2.1: a token that cannot go into the Authorization header.
    let spaces = ResponseTemplate::new(200).set_body_json(json!({"access_token": "a b", "token_type": "Bearer"}));
    assert!(matches!(grant_answered_with(spaces).await, ClientError::Protocol(_)));

    let html_400 = ResponseTemplate::new(400).set_body_string("<h1>oops</h1>");
    assert!(matches!(grant_answered_with(html_400).await, ClientError::Protocol(_)));

    // A 5xx is the server's (or a proxy's) trouble, not a malformed answer.
    let html_500 = ResponseTemplate::new(500).set_body_string("<h1>oops</h1>");
    assert!(matches!(grant_answered_with(html_500).await, ClientError::Unavailable { status: 500, .. }));
}

#[tokio::test]
async fn bearer_token_type_is_case_insensitive() {
    let h = Harness::new().await;
    let body = json!({"access_token": "at0", "token_type": "bearer"});
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&h.auth)
        .await;
    let t = h.client.request_token(password_grant()).await.unwrap();
    assert_eq!(t.expires_at, None);
    assert!(t.refresh_token.is_none());
}

#[tokio::test]
async fn discovery_checks_the_issuer() {
    let server = MockServer::start().await;
    let issuer = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
        })))
        .mount(&server)
        .await;
    let http = HttpClient::new();
    let metadata = Client::discover(&http, &issuer).await.unwrap();
    assert_eq!(metadata.token_endpoint().unwrap(), format!("{issuer}/token"));

    // RFC 8414 §3.3: the issuer must be the one the URL was built from.
    let other = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"issuer": "https://evil.example"})))
        .mount(&other)
        .await;
    assert!(matches!(Client::discover(&http, &other.uri()).await, Err(ClientError::Protocol(_))));
    let empty = MockServer::start().await;
    assert!(matches!(Client::discover(&http, &empty.uri()).await, Err(ClientError::Protocol(_))));
}

#[tokio::test]
async fn send_token_request_changes_no_state() {
    let h = Harness::new().await;
    h.authorize().await;
    refresh_mock("rt-old", "at-x", Some("rt-x")).mount(&h.auth).await;
    let replay = TokenRequest::RefreshToken(figure2_protocol::token_request::RefreshTokenRequest {
        refresh_token: RefreshToken::new("rt-old"),
        scope: None,
    });
    let response = h.client.send_token_request(&replay, figure2_client::Step::Refresh).await.unwrap();
    assert_eq!(response.status, 200);
    let t = h.client.tokens().unwrap();
    assert!(t.access_token.ct_eq("at0") && t.generation == 1);
    assert_eq!(h.steps().last(), Some(&figure2_client::Step::Refresh));
    assert_eq!(
        h.auth.received_requests().await.unwrap().last().unwrap().headers["authorization"],
        "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW"
    );
}
