//! `POST /revoke` — RFC 7009: what happens to tokens after step H. Revoking a refresh
//! token ends its whole family, so the client has to go back to step A.
//!
//! ```text
//! POST /revoke HTTP/1.1
//! Authorization: Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=
//! Content-Type: application/x-www-form-urlencoded
//!
//! token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token
//! ```

use crate::request::authenticated_lookup;
use crate::{AuthorizationServer, oauth_error};
use figure2_http::HttpResponse;
use figure2_http::Incoming;
use figure2_protocol::family::reason;
use figure2_protocol::secret::{digest, fingerprint};
use figure2_protocol::token_response::NO_STORE_HEADERS;
use figure2_protocol::{ErrorCode, ErrorResponse};

/// RFC 7009 §2.
pub async fn handle(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    let (client, lookup) = match authenticated_lookup(server, request).await {
        Ok(ok) => ok,
        Err(answer) => return *answer,
    };
    let token = lookup.token.expose();
    // The hint only says where to look first (§2.1): a JWT of ours is recognised whatever
    // the hint, so revoking one is always unsupported_token_type.
    if server.verify_access_token(token).is_none() {
        match server.store.refresh_token_info(digest(token)).await {
            Ok(Some(info)) if info.grant().client_id == client.client_id => {
                // §2.1: revoking a refresh token SHOULD also invalidate the grant's
                // other tokens: the whole family goes.
                let revoked = server.store.revoke_family(info.family_id, server.now(), reason::REVOKED_BY_CLIENT).await;
                if let Err(e) = revoked {
                    tracing::error!(error = %e, "revocation failed");
                    let error = ErrorResponse::new(ErrorCode::ServerError, "revocation failed; try again");
                    return oauth_error(500, &error);
                }
                tracing::info!(client_id = %client.client_id, rt = fingerprint(token), family = info.family_id, "refresh token family revoked");
            }
            // A token of another client is left alone and not acknowledged as existing.
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "revocation lookup failed");
                return oauth_error(500, &ErrorResponse::new(ErrorCode::ServerError, "revocation failed; try again"));
            }
        }
        // §2.2: "invalid tokens do not cause an error response": 200 either way.
        return figure2_http::text(200, "text/plain", "", &NO_STORE_HEADERS);
    }
    // A JWT access token of ours: self-contained, it cannot be recalled before `exp`.
    // §2.2.1 `unsupported_token_type`.
    let error = ErrorResponse::new(
        ErrorCode::UnsupportedTokenType,
        "JWT access tokens cannot be revoked; revoke the refresh token instead",
    );
    oauth_error(400, &error)
}
