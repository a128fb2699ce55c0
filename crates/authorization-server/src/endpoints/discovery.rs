//! How the other roles find and trust the authorization server before step A:
//! `GET /.well-known/oauth-authorization-server` (RFC 8414 §3) and the JWK Set at
//! `jwks_uri` (RFC 7517 §5), which the resource server uses to verify access tokens.

use crate::AuthorizationServer;
use figure2_http::HttpResponse;
use figure2_protocol::metadata::AuthorizationServerMetadata;
use serde_json::json;

impl AuthorizationServer {
    /// RFC 8414 §2: what this server supports, every endpoint under the issuer.
    pub fn metadata(&self) -> AuthorizationServerMetadata {
        let issuer = &self.config.issuer;
        let auth_methods = || Some(vec!["client_secret_basic".into(), "client_secret_post".into(), "none".into()]);
        AuthorizationServerMetadata {
            issuer: issuer.clone(),
            authorization_endpoint: Some(format!("{issuer}/authorize")),
            token_endpoint: Some(format!("{issuer}/token")),
            jwks_uri: Some(format!("{issuer}/jwks.json")),
            scopes_supported: Some(self.config.scopes_supported()),
            response_types_supported: vec!["code".into()],
            grant_types_supported: Some(
                ["authorization_code", "password", "client_credentials", "refresh_token"].map(String::from).to_vec(),
            ),
            token_endpoint_auth_methods_supported: auth_methods(),
            revocation_endpoint: Some(format!("{issuer}/revoke")),
            revocation_endpoint_auth_methods_supported: auth_methods(),
            introspection_endpoint: Some(format!("{issuer}/introspect")),
            introspection_endpoint_auth_methods_supported: Some(vec![
                "client_secret_basic".into(),
                "client_secret_post".into(),
            ]),
            code_challenge_methods_supported: Some(vec!["S256".into()]),
            authorization_response_iss_parameter_supported: Some(true),
            // RFC 9449 §5.1.
            dpop_signing_alg_values_supported: Some(figure2_protocol::dpop::algorithm_names(
                &figure2_protocol::dpop::SUPPORTED_ALGORITHMS,
            )),
        }
    }

    /// RFC 7517 §5: every published key, the signing one last.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self.published_keys().iter().map(|k| k.public_jwk().clone()).collect();
        json!({ "keys": keys })
    }
}

fn only_get(method: &http::Method) -> Option<HttpResponse> {
    (method != http::Method::GET && method != http::Method::HEAD)
        .then(|| figure2_http::json(405, &json!({"error": "method_not_allowed"}), &[("allow", "GET, HEAD")]))
}

pub fn metadata(server: &AuthorizationServer, method: &http::Method) -> HttpResponse {
    only_get(method).unwrap_or_else(|| figure2_http::json(200, &server.metadata(), &[("cache-control", "max-age=60")]))
}

pub fn jwks(server: &AuthorizationServer, method: &http::Method) -> HttpResponse {
    // Short caching: resource servers re-fetch on an unknown kid anyway.
    only_get(method).unwrap_or_else(|| figure2_http::json(200, &server.jwks(), &[("cache-control", "max-age=60")]))
}
