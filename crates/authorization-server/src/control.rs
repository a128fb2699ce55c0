//! The test-control API: `/control/*` below the issuer. **Never for production.**
//!
//! Not part of OAuth. It exists so that other projects can put this authorization server
//! in their integration tests and make Figure 2's hard cases happen on purpose: move the
//! clock so that tokens expire without waiting (steps E/F, then G), make the next token
//! request fail, lose its answer after the commit, or arrive late, create users and
//! clients, and list or revoke refresh-token families. The wire types and a typed client
//! are in `figure2-test-control`; the README has a curl example for every call.
//!
//! It is off unless the server is built with [`AuthorizationServer::enable_test_control`]
//! (the binary's `--test-control`, which refuses a non-loopback address unless
//! `--test-control-allow-non-loopback` is given too).

use crate::AuthorizationServer;
use figure2_http::{HttpResponse, Incoming};
use figure2_protocol::client_auth::{ClientAuthentication, GrantType, RegisteredClient};
use figure2_protocol::form::FormParams;
use figure2_protocol::token_response::NO_STORE_HEADERS;
use figure2_protocol::{Clock, Scope, UnixTime};
use figure2_test_control::{
    AdvanceClock, ClockState, ControlError, Family, FamilyFilter, FamilyList, Fault, FaultList, FaultRequest,
    NewClient, NewUser, QueuedFault, Revoked,
};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// System time plus an offset that only grows: the clock the control API moves. Every
/// role that reads it (the server; a resource server following it with `--clock-from`)
/// sees tokens expire as if the time had passed.
#[derive(Debug)]
pub struct ControlledClock {
    base: Arc<dyn Clock>,
    offset: AtomicU64,
}

impl ControlledClock {
    pub fn new(base: Arc<dyn Clock>) -> Self {
        Self { base, offset: AtomicU64::new(0) }
    }

    /// Moves the clock `seconds` forward; returns the new state.
    pub fn advance(&self, seconds: u64) -> ClockState {
        let offset = self.offset.fetch_add(seconds, Ordering::SeqCst).saturating_add(seconds);
        ClockState { now: self.base.now().saturating_add(offset), offset }
    }

    pub fn state(&self) -> ClockState {
        let offset = self.offset.load(Ordering::SeqCst);
        ClockState { now: self.base.now().saturating_add(offset), offset }
    }
}

impl Clock for ControlledClock {
    fn now(&self) -> UnixTime {
        self.state().now
    }
}

/// The control API's state on a server that enabled it.
#[derive(Debug)]
pub struct TestControl {
    clock: Arc<ControlledClock>,
    faults: Mutex<VecDeque<QueuedFault>>,
    next_fault: AtomicU64,
}

/// A user created at runtime.
#[derive(Debug, Clone)]
struct RuntimeUser {
    password_argon2: String,
    claims: serde_json::Map<String, serde_json::Value>,
}

/// Users and clients created through the control API. They live in memory until the
/// server stops (test fixtures, like the rest of this API). Clients are never replaced or
/// removed, which lets the server hand out `&RegisteredClient` as it does for configured ones.
#[derive(Default)]
pub struct RuntimeRegistry {
    clients: elsa::sync::FrozenMap<String, Box<RegisteredClient>>,
    users: RwLock<HashMap<String, RuntimeUser>>,
}

impl std::fmt::Debug for RuntimeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeRegistry")
    }
}

impl RuntimeRegistry {
    pub(crate) fn client(&self, client_id: &str) -> Option<&RegisteredClient> {
        self.clients.get(client_id)
    }

    pub(crate) fn password_hash(&self, username: &str) -> Option<String> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).get(username).map(|u| u.password_argon2.clone())
    }

    pub(crate) fn claims(&self, username: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).get(username).map(|u| u.claims.clone())
    }
}

impl AuthorizationServer {
    /// Turns the test-control API on. `clock` must be the clock the server was built with
    /// (so that advancing it moves the server's time). Returns `false` if it was on already.
    pub fn enable_test_control(&self, clock: Arc<ControlledClock>) -> bool {
        self.control
            .set(TestControl { clock, faults: Mutex::new(VecDeque::new()), next_fault: AtomicU64::new(1) })
            .is_ok()
    }

    /// Whether `/control/*` answers.
    pub fn test_control_enabled(&self) -> bool {
        self.control.get().is_some()
    }
}

/// What a queued fault does to the token request it matched.
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    None,
    /// Answer the request normally, then drop the connection instead.
    LoseResponse,
}

/// Hook before a token request is handled: takes the first queued fault that matches it.
/// An error fault is answered here (`Err`), a delay is waited out here, a lost response is
/// returned for [`after_token_request`].
pub(crate) async fn before_token_request(
    server: &AuthorizationServer,
    parts: &http::request::Parts,
    form: &FormParams,
) -> Result<Pending, HttpResponse> {
    let Some(control) = server.control.get() else { return Ok(Pending::None) };
    let grant_type = form.get("grant_type");
    let authorization = crate::authorization_header(parts).ok().flatten();
    let client_id =
        ClientAuthentication::from_request(authorization, form).ok().and_then(|a| a.client_id().map(str::to_owned));
    let fault = {
        let mut faults = control.faults.lock().unwrap_or_else(|e| e.into_inner());
        let index = faults.iter().position(|f| {
            f.request.grant_type.as_deref().is_none_or(|g| Some(g) == grant_type)
                && f.request.client_id.as_deref().is_none_or(|c| Some(c) == client_id.as_deref())
        });
        index.map(|i| {
            let fault = faults[i].request.fault.clone();
            faults[i].remaining -= 1;
            if faults[i].remaining == 0 {
                faults.remove(i);
            }
            fault
        })
    };
    let Some(fault) = fault else { return Ok(Pending::None) };
    tracing::warn!(?fault, grant_type, client_id, "test control: injecting a fault into a token request");
    match fault {
        Fault::Error { error, error_description, status } => {
            server.metrics.token_request_outcome(grant_type, &error);
            let status = status.unwrap_or(match error.as_str() {
                "invalid_client" => 401,
                "server_error" => 500,
                "temporarily_unavailable" => 503,
                _ => 400,
            });
            let mut body = serde_json::json!({ "error": error });
            if let Some(d) = error_description {
                body["error_description"] = d.into();
            }
            let mut headers = NO_STORE_HEADERS.to_vec();
            if status == 401 {
                // RFC 6749 §5.2: a 401 carries a challenge.
                headers.push(("www-authenticate", "Basic realm=\"figure2\""));
            }
            Err(figure2_http::json(status, &body, &headers))
        }
        Fault::Delay { delay_ms } => {
            // A real wait: this simulates a slow network or server for the client's timeouts.
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            Ok(Pending::None)
        }
        Fault::LoseResponse => Ok(Pending::LoseResponse),
    }
}

/// Hook after a token request was handled (and committed): a lost response drops the
/// connection instead of answering.
pub(crate) fn after_token_request(pending: Pending, response: HttpResponse) -> HttpResponse {
    match pending {
        Pending::None => response,
        Pending::LoseResponse => {
            tracing::warn!(status = response.status().as_u16(), "test control: the answer is lost after the commit");
            figure2_http::drop_connection()
        }
    }
}

/// Largest control request body, in bytes.
const MAX_BODY: usize = 64 * 1024;
/// Most families one listing returns.
const MAX_FAMILIES: usize = 1000;

fn error(status: u16, error: &str, description: impl Into<String>) -> HttpResponse {
    figure2_http::json(
        status,
        &ControlError { error: error.to_owned(), error_description: description.into() },
        &[("cache-control", "no-store")],
    )
}

fn ok<T: serde::Serialize>(status: u16, body: &T) -> HttpResponse {
    figure2_http::json(status, body, &[("cache-control", "no-store")])
}

async fn read_json<T: for<'de> serde::Deserialize<'de>>(request: http::Request<Incoming>) -> Result<T, HttpResponse> {
    if !figure2_http::has_content_type(request.headers(), "application/json") {
        return Err(error(415, "invalid_request", "Content-Type must be application/json"));
    }
    let body = figure2_http::read_body(request.into_body(), MAX_BODY)
        .await
        .map_err(|e| error(413, "invalid_request", e.to_string()))?;
    serde_json::from_slice(&body).map_err(|e| error(400, "invalid_request", e.to_string()))
}

/// `/control/*` (the path below the issuer).
pub async fn handle(server: &AuthorizationServer, route: &str, request: http::Request<Incoming>) -> HttpResponse {
    let Some(control) = server.control.get() else {
        return figure2_http::json(404, &serde_json::json!({"error": "not_found"}), &[]);
    };
    let method = request.method().clone();
    let query = request.uri().query().unwrap_or("").to_owned();
    let path = route.strip_prefix(figure2_test_control::CONTROL_PREFIX).unwrap_or("");
    let answer = match (&method, path) {
        (&http::Method::GET, "/clock") => Ok(ok(200, &control.clock.state())),
        (&http::Method::POST, "/clock/advance") => match read_json::<AdvanceClock>(request).await {
            Ok(a) => {
                let state = control.clock.advance(a.seconds);
                tracing::warn!(seconds = a.seconds, now = state.now, "test control: clock advanced");
                Ok(ok(200, &state))
            }
            Err(e) => Err(e),
        },
        (&http::Method::GET, "/faults") => Ok(ok(200, &fault_list(control))),
        (&http::Method::POST, "/faults") => match read_json::<FaultRequest>(request).await {
            Ok(f) => Ok(queue_fault(control, f)),
            Err(e) => Err(e),
        },
        (&http::Method::DELETE, "/faults") => {
            control.faults.lock().unwrap_or_else(|e| e.into_inner()).clear();
            Ok(figure2_http::text(204, "text/plain", "", &[]))
        }
        (&http::Method::POST, "/users") => match read_json::<NewUser>(request).await {
            Ok(u) => create_user(server, u).await,
            Err(e) => Err(e),
        },
        (&http::Method::POST, "/clients") => match read_json::<NewClient>(request).await {
            Ok(c) => Ok(create_client(server, c)),
            Err(e) => Err(e),
        },
        (&http::Method::GET, "/families") => Ok(list_families(server, &query).await),
        (&http::Method::POST, "/families/revoke") => match read_json::<FamilyFilter>(request).await {
            Ok(f) => Ok(revoke_families(server, &f).await),
            Err(e) => Err(e),
        },
        (_, "/clock" | "/clock/advance" | "/faults" | "/users" | "/clients" | "/families" | "/families/revoke") => {
            Err(error(405, "method_not_allowed", format!("{method} is not allowed here")))
        }
        _ => Err(error(404, "not_found", "no such control call")),
    };
    answer.unwrap_or_else(|e| e)
}

fn fault_list(control: &TestControl) -> FaultList {
    FaultList { faults: control.faults.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect() }
}

fn queue_fault(control: &TestControl, request: FaultRequest) -> HttpResponse {
    if request.times == 0 {
        return error(400, "invalid_request", "times must be at least 1");
    }
    match &request.fault {
        Fault::Error { error: code, status, .. } => {
            let valid_code = !code.is_empty() && code.bytes().all(|b| b == b'_' || b.is_ascii_lowercase());
            if !valid_code {
                return error(400, "invalid_request", "error must be an error code such as invalid_grant");
            }
            if status.is_some_and(|s| !(400..=599).contains(&s)) {
                return error(400, "invalid_request", "status must be 400 to 599");
            }
        }
        Fault::Delay { delay_ms } if *delay_ms > 600_000 => {
            return error(400, "invalid_request", "delay_ms must be at most 600000 (ten minutes)");
        }
        _ => {}
    }
    let queued =
        QueuedFault { id: control.next_fault.fetch_add(1, Ordering::SeqCst), remaining: request.times, request };
    control.faults.lock().unwrap_or_else(|e| e.into_inner()).push_back(queued.clone());
    ok(201, &queued)
}

async fn create_user(server: &AuthorizationServer, user: NewUser) -> Result<HttpResponse, HttpResponse> {
    if user.username.is_empty() || user.username.len() > 256 || user.password.is_empty() {
        return Err(error(400, "invalid_request", "username (at most 256 bytes) and password are required"));
    }
    if server.config.users.contains_key(&user.username) || server.runtime.password_hash(&user.username).is_some() {
        return Err(error(409, "conflict", format!("user {} exists", user.username)));
    }
    let password = user.password;
    let phc = tokio::task::spawn_blocking(move || crate::config::hash_password(&password))
        .await
        .map_err(|e| error(500, "server_error", e.to_string()))?
        .map_err(|e| error(500, "server_error", e))?;
    let mut users = server.runtime.users.write().unwrap_or_else(|e| e.into_inner());
    if users.contains_key(&user.username) {
        return Err(error(409, "conflict", format!("user {} exists", user.username)));
    }
    tracing::warn!(username = %user.username, "test control: user created");
    users.insert(user.username, RuntimeUser { password_argon2: phc, claims: user.claims });
    Ok(figure2_http::text(201, "text/plain", "", &[]))
}

fn create_client(server: &AuthorizationServer, c: NewClient) -> HttpResponse {
    let invalid = |m: String| error(400, "invalid_request", m);
    if c.client_id.is_empty() || c.client_id.len() > 256 {
        return invalid("client_id is required (at most 256 bytes)".into());
    }
    if server.client(&c.client_id).is_some() {
        return error(409, "conflict", format!("client {} exists", c.client_id));
    }
    let grant_types = match c
        .grant_types
        .iter()
        .map(|g| serde_json::from_value::<GrantType>(serde_json::Value::String(g.clone())))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(g) => g,
        Err(e) => return invalid(format!("grant_types: {e}")),
    };
    let scope = match Scope::parse(&c.scope) {
        Ok(s) => s,
        Err(e) => return invalid(format!("scope: {e}")),
    };
    // The same rules as for a configured client (config.rs).
    if grant_types.contains(&GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
        return invalid("authorization_code needs redirect_uris".into());
    }
    if c.client_secret.is_none()
        && (grant_types.contains(&GrantType::ClientCredentials) || grant_types.contains(&GrantType::Password))
    {
        return invalid("a public client cannot use this grant (RFC 6749 §4.3, §4.4)".into());
    }
    let client = RegisteredClient {
        client_id: c.client_id.clone(),
        // Client secrets are stored as digests and compared in constant time (RFC 6749 §2.3.1).
        secret_digest: c.client_secret.as_deref().map(figure2_protocol::secret::digest),
        redirect_uris: c.redirect_uris,
        grant_types,
        scope,
    };
    // A race of two creations of one id: the map keeps the first; both answers say created.
    server.runtime.clients.insert(c.client_id.clone(), Box::new(client));
    tracing::warn!(client_id = %c.client_id, "test control: client created");
    figure2_http::text(201, "text/plain", "", &[])
}

async fn list_families(server: &AuthorizationServer, query: &str) -> HttpResponse {
    let params = match FormParams::parse(query.as_bytes()) {
        Ok(p) => p,
        Err(e) => return error(400, "invalid_request", e.error_description.unwrap_or_default()),
    };
    let subject = params.get("subject").map(str::to_owned);
    let client_id = params.get("client_id").map(str::to_owned);
    let families = match server.store.families(subject, client_id, MAX_FAMILIES).await {
        Ok(f) => f,
        Err(e) => return error(500, "server_error", e.to_string()),
    };
    let families = families
        .into_iter()
        .map(|f| Family {
            id: f.id,
            client_id: f.grant.client_id,
            subject: f.grant.subject,
            scope: f.grant.scope.to_string(),
            created_at: f.created_at,
            last_used_at: f.last_used_at,
            revoked_at: f.revoked_at,
            revoked_reason: f.revoked_reason,
        })
        .collect();
    ok(200, &FamilyList { families })
}

async fn revoke_families(server: &AuthorizationServer, filter: &FamilyFilter) -> HttpResponse {
    if filter.id.is_none() && filter.subject.is_none() && filter.client_id.is_none() {
        return error(400, "invalid_request", "name an id, a subject or a client_id");
    }
    match server
        .revoke_families_where(filter.id, filter.subject.as_deref(), filter.client_id.as_deref(), "test control")
        .await
    {
        Ok(revoked) => ok(200, &Revoked { revoked }),
        Err(e) => error(500, "server_error", e.to_string()),
    }
}

impl AuthorizationServer {
    /// Revokes every live family matching all the given fields; returns how many. Used by
    /// the control API and by `end_session` (all of a user's families).
    pub(crate) async fn revoke_families_where(
        &self,
        id: Option<i64>,
        subject: Option<&str>,
        client_id: Option<&str>,
        reason: &'static str,
    ) -> Result<u64, crate::store::StoreError> {
        let now = self.now();
        let live: Vec<i64> = self
            .store
            .families(subject.map(str::to_owned), client_id.map(str::to_owned), usize::MAX)
            .await?
            .into_iter()
            .filter(|f| f.revoked_at.is_none() && id.is_none_or(|id| id == f.id))
            .map(|f| f.id)
            .collect();
        for family in &live {
            self.store.revoke_family(*family, now, reason).await?;
        }
        Ok(live.len() as u64)
    }
}
