//! Runs scenarios: a [`Session`] starts the world and plays steps one at a time through
//! the client library (or as the resource owner's browser), recording every exchange
//! and checking each step's expectations. [`run`] plays a whole scenario file.

use crate::scenario::{Action, Expect, GrantKind, Resource, Role, Scenario, Step};
use crate::trace::{Expectation, Failure, Happening, ResourceOwnerAct, TraceEvent, TracedExchange, error_of};
use crate::wire::short_refresh_token;
use crate::world::{DEMO_USERS, World, WorldError};
use figure2_client::{Client, ClientError, Exchange, Step as FigureStep};
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::form::{FormParams, encode};
use figure2_protocol::pkce::CodeVerifier;
use figure2_protocol::refresh::RefreshPolicy;
use figure2_protocol::secret::{AuthorizationCode, RefreshToken, Secret, fingerprint};
use figure2_protocol::token_request::{RefreshTokenRequest, TokenRequest};
use figure2_protocol::{FlowStep, Scope};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The result of one scenario.
#[derive(Debug, Clone)]
pub struct Report {
    pub id: String,
    pub passed: bool,
    pub failures: Vec<Failure>,
    pub events: Vec<TraceEvent>,
    /// The authorization server's refresh policy during the run (for the lineage).
    pub policy: RefreshPolicy,
}

type Recorded = Arc<Mutex<Vec<(String, Exchange)>>>;

/// What the runner remembers of a client between steps.
struct Actor {
    client: Client,
    /// Every refresh token issued to this client, oldest first (for `replay`).
    refresh_tokens: Vec<String>,
    /// The last successful token response (for `changed` / `unchanged`).
    last_token_response: Option<serde_json::Value>,
}

/// What one step produced.
enum Outcome {
    Ok,
    Reauthorize,
    Failed(String),
}

/// A running world and the clients in it, played one step at a time.
pub struct Session {
    world: World,
    actors: HashMap<String, Actor>,
    recorded: Recorded,
    client_tracks_expiry: bool,
    steps: usize,
    exchanges: usize,
    failures: Vec<Failure>,
    last_answer: Option<Answer>,
}

/// What the last step's last exchange answered, and how the step ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Answer {
    /// HTTP status of the step's last exchange (none if the step sent nothing).
    pub status: Option<u16>,
    /// The OAuth error code of that answer (RFC 6749 §5.2 or RFC 6750 §3).
    pub error: Option<String>,
    /// `ok`, `reauthorize` or `failed`.
    pub outcome: String,
}

/// A refresh token some client (or device) of the run was given, and where it stands.
#[derive(Debug, Clone)]
pub struct HeldRefreshToken {
    /// `demo-client`, or `demo-client/tablet` for a second device.
    pub holder: String,
    /// Its place in the holder's history, 0 = the first one it received.
    pub generation: usize,
    /// Where it stands at the authorization server; `None` if unknown to it.
    pub status: Option<figure2_protocol::family::RefreshTokenStatus>,
    /// Its family, as the store names it (`Debug` of the id).
    pub family: Option<String>,
    /// Whether the holder's client currently holds this token.
    pub current: bool,
}

/// Runs `scenario`, calling `emit` with every trace event as it happens.
pub async fn run(scenario: &Scenario, emit: &mut dyn FnMut(&TraceEvent)) -> Result<Report, WorldError> {
    let mut session = Session::start(scenario).await?;
    let policy = session.world().authorization_server.config().refresh.clone();
    let mut events = Vec::new();
    let mut record = |event: TraceEvent, events: &mut Vec<TraceEvent>| {
        emit(&event);
        events.push(event);
    };
    record(session.scenario_event(scenario), &mut events);
    for step in &scenario.steps {
        for event in session.step(step).await {
            record(event, &mut events);
        }
    }
    let done = session.done_event();
    let failures = session.failures.clone();
    record(done, &mut events);
    session.stop().await;
    Ok(Report { id: scenario.id.clone(), passed: failures.is_empty(), failures, events, policy })
}

impl Session {
    /// Starts the world a scenario asks for; no step has run yet.
    pub async fn start(scenario: &Scenario) -> Result<Self, WorldError> {
        Ok(Self {
            world: World::start_with(&scenario.config, &scenario.resource_server).await?,
            actors: HashMap::new(),
            recorded: Arc::new(Mutex::new(Vec::new())),
            client_tracks_expiry: scenario.client_tracks_expiry,
            steps: 0,
            exchanges: 0,
            failures: Vec::new(),
            last_answer: None,
        })
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// The unmet expectations so far.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The opening event of a trace.
    pub fn scenario_event(&self, scenario: &Scenario) -> TraceEvent {
        TraceEvent::Scenario {
            id: scenario.id.clone(),
            title: scenario.title.clone(),
            rfc: scenario.rfc.clone(),
            authorization_server: self.world.issuer.clone(),
            resource_server: self.world.resource_url.clone(),
        }
    }

    /// The closing event of a trace.
    pub fn done_event(&self) -> TraceEvent {
        TraceEvent::Done {
            passed: self.failures.is_empty(),
            steps: self.steps,
            exchanges: self.exchanges,
            failures: self.failures.clone(),
        }
    }

    pub async fn stop(self) {
        self.world.stop().await;
    }

    /// Plays one step and returns what happened, in order.
    pub async fn step(&mut self, step: &Step) -> Vec<TraceEvent> {
        self.steps += 1;
        let number = self.steps;
        let mut events = Vec::new();
        let t = figure2_protocol::Clock::now(&self.world.clock);
        events.push(TraceEvent::Step { number, action: step.action.clone(), note: step.note.clone(), t });
        let client_id = step.action.client().unwrap_or("demo-client").to_owned();
        let before = self.actors.get(&client_id).and_then(|a| a.last_token_response.clone());
        if step.action.loses_response() {
            self.world.network.lose_next_token_response();
        }
        if matches!(step.action, Action::Refresh { sent_twice: true, .. }) {
            self.world.network.duplicate_next_token_request();
        }
        let outcome = match self.act(&step.action, &client_id, &mut events).await {
            Ok(outcome) => outcome,
            Err(message) => Outcome::Failed(message),
        };
        // Everything the clients sent and received during the step, in order.
        let exchanges: Vec<(String, Exchange)> =
            self.recorded.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        let lost = self.world.network.take_lost();
        for (who, x) in &exchanges {
            self.exchanges += 1;
            events.push(TraceEvent::Exchange(TracedExchange::from_exchange(who, x)));
            if matches!(x.step, FigureStep::AuthorizationGrant | FigureStep::Refresh)
                && x.status == 200
                && let Ok(body) = serde_json::from_str::<serde_json::Value>(&x.response_body)
                && let Some(actor) = self.actors.get_mut(who)
            {
                if let Some(rt) = body.get("refresh_token").and_then(|v| v.as_str()) {
                    actor.refresh_tokens.push(rt.to_owned());
                }
                actor.last_token_response = Some(body);
            }
        }
        for l in &lost {
            let body: serde_json::Value = serde_json::from_str(&l.body).unwrap_or_default();
            let refresh_token = body.get("refresh_token").and_then(|v| v.as_str()).map(short_refresh_token);
            events.push(TraceEvent::Network {
                what: Happening::ResponseLost { status: l.status, path: l.path.clone(), refresh_token },
            });
        }
        if step.action.loses_response() && lost.is_empty() {
            self.world.network.take_lost();
        }
        let after = self.actors.get(&client_id).and_then(|a| a.last_token_response.clone());
        let token_exchange = exchanges
            .iter()
            .rev()
            .find(|(_, x)| matches!(x.step, FigureStep::AuthorizationGrant | FigureStep::Refresh))
            .map(|(_, x)| x);
        self.last_answer = Some(Answer {
            status: exchanges.last().map(|(_, x)| x.status),
            error: exchanges.last().and_then(|(_, x)| error_of(x)),
            outcome: match &outcome {
                Outcome::Ok => "ok",
                Outcome::Reauthorize => "reauthorize",
                Outcome::Failed(_) => "failed",
            }
            .to_owned(),
        });
        let checks = check(step, &outcome, &exchanges, token_exchange, before.as_ref(), after.as_ref());
        for (ok, check) in checks {
            if !ok {
                self.failures.push(Failure { step: number, action: step.action.clone(), check: check.clone() });
            }
            events.push(TraceEvent::Check { ok, check });
        }
        if !self.client_tracks_expiry {
            self.forget_expiry();
        }
        events
    }

    /// What the last step answered.
    pub fn last_answer(&self) -> Option<&Answer> {
        self.last_answer.as_ref()
    }

    /// Every refresh token handed to a client of the run, with its status at the
    /// authorization server (read from its store), sorted by holder and generation.
    pub async fn held_refresh_tokens(&self) -> Vec<HeldRefreshToken> {
        let mut holders: Vec<&String> = self.actors.keys().collect();
        holders.sort();
        let mut out = Vec::new();
        for holder in holders {
            let actor = &self.actors[holder];
            let current = actor.client.tokens().and_then(|t| t.refresh_token);
            for (generation, token) in actor.refresh_tokens.iter().enumerate() {
                let info = self
                    .world
                    .authorization_server
                    .store()
                    .refresh_token_info(figure2_protocol::secret::digest(token))
                    .await
                    .ok()
                    .flatten();
                out.push(HeldRefreshToken {
                    holder: holder.clone(),
                    generation,
                    status: info.as_ref().map(|i| i.status()),
                    family: info.as_ref().map(|i| format!("{:?}", i.family_id)),
                    current: current.as_ref().is_some_and(|c| c.ct_eq(token)),
                });
            }
        }
        out
    }

    /// Whether `client_id`'s resource owner must authorize again: the client holds no
    /// tokens, or its refresh token is neither active nor the live token's immediate
    /// predecessor (which a recovery policy may still accept) at the authorization server.
    pub async fn must_reauthorize(&self, client_id: &str) -> bool {
        let Some(actor) = self.actors.get(client_id) else { return false };
        let Some(tokens) = actor.client.tokens() else { return true };
        let Some(rt) = tokens.refresh_token else { return false };
        let info = self
            .world
            .authorization_server
            .store()
            .refresh_token_info(figure2_protocol::secret::digest(rt.expose()))
            .await
            .ok()
            .flatten();
        use figure2_protocol::family::RefreshTokenStatus::{Active, Retired};
        !info.is_some_and(|i| matches!(i.status(), Active | Retired { predecessor_of_live: true, .. }))
    }

    /// Makes every client forget when its access token expires, as a client that ignores
    /// `expires_in` would (it is only RECOMMENDED, RFC 6749 §5.1).
    fn forget_expiry(&self) {
        for actor in self.actors.values() {
            if let Some(mut tokens) = actor.client.tokens()
                && tokens.expires_at.is_some()
            {
                tokens.expires_at = None;
                actor.client.set_tokens(Some(tokens));
            }
        }
    }

    fn actor(&mut self, client_id: &str) -> Result<&mut Actor, String> {
        self.actor_on(client_id, client_id)
    }

    /// The actor `key` playing `client_id`: the client itself (`key` = `client_id`) or
    /// another device or install of it (`client/device`).
    fn actor_on(&mut self, key: &str, client_id: &str) -> Result<&mut Actor, String> {
        if !self.actors.contains_key(key) {
            let recorded = self.recorded.clone();
            let id = key.to_owned();
            let observer = Arc::new(move |x: &Exchange| {
                if let Ok(mut r) = recorded.lock() {
                    r.push((id.clone(), x.clone()));
                }
            });
            let client = self
                .world
                .client(client_id, observer)
                .ok_or_else(|| format!("unknown client {client_id:?} (not in the demo configuration)"))?;
            self.actors.insert(key.to_owned(), Actor { client, refresh_tokens: Vec::new(), last_token_response: None });
        }
        self.actors.get_mut(key).ok_or_else(|| "actor vanished".to_owned())
    }

    /// A fresh client for `device`, a second device or install of `client_id` (its
    /// history is kept under `client_id/device`).
    fn device(&mut self, client_id: &str, device: &str) -> Result<Client, String> {
        let key = format!("{client_id}/{device}");
        self.actors.remove(&key);
        Ok(self.actor_on(&key, client_id)?.client.clone())
    }

    /// A refresh token from a client's history: `generation` 0 is the first, -1 the newest.
    fn historic_refresh_token(&mut self, owner: &str, generation: i64) -> Result<String, String> {
        let history = &self.actor(owner)?.refresh_tokens;
        let index = if generation < 0 { history.len() as i64 + generation } else { generation };
        usize::try_from(index)
            .ok()
            .and_then(|i| history.get(i))
            .cloned()
            .ok_or_else(|| format!("{owner} holds no refresh token #{generation} (it has {})", history.len()))
    }

    async fn act(&mut self, action: &Action, client_id: &str, events: &mut Vec<TraceEvent>) -> Result<Outcome, String> {
        let scope_of =
            |scope: &Option<String>| scope.as_deref().map(Scope::parse).transpose().map_err(|e| e.to_string());
        match action {
            Action::Advance { seconds } => {
                let t = self.world.clock.advance(*seconds);
                events.push(TraceEvent::Clock { advanced_by: *seconds, t });
                Ok(Outcome::Ok)
            }
            Action::RotateKey => {
                let kid = self.world.authorization_server.rotate_signing_key().map_err(|e| e.to_string())?;
                events.push(TraceEvent::Network { what: Happening::KeyRotated { kid } });
                Ok(Outcome::Ok)
            }
            Action::Restart => {
                self.world.restart_authorization_server().await.map_err(|e| e.to_string())?;
                events.push(TraceEvent::Network { what: Happening::Restarted });
                Ok(Outcome::Ok)
            }
            Action::Outage { endpoint, seconds } => {
                self.world.network.cut_off(*endpoint, *seconds);
                Ok(Outcome::Ok)
            }
            Action::ProxyAnswers { status } => {
                self.world.network.proxy_answers_next_token_request(*status);
                Ok(Outcome::Ok)
            }
            Action::Skew { role, offset } => {
                match role {
                    Role::AuthorizationServer => self.world.authorization_server_clock.set_offset(*offset),
                    Role::ResourceServer => self.world.resource_server_clock.set_offset(*offset),
                    Role::Client => self.world.client_clock.set_offset(*offset),
                }
                Ok(Outcome::Ok)
            }
            Action::Install { device, generation, .. } => {
                let token = self.historic_refresh_token(client_id, *generation)?;
                let tokens = self.actor(client_id)?.client.tokens();
                let copy = self.device(client_id, device)?;
                // A restored backup: its access token long expired, its refresh token old.
                if let Some(mut tokens) = tokens {
                    tokens.refresh_token = Some(RefreshToken::new(token));
                    tokens.expires_at = Some(0);
                    copy.set_tokens(Some(tokens));
                }
                Ok(outcome_of(copy.refresh(None).await.map(|_| ())))
            }
            Action::Race { device, .. } => {
                let original = self.actor(client_id)?.client.clone();
                let copy = self.device(client_id, device)?;
                copy.set_tokens(original.tokens());
                // Both send before either hears back. With one authorization server the
                // original's request arrives first (an order its single writer would also
                // impose on truly simultaneous requests). With several instances the two
                // go out at once, to instances 1 and 2, and PostgreSQL's row lock picks
                // the winner (RFC 9700 §4.14.2). The step ends with the loser.
                let (first, second) = if self.world.authorization_servers.len() > 1 {
                    self.world.network.route_next_token_requests(&[0, 1]);
                    tokio::join!(original.refresh(None), copy.refresh(None))
                } else {
                    let first = original.refresh(None).await;
                    (first, copy.refresh(None).await)
                };
                let (first, second) = (first.map(|_| ()), second.map(|_| ()));
                Ok(match (outcome_of(first), outcome_of(second)) {
                    (Outcome::Ok, other) | (other, Outcome::Ok) => other,
                    (first, _) => first,
                })
            }
            Action::Authorize { grant, user, scope: asked, .. } => {
                let scope = scope_of(asked)?;
                let password = DEMO_USERS.iter().find(|(u, _)| u == user).map(|(_, p)| *p).unwrap_or("wrong-password");
                let request = match grant {
                    GrantKind::Password => {
                        TokenRequest::Password { username: user.clone(), password: Secret::new(password), scope }
                    }
                    GrantKind::ClientCredentials => TokenRequest::ClientCredentials { scope },
                    GrantKind::AuthorizationCode => {
                        self.obtain_code(client_id, user, password, asked.as_deref(), events).await?
                    }
                };
                let client = self.actor(client_id)?.client.clone();
                Ok(outcome_of(client.request_token(request).await.map(|_| ())))
            }
            Action::Call { resource, .. } => {
                let (method, body) = match resource {
                    Resource::Write => {
                        (http::Method::POST, Some(bytes::Bytes::from_static(br#"{"note":"written by figure2"}"#)))
                    }
                    Resource::Read | Resource::Admin => (http::Method::GET, None),
                };
                let url = format!("{}/resource/{}", self.world.resource_url, resource.as_str());
                let client = self.actor(client_id)?.client.clone();
                Ok(outcome_of(client.call(method, &url, body).await.map(|_| ())))
            }
            Action::Refresh { scope, .. } => {
                let scope = scope_of(scope)?;
                let client = self.actor(client_id)?.client.clone();
                Ok(outcome_of(client.refresh(scope).await.map(|_| ())))
            }
            Action::Replay { of, generation, scope, .. } => {
                let scope = scope_of(scope)?;
                let token = self.historic_refresh_token(of, *generation)?;
                let request =
                    TokenRequest::RefreshToken(RefreshTokenRequest { refresh_token: RefreshToken::new(token), scope });
                let client = self.actor(client_id)?.client.clone();
                match client.send_token_request(&request, FigureStep::Refresh).await {
                    Ok(_) => Ok(Outcome::Ok),
                    Err(e) => Ok(Outcome::Failed(e.to_string())),
                }
            }
            Action::Revoke { of, generation, .. } => {
                let token = self.historic_refresh_token(of, *generation)?;
                let status = self.revoke(client_id, &token).await?;
                events.push(TraceEvent::Network {
                    what: Happening::Revoked {
                        client_id: client_id.to_owned(),
                        refresh_token: short_refresh_token(&token),
                        status,
                    },
                });
                Ok(if status == 200 { Outcome::Ok } else { Outcome::Failed(format!("revocation answered {status}")) })
            }
        }
    }

    /// RFC 7009 §2.1, authenticated as the client.
    async fn revoke(&self, client_id: &str, token: &str) -> Result<u16, String> {
        let mut form = vec![("token", Some(token)), ("token_type_hint", Some("refresh_token"))];
        let mut headers = vec![("content-type".to_owned(), "application/x-www-form-urlencoded".to_owned())];
        match World::secret_of(client_id) {
            Some(secret) => {
                headers.push(("authorization".into(), ClientAuthentication::basic_header_value(client_id, secret)))
            }
            None => form.push(("client_id", Some(client_id))),
        }
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let url = format!("{}/revoke", self.world.issuer);
        let answer = self
            .world
            .http
            .send(http::Method::POST, &url, &pairs, Some(encode(form).into()))
            .await
            .map_err(|e| e.to_string())?;
        Ok(answer.status)
    }

    /// RFC 6749 §4.1.1–§4.1.2 as the resource owner's browser: open the authorization
    /// page, log in and approve, follow the redirect back with the code.
    async fn obtain_code(
        &mut self,
        client_id: &str,
        user: &str,
        password: &str,
        scope: Option<&str>,
        events: &mut Vec<TraceEvent>,
    ) -> Result<TokenRequest, String> {
        let registered = self
            .world
            .authorization_server
            .config()
            .clients
            .get(client_id)
            .ok_or_else(|| format!("unknown client {client_id}"))?;
        let redirect_uri = registered.redirect_uris.first().cloned().ok_or("client has no redirect_uri")?;
        let mut random = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut random);
        let verifier = CodeVerifier::from_random(&random);
        let challenge = verifier.s256_challenge();
        let state = fingerprint(&challenge);
        let query = encode([
            ("response_type", Some("code")),
            ("client_id", Some(client_id)),
            ("redirect_uri", Some(redirect_uri.as_str())),
            ("scope", scope),
            ("state", Some(state.as_str())),
            ("code_challenge", Some(challenge.as_str())),
            ("code_challenge_method", Some("S256")),
        ]);
        let issuer = self.world.issuer.clone();
        let http = self.world.http.clone();
        let page = http
            .send(http::Method::GET, &format!("{issuer}/authorize?{query}"), &[], None)
            .await
            .map_err(|e| e.to_string())?;
        events.push(TraceEvent::ResourceOwner {
            what: ResourceOwnerAct::OpensAuthorizationPage {
                client_id: client_id.to_owned(),
                state: state.clone(),
                status: page.status,
            },
        });
        if page.status != 200 {
            return Err(format!("the authorization page answered {}", page.status));
        }
        let form = encode([
            ("request", Some(query.as_str())),
            ("username", Some(user)),
            ("password", Some(password)),
            ("decision", Some("approve")),
        ]);
        let answer = http
            .send(
                http::Method::POST,
                &format!("{issuer}/authorize"),
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(form.into()),
            )
            .await
            .map_err(|e| e.to_string())?;
        let location = answer.header("location").unwrap_or("").to_owned();
        let returned = location.split_once('?').map(|(_, q)| q).unwrap_or("");
        let params = FormParams::parse(returned.as_bytes()).map_err(|e| e.to_string())?;
        events.push(TraceEvent::ResourceOwner {
            what: ResourceOwnerAct::Approves {
                user: user.to_owned(),
                status: answer.status,
                redirect_uri: location.split('?').next().unwrap_or("").to_owned(),
                code: params.get("code").map_or_else(|| "none".into(), |c| format!("code#{}", fingerprint(c))),
            },
        });
        let code = params.get("code").ok_or_else(|| format!("no code in the redirect (status {})", answer.status))?;
        // RFC 6749 §10.12: the state must come back unchanged; RFC 9207: so must iss.
        if params.get("state") != Some(state.as_str()) {
            return Err("the redirect did not return our state".into());
        }
        if params.get("iss") != Some(issuer.as_str()) {
            return Err("the redirect's iss is not the issuer (RFC 9207)".into());
        }
        Ok(TokenRequest::AuthorizationCode {
            code: AuthorizationCode::new(code),
            redirect_uri: Some(redirect_uri),
            code_verifier: Some(verifier),
        })
    }
}

fn outcome_of(result: Result<(), ClientError>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(ClientError::ReauthorizationRequired(_)) => Outcome::Reauthorize,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Compares what a step produced with what it should.
fn check(
    step: &Step,
    outcome: &Outcome,
    exchanges: &[(String, Exchange)],
    token_exchange: Option<&Exchange>,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Vec<(bool, Expectation)> {
    let expect: &Expect = &step.expect;
    let mut out = Vec::new();
    let last = exchanges.last().map(|(_, x)| x);
    let outcome_name = match outcome {
        Outcome::Ok => "ok".to_owned(),
        Outcome::Reauthorize => "reauthorize".to_owned(),
        Outcome::Failed(e) => format!("failed: {e}"),
    };
    match (&expect.outcome, expect.status) {
        (Some(want), _) => {
            let got = if outcome_name.starts_with("failed") { "failed" } else { outcome_name.as_str() };
            out.push((got == want, Expectation::Outcome { want: want.clone(), got: outcome_name.clone() }));
        }
        // Without an expected status or outcome the step must simply succeed.
        (None, None) if !matches!(outcome, Outcome::Ok) => {
            out.push((false, Expectation::Succeeds { got: outcome_name.clone() }))
        }
        _ => {}
    }
    if let Some(want) = expect.status {
        let got = last.map(|x| x.status);
        out.push((got == Some(want), Expectation::Status { want, got }));
    }
    if let Some(want) = &expect.error {
        let got = last.and_then(error_of);
        out.push((got.as_deref() == Some(want.as_str()), Expectation::Error { want: want.clone(), got }));
    }
    if let Some(want) = &expect.steps {
        let got: Vec<FlowStep> =
            exchanges.iter().flat_map(|(_, x)| [x.step.request_step(), x.step.response_step()]).collect();
        out.push((&got == want, Expectation::Steps { want: want.clone(), got }));
    }
    let body: Option<serde_json::Value> = token_exchange.and_then(|x| serde_json::from_str(&x.response_body).ok());
    for field in &expect.has {
        let ok = body.as_ref().is_some_and(|b| b.get(field).is_some());
        out.push((ok, Expectation::Has { field: field.clone() }));
    }
    for field in &expect.lacks {
        let ok = body.as_ref().is_some_and(|b| b.get(field).is_none());
        out.push((ok, Expectation::Lacks { field: field.clone() }));
    }
    for field in &expect.changed {
        let (b, a) = (before.and_then(|v| v.get(field)), after.and_then(|v| v.get(field)));
        out.push((a.is_some() && b != a, Expectation::Changed { field: field.clone() }));
    }
    for field in &expect.unchanged {
        let (b, a) = (before.and_then(|v| v.get(field)), after.and_then(|v| v.get(field)));
        out.push((b.is_some() && b == a, Expectation::Unchanged { field: field.clone() }));
    }
    if let Some(want) = &expect.scope {
        let got = body.as_ref().and_then(|b| b.get("scope")).and_then(|s| s.as_str()).map(str::to_owned);
        let same = match (Scope::parse(want), got.as_deref().map(Scope::parse)) {
            (Ok(w), Some(Ok(g))) => w == g,
            _ => false,
        };
        out.push((same, Expectation::Scope { want: want.clone(), got }));
    }
    out
}
