//! Client checks: the checker plays a scripted authorization server and resource server
//! and watches what a client does around refresh: does it skip to step G when it knows
//! the token expired (E), retry exactly once after `invalid_token` or any other 401 to a
//! request that carried a token (F, G, H), leave `insufficient_scope` alone, never
//! present a replaced refresh token when requests race (the number of refreshes is
//! reported, not judged), keep the rotated refresh token, stop on `invalid_grant`, and keep
//! the refresh token away from the resource server? Client profiles for the faults of
//! real deployments: does it keep its refresh token when a proxy answers a refresh 429 or
//! 503 (matrix-org/matrix-js-sdk#5495), and does it survive a token response lost after
//! the server rotated, under each recovery policy of real servers (time grace, idempotent
//! retry, count-based reuse, usage-based), where strict rotation logs it out by design?
//!
//! The client under test is Figure2's own library (in-process, simulated clock) or any
//! program given as a command, which must follow this contract (all in environment
//! variables):
//!
//! | variable | meaning |
//! |---|---|
//! | `FIGURE2_TOKEN_ENDPOINT` | the scripted token endpoint |
//! | `FIGURE2_ISSUER` | its issuer (RFC 8414 metadata is served) |
//! | `FIGURE2_RESOURCE_URL` | the protected resource to call with GET |
//! | `FIGURE2_CLIENT_ID`, `FIGURE2_CLIENT_SECRET` | client credentials (HTTP Basic or post) |
//! | `FIGURE2_USERNAME`, `FIGURE2_PASSWORD`, `FIGURE2_SCOPE` | for the password grant (step A) |
//! | `FIGURE2_CALL_TIMES` | comma-separated seconds after the grant at which to call the resource |
//! | `FIGURE2_CONCURRENCY` | how many requests to make at once at each of those times |
//! | `FIGURE2_DPOP` | `1`: use DPoP (RFC 9449) if the client can: a key for the run, a proof with every request |
//!
//! The program obtains tokens with the password grant, makes the calls, and exits 0 if
//! every call ended 200, 3 if the resource owner must authorize again, other codes
//! otherwise.

use super::{CheckResult, Keyword, Role, Verdict};
use figure2_http::{HttpResponse, Incoming, Limits};
use figure2_protocol::bearer::{BearerChallenge, BearerErrorCode, extract_bearer_token};
use figure2_protocol::dpop;
use figure2_protocol::form::FormParams;
use figure2_protocol::{Clock, SimulatedClock};
use serde::Deserialize;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCatalogue {
    pub role: Role,
    #[serde(rename = "check")]
    pub checks: Vec<ClientCheck>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCheck {
    pub id: String,
    pub section: String,
    pub keyword: Keyword,
    pub summary: String,
    #[serde(default)]
    pub script: Script,
    /// Seconds after the grant at which the client calls the resource.
    pub calls: Vec<u64>,
    #[serde(default = "one")]
    pub concurrency: u32,
    #[serde(default)]
    pub expect: ClientExpect,
}

fn one() -> u32 {
    1
}

/// How the scripted server takes back a retired refresh token after a lost answer (the
/// recovery policies of real servers: README, "Which refresh policy?").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recovery {
    /// Strict rotation: refused, and the family revoked (RFC 9700 §4.14.2).
    None,
    /// Within `grace_seconds` of its retirement, a new pair (Hydra, Auth0, Rauthy).
    Time,
    /// Within `grace_seconds`, the successor already issued (Dex).
    Idempotent,
    /// `max_reuse` more times (Keycloak).
    Count,
    /// While the successor's access token was never used (matrix-authentication-service).
    Usage,
}

/// What a lost-response check expects of the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostResponse {
    /// It retries with the refresh token it still holds and goes on.
    Recovers,
    /// Strict rotation logs it out: it asks for a new authorization, without retrying.
    LoggedOut,
}

/// How the scripted servers behave.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    /// `expires_in` of every access token.
    pub expires_in: u64,
    /// Whether each refresh returns a new refresh token (and retires the old one).
    pub rotate: bool,
    /// `ok` or `invalid_grant`.
    pub refresh: String,
    /// `validate` (expired → invalid_token), `invalid_token_once` (the first access
    /// token is refused once, as if revoked), `invalid_token_always`; `bare_401_once`,
    /// `bare_401_always` (a 401 with a bare `WWW-Authenticate: Bearer`) and
    /// `no_challenge_401_once` (a 401 with no challenge at all), as resource servers in
    /// the wild answer; `insufficient_scope` (403, RFC 6750 §3.1, every time).
    pub resource: String,
    /// RFC 9449: `""` (no DPoP), `on` (the metadata advertises DPoP, the client is told
    /// `FIGURE2_DPOP=1`; a valid proof gets DPoP-bound tokens, bound refresh tokens need
    /// the same key, bound access tokens need `Authorization: DPoP` with a proof), or
    /// `nonce` (`on`, and the token endpoint wants its nonce in proofs, §8).
    pub dpop: String,
    /// A proxy in front of the token endpoint answers the first refresh with this status
    /// (429 or 503, an HTML body and `Retry-After: 1`): the request never reaches the
    /// server, nothing is rotated. 0: never.
    pub refresh_unavailable: u16,
    /// The first refresh is committed (the token rotated) but its answer is lost: the
    /// client receives 504 from a gateway instead.
    pub lose_refresh: bool,
    /// How the server treats the retired predecessor coming back after the lost answer:
    /// `none` (strict rotation: refused, the family revoked), `time` (accepted within
    /// `grace_seconds` of its retirement, a new pair issued: Hydra, Auth0, Rauthy),
    /// `idempotent` (within `grace_seconds`, the successor already issued is handed back:
    /// Dex), `count` (accepted `max_reuse` more times: Keycloak), `usage` (accepted while
    /// the successor's access token was never presented to the resource server: MAS).
    pub recovery: Recovery,
    /// Seconds (catalogue time) of the `time` and `idempotent` windows.
    pub grace_seconds: u64,
    /// How many times `count` accepts the predecessor again.
    pub max_reuse: u32,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            expires_in: 60,
            rotate: true,
            refresh: "ok".into(),
            resource: "validate".into(),
            dpop: String::new(),
            refresh_unavailable: 0,
            lose_refresh: false,
            recovery: Recovery::None,
            grace_seconds: 30,
            max_reuse: 1,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientExpect {
    pub refresh_requests: Option<usize>,
    pub max_refresh_requests: Option<usize>,
    pub max_resource_requests: Option<usize>,
    /// Whether an expired access token may reach the resource server.
    pub expired_token_presented: Option<bool>,
    /// Every refresh presents the newest refresh token issued.
    #[serde(default)]
    pub presents_newest_refresh_token: bool,
    /// The refresh token must never reach the resource server.
    #[serde(default)]
    pub refresh_token_stays_private: bool,
    /// How the client must end: `ok`, `reauthorize` or `failed`; `""` for any ending (a
    /// MUST check judged on its property alone). Unset: `ok`.
    pub outcome: Option<String>,
    /// Requests the client may make after being told `invalid_grant` before it either
    /// stops (ending `reauthorize`) or goes back to step A with a new grant (a client that
    /// holds the resource owner's password asks for a new authorization that way). The
    /// refused refresh token is never presented again. The situation (an `invalid_grant`
    /// answered) must have happened.
    pub requests_after_invalid_grant: Option<usize>,
    /// The situation the check is about must have happened, or the check proves nothing
    /// and is skipped: at least this many refreshes (a rotated token presented again).
    pub situation_min_refresh_requests: Option<usize>,
    /// The situation: the refused access token was presented (so a retry was exercised).
    #[serde(default)]
    pub situation_refused_token_presented: bool,
    /// With requests racing: no refresh presents a refresh token that had already been
    /// replaced when the request arrived, whether its successor had reached the client
    /// (RFC 6749 §6) or was still on its way (no RFC text, but RFC 9700 §4.14.2: a
    /// rotating server takes it for a replay and revokes the family). Stricter than
    /// `presents_newest_refresh_token`.
    #[serde(default)]
    pub never_presents_replaced_refresh_token: bool,
    /// The situation: at least `concurrency` resource requests came once the first access
    /// token had expired (the requests really raced over an expired token).
    #[serde(default)]
    pub situation_concurrent_after_expiry: bool,
    /// RFC 9449 §4.2, §7.1: every request carried a valid DPoP proof, and every bound
    /// access token went in `Authorization: DPoP`.
    #[serde(default)]
    pub dpop_proofs: bool,
    /// RFC 9449 §5: every proof was made with one key (the refresh token's).
    #[serde(default)]
    pub dpop_one_key: bool,
    /// RFC 9449 §8: after `use_dpop_nonce`, the next token request carries the nonce, and
    /// the server never had to ask twice in a row.
    #[serde(default)]
    pub dpop_nonce_retry: bool,
    /// With `refresh_unavailable`: after the 429/503 the client refreshes again with the
    /// refresh token it had (not dropped, not a new grant), gets 200, and its last call is
    /// served. The situation (a refresh answered 429/503) must have happened.
    #[serde(default)]
    pub keeps_refresh_token_when_unavailable: bool,
    /// With `lose_refresh`: `recovers` (the client retries with the refresh token it still
    /// holds, the server takes it back, and the client goes on: not sent back to step A,
    /// its last call served) or `logged_out` (strict rotation: the expected outcome is that the
    /// client is told `invalid_grant` and asks for a new authorization, without retrying).
    /// The situation (a refresh committed and its answer lost) must have happened.
    pub lost_response: Option<LostResponse>,
}

/// One request the scripted servers saw.
#[derive(Debug, Clone)]
struct Seen {
    to_resource: bool,
    at: u64,
    everything: String,
    access_token: Option<String>,
    presented_refresh_token: Option<String>,
    /// The family's live refresh token when the request arrived.
    live_refresh_token: Option<String>,
    answered_invalid_grant: bool,
    /// What was answered, in a few words (for the per-check trace).
    answer: String,
    /// RFC 9449: the thumbprint of the request's valid DPoP proof, or why it had none.
    dpop: Result<String, String>,
    /// The `nonce` claim of that proof.
    dpop_nonce: Option<String>,
    /// The answer was `use_dpop_nonce`.
    asked_nonce: bool,
}

#[derive(Default)]
struct Ledger {
    seen: Vec<Seen>,
    /// (token, issued_at)
    access_tokens: Vec<(String, u64)>,
    refresh_tokens: Vec<String>,
    /// When each refresh token was issued (milliseconds), in the order of `refresh_tokens`.
    refresh_issued_at: Vec<u64>,
    /// Milliseconds each refresh's answer is held before it is sent ([`REFRESH_HOLD_MS`]
    /// in the concurrency checks of a program, else 0).
    refresh_hold_ms: u64,
    live_refresh_token: Option<String>,
    refused_once: bool,
    /// RFC 9449 §5: the key the family's refresh tokens are bound to, and each bound
    /// access token's key.
    bound_jkt: Option<String>,
    access_token_jkt: Vec<(String, String)>,
    /// The proxy's 429/503 was sent (the situation of the unavailable checks).
    unavailable_sent: bool,
    /// The refresh token presented in the refresh answered 429/503.
    unavailable_presented: Option<String>,
    /// A refresh was committed and its answer lost (the situation of the lost-response
    /// checks): the retired predecessor, when, the access token that never arrived, and
    /// how many times the predecessor was accepted again.
    lost: Option<Lost>,
    /// Strict rotation revoked the family: every refresh is refused.
    family_revoked: bool,
    /// Access tokens presented to the resource server.
    used_access_tokens: std::collections::HashSet<String>,
}

/// The refresh whose answer was lost.
#[derive(Debug, Clone)]
struct Lost {
    predecessor: String,
    retired_at: u64,
    successor_access_token: String,
    reuses: u32,
    /// The predecessor came back, and what the server did with it.
    came_back: bool,
    accepted: bool,
}

struct Scripted {
    script: Script,
    /// Catalogue seconds per real second (1 in-process; programs run faster).
    time_scale: u64,
    /// `expires_in` as told to the client (scaled down for programs run in real time).
    expires_in: u64,
    /// Milliseconds on the scripted servers' clock.
    now_ms: Box<dyn Fn() -> u64 + Send + Sync>,
    issuer: String,
    ledger: Mutex<Ledger>,
    /// The `jti`s the scripted servers have seen (§11.1).
    replay: dpop::ReplayCache,
}

/// In the concurrency checks of a program, each refresh answer is held this long (real
/// milliseconds) before it is sent. A client whose racing requests each refresh sends
/// them all while the first is held (in flight); one that waits for the first answer and
/// then presents the refresh token that answer replaced had received its successor
/// (RFC 6749 §6: it kept the old token). Without the hold both look alike, as the
/// scripted server answers at once.
pub const REFRESH_HOLD_MS: u64 = 500;

/// The token endpoint's nonce in `nonce` mode (§8): fixed, as one server instance's.
const SCRIPTED_NONCE: &str = "figure2-scripted-nonce-1";

const CLIENT_ID: &str = "conformance-client";
const CLIENT_SECRET: &str = "conformance-secret";
const USERNAME: &str = "alice";
const PASSWORD: &str = "alice-password";

impl figure2_http::Handler for Scripted {
    async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> HttpResponse {
        let (parts, body) = request.into_parts();
        let body = figure2_http::read_body(body, 64 * 1024).await.unwrap_or_default();
        let hold = self.ledger.lock().unwrap_or_else(|e| e.into_inner()).refresh_hold_ms;
        let held = hold > 0
            && parts.uri.path() == "/token"
            && FormParams::parse(&body).is_ok_and(|f| f.get("grant_type") == Some("refresh_token"));
        let response = self.respond(parts, body);
        if held {
            tokio::time::sleep(std::time::Duration::from_millis(hold)).await;
        }
        response
    }
}

impl Scripted {
    /// The scripted authorization server and resource server's answer to one request.
    fn respond(&self, parts: http::request::Parts, body: bytes::Bytes) -> HttpResponse {
        let body_text = String::from_utf8_lossy(&body).into_owned();
        let headers: String =
            parts.headers.iter().map(|(n, v)| format!("{n}: {}\n", String::from_utf8_lossy(v.as_bytes()))).collect();
        let everything = format!("{} {}\n{headers}\n{body_text}", parts.method, parts.uri);
        let now = (self.now_ms)();
        let path = parts.uri.path();
        if path == figure2_protocol::metadata::WELL_KNOWN_SUFFIX {
            let mut m = serde_json::json!({
                "issuer": self.issuer,
                "token_endpoint": format!("{}/token", self.issuer),
                "response_types_supported": ["code"],
                "grant_types_supported": ["password", "refresh_token"],
            });
            if !self.script.dpop.is_empty() {
                m["dpop_signing_alg_values_supported"] =
                    serde_json::json!(dpop::algorithm_names(&dpop::SUPPORTED_ALGORITHMS));
            }
            return figure2_http::json(200, &m, &[]);
        }
        let mut ledger = self.ledger.lock().unwrap_or_else(|e| e.into_inner());
        if path == "/token" {
            let form = FormParams::parse(&body).unwrap_or_default();
            let mut seen = Seen {
                to_resource: false,
                at: now,
                everything,
                access_token: None,
                presented_refresh_token: form.get("refresh_token").map(str::to_owned),
                live_refresh_token: ledger.live_refresh_token.clone(),
                answered_invalid_grant: false,
                answer: String::new(),
                dpop: Err("no DPoP proof".into()),
                dpop_nonce: None,
                asked_nonce: false,
            };
            if !self.script.dpop.is_empty() {
                let uri = format!("{}/token", self.issuer);
                match self.check_proof(&parts, &uri, None, now) {
                    Ok(proof) => {
                        seen.dpop_nonce = proof.claims.nonce.clone();
                        seen.dpop = Ok(proof.jkt);
                    }
                    Err(dpop::DpopRejection::UseNonce) => {
                        seen.asked_nonce = true;
                        seen.dpop = Err("no current nonce".into());
                        seen.answer = "400 use_dpop_nonce".into();
                        ledger.seen.push(seen);
                        return figure2_http::json(
                            400,
                            &serde_json::json!({"error": "use_dpop_nonce"}),
                            &[(dpop::NONCE_HEADER, SCRIPTED_NONCE)],
                        );
                    }
                    Err(dpop::DpopRejection::Missing) => {}
                    Err(rejection) => {
                        seen.dpop = Err(rejection.to_string());
                        seen.answer = "400 invalid_dpop_proof".into();
                        ledger.seen.push(seen);
                        return figure2_http::json(400, &rejection.to_error(), &[]);
                    }
                }
            }
            let jkt = seen.dpop.clone().ok();
            let answer = match form.get("grant_type") {
                Some("password")
                    if form.get("username") == Some(USERNAME) && form.get("password") == Some(PASSWORD) =>
                {
                    // RFC 9449 §5: the family is bound to the key of the grant's proof.
                    ledger.bound_jkt = jkt.clone();
                    Some(self.issue(&mut ledger, now, true, jkt.as_deref()))
                }
                Some("refresh_token") if self.script.refresh == "ok" => {
                    match self.refresh(&mut ledger, form.get("refresh_token"), now, jkt.as_deref()) {
                        Refreshed::Answer(body) => Some(body),
                        Refreshed::Refused => None,
                        Refreshed::Status(status, answer) => {
                            seen.answer = format!("{status} ({answer})");
                            ledger.seen.push(seen);
                            // What nginx or a load balancer sends: HTML, no OAuth error.
                            let html = format!("<html><body><h1>{status}</h1>{answer}</body></html>");
                            return figure2_http::text(status, "text/html", html, &[("retry-after", "1")]);
                        }
                    }
                }
                _ => None,
            };
            let response = match answer {
                Some(body) => {
                    seen.answer = format!(
                        "200 access token #{}{}",
                        ledger.access_tokens.len(),
                        if body.get("refresh_token").is_some() {
                            format!(", refresh token #{}", ledger.refresh_tokens.len())
                        } else {
                            String::new()
                        }
                    );
                    let mut headers = figure2_protocol::token_response::NO_STORE_HEADERS.to_vec();
                    if self.script.dpop == "nonce" {
                        headers.push((dpop::NONCE_HEADER, SCRIPTED_NONCE));
                    }
                    figure2_http::json(200, &body, &headers)
                }
                None => {
                    seen.answered_invalid_grant = true;
                    seen.answer = "400 invalid_grant".into();
                    figure2_http::json(400, &serde_json::json!({"error": "invalid_grant"}), &[])
                }
            };
            ledger.seen.push(seen);
            return response;
        }
        // The protected resource.
        let authorization = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let bearer = extract_bearer_token(authorization).ok().flatten().map(str::to_owned);
        let dpop_token = dpop::extract_dpop_token(authorization).ok().flatten().map(str::to_owned);
        let token = bearer.clone().or(dpop_token.clone());
        // RFC 9449 §7.1: a bound access token goes in `Authorization: DPoP` with a proof
        // of its key carrying `ath`.
        let bound =
            token.as_ref().and_then(|t| ledger.access_token_jkt.iter().find(|(a, _)| a == t)).map(|(_, k)| k.clone());
        let mut dpop_seen: Result<String, String> = Err("no DPoP proof".into());
        let mut dpop_refused = false;
        if let Some(jkt) = &bound {
            let uri = format!("{}{}", self.issuer, parts.uri.path());
            dpop_seen = match (&dpop_token, self.check_proof(&parts, &uri, token.as_deref(), now)) {
                (None, _) => Err("a DPoP-bound access token sent as Bearer".into()),
                (Some(_), Ok(proof)) if proof.jkt == *jkt => Ok(proof.jkt),
                (Some(_), Ok(proof)) => Err(format!("a proof of another key ({})", proof.jkt)),
                (Some(_), Err(rejection)) => Err(rejection.to_string()),
            };
            dpop_refused = dpop_seen.is_err();
        } else if dpop_token.is_some() {
            dpop_refused = true;
            dpop_seen = Err("Authorization: DPoP with a token that is not DPoP-bound".into());
        }
        if let Some(t) = &token {
            ledger.used_access_tokens.insert(t.clone());
        }
        let issued = token.as_ref().and_then(|t| ledger.access_tokens.iter().find(|(a, _)| a == t).map(|(_, at)| *at));
        let first = ledger.access_tokens.first().map(|(t, _)| t.clone());
        ledger.seen.push(Seen {
            to_resource: true,
            at: now,
            everything,
            access_token: token.clone(),
            presented_refresh_token: None,
            live_refresh_token: None,
            answered_invalid_grant: false,
            answer: String::new(),
            dpop: dpop_seen,
            dpop_nonce: None,
            asked_nonce: false,
        });
        let script = self.script.resource.as_str();
        if dpop_refused {
            if let Some(last) = ledger.seen.last_mut() {
                last.answer = "401 DPoP invalid_token".into();
            }
            let challenge = dpop::DpopChallenge::new("figure2", &dpop::SUPPORTED_ALGORITHMS)
                .with_error(dpop::DpopChallengeError::InvalidToken, "The access token's DPoP proof is not valid");
            return figure2_http::json(
                401,
                &serde_json::json!({"error": "invalid_token"}),
                &[("www-authenticate", &challenge.to_header_value())],
            );
        }
        let refuse = match (issued, script) {
            (None, _) => true,
            (Some(_), "invalid_token_always" | "bare_401_always" | "insufficient_scope") => true,
            (Some(_), "invalid_token_once" | "bare_401_once" | "no_challenge_401_once")
                if !ledger.refused_once && token == first =>
            {
                ledger.refused_once = true;
                true
            }
            (Some(issued_at), _) => now >= issued_at + self.expires_in * 1000,
        };
        let answer = match (refuse, script) {
            (false, _) => "200",
            (true, "bare_401_once" | "bare_401_always") => "401 WWW-Authenticate: Bearer",
            (true, "no_challenge_401_once") => "401 without a challenge",
            (true, "insufficient_scope") => "403 insufficient_scope",
            (true, _) => "401 invalid_token",
        };
        if let Some(last) = ledger.seen.last_mut() {
            last.answer = answer.to_owned();
        }
        if !refuse {
            return figure2_http::json(200, &serde_json::json!({"resource": "read"}), &[]);
        }
        match script {
            // As many resource servers in the wild answer: a bare challenge, or none.
            "bare_401_once" | "bare_401_always" => {
                figure2_http::text(401, "text/plain", "", &[("www-authenticate", "Bearer")])
            }
            "no_challenge_401_once" => figure2_http::text(401, "text/plain", "Unauthorized", &[]),
            "insufficient_scope" => {
                let challenge = BearerChallenge::error("figure2", BearerErrorCode::InsufficientScope, "needs admin")
                    .with_scope("admin");
                figure2_http::json(
                    403,
                    &serde_json::json!({"error": "insufficient_scope"}),
                    &[("www-authenticate", &challenge.to_header_value())],
                )
            }
            _ => {
                let challenge =
                    BearerChallenge::error("figure2", BearerErrorCode::InvalidToken, "The access token is not valid");
                figure2_http::json(
                    401,
                    &serde_json::json!({"error": "invalid_token"}),
                    &[("www-authenticate", &challenge.to_header_value())],
                )
            }
        }
    }
}

/// What the scripted token endpoint does with a refresh request.
enum Refreshed {
    Answer(serde_json::Value),
    Refused,
    /// Not answered by the server: a proxy's or gateway's status, and why (for the trace).
    Status(u16, &'static str),
}

impl Scripted {
    /// RFC 9449 §4.3 on the request's `DPoP` header, against `uri` and the scripted
    /// servers' `jti` memory; the nonce too in `nonce` mode at the token endpoint.
    fn check_proof(
        &self,
        parts: &http::request::Parts,
        uri: &str,
        access_token: Option<&str>,
        now_ms: u64,
    ) -> Result<dpop::ValidatedProof, dpop::DpopRejection> {
        let values: Vec<&str> =
            parts.headers.get_all(dpop::DPOP_HEADER).iter().map(|v| v.to_str().unwrap_or("")).collect();
        let proof = dpop::single_proof(&values)?.ok_or(dpop::DpopRejection::Missing)?;
        let accepts = |nonce: &str| nonce == SCRIPTED_NONCE;
        let nonce = if self.script.dpop == "nonce" && access_token.is_none() {
            dpop::NonceCheck::Required(&accepts)
        } else {
            dpop::NonceCheck::NotUsed
        };
        let expect = dpop::ProofExpectations {
            method: parts.method.as_str(),
            uri,
            // Programs run in real time from the epoch of `now_ms`; proofs carry wall-clock
            // time, so the window is checked against the client's own clock: wide.
            now: if now_ms > 1_000_000_000_000 { now_ms / 1000 } else { figure2_protocol::SystemClock.now() },
            max_age: 300,
            leeway: 300,
            allowed_algorithms: &dpop::SUPPORTED_ALGORITHMS,
            access_token,
            nonce,
        };
        dpop::validate_proof(proof, &expect, &self.replay)
    }

    /// A refresh (RFC 6749 §6) under the script: the live token rotates (or not); a proxy
    /// may answer first; the answer may be lost; the retired predecessor may be taken back.
    fn refresh(&self, ledger: &mut Ledger, presented: Option<&str>, now: u64, jkt: Option<&str>) -> Refreshed {
        let Some(presented) = presented else { return Refreshed::Refused };
        if ledger.family_revoked {
            return Refreshed::Refused;
        }
        // RFC 9449 §5: a bound family refreshes only with a proof of its key.
        if ledger.bound_jkt.is_some() && ledger.bound_jkt.as_deref() != jkt {
            return Refreshed::Refused;
        }
        if Some(presented) == ledger.live_refresh_token.as_deref() {
            if self.script.refresh_unavailable != 0 && !ledger.unavailable_sent {
                ledger.unavailable_sent = true;
                ledger.unavailable_presented = Some(presented.to_owned());
                return Refreshed::Status(self.script.refresh_unavailable, "a proxy in front of the token endpoint");
            }
            let body = self.issue(ledger, now, self.script.rotate, jkt);
            if self.script.lose_refresh && ledger.lost.is_none() && body.get("refresh_token").is_some() {
                // Committed: the presented token is retired, the successor is live. The
                // answer never reaches the client.
                ledger.lost = Some(Lost {
                    predecessor: presented.to_owned(),
                    retired_at: now,
                    successor_access_token: body["access_token"].as_str().unwrap_or_default().to_owned(),
                    reuses: 0,
                    came_back: false,
                    accepted: false,
                });
                return Refreshed::Status(504, "the server rotated, but the gateway timed out: the answer is lost");
            }
            return Refreshed::Answer(body);
        }
        let grace_ms = self.script.grace_seconds * 1000 / self.time_scale.max(1);
        let used = ledger.used_access_tokens.clone();
        let Some(lost) = ledger.lost.as_mut().filter(|l| l.predecessor == presented) else {
            return Refreshed::Refused;
        };
        lost.came_back = true;
        let within = now <= lost.retired_at + grace_ms;
        let accept = match self.script.recovery {
            Recovery::Time | Recovery::Idempotent => within,
            Recovery::Count => lost.reuses < self.script.max_reuse,
            Recovery::Usage => !used.contains(&lost.successor_access_token),
            Recovery::None => false,
        };
        if !accept {
            if self.script.recovery == Recovery::None {
                // Strict rotation (RFC 9700 §4.14.2): reuse revokes the family.
                ledger.family_revoked = true;
            }
            return Refreshed::Refused;
        }
        lost.reuses += 1;
        lost.accepted = true;
        if self.script.recovery == Recovery::Idempotent {
            // Dex: the successor already issued is handed back, with a new access token.
            let successor = ledger.live_refresh_token.clone();
            let mut body = self.issue(ledger, now, false, jkt);
            body["refresh_token"] = serde_json::json!(successor);
            return Refreshed::Answer(body);
        }
        // A new pair; the live token (the unused successor) is replaced.
        Refreshed::Answer(self.issue(ledger, now, true, jkt))
    }

    fn issue(&self, ledger: &mut Ledger, now: u64, new_refresh_token: bool, jkt: Option<&str>) -> serde_json::Value {
        let n = ledger.access_tokens.len() + 1;
        let access_token = format!("figure2-at-{n}-{}", random_suffix());
        ledger.access_tokens.push((access_token.clone(), now));
        if let Some(jkt) = jkt {
            ledger.access_token_jkt.push((access_token.clone(), jkt.to_owned()));
        }
        let mut body = serde_json::json!({
            "access_token": access_token,
            "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
            "expires_in": self.expires_in,
            "scope": "read",
        });
        if new_refresh_token || ledger.live_refresh_token.is_none() {
            let rt = format!("figure2-rt-{}-{}", ledger.refresh_tokens.len() + 1, random_suffix());
            ledger.refresh_tokens.push(rt.clone());
            ledger.refresh_issued_at.push(now);
            ledger.live_refresh_token = Some(rt.clone());
            body["refresh_token"] = serde_json::json!(rt);
        }
        body
    }
}

fn random_suffix() -> String {
    let mut r = [0u8; 6];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut r);
    r.iter().map(|b| format!("{b:02x}")).collect()
}

/// Programs under test run in real time, so by default their checks run this many times
/// faster than the catalogue says (an `expires_in` of 60 becomes 12 seconds).
pub const COMMAND_TIME_SCALE: u64 = 5;

/// Real seconds kept between a call and an expiry it must fall before or after, whatever
/// the scale: more than a client's whole-second rounding of `expires_in` and the start-up
/// of a program.
pub const MARGIN_SECONDS: f64 = 2.0;

/// How a client program's checks map the catalogue's time onto real time.
#[derive(Debug, Clone)]
pub struct Timing {
    /// The catalogue's seconds per real second.
    pub scale: u64,
    /// `expires_in` told to the client, in seconds; by default the catalogue's divided by
    /// `scale`, made long enough for `client_leeway` and the margins.
    pub token_lifetime: Option<u64>,
    /// Seconds before `expires_in` runs out at which the client refreshes anyway (Authlib:
    /// 60), so that "before expiry" calls come before the client's own deadline.
    pub client_leeway: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self { scale: COMMAND_TIME_SCALE, token_lifetime: None, client_leeway: 0 }
    }
}

impl Timing {
    /// The access tokens' `expires_in` for a check whose catalogue lifetime is `expires_in`.
    pub fn lifetime(&self, expires_in: u64) -> u64 {
        self.token_lifetime.unwrap_or_else(|| {
            let scaled = expires_in / self.scale.max(1);
            scaled.max(self.client_leeway + (3.0 * MARGIN_SECONDS).ceil() as u64)
        })
    }

    /// Real seconds after the grant for the catalogue's call time `t`. The catalogue puts
    /// calls `expires_in + 1` apart to fall just after each token's expiry, and others
    /// inside a token's life: each period becomes the scaled lifetime plus the margin, and
    /// a call inside a period stays a margin before the client's deadline.
    pub fn real_time(&self, t: u64, expires_in: u64) -> f64 {
        let lifetime = self.lifetime(expires_in) as f64;
        let period = expires_in + 1;
        let (k, r) = (t / period, t % period);
        let inside =
            (r as f64 / self.scale.max(1) as f64).min(lifetime - self.client_leeway as f64 - MARGIN_SECONDS).max(0.0);
        k as f64 * (lifetime + MARGIN_SECONDS) + inside
    }
}

/// What a client under test is told (the contract's variables, and the shared clock
/// for in-process drivers).
#[derive(Debug, Clone)]
pub struct Env {
    pub issuer: String,
    pub token_endpoint: String,
    pub resource_url: String,
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    pub scope: String,
    /// Seconds after the grant at which to call the resource.
    pub calls: Vec<u64>,
    pub concurrency: u32,
    /// RFC 9449: the client should use DPoP (`FIGURE2_DPOP=1` for a program).
    pub dpop: bool,
    pub clock: SimulatedClock,
}

/// An in-process client under test.
pub type Driver = Arc<dyn Fn(Env) -> std::pin::Pin<Box<dyn std::future::Future<Output = Ending> + Send>> + Send + Sync>;

/// The client under test.
#[derive(Clone)]
pub enum Subject {
    /// Any program following the contract in this module's documentation.
    Command(Command),
    /// A client in this process, on the simulated clock: Figure2's own client library
    /// (injected by the runner, which knows the roles; the checker does not), or a
    /// deliberately broken one in tests.
    InProcess(Driver),
}

/// A client program under test.
#[derive(Debug, Clone)]
pub struct Command {
    pub argv: Vec<String>,
    pub timing: Timing,
    /// Where each check's files go: `ID.stdout`, `ID.stderr` (the program's output) and
    /// `ID.trace` (the requests the scripted servers saw and what they answered).
    pub output_dir: Option<std::path::PathBuf>,
}

/// What the client reported at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Ok,
    Reauthorize,
    Failed(String),
}

pub async fn run_catalogue(catalogue: &ClientCatalogue, subject: &Subject) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in &catalogue.checks {
        results.push(run_check(check, subject).await);
    }
    results
}

pub async fn run_check(check: &ClientCheck, subject: &Subject) -> CheckResult {
    let (verdict, reason) = match exercise(check, subject).await {
        Ok((ending, ledger, expires_in)) => {
            if let Subject::Command(Command { output_dir: Some(dir), .. }) = subject {
                let _ = std::fs::write(dir.join(format!("{}.trace", check.id)), trace(&ledger));
            }
            judge(check, &ending, &ledger, expires_in)
        }
        Err(e) => (Verdict::Fail, e),
    };
    CheckResult {
        id: check.id.clone(),
        role: Role::Client,
        section: check.section.clone(),
        keyword: check.keyword,
        summary: check.summary.clone(),
        verdict,
        reason,
    }
}

async fn exercise(check: &ClientCheck, subject: &Subject) -> Result<(Ending, Ledger, u64), String> {
    let simulated = SimulatedClock::starting_at(figure2_protocol::SIMULATION_EPOCH);
    let (now_ms, expires_in): (Box<dyn Fn() -> u64 + Send + Sync>, u64) = match subject {
        Subject::Command(command) => {
            let start = std::time::Instant::now();
            let scaled = command.timing.lifetime(check.script.expires_in).max(1);
            (Box::new(move || start.elapsed().as_millis() as u64), scaled)
        }
        _ => {
            let clock = simulated.clone();
            (Box::new(move || clock.now() * 1000), check.script.expires_in)
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let time_scale = match subject {
        Subject::Command(command) => command.timing.scale.max(1),
        Subject::InProcess(_) => 1,
    };
    // Real time only: in-process drivers share a simulated clock and are never held.
    let refresh_hold_ms =
        if matches!(subject, Subject::Command(_)) && check.concurrency > 1 { REFRESH_HOLD_MS } else { 0 };
    let scripted = Arc::new(Scripted {
        script: check.script.clone(),
        time_scale,
        expires_in,
        now_ms,
        issuer: base.clone(),
        ledger: Mutex::new(Ledger { refresh_hold_ms, ..Ledger::default() }),
        replay: dpop::ReplayCache::new(10_000),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(figure2_http::serve(listener, scripted.clone(), Limits::default(), async {
        let _ = stopped.await;
    }));
    let env = Env {
        issuer: base.clone(),
        token_endpoint: format!("{base}/token"),
        resource_url: format!("{base}/resource"),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        username: USERNAME.into(),
        password: PASSWORD.into(),
        scope: "read".into(),
        calls: check.calls.clone(),
        concurrency: check.concurrency,
        dpop: !check.script.dpop.is_empty(),
        clock: simulated,
    };
    let ending = match subject {
        Subject::InProcess(driver) => Ok(driver(env).await),
        Subject::Command(command) => drive_command(&env, command, check).await,
    };
    let _ = stop.send(());
    let _ = server.await;
    let ledger = std::mem::take(&mut *scripted.ledger.lock().unwrap_or_else(|e| e.into_inner()));
    Ok((ending?, ledger, expires_in))
}

/// Runs the futures concurrently on this task and collects their results in order.
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().flatten().collect()
}

pub fn worst(a: Ending, b: Ending) -> Ending {
    match (&a, &b) {
        (Ending::Reauthorize, _) | (_, Ending::Ok) => a,
        _ => b,
    }
}

async fn drive_command(env: &Env, command: &Command, check: &ClientCheck) -> Result<Ending, String> {
    let (program, args) = command.argv.split_first().ok_or("no command given")?;
    let timing = &command.timing;
    let real: Vec<f64> = env.calls.iter().map(|t| timing.real_time(*t, check.script.expires_in)).collect();
    let times: Vec<String> = real.iter().map(|t| format!("{t:.2}")).collect();
    let output = |suffix: &str| -> Result<std::process::Stdio, String> {
        match &command.output_dir {
            Some(dir) => std::fs::File::create(dir.join(format!("{}.{suffix}", check.id)))
                .map(std::process::Stdio::from)
                .map_err(|e| format!("cannot write to {}: {e}", dir.display())),
            None => Ok(std::process::Stdio::null()),
        }
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("FIGURE2_ISSUER", &env.issuer)
        .env("FIGURE2_TOKEN_ENDPOINT", &env.token_endpoint)
        .env("FIGURE2_RESOURCE_URL", &env.resource_url)
        .env("FIGURE2_CLIENT_ID", &env.client_id)
        .env("FIGURE2_CLIENT_SECRET", &env.client_secret)
        .env("FIGURE2_USERNAME", &env.username)
        .env("FIGURE2_PASSWORD", &env.password)
        .env("FIGURE2_SCOPE", &env.scope)
        .env("FIGURE2_CALL_TIMES", times.join(","))
        .env("FIGURE2_CONCURRENCY", env.concurrency.to_string())
        .env("FIGURE2_DPOP", if env.dpop { "1" } else { "0" })
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(output("stdout")?)
        .stderr(output("stderr")?)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    // Real time: the last call's time plus a margin, then the client is stopped.
    let last = real.iter().copied().fold(0.0, f64::max);
    let bound = std::time::Duration::from_secs(last.ceil() as u64 + 20);
    match tokio::time::timeout(bound, child.wait()).await {
        Ok(Ok(status)) => Ok(match status.code() {
            Some(0) => Ending::Ok,
            Some(3) => Ending::Reauthorize,
            _ => Ending::Failed(format!("the client {}", crate::server::exit_status(&status))),
        }),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            let _ = child.kill().await;
            Ok(Ending::Failed(format!("the client did not finish within {}s", bound.as_secs())))
        }
    }
}

/// The requests the scripted servers saw, one a line, tokens by number.
fn trace(ledger: &Ledger) -> String {
    let number = |list: &[String], t: &Option<String>| {
        t.as_ref()
            .and_then(|t| list.iter().position(|x| x == t))
            .map_or("unknown".to_owned(), |i| format!("#{}", i + 1))
    };
    let access: Vec<String> = ledger.access_tokens.iter().map(|(t, _)| t.clone()).collect();
    let mut out = String::new();
    let start = ledger.seen.first().map_or(0, |s| s.at);
    for s in &ledger.seen {
        let what = if s.to_resource {
            match &s.access_token {
                Some(_) => format!("resource with access token {}", number(&access, &s.access_token)),
                None => "resource without a token".to_owned(),
            }
        } else if s.presented_refresh_token.is_some() {
            format!(
                "refresh presenting refresh token {} (live: {})",
                number(&ledger.refresh_tokens, &s.presented_refresh_token),
                number(&ledger.refresh_tokens, &s.live_refresh_token)
            )
        } else {
            "token request (grant)".to_owned()
        };
        out.push_str(&format!("+{:>8.3}s  {what}  ->  {}\n", (s.at - start) as f64 / 1000.0, s.answer));
    }
    out
}

fn judge(check: &ClientCheck, ending: &Ending, ledger: &Ledger, expires_in: u64) -> (Verdict, String) {
    let e = &check.expect;
    let refreshes: Vec<&Seen> =
        ledger.seen.iter().filter(|s| !s.to_resource && s.presented_refresh_token.is_some()).collect();
    let resource: Vec<&Seen> = ledger.seen.iter().filter(|s| s.to_resource).collect();
    let mut problems = Vec::new();
    let ending_name = match ending {
        Ending::Ok => "ok".to_owned(),
        Ending::Reauthorize => "reauthorize".to_owned(),
        Ending::Failed(why) => format!("failed ({why})"),
    };
    match &e.outcome {
        Some(want) if !ending_name.starts_with(want.as_str()) => {
            problems.push(format!("expected the client to end {want}, it ended {ending_name}"))
        }
        None if *ending != Ending::Ok => problems.push(format!("the client ended {ending_name}")),
        _ => {}
    }
    if let Some(n) = e.refresh_requests
        && refreshes.len() != n
    {
        problems.push(format!("expected {n} refresh request(s), saw {}", refreshes.len()));
    }
    if let Some(n) = e.max_refresh_requests
        && refreshes.len() > n
    {
        problems.push(format!("expected at most {n} refresh request(s), saw {}", refreshes.len()));
    }
    if let Some(n) = e.max_resource_requests
        && resource.len() > n
    {
        problems.push(format!("expected at most {n} resource request(s), saw {}", resource.len()));
    }
    if e.expired_token_presented == Some(false) {
        let expired = resource.iter().filter(|s| {
            let issued =
                ledger.access_tokens.iter().find(|(t, _)| Some(t) == s.access_token.as_ref()).map(|(_, at)| *at);
            issued.is_some_and(|at| s.at >= at + expires_in * 1000)
        });
        let n = expired.count();
        if n > 0 {
            problems.push(format!("presented an access token it knew had expired {n} time(s) (step E: skip to G)"));
        }
    }
    // RFC 6749 §6: the client discards the old refresh token once it has the new one. A
    // presentation of an older token is stale only if it came after the client had the
    // successor: a second after it was issued, or after its held answer was sent (a
    // request already on its way when the new token came is not stale).
    let received_after = if ledger.refresh_hold_ms > 0 { ledger.refresh_hold_ms } else { 1000 };
    let stale_presentation = |s: &&&Seen| {
        let Some(presented) = s.presented_refresh_token.as_ref() else { return false };
        let Some(i) = ledger.refresh_tokens.iter().position(|t| t == presented) else { return false };
        ledger.refresh_issued_at.get(i + 1).is_some_and(|next| next + received_after <= s.at)
    };
    if e.presents_newest_refresh_token
        && let Some(stale) = refreshes.iter().find(stale_presentation)
    {
        let number = |t: &Option<String>| {
            t.as_ref().and_then(|t| ledger.refresh_tokens.iter().position(|rt| rt == t)).map_or(0, |i| i + 1)
        };
        problems.push(format!(
            "presented refresh token #{} when #{} was the live one (the rotated token was not kept)",
            number(&stale.presented_refresh_token),
            number(&stale.live_refresh_token)
        ));
    }
    if e.never_presents_replaced_refresh_token {
        // RFC 6749 §6: a refresh token once replaced is never presented again.
        let replaced: Vec<&&Seen> = refreshes
            .iter()
            .filter(|s| s.presented_refresh_token.is_some() && s.presented_refresh_token != s.live_refresh_token)
            .filter(|s| ledger.refresh_tokens.iter().any(|t| Some(t) == s.presented_refresh_token.as_ref()))
            .collect();
        if let Some(first) = replaced.first() {
            let number = |t: &Option<String>| {
                t.as_ref().and_then(|t| ledger.refresh_tokens.iter().position(|rt| rt == t)).map_or(0, |i| i + 1)
            };
            let after_successor = replaced.iter().filter(|s| stale_presentation(s)).count();
            problems.push(format!(
                "presented a replaced refresh token {} time(s) (first: #{} when #{} was the live one); {} of them \
                 after the answer carrying the successor {} (kept the old token), the rest while that answer was \
                 on its way (refreshes not single-flight); {} refresh request(s) in all",
                replaced.len(),
                number(&first.presented_refresh_token),
                number(&first.live_refresh_token),
                after_successor,
                if ledger.refresh_hold_ms > 0 { "had been sent" } else { "was a second old" },
                refreshes.len()
            ));
        }
    }
    if e.refresh_token_stays_private {
        for s in &resource {
            if ledger.refresh_tokens.iter().any(|rt| s.everything.contains(rt.as_str())) {
                problems.push("sent a refresh token to the resource server".into());
                break;
            }
        }
    }
    if let Some(n) = e.requests_after_invalid_grant
        && let Some(pos) = ledger.seen.iter().position(|s| s.answered_invalid_grant)
    {
        let refused = &ledger.seen[pos].presented_refresh_token;
        let later = &ledger.seen[pos + 1..];
        let is_grant = |s: &Seen| !s.to_resource && s.presented_refresh_token.is_none();
        // Step A again: a new grant is a new authorization, not a retry.
        let new_grant = later.iter().position(is_grant);
        let before_grant = new_grant.unwrap_or(later.len());
        if before_grant > n {
            problems.push(format!(
                "made {before_grant} request(s) after invalid_grant before {} (expected at most {n})",
                if new_grant.is_some() { "a new grant" } else { "stopping" }
            ));
        }
        if refused.is_some() && later.iter().any(|s| s.presented_refresh_token == *refused) {
            problems.push("presented the refresh token refused with invalid_grant again".into());
        }
        if new_grant.is_none() && *ending != Ending::Reauthorize {
            problems.push(format!("expected the client to end reauthorize or get a new grant, it ended {ending_name}"));
        }
    }
    let tokens: Vec<&Seen> = ledger.seen.iter().filter(|s| !s.to_resource).collect();
    // A client without DPoP (it ignored FIGURE2_DPOP) is not judged on DPoP's rules.
    let dpop_check = e.dpop_proofs || e.dpop_one_key || e.dpop_nonce_retry;
    let sent_proofs = ledger.seen.iter().any(|s| s.dpop.is_ok() || s.asked_nonce);
    if dpop_check && !sent_proofs && problems.is_empty() {
        return (Verdict::Skip, "not exercised: the client sent no DPoP proof (it does not use DPoP)".into());
    }
    if e.dpop_proofs {
        // A token request answered use_dpop_nonce was about its nonce, not its proof.
        if let Some(s) = ledger.seen.iter().find(|s| !s.asked_nonce && s.dpop.is_err()) {
            let to = if s.to_resource { "the resource server" } else { "the token endpoint" };
            problems.push(format!(
                "a request to {to} had no valid DPoP proof: {}",
                s.dpop.clone().err().unwrap_or_default()
            ));
        }
    }
    if e.dpop_one_key {
        let keys: std::collections::BTreeSet<&String> =
            ledger.seen.iter().filter_map(|s| s.dpop.as_ref().ok()).collect();
        if keys.len() > 1 {
            problems.push(format!(
                "proofs were made with {} different keys (RFC 9449 §5: the refresh token's key each time)",
                keys.len()
            ));
        }
    }
    if e.dpop_nonce_retry {
        for pair in tokens.windows(2) {
            if pair[0].asked_nonce && pair[1].dpop_nonce.as_deref() != Some(SCRIPTED_NONCE) {
                problems.push("after use_dpop_nonce the next token request did not carry the server's nonce".into());
                break;
            }
        }
    }
    if !problems.is_empty() {
        return (Verdict::Fail, problems.join("; "));
    }
    if e.dpop_nonce_retry && !tokens.iter().any(|s| s.asked_nonce) {
        return (Verdict::Skip, "not exercised: the token endpoint never had to ask for its nonce".into());
    }

    // A pass must rest on the situation the check is about having happened.
    if let Some(n) = e.situation_min_refresh_requests
        && refreshes.len() < n
    {
        return (
            Verdict::Skip,
            format!("not exercised: the client made {} refresh request(s), the check needs {n}", refreshes.len()),
        );
    }
    if e.keeps_refresh_token_when_unavailable {
        return judge_unavailable(ending, ledger, &resource);
    }
    if let Some(want) = e.lost_response {
        return judge_lost_response(want, ending, ledger, &resource);
    }
    if e.situation_refused_token_presented {
        let first = ledger.access_tokens.first().map(|(t, _)| t);
        let refused = resource.iter().filter(|s| s.access_token.as_ref() == first).count();
        if refused == 0 || !ledger.refused_once {
            return (
                Verdict::Skip,
                "not exercised: the client never presented the token the resource server refuses".into(),
            );
        }
    }
    if e.requests_after_invalid_grant.is_some() && !ledger.seen.iter().any(|s| s.answered_invalid_grant) {
        return (Verdict::Skip, "not exercised: the client never presented a refresh token to be refused".into());
    }
    if e.situation_concurrent_after_expiry {
        let expiry = ledger.access_tokens.first().map(|(_, at)| at + expires_in * 1000);
        let racing = resource.iter().filter(|s| expiry.is_some_and(|x| s.at >= x)).count();
        if racing < check.concurrency as usize {
            return (
                Verdict::Skip,
                format!(
                    "not exercised: {racing} resource request(s) after the first access token expired, the check \
                     needs {}",
                    check.concurrency
                ),
            );
        }
    }
    if e.never_presents_replaced_refresh_token {
        // Information, not judged: how many refreshes it took (1 with single flight).
        return (Verdict::Pass, format!("{} refresh request(s), none with a replaced token", refreshes.len()));
    }
    (Verdict::Pass, String::new())
}

/// The 429/503 checks: after the proxy's answer, the same refresh token is presented
/// again and accepted, and the client goes on.
fn judge_unavailable(ending: &Ending, ledger: &Ledger, resource: &[&Seen]) -> (Verdict, String) {
    let Some(presented) = ledger.unavailable_presented.as_ref().filter(|_| ledger.unavailable_sent) else {
        return (Verdict::Skip, "not exercised: the client never refreshed, so no proxy answered it".into());
    };
    if *ending == Ending::Reauthorize {
        return (
            Verdict::Fail,
            "the client asked for a new authorization after a 429/503, which says nothing about its refresh token"
                .into(),
        );
    }
    let Some(i) = ledger.seen.iter().position(|s| s.answer.starts_with("429") || s.answer.starts_with("503")) else {
        return (Verdict::Skip, "not exercised: no refresh was answered 429/503".into());
    };
    let Some(next) = ledger.seen[i + 1..].iter().find(|s| !s.to_resource && s.presented_refresh_token.is_some()) else {
        let grants =
            ledger.seen[i + 1..].iter().filter(|s| !s.to_resource && s.presented_refresh_token.is_none()).count();
        return (
            Verdict::Fail,
            if grants > 0 {
                "after the 429/503 the client started a new grant instead of refreshing: it dropped its refresh token"
                    .into()
            } else {
                "after the 429/503 the client never refreshed again: it dropped its refresh token".into()
            },
        );
    };
    if next.presented_refresh_token.as_ref() != Some(presented) {
        return (
            Verdict::Fail,
            "after the 429/503 the client presented another refresh token than the one it held".into(),
        );
    }
    if !next.answer.starts_with("200") {
        return (Verdict::Fail, format!("the refresh after the 429/503 was answered {}", next.answer));
    }
    match resource.last() {
        Some(last) if last.answer == "200" => (Verdict::Pass, String::new()),
        Some(last) => (Verdict::Fail, format!("the client's last call was answered {}", last.answer)),
        None => (Verdict::Fail, "the client made no call".into()),
    }
}

/// The lost-response checks: under a recovery policy the client must come back with the
/// refresh token it still holds and go on; under strict rotation being logged out is the
/// expected outcome, and the check passes if the client then stops.
fn judge_lost_response(want: LostResponse, ending: &Ending, ledger: &Ledger, resource: &[&Seen]) -> (Verdict, String) {
    let Some(lost) = &ledger.lost else {
        return (Verdict::Skip, "not exercised: the client never refreshed, so no answer was lost".into());
    };
    match want {
        LostResponse::LoggedOut => {
            // Back to step A: the client ends 'reauthorize', or gets a new grant itself
            // (a token request without a refresh token after the lost refresh).
            let lost_at = ledger
                .seen
                .iter()
                .position(|s| s.presented_refresh_token.as_deref() == Some(lost.predecessor.as_str()))
                .unwrap_or(0);
            let new_grant = ledger.seen[lost_at + 1..]
                .iter()
                .position(|s| !s.to_resource && s.presented_refresh_token.is_none())
                .map(|i| i + lost_at + 1);
            if let Some(pos) = ledger.seen.iter().position(|s| s.answered_invalid_grant) {
                let until = new_grant.filter(|g| *g > pos).unwrap_or(ledger.seen.len());
                let after = until - pos - 1;
                if after > 0 {
                    return (
                        Verdict::Fail,
                        format!(
                            "made {after} request(s) after invalid_grant before {} (expected none)",
                            if until < ledger.seen.len() { "a new grant" } else { "stopping" }
                        ),
                    );
                }
            }
            if let Some(g) = new_grant
                && ledger.seen[g..]
                    .iter()
                    .any(|s| s.presented_refresh_token.as_deref() == Some(lost.predecessor.as_str()))
            {
                return (
                    Verdict::Fail,
                    "after its new grant the client presented the lost family's refresh token again".into(),
                );
            }
            let retried = if lost.came_back { "strict rotation refused the retry" } else { "the client did not retry" };
            match (ending, new_grant) {
                (Ending::Reauthorize, _) => (
                    Verdict::Pass,
                    format!(
                        "expected outcome, not a client failure: {retried} and the client asked for a new authorization"
                    ),
                ),
                (_, Some(_)) => (
                    Verdict::Pass,
                    format!(
                        "expected outcome, not a client failure: {retried} and the client went back to step A itself (a new grant)"
                    ),
                ),
                (other, None) => (
                    Verdict::Fail,
                    format!(
                        "strict rotation revoked the family, yet the client ended {other:?} without a new authorization (neither 'reauthorize' nor a new grant)"
                    ),
                ),
            }
        }
        LostResponse::Recovers => {
            if !lost.came_back {
                return (
                    Verdict::Fail,
                    format!(
                        "after the lost answer the client never presented the refresh token it still held (it ended {ending:?}): the server would have taken it back"
                    ),
                );
            }
            if !lost.accepted {
                return (Verdict::Fail, "the client came back too late for the recovery policy".into());
            }
            // The call that met the lost answer may fail (the client cannot know what
            // happened); being sent back to step A may not.
            if *ending == Ending::Reauthorize {
                return (Verdict::Fail, "the retry was accepted, yet the client asked for a new authorization".into());
            }
            match resource.last() {
                Some(last) if last.answer == "200" => (Verdict::Pass, String::new()),
                Some(last) => (Verdict::Fail, format!("the client's last call was answered {}", last.answer)),
                None => (Verdict::Fail, "the client made no call".into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_policies_and_expectations_are_spelled_out() {
        let script: Script = toml::from_str("lose_refresh = true\nrecovery = \"idempotent\"").expect("parses");
        assert_eq!((script.recovery, script.grace_seconds, script.max_reuse), (Recovery::Idempotent, 30, 1));
        assert!(toml::from_str::<Script>("recovery = \"grace\"").is_err(), "a typo is an error, not strict rotation");
        let expect: ClientExpect = toml::from_str("lost_response = \"logged_out\"").expect("parses");
        assert_eq!(expect.lost_response, Some(LostResponse::LoggedOut));
    }

    /// Issue 16 (Authlib's AsyncOAuth2Client): refreshes serialised by a lock, each after
    /// the held answer that replaced the token it presents, kept the old token; one sent
    /// while that answer was held was in flight.
    #[test]
    fn a_replaced_token_presented_after_its_held_answer_was_kept_not_in_flight() {
        let catalogue = crate::client_catalogue().expect("catalogue");
        let refresh = |at: u64, presented: &str, live: &str, invalid_grant: bool| Seen {
            to_resource: false,
            at,
            everything: String::new(),
            access_token: None,
            presented_refresh_token: Some(presented.into()),
            live_refresh_token: Some(live.into()),
            answered_invalid_grant: invalid_grant,
            answer: String::new(),
            dpop: Err("no DPoP proof".into()),
            dpop_nonce: None,
            asked_nonce: false,
        };
        let ledger = |hold: u64| Ledger {
            seen: vec![
                refresh(100, "rt1", "rt1", false),
                refresh(130, "rt1", "rt2", true),
                refresh(700, "rt1", "rt2", true),
            ],
            refresh_tokens: vec!["rt1".into(), "rt2".into()],
            refresh_issued_at: vec![0, 100],
            live_refresh_token: Some("rt2".into()),
            refresh_hold_ms: hold,
            ..Ledger::default()
        };
        let check = |id: &str| catalogue.checks.iter().find(|c| c.id == id).expect("check").clone();
        let (verdict, reason) = judge(&check("CL-9700-single-flight"), &Ending::Ok, &ledger(REFRESH_HOLD_MS), 60);
        assert_eq!(verdict, Verdict::Fail, "{reason}");
        assert!(
            reason.contains("2 time(s)")
                && reason.contains("1 of them after the answer carrying the successor had been sent"),
            "{reason}"
        );
        // RFC 6749 §6's MUST: the one sent after the answer kept the old token.
        let (verdict, reason) =
            judge(&check("CL-6-concurrent-keeps-rotated-token"), &Ending::Ok, &ledger(REFRESH_HOLD_MS), 60);
        assert_eq!(verdict, Verdict::Fail, "{reason}");
        // Without a hold (in-process, answered at once) 600 ms is still in flight.
        let (_, reason) = judge(&check("CL-9700-single-flight"), &Ending::Ok, &ledger(0), 60);
        assert!(reason.contains("0 of them after the answer carrying the successor was a second old"), "{reason}");
    }

    #[test]
    fn timing_keeps_its_margins_at_any_scale_and_leeway() {
        for timing in [
            Timing::default(),
            Timing { scale: 1, ..Timing::default() },
            Timing { scale: 20, ..Timing::default() },
            Timing { client_leeway: 60, ..Timing::default() },
            Timing { token_lifetime: Some(7), ..Timing::default() },
        ] {
            let lifetime = timing.lifetime(60) as f64;
            // A call inside a token's life stays a margin before the client's deadline.
            for t in [30, 50, 59] {
                let at = timing.real_time(t, 60);
                assert!(at <= lifetime - timing.client_leeway as f64 - MARGIN_SECONDS, "{timing:?} {t}: {at}");
            }
            // Calls one period apart fall a margin after each successive token's expiry,
            // counted from when that token was issued (the call before).
            for k in 1..4u64 {
                let previous = timing.real_time((k - 1) * 61, 60);
                let at = timing.real_time(k * 61, 60);
                assert!(at - previous >= lifetime + MARGIN_SECONDS - 1e-9, "{timing:?} {k}: {previous} -> {at}");
            }
        }
        // The default: 60-second tokens live 12 s, and the call "at 61" comes at 14 s, not
        // 12.2 s (which whole-second rounding of expires_in could turn either way).
        assert_eq!(Timing::default().lifetime(60), 12);
        assert_eq!(Timing::default().real_time(61, 60), 14.0);
        // Authlib's 60-second leeway: tokens live 66 s, in-life calls stay before 4 s.
        let authlib = Timing { client_leeway: 60, ..Timing::default() };
        assert_eq!(authlib.lifetime(60), 66);
        assert_eq!(authlib.real_time(50, 60), 4.0);
    }
}
