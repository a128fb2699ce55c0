//! RFC 6749 §4.1: the authorization code grant, the usual way to obtain the
//! "Authorization Grant" that the client presents in step A.
//!
//! 1. The client sends the resource owner's browser to the authorization endpoint
//!    (§4.1.1), the owner logs in and consents.
//! 2. The server redirects back with a short-lived, single-use `code` (§4.1.2).
//! 3. The client presents the code at the token endpoint (§4.1.3): this is step A, and
//!    the answer is step B.

use crate::client_auth::{GrantType, RegisteredClient};
use crate::clock::UnixTime;
use crate::error::{ErrorCode, ErrorResponse};
use crate::form::FormParams;
use crate::pkce::{self, CodeVerifier};
use crate::scope::Scope;

/// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED."
/// We use one minute: the code only has to survive one redirect.
pub const AUTHORIZATION_CODE_LIFETIME: u64 = 60;

/// The single-valued parameters of a §4.1.1 authorization request (with RFC 7636 §4.3's
/// PKCE parameters). Others are ignored (§3.1).
pub const AUTHORIZATION_REQUEST_PARAMETERS: [&str; 7] =
    ["response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method"];

/// §4.1.2.1: error codes of the authorization endpoint (sent back on the redirect).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
}

impl AuthorizationErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
        }
    }
}

/// Why an authorization request failed, and where the answer may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationRequestError {
    /// §4.1.2.1: with a missing, invalid or mismatching redirection URI or client
    /// identifier the server "MUST NOT automatically redirect the user-agent"; it tells
    /// the resource owner instead.
    ShowToResourceOwner(String),
    /// Every other error goes back to the client on its redirection URI.
    Redirect { redirect_uri: String, error: AuthorizationErrorCode, description: String, state: Option<String> },
}

/// A validated §4.1.1 authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: String,
    /// The URI to redirect to (the registered one if the request named none).
    pub redirect_uri: String,
    /// Whether the request carried `redirect_uri`: then the token request must repeat it
    /// (§4.1.3).
    pub redirect_uri_in_request: bool,
    pub scope: Scope,
    pub state: Option<String>,
    /// RFC 7636 S256 challenge.
    pub code_challenge: Option<String>,
}

impl AuthorizationRequest {
    /// Validates the query of `GET /authorize` against the registered client.
    pub fn validate(
        query: &FormParams,
        lookup: impl FnOnce(&str) -> Option<RegisteredClient>,
    ) -> Result<Self, AuthorizationRequestError> {
        use AuthorizationRequestError::ShowToResourceOwner as Show;
        // §3.1: "Request and response parameters MUST NOT be included more than once."
        // With the client or its redirection URI in doubt, nothing may be redirected.
        if let Err(e) = query.refuse_repeated(&["client_id", "redirect_uri"]) {
            return Err(Show(e.error_description.unwrap_or_default()));
        }
        let client_id = query.get("client_id").ok_or_else(|| Show("the request has no client_id".into()))?;
        let client = lookup(client_id).ok_or_else(|| Show(format!("unknown client_id {client_id:?}")))?;
        // RFC 9700 §2.1 / §4.1.3: redirect URIs are compared by exact string match.
        let (redirect_uri, in_request) = match query.get("redirect_uri") {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => (uri.to_owned(), true),
            Some(_) => return Err(Show("redirect_uri is not registered for this client".into())),
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => return Err(Show("redirect_uri is required: the client registered several or none".into())),
            },
        };
        let state = query.get("state").map(str::to_owned);
        let redirect = |error, description: &str| AuthorizationRequestError::Redirect {
            redirect_uri: redirect_uri.clone(),
            error,
            description: description.to_owned(),
            state: state.clone(),
        };
        // §4.1.2.1 invalid_request: "includes a parameter more than once".
        if let Err(e) = query.refuse_repeated(&AUTHORIZATION_REQUEST_PARAMETERS) {
            return Err(redirect(AuthorizationErrorCode::InvalidRequest, e.error_description.as_deref().unwrap_or("")));
        }
        match query.get("response_type") {
            Some("code") => {}
            Some(_) => {
                return Err(redirect(
                    AuthorizationErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                ));
            }
            None => return Err(redirect(AuthorizationErrorCode::InvalidRequest, "missing response_type")),
        }
        if client.check_grant_type(GrantType::AuthorizationCode).is_err() {
            return Err(redirect(
                AuthorizationErrorCode::UnauthorizedClient,
                "client may not use the authorization code grant",
            ));
        }
        // RFC 6749 §3.3: omitted scope means the client's default scope.
        let scope = match query.get("scope") {
            Some(s) => Scope::parse(s).map_err(|e| redirect(AuthorizationErrorCode::InvalidScope, &e.to_string()))?,
            None => client.scope.clone(),
        };
        if !scope.is_subset_of(&client.scope) {
            return Err(redirect(AuthorizationErrorCode::InvalidScope, "scope exceeds what the client may request"));
        }
        let code_challenge = match query.get("code_challenge") {
            Some(c) => Some(
                pkce::parse_challenge(c, query.get("code_challenge_method"))
                    .map_err(|e| redirect(AuthorizationErrorCode::InvalidRequest, &e.to_string()))?,
            ),
            // RFC 9700 §2.1.1: public clients MUST use PKCE.
            None if !client.is_confidential() => {
                return Err(redirect(
                    AuthorizationErrorCode::InvalidRequest,
                    "public clients must send a PKCE code_challenge",
                ));
            }
            None => None,
        };
        Ok(Self {
            client_id: client.client_id,
            redirect_uri,
            redirect_uri_in_request: in_request,
            scope,
            state,
            code_challenge,
        })
    }
}

/// §4.1.2: the redirect carrying the code, with `state` echoed and, per RFC 9207, `iss`.
pub fn success_redirect(redirect_uri: &str, code: &str, state: Option<&str>, issuer: &str) -> String {
    let query = crate::form::encode([("code", Some(code)), ("state", state), ("iss", Some(issuer))]);
    append_query(redirect_uri, &query)
}

/// §4.1.2.1: the redirect carrying an error.
pub fn error_redirect(
    redirect_uri: &str,
    error: AuthorizationErrorCode,
    description: &str,
    state: Option<&str>,
    issuer: &str,
) -> String {
    let query = crate::form::encode([
        ("error", Some(error.as_str())),
        ("error_description", Some(description)),
        ("state", state),
        ("iss", Some(issuer)),
    ]);
    append_query(redirect_uri, &query)
}

/// §3.1.2: the redirection URI "MAY include a query component, which MUST be retained".
fn append_query(uri: &str, query: &str) -> String {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{query}")
}

/// What the server remembers about an issued code (stored under the code's digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeGrant {
    pub client_id: String,
    /// The resource owner who consented.
    pub subject: String,
    pub scope: Scope,
    /// `Some` only if the authorization request carried `redirect_uri`.
    pub redirect_uri: Option<String>,
    pub code_challenge: Option<String>,
    pub expires_at: UnixTime,
}

/// Why a code was refused. All of these are `invalid_grant` on the wire (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeRejection {
    #[error("unknown authorization code")]
    Unknown,
    #[error("authorization code already used")]
    AlreadyUsed,
    #[error("authorization code expired")]
    Expired,
    #[error("authorization code was issued to another client")]
    IssuedToAnotherClient,
    #[error("redirect_uri does not match the authorization request")]
    RedirectUriMismatch,
    #[error("code_verifier missing or wrong (RFC 7636 §4.6)")]
    PkceFailed,
    #[error("code_verifier sent but the authorization request had no code_challenge (RFC 9700 §4.8.2)")]
    UnexpectedVerifier,
}

impl CodeRejection {
    pub fn to_error(self) -> ErrorResponse {
        ErrorResponse::new(ErrorCode::InvalidGrant, self.to_string())
    }
}

/// RFC 6749 §4.1.3: the checks on a presented code.
pub fn check_code(
    grant: &AuthorizationCodeGrant,
    client_id: &str,
    redirect_uri: Option<&str>,
    code_verifier: Option<&CodeVerifier>,
    now: UnixTime,
) -> Result<(), CodeRejection> {
    // "ensure that the authorization code was issued to the authenticated confidential
    // client, or if the client is public, ensure that the code was issued to client_id"
    if grant.client_id != client_id {
        return Err(CodeRejection::IssuedToAnotherClient);
    }
    if now >= grant.expires_at {
        return Err(CodeRejection::Expired);
    }
    // "ensure that the redirect_uri parameter is present if [it] was included in the
    // initial authorization request, and if included ensure that their values are identical"
    if let Some(expected) = &grant.redirect_uri
        && redirect_uri != Some(expected.as_str())
    {
        return Err(CodeRejection::RedirectUriMismatch);
    }
    match (&grant.code_challenge, code_verifier) {
        (Some(challenge), Some(verifier)) if pkce::verify(verifier, challenge) => Ok(()),
        (Some(_), _) => Err(CodeRejection::PkceFailed),
        (None, Some(_)) => Err(CodeRejection::UnexpectedVerifier),
        (None, None) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::digest;

    fn client(confidential: bool) -> RegisteredClient {
        RegisteredClient {
            client_id: "c".into(),
            secret_digest: confidential.then(|| digest("s")),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            scope: Scope::parse("read write").unwrap(),
        }
    }

    fn validate(q: &str, confidential: bool) -> Result<AuthorizationRequest, AuthorizationRequestError> {
        AuthorizationRequest::validate(&FormParams::parse(q.as_bytes()).unwrap(), |_| Some(client(confidential)))
    }

    const CHALLENGE: &str = "code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";

    #[test]
    fn valid_request_defaults_scope_and_redirect() {
        let r = validate(&format!("response_type=code&client_id=c&state=xyz&{CHALLENGE}"), false).unwrap();
        assert_eq!(r.redirect_uri, "http://127.0.0.1/cb");
        assert!(!r.redirect_uri_in_request);
        assert_eq!(r.scope.to_string(), "read write");
    }

    #[test]
    fn bad_redirect_uri_is_never_redirected_to() {
        let e = validate("response_type=code&client_id=c&redirect_uri=http://evil/cb", true).unwrap_err();
        assert!(matches!(e, AuthorizationRequestError::ShowToResourceOwner(_)));
    }

    #[test]
    fn errors_redirect_with_state() {
        let e = validate("response_type=token&client_id=c&state=s1", true).unwrap_err();
        assert_eq!(
            e,
            AuthorizationRequestError::Redirect {
                redirect_uri: "http://127.0.0.1/cb".into(),
                error: AuthorizationErrorCode::UnsupportedResponseType,
                description: "only response_type=code is supported".into(),
                state: Some("s1".into())
            }
        );
        assert!(matches!(
            validate("response_type=code&client_id=c&scope=admin", true).unwrap_err(),
            AuthorizationRequestError::Redirect { error: AuthorizationErrorCode::InvalidScope, .. }
        ));
        // Public client without PKCE.
        assert!(matches!(
            validate("response_type=code&client_id=c", false).unwrap_err(),
            AuthorizationRequestError::Redirect { error: AuthorizationErrorCode::InvalidRequest, .. }
        ));
    }

    #[test]
    fn repeated_parameters() {
        // §3.1: client_id or redirect_uri twice: never redirected.
        assert!(matches!(
            validate("response_type=code&client_id=c&client_id=c", true).unwrap_err(),
            AuthorizationRequestError::ShowToResourceOwner(_)
        ));
        assert!(matches!(
            validate(
                "response_type=code&client_id=c&redirect_uri=http://127.0.0.1/cb&redirect_uri=http://127.0.0.1/cb",
                true
            )
            .unwrap_err(),
            AuthorizationRequestError::ShowToResourceOwner(_)
        ));
        // Another defined parameter twice: invalid_request on the redirect.
        assert!(matches!(
            validate("response_type=code&client_id=c&scope=read&scope=write", true).unwrap_err(),
            AuthorizationRequestError::Redirect { error: AuthorizationErrorCode::InvalidRequest, .. }
        ));
        // Unrecognized parameters are ignored, repeated or not (RFC 8707 resource too).
        assert!(validate("response_type=code&client_id=c&x=1&x=2&resource=a&resource=b", true).is_ok());
    }

    #[test]
    fn redirects_keep_existing_query() {
        assert_eq!(
            success_redirect("https://c.example/cb?x=1", "abc", Some("s"), "https://as"),
            "https://c.example/cb?x=1&code=abc&state=s&iss=https%3A%2F%2Fas"
        );
    }

    #[test]
    fn code_checks() {
        let verifier = CodeVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        let grant = AuthorizationCodeGrant {
            client_id: "c".into(),
            subject: "alice".into(),
            scope: Scope::parse("read").unwrap(),
            redirect_uri: Some("http://127.0.0.1/cb".into()),
            code_challenge: Some(verifier.s256_challenge()),
            expires_at: 100,
        };
        let uri = Some("http://127.0.0.1/cb");
        assert_eq!(check_code(&grant, "c", uri, Some(&verifier), 99), Ok(()));
        assert_eq!(check_code(&grant, "c", uri, Some(&verifier), 100), Err(CodeRejection::Expired));
        assert_eq!(check_code(&grant, "d", uri, Some(&verifier), 0), Err(CodeRejection::IssuedToAnotherClient));
        assert_eq!(check_code(&grant, "c", None, Some(&verifier), 0), Err(CodeRejection::RedirectUriMismatch));
        assert_eq!(check_code(&grant, "c", uri, None, 0), Err(CodeRejection::PkceFailed));
        let no_pkce = AuthorizationCodeGrant { code_challenge: None, ..grant };
        assert_eq!(check_code(&no_pkce, "c", uri, Some(&verifier), 0), Err(CodeRejection::UnexpectedVerifier));
    }
}
