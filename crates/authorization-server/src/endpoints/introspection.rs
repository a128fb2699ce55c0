//! `POST /introspect` — RFC 7662: tells a confidential client whether a token is still
//! good after step H, and what it carries.
//!
//! ```text
//! POST /introspect HTTP/1.1
//! Authorization: Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=
//! Content-Type: application/x-www-form-urlencoded
//!
//! token=mF_9.B5f-4.1JqM&token_type_hint=access_token
//! ```

use crate::request::authenticated_lookup;
use crate::{AuthorizationServer, oauth_error};
use figure2_http::HttpResponse;
use figure2_http::Incoming;
use figure2_protocol::introspection::IntrospectionResponse;
use figure2_protocol::secret::{digest, fingerprint};
use figure2_protocol::token_response::NO_STORE_HEADERS;
use figure2_protocol::{ErrorCode, ErrorResponse};

/// RFC 7662 §2.
pub async fn handle(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
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
        // Usage-based recovery: an introspected access token counts as used (a resource
        // server asks before it serves). Only policies that read it pay for the write.
        if server.refresh_policy.reuse_while_successor_unused
            && let Err(e) = server.store.record_access_token_use(digest(&claims.jti), now).await
        {
            tracing::error!(error = %e, "recording an access token's use failed");
        }
        answer = IntrospectionResponse {
            active: true,
            scope: claims.scope.clone(),
            client_id: Some(claims.client_id.clone()),
            username: Some(claims.sub.clone()),
            // RFC 7662 §2.2 / RFC 6749 §7.1: how the token is presented: Bearer (RFC 6750),
            // or DPoP for a DPoP-bound one (RFC 9449 §6.2).
            token_type: Some(
                if claims.dpop_jkt().is_some() {
                    figure2_protocol::dpop::TOKEN_TYPE
                } else {
                    figure2_protocol::token_response::BEARER
                }
                .into(),
            ),
            cnf: claims.cnf.clone(),
            // RFC 7662 §2.2: integer timestamps; rounded down, as the checks round them.
            exp: Some(claims.exp.whole_seconds()),
            iat: Some(claims.iat.whole_seconds()),
            sub: Some(claims.sub.clone()),
            aud: Some(server.config.audience.clone()),
            iss: Some(claims.iss.clone()),
            jti: Some(claims.jti.clone()),
        };
    } else if let Ok(Some(info)) = server.store.refresh_token_info(digest(token)).await
        && info.family.is_active(&info.presented, now, &server.config.refresh)
        && server.directory.subject_registered(&info.grant().subject)
    {
        answer = IntrospectionResponse {
            active: true,
            scope: Some(info.grant().scope.to_string()),
            client_id: Some(info.grant().client_id.clone()),
            username: Some(info.grant().subject.clone()),
            exp: info.presented.expires_at,
            iat: Some(info.issued_at),
            sub: Some(info.grant().subject.clone()),
            iss: Some(server.config.issuer.clone()),
            // RFC 7662 §2.2: `token_type` is a token type of RFC 6749 §7.1 / §5.1 (how an
            // access token is presented to a resource server, e.g. `Bearer`), OPTIONAL.
            // A refresh token is never presented to a resource server, so it has no such
            // type: the member is left out. `refresh_token` is an RFC 7009 §2.1
            // `token_type_hint` value, another vocabulary.
            token_type: None,
            // RFC 9449 §5: the key a bound refresh token needs (as RFC 9449 §6.2 for access tokens).
            cnf: info.grant().dpop_jkt.clone().map(|jkt| figure2_protocol::dpop::Confirmation { jkt: Some(jkt) }),
            ..IntrospectionResponse::default()
        };
    }
    tracing::debug!(client_id = %client.client_id, active = answer.active, token = fingerprint(token), "introspection");
    figure2_http::json(200, &answer, &NO_STORE_HEADERS)
}
