//! `grant_type=password` — RFC 6749 §4.3, the resource owner password credentials grant.
//! Legacy: RFC 9700 §2.4 says it MUST NOT be used; Figure2 keeps it for teaching and
//! tests, enabled per client.

use super::{issue_new_grant, requested_scope};
use crate::AuthorizationServer;
use figure2_protocol::client_auth::RegisteredClient;
use figure2_protocol::secret::Secret;
use figure2_protocol::token_response::AccessTokenResponse;
use figure2_protocol::{ErrorCode, ErrorResponse, Scope};

/// §4.3.2: validates the resource owner's credentials, then step B.
pub(crate) async fn grant(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    username: String,
    password: Secret,
    scope: Option<Scope>,
    dpop_jkt: Option<String>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let scope = requested_scope(client, scope)?;
    if !server.verify_resource_owner(&username, password.expose().to_owned()).await {
        // §5.2 invalid_grant: "the provided ... resource owner credentials ... [are] invalid".
        return Err(ErrorResponse::new(ErrorCode::InvalidGrant, "invalid resource owner credentials"));
    }
    issue_new_grant(server, client, &username, scope, "password grant", dpop_jkt).await
}
