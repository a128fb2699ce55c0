//! `grant_type=client_credentials` — RFC 6749 §4.4: the client acts for itself.

use super::requested_scope;
use crate::AuthorizationServer;
use figure2_protocol::client_auth::RegisteredClient;
use figure2_protocol::token_response::AccessTokenResponse;
use figure2_protocol::{ErrorResponse, Scope};

/// §4.4.3: "A refresh token SHOULD NOT be included", so none is, and no family is kept.
pub(crate) fn grant(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    scope: Option<Scope>,
    dpop_jkt: Option<String>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let scope = requested_scope(client, scope)?;
    // RFC 9449 §5: no refresh token here; the access token alone is bound.
    server.respond(&client.client_id, &client.client_id, scope, None, dpop_jkt.as_deref())
}
