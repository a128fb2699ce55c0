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
//! With DPoP (RFC 9449) the request also carries a proof in the `DPoP` header, checked
//! first (`crate::dpop`); the tokens issued are then bound to its key.
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
    // RFC 9449 §5: a DPoP proof, if the request carries one, is checked first; with
    // nonces on (§8) every answer carries the current one.
    let nonce = server.dpop_nonce();
    let mut headers: Vec<(&str, &str)> = NO_STORE_HEADERS.to_vec();
    if let Some(n) = &nonce {
        headers.push((figure2_protocol::dpop::NONCE_HEADER, n));
    }
    let proof = match server.check_dpop_proof(&parts).await {
        Ok(proof) => proof,
        Err(refusal) => {
            let mut headers: Vec<(&str, &str)> = NO_STORE_HEADERS.to_vec();
            let nonce = refusal.nonce.as_deref().or(nonce.as_deref());
            if let Some(n) = nonce {
                headers.push((figure2_protocol::dpop::NONCE_HEADER, n));
            }
            return figure2_http::json(refusal.error.http_status(), &refusal.error, &headers);
        }
    };
    let dpop_jkt = proof.map(|p| p.jkt);
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
        grants::issue(server, client, grant, dpop_jkt).await
    }
    .await;
    server.metrics.token_request(form.get("grant_type"), result.as_ref().err(), started.elapsed());
    let response = match result {
        Ok(response) => figure2_http::json(200, &response, &headers),
        Err(error) => {
            tracing::info!(error = %error, "token request refused");
            let mut response = oauth_error(error.http_status(), &error);
            if let Some(n) = nonce.as_deref().and_then(|n| http::HeaderValue::from_str(n).ok()) {
                response.headers_mut().insert(figure2_protocol::dpop::NONCE_HEADER, n);
            }
            response
        }
    };
    crate::control::after_token_request(fault, response)
}
