//! `grant_type=authorization_code` — RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6): the code
//! the resource owner's consent produced at `/authorize` becomes step B.

use super::{family_binding, issues_refresh_tokens, new_refresh_token, server_error};
use crate::AuthorizationServer;
use crate::store::RedeemCode;
use figure2_protocol::ErrorResponse;
use figure2_protocol::client_auth::RegisteredClient;
use figure2_protocol::pkce::CodeVerifier;
use figure2_protocol::secret::{AuthorizationCode, digest, fingerprint};
use figure2_protocol::token_response::AccessTokenResponse;

/// §4.1.3: the store checks the code (`figure2_protocol::authorization::check_code`: bound
/// to this client, redirect URI, PKCE verifier, expiry, single use) and creates the family
/// in one transaction.
pub(crate) async fn exchange(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    code: &AuthorizationCode,
    redirect_uri: Option<String>,
    code_verifier: Option<CodeVerifier>,
    dpop_jkt: Option<String>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let now = server.now();
    let refresh = (issues_refresh_tokens(server, client)
        && server.oidc_allows_refresh_token(&digest(code.expose())).await)
        .then(|| new_refresh_token(server, now));
    let command = RedeemCode {
        digest: digest(code.expose()),
        client_id: client.client_id.clone(),
        redirect_uri,
        code_verifier,
        now,
        refresh: refresh.as_ref().map(|(_, new)| *new),
        dpop_jkt: family_binding(server, client, dpop_jkt.clone()),
    };
    let redeemed = server.store.redeem_code(command).await.map_err(server_error)?;
    let (grant, family) = redeemed.map_err(|rejection| {
        tracing::info!(step = "A", client_id = %client.client_id, reason = %rejection, "authorization code refused");
        rejection.to_error()
    })?;
    let refresh_token = refresh.map(|(token, _)| token);
    tracing::info!(
        step = "B", client_id = %client.client_id, family,
        rt = refresh_token.as_deref().map(fingerprint).unwrap_or_default(),
        "authorization code exchanged"
    );
    let id_token =
        server.oidc_id_token_for_code(&digest(code.expose()), family, client, &grant.subject, &grant.scope).await?;
    server
        .respond(&client.client_id, &grant.subject, grant.scope, refresh_token, dpop_jkt.as_deref())
        .map(|r| AccessTokenResponse { id_token, ..r })
}
