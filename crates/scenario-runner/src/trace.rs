//! The annotated trace: every HTTP exchange labelled with its Figure 2 letter, the key
//! fields (tokens shortened to fingerprints, JWT claims decoded) and one line of
//! narration saying which step of RFC 6749 §1.5 it is.

use crate::lang::{Lang, Phrase, phrase};
use crate::world::SCENARIO_EPOCH;
use figure2_client::{Exchange, Step};
use figure2_protocol::NumericDate;
use figure2_protocol::access_token::decode_unverified;
use figure2_protocol::bearer::BearerChallenge;
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::fingerprint;
use serde::Serialize;

/// One thing that happened in a scenario, in order. Serialisable for exports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    Scenario {
        id: String,
        title: String,
        rfc: Vec<String>,
        authorization_server: String,
        resource_server: String,
    },
    Step {
        number: usize,
        label: String,
        note: Option<String>,
        t: u64,
    },
    /// The resource owner's browser at the authorization endpoint (how the grant of
    /// step A is obtained).
    ResourceOwner {
        line: String,
    },
    Exchange(TracedExchange),
    /// Something that happened on the wire or to a server, outside the client's view.
    Network {
        line: String,
    },
    Clock {
        advanced_by: u64,
        t: u64,
    },
    Check {
        ok: bool,
        message: String,
    },
    Done {
        passed: bool,
        steps: usize,
        exchanges: usize,
        failures: Vec<String>,
    },
}

/// An exchange with secrets shortened, ready to print.
#[derive(Debug, Clone, Serialize)]
pub struct TracedExchange {
    pub client_id: String,
    pub request_letter: char,
    pub response_letter: char,
    pub to: &'static str,
    pub method: String,
    pub path: String,
    pub request: Vec<(String, String)>,
    pub status: u16,
    pub response: Vec<(String, String)>,
    pub t: u64,
    /// The exchange as sent and received, secrets shortened (see [`crate::wire`]).
    pub raw: crate::wire::RawHttp,
    /// The JWT access token the exchange issued or presented, decoded.
    pub access_token: Option<crate::wire::DecodedJwt>,
}

/// Figure 2's steps in a sentence each (RFC 6749 §1.5, in our words), in English; see
/// [`crate::lang::narration`] for the other languages.
pub fn narration(letter: char, ok: bool) -> &'static str {
    crate::lang::narration(Lang::En, letter, ok)
}

/// Shortens an access token for display: its fingerprint and, if it is a JWT, `jwt`.
pub fn short_access_token(token: &str) -> String {
    let kind = if decode_unverified(token).is_some() { "jwt" } else { "opaque" };
    format!("at#{} ({kind}, {} bytes)", fingerprint(token), token.len())
}

pub fn short_refresh_token(token: &str) -> String {
    format!("rt#{}", fingerprint(token))
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
            request_letter: x.step.request_letter(),
            response_letter: x.step.response_letter(),
            to,
            method: x.method.clone(),
            path,
            request,
            status: x.status,
            response,
            t: x.at,
            raw: crate::wire::RawHttp::from_exchange(x),
            access_token: crate::wire::DecodedJwt::from_exchange(x),
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

/// Prints events as the human-readable trace.
pub fn print_text(event: &TraceEvent, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    print_text_in(event, Lang::En, out)
}

/// Prints events as the human-readable trace, narrated in `lang`.
pub fn print_text_in(event: &TraceEvent, lang: Lang, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    match event {
        TraceEvent::Scenario { id, title, rfc, authorization_server, resource_server } => {
            writeln!(out, "━━ scenario {id}: {title}")?;
            if !rfc.is_empty() {
                writeln!(out, "   shows {}", rfc.join(", "))?;
            }
            writeln!(out, "   authorization server {authorization_server}   resource server {resource_server}")?;
        }
        TraceEvent::Step { number, label, note, t } => {
            writeln!(out)?;
            writeln!(out, "── {number}. {label}   [{}]", relative(*t))?;
            if let Some(note) = note {
                writeln!(out, "   {note}")?;
            }
        }
        TraceEvent::ResourceOwner { line } => {
            writeln!(out, "   ({}) {line}", phrase(lang, Phrase::ResourceOwner, &[]))?
        }
        TraceEvent::Network { line } => writeln!(out, "   ⚡ {line}")?,
        TraceEvent::Exchange(x) => {
            writeln!(out, " ({}) {} → {}: {} {}", x.request_letter, x.client_id, x.to, x.method, x.path)?;
            for (k, v) in &x.request {
                writeln!(out, "       {k}: {v}")?;
            }
            writeln!(out, "       ↳ {}", crate::lang::narration(lang, x.request_letter, true))?;
            writeln!(out, " ({}) {} → {}: {}", x.response_letter, x.to, x.client_id, x.status)?;
            for (k, v) in &x.response {
                writeln!(out, "       {k}: {v}")?;
            }
            writeln!(out, "       ↳ {}", crate::lang::response_narration(lang, x.response_letter, x.status))?;
        }
        TraceEvent::Clock { advanced_by, t } => {
            let (by, to) = (advanced_by.to_string(), relative(*t));
            writeln!(out, "   {}", phrase(lang, Phrase::ClockMoves, &[&by, &to]))?;
        }
        TraceEvent::Check { ok, message } => {
            writeln!(out, "   {} {message}", if *ok { "✔" } else { "✘" })?;
        }
        TraceEvent::Done { passed, steps, exchanges, failures } => {
            writeln!(out)?;
            if *passed {
                let (steps, exchanges) = (steps.to_string(), exchanges.to_string());
                writeln!(out, "✔ {}", phrase(lang, Phrase::Passed, &[&steps, &exchanges]))?;
            } else {
                writeln!(out, "✘ {}", phrase(lang, Phrase::Failed, &[&failures.len().to_string()]))?;
                for f in failures {
                    writeln!(out, "   - {f}")?;
                }
            }
        }
    }
    Ok(())
}
