//! Runs one scenario: starts the world, plays each step through the client library (or
//! as the resource owner's browser), records every exchange, and checks expectations.

use crate::scenario::{Action, Expect, GrantKind, Scenario, Step};
use crate::trace::{TraceEvent, TracedExchange, error_of};
use crate::world::{DEMO_USERS, World, WorldError};
use figure2_client::{Client, ClientError, Exchange, Step as FigureStep};
use figure2_protocol::Scope;
use figure2_protocol::form::{FormParams, encode};
use figure2_protocol::pkce::CodeVerifier;
use figure2_protocol::secret::Secret;
use figure2_protocol::token_request::{RefreshTokenRequest, TokenRequest};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The result of one scenario.
#[derive(Debug, Clone)]
pub struct Report {
    pub id: String,
    pub passed: bool,
    pub failures: Vec<String>,
    pub events: Vec<TraceEvent>,
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

struct Runner<'a> {
    world: World,
    actors: HashMap<String, Actor>,
    recorded: Recorded,
    emit: &'a mut dyn FnMut(&TraceEvent),
    events: Vec<TraceEvent>,
    failures: Vec<String>,
    exchanges: usize,
}

/// Runs `scenario`, calling `emit` with every trace event as it happens.
pub async fn run(scenario: &Scenario, emit: &mut dyn FnMut(&TraceEvent)) -> Result<Report, WorldError> {
    let world = World::start(&scenario.config).await?;
    let mut runner = Runner {
        world,
        actors: HashMap::new(),
        recorded: Arc::new(Mutex::new(Vec::new())),
        emit,
        events: Vec::new(),
        failures: Vec::new(),
        exchanges: 0,
    };
    runner.event(TraceEvent::Scenario {
        id: scenario.id.clone(),
        title: scenario.title.clone(),
        rfc: scenario.rfc.clone(),
        authorization_server: runner.world.issuer.clone(),
        resource_server: runner.world.resource_url.clone(),
    });
    for (i, step) in scenario.steps.iter().enumerate() {
        runner.step(i + 1, step).await;
        if !scenario.client_tracks_expiry {
            runner.forget_expiry();
        }
    }
    let passed = runner.failures.is_empty();
    runner.event(TraceEvent::Done {
        passed,
        steps: scenario.steps.len(),
        exchanges: runner.exchanges,
        failures: runner.failures.clone(),
    });
    let Runner { world, events, failures, .. } = runner;
    world.stop().await;
    Ok(Report { id: scenario.id.clone(), passed, failures, events })
}

fn label(step: &Step) -> String {
    let client = step.client.as_deref().unwrap_or("demo-client");
    match step.action {
        Action::Authorize => {
            let grant = match step.grant.unwrap_or(GrantKind::Password) {
                GrantKind::Password => "password grant (RFC 6749 §4.3, legacy)",
                GrantKind::AuthorizationCode => "authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636)",
                GrantKind::ClientCredentials => "client credentials grant (RFC 6749 §4.4)",
            };
            format!("{client} obtains tokens with the {grant}")
        }
        Action::Call => format!("{client} calls the {} resource", step.resource.as_deref().unwrap_or("?")),
        Action::Refresh => match &step.scope {
            Some(s) => format!("{client} refreshes, asking for scope \"{s}\""),
            None => format!("{client} refreshes"),
        },
        Action::Replay => format!(
            "{client} presents refresh token #{} of {}",
            step.generation.unwrap_or(0),
            step.of.as_deref().unwrap_or(client)
        ),
        Action::Advance => format!("time passes: {} seconds", step.seconds.unwrap_or(0)),
        Action::RotateKey => "the authorization server rotates its signing key".into(),
    }
}

impl Runner<'_> {
    fn event(&mut self, event: TraceEvent) {
        (self.emit)(&event);
        self.events.push(event);
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
        if !self.actors.contains_key(client_id) {
            let recorded = self.recorded.clone();
            let id = client_id.to_owned();
            let observer = Arc::new(move |x: &Exchange| {
                if let Ok(mut r) = recorded.lock() {
                    r.push((id.clone(), x.clone()));
                }
            });
            let client = self
                .world
                .client(client_id, observer)
                .ok_or_else(|| format!("unknown client {client_id:?} (not in the demo configuration)"))?;
            self.actors
                .insert(client_id.to_owned(), Actor { client, refresh_tokens: Vec::new(), last_token_response: None });
        }
        self.actors.get_mut(client_id).ok_or_else(|| "actor vanished".to_owned())
    }

    async fn step(&mut self, number: usize, step: &Step) {
        let t = figure2_protocol::Clock::now(&self.world.clock);
        self.event(TraceEvent::Step { number, label: label(step), note: step.note.clone(), t });
        let client_id = step.client.clone().unwrap_or_else(|| "demo-client".into());
        let before = self.actors.get(&client_id).and_then(|a| a.last_token_response.clone());
        let outcome = match self.act(step, &client_id).await {
            Ok(outcome) => outcome,
            Err(message) => Outcome::Failed(message),
        };
        // Everything the clients sent and received during the step, in order.
        let exchanges: Vec<(String, Exchange)> =
            self.recorded.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default();
        for (who, x) in &exchanges {
            self.exchanges += 1;
            self.event(TraceEvent::Exchange(TracedExchange::from_exchange(who, x)));
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
        let after = self.actors.get(&client_id).and_then(|a| a.last_token_response.clone());
        let token_exchange = exchanges
            .iter()
            .rev()
            .find(|(_, x)| matches!(x.step, FigureStep::AuthorizationGrant | FigureStep::Refresh))
            .map(|(_, x)| x);
        let checks = check(&step.expect, &outcome, &exchanges, token_exchange, before.as_ref(), after.as_ref());
        for (ok, message) in checks {
            if !ok {
                self.failures.push(format!("step {number} ({}): {message}", label(step)));
            }
            self.event(TraceEvent::Check { ok, message });
        }
    }

    async fn act(&mut self, step: &Step, client_id: &str) -> Result<Outcome, String> {
        match step.action {
            Action::Advance => {
                let seconds = step.seconds.unwrap_or(0);
                let t = self.world.clock.advance(seconds);
                self.event(TraceEvent::Clock { advanced_by: seconds, t });
                Ok(Outcome::Ok)
            }
            Action::RotateKey => {
                let kid = self.world.authorization_server.rotate_signing_key().map_err(|e| e.to_string())?;
                self.event(TraceEvent::ResourceOwner { line: format!("(operator) new signing key kid={kid}") });
                Ok(Outcome::Ok)
            }
            Action::Authorize => {
                let scope = step.scope.as_deref().map(Scope::parse).transpose().map_err(|e| e.to_string())?;
                let user = step.user.clone().unwrap_or_else(|| "alice".into());
                let password = DEMO_USERS.iter().find(|(u, _)| *u == user).map(|(_, p)| *p).unwrap_or("wrong-password");
                let request = match step.grant.unwrap_or(GrantKind::Password) {
                    GrantKind::Password => {
                        TokenRequest::Password { username: user, password: Secret::new(password), scope }
                    }
                    GrantKind::ClientCredentials => TokenRequest::ClientCredentials { scope },
                    GrantKind::AuthorizationCode => {
                        self.obtain_code(client_id, &user, password, step.scope.as_deref()).await?
                    }
                };
                let client = self.actor(client_id)?.client.clone();
                Ok(outcome_of(client.request_token(request).await.map(|_| ())))
            }
            Action::Call => {
                let resource = step.resource.as_deref().unwrap_or("read");
                let (method, body) = match resource {
                    "write" => {
                        (http::Method::POST, Some(bytes::Bytes::from_static(br#"{"note":"written by figure2"}"#)))
                    }
                    _ => (http::Method::GET, None),
                };
                let url = format!("{}/resource/{resource}", self.world.resource_url);
                let client = self.actor(client_id)?.client.clone();
                Ok(outcome_of(client.call(method, &url, body).await.map(|_| ())))
            }
            Action::Refresh => {
                let scope = step.scope.as_deref().map(Scope::parse).transpose().map_err(|e| e.to_string())?;
                let client = self.actor(client_id)?.client.clone();
                Ok(outcome_of(client.refresh(scope).await.map(|_| ())))
            }
            Action::Replay => {
                let owner = step.of.clone().unwrap_or_else(|| client_id.to_owned());
                let history = &self.actor(&owner)?.refresh_tokens;
                let g = step.generation.unwrap_or(0);
                let index = if g < 0 { history.len() as i64 + g } else { g };
                let token = usize::try_from(index)
                    .ok()
                    .and_then(|i| history.get(i))
                    .cloned()
                    .ok_or_else(|| format!("{owner} holds no refresh token #{g} (it has {})", history.len()))?;
                let scope = step.scope.as_deref().map(Scope::parse).transpose().map_err(|e| e.to_string())?;
                let request =
                    TokenRequest::RefreshToken(RefreshTokenRequest { refresh_token: Secret::new(token), scope });
                let client = self.actor(client_id)?.client.clone();
                match client.send_token_request(&request, FigureStep::Refresh).await {
                    Ok(_) => Ok(Outcome::Ok),
                    Err(e) => Ok(Outcome::Failed(e.to_string())),
                }
            }
        }
    }

    /// RFC 6749 §4.1.1–§4.1.2 as the resource owner's browser: open the authorization
    /// page, log in and approve, follow the redirect back with the code.
    async fn obtain_code(
        &mut self,
        client_id: &str,
        user: &str,
        password: &str,
        scope: Option<&str>,
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
        let state = figure2_protocol::secret::fingerprint(&challenge);
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
        self.event(TraceEvent::ResourceOwner {
            line: format!(
                "GET /authorize (client_id={client_id}, PKCE S256, state={state}) → {} login and consent page",
                page.status
            ),
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
        self.event(TraceEvent::ResourceOwner {
            line: format!(
                "POST /authorize as {user}, approve → {} redirect to {} with code#{}",
                answer.status,
                location.split('?').next().unwrap_or(""),
                params.get("code").map(figure2_protocol::secret::fingerprint).unwrap_or_else(|| "none".into())
            ),
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
            code: Secret::new(code),
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
    expect: &Expect,
    outcome: &Outcome,
    exchanges: &[(String, Exchange)],
    token_exchange: Option<&Exchange>,
    before: Option<&serde_json::Value>,
    after: Option<&serde_json::Value>,
) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let last = exchanges.last().map(|(_, x)| x);
    let outcome_name = match outcome {
        Outcome::Ok => "ok".to_owned(),
        Outcome::Reauthorize => "reauthorize".to_owned(),
        Outcome::Failed(e) => format!("failed: {e}"),
    };
    match (&expect.outcome, expect.status) {
        (Some(want), _) => {
            out.push((outcome_name == *want, format!("outcome {want} (got {outcome_name})")));
        }
        // Without an expected status or outcome the step must simply succeed.
        (None, None) => out.push((matches!(outcome, Outcome::Ok), format!("step succeeds (got {outcome_name})"))),
        (None, Some(_)) => {}
    }
    if let Some(want) = expect.status {
        let got = last.map(|x| x.status);
        out.push((
            got == Some(want),
            format!("status {want} (got {})", got.map_or("no exchange".into(), |s| s.to_string())),
        ));
    }
    if let Some(want) = &expect.error {
        let got = last.and_then(error_of);
        out.push((
            got.as_deref() == Some(want.as_str()),
            format!("error {want} (got {})", got.unwrap_or_else(|| "none".into())),
        ));
    }
    if let Some(want) = &expect.steps {
        let got: Vec<String> = exchanges
            .iter()
            .flat_map(|(_, x)| [x.step.request_letter().to_string(), x.step.response_letter().to_string()])
            .collect();
        let got = got.join(" ");
        let want = want.split_whitespace().collect::<Vec<_>>().join(" ");
        out.push((got == want, format!("Figure 2 steps {want} (got {got})")));
    }
    let body: Option<serde_json::Value> = token_exchange.and_then(|x| serde_json::from_str(&x.response_body).ok());
    for field in &expect.has {
        let ok = body.as_ref().is_some_and(|b| b.get(field).is_some());
        out.push((ok, format!("token response has {field}")));
    }
    for field in &expect.lacks {
        let ok = body.as_ref().is_some_and(|b| b.get(field).is_none());
        out.push((ok, format!("token response has no {field}")));
    }
    for field in &expect.changed {
        let (b, a) = (before.and_then(|v| v.get(field)), after.and_then(|v| v.get(field)));
        out.push((a.is_some() && b != a, format!("{field} changed")));
    }
    for field in &expect.unchanged {
        let (b, a) = (before.and_then(|v| v.get(field)), after.and_then(|v| v.get(field)));
        out.push((b.is_some() && b == a, format!("{field} unchanged")));
    }
    if let Some(want) = &expect.scope {
        let got = body.as_ref().and_then(|b| b.get("scope")).and_then(|s| s.as_str()).map(str::to_owned);
        let same = match (Scope::parse(want), got.as_deref().map(Scope::parse)) {
            (Ok(w), Some(Ok(g))) => w == g,
            _ => false,
        };
        out.push((same, format!("scope \"{want}\" (got {})", got.unwrap_or_else(|| "none".into()))));
    }
    out
}
