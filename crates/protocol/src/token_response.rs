//! RFC 6749 §5.1: the successful access token response, step B (access token and refresh
//! token) and step H (access token and, optionally, a new refresh token).

use crate::scope::Scope;
use crate::secret::{AccessToken, RefreshToken};
use serde::{Deserialize, Serialize};

/// RFC 6749 §5.1: the token endpoint "MUST include the HTTP Cache-Control response header
/// field with a value of no-store" and the Pragma response header field with "no-cache".
pub const NO_STORE_HEADERS: [(&str, &str); 2] = [("cache-control", "no-store"), ("pragma", "no-cache")];

/// The token type of RFC 6750 (§5.1 `token_type` is case-insensitive).
pub const BEARER: &str = "Bearer";

/// Tokens are [`AccessToken`] and [`RefreshToken`]: `Debug` never prints them, and the
/// type has no `==`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessTokenResponse {
    pub access_token: AccessToken,
    pub token_type: String,
    /// RECOMMENDED: lifetime in seconds of the access token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub expires_in: Option<u64>,
    /// OPTIONAL: present in step B, and in step H when the server rotates.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub refresh_token: Option<RefreshToken>,
    /// OPTIONAL if identical to the scope requested; REQUIRED otherwise (§5.1). We always
    /// send it, which is allowed and spares the client a guess.
    #[serde(skip_serializing_if = "Option::is_none", default, deserialize_with = "lenient_scope")]
    pub scope: Option<Scope>,
    /// OpenID Connect Core §3.1.3.3: the ID Token, when `openid` was granted (§12.2: also
    /// on refresh). Absent in plain OAuth 2.0.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id_token: Option<String>,
}

impl AccessTokenResponse {
    /// RFC 6750 §4: the type is "Bearer", compared case-insensitively (§5.1).
    pub fn is_bearer(&self) -> bool {
        self.token_type.eq_ignore_ascii_case(BEARER)
    }

    /// RFC 9449 §5: a DPoP-bound access token has the type "DPoP" (case-insensitive).
    pub fn is_dpop(&self) -> bool {
        self.token_type.eq_ignore_ascii_case(crate::dpop::TOKEN_TYPE)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Some servers send `"scope": ""` or `null`; read both as absent.
fn lenient_scope<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Scope>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => Scope::parse(s).map(Some).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_5_1_example_parses() {
        let body = r#"{
          "access_token":"2YotnFZFEjr1zCsicMWpAA",
          "token_type":"example",
          "expires_in":3600,
          "refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA",
          "example_parameter":"example_value"
        }"#;
        let r: AccessTokenResponse = serde_json::from_str(body).unwrap();
        assert_eq!(r.expires_in, Some(3600));
        assert_eq!(r.refresh_token.as_ref().map(RefreshToken::expose), Some("tGzv3JOkF0XG5Qx2TlKWIA"));
        assert_eq!(r.access_token.expose(), "2YotnFZFEjr1zCsicMWpAA");
        assert!(!r.is_bearer());
    }

    #[test]
    fn bearer_is_case_insensitive_and_optional_fields_are_omitted() {
        let r = AccessTokenResponse {
            access_token: AccessToken::new("a"),
            token_type: "bearer".into(),
            expires_in: None,
            refresh_token: None,
            scope: None,
            id_token: None,
        };
        assert!(r.is_bearer());
        assert_eq!(r.to_json(), r#"{"access_token":"a","token_type":"bearer"}"#);
    }
}
