//! The client role: steps A, C, E and G of Figure 2 and the decisions between them.

use crate::{ClientError, Exchange, Observer, Step, TokenSet};
use bytes::Bytes;
use figure2_http::{HttpClient, ReceivedResponse};
use figure2_protocol::bearer::{BearerChallenge, BearerErrorCode, is_b64token};
use figure2_protocol::client_auth::{ClientAuthentication, TokenEndpointAuthMethod};
use figure2_protocol::metadata::AuthorizationServerMetadata;
use figure2_protocol::secret::{ClientSecret, RefreshToken};
use figure2_protocol::token_request::{RefreshTokenRequest, TokenRequest};
use figure2_protocol::token_response::AccessTokenResponse;
use figure2_protocol::{Clock, ErrorCode, ErrorResponse, FlowStep, Scope};
use http::{HeaderMap, Method, header};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How the client identifies itself and where it asks for tokens.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: Option<ClientSecret>,
    /// RFC 6749 §2.3.1: Basic (default with a secret), secret in the body, or a public
    /// client that only names itself.
    pub auth_method: TokenEndpointAuthMethod,
    pub token_endpoint: String,
    /// Treat the access token as expired this many seconds before `expires_in` runs out (default 0).
    pub expiry_margin: u64,
    /// RFC 9449: hold an ES256 key for this session and send a DPoP proof with every token
    /// request and every use of a DPoP-bound access token (default false).
    pub dpop: bool,
}

impl ClientConfig {
    /// `client_secret_basic` when there is a secret (§2.3.1: every server supports it),
    /// a public client (`none`) otherwise; no expiry margin.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: Option<ClientSecret>,
        token_endpoint: impl Into<String>,
    ) -> Self {
        let auth_method = match client_secret {
            Some(_) => TokenEndpointAuthMethod::ClientSecretBasic,
            None => TokenEndpointAuthMethod::None,
        };
        Self {
            client_id: client_id.into(),
            client_secret,
            auth_method,
            token_endpoint: token_endpoint.into(),
            expiry_margin: 0,
            dpop: false,
        }
    }
}

/// The resource server's answer to step C or E, as received.
#[derive(Debug, Clone)]
pub struct ResourceResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl ResourceResponse {
    /// The `Bearer` challenge of a `WWW-Authenticate` header, if any (RFC 6750 §3).
    pub fn bearer_challenge(&self) -> Option<BearerChallenge> {
        bearer_challenge(&self.headers)
    }
}

/// The client. Clones share tokens, observer and the single refresh flight.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    clock: Arc<dyn Clock>,
    http: HttpClient,
    observer: Mutex<Option<Observer>>,
    state: Mutex<State>,
    /// Held across a whole token request (A→B, G→H): one refresh in flight at a time. A
    /// tokio mutex because it is held across `.await`; `state` is a std mutex because
    /// it never is.
    flight: tokio::sync::Mutex<()>,
    /// RFC 9449: this session's DPoP key (when `config.dpop`), and the last nonce each
    /// server (by origin) gave (§8, §9).
    dpop: Option<crate::dpop::DpopSession>,
}

#[derive(Default)]
struct State {
    tokens: Option<TokenSet>,
    /// The last generation handed out.
    generation: u64,
    /// The `invalid_grant` that cleared the tokens, for callers queued behind that refresh.
    refused: Option<ErrorResponse>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.inner.config.client_id)
            .field("token_endpoint", &self.inner.config.token_endpoint)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(config: ClientConfig, clock: Arc<dyn Clock>, http: HttpClient) -> Self {
        let dpop = config.dpop.then(crate::dpop::DpopSession::generate);
        let inner = Inner {
            config,
            clock,
            http,
            observer: Mutex::new(None),
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
            dpop,
        };
        Self { inner: Arc::new(inner) }
    }

    /// Every exchange from now on is passed to `observer` (shared with clones).
    pub fn with_observer(self, observer: Observer) -> Self {
        *lock(&self.inner.observer) = Some(observer);
        self
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The RFC 7638 thumbprint of this session's DPoP key, if it has one.
    pub fn dpop_thumbprint(&self) -> Option<&str> {
        self.inner.dpop.as_ref().map(|d| d.key.thumbprint())
    }

    /// RFC 8414 §3: fetches the metadata at the well-known URL of `issuer` and checks that
    /// it names the same issuer (§3.3).
    pub async fn discover(http: &HttpClient, issuer: &str) -> Result<AuthorizationServerMetadata, ClientError> {
        figure2_http::discover(http, issuer).await.map_err(|e| match e {
            figure2_http::DiscoveryError::Fetch(e) => ClientError::Http(e),
            other => ClientError::Protocol(other.to_string()),
        })
    }

    /// Steps A→B: presents an authorization grant and stores the tokens of the answer.
    pub async fn request_token(&self, grant: TokenRequest) -> Result<TokenSet, ClientError> {
        let step = match grant {
            TokenRequest::RefreshToken(_) => Step::Refresh,
            _ => Step::AuthorizationGrant,
        };
        let _flight = self.inner.flight.lock().await;
        let response = self.send_token_request(&grant, step).await?;
        let answer = read_token_response(&response, self.inner.dpop.is_some())?;
        // RFC 6749 §5.1: `scope` may be left out when it is the one requested.
        let (refresh_token, scope) = match grant {
            TokenRequest::AuthorizationCode { .. } => (None, None),
            TokenRequest::Password { scope, .. } | TokenRequest::ClientCredentials { scope } => (None, scope),
            TokenRequest::RefreshToken(r) => (Some(r.refresh_token), r.scope),
        };
        Ok(self.store(answer, refresh_token, scope))
    }

    /// Steps G→H (RFC 6749 §6), single flight. `scope` narrows the grant ("equal or
    /// lesser" than the original). If the answer has no refresh token, the old one stays.
    pub async fn refresh(&self, scope: Option<Scope>) -> Result<TokenSet, ClientError> {
        let seen = self.tokens().ok_or(ClientError::NotAuthorized)?.generation;
        self.refresh_after(seen, scope).await
    }

    /// Steps C→D with the current access token; E→F→G→H→C→D when the resource server
    /// says `invalid_token`; straight to G when the client knows the token expired.
    pub async fn call(&self, method: Method, url: &str, body: Option<Bytes>) -> Result<ResourceResponse, ClientError> {
        let mut tokens = self.tokens().ok_or(ClientError::NotAuthorized)?;
        // RFC 6749 §1.5 (E): "If the client knows the access token expired, it skips to step (G)".
        if tokens.is_expired(self.inner.clock.now(), self.inner.config.expiry_margin) {
            tracing::debug!(generation = tokens.generation, "access token known to be expired: skipping to (G)");
            tokens = self.refresh_after(tokens.generation, None).await?;
        }
        let response = self.present(&method, url, body.clone(), &tokens).await?;
        if !token_refused(response.status, &response.headers) {
            return Ok(response);
        }
        // (F) → (G): refresh once, retry once. A second refusal goes back to the caller:
        // looping would hammer both servers for a token they keep refusing.
        tokens = self.refresh_after(tokens.generation, None).await?;
        self.present(&method, url, body, &tokens).await
    }

    /// A copy of the current tokens.
    pub fn tokens(&self) -> Option<TokenSet> {
        lock(&self.inner.state).tokens.clone()
    }

    /// Replaces the tokens as they are (the generation counter never goes backwards).
    pub fn set_tokens(&self, tokens: Option<TokenSet>) {
        let mut state = lock(&self.inner.state);
        if let Some(t) = &tokens {
            state.generation = state.generation.max(t.generation);
        }
        state.tokens = tokens;
        state.refused = None;
    }

    /// A raw token request with this client's authentication (RFC 6749 §2.3.1), observed
    /// as an exchange labelled `step`. Changes no state: the caller reads the answer.
    pub async fn send_token_request(
        &self,
        request: &TokenRequest,
        step: Step,
    ) -> Result<ReceivedResponse, ClientError> {
        let config = &self.inner.config;
        let mut body = request.to_form();
        let mut headers = vec![
            ("content-type", "application/x-www-form-urlencoded".to_owned()),
            ("accept", "application/json".to_owned()),
        ];
        // §2.3: exactly one authentication method per request.
        let credentials = match config.auth_method {
            TokenEndpointAuthMethod::ClientSecretBasic => {
                let secret = self.secret("client_secret_basic")?;
                headers.push(("authorization", ClientAuthentication::basic_header_value(&config.client_id, secret)));
                None
            }
            TokenEndpointAuthMethod::ClientSecretPost => {
                let secret = self.secret("client_secret_post")?;
                Some(figure2_protocol::form::encode([
                    ("client_id", Some(config.client_id.as_str())),
                    ("client_secret", Some(secret)),
                ]))
            }
            // §3.2.1: a public client sends its client_id so the server knows who it is.
            TokenEndpointAuthMethod::None => {
                Some(figure2_protocol::form::encode([("client_id", Some(config.client_id.as_str()))]))
            }
        };
        if let Some(credentials) = credentials {
            body.push('&');
            body.push_str(&credentials);
        }
        let body = Bytes::from(body);
        let Some(dpop) = &self.inner.dpop else {
            return self.send(Method::POST, &config.token_endpoint, headers, Some(body), |_| step).await;
        };
        // RFC 9449 §5: a proof for POST to the token endpoint; once more with the server's
        // nonce if it answers use_dpop_nonce (§8), and no more.
        let mut retried = false;
        loop {
            let proof = dpop.proof("POST", &config.token_endpoint, None, self.inner.clock.now())?;
            let mut with_proof = headers.clone();
            with_proof.push(("dpop", proof));
            let response =
                self.send(Method::POST, &config.token_endpoint, with_proof, Some(body.clone()), |_| step).await?;
            let fresh_nonce = dpop.remember_nonce(&config.token_endpoint, &response.headers);
            let asks_nonce = response.status == 400
                && serde_json::from_slice::<ErrorResponse>(&response.body)
                    .is_ok_and(|e| e.error == ErrorCode::UseDpopNonce);
            if asks_nonce && fresh_nonce && !retried {
                tracing::debug!("token endpoint asked for a DPoP nonce: retrying once with it");
                retried = true;
                continue;
            }
            return Ok(response);
        }
    }

    fn secret(&self, method: &str) -> Result<&str, ClientError> {
        let secret = self.inner.config.client_secret.as_ref().ok_or_else(|| {
            ClientError::Http(figure2_http::ClientError::InvalidRequest(format!("{method} needs a client secret")))
        })?;
        Ok(secret.expose())
    }

    /// Steps G→H for a caller whose access token was generation `seen`. Single flight:
    /// if someone else replaced that token while we queued, theirs is the answer.
    async fn refresh_after(&self, seen: u64, scope: Option<Scope>) -> Result<TokenSet, ClientError> {
        let _flight = self.inner.flight.lock().await;
        let current = {
            let state = lock(&self.inner.state);
            match (&state.tokens, &state.refused) {
                (Some(tokens), _) => tokens.clone(),
                (None, Some(refused)) => return Err(ClientError::ReauthorizationRequired(refused.clone())),
                (None, None) => return Err(ClientError::NotAuthorized),
            }
        };
        if current.generation != seen && (scope.is_none() || current.scope == scope) {
            return Ok(current);
        }
        let refresh_token = current.refresh_token.clone().ok_or(ClientError::NoRefreshToken)?;
        tracing::info!(step = %FlowStep::G, rt = %refresh_token.fingerprint(), "refreshing the access token");
        let request = TokenRequest::RefreshToken(RefreshTokenRequest {
            refresh_token: refresh_token.clone(),
            scope: scope.clone(),
        });
        let response = self.send_token_request(&request, Step::Refresh).await?;
        match read_token_response(&response, self.inner.dpop.is_some()) {
            Ok(answer) => Ok(self.store(answer, Some(refresh_token), scope.or(current.scope))),
            // RFC 6749 §5.2 invalid_grant: the refresh token is invalid, expired or
            // revoked. Only a new authorization grant helps: back to step A.
            // RFC 6749 §5.2 answers invalid_grant with 400; another status carrying it
            // is not the server's verdict on the grant.
            Err(ClientError::TokenEndpoint { error, status: 400 }) if error.error == ErrorCode::InvalidGrant => {
                tracing::warn!(step = %FlowStep::H, rt = %refresh_token.fingerprint(), %error, "refresh token refused");
                let mut state = lock(&self.inner.state);
                if state.tokens.as_ref().is_some_and(|t| t.generation == current.generation) {
                    state.tokens = None;
                    state.refused = Some(error.clone());
                }
                Err(ClientError::ReauthorizationRequired(error))
            }
            Err(e) => Err(e),
        }
    }

    /// Stores the tokens of step B or H under a new generation. RFC 6749 §6 / §5.1: with
    /// no new refresh token the old one (`previous_refresh_token`) stays; with no `scope`
    /// the one requested stands.
    fn store(
        &self,
        answer: AccessTokenResponse,
        previous_refresh_token: Option<RefreshToken>,
        requested_scope: Option<Scope>,
    ) -> TokenSet {
        let now = self.inner.clock.now();
        let rotated = answer.refresh_token.is_some();
        let dpop_bound = answer.is_dpop();
        let mut state = lock(&self.inner.state);
        state.generation += 1;
        let tokens = TokenSet {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token.or(previous_refresh_token),
            expires_at: answer.expires_in.map(|s| now.saturating_add(s)),
            scope: answer.scope.or(requested_scope),
            generation: state.generation,
            dpop_bound,
        };
        state.tokens = Some(tokens.clone());
        state.refused = None;
        drop(state);
        tracing::info!(
            at = %tokens.access_token.fingerprint(),
            rt = tokens.refresh_token.as_ref().map(RefreshToken::fingerprint),
            rotated,
            expires_at = tokens.expires_at,
            generation = tokens.generation,
            "stored new tokens"
        );
        tokens
    }

    /// Steps C or E: the access token in the `Authorization` header (RFC 6750 §2.1, the
    /// one method resource servers MUST support). Never the refresh token: that only
    /// ever goes to the token endpoint (RFC 6749 §1.5, §10.4).
    async fn present(
        &self,
        method: &Method,
        url: &str,
        body: Option<Bytes>,
        tokens: &TokenSet,
    ) -> Result<ResourceResponse, ClientError> {
        let label = |r: &ReceivedResponse| {
            if token_refused(r.status, &r.headers) { Step::InvalidToken } else { Step::ProtectedResource }
        };
        let access_token = tokens.access_token.expose();
        let dpop = self.inner.dpop.as_ref().filter(|_| tokens.dpop_bound);
        let Some(dpop) = dpop else {
            let headers = vec![("authorization", format!("Bearer {access_token}"))];
            let r = self.send(method.clone(), url, headers, body, label).await?;
            return Ok(ResourceResponse { status: r.status, headers: r.headers, body: r.body });
        };
        // RFC 9449 §7.1: `Authorization: DPoP` and a proof with `ath`; once more with the
        // resource server's nonce if it answers use_dpop_nonce (§9).
        let mut retried = false;
        loop {
            let proof = dpop.proof(method.as_str(), url, Some(access_token), self.inner.clock.now())?;
            let headers = vec![("authorization", format!("DPoP {access_token}")), ("dpop", proof)];
            let r = self.send(method.clone(), url, headers, body.clone(), label).await?;
            let fresh_nonce = dpop.remember_nonce(url, &r.headers);
            if r.status == 401 && fresh_nonce && !retried && crate::dpop::asks_nonce(&r.headers) {
                tracing::debug!("resource server asked for a DPoP nonce: retrying once with it");
                retried = true;
                continue;
            }
            return Ok(ResourceResponse { status: r.status, headers: r.headers, body: r.body });
        }
    }

    /// Sends one request and hands the exchange, labelled by `label`, to the observer.
    async fn send(
        &self,
        method: Method,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: Option<Bytes>,
        label: impl FnOnce(&ReceivedResponse) -> Step,
    ) -> Result<ReceivedResponse, ClientError> {
        let at = self.inner.clock.now();
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let response = self.inner.http.send(method.clone(), url, &pairs, body.clone()).await?;
        let step = label(&response);
        tracing::debug!(
            step = %step.request_step(),
            %method, url, status = response.status, "exchange"
        );
        let observer = lock(&self.inner.observer).clone();
        if let Some(observer) = observer {
            observer(&Exchange {
                step,
                method: method.to_string(),
                url: url.to_owned(),
                request_headers: headers.into_iter().map(|(n, v)| (n.to_owned(), v)).collect(),
                request_body: body.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default(),
                status: response.status,
                response_headers: response
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                    .collect(),
                response_body: response.body_text(),
                at,
            });
        }
        Ok(response)
    }
}

/// Reads step B or H: RFC 6749 §5.1 on 200, a §5.2 error otherwise.
fn read_token_response(response: &ReceivedResponse, dpop: bool) -> Result<AccessTokenResponse, ClientError> {
    let status = response.status;
    // RFC 6585 §4 (429) and RFC 9110 §15.6 (5xx): a busy or broken server or proxy, not
    // a verdict on the grant, whatever the body says (matrix-org/matrix-js-sdk#5495
    // logged people out on a proxy's 429). The caller keeps its refresh token.
    if status == 429 || status >= 500 {
        // RFC 9110 §10.2.3: Retry-After in delay-seconds (an HTTP-date is not used here).
        let retry_after =
            response.headers.get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
        return Err(ClientError::Unavailable { status, retry_after });
    }
    if status != 200 {
        return match serde_json::from_slice::<ErrorResponse>(&response.body) {
            Ok(error) if status >= 400 => Err(ClientError::TokenEndpoint { status, error }),
            _ => Err(ClientError::Protocol(format!("token endpoint answered {status} without an RFC 6749 §5.2 error"))),
        };
    }
    let answer: AccessTokenResponse = serde_json::from_slice(&response.body)
        .map_err(|e| ClientError::Protocol(format!("token response is not RFC 6749 §5.1 JSON: {e}")))?;
    // RFC 6749 §7.1: the client MUST NOT use a token whose type it does not understand:
    // Bearer (RFC 6750), or DPoP when it sent a proof (RFC 9449 §5).
    if !(answer.is_bearer() || dpop && answer.is_dpop()) {
        let token_type: String = answer.token_type.chars().take(32).collect();
        let expected = if dpop { "Bearer or DPoP (RFC 6750, RFC 9449)" } else { "Bearer (RFC 6750)" };
        return Err(ClientError::Protocol(format!("token_type {token_type:?} is not {expected}")));
    }
    // RFC 6750 §2.1: it must fit `b64token` to go in the Authorization header.
    if !is_b64token(answer.access_token.expose()) {
        return Err(ClientError::Protocol("access_token is not an RFC 6750 §2.1 b64token".into()));
    }
    Ok(answer)
}

/// The `Bearer` challenge among the `WWW-Authenticate` headers (RFC 6750 §3).
fn bearer_challenge(headers: &HeaderMap) -> Option<BearerChallenge> {
    headers.get_all(header::WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).find_map(BearerChallenge::parse)
}

/// Step F: the resource server did not accept the access token the request carried
/// (every request [`Client::call`] sends carries one), so a refresh may cure it.
///
/// - RFC 6750 §3.1 `invalid_token` ("expired, revoked, malformed, or invalid"): yes.
/// - Any other 401 — a bare `WWW-Authenticate: Bearer`, an unknown error code, another
///   scheme, no challenge at all (common in the wild): yes too. RFC 9110 §15.5.2: a 401
///   means the request's credentials were refused, and the only credential sent was the
///   access token.
/// - A known RFC 6750 §3.1 error other than `invalid_token` keeps its exact meaning:
///   `invalid_request` (a malformed request, 400) and `insufficient_scope` (403) are not
///   cured by a new token for the same grant, whatever status carries them.
fn token_refused(status: u16, headers: &HeaderMap) -> bool {
    if status != 401 {
        return false;
    }
    // RFC 9449 §7.1: a refused proof is not cured by a new token (a nonce request is
    // answered by `present` itself); only `invalid_token` in the DPoP challenge is.
    if let Some(error) = crate::dpop::dpop_challenge(headers).and_then(|c| c.error) {
        return error == figure2_protocol::dpop::DpopChallengeError::InvalidToken;
    }
    match bearer_challenge(headers).and_then(|c| c.error) {
        None | Some(BearerErrorCode::InvalidToken) => true,
        Some(BearerErrorCode::InvalidRequest | BearerErrorCode::InsufficientScope) => false,
    }
}

/// Locks a std mutex; a panic elsewhere while holding it leaves plain data, still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn refused(status: u16, challenge: Option<&'static str>) -> bool {
        let mut h = HeaderMap::new();
        if let Some(c) = challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        token_refused(status, &h)
    }

    #[test]
    fn any_401_to_a_token_means_refresh_unless_a_known_other_error_says_otherwise() {
        assert!(refused(401, Some(r#"Bearer error="invalid_token""#)));
        // The issue's inputs: a bare challenge, none, another scheme.
        assert!(refused(401, Some("Bearer")));
        assert!(refused(401, Some(r#"Bearer realm="api""#)));
        assert!(refused(401, None));
        assert!(refused(401, Some(r#"Basic realm="x""#)));
        assert!(refused(401, Some(r#"Bearer error="some_vendor_code""#)));
        // RFC 6750 §3.1's other codes keep their meaning.
        assert!(!refused(401, Some(r#"Bearer error="insufficient_scope""#)));
        assert!(!refused(401, Some(r#"Bearer error="invalid_request""#)));
        assert!(!refused(403, Some(r#"Bearer error="insufficient_scope", scope="admin""#)));
        assert!(!refused(400, Some(r#"Bearer error="invalid_request""#)));
        assert!(!refused(403, None));
        assert!(!refused(200, None));
    }
}
