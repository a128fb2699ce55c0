//! RFC 7662: token introspection, for resource servers that would rather ask than
//! validate a JWT locally, and for looking at a refresh token's state.

use crate::clock::UnixTime;
use serde::{Deserialize, Serialize};

/// RFC 7662 §2.2 response. For any token that is not active, only `{"active": false}`
/// is sent: the server "SHOULD NOT include any additional information".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectionResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub exp: Option<UnixTime>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iat: Option<UnixTime>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub jti: Option<String>,
    /// RFC 9449 §6.2: the key a DPoP-bound access token is bound to (`{"jkt": …}`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub cnf: Option<crate::dpop::Confirmation>,
}

impl IntrospectionResponse {
    pub fn inactive() -> Self {
        Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inactive_says_nothing_else() {
        assert_eq!(serde_json::to_string(&IntrospectionResponse::inactive()).unwrap(), r#"{"active":false}"#);
    }
}
