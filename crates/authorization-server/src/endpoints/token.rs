//! `POST /token` — RFC 6749 §3.2. Step A arrives here with an authorization grant and
//! leaves as step B; step G arrives with a refresh token and leaves as step H.
//!
//! ```text
//! POST /token HTTP/1.1
//! Authorization: Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=
//! Content-Type: application/x-www-form-urlencoded
//!
//! grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA
//! ```
//!
//! This file authenticates the client and parses the grant; each grant type is played by
//! its own file in [`crate::grants`].

use crate::{AuthorizationServer, authorization_header, grants, oauth_error, read_form};
use figure2_http::HttpResponse;
use figure2_http::Incoming;
use figure2_protocol::client_auth::{ClientAuthentication, authenticate};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::token_response::NO_STORE_HEADERS;

/// Handles one token request end to end.
pub async fn handle(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    let (parts, form) = match read_form(request).await {
        Ok(ok) => ok,
        Err(failure) => {
            let (status, error) = failure.into_error();
            return oauth_error(status, &error);
        }
    };
    // Test control (never in production): a queued fault for this request.
    let fault = match crate::control::before_token_request(server, &parts, &form).await {
        Ok(fault) => fault,
        Err(answer) => return answer,
    };
    let started = std::time::Instant::now();
    let result = async {
        let presented = ClientAuthentication::from_request(authorization_header(&parts)?, &form)?;
        // RFC 6749 §3.2.1 / §6: authenticate the client before looking at the grant.
        let client = authenticate(&presented, presented.client_id().and_then(|id| server.client(id)))?;
        let grant = TokenRequest::from_form(&form)?;
        // §5.2 unauthorized_client: the client may not use this grant type.
        client.check_grant_type(grant.grant_type())?;
        grants::issue(server, client, grant).await
    }
    .await;
    server.metrics.token_request(form.get("grant_type"), result.as_ref().err(), started.elapsed());
    let response = match result {
        Ok(response) => figure2_http::json(200, &response, &NO_STORE_HEADERS),
        Err(error) => {
            tracing::info!(error = %error, "token request refused");
            oauth_error(error.http_status(), &error)
        }
    };
    crate::control::after_token_request(fault, response)
}
