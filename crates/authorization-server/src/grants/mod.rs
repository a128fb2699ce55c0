//! The grants of the token endpoint, one file each: what step A (a new grant) and step G
//! (a refresh) turn into at the authorization server. Adding a grant type means a new
//! `TokenRequest` variant in `figure2_protocol::token_request` and a new file here.
//!
//! This module holds what they share: the scope of a new grant (RFC 6749 §3.3), signing
//! the RFC 9068 access token, drawing a refresh token, and the §5.1 response.

pub mod authorization_code;
pub mod client_credentials;
pub mod password;
pub mod refresh_token;

use crate::AuthorizationServer;
use crate::store::{Grant, NewRefreshToken};
use figure2_protocol::access_token::{AccessTokenClaims, Audience};
use figure2_protocol::client_auth::{GrantType, RegisteredClient};
use figure2_protocol::dpop::Confirmation;
use figure2_protocol::secret::{AccessToken, RefreshToken, digest, fingerprint};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::token_response::{AccessTokenResponse, BEARER};
use figure2_protocol::{ErrorCode, ErrorResponse, Scope};

/// Runs the grant the client presented (already authenticated and allowed this grant type).
pub(crate) async fn issue(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    grant: TokenRequest,
    dpop_jkt: Option<String>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    match grant {
        TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
            authorization_code::exchange(server, client, &code, redirect_uri, code_verifier, dpop_jkt).await
        }
        TokenRequest::Password { username, password, scope } => {
            password::grant(server, client, username, password, scope, dpop_jkt).await
        }
        TokenRequest::ClientCredentials { scope } => client_credentials::grant(server, client, scope, dpop_jkt),
        TokenRequest::RefreshToken(refresh) => refresh_token::refresh(server, client, refresh, dpop_jkt).await,
    }
}

/// RFC 9449 §5: the key a new family's refresh tokens are bound to. A public client's
/// "MUST be bound" when it presented a proof; a confidential client's only if configured
/// (they are already bound to its credentials).
fn family_binding(server: &AuthorizationServer, client: &RegisteredClient, dpop_jkt: Option<String>) -> Option<String> {
    let bind = !client.is_confidential() || server.config.dpop.bind_confidential_refresh_tokens;
    dpop_jkt.filter(|_| bind)
}

/// The scope granted for a new grant: §3.3 lets the server apply a default when the
/// request has none; a request beyond the client's registered scope is `invalid_scope`.
fn requested_scope(client: &RegisteredClient, requested: Option<Scope>) -> Result<Scope, ErrorResponse> {
    let scope = requested.unwrap_or_else(|| client.scope.clone());
    if !scope.is_subset_of(&client.scope) {
        let excess: Vec<&str> = scope.excess_over(&client.scope).collect();
        return Err(ErrorResponse::new(
            ErrorCode::InvalidScope,
            format!("scope not allowed for this client: {}", excess.join(" ")),
        ));
    }
    Ok(scope)
}

/// §5.2 has no code for "the server broke": `server_error` is borrowed from §4.1.2.1.
fn server_error(e: impl std::fmt::Display) -> ErrorResponse {
    tracing::error!(error = %e, "token endpoint failure");
    ErrorResponse::new(ErrorCode::ServerError, "the authorization server failed; try again")
}

/// Whether the client is issued refresh tokens: its registration allows the grant, and
/// the policy gives them to clients of its kind (Spring gives public clients none).
fn issues_refresh_tokens(server: &AuthorizationServer, client: &RegisteredClient) -> bool {
    client.grant_types.contains(&GrantType::RefreshToken)
        && (client.is_confidential() || server.config.refresh.issue_refresh_tokens_to_public_clients)
}

/// A new access token's `jti` (128 random bits).
pub(crate) fn new_jti() -> String {
    let mut jti = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut jti);
    figure2_protocol::secret::encode_token(&jti)
}

/// A fresh refresh token (RFC 6749 §10.10: 256 random bits) and what the store keeps of it.
fn new_refresh_token(server: &AuthorizationServer, family_created_at: u64) -> (String, NewRefreshToken) {
    let token = crate::random_token();
    let expires_at = server.config.refresh.expiry_for_new_token(server.now(), family_created_at);
    (token.clone(), NewRefreshToken { digest: digest(&token), expires_at })
}

impl AuthorizationServer {
    /// Signs an RFC 9068 access token with this `jti`; returns it and its lifetime in seconds.
    fn issue_access_token(
        &self,
        subject: &str,
        client_id: &str,
        scope: &Scope,
        jti: String,
        dpop_jkt: Option<&str>,
    ) -> Result<(String, u64), ErrorResponse> {
        let now = self.now();
        let lifetime = self.config.access_token_lifetime;
        let claims = AccessTokenClaims {
            iss: self.config.issuer.clone(),
            sub: subject.to_owned(),
            aud: Audience::One(self.config.audience.clone()),
            exp: (now + lifetime).into(),
            iat: now.into(),
            nbf: None,
            jti,
            client_id: client_id.to_owned(),
            scope: (!scope.is_empty()).then(|| scope.to_string()),
            // RFC 9449 §6.1: a DPoP-bound token names its key's thumbprint.
            cnf: dpop_jkt.map(|jkt| Confirmation { jkt: Some(jkt.to_owned()) }),
        };
        let jwt = self.signing_key().sign_jwt(&claims).map_err(server_error)?;
        Ok((jwt, lifetime))
    }

    /// The §5.1 response: a new access token, and the refresh token if one was issued.
    /// With a DPoP key, the access token is bound to it and its type is `DPoP` (RFC 9449 §5).
    fn respond(
        &self,
        client_id: &str,
        subject: &str,
        scope: Scope,
        refresh_token: Option<String>,
        dpop_jkt: Option<&str>,
    ) -> Result<AccessTokenResponse, ErrorResponse> {
        let (access_token, expires_in) = self.issue_access_token(subject, client_id, &scope, new_jti(), dpop_jkt)?;
        Ok(AccessTokenResponse {
            access_token: AccessToken::new(access_token),
            token_type: token_type(dpop_jkt).to_owned(),
            expires_in: Some(expires_in),
            refresh_token: refresh_token.map(RefreshToken::new),
            scope: Some(scope),
            id_token: None,
        })
    }
}

/// RFC 9449 §5: "DPoP" for a DPoP-bound access token, RFC 6750's "Bearer" otherwise.
fn token_type(dpop_jkt: Option<&str>) -> &'static str {
    if dpop_jkt.is_some() { figure2_protocol::dpop::TOKEN_TYPE } else { BEARER }
}

/// Step B for a grant checked by its own file: records the family (with its first
/// refresh token if the client gets one) and answers.
async fn issue_new_grant(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    subject: &str,
    scope: Scope,
    what: &str,
    dpop_jkt: Option<String>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let now = server.now();
    let refresh = issues_refresh_tokens(server, client).then(|| new_refresh_token(server, now));
    let grant = Grant {
        client_id: client.client_id.clone(),
        subject: subject.to_owned(),
        scope: scope.clone(),
        dpop_jkt: family_binding(server, client, dpop_jkt.clone()),
    };
    let grant_bound = grant.dpop_jkt.is_some();
    let family =
        server.store.create_family(grant, refresh.as_ref().map(|(_, new)| *new), now).await.map_err(server_error)?;
    let refresh_token = refresh.map(|(token, _)| token);
    tracing::info!(
        step = "B", client_id = %client.client_id, family,
        rt = refresh_token.as_deref().map(fingerprint).unwrap_or_default(),
        bound = grant_bound, "{what}: tokens issued"
    );
    server.respond(&client.client_id, subject, scope, refresh_token, dpop_jkt.as_deref())
}
