//! The HTTP face of the resource server: routes, RFC 6750 §2 token extraction, and the
//! RFC 6750 §3 answers; the `DPoP` scheme of RFC 9449 §7 beside `Bearer`.
//!
//! ```text
//! GET  /health          200 ok, no token needed (every GET route answers HEAD too)
//! GET  /metrics         Prometheus / OpenMetrics text (see `crate::metrics`)
//! GET  /resource/read   scope read     (step C → D, or E → F)
//! POST /resource/write  scope write    (body up to 16 KiB, echoed back)
//! GET  /resource/admin  scope admin
//! ```

use crate::ResourceServer;
use crate::validation::TokenRejection;
use bytes::Bytes;
use figure2_http::{BodyError, Handler, HttpResponse, has_content_type, json, read_body, text};
use figure2_protocol::FlowStep;
use figure2_protocol::access_token::AccessTokenClaims;
use figure2_protocol::bearer::{self, BearerChallenge, BearerErrorCode};
use figure2_protocol::dpop::{self, DpopChallenge, DpopChallengeError, DpopRejection};
use figure2_protocol::secret::fingerprint;
use http::{HeaderMap, Method, Request, header};
use hyper::body::Incoming;
use serde::Serialize;
use std::sync::Arc;
use tracing::Instrument;

/// Largest body `POST /resource/write` accepts.
pub const WRITE_BODY_LIMIT: usize = 16 * 1024;

/// RFC 6750 §5.3 and RFC 9700: responses carrying protected data or token errors must
/// not be cached.
const NO_STORE: (&str, &str) = ("cache-control", "no-store");

/// The protected resources, each with the scope token it needs (RFC 6749 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Read,
    Write,
    Admin,
}

impl Resource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }

    pub fn required_scope(self) -> &'static str {
        self.name()
    }

    pub fn method(self) -> Method {
        match self {
            Self::Write => Method::POST,
            Self::Read | Self::Admin => Method::GET,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Protected(Resource),
}

impl Route {
    fn from_path(path: &str) -> Option<Self> {
        match path {
            "/health" => Some(Self::Health),
            "/resource/read" => Some(Self::Protected(Resource::Read)),
            "/resource/write" => Some(Self::Protected(Resource::Write)),
            "/resource/admin" => Some(Self::Protected(Resource::Admin)),
            _ => None,
        }
    }

    fn method(self) -> Method {
        match self {
            Self::Health => Method::GET,
            Self::Protected(r) => r.method(),
        }
    }
}

impl Handler for ResourceServer {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> HttpResponse {
        let span =
            tracing::info_span!("figure2.resource_server", method = %request.method(), path = %request.uri().path());
        async move {
            if request.uri().path() == "/metrics" {
                return crate::metrics::handle(&self.metrics, request.method());
            }
            let Some(route) = Route::from_path(request.uri().path()) else {
                return error_json(404, "not_found", "No such resource", &[]);
            };
            // RFC 9110 §9.3.2: a HEAD arrives here as GET (figure2_http), so every GET
            // route answers it, with the same status and headers (a 401's challenge too).
            let allowed = route.method();
            if request.method() != allowed {
                // RFC 9110 §15.5.6: a 405 MUST carry Allow. On a protected resource it
                // also carries the bare RFC 6750 §3 challenge (RFC 9110 §11.6.1 allows
                // WWW-Authenticate on any answer): the resource still needs a Bearer token.
                let allow = figure2_http::allow_value(&[allowed]);
                let challenge = BearerChallenge::unauthenticated(&self.config.realm).to_header_value();
                let mut headers = vec![("allow", allow.as_str())];
                if matches!(route, Route::Protected(_)) {
                    headers.push(("www-authenticate", challenge.as_str()));
                }
                return error_json(405, "method_not_allowed", "Method not allowed", &headers);
            }
            match route {
                Route::Health => text(200, "text/plain; charset=utf-8", "ok", &[]),
                Route::Protected(resource) => {
                    let started = std::time::Instant::now();
                    let response = self.protected(resource, request).await;
                    self.metrics.observe(&response, started.elapsed());
                    response
                }
            }
        }
        .instrument(span)
        .await
    }
}

#[derive(Serialize)]
struct ResourceBody<'a> {
    resource: &'a str,
    sub: &'a str,
    client_id: &'a str,
    scope: String,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    echo: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// How the access token was presented (the `Authorization` scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// RFC 6750 §2.1.
    Bearer,
    /// RFC 9449 §7.1, with a proof in the `DPoP` header.
    Dpop,
}

/// A refusal in the words of the scheme the client used.
struct Refusal {
    scheme: Scheme,
    error: DpopChallengeError,
    description: &'static str,
    scope: Option<&'static str>,
    /// RFC 9449 §9: a fresh nonce with `use_dpop_nonce`.
    nonce: Option<String>,
}

impl Refusal {
    fn new(scheme: Scheme, error: DpopChallengeError, description: &'static str) -> Self {
        Self { scheme, error, description, scope: None, nonce: None }
    }
}

impl ResourceServer {
    async fn protected(&self, resource: Resource, request: Request<Incoming>) -> HttpResponse {
        let (parts, body) = request.into_parts();
        // The write body is read first (bounded) so that a form-encoded `access_token`
        // in it counts as a second method (RFC 6750 §2.2, §3.1).
        let body = if resource == Resource::Write {
            match read_body(body, WRITE_BODY_LIMIT).await {
                Ok(b) => b,
                Err(BodyError::TooLarge(limit)) => {
                    let description = format!("The request body exceeds {limit} bytes");
                    return error_json(413, "invalid_request", &description, &[NO_STORE]);
                }
                Err(BodyError::Io) => {
                    return error_json(400, "invalid_request", "The request body could not be read", &[NO_STORE]);
                }
            }
        } else {
            Bytes::new()
        };

        let (token, scheme) = match presented_token(&parts.headers, parts.uri.query(), &body) {
            Ok(Some(presented)) => presented,
            Ok(None) => {
                // RFC 6750 §3.1: a request with no authentication gets a bare challenge
                // (RFC 9449 §7.1: one per scheme, DPoP's with `algs`).
                tracing::info!(step = %FlowStep::D, outcome = "no_token", "401: no access token presented");
                return self.bare_challenge();
            }
            Err(description) => {
                tracing::info!(step = %FlowStep::D, outcome = "invalid_request", description, "400: malformed request");
                return self.refuse(Refusal::new(Scheme::Bearer, DpopChallengeError::InvalidRequest, description));
            }
        };

        // Computed only if a log line is written (a SHA-256 per request otherwise).
        let token_fp = Fingerprint(token);
        // RFC 9449 §7.1: with the DPoP scheme the proof is checked first (§4.3, with ath).
        let proof = match scheme {
            Scheme::Dpop => match self.check_dpop_proof(&parts, token) {
                Ok(proof) => Some(proof),
                Err(rejection) => return self.dpop_refused(&token_fp, rejection),
            },
            Scheme::Bearer => None,
        };
        let claims = match self.validate(token).await {
            Ok(claims) => claims,
            Err(rejection) => return self.invalid_token(scheme, &token_fp, rejection),
        };
        match (&proof, claims.dpop_jkt()) {
            // §4.3 point 12 / §7.1: the proof's key is the one the token is bound to (a
            // token with no binding is not a DPoP token).
            (Some(proof), bound) => {
                if let Err(rejection) = dpop::check_key_binding(bound.unwrap_or_default(), proof) {
                    return self.dpop_refused(&token_fp, rejection);
                }
            }
            // §7.2: a DPoP-bound token presented as a bearer token MUST be refused.
            (None, Some(_)) => {
                tracing::info!(step = %FlowStep::F, token = %token_fp, "401: DPoP-bound token presented as Bearer");
                let description = "The access token is DPoP-bound: present it with the DPoP scheme and a proof";
                return self.refuse(Refusal::new(Scheme::Bearer, DpopChallengeError::InvalidToken, description));
            }
            (None, None) => {}
        }

        // RFC 7662 §2.1, when configured: the first use of this token is reported to the
        // authorization server (usage-based recovery, see crate::first_use).
        if self.first_use.report(&self.http, token, &claims.jti).await == crate::first_use::Report::Inactive {
            tracing::info!(step = %FlowStep::F, token = %token_fp, "401: introspection answered active=false");
            return self.refuse(Refusal::new(
                scheme,
                DpopChallengeError::InvalidToken,
                "The authorization server no longer considers the access token active",
            ));
        }

        // RFC 6750 §3.1: the token is good but lacks the scope this resource needs.
        let needed = resource.required_scope();
        let granted = claims.scope();
        if !granted.contains(needed) {
            tracing::info!(
                step = %FlowStep::D,
                outcome = "insufficient_scope",
                token = %token_fp,
                sub = %claims.sub,
                needed,
                granted = %granted,
                "403: insufficient scope"
            );
            let mut refusal = Refusal::new(
                scheme,
                DpopChallengeError::InsufficientScope,
                "The access token lacks the required scope",
            );
            refusal.scope = Some(needed);
            return self.refuse(refusal);
        }

        tracing::info!(
            step = %FlowStep::D,
            outcome = "served",
            token = %token_fp,
            sub = %claims.sub,
            client_id = %claims.client_id,
            resource = resource.name(),
            dpop = proof.is_some(),
            "200: protected resource served"
        );
        let mut response = served(resource, &claims, &granted.to_string(), &body);
        if let Some(nonce) = self.dpop_nonce().and_then(|n| http::HeaderValue::from_str(&n).ok()) {
            response.headers_mut().insert(dpop::NONCE_HEADER, nonce);
        }
        response
    }

    /// Step F: RFC 6750 §3.1 `invalid_token`, 401.
    fn invalid_token(&self, scheme: Scheme, token_fp: &Fingerprint<'_>, rejection: TokenRejection) -> HttpResponse {
        tracing::info!(step = %FlowStep::F, token = %token_fp, reason = %rejection, "401: invalid_token");
        self.refuse(Refusal::new(scheme, DpopChallengeError::InvalidToken, rejection.description()))
    }

    /// RFC 9449 §7.1 / §9: a refused proof (`invalid_dpop_proof`, `use_dpop_nonce` with a
    /// fresh nonce) or key binding (`invalid_token`).
    fn dpop_refused(&self, token_fp: &Fingerprint<'_>, rejection: DpopRejection) -> HttpResponse {
        tracing::info!(step = %FlowStep::F, token = %token_fp, reason = %rejection, "401: DPoP proof refused");
        let description = match rejection {
            DpopRejection::UseNonce => "Resource server requires nonce in DPoP proof",
            DpopRejection::KeyNotBound => "Invalid DPoP key binding",
            DpopRejection::Replayed => "DPoP proof was already used",
            DpopRejection::Stale => "DPoP proof iat is outside the acceptable window",
            DpopRejection::WrongAccessTokenHash => "DPoP proof ath does not match the access token",
            DpopRejection::WrongMethod | DpopRejection::WrongUri => "DPoP proof htm or htu does not match the request",
            DpopRejection::Missing => "The DPoP scheme needs a DPoP proof",
            _ => "DPoP proof is invalid",
        };
        let mut refusal = Refusal::new(Scheme::Dpop, rejection.challenge_error(), description);
        if rejection == DpopRejection::UseNonce {
            refusal.nonce = self.dpop_nonce();
        }
        self.refuse(refusal)
    }

    /// RFC 6750 §3.1 / RFC 9449 §7.1: a request without authentication: a bare challenge
    /// for each scheme, no error, no body.
    fn bare_challenge(&self) -> HttpResponse {
        let bearer = BearerChallenge::unauthenticated(&self.config.realm).to_header_value();
        let dpop = DpopChallenge::new(&self.config.realm, &self.config.dpop_algorithms).to_header_value();
        let headers = [("www-authenticate", bearer.as_str()), ("www-authenticate", dpop.as_str()), NO_STORE];
        text(401, "text/plain; charset=utf-8", Bytes::new(), &headers)
    }

    /// An RFC 6750 §3 / RFC 9449 §7.1 answer: the challenge of the scheme the client used
    /// (after a Bearer refusal, a bare DPoP challenge advertises `algs`), its status, and
    /// the same error as a small JSON body.
    fn refuse(&self, refusal: Refusal) -> HttpResponse {
        let realm = &self.config.realm;
        let dpop = DpopChallenge::new(realm, &self.config.dpop_algorithms);
        let (status, first, second) = match refusal.scheme {
            Scheme::Bearer => {
                let code = match refusal.error {
                    DpopChallengeError::InvalidRequest => BearerErrorCode::InvalidRequest,
                    DpopChallengeError::InsufficientScope => BearerErrorCode::InsufficientScope,
                    _ => BearerErrorCode::InvalidToken,
                };
                let mut c = BearerChallenge::error(realm, code, refusal.description);
                if let Some(scope) = refusal.scope {
                    c = c.with_scope(scope);
                }
                (c.http_status(), c.to_header_value(), Some(dpop.to_header_value()))
            }
            Scheme::Dpop => {
                let mut c = dpop.with_error(refusal.error, refusal.description);
                if let Some(scope) = refusal.scope {
                    c = c.with_scope(scope);
                }
                (c.http_status(), c.to_header_value(), None)
            }
        };
        let mut headers = vec![("www-authenticate", first.as_str())];
        if let Some(second) = &second {
            headers.push(("www-authenticate", second.as_str()));
        }
        headers.push(NO_STORE);
        if let Some(nonce) = &refusal.nonce {
            headers.push((dpop::NONCE_HEADER, nonce.as_str()));
        }
        let body =
            ErrorBody { error: refusal.error.as_str(), error_description: refusal.description, scope: refusal.scope };
        json(status, &body, &headers)
    }
}

/// A token's [`fingerprint`] for the log, computed when displayed.
struct Fingerprint<'a>(&'a str);

impl std::fmt::Display for Fingerprint<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&fingerprint(self.0))
    }
}

fn served(resource: Resource, claims: &AccessTokenClaims, scope: &str, body: &Bytes) -> HttpResponse {
    let message = match resource {
        Resource::Read => "Figure 2 step D: here is the protected resource",
        Resource::Write => "Figure 2 step D: the protected resource accepted your write",
        Resource::Admin => "Figure 2 step D: here is the admin resource",
    };
    let echo = (resource == Resource::Write).then(|| String::from_utf8_lossy(body).into_owned());
    let body = ResourceBody {
        resource: resource.name(),
        sub: &claims.sub,
        client_id: &claims.client_id,
        scope: scope.to_owned(),
        message,
        echo,
    };
    json(200, &body, &[NO_STORE])
}

fn error_json(status: u16, error: &str, description: &str, headers: &[(&str, &str)]) -> HttpResponse {
    json(status, &ErrorBody { error, error_description: description, scope: None }, headers)
}

/// RFC 6750 §2: finds the access token of a request.
///
/// Only the Authorization header (§2.1) is supported; a query (§2.3) or form-body (§2.2)
/// `access_token` alone reads as no token (RFC 9700 §2.4 discourages URI tokens), but
/// together with the header, or repeated, it is "more than one method" (§3.1): 400.
/// Returns the `error_description` of an `invalid_request` on failure.
fn presented_token<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<Option<(&'a str, Scheme)>, &'static str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next();
    if values.next().is_some() {
        return Err("More than one Authorization header");
    }
    let value = match value.map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return Err("The Authorization header is not visible ASCII"),
    };
    let header_token = match bearer::extract_bearer_token(value) {
        Ok(Some(token)) => Some((token, Scheme::Bearer)),
        Ok(None) => dpop::extract_dpop_token(value)
            .map_err(|_| "The DPoP credentials are malformed (RFC 9449 §7.1)")?
            .map(|token| (token, Scheme::Dpop)),
        Err(_) => return Err("The Bearer credentials are malformed (RFC 6750 §2.1)"),
    };

    let mut methods =
        usize::from(header_token.is_some()) + count_access_token_params(query.unwrap_or_default().as_bytes());
    if has_content_type(headers, "application/x-www-form-urlencoded") {
        methods += count_access_token_params(body);
    }
    if methods > 1 {
        return Err("The access token was presented by more than one method");
    }
    Ok(header_token)
}

/// How many `access_token` parameters an `application/x-www-form-urlencoded` string holds.
fn count_access_token_params(encoded: &[u8]) -> usize {
    if encoded.is_empty() {
        return 0;
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(encoded)
        .map(|pairs| pairs.iter().filter(|(name, _)| name == "access_token").count())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static [u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn routes_and_methods() {
        assert_eq!(Route::from_path("/resource/read"), Some(Route::Protected(Resource::Read)));
        assert_eq!(Route::from_path("/resource/write").map(Route::method), Some(Method::POST));
        assert_eq!(Route::from_path("/resource/read/"), None);
        assert_eq!(Route::from_path("/"), None);
    }

    #[test]
    fn rfc6750_2_1_header_token() {
        let h = headers(&[("authorization", b"Bearer mF_9.B5f-4.1JqM")]);
        assert_eq!(presented_token(&h, None, b""), Ok(Some(("mF_9.B5f-4.1JqM", Scheme::Bearer))));
        let d = headers(&[("authorization", b"DPoP mF_9.B5f-4.1JqM")]);
        assert_eq!(presented_token(&d, None, b""), Ok(Some(("mF_9.B5f-4.1JqM", Scheme::Dpop))));
        assert!(presented_token(&d, Some("access_token=x"), b"").is_err());
        assert!(presented_token(&headers(&[("authorization", b"DPoP")]), None, b"").is_err());
        assert_eq!(presented_token(&HeaderMap::new(), None, b""), Ok(None));
        let basic = headers(&[("authorization", b"Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW")]);
        assert_eq!(presented_token(&basic, None, b""), Ok(None));
        assert!(presented_token(&headers(&[("authorization", b"Bearer")]), None, b"").is_err());
        assert!(presented_token(&headers(&[("authorization", b"Bearer \xff")]), None, b"").is_err());
    }

    #[test]
    fn more_than_one_method_is_invalid_request() {
        let h = headers(&[("authorization", b"Bearer abc")]);
        assert!(presented_token(&h, Some("access_token=abc"), b"").is_err());
        assert!(presented_token(&h, Some("access%5Ftoken=abc"), b"").is_err());
        assert_eq!(presented_token(&h, Some("other=1"), b""), Ok(Some(("abc", Scheme::Bearer))));
        let two = headers(&[("authorization", b"Bearer abc"), ("authorization", b"Bearer def")]);
        assert!(presented_token(&two, None, b"").is_err());
        // A query token alone is not supported: no token, not an error.
        assert_eq!(presented_token(&HeaderMap::new(), Some("access_token=abc"), b""), Ok(None));
        assert!(presented_token(&HeaderMap::new(), Some("access_token=a&access_token=b"), b"").is_err());
        // RFC 6750 §2.2: a form-body token beside the header.
        let form = headers(&[("authorization", b"Bearer abc"), ("content-type", b"application/x-www-form-urlencoded")]);
        assert!(presented_token(&form, None, b"access_token=abc").is_err());
        assert_eq!(
            presented_token(&h, None, b"access_token=abc"),
            Ok(Some(("abc", Scheme::Bearer))),
            "not a form body"
        );
    }
}
