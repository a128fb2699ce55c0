//! OpenID Connect basics, only where a client asks for them with the `openid` scope.
//! Plain OAuth 2.0 (no `openid`) is untouched: no `id_token`, no extra state.
//!
//! | endpoint / step | what | spec |
//! |---|---|---|
//! | `GET /.well-known/openid-configuration` | provider metadata | OpenID Connect Discovery 1.0 §4 |
//! | step A → B (code grant) | `id_token` with `nonce` and `auth_time` from the authorization | Core §3.1.3.3, §3.1.3.6, §2 |
//! | step G → H (refresh) | a new `id_token`: same `iss`, `sub`, `aud`, the original `auth_time`, new `iat`, no `nonce` | Core §12.2 |
//! | `GET/POST /userinfo` | the user's claims for a bearer access token with `openid` | Core §5.3, RFC 6750 §2.1, §3 |
//! | `GET/POST /end_session` | ends the user's grants: revokes every refresh-token family of the `id_token_hint`'s `sub` | RP-Initiated Logout 1.0 §2, §3 |
//!
//! `offline_access` (Core §11): with `require_offline_access = true` in `[oidc]`, an
//! `openid` authorization yields a refresh token only if `offline_access` was granted.
//!
//! Claims: `sub` is the username; the `claims` of the user's configuration entry (or of a
//! user created through the control API) are released by scope as Core §5.4 assigns them
//! (`profile` → `name`, `given_name`, …; `email` → `email`, `email_verified`; `address`;
//! `phone` → `phone_number`, `phone_number_verified`); claims Core does not define are
//! released with `openid` alone. The same claims go into `id_token` and `userinfo`.
//!
//! Where it is kept: the nonce and authentication time of each `openid` authorization, and
//! the authentication time of each `openid` family, in the store
//! ([`crate::store::Store::record_oidc_authorization`] and the three after it), so a
//! refresh after a restart, or at another instance, still carries the original `auth_time`.

use crate::AuthorizationServer;
use crate::store::OidcAuthorization;
use figure2_http::{HttpResponse, Incoming};
use figure2_protocol::bearer::{BearerChallenge, BearerErrorCode, extract_bearer_token};
use figure2_protocol::client_auth::RegisteredClient;
use figure2_protocol::form::FormParams;
use figure2_protocol::secret::TokenDigest;
use figure2_protocol::{ErrorCode, ErrorResponse, Scope, UnixTime};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// `[oidc]` in the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// OpenID Connect Core §11: when `openid` is requested, issue a refresh token only if
    /// `offline_access` was granted too. Default false: clients allowed the
    /// `refresh_token` grant get one, as with plain OAuth 2.0.
    #[serde(default)]
    pub require_offline_access: bool,
    /// Seconds an `id_token` is valid (`exp - iat`). Default 3600.
    #[serde(default = "default_id_token_lifetime")]
    pub id_token_lifetime: u64,
}

fn default_id_token_lifetime() -> u64 {
    3600
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self { require_offline_access: false, id_token_lifetime: default_id_token_lifetime() }
    }
}

pub const OPENID: &str = "openid";
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The path of the provider metadata below the issuer (Discovery §4: appended to it).
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Core §5.4: the standard claims each scope releases.
const SCOPE_CLAIMS: [(&str, &[&str]); 4] = [
    (
        "profile",
        &[
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        ],
    ),
    ("email", &["email", "email_verified"]),
    ("address", &["address"]),
    ("phone", &["phone_number", "phone_number_verified"]),
];

/// Claims this server sets itself; a user's configured claims never replace them.
const RESERVED: [&str; 13] =
    ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "auth_time", "nonce", "azp", "acr", "amr", "sid"];

/// The user's claims `scope` releases (Core §5.4; non-standard claims need `openid` only).
pub fn released_claims(claims: &Map<String, Value>, scope: &Scope) -> Map<String, Value> {
    claims
        .iter()
        .filter(|(name, _)| !RESERVED.contains(&name.as_str()))
        .filter(|(name, _)| match SCOPE_CLAIMS.iter().find(|(_, names)| names.contains(&name.as_str())) {
            Some((needed, _)) => scope.contains(needed),
            None => true,
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Core §2: the ID Token's claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    /// Core §2: the client's `client_id` (one audience, so no `azp`).
    pub aud: String,
    pub exp: UnixTime,
    pub iat: UnixTime,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub auth_time: Option<UnixTime>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}

impl AuthorizationServer {
    /// Hook at the authorization endpoint, before the code is stored: remembers the
    /// `nonce` of an `openid` request and the time the user authenticated (`auth_time`).
    pub(crate) async fn oidc_code_issued(
        &self,
        code: &TokenDigest,
        request_query: &str,
        scope: &Scope,
        expires_at: u64,
    ) {
        if !scope.contains(OPENID) {
            return;
        }
        let nonce = FormParams::parse(request_query.as_bytes()).ok().and_then(|p| p.get("nonce").map(str::to_owned));
        let authorization = OidcAuthorization {
            nonce,
            auth_time: self.now(),
            offline_access: scope.contains(OFFLINE_ACCESS),
            expires_at,
        };
        if let Err(e) = self.store.record_oidc_authorization(*code, authorization).await {
            // The code still works; its token response will lack the id_token.
            tracing::error!(error = %e, "could not record the OpenID Connect authorization");
        }
    }

    async fn oidc_authorization(&self, code: &TokenDigest) -> Option<OidcAuthorization> {
        self.store.oidc_authorization(*code).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not read the OpenID Connect authorization");
            None
        })
    }

    /// Hook in the code grant, before the redemption: Core §11 under
    /// `require_offline_access` — an `openid` code without `offline_access` gets no
    /// refresh token.
    pub(crate) async fn oidc_allows_refresh_token(&self, code: &TokenDigest) -> bool {
        if !self.config.oidc.require_offline_access {
            return true;
        }
        self.oidc_authorization(code).await.is_none_or(|a| a.offline_access)
    }

    /// Hook in the code grant, after the redemption: the `id_token` of an `openid` grant
    /// (Core §3.1.3.3), and the family's `auth_time` kept for its refreshes.
    pub(crate) async fn oidc_id_token_for_code(
        &self,
        code: &TokenDigest,
        family_id: i64,
        client: &RegisteredClient,
        subject: &str,
        scope: &Scope,
    ) -> Result<Option<String>, ErrorResponse> {
        if !scope.contains(OPENID) {
            return Ok(None);
        }
        let authorization = self.oidc_authorization(code).await;
        let auth_time = authorization.as_ref().map(|a| a.auth_time);
        if let Some(auth_time) = auth_time
            && let Err(e) = self.store.bind_oidc_family(*code, family_id, auth_time).await
        {
            tracing::error!(error = %e, "could not record the family's auth_time");
        }
        let nonce = authorization.and_then(|a| a.nonce);
        self.sign_id_token(client, subject, scope, auth_time, nonce).map(Some)
    }

    /// Hook in the refresh grant (step H): Core §12.2 — a new `id_token` when the
    /// refreshed access token has `openid`, with the same `iss`, `sub` and `aud`, the
    /// original `auth_time`, a new `iat`, and no `nonce`.
    pub(crate) async fn oidc_id_token_on_refresh(
        &self,
        family_id: Option<crate::store::FamilyId>,
        subject: &str,
        scope: &Scope,
        client: &RegisteredClient,
    ) -> Result<Option<String>, ErrorResponse> {
        if !scope.contains(OPENID) {
            return Ok(None);
        }
        let auth_time = match family_id {
            Some(family_id) => self.store.oidc_auth_time(family_id).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "could not read the family's auth_time");
                None
            }),
            None => None,
        };
        self.sign_id_token(client, subject, scope, auth_time, None).map(Some)
    }

    fn sign_id_token(
        &self,
        client: &RegisteredClient,
        subject: &str,
        scope: &Scope,
        auth_time: Option<UnixTime>,
        nonce: Option<String>,
    ) -> Result<String, ErrorResponse> {
        let now = self.now();
        let claims = IdTokenClaims {
            iss: self.config.issuer.clone(),
            sub: subject.to_owned(),
            aud: client.client_id.clone(),
            exp: now + self.config.oidc.id_token_lifetime,
            iat: now,
            auth_time,
            nonce,
            claims: self.user_claims(subject).map(|c| released_claims(&c, scope)).unwrap_or_default(),
        };
        let key = self.signing_key();
        // The same keys as access tokens (the JWKS), but `typ` JWT: an ID Token is not an
        // access token (RFC 9068 §2.1 reserves `at+jwt`; RFC 8725 §3.11).
        let mut header = jsonwebtoken::Header::new(key.alg);
        header.typ = Some("JWT".into());
        header.kid = Some(key.kid.clone());
        key.sign_jwt_with_header(&header, &claims).map_err(|e| {
            tracing::error!(error = %e, "could not sign an id_token");
            ErrorResponse::new(ErrorCode::ServerError, "the authorization server failed; try again")
        })
    }

    /// A user's configured (or runtime-created) claims.
    pub(crate) fn user_claims(&self, username: &str) -> Option<Map<String, Value>> {
        self.config.user_claims.get(username).cloned().or_else(|| self.runtime.claims(username))
    }

    /// OpenID Connect Discovery 1.0 §3: the RFC 8414 metadata plus the OpenID Provider fields.
    pub fn openid_configuration(&self) -> Value {
        let issuer = &self.config.issuer;
        let mut doc = serde_json::to_value(self.metadata()).unwrap_or_else(|_| json!({}));
        let mut scopes = self.config.scopes_supported();
        // Discovery §3: openid MUST be listed; the others as some client may request them.
        if !scopes.iter().any(|x| x == OPENID) {
            scopes.push(OPENID.to_owned());
        }
        let mut claims: Vec<String> =
            ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce"].map(String::from).into();
        for c in self.config.user_claims.values().flat_map(|m| m.keys()) {
            if !claims.contains(c) && !RESERVED.contains(&c.as_str()) {
                claims.push(c.clone());
            }
        }
        let extra = json!({
            "userinfo_endpoint": format!("{issuer}/userinfo"),
            "end_session_endpoint": format!("{issuer}/end_session"),
            "scopes_supported": scopes,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [crate::keys::algorithm_name(self.config.signing_algorithm)],
            "response_modes_supported": ["query"],
            "claims_supported": claims,
            "claims_parameter_supported": false,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
        });
        if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                doc.insert(k.clone(), v.clone());
            }
        }
        doc
    }
}

pub fn openid_configuration(server: &AuthorizationServer, method: &http::Method) -> HttpResponse {
    if method != http::Method::GET && method != http::Method::HEAD {
        return figure2_http::json(405, &json!({"error": "method_not_allowed"}), &[("allow", "GET, HEAD")]);
    }
    figure2_http::json(200, &server.openid_configuration(), &[("cache-control", "max-age=60")])
}

/// RFC 6750 §3 answer of the UserInfo endpoint (Core §5.3.3).
fn bearer_error(server: &AuthorizationServer, challenge: BearerChallenge, outcome: &'static str) -> HttpResponse {
    server.metrics.userinfo_request(outcome);
    let header = challenge.to_header_value();
    let headers = [("www-authenticate", header.as_str()), ("cache-control", "no-store")];
    match challenge.error {
        None => figure2_http::text(challenge.http_status(), "text/plain", "", &headers),
        Some(code) => figure2_http::json(
            challenge.http_status(),
            &json!({"error": code.as_str(), "error_description": challenge.error_description}),
            &headers,
        ),
    }
}

/// `GET /userinfo`, `POST /userinfo` — Core §5.3: the claims about the user the bearer
/// access token was issued for. The token goes in the `Authorization` header (RFC 6750
/// §2.1) or, on POST, as a form-body `access_token` (§2.2); not both.
pub async fn userinfo(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    let realm = crate::REALM;
    let invalid_request = |d: &str| {
        bearer_error(server, BearerChallenge::error(realm, BearerErrorCode::InvalidRequest, d), "invalid_request")
    };
    let method = request.method().clone();
    if method != http::Method::GET && method != http::Method::POST {
        return figure2_http::text(405, "text/plain", "use GET or POST", &[("allow", "GET, POST")]);
    }
    let (parts, body) = request.into_parts();
    let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
    let (header, second) = (values.next(), values.next());
    if second.is_some() {
        return invalid_request("More than one Authorization header");
    }
    let header = match header.map(|v| v.to_str()) {
        None => None,
        Some(Ok(v)) => Some(v),
        Some(Err(_)) => return invalid_request("The Authorization header is not visible ASCII"),
    };
    let Ok(header_token) = extract_bearer_token(header) else {
        return invalid_request("The Bearer credentials are malformed (RFC 6750 §2.1)");
    };
    let mut form_token = None;
    if method == http::Method::POST
        && figure2_http::has_content_type(&parts.headers, "application/x-www-form-urlencoded")
    {
        let Ok(body) = figure2_http::read_body(body, figure2_http::Limits::default().max_body_bytes).await else {
            return invalid_request("The request body is too large or unreadable");
        };
        match FormParams::parse(&body) {
            Ok(form) => form_token = form.get("access_token").map(str::to_owned),
            Err(_) => return invalid_request("The form body is malformed"),
        }
    }
    let token = match (header_token, form_token.as_deref()) {
        (Some(_), Some(_)) => return invalid_request("The access token was presented by more than one method"),
        (Some(t), None) | (None, Some(t)) => t,
        // RFC 6750 §3.1: no authentication at all gets a bare challenge.
        (None, None) => return bearer_error(server, BearerChallenge::unauthenticated(realm), "no_token"),
    };
    let Some(claims) = server.verify_access_token(token) else {
        let challenge =
            BearerChallenge::error(realm, BearerErrorCode::InvalidToken, "The access token is invalid or expired");
        return bearer_error(server, challenge, "invalid_token");
    };
    let scope = claims.scope();
    if !scope.contains(OPENID) {
        // Core §5.3: the UserInfo endpoint serves tokens of OpenID Connect requests only.
        let challenge = BearerChallenge::error(
            realm,
            BearerErrorCode::InsufficientScope,
            "The access token lacks the openid scope",
        )
        .with_scope(OPENID);
        return bearer_error(server, challenge, "insufficient_scope");
    }
    let mut body = server.user_claims(&claims.sub).map(|c| released_claims(&c, &scope)).unwrap_or_default();
    body.insert("sub".into(), Value::String(claims.sub.clone()));
    server.metrics.userinfo_request("success");
    figure2_http::json(200, &body, &[("cache-control", "no-store")])
}

/// `GET/POST /end_session` — RP-Initiated Logout 1.0 §2: the user's session ends. This
/// server keeps no login session (each authorization asks for the password), so ending
/// it means ending the user's grants: every refresh-token family of the `id_token_hint`'s
/// `sub`, for every client. Issued access tokens stay valid until they expire (they are
/// self-contained JWTs).
///
/// `id_token_hint` is required (§2: RECOMMENDED; without a session it is the only way to
/// know the user). Its `exp` may have passed (§2 asks the OP to accept that). A
/// `post_logout_redirect_uri` must be one of the client's registered redirection URIs;
/// `state` is passed back on it (§3).
pub async fn end_session(server: &AuthorizationServer, request: http::Request<Incoming>) -> HttpResponse {
    let params = match *request.method() {
        http::Method::GET => FormParams::parse(request.uri().query().unwrap_or("").as_bytes()).ok(),
        http::Method::POST => match crate::read_form(request).await {
            Ok((_, form)) => Some(form),
            Err(_) => None,
        },
        _ => return figure2_http::text(405, "text/plain", "use GET or POST", &[("allow", "GET, POST")]),
    };
    let Some(params) = params else { return page(400, "Logout failed", "The logout request is malformed.") };
    let Some(hint) = params.get("id_token_hint") else {
        return page(400, "Logout failed", "id_token_hint is required: this server keeps no login session.");
    };
    let Some(id_token) = server.verify_id_token_hint(hint) else {
        return page(400, "Logout failed", "id_token_hint is not an ID Token this server issued.");
    };
    if params.get("client_id").is_some_and(|c| c != id_token.aud) {
        return page(400, "Logout failed", "client_id does not match the ID Token's audience.");
    }
    let redirect = match params.get("post_logout_redirect_uri") {
        None => None,
        Some(uri) => match server.client(&id_token.aud) {
            Some(client) if client.redirect_uris.iter().any(|r| r == uri) => Some(uri.to_owned()),
            _ => return page(400, "Logout failed", "post_logout_redirect_uri is not registered for this client."),
        },
    };
    let revoked = match server
        .revoke_families_where(None, Some(&id_token.sub), None, "end_session (RP-Initiated Logout)")
        .await
    {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "end_session could not revoke families");
            return page(500, "Logout failed", "The server failed; try again.");
        }
    };
    tracing::info!(sub = %id_token.sub, client_id = %id_token.aud, revoked, "end_session: the user's grants are revoked");
    match redirect {
        Some(uri) => {
            let mut location = uri;
            if let Some(state) = params.get("state") {
                let sep = if location.contains('?') { '&' } else { '?' };
                let encoded = serde_urlencoded::to_string([("state", state)]).unwrap_or_default();
                location = format!("{location}{sep}{encoded}");
            }
            figure2_http::text(303, "text/plain", "", &[("location", &location), ("cache-control", "no-store")])
        }
        None => page(200, "Logged out", &format!("You are logged out: {revoked} grant(s) ended.")),
    }
}

fn page(status: u16, title: &str, message: &str) -> HttpResponse {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
<body><h1>{title}</h1><p>{message}</p></body></html>"
    );
    figure2_http::text(status, "text/html; charset=utf-8", html, &[("cache-control", "no-store")])
}

impl AuthorizationServer {
    /// An ID Token this server signed (with any published key), whatever its `exp`.
    fn verify_id_token_hint(&self, token: &str) -> Option<IdTokenClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.published_keys().into_iter().find(|k| Some(&k.kid) == header.kid.as_ref())?;
        if header.alg != key.alg {
            return None;
        }
        let mut validation = jsonwebtoken::Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<IdTokenClaims>(token, &key.decoding_key()?, &validation).ok()?;
        (data.claims.iss == self.config.issuer && data.header.typ.as_deref() == Some("JWT")).then_some(data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_5_4_claims_are_released_by_scope() {
        let claims: Map<String, Value> = serde_json::from_value(json!({
            "name": "Alice", "email": "alice@example.com", "email_verified": true,
            "groups": ["admins"], "sub": "mallory", "phone_number": "+1 555"
        }))
        .unwrap();
        let only_openid = released_claims(&claims, &Scope::parse("openid").unwrap());
        assert_eq!(Value::Object(only_openid), json!({"groups": ["admins"]}));
        let email = released_claims(&claims, &Scope::parse("openid email").unwrap());
        assert_eq!(
            Value::Object(email),
            json!({"groups": ["admins"], "email": "alice@example.com", "email_verified": true})
        );
        let profile = released_claims(&claims, &Scope::parse("openid profile").unwrap());
        assert!(profile.contains_key("name") && !profile.contains_key("sub") && !profile.contains_key("phone_number"));
    }
}
