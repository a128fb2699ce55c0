//! RFC 8414: authorization server metadata, how the client and the resource server find
//! the token endpoint and the signing keys before Figure 2 starts.

use serde::{Deserialize, Serialize};

/// RFC 8414 §3: the well-known suffix.
pub const WELL_KNOWN_SUFFIX: &str = "/.well-known/oauth-authorization-server";

/// RFC 8414 §2 metadata. Optional members are omitted when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationServerMetadata {
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authorization_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jwks_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scopes_supported: Option<Vec<String>>,
    /// REQUIRED by §2.
    #[serde(default)]
    pub response_types_supported: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grant_types_supported: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revocation_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207 §3: the server sends `iss` in authorization responses.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// RFC 9449 §5.1: the JWS algorithms the server accepts for DPoP proofs.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

/// RFC 8414 §3.1: the metadata URL is formed "by inserting a well-known URI string into
/// the authorization server's issuer identifier between the host component and the path
/// component, if any": `https://as.example/tenant` → `https://as.example/.well-known/oauth-authorization-server/tenant`.
pub fn metadata_url(issuer: &str) -> Option<String> {
    let (scheme, rest) = issuer.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let path = path.trim_end_matches('/');
    Some(format!("{scheme}://{authority}{WELL_KNOWN_SUFFIX}{path}"))
}

/// OpenID Connect Discovery 1.0 §4: the provider configuration is at the issuer with
/// `/.well-known/openid-configuration` appended (after its path, unlike RFC 8414 §3.1),
/// which RFC 8414 §5 keeps for compatibility. Servers that publish only this document
/// (oidc-provider) are still described by the same metadata fields.
pub fn openid_configuration_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata issuer {found:?} is not the issuer it was fetched for {expected:?} (RFC 8414 §3.3)")]
    IssuerMismatch { expected: String, found: String },
    #[error("metadata lacks {0}")]
    Missing(&'static str),
}

impl AuthorizationServerMetadata {
    /// RFC 8414 §3.3: "The issuer value returned MUST be identical to the authorization
    /// server's issuer identifier value into which the well-known URI string was inserted".
    pub fn validate_for_issuer(&self, expected_issuer: &str) -> Result<(), MetadataError> {
        if self.issuer != expected_issuer {
            return Err(MetadataError::IssuerMismatch {
                expected: expected_issuer.to_owned(),
                found: self.issuer.clone(),
            });
        }
        Ok(())
    }

    pub fn token_endpoint(&self) -> Result<&str, MetadataError> {
        self.token_endpoint.as_deref().ok_or(MetadataError::Missing("token_endpoint"))
    }

    pub fn jwks_uri(&self) -> Result<&str, MetadataError> {
        self.jwks_uri.as_deref().ok_or(MetadataError::Missing("jwks_uri"))
    }

    /// §2: "If omitted, the default value is [authorization_code, implicit]".
    pub fn supports_grant(&self, grant: &str) -> bool {
        match &self.grant_types_supported {
            Some(list) => list.iter().any(|g| g == grant),
            None => grant == "authorization_code" || grant == "implicit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_3_1_urls() {
        assert_eq!(
            metadata_url("https://example.com").unwrap(),
            "https://example.com/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://example.com/issuer1").unwrap(),
            "https://example.com/.well-known/oauth-authorization-server/issuer1"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert!(metadata_url("no-scheme").is_none());
    }

    #[test]
    fn rfc8414_3_2_example_parses_and_issuer_must_match() {
        let body = r#"{
         "issuer": "https://server.example.com",
         "authorization_endpoint": "https://server.example.com/authorize",
         "token_endpoint": "https://server.example.com/token",
         "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
         "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256"],
         "userinfo_endpoint": "https://server.example.com/userinfo",
         "jwks_uri": "https://server.example.com/jwks.json",
         "registration_endpoint": "https://server.example.com/register",
         "scopes_supported": ["openid", "profile", "email", "address", "phone", "offline_access"],
         "response_types_supported": ["code", "code token"],
         "service_documentation": "http://server.example.com/service_documentation.html",
         "ui_locales_supported": ["en-US", "en-GB", "en-CA", "fr-FR", "fr-CA"]
        }"#;
        let m: AuthorizationServerMetadata = serde_json::from_str(body).unwrap();
        assert!(m.validate_for_issuer("https://server.example.com").is_ok());
        assert!(m.validate_for_issuer("https://server.example.com/").is_err());
        assert!(m.supports_grant("authorization_code"));
        assert!(!m.supports_grant("refresh_token"));
    }
}
