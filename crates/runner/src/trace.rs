//! The annotated trace: every HTTP exchange labelled with its Figure 2 letter, the key
//! fields (tokens shortened to fingerprints, JWT claims decoded) and one line of
//! narration saying which step of RFC 6749 §1.5 it is.

use crate::scenario::{Action, Text};
use crate::wire::{DecodedJwt, RawHttp, short_access_token, short_refresh_token};
use crate::world::SCENARIO_EPOCH;
use figure2_client::{Exchange, Step};
use figure2_protocol::access_token::decode_unverified;
use figure2_protocol::bearer::BearerChallenge;
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::fingerprint;
use figure2_protocol::{FlowStep, NumericDate};
use serde::Serialize;

/// One thing that happened in a scenario, in order: typed, so that every view renders
/// it in the learner's language and no exporter parses a rendered line back.
/// Serialisable for exports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    Scenario {
        id: String,
        title: Text,
        rfc: Vec<String>,
        authorization_server: String,
        resource_server: String,
    },
    Step {
        number: usize,
        /// What the step does (rendered by the views: `Action`'s `Display` is English).
        action: Action,
        note: Option<Text>,
        t: u64,
    },
    /// The resource owner's browser at the authorization endpoint (how the grant of
    /// step A is obtained).
    ResourceOwner {
        what: ResourceOwnerAct,
    },
    Exchange(TracedExchange),
    /// Something that happened on the wire or to a server, outside the client's view.
    Network {
        what: Happening,
    },
    Clock {
        advanced_by: u64,
        t: u64,
    },
    Check {
        ok: bool,
        check: Expectation,
    },
    Done {
        passed: bool,
        steps: usize,
        exchanges: usize,
        failures: Vec<Failure>,
    },
}

/// What the resource owner's browser did (RFC 6749 §4.1.1, §4.1.2).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "act", rename_all = "snake_case")]
pub enum ResourceOwnerAct {
    /// `GET /authorize`: the login and consent page. `state` is the fingerprint the
    /// client sent as its RFC 6749 §10.12 `state`.
    OpensAuthorizationPage { client_id: String, state: String, status: u16 },
    /// `POST /authorize`: logged in and approved; redirected back with a code.
    Approves { user: String, status: u16, redirect_uri: String, code: String },
}

/// Something outside the client's exchanges. Tokens appear as fingerprints (`rt#…`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Happening {
    /// The authorization server answered and committed, but the answer never reached
    /// the client (RFC 9700 §4.14's hard case).
    ResponseLost { status: u16, path: String, refresh_token: Option<String> },
    /// A new signing key; the old one stays in the JWKS for its tokens.
    KeyRotated { kid: String },
    /// The authorization server stopped and started again on the same database.
    Restarted,
    /// RFC 7009: a client revoked a refresh token.
    Revoked { client_id: String, refresh_token: String, status: u16 },
}

/// One expectation of a scenario step, with what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "expected", rename_all = "snake_case")]
pub enum Expectation {
    /// `outcome`: `ok`, `reauthorize` or `failed`.
    Outcome {
        want: String,
        got: String,
    },
    /// No status or outcome expected: the step must simply succeed.
    Succeeds {
        got: String,
    },
    Status {
        want: u16,
        got: Option<u16>,
    },
    /// The OAuth error code on the wire.
    Error {
        want: String,
        got: Option<String>,
    },
    Steps {
        want: Vec<FlowStep>,
        got: Vec<FlowStep>,
    },
    Has {
        field: String,
    },
    Lacks {
        field: String,
    },
    Changed {
        field: String,
    },
    Unchanged {
        field: String,
    },
    Scope {
        want: String,
        got: Option<String>,
    },
}

/// An unmet expectation and the step it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub step: usize,
    pub action: Action,
    pub check: Expectation,
}

impl std::fmt::Display for ResourceOwnerAct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OpensAuthorizationPage { client_id, state, status } => write!(
                f,
                "GET /authorize (client_id={client_id}, PKCE S256, state={state}) → {status} login and consent page"
            ),
            Self::Approves { user, status, redirect_uri, code } => {
                write!(f, "POST /authorize as {user}, approve → {status} redirect to {redirect_uri} with {code}")
            }
        }
    }
}

impl std::fmt::Display for Happening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ResponseLost { status, path, refresh_token } => {
                let rt = refresh_token.as_ref().map(|t| format!(", new refresh token {t}")).unwrap_or_default();
                write!(
                    f,
                    "the authorization server answered {status} {path}{rt} and committed it, but the response was lost on the way: the client never saw it"
                )
            }
            Self::KeyRotated { kid } => {
                write!(f, "new signing key kid={kid}; the old key stays in the JWKS for its tokens")
            }
            Self::Restarted => {
                f.write_str("the authorization server stopped and started again on the same SQLite file")
            }
            Self::Revoked { client_id, refresh_token, status } => {
                write!(f, "{client_id} → authorization server: POST /revoke token={refresh_token} → {status}")
            }
        }
    }
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_none = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        match self {
            Self::Outcome { want, got } => write!(f, "outcome {want} (got {got})"),
            Self::Succeeds { got } => write!(f, "step failed: {got}"),
            Self::Status { want, got } => {
                write!(f, "status {want} (got {})", got.map_or("no exchange".into(), |s| s.to_string()))
            }
            Self::Error { want, got } => write!(f, "error {want} (got {})", or_none(got)),
            Self::Steps { want, got } => write!(f, "Figure 2 steps {} (got {})", letters(want), letters(got)),
            Self::Has { field } => write!(f, "token response has {field}"),
            Self::Lacks { field } => write!(f, "token response has no {field}"),
            Self::Changed { field } => write!(f, "{field} changed"),
            Self::Unchanged { field } => write!(f, "{field} unchanged"),
            Self::Scope { want, got } => write!(f, "scope \"{want}\" (got {})", or_none(got)),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "step {} ({}): {}", self.step, self.action, self.check)
    }
}

/// `E F G H`.
pub fn letters(steps: &[FlowStep]) -> String {
    steps.iter().map(FlowStep::to_string).collect::<Vec<_>>().join(" ")
}

/// An exchange with secrets shortened, ready to print.
#[derive(Debug, Clone, Serialize)]
pub struct TracedExchange {
    pub client_id: String,
    pub request_letter: FlowStep,
    pub response_letter: FlowStep,
    pub to: &'static str,
    pub method: String,
    pub path: String,
    pub request: Vec<(String, String)>,
    pub status: u16,
    pub response: Vec<(String, String)>,
    /// The OAuth error code on the wire: §5.2 `error`, or RFC 6750 `error` in the
    /// `WWW-Authenticate` challenge.
    pub error: Option<String>,
    /// Why the role refused, in its own precise words (`RefreshRejection`,
    /// `TokenRejection`), which only the role's log carries: the wire says only `error`.
    pub rejection: Option<String>,
    pub t: u64,
    /// The exchange as sent and received, secrets shortened (see [`crate::wire`]).
    pub raw: RawHttp,
    /// The JWT access token the exchange issued or presented, decoded.
    pub access_token: Option<DecodedJwt>,
}

/// A time as the trace shows it: seconds since the scenario started, `t+301s`.
pub fn relative(t: u64) -> String {
    format!("t+{}s", t.saturating_sub(SCENARIO_EPOCH))
}

/// Decoded JWT header and claims, one line, times relative to the scenario start.
pub fn jwt_summary(token: &str) -> Option<String> {
    let (header, claims) = decode_unverified(token)?;
    let s = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
    let mut parts = vec![
        format!("typ={}", s(&header["typ"])),
        format!("alg={}", s(&header["alg"])),
        format!("kid={}", s(&header["kid"])),
        format!("sub={}", s(&claims["sub"])),
        format!("client_id={}", s(&claims["client_id"])),
        format!("aud={}", s(&claims["aud"])),
    ];
    if let Some(scope) = claims["scope"].as_str() {
        parts.push(format!("scope=\"{scope}\""));
    }
    // RFC 7519 §2: any non-negative JSON number (shown to the second, rounded down).
    let date = |v: &serde_json::Value| NumericDate::from_json(v).map(NumericDate::whole_seconds);
    if let (Some(iat), Some(exp)) = (date(&claims["iat"]), date(&claims["exp"])) {
        parts.push(format!("iat={} exp={}", relative(iat), relative(exp)));
    }
    Some(parts.join(" "))
}

impl TracedExchange {
    /// Turns a raw exchange into display fields, shortening every secret.
    pub fn from_exchange(client_id: &str, x: &Exchange) -> Self {
        let uri = x.url.parse::<http::Uri>().ok();
        let path = uri.as_ref().and_then(|u| u.path_and_query()).map_or(x.url.clone(), |p| p.to_string());
        let mut request = Vec::new();
        let mut response = Vec::new();
        let header = |list: &[(String, String)], name: &str| {
            list.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let to = match x.step {
            Step::AuthorizationGrant | Step::Refresh => {
                if let Some(auth) = header(&x.request_headers, "authorization") {
                    let scheme = auth.split(' ').next().unwrap_or("").to_owned();
                    request.push(("client authentication".into(), format!("{scheme} (client_secret_basic)")));
                }
                if let Ok(form) = FormParams::parse(x.request_body.as_bytes()) {
                    for (k, v) in form.iter() {
                        let shown = match k {
                            "refresh_token" => short_refresh_token(v),
                            "code" => format!("code#{}", fingerprint(v)),
                            "password" | "client_secret" | "code_verifier" => "[redacted]".into(),
                            _ => v.to_owned(),
                        };
                        request.push((k.to_owned(), shown));
                    }
                }
                let body: serde_json::Value = serde_json::from_str(&x.response_body).unwrap_or_default();
                if let Some(obj) = body.as_object() {
                    for (k, v) in obj {
                        let text = v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
                        let shown = match k.as_str() {
                            "access_token" => short_access_token(&text),
                            "refresh_token" => short_refresh_token(&text),
                            _ => text,
                        };
                        response.push((k.clone(), shown));
                    }
                    if let Some(claims) = obj.get("access_token").and_then(|t| t.as_str()).and_then(jwt_summary) {
                        response.push(("access token claims".into(), claims));
                    }
                    if x.status == 200 && x.step == Step::Refresh && !obj.contains_key("refresh_token") {
                        response
                            .push(("refresh_token".into(), "(none: the client keeps its refresh token, §6)".into()));
                    }
                }
                if let Some(cc) = header(&x.response_headers, "cache-control") {
                    response.push(("Cache-Control".into(), cc));
                }
                if let Some(wa) = header(&x.response_headers, "www-authenticate") {
                    response.push(("WWW-Authenticate".into(), wa));
                }
                // Several instances behind one issuer: which one decided (see crate::world).
                if let Some(instance) = header(&x.response_headers, crate::world::INSTANCE_HEADER) {
                    response.push(("answered by".into(), format!("authorization server instance {instance}")));
                }
                "authorization server"
            }
            Step::ProtectedResource | Step::InvalidToken => {
                if let Some(auth) = header(&x.request_headers, "authorization") {
                    let token = auth.split_once(' ').map(|(_, t)| t).unwrap_or("");
                    request.push(("Authorization".into(), format!("Bearer {}", short_access_token(token))));
                }
                if let Some(wa) = header(&x.response_headers, "www-authenticate") {
                    response.push(("WWW-Authenticate".into(), wa));
                }
                if x.status == 200 {
                    response.push(("body".into(), x.response_body.chars().take(120).collect()));
                }
                "resource server"
            }
        };
        Self {
            client_id: client_id.to_owned(),
            request_letter: x.step.request_step(),
            response_letter: x.step.response_step(),
            to,
            method: x.method.clone(),
            path,
            request,
            status: x.status,
            response,
            error: error_of(x),
            rejection: crate::reasons::reason_for(x),
            t: x.at,
            raw: RawHttp::from_exchange(x),
            access_token: DecodedJwt::from_exchange(x),
        }
    }
}

/// The OAuth error an exchange carried: §5.2 `error` from the token endpoint, or the
/// RFC 6750 `error` of the resource server's challenge.
pub fn error_of(x: &Exchange) -> Option<String> {
    if let Some(challenge) = x.response_header("www-authenticate").and_then(BearerChallenge::parse) {
        return challenge.error.map(|e| e.as_str().to_owned());
    }
    serde_json::from_str::<serde_json::Value>(&x.response_body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
}
