//! What every endpoint shares: reading a form body (RFC 6749 §3.2), the `Authorization`
//! header, RFC 6749 §5.2 error answers, and fresh random tokens.

use crate::REALM;
use figure2_http::{HttpResponse, Incoming, Limits};

/// 32 bytes from the thread-local CSPRNG (ChaCha12, seeded from the OS), encoded as an
/// opaque token: 256 bits, well over RFC 6749 §10.10's 128.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    figure2_protocol::secret::encode_token(&bytes)
}

/// Reads a form-encoded POST body with the checks every form endpoint shares
/// (RFC 6749 §3.2: POST and `application/x-www-form-urlencoded`).
pub(crate) async fn read_form(
    request: http::Request<Incoming>,
) -> Result<(http::request::Parts, figure2_protocol::form::FormParams), FormFailure> {
    use figure2_protocol::{ErrorCode, ErrorResponse};
    if request.method() != http::Method::POST {
        return Err(FormFailure::MethodNotAllowed);
    }
    if !figure2_http::has_content_type(request.headers(), "application/x-www-form-urlencoded") {
        return Err(FormFailure::Error(ErrorResponse::new(
            ErrorCode::InvalidRequest,
            "Content-Type must be application/x-www-form-urlencoded",
        )));
    }
    let (parts, body) = request.into_parts();
    let body = figure2_http::read_body(body, Limits::default().max_body_bytes).await.map_err(|e| match e {
        figure2_http::BodyError::TooLarge(_) => FormFailure::TooLarge,
        figure2_http::BodyError::Io => {
            FormFailure::Error(ErrorResponse::new(ErrorCode::InvalidRequest, "request body could not be read"))
        }
    })?;
    let form = figure2_protocol::form::FormParams::parse(&body).map_err(FormFailure::Error)?;
    Ok((parts, form))
}

pub(crate) enum FormFailure {
    MethodNotAllowed,
    TooLarge,
    Error(figure2_protocol::ErrorResponse),
}

impl FormFailure {
    pub(crate) fn into_error(self) -> (u16, figure2_protocol::ErrorResponse) {
        use figure2_protocol::{ErrorCode, ErrorResponse};
        match self {
            Self::MethodNotAllowed => (405, ErrorResponse::new(ErrorCode::InvalidRequest, "use POST (RFC 6749 §3.2)")),
            Self::TooLarge => (413, ErrorResponse::new(ErrorCode::InvalidRequest, "request body too large")),
            Self::Error(e) => (e.http_status(), e),
        }
    }
}

/// The single `Authorization` header, if any; several are `invalid_request`.
pub(crate) fn authorization_header(
    parts: &http::request::Parts,
) -> Result<Option<&str>, figure2_protocol::ErrorResponse> {
    use figure2_protocol::{ErrorCode, ErrorResponse};
    let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ErrorResponse::new(ErrorCode::InvalidRequest, "more than one Authorization header"));
    }
    match first {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(Some)
            .map_err(|_| ErrorResponse::new(ErrorCode::InvalidClient, "Authorization header is not ASCII")),
    }
}

/// RFC 6749 §5.2 error response: the status of the code, `WWW-Authenticate` for
/// `invalid_client`, and `Cache-Control: no-store`.
pub(crate) fn oauth_error(status: u16, error: &figure2_protocol::ErrorResponse) -> HttpResponse {
    let mut headers: Vec<(&str, &str)> = figure2_protocol::token_response::NO_STORE_HEADERS.to_vec();
    let challenge = error.www_authenticate(REALM);
    if let Some(c) = &challenge {
        headers.push(("www-authenticate", c));
    }
    if status == 405 {
        headers.push(("allow", "POST"));
    }
    figure2_http::json(status, error, &headers)
}

/// Reads the form, authenticates the client and parses `token` / `token_type_hint`.
pub(crate) async fn authenticated_lookup(
    server: &crate::AuthorizationServer,
    request: http::Request<Incoming>,
) -> Result<
    (&figure2_protocol::client_auth::RegisteredClient, figure2_protocol::revocation::TokenLookupRequest),
    Box<HttpResponse>,
> {
    let (parts, form) = read_form(request).await.map_err(|f| {
        let (status, error) = f.into_error();
        Box::new(oauth_error(status, &error))
    })?;
    let inner = || {
        let presented =
            figure2_protocol::client_auth::ClientAuthentication::from_request(authorization_header(&parts)?, &form)?;
        let client = figure2_protocol::client_auth::authenticate(
            &presented,
            presented.client_id().and_then(|id| server.client(id)),
        )?;
        Ok::<_, figure2_protocol::ErrorResponse>((
            client,
            figure2_protocol::revocation::TokenLookupRequest::from_form(&form)?,
        ))
    };
    inner().map_err(|e| Box::new(oauth_error(e.http_status(), &e)))
}
