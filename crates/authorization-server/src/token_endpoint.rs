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

use crate::store::{Grant, NewRefreshToken};
use crate::{AuthorizationServer, authorization_header, oauth_error, random_token, read_form};
use figure2_http::HttpResponse;
use figure2_http::Incoming;
use figure2_protocol::access_token::{AccessTokenClaims, Audience};
use figure2_protocol::authorization::check_code;
use figure2_protocol::client_auth::{ClientAuthentication, GrantType, RegisteredClient, authenticate};
use figure2_protocol::refresh::check_refresh;
use figure2_protocol::secret::{digest, fingerprint};
use figure2_protocol::token_request::RefreshTokenRequest;
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::token_response::{AccessTokenResponse, BEARER, NO_STORE_HEADERS};
use figure2_protocol::{ErrorCode, ErrorResponse, Scope};

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
        client.check_grant_type(grant.grant_type())?;
        match grant {
            TokenRequest::AuthorizationCode { code, redirect_uri, code_verifier } => {
                authorization_code(server, client, code.expose(), redirect_uri.as_deref(), code_verifier.as_ref())
            }
            TokenRequest::Password { username, password, scope } => {
                password_grant(server, client, username, password, scope).await
            }
            TokenRequest::ClientCredentials { scope } => client_credentials(server, client, scope),
            TokenRequest::RefreshToken(refresh) => refresh_token(server, client, refresh),
        }
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

fn server_error(e: impl std::fmt::Display) -> ErrorResponse {
    tracing::error!(error = %e, "token endpoint failure");
    ErrorResponse::new(ErrorCode::ServerError, "the authorization server failed; try again")
}

impl AuthorizationServer {
    /// Signs an RFC 9068 access token.
    fn issue_access_token(
        &self,
        subject: &str,
        client_id: &str,
        scope: &Scope,
    ) -> Result<(String, u64), ErrorResponse> {
        let now = self.now();
        let lifetime = self.config.access_token_lifetime;
        let mut jti = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut jti);
        let claims = AccessTokenClaims {
            iss: self.config.issuer.clone(),
            sub: subject.to_owned(),
            aud: Audience::One(self.config.audience.clone()),
            exp: now + lifetime,
            iat: now,
            nbf: None,
            jti: figure2_protocol::secret::encode_token(&jti),
            client_id: client_id.to_owned(),
            scope: (!scope.is_empty()).then(|| scope.to_string()),
        };
        let jwt = self.signing_key().sign_jwt(&claims).map_err(server_error)?;
        Ok((jwt, lifetime))
    }

    fn new_refresh_token(&self, family_created_at: u64) -> (String, NewRefreshToken) {
        let token = random_token();
        let expires_at = self.config.refresh.expiry_for_new_token(self.now(), family_created_at);
        let new = NewRefreshToken { digest: digest(&token), expires_at };
        (token, new)
    }

    /// Step B: a new grant, its access token and (if the client may refresh) its first
    /// refresh token.
    fn respond(
        &self,
        client: &RegisteredClient,
        subject: &str,
        scope: Scope,
        refresh_token: Option<String>,
    ) -> Result<AccessTokenResponse, ErrorResponse> {
        let (access_token, expires_in) = self.issue_access_token(subject, &client.client_id, &scope)?;
        Ok(AccessTokenResponse {
            access_token,
            token_type: BEARER.to_owned(),
            expires_in: Some(expires_in),
            refresh_token,
            scope: Some(scope),
            id_token: None,
        })
    }

    fn issues_refresh_tokens(client: &RegisteredClient) -> bool {
        client.grant_types.contains(&GrantType::RefreshToken)
    }
}

/// RFC 6749 §4.1.3.
fn authorization_code(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&figure2_protocol::pkce::CodeVerifier>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let now = server.now();
    let refresh = (AuthorizationServer::issues_refresh_tokens(client)
        && server.oidc_allows_refresh_token(&digest(code)))
    .then(|| server.new_refresh_token(now));
    let redeemed = server
        .store
        .redeem_code(
            &digest(code),
            now,
            &mut |grant| check_code(grant, &client.client_id, redirect_uri, verifier, now),
            refresh.as_ref().map(|(_, new)| *new),
        )
        .map_err(server_error)?;
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
    let id_token = server.oidc_id_token_for_code(&digest(code), family, client, &grant.subject, &grant.scope)?;
    server.respond(client, &grant.subject, grant.scope, refresh_token).map(|r| AccessTokenResponse { id_token, ..r })
}

/// RFC 6749 §4.3 (legacy: RFC 9700 §2.4 says it MUST NOT be used; kept for teaching and
/// tests, enabled per client).
async fn password_grant(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    username: String,
    password: figure2_protocol::secret::Secret,
    scope: Option<Scope>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let scope = requested_scope(client, scope)?;
    let ok = server.verify_resource_owner(&username, password.expose().to_owned()).await;
    if !ok {
        // §5.2 invalid_grant: "the provided ... resource owner credentials ... [are] invalid".
        return Err(ErrorResponse::new(ErrorCode::InvalidGrant, "invalid resource owner credentials"));
    }
    issue_new_grant(server, client, &username, scope, "password grant")
}

fn issue_new_grant(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    subject: &str,
    scope: Scope,
    what: &str,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let now = server.now();
    let refresh = AuthorizationServer::issues_refresh_tokens(client).then(|| server.new_refresh_token(now));
    let grant = Grant { client_id: client.client_id.clone(), subject: subject.to_owned(), scope: scope.clone() };
    let family =
        server.store.create_family(&grant, refresh.as_ref().map(|(_, new)| *new), now).map_err(server_error)?;
    let refresh_token = refresh.map(|(token, _)| token);
    tracing::info!(
        step = "B", client_id = %client.client_id, family,
        rt = refresh_token.as_deref().map(fingerprint).unwrap_or_default(),
        "{what}: tokens issued"
    );
    server.respond(client, subject, scope, refresh_token)
}

/// RFC 6749 §4.4: the client acts for itself. §4.4.3: "A refresh token SHOULD NOT be
/// included", so none is.
fn client_credentials(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    scope: Option<Scope>,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let scope = requested_scope(client, scope)?;
    server.respond(client, &client.client_id, scope, None)
}

/// RFC 6749 §6: steps G and H.
fn refresh_token(
    server: &AuthorizationServer,
    client: &RegisteredClient,
    request: RefreshTokenRequest,
) -> Result<AccessTokenResponse, ErrorResponse> {
    let now = server.now();
    let presented = digest(request.refresh_token.expose());
    let policy = &server.config.refresh;
    // The replacement is made before the transaction so the transaction stays short;
    // it is stored only if the refresh succeeds with rotation.
    // The family's age matters only to an absolute lifetime (see `expiry_for_new_token`):
    // without one, skip the lookup, one store round trip less per refresh.
    let family_created_at = if policy.refresh_token_absolute_lifetime.is_some() {
        server.store.family_created_at(&presented).map_err(server_error)?.unwrap_or(now)
    } else {
        now
    };
    let (new_token, replacement) = server.new_refresh_token(family_created_at);
    let outcome = server
        .store
        .refresh(&presented, replacement, now, policy.revoke_family_on_reuse, &mut |state| {
            check_refresh(state, &client.client_id, request.scope.as_ref(), now, policy)
        })
        .map_err(server_error)?;
    server.metrics.refresh_outcome(&outcome);
    let rt = request.refresh_token.fingerprint();
    let refreshed = match outcome {
        Ok(refreshed) => refreshed,
        Err(refused) => {
            tracing::warn!(
                step = "G", client_id = %client.client_id, rt, reason = %refused.rejection,
                family_revoked = refused.family_revoked, "refresh refused"
            );
            return Err(refused.rejection.to_error());
        }
    };
    let new_refresh = refreshed.rotated.then_some(new_token);
    tracing::info!(
        step = "H", client_id = %client.client_id, family = refreshed.family_id, rt,
        new_rt = new_refresh.as_deref().map(fingerprint).unwrap_or_default(),
        grace = refreshed.granted.within_grace_period, "refresh granted"
    );
    let (access_token, expires_in) =
        server.issue_access_token(&refreshed.subject, &client.client_id, &refreshed.granted.access_token_scope)?;
    Ok(AccessTokenResponse {
        access_token,
        token_type: BEARER.to_owned(),
        expires_in: Some(expires_in),
        refresh_token: new_refresh,
        id_token: server.oidc_id_token_on_refresh(&refreshed, client)?,
        scope: Some(refreshed.granted.access_token_scope),
    })
}
