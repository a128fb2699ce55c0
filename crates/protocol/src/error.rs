//! RFC 6749 §5.2: the error response of the token endpoint (steps B and H when they fail).

use serde::{Deserialize, Serialize};

/// The error codes of RFC 6749 §5.2 (plus §4.1.2.1's `server_error`, used when the
/// server itself fails). Each variant's doc is the RFC's definition in brief.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Missing, repeated or malformed parameter, unsupported parameter value, more than
    /// one credential or authentication mechanism, or otherwise malformed.
    InvalidRequest,
    /// Client authentication failed (unknown client, no authentication, unsupported method).
    InvalidClient,
    /// The grant or refresh token is invalid, expired, revoked, does not match the
    /// redirection URI, or was issued to another client.
    InvalidGrant,
    /// The authenticated client may not use this grant type.
    UnauthorizedClient,
    /// The grant type is not supported by the authorization server.
    UnsupportedGrantType,
    /// The requested scope is invalid, unknown, malformed, or exceeds what was granted.
    InvalidScope,
    /// RFC 7009 §2.2.1: the server does not support revoking this token type.
    UnsupportedTokenType,
    /// The server met an unexpected condition (RFC 6749 §4.1.2.1).
    ServerError,
    /// RFC 9449 §5, §12.3: the DPoP proof is invalid.
    InvalidDpopProof,
    /// RFC 9449 §8, §12.3: the authorization server requires a nonce in the DPoP proof;
    /// the answer carries a fresh one in `DPoP-Nonce`.
    UseDpopNonce,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::ServerError => "server_error",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// RFC 6749 §5.2: "400 (Bad Request) unless specified otherwise"; `invalid_client`
    /// MAY be 401, and MUST be 401 when the client tried the `Authorization` header.
    /// We answer 401 for every `invalid_client` (see [`ErrorResponse::www_authenticate`]).
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidClient => 401,
            Self::ServerError => 500,
            _ => 400,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 6749 §5.2 error response body (`application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_uri: Option<String>,
}

impl ErrorResponse {
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        let description: String = description.into();
        Self {
            error,
            // RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
            error_description: Some(description.chars().filter(|c| is_error_text_char(*c)).collect()),
            error_uri: None,
        }
    }

    pub fn http_status(&self) -> u16 {
        self.error.http_status()
    }

    /// RFC 6749 §5.2: for `invalid_client` the server MUST answer 401 with a
    /// `WWW-Authenticate` header matching the scheme the client used. We offer Basic,
    /// the scheme every client must be able to use (§2.3.1).
    pub fn www_authenticate(&self, realm: &str) -> Option<String> {
        (self.error == ErrorCode::InvalidClient)
            .then(|| format!("Basic realm=\"{}\"", crate::syntax::escape_quoted(realm)))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| r#"{"error":"server_error"}"#.to_owned())
    }
}

impl std::fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error_description {
            Some(d) => write!(f, "{}: {d}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for ErrorResponse {}

/// RFC 6749 §5.2 (and Appendix A.7): the characters allowed in `error_description`.
pub fn is_error_text_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6749_5_2_example_round_trips() {
        // RFC 6749 §5.2 example body.
        let body = r#"{"error":"invalid_request"}"#;
        let parsed: ErrorResponse = serde_json::from_str(body).unwrap();
        assert_eq!(parsed.error, ErrorCode::InvalidRequest);
        assert_eq!(parsed.to_json(), body);
    }

    #[test]
    fn statuses() {
        assert_eq!(ErrorCode::InvalidGrant.http_status(), 400);
        assert_eq!(ErrorCode::InvalidClient.http_status(), 401);
        assert_eq!(ErrorCode::InvalidScope.http_status(), 400);
    }

    #[test]
    fn description_drops_forbidden_characters() {
        let e = ErrorResponse::new(ErrorCode::InvalidGrant, "bad \"token\" \\ é");
        assert_eq!(e.error_description.as_deref(), Some("bad token  "));
    }

    #[test]
    fn invalid_client_gets_basic_challenge() {
        let e = ErrorResponse::new(ErrorCode::InvalidClient, "x");
        assert_eq!(e.www_authenticate("figure2").as_deref(), Some("Basic realm=\"figure2\""));
        assert!(ErrorResponse::new(ErrorCode::InvalidGrant, "x").www_authenticate("r").is_none());
    }
}
