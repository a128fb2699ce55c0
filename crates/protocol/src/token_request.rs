//! RFC 6749 §4.1.3, §4.3.2, §4.4.2 and §6: the access token request, step A (presenting
//! an authorization grant) and step G (presenting the refresh token).
//!
//! ```text
//! POST /token HTTP/1.1
//! Authorization: Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW
//! Content-Type: application/x-www-form-urlencoded
//!
//! grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA
//! ```

use crate::client_auth::GrantType;
use crate::error::{ErrorCode, ErrorResponse};
use crate::form::FormParams;
use crate::pkce::CodeVerifier;
use crate::scope::Scope;
use crate::secret::{AuthorizationCode, RefreshToken, Secret};

/// A token request, one variant per grant type.
#[derive(Debug, Clone)]
pub enum TokenRequest {
    /// §4.1.3, with the RFC 7636 §4.5 `code_verifier`.
    AuthorizationCode { code: AuthorizationCode, redirect_uri: Option<String>, code_verifier: Option<CodeVerifier> },
    /// §4.3.2 (legacy; RFC 9700 §2.4).
    Password { username: String, password: Secret, scope: Option<Scope> },
    /// §4.4.2.
    ClientCredentials { scope: Option<Scope> },
    /// §6, step G.
    RefreshToken(RefreshTokenRequest),
}

/// RFC 6749 §6: `grant_type=refresh_token`, the `refresh_token`, and an optional `scope`
/// that is "equal or lesser" than the one originally granted.
#[derive(Debug, Clone)]
pub struct RefreshTokenRequest {
    pub refresh_token: RefreshToken,
    pub scope: Option<Scope>,
}

impl TokenRequest {
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::Password { .. } => GrantType::Password,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::RefreshToken(_) => GrantType::RefreshToken,
        }
    }

    /// Parses the grant-specific parameters of a token request body.
    ///
    /// RFC 6749 §3.2: each parameter the grant type defines may come once (a repeat is
    /// `invalid_request`); any other parameter is ignored, repeated or not, and RFC 8707
    /// `resource` is multi-valued by design. Client authentication parameters are
    /// [`crate::client_auth::ClientAuthentication::from_request`]'s.
    pub fn from_form(form: &FormParams) -> Result<Self, ErrorResponse> {
        form.refuse_repeated(&["grant_type"])?;
        let grant_type = form.required("grant_type")?;
        form.refuse_repeated(Self::parameters(grant_type))?;
        match grant_type {
            "authorization_code" => Ok(Self::AuthorizationCode {
                code: AuthorizationCode::new(form.required("code")?),
                redirect_uri: form.get("redirect_uri").map(str::to_owned),
                code_verifier: form
                    .get("code_verifier")
                    .map(|v| {
                        CodeVerifier::parse(v).map_err(|e| ErrorResponse::new(ErrorCode::InvalidRequest, e.to_string()))
                    })
                    .transpose()?,
            }),
            "password" => Ok(Self::Password {
                username: form.required("username")?.to_owned(),
                password: Secret::new(form.required("password")?),
                scope: parse_scope(form)?,
            }),
            "client_credentials" => Ok(Self::ClientCredentials { scope: parse_scope(form)? }),
            "refresh_token" => Ok(Self::RefreshToken(RefreshTokenRequest {
                refresh_token: RefreshToken::new(form.required("refresh_token")?),
                scope: parse_scope(form)?,
            })),
            _ => Err(ErrorResponse::new(ErrorCode::UnsupportedGrantType, "grant_type is not supported")),
        }
    }

    /// The single-valued parameters of a token request of `grant_type` (§4.1.3, §4.3.2,
    /// §4.4.2, §6; `code_verifier` from RFC 7636 §4.5), `grant_type` included.
    pub fn parameters(grant_type: &str) -> &'static [&'static str] {
        match grant_type {
            "authorization_code" => &["grant_type", "code", "redirect_uri", "code_verifier"],
            "password" => &["grant_type", "username", "password", "scope"],
            "client_credentials" => &["grant_type", "scope"],
            "refresh_token" => &["grant_type", "refresh_token", "scope"],
            _ => &["grant_type"],
        }
    }

    /// The form body a client sends (client authentication goes separately, see
    /// [`crate::client_auth::ClientAuthentication::basic_header_value`]).
    pub fn to_form(&self) -> String {
        match self {
            Self::AuthorizationCode { code, redirect_uri, code_verifier } => crate::form::encode([
                ("grant_type", Some("authorization_code")),
                ("code", Some(code.expose())),
                ("redirect_uri", redirect_uri.as_deref()),
                ("code_verifier", code_verifier.as_ref().map(CodeVerifier::as_str)),
            ]),
            Self::Password { username, password, scope } => {
                let scope = scope.as_ref().map(Scope::to_string);
                crate::form::encode([
                    ("grant_type", Some("password")),
                    ("username", Some(username.as_str())),
                    ("password", Some(password.expose())),
                    ("scope", scope.as_deref()),
                ])
            }
            Self::ClientCredentials { scope } => {
                let scope = scope.as_ref().map(Scope::to_string);
                crate::form::encode([("grant_type", Some("client_credentials")), ("scope", scope.as_deref())])
            }
            Self::RefreshToken(r) => {
                let scope = r.scope.as_ref().map(Scope::to_string);
                crate::form::encode([
                    ("grant_type", Some("refresh_token")),
                    ("refresh_token", Some(r.refresh_token.expose())),
                    ("scope", scope.as_deref()),
                ])
            }
        }
    }
}

/// §3.3 / §5.2: a malformed scope is `invalid_scope`.
fn parse_scope(form: &FormParams) -> Result<Option<Scope>, ErrorResponse> {
    form.get("scope")
        .map(|s| Scope::parse(s).map_err(|e| ErrorResponse::new(ErrorCode::InvalidScope, e.to_string())))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<TokenRequest, ErrorResponse> {
        TokenRequest::from_form(&FormParams::parse(body.as_bytes())?)
    }

    #[test]
    fn rfc6749_6_example_refresh_request() {
        // RFC 6749 §6 example body.
        let req = parse("grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA").unwrap();
        match &req {
            TokenRequest::RefreshToken(r) => {
                assert!(r.refresh_token.ct_eq("tGzv3JOkF0XG5Qx2TlKWIA"));
                assert!(r.scope.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(req.to_form(), "grant_type=refresh_token&refresh_token=tGzv3JOkF0XG5Qx2TlKWIA");
    }

    #[test]
    fn rfc6749_4_1_3_example_code_request() {
        let req = parse("grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri=https%3A%2F%2Fclient%2Eexample%2Ecom%2Fcb").unwrap();
        match req {
            TokenRequest::AuthorizationCode { redirect_uri, .. } => {
                assert_eq!(redirect_uri.as_deref(), Some("https://client.example.com/cb"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rfc6749_4_3_2_example_password_request() {
        let req = parse("grant_type=password&username=johndoe&password=A3ddj3w").unwrap();
        assert_eq!(req.grant_type(), GrantType::Password);
    }

    #[test]
    fn repeats_refused_only_for_the_grant_types_own_parameters() {
        // RFC 6749 §3.2: the once-only rule is about the request's own parameters.
        let repeated = |body: &str| parse(body).unwrap_err().error_description.unwrap_or_default();
        assert_eq!(
            repeated("grant_type=refresh_token&refresh_token=a&refresh_token=b"),
            "parameter refresh_token is repeated"
        );
        assert_eq!(
            repeated("grant_type=password&grant_type=password&username=u&password=p"),
            "parameter grant_type is repeated"
        );
        assert_eq!(repeated("grant_type=client_credentials&scope=a&scope=b"), "parameter scope is repeated");
        assert_eq!(
            repeated(
                "grant_type=authorization_code&code=c&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk&code=d"
            ),
            "parameter code is repeated"
        );
        // Unrecognized parameters are ignored; RFC 8707 resource is multi-valued.
        for ok in [
            "grant_type=client_credentials&resource=https%3A%2F%2Fa.example%2F&resource=https%3A%2F%2Fb.example%2F",
            "grant_type=refresh_token&refresh_token=a&audience=x&audience=y&x=1&x=2",
            // `code` is not a parameter of the refresh grant: ignored even when repeated.
            "grant_type=refresh_token&refresh_token=a&code=1&code=2",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(parse("refresh_token=x").unwrap_err().error, ErrorCode::InvalidRequest);
        assert_eq!(parse("grant_type=implicit").unwrap_err().error, ErrorCode::UnsupportedGrantType);
        assert_eq!(parse("grant_type=refresh_token").unwrap_err().error, ErrorCode::InvalidRequest);
        assert_eq!(
            parse("grant_type=refresh_token&refresh_token=a&scope=a%20%20b").unwrap_err().error,
            ErrorCode::InvalidScope
        );
        assert_eq!(parse("grant_type=password&username=u").unwrap_err().error, ErrorCode::InvalidRequest);
        assert_eq!(
            parse("grant_type=authorization_code&code=c&code_verifier=short").unwrap_err().error,
            ErrorCode::InvalidRequest
        );
    }
}
