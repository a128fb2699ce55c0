//! What the client saw on the wire, one HTTP exchange at a time, labelled with its
//! Figure 2 step (RFC 6749 §1.5). The [`Observer`] receives every exchange raw; whoever
//! prints them must shorten the tokens (see [`Exchange::summary`]).

use figure2_protocol::bearer::{BearerChallenge, BearerErrorCode};
#[cfg(test)]
use figure2_protocol::secret::fingerprint;
use figure2_protocol::token_response::AccessTokenResponse;
use figure2_protocol::{ErrorResponse, FlowStep, UnixTime};
use std::sync::Arc;

/// The four request/response pairs of Figure 2 the client takes part in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// (A) Authorization Grant → (B) Access Token & Refresh Token.
    AuthorizationGrant,
    /// (C) Access Token → (D) Protected Resource.
    ProtectedResource,
    /// (E) Access Token → (F) Invalid Token Error.
    InvalidToken,
    /// (G) Refresh Token → (H) Access Token & Optional Refresh Token.
    Refresh,
}

impl Step {
    /// The request's step in Figure 2: A, C, E or G.
    pub fn request_step(self) -> FlowStep {
        match self {
            Self::AuthorizationGrant => FlowStep::A,
            Self::ProtectedResource => FlowStep::C,
            Self::InvalidToken => FlowStep::E,
            Self::Refresh => FlowStep::G,
        }
    }

    /// The response's step in Figure 2: B, D, F or H.
    pub fn response_step(self) -> FlowStep {
        match self {
            Self::AuthorizationGrant => FlowStep::B,
            Self::ProtectedResource => FlowStep::D,
            Self::InvalidToken => FlowStep::F,
            Self::Refresh => FlowStep::H,
        }
    }

    /// The arrows of Figure 2 in words.
    pub fn describe(self) -> &'static str {
        match self {
            Self::AuthorizationGrant => "Authorization Grant -> Access Token & Refresh Token",
            Self::ProtectedResource => "Access Token -> Protected Resource",
            Self::InvalidToken => "Access Token -> Invalid Token Error",
            Self::Refresh => "Refresh Token -> Access Token & Optional Refresh Token",
        }
    }
}

/// One HTTP exchange as the client saw it. Headers and bodies are raw: they hold tokens.
#[derive(Clone)]
pub struct Exchange {
    pub step: Step,
    pub method: String,
    pub url: String,
    /// The headers the client set (hyper adds `host` and `content-length` itself).
    pub request_headers: Vec<(String, String)>,
    pub request_body: String,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
    /// When the request was sent, by the client's clock.
    pub at: UnixTime,
}

/// Receives every exchange, in the order the client made them.
pub type Observer = Arc<dyn Fn(&Exchange) + Send + Sync>;

impl std::fmt::Debug for Exchange {
    /// Leaves out headers and bodies: they carry credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("step", &self.step)
            .field("method", &self.method)
            .field("url", &self.url)
            .field("status", &self.status)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// The first value of a response header (names compare case-insensitively).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// One line with the Figure 2 letters and no secrets, e.g.
    /// `(C)->(D) GET /resource/read 200`, `(E)->(F) GET /resource/read 401 invalid_token`,
    /// `(G)->(H) refresh 200 rotated rt#1a2b3c4d`.
    pub fn summary(&self) -> String {
        let letters = format!("({})->({})", self.step.request_step(), self.step.response_step());
        match self.step {
            Step::ProtectedResource | Step::InvalidToken => {
                let path = self.url.parse::<http::Uri>().ok().and_then(|u| u.path_and_query().cloned());
                let path = path.as_ref().map_or(self.url.as_str(), |p| p.as_str());
                let mut line = format!("{letters} {} {path} {}", self.method, self.status);
                // RFC 6750 §3: the reason is in the challenge, not the body.
                let error = self
                    .response_headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
                    .find_map(|(_, v)| BearerChallenge::parse(v).and_then(|c| c.error));
                if let Some(error) = error.map(BearerErrorCode::as_str) {
                    line.push(' ');
                    line.push_str(error);
                }
                line
            }
            Step::AuthorizationGrant | Step::Refresh => {
                let what = if self.step == Step::Refresh { "refresh" } else { "grant" };
                let mut line = format!("{letters} {what} {}", self.status);
                if let Ok(ok) = serde_json::from_str::<AccessTokenResponse>(&self.response_body) {
                    line.push_str(&format!(" at#{}", ok.access_token.fingerprint()));
                    match (&ok.refresh_token, self.step) {
                        (Some(rt), Step::Refresh) => line.push_str(&format!(" rotated rt#{}", rt.fingerprint())),
                        (Some(rt), _) => line.push_str(&format!(" rt#{}", rt.fingerprint())),
                        // RFC 6749 §6: no new refresh token, the client keeps the old one.
                        (None, Step::Refresh) => line.push_str(" refresh token kept"),
                        (None, _) => {}
                    }
                    if let Some(expires_in) = ok.expires_in {
                        line.push_str(&format!(" expires_in={expires_in}"));
                    }
                } else if let Ok(err) = serde_json::from_str::<ErrorResponse>(&self.response_body) {
                    line.push(' ');
                    line.push_str(err.error.as_str());
                }
                line
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_exchange(step: Step, status: u16, body: &str) -> Exchange {
        Exchange {
            step,
            method: "POST".into(),
            url: "http://127.0.0.1:1/token".into(),
            request_headers: vec![],
            request_body: String::new(),
            status,
            response_headers: vec![],
            response_body: body.into(),
            at: 0,
        }
    }

    #[test]
    fn summaries_name_tokens_by_fingerprint_only() {
        let b = token_exchange(
            Step::AuthorizationGrant,
            200,
            r#"{"access_token":"at0","token_type":"Bearer","expires_in":60,"refresh_token":"rt0"}"#,
        );
        assert_eq!(
            b.summary(),
            format!("(A)->(B) grant 200 at#{} rt#{} expires_in=60", fingerprint("at0"), fingerprint("rt0"))
        );
        let h = token_exchange(Step::Refresh, 200, r#"{"access_token":"at1","token_type":"Bearer"}"#);
        assert_eq!(h.summary(), format!("(G)->(H) refresh 200 at#{} refresh token kept", fingerprint("at1")));
        let refused = token_exchange(Step::Refresh, 400, r#"{"error":"invalid_grant"}"#);
        assert_eq!(refused.summary(), "(G)->(H) refresh 400 invalid_grant");
    }
}
