//! RFC 6750: presenting the access token (steps C and E) and the resource server's
//! answer when it is missing or no good (step F).
//!
//! ```text
//! GET /resource HTTP/1.1
//! Authorization: Bearer mF_9.B5f-4.1JqM
//!
//! HTTP/1.1 401 Unauthorized
//! WWW-Authenticate: Bearer realm="example", error="invalid_token",
//!                   error_description="The access token expired"
//! ```

/// RFC 6750 §3.1 error codes, each with the status the RFC gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BearerErrorCode {
    /// Missing or repeated parameter, several methods, otherwise malformed: 400.
    InvalidRequest,
    /// Expired, revoked, malformed, or invalid for other reasons: 401 (step F).
    InvalidToken,
    /// The token lacks the scope the resource needs: 403.
    InsufficientScope,
}

impl BearerErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::InvalidToken => 401,
            Self::InsufficientScope => 403,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invalid_request" => Some(Self::InvalidRequest),
            "invalid_token" => Some(Self::InvalidToken),
            "insufficient_scope" => Some(Self::InsufficientScope),
            _ => None,
        }
    }
}

/// A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BearerChallenge {
    pub realm: Option<String>,
    pub scope: Option<String>,
    pub error: Option<BearerErrorCode>,
    pub error_description: Option<String>,
    pub error_uri: Option<String>,
}

impl BearerChallenge {
    /// §3: a request without authentication gets a challenge with no error code:
    /// "the resource server SHOULD NOT include an error code or other error information".
    pub fn unauthenticated(realm: &str) -> Self {
        Self { realm: Some(realm.to_owned()), ..Self::default() }
    }

    pub fn error(realm: &str, error: BearerErrorCode, description: &str) -> Self {
        Self {
            realm: Some(realm.to_owned()),
            error: Some(error),
            error_description: Some(description.chars().filter(|c| crate::error::is_error_text_char(*c)).collect()),
            ..Self::default()
        }
    }

    pub fn with_scope(mut self, scope: &str) -> Self {
        self.scope = Some(scope.to_owned());
        self
    }

    /// The HTTP status that goes with this challenge (§3.1; 401 when there is no error).
    pub fn http_status(&self) -> u16 {
        self.error.map_or(401, BearerErrorCode::http_status)
    }

    /// Builds the header value. Every attribute is a quoted-string (RFC 7230 §3.2.6),
    /// with `"` and `\` escaped.
    pub fn to_header_value(&self) -> String {
        let mut out = String::from("Bearer");
        let mut sep = " ";
        let attrs = [
            ("realm", self.realm.as_deref()),
            ("scope", self.scope.as_deref()),
            ("error", self.error.map(BearerErrorCode::as_str)),
            ("error_description", self.error_description.as_deref()),
            ("error_uri", self.error_uri.as_deref()),
        ];
        for (name, value) in attrs {
            if let Some(value) = value {
                out.push_str(sep);
                out.push_str(name);
                out.push_str("=\"");
                out.push_str(&crate::syntax::escape_quoted(value));
                out.push('"');
                sep = ", ";
            }
        }
        out
    }

    /// Finds the Bearer challenge in a `WWW-Authenticate` value, which may hold several
    /// challenges (RFC 7235 §4.1). Attribute values may be tokens or quoted-strings.
    pub fn parse(header: &str) -> Option<Self> {
        let challenges = parse_challenges(header)?;
        let (_, params) = challenges.into_iter().find(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?;
        let mut c = Self::default();
        for (name, value) in params {
            match name.to_ascii_lowercase().as_str() {
                "realm" => c.realm = Some(value),
                "scope" => c.scope = Some(value),
                "error" => c.error = BearerErrorCode::parse(&value),
                "error_description" => c.error_description = Some(value),
                "error_uri" => c.error_uri = Some(value),
                _ => {}
            }
        }
        Some(c)
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

pub(crate) type Challenge = (String, Vec<(String, String)>);

/// RFC 7235 §4.1: `1#challenge`, `challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`.
pub(crate) fn parse_challenges(input: &str) -> Option<Vec<Challenge>> {
    let s: Vec<char> = input.chars().collect();
    let mut i = 0;
    let mut out: Vec<Challenge> = Vec::new();
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == ' ' || s[*i] == '\t') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| {
        let start = *i;
        while *i < s.len() && is_tchar(s[*i]) {
            *i += 1;
        }
        s[start..*i].iter().collect::<String>()
    };
    loop {
        // Skip separators between list elements.
        while i < s.len() && (s[i] == ',' || s[i] == ' ' || s[i] == '\t') {
            i += 1;
        }
        if i >= s.len() {
            break;
        }
        let name = token(&mut i);
        if name.is_empty() {
            return None;
        }
        skip_ws(&mut i);
        if i < s.len() && s[i] == '=' {
            // An auth-param of the current challenge.
            i += 1;
            skip_ws(&mut i);
            let value = if i < s.len() && s[i] == '"' {
                i += 1;
                let mut v = String::new();
                loop {
                    match s.get(i) {
                        None => return None,
                        Some('"') => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            v.push(*s.get(i + 1)?);
                            i += 2;
                        }
                        Some(c) => {
                            v.push(*c);
                            i += 1;
                        }
                    }
                }
                v
            } else {
                let v = token(&mut i);
                // Skip token68 padding ("abc==") so it cannot stall the parser.
                while i < s.len() && s[i] == '=' {
                    i += 1;
                }
                v
            };
            out.last_mut()?.1.push((name, value));
        } else {
            // A new challenge. A token68 after a scheme reads as another bare "scheme";
            // harmless, since only the Bearer challenge's auth-params are used.
            out.push((name, Vec::new()));
        }
    }
    Some(out)
}

/// RFC 6750 §2.1: reads `Authorization: Bearer <b64token>`.
///
/// Returns `Ok(None)` when the request has no Authorization header or uses another
/// scheme (the resource server then answers 401 with a bare challenge), and
/// `invalid_request` when the Bearer credentials are malformed.
pub fn extract_bearer_token(authorization: Option<&str>) -> Result<Option<&str>, BearerErrorCode> {
    let Some(value) = authorization else { return Ok(None) };
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = match value.split_once(' ') {
        Some((scheme, rest)) => (scheme, rest),
        None => (value, ""),
    };
    // RFC 7235 §2.1: the scheme is case-insensitive.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if is_b64token(token) { Ok(Some(token)) } else { Err(BearerErrorCode::InvalidRequest) }
}

/// `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.chars().all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6750_3_examples_build() {
        assert_eq!(BearerChallenge::unauthenticated("example").to_header_value(), r#"Bearer realm="example""#);
        let c = BearerChallenge::error("example", BearerErrorCode::InvalidToken, "The access token expired");
        assert_eq!(
            c.to_header_value(),
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#
        );
        assert_eq!(c.http_status(), 401);
    }

    #[test]
    fn escapes_quotes() {
        let c = BearerChallenge::unauthenticated(r#"a "b" \c"#);
        assert_eq!(c.to_header_value(), r#"Bearer realm="a \"b\" \\c""#);
        assert_eq!(BearerChallenge::parse(&c.to_header_value()).unwrap().realm.as_deref(), Some(r#"a "b" \c"#));
    }

    #[test]
    fn parses_rfc_example_and_multiple_challenges() {
        let c = BearerChallenge::parse(
            r#"Bearer realm="example", error="invalid_token", error_description="The access token expired""#,
        )
        .unwrap();
        assert_eq!(c.error, Some(BearerErrorCode::InvalidToken));
        assert_eq!(c.error_description.as_deref(), Some("The access token expired"));

        let c =
            BearerChallenge::parse(r#"Basic realm="x", Bearer error=insufficient_scope, scope="read write""#).unwrap();
        assert_eq!(c.error, Some(BearerErrorCode::InsufficientScope));
        assert_eq!(c.scope.as_deref(), Some("read write"));
        assert!(BearerChallenge::parse(r#"Basic realm="x""#).is_none());
        assert!(BearerChallenge::parse(r#"Bearer realm="unterminated"#).is_none());
        let bare = BearerChallenge::parse("Bearer").unwrap();
        assert_eq!(bare, BearerChallenge::default());
    }

    #[test]
    fn extracts_bearer_credentials() {
        assert_eq!(extract_bearer_token(Some("Bearer mF_9.B5f-4.1JqM")), Ok(Some("mF_9.B5f-4.1JqM")));
        assert_eq!(extract_bearer_token(Some("bearer abc==")), Ok(Some("abc==")));
        assert_eq!(extract_bearer_token(None), Ok(None));
        assert_eq!(extract_bearer_token(Some("Basic abc")), Ok(None));
        assert_eq!(extract_bearer_token(Some("Bearer")), Err(BearerErrorCode::InvalidRequest));
        assert_eq!(extract_bearer_token(Some("Bearer a b")), Err(BearerErrorCode::InvalidRequest));
        assert_eq!(extract_bearer_token(Some("Bearer a=b")), Err(BearerErrorCode::InvalidRequest));
    }
}
