//! RFC 7009: token revocation. Revoking a refresh token ends its family, so the client
//! must start again at step A.

use crate::error::ErrorResponse;
use crate::form::FormParams;
use crate::secret::Secret;

/// RFC 7009 §2.1 `token_type_hint`, and RFC 7662 §2.1 uses the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenTypeHint {
    AccessToken,
    RefreshToken,
}

/// A revocation (RFC 7009 §2.1) or introspection (RFC 7662 §2.1) request: `token` and
/// an optional hint.
#[derive(Debug, Clone)]
pub struct TokenLookupRequest {
    pub token: Secret,
    /// An unknown hint is ignored: "If the server is unable to locate the token using the
    /// given hint, it MUST extend its search across all of its supported token types."
    pub token_type_hint: Option<TokenTypeHint>,
}

impl TokenLookupRequest {
    /// RFC 7009 §2.1, RFC 7662 §2.1 (and RFC 6749 §3.2's once-only rule for the
    /// parameters they define): `token` and `token_type_hint` may come once; anything
    /// else is ignored.
    pub fn from_form(form: &FormParams) -> Result<Self, ErrorResponse> {
        form.refuse_repeated(&["token", "token_type_hint"])?;
        let token = Secret::new(form.required("token")?);
        let token_type_hint = match form.get("token_type_hint") {
            Some("access_token") => Some(TokenTypeHint::AccessToken),
            Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
            _ => None,
        };
        Ok(Self { token, token_type_hint })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7009_2_1_example() {
        let form = FormParams::parse(b"token=45ghiukldjahdnhzdauz&token_type_hint=refresh_token").unwrap();
        let r = TokenLookupRequest::from_form(&form).unwrap();
        assert!(r.token.ct_eq("45ghiukldjahdnhzdauz"));
        assert_eq!(r.token_type_hint, Some(TokenTypeHint::RefreshToken));
        let form = FormParams::parse(b"token=x&token_type_hint=weird").unwrap();
        assert_eq!(TokenLookupRequest::from_form(&form).unwrap().token_type_hint, None);
        assert!(TokenLookupRequest::from_form(&FormParams::default()).is_err());
        let form = FormParams::parse(b"token=a&token=b").unwrap();
        assert_eq!(TokenLookupRequest::from_form(&form).unwrap_err().error, crate::ErrorCode::InvalidRequest);
        // Parameters the endpoint does not define are ignored, repeated or not.
        let form = FormParams::parse(b"token=a&x=1&x=2&audience=a&audience=b").unwrap();
        assert!(TokenLookupRequest::from_form(&form).unwrap().token.ct_eq("a"));
    }
}
