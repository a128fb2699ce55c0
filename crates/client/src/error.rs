//! What can go wrong for the client, in Figure 2's terms.

use figure2_protocol::ErrorResponse;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The refresh token was refused (`invalid_grant`, RFC 6749 §5.2): the resource owner
    /// must authorize again (back to step A). Tokens are cleared.
    #[error("the refresh token was refused ({0}): the resource owner must authorize again (step A)")]
    ReauthorizationRequired(ErrorResponse),
    /// Any other RFC 6749 §5.2 error from the token endpoint.
    #[error("the token endpoint answered {status}: {error}")]
    TokenEndpoint { status: u16, error: ErrorResponse },
    /// No tokens yet: step A has not happened (or its tokens were cleared).
    #[error("no access token: the client has not been authorized (step A)")]
    NotAuthorized,
    /// The access token expired (or was refused) and there is no refresh token (RFC 6749
    /// §4.4.3: client credentials grants usually come without one).
    #[error("the access token is no good and there is no refresh token to get another")]
    NoRefreshToken,
    /// The token endpoint (or a proxy in front of it) is busy or unreachable: 429 Too
    /// Many Requests or a 5xx (RFC 9110 §15.5.x, §15.6). Says nothing about the refresh
    /// token, which the client keeps: try again after `retry_after` seconds if given.
    #[error("the token endpoint is unavailable ({status}); the tokens are kept, try again later")]
    Unavailable { status: u16, retry_after: Option<u64> },
    /// A malformed answer: not JSON, `token_type` not Bearer, bad metadata, and the like.
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Http(#[from] figure2_http::ClientError),
}
