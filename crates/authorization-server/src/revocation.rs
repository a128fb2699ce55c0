//! `POST /revoke` (RFC 7009) and `POST /introspect` (RFC 7662): what happens to tokens
//! after step H. Revoking a refresh token ends its whole family, so the client has to go
//! back to step A; introspection tells whether a token is still good.

use crate::{AuthorizationServer, authorization_header, oauth_error, read_form};
use figure2_http::HttpResponse;
use figure2_http::Incoming;
use figure2_protocol::access_token::{AccessTokenClaims, Expectations, check_claims, check_header};
use figure2_protocol::client_auth::{ClientAuthentication, RegisteredClient, authenticate};
use figure2_protocol::introspection::IntrospectionResponse;
use figure2_protocol::revocation::TokenLookupRequest;
use figure2_protocol::secret::{digest, fingerprint};
use figure2_protocol::token_response::NO_STORE_HEADERS;
use figure2_protocol::{ErrorCode, ErrorResponse};

/// Reads the form, authenticates the client and parses `token` / `token_type_hint`.
async fn authenticated_lookup(
    server: &AuthorizationServer,
    request: http::Request<Incoming>,
) -> Result<(&RegisteredClient, TokenLookupRequest), Box<HttpResponse>> {
    let (parts, form) = read_form(request).await.map_err(|f| {
        let (status, error) = f.into_error();
        Box::new(oauth_error(status, &error))
    })?;
    let inner = || {
        let presented = ClientAuthentication::from_request(authorization_header(&parts)?, &form)?;
        let client = authenticate(&presented, presented.client_id().and_then(|id| server.client(id)))?;
        Ok::<_, ErrorResponse>((client, TokenLookupRequest::from_form(&form)?))
    };
    inner().map_err(|e| Box::new(oauth_error(e.http_status(), &e)))
}

/// RFC 7009 §2.
pub async fn revoke(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    let (client, lookup) = match authenticated_lookup(server, request).await {
        Ok(ok) => ok,
        Err(answer) => return *answer,
    };
    let token = lookup.token.expose();
    // The hint only says where to look first (§2.1): a JWT of ours is recognised whatever
    // the hint, so revoking one is always unsupported_token_type.
    if server.verify_access_token(token).is_none() {
        match server.store.refresh_token_info(&digest(token)) {
            Ok(Some(info)) if info.grant.client_id == client.client_id => {
                // §2.1: revoking a refresh token SHOULD also invalidate the grant's
                // other tokens: the whole family goes.
                if let Err(e) = server.store.revoke_family(info.family_id, server.now(), "revoked (RFC 7009)") {
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

/// RFC 7662 §2.
pub async fn introspect(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    let (client, lookup) = match authenticated_lookup(server, request).await {
        Ok(ok) => ok,
        Err(answer) => return *answer,
    };
    // RFC 7662 §2.1: the endpoint "MUST also require some form of authorization"; a
    // public client proves nothing, so only confidential clients may introspect.
    if !client.is_confidential() {
        let error = ErrorResponse::new(ErrorCode::InvalidClient, "introspection requires a confidential client");
        return oauth_error(401, &error);
    }
    let token = lookup.token.expose();
    let now = server.now();
    let mut answer = IntrospectionResponse::inactive();
    if let Some(claims) = server.verify_access_token(token) {
        answer = IntrospectionResponse {
            active: true,
            scope: claims.scope.clone(),
            client_id: Some(claims.client_id.clone()),
            username: Some(claims.sub.clone()),
            // RFC 7662 §2.2 / RFC 6749 §7.1: our access tokens are Bearer tokens (RFC 6750).
            token_type: Some(figure2_protocol::token_response::BEARER.into()),
            // RFC 7662 §2.2: integer timestamps; rounded down, as the checks round them.
            exp: Some(claims.exp.whole_seconds()),
            iat: Some(claims.iat.whole_seconds()),
            sub: Some(claims.sub.clone()),
            aud: Some(server.config.audience.clone()),
            iss: Some(claims.iss.clone()),
            jti: Some(claims.jti.clone()),
        };
    } else if let Ok(Some(info)) = server.store.refresh_token_info(&digest(token))
        && info.state.is_active(now, &server.config.refresh)
    {
        answer = IntrospectionResponse {
            active: true,
            scope: Some(info.grant.scope.to_string()),
            client_id: Some(info.grant.client_id.clone()),
            username: Some(info.grant.subject.clone()),
            exp: info.state.expires_at,
            iat: Some(info.issued_at),
            sub: Some(info.grant.subject.clone()),
            iss: Some(server.config.issuer.clone()),
            // RFC 7662 §2.2: `token_type` is a token type of RFC 6749 §7.1 / §5.1 (how an
            // access token is presented to a resource server, e.g. `Bearer`), OPTIONAL.
            // A refresh token is never presented to a resource server, so it has no such
            // type: the member is left out. `refresh_token` is an RFC 7009 §2.1
            // `token_type_hint` value, another vocabulary.
            token_type: None,
            ..IntrospectionResponse::default()
        };
    }
    tracing::debug!(client_id = %client.client_id, active = answer.active, token = fingerprint(token), "introspection");
    figure2_http::json(200, &answer, &NO_STORE_HEADERS)
}

impl AuthorizationServer {
    /// Verifies one of our own access tokens against our keys and the clock.
    pub fn verify_access_token(&self, token: &str) -> Option<AccessTokenClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let allowed = [self.config.signing_algorithm];
        let allowed_all = figure2_protocol::access_token::DEFAULT_ALLOWED_ALGORITHMS;
        check_header(&header, &allowed_all).ok()?;
        let key = self.published_keys().into_iter().find(|k| Some(&k.kid) == header.kid.as_ref())?;
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &key.decoding_key()?, &validation).ok()?;
        let expect = Expectations {
            issuer: &self.config.issuer,
            audience: &self.config.audience,
            allowed_algorithms: &allowed,
            leeway: 0,
        };
        check_claims(&data.claims, &expect, self.now()).ok()?;
        Some(data.claims)
    }
}
