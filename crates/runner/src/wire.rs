//! An exchange as it went over the wire, for the live view and the Markdown transcript:
//! the request and response in HTTP/1.1 form with every secret shortened the way the
//! trace shortens it (tokens become fingerprints, passwords and client secrets
//! `[redacted]`), and the JWT access token of the exchange decoded.

use figure2_client::{Exchange, Step};
use figure2_protocol::access_token::decode_unverified;
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::fingerprint;
use serde::Serialize;

/// The longest body shown; anything longer is cut (bodies here are small JSON).
const MAX_BODY_CHARS: usize = 2000;

/// Response headers left out: `date` is the wall clock (the scenario runs on a simulated
/// one) and `content-length` no longer matches a body whose tokens were shortened.
const OMITTED_RESPONSE_HEADERS: [&str; 3] = ["date", "content-length", "transfer-encoding"];

/// The request and the response as text, secrets shortened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RawHttp {
    pub request: String,
    pub response: String,
}

/// A JWT access token, decoded without verification (the resource server verified it).
#[derive(Debug, Clone, Serialize)]
pub struct DecodedJwt {
    /// `issued` (in a token response) or `presented` (in `Authorization: Bearer`).
    pub role: &'static str,
    /// The token's fingerprint, `at#…`.
    pub token: String,
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
}

/// A DPoP proof (RFC 9449 §4.2) a request carried, decoded without verification (the
/// server verified it): what the learner sees beside the request.
#[derive(Debug, Clone, Serialize)]
pub struct DecodedProof {
    /// The proof's fingerprint, `proof#…` (a proof is single-use: shown, not replayable).
    pub proof: String,
    /// `typ` (`dpop+jwt`), `alg` and the public `jwk`.
    pub header: serde_json::Value,
    /// `jti`, `htm`, `htu`, `iat`, and `ath` and `nonce` when present.
    pub claims: serde_json::Value,
    /// The RFC 7638 SHA-256 thumbprint of the `jwk`: the `cnf.jkt` of tokens bound to it.
    pub jkt: Option<String>,
}

impl DecodedProof {
    /// The `DPoP` header of an exchange's request, decoded.
    pub fn from_exchange(x: &Exchange) -> Option<Self> {
        let (_, proof) = x.request_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("dpop"))?;
        let (header, claims) = decode_unverified(proof)?;
        let jkt = header.get("jwk").and_then(figure2_protocol::dpop::jwk_thumbprint);
        Some(Self { proof: format!("proof#{}", fingerprint(proof)), header, claims, jkt })
    }

    /// One line: `jkt=… htm=POST htu=… iat=t+0s jti=… nonce=… ath=…`.
    pub fn summary(&self) -> String {
        let s = |v: &serde_json::Value| v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string());
        let mut parts = vec![
            format!("typ={}", s(&self.header["typ"])),
            format!("alg={}", s(&self.header["alg"])),
            format!("jkt={}", self.jkt.as_deref().unwrap_or("?")),
            format!("htm={}", s(&self.claims["htm"])),
            format!("htu={}", s(&self.claims["htu"])),
        ];
        if let Some(iat) = figure2_protocol::NumericDate::from_json(&self.claims["iat"]) {
            parts.push(format!("iat={}", crate::trace::relative(iat.whole_seconds())));
        }
        parts.push(format!("jti={}", s(&self.claims["jti"])));
        for optional in ["ath", "nonce"] {
            if let Some(v) = self.claims.get(optional).and_then(|v| v.as_str()) {
                parts.push(format!("{optional}={v}"));
            }
        }
        parts.join(" ")
    }
}

impl RawHttp {
    pub fn from_exchange(x: &Exchange) -> Self {
        let uri = x.url.parse::<http::Uri>().ok();
        let path = uri.as_ref().and_then(|u| u.path_and_query()).map_or("/".to_owned(), |p| p.to_string());
        let host = uri.as_ref().and_then(|u| u.authority()).map_or(String::new(), |a| a.to_string());
        let mut request = format!("{} {path} HTTP/1.1\nhost: {host}\n", x.method);
        for (name, value) in &x.request_headers {
            request.push_str(&format!("{}: {}\n", name.to_ascii_lowercase(), shorten_header(name, value)));
        }
        if !x.request_body.is_empty() {
            request.push('\n');
            let is_form = x
                .request_headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("content-type") && v.contains("x-www-form-urlencoded"));
            if is_form {
                request.push_str(&shorten_form(&x.request_body));
            } else {
                request.push_str(&cut(&x.request_body));
            }
            request.push('\n');
        }
        let reason = http::StatusCode::from_u16(x.status).ok().and_then(|s| s.canonical_reason()).unwrap_or("");
        let mut response = format!("HTTP/1.1 {} {reason}\n", x.status);
        for (name, value) in &x.response_headers {
            let lower = name.to_ascii_lowercase();
            if OMITTED_RESPONSE_HEADERS.contains(&lower.as_str()) {
                continue;
            }
            response.push_str(&format!("{lower}: {}\n", shorten_header(name, value)));
        }
        if !x.response_body.is_empty() {
            response.push('\n');
            let body = match x.step {
                Step::AuthorizationGrant | Step::Refresh => shorten_token_response(&x.response_body),
                _ => x.response_body.clone(),
            };
            response.push_str(&cut(&body));
            response.push('\n');
        }
        Self { request, response }
    }
}

impl DecodedJwt {
    /// The access token an exchange issued (token endpoint) or presented (resource
    /// server), if it is a JWT.
    pub fn from_exchange(x: &Exchange) -> Option<Self> {
        let (role, token) = match x.step {
            Step::AuthorizationGrant | Step::Refresh => {
                let body: serde_json::Value = serde_json::from_str(&x.response_body).ok()?;
                ("issued", body.get("access_token")?.as_str()?.to_owned())
            }
            Step::ProtectedResource | Step::InvalidToken => {
                let auth = x.request_headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("authorization"))?;
                let (scheme, token) = auth.1.split_once(' ')?;
                // RFC 6750 §2.1 Bearer, or RFC 9449 §7.1 DPoP: the same JWT either way.
                if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("dpop") {
                    return None;
                }
                ("presented", token.trim().to_owned())
            }
        };
        let (header, claims) = decode_unverified(&token)?;
        Some(Self { role, token: format!("at#{}", fingerprint(&token)), header, claims })
    }
}

/// Shortens an access token for display: its fingerprint and, if it is a JWT, `jwt`.
pub fn short_access_token(token: &str) -> String {
    let kind = if decode_unverified(token).is_some() { "jwt" } else { "opaque" };
    format!("at#{} ({kind}, {} bytes)", fingerprint(token), token.len())
}

/// A refresh token as the trace names it: `rt#` and its fingerprint.
pub fn short_refresh_token(token: &str) -> String {
    format!("rt#{}", fingerprint(token))
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MAX_BODY_CHARS {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(MAX_BODY_CHARS).collect();
    out.push_str("… (cut)");
    out
}

/// `Authorization` carries credentials: a Bearer token becomes its fingerprint, Basic
/// credentials keep only the client id.
fn shorten_header(name: &str, value: &str) -> String {
    if name.eq_ignore_ascii_case("dpop") {
        // RFC 9449 §4.2: the proof, decoded beside the request.
        return format!("proof#{}", fingerprint(value.trim()));
    }
    if !name.eq_ignore_ascii_case("authorization") {
        return value.to_owned();
    }
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop") => {
            format!("{scheme} at#{}", fingerprint(token.trim()))
        }
        Some((scheme, encoded)) if scheme.eq_ignore_ascii_case("basic") => {
            let decoded = base64_decode(encoded.trim()).and_then(|b| String::from_utf8(b).ok());
            let id = decoded.as_deref().and_then(|d| d.split_once(':')).map(|(id, _)| id.to_owned());
            match id {
                Some(id) => format!("{scheme} base64({id}:[redacted])"),
                None => format!("{scheme} [redacted]"),
            }
        }
        Some((scheme, _)) => format!("{scheme} [redacted]"),
        None => "[redacted]".into(),
    }
}

/// A form body in its original order, each secret value shortened.
fn shorten_form(body: &str) -> String {
    body.split('&')
        .map(|pair| {
            let Some((key, _)) = pair.split_once('=') else {
                return pair.to_owned();
            };
            let value = FormParams::parse(pair.as_bytes()).ok().and_then(|f| f.get(key).map(str::to_owned));
            let Some(value) = value else {
                return pair.to_owned();
            };
            match key {
                "refresh_token" => format!("{key}={}", short_refresh_token(&value)),
                "token" | "access_token" => format!("{key}=tok#{}", fingerprint(&value)),
                "code" => format!("{key}=code#{}", fingerprint(&value)),
                "password" | "client_secret" | "code_verifier" | "client_assertion" => format!("{key}=[redacted]"),
                _ => pair.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A token response as sent, its tokens replaced by their fingerprints in place.
fn shorten_token_response(body: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(body) else {
        return body.to_owned();
    };
    let mut out = body.to_owned();
    for (key, value) in &fields {
        let Some(token) = value.as_str() else { continue };
        let short = match key.as_str() {
            "access_token" => format!("at#{}", fingerprint(token)),
            "refresh_token" => short_refresh_token(token),
            "id_token" => format!("id#{}", fingerprint(token)),
            _ => continue,
        };
        // The token as JSON-encoded in the body (tokens here are URL-safe: no escapes).
        out = out.replace(&format!("\"{token}\""), &format!("\"{short}\""));
    }
    out
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(step: Step, body: &str, response: &str) -> Exchange {
        Exchange {
            step,
            method: "POST".into(),
            url: "http://127.0.0.1:8080/token".into(),
            request_headers: vec![
                ("authorization".into(), "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ=".into()),
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
            ],
            request_body: body.into(),
            status: 200,
            response_headers: vec![
                ("content-type".into(), "application/json".into()),
                ("date".into(), "Thu, 01 Jan 2026 00:00:00 GMT".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            response_body: response.into(),
            at: 0,
        }
    }

    #[test]
    fn no_secret_survives() {
        let x = exchange(
            Step::AuthorizationGrant,
            "grant_type=password&username=alice&password=alice-password&scope=read+write",
            r#"{"access_token":"opaque-access","refresh_token":"the-refresh-token","token_type":"Bearer"}"#,
        );
        let raw = RawHttp::from_exchange(&x);
        for secret in
            ["alice-password", "demo-secret", "ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ", "opaque-access", "the-refresh"]
        {
            assert!(!raw.request.contains(secret) && !raw.response.contains(secret), "{secret} leaked:\n{raw:?}");
        }
        assert!(raw.request.starts_with("POST /token HTTP/1.1\nhost: 127.0.0.1:8080\n"));
        assert!(raw.request.contains("authorization: Basic base64(demo-client:[redacted])"));
        assert!(raw.request.ends_with("grant_type=password&username=alice&password=[redacted]&scope=read+write\n"));
        assert!(raw.response.contains(&format!("\"refresh_token\":\"rt#{}\"", fingerprint("the-refresh-token"))));
        assert!(raw.response.starts_with("HTTP/1.1 200 OK\ncontent-type: application/json\ncache-control: no-store\n"));
        assert!(!raw.response.contains("date:"));
        assert!(DecodedJwt::from_exchange(&x).is_none(), "an opaque token is not decoded");
    }
}
