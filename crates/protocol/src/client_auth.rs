//! RFC 6749 §2.3.1: how the client authenticates to the token endpoint in steps A and G
//! ("The client authentication requirements are based on the client type and on the
//! authorization server policies", §1.5 (G)).

use crate::error::{ErrorCode, ErrorResponse};
use crate::form::FormParams;
use crate::scope::Scope;
use crate::secret::{ClientSecret, TokenDigest, verify_secret_digest};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// The credentials a request presented, before they are checked.
#[derive(Debug, Clone)]
pub enum ClientAuthentication {
    /// `Authorization: Basic` with the form-urlencoded id and secret (`client_secret_basic`).
    Basic { client_id: String, client_secret: ClientSecret },
    /// `client_id` and `client_secret` in the body (`client_secret_post`; the RFC says
    /// NOT RECOMMENDED, but servers MAY support it).
    Post { client_id: String, client_secret: ClientSecret },
    /// A public client names itself with `client_id` and has no secret (§2.1, §3.2.1).
    None { client_id: String },
    /// No client identification at all.
    Absent,
}

impl ClientAuthentication {
    pub fn client_id(&self) -> Option<&str> {
        match self {
            Self::Basic { client_id, .. } | Self::Post { client_id, .. } | Self::None { client_id } => Some(client_id),
            Self::Absent => None,
        }
    }

    /// Whether the client tried the `Authorization` header: then a failure MUST be a 401
    /// with `WWW-Authenticate` (§5.2 `invalid_client`).
    pub fn used_authorization_header(&self) -> bool {
        matches!(self, Self::Basic { .. })
    }

    /// Reads the client's credentials from the `Authorization` header and the form body.
    ///
    /// §2.3: "The client MUST NOT use more than one authentication method in each
    /// request", so Basic plus `client_secret` in the body is `invalid_request`.
    pub fn from_request(authorization: Option<&str>, form: &FormParams) -> Result<Self, ErrorResponse> {
        // §3.2: the credentials are parameters of every request that carries them.
        form.refuse_repeated(&["client_id", "client_secret"])?;
        let body_id = form.get("client_id");
        let body_secret = form.get("client_secret");
        if let Some(header) = authorization {
            let (client_id, client_secret) = parse_basic(header)?;
            if body_secret.is_some() {
                return Err(ErrorResponse::new(
                    ErrorCode::InvalidRequest,
                    "more than one client authentication method (Basic and client_secret)",
                ));
            }
            if body_id.is_some_and(|id| id != client_id) {
                return Err(ErrorResponse::new(
                    ErrorCode::InvalidRequest,
                    "client_id in the body does not match the Authorization header",
                ));
            }
            return Ok(Self::Basic { client_id, client_secret: ClientSecret::new(client_secret) });
        }
        match (body_id, body_secret) {
            (Some(id), Some(secret)) => {
                Ok(Self::Post { client_id: id.to_owned(), client_secret: ClientSecret::new(secret) })
            }
            (Some(id), None) => Ok(Self::None { client_id: id.to_owned() }),
            (None, Some(_)) => Err(ErrorResponse::new(ErrorCode::InvalidRequest, "client_secret without client_id")),
            (None, None) => Ok(Self::Absent),
        }
    }

    /// Builds the `Authorization: Basic` value for a client (§2.3.1: id and secret are
    /// form-urlencoded before base64).
    pub fn basic_header_value(client_id: &str, client_secret: &str) -> String {
        let user = crate::form::encode([("", Some(client_id))]);
        let pass = crate::form::encode([("", Some(client_secret))]);
        // encode() yields "=value"; drop the leading '='.
        let creds = format!("{}:{}", &user[1..], &pass[1..]);
        format!("Basic {}", STANDARD.encode(creds))
    }
}

/// Parses `Basic base64(urlencode(id) ":" urlencode(secret))`.
fn parse_basic(header: &str) -> Result<(String, String), ErrorResponse> {
    let fail = |why: &str| ErrorResponse::new(ErrorCode::InvalidClient, why);
    let (scheme, rest) = header.trim().split_once(' ').ok_or_else(|| fail("malformed Authorization header"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(fail("the token endpoint accepts Basic client authentication only"));
    }
    let decoded = STANDARD.decode(rest.trim()).map_err(|_| fail("Basic credentials are not base64"))?;
    let decoded = String::from_utf8(decoded).map_err(|_| fail("Basic credentials are not UTF-8"))?;
    let (id, secret) = decoded.split_once(':').ok_or_else(|| fail("Basic credentials lack ':'"))?;
    let id = form_decode(id).ok_or_else(|| fail("client_id is not form-urlencoded"))?;
    let secret = form_decode(secret).ok_or_else(|| fail("client_secret is not form-urlencoded"))?;
    if id.is_empty() {
        return Err(fail("empty client_id"));
    }
    Ok((id, secret))
}

fn form_decode(s: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={s}")).ok()?;
    match pairs.as_slice() {
        [(_, v)] => Some(v.clone()),
        [] => Some(String::new()),
        _ => None,
    }
}

/// RFC 7591 §2 `token_endpoint_auth_method` values Figure2 understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

/// RFC 6749 §1.3 / §4: the grant types, by their `grant_type` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    /// The resource owner password credentials grant (§4.3), the "User Credentials" grant
    /// of older docs. Legacy: RFC 9700 §2.4 says it MUST NOT be used.
    Password,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
        }
    }
}

/// A registered client (RFC 6749 §2): what the authorization server knows about it.
#[derive(Debug, Clone)]
pub struct RegisteredClient {
    pub client_id: String,
    /// SHA-256 of the secret of a confidential client; `None` for a public client.
    pub secret_digest: Option<TokenDigest>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// The most this client may ever be granted.
    pub scope: Scope,
}

impl RegisteredClient {
    pub fn is_confidential(&self) -> bool {
        self.secret_digest.is_some()
    }

    /// §5.2 `unauthorized_client`: "not authorized to use this authorization grant type".
    pub fn check_grant_type(&self, grant: GrantType) -> Result<(), ErrorResponse> {
        if self.grant_types.contains(&grant) {
            Ok(())
        } else {
            Err(ErrorResponse::new(
                ErrorCode::UnauthorizedClient,
                format!("client may not use grant_type {}", grant.as_str()),
            ))
        }
    }
}

/// Authenticates the presented credentials against the registered client.
///
/// §3.2.1: confidential clients MUST authenticate; a public client sends its `client_id`
/// only. Any failure is `invalid_client` (§5.2).
pub fn authenticate<'c>(
    presented: &ClientAuthentication,
    registered: Option<&'c RegisteredClient>,
) -> Result<&'c RegisteredClient, ErrorResponse> {
    let fail = |why: &str| ErrorResponse::new(ErrorCode::InvalidClient, why);
    let client = match (presented, registered) {
        (ClientAuthentication::Absent, _) => return Err(fail("no client authentication")),
        (_, None) => return Err(fail("client authentication failed")),
        (_, Some(client)) => client,
    };
    match (presented, &client.secret_digest) {
        (
            ClientAuthentication::Basic { client_secret, .. } | ClientAuthentication::Post { client_secret, .. },
            Some(digest),
        ) => {
            if verify_secret_digest(client_secret.expose(), digest) {
                Ok(client)
            } else {
                Err(fail("client authentication failed"))
            }
        }
        (ClientAuthentication::None { .. }, None) => Ok(client),
        (ClientAuthentication::None { .. }, Some(_)) => Err(fail("confidential client must authenticate")),
        (_, None) => Err(fail("public client has no secret to present")),
        (ClientAuthentication::Absent, Some(_)) => Err(fail("no client authentication")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::digest;

    fn confidential() -> RegisteredClient {
        RegisteredClient {
            client_id: "s6BhdRkqt3".into(),
            secret_digest: Some(digest("7Fjfp0ZBr1KtDRbnfVdmIw")),
            redirect_uris: vec![],
            grant_types: vec![GrantType::RefreshToken],
            scope: Scope::empty(),
        }
    }

    #[test]
    fn rfc6749_2_3_1_example_header() {
        // RFC 6749 §2.3.1 example.
        let h = ClientAuthentication::basic_header_value("s6BhdRkqt3", "gX1fBat3bV");
        assert_eq!(h, "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW");
        let form = FormParams::default();
        let parsed = ClientAuthentication::from_request(Some(&h), &form).unwrap();
        assert_eq!(parsed.client_id(), Some("s6BhdRkqt3"));
    }

    #[test]
    fn basic_values_are_form_urlencoded() {
        let h = ClientAuthentication::basic_header_value("id:with space", "p@ss:wörd");
        let parsed = ClientAuthentication::from_request(Some(&h), &FormParams::default()).unwrap();
        match parsed {
            ClientAuthentication::Basic { client_id, client_secret } => {
                assert_eq!(client_id, "id:with space");
                assert!(client_secret.ct_eq("p@ss:wörd"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn two_methods_is_invalid_request() {
        let h = ClientAuthentication::basic_header_value("a", "b");
        let form = FormParams::from_pairs([("client_id", "a"), ("client_secret", "b")]);
        let err = ClientAuthentication::from_request(Some(&h), &form).unwrap_err();
        assert_eq!(err.error, ErrorCode::InvalidRequest);
    }

    #[test]
    fn repeated_client_id_is_invalid_request() {
        let form = FormParams::parse(b"client_id=a&client_id=b").unwrap();
        assert_eq!(ClientAuthentication::from_request(None, &form).unwrap_err().error, ErrorCode::InvalidRequest);
    }

    #[test]
    fn mismatched_body_client_id_is_invalid_request() {
        let h = ClientAuthentication::basic_header_value("a", "b");
        let form = FormParams::from_pairs([("client_id", "c")]);
        assert_eq!(ClientAuthentication::from_request(Some(&h), &form).unwrap_err().error, ErrorCode::InvalidRequest);
    }

    #[test]
    fn other_scheme_is_invalid_client() {
        let err = ClientAuthentication::from_request(Some("Bearer abc"), &FormParams::default()).unwrap_err();
        assert_eq!(err.error, ErrorCode::InvalidClient);
        let err = ClientAuthentication::from_request(Some("Basic !!!"), &FormParams::default()).unwrap_err();
        assert_eq!(err.error, ErrorCode::InvalidClient);
    }

    #[test]
    fn authenticate_rules() {
        let c = confidential();
        let good = ClientAuthentication::Post {
            client_id: "s6BhdRkqt3".into(),
            client_secret: ClientSecret::new("7Fjfp0ZBr1KtDRbnfVdmIw"),
        };
        assert!(authenticate(&good, Some(&c)).is_ok());
        let bad =
            ClientAuthentication::Post { client_id: "s6BhdRkqt3".into(), client_secret: ClientSecret::new("nope") };
        assert_eq!(authenticate(&bad, Some(&c)).unwrap_err().error, ErrorCode::InvalidClient);
        let none = ClientAuthentication::None { client_id: "s6BhdRkqt3".into() };
        assert!(authenticate(&none, Some(&c)).is_err());
        assert!(authenticate(&good, None).is_err());
        let mut public = confidential();
        public.secret_digest = None;
        assert!(authenticate(&none, Some(&public)).is_ok());
        assert!(authenticate(&good, Some(&public)).is_err());
    }
}
