//! `figure2 serve`: the live view. A page that draws RFC 6749 Figure 2 and animates each
//! exchange as the scenario plays it, pushed from here as server-sent events.
//!
//! ```text
//! browser ──GET /──────────────▶ index.html, app.js, style.css (embedded in the binary)
//!         ──GET /api/i18n──────▶ every sentence, English and Chinese (crate::lang)
//!         ──GET /events────────▶ text/event-stream: reset, trace, lineage, status
//!         ──POST /api/step…────▶ plays a Step on the Session; its events go out on /events
//!         ──POST /api/preset?name=hydra-graceful──▶ the same session again under a preset
//! ```
//!
//! The preset selector lists every refresh policy of `figure2_protocol::presets`: choosing
//! one starts a new world whose authorization server runs that policy (the scenario's own
//! policy options dropped, as `figure2 compare` does) and plays again every command of the
//! session so far, so the learner sees the same situation under another server's rules.
//!
//! The page is a view: all state lives in the [`Session`] here, and every event is sent
//! to every open page (a page that connects late first receives the history). Nothing
//! is fetched from any other host.
//!
//! `figure2_http::serve` answers with whole bodies; an event stream needs a body that
//! stays open, so this module runs its own small hyper loop with a streaming body
//! ([`SseBody`]), with the same limits as the roles' servers.

use crate::lang::{self, Lang};
use crate::lineage::Lineage;
use bytes::Bytes;
use figure2_protocol::refresh::RefreshPolicy;
use figure2_runner::run::Session;
use figure2_runner::scenario::{Action, Resource, Scenario, Step, Text};
use figure2_runner::trace::TraceEvent;
use figure2_runner::world::SCENARIO_EPOCH;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Pages that may follow the events at once.
const MAX_SUBSCRIBERS: usize = 32;
/// Frames kept for pages that connect late (a session's history).
const MAX_HISTORY: usize = 20_000;
/// The longest the clock may be advanced in one go: ten years.
const MAX_ADVANCE: u64 = 10 * 365 * 24 * 3600;
/// Commands of one session remembered to play them again under another preset; later
/// ones still run but are not replayed.
const MAX_PLAYED: usize = 10_000;

type Body = BoxBody<Bytes, Infallible>;

/// The live view's state: one scenario, one session at a time.
pub struct Live {
    scenario: Scenario,
    state: tokio::sync::Mutex<State>,
    hub: Hub,
}

struct State {
    session: Option<Session>,
    /// The index of the scenario's next step.
    cursor: usize,
    events: Vec<TraceEvent>,
    policy: RefreshPolicy,
    /// The preset the session runs under (`None`: the scenario's own `[config]`).
    preset: Option<String>,
    /// The commands of this session, in order: played again when the preset changes.
    played: Vec<Command>,
    /// The client the buttons act as: the last client a step named, else demo-client.
    client: String,
    /// Sessions started so far (the page shows which one it follows).
    number: u64,
}

/// What a button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The scenario's next step.
    Step,
    /// The scenario's remaining steps.
    Run,
    /// Start again: a new world, the scenario from its first step.
    Reset,
    Advance {
        seconds: u64,
    },
    /// Present refresh token `generation` of the acting client's history again.
    Replay {
        generation: i64,
    },
    /// Revoke the acting client's current refresh token (RFC 7009).
    Revoke,
    Restart,
    /// The client calls a resource (C/D, or E/F/G/H/C/D when its token expired).
    Call {
        resource: Resource,
    },
    Refresh,
    /// Play the session again from the start under a refresh-policy preset (`None`: the
    /// scenario's own policy).
    Preset {
        name: Option<String>,
    },
}

impl Command {
    /// Parses `/api/<name>` and its query string.
    pub fn parse(name: &str, query: &str) -> Result<Self, String> {
        let param = |key: &str| {
            query.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v.to_owned())
        };
        Ok(match name {
            "step" => Command::Step,
            "run" => Command::Run,
            "reset" => Command::Reset,
            "advance" => {
                let seconds = param("seconds").unwrap_or_else(|| "60".into());
                let seconds: u64 = seconds.parse().map_err(|_| format!("seconds: {seconds:?} is not a number"))?;
                if seconds > MAX_ADVANCE {
                    return Err(format!("seconds: at most {MAX_ADVANCE}"));
                }
                Command::Advance { seconds }
            }
            "replay" => {
                let generation = param("generation").unwrap_or_else(|| "0".into());
                Command::Replay {
                    generation: generation
                        .parse()
                        .map_err(|_| format!("generation: {generation:?} is not a number"))?,
                }
            }
            "revoke" => Command::Revoke,
            "restart" => Command::Restart,
            "call" => {
                let resource = match param("resource").as_deref().unwrap_or("read") {
                    "read" => Resource::Read,
                    "write" => Resource::Write,
                    "admin" => Resource::Admin,
                    _ => return Err("resource: read, write or admin".into()),
                };
                Command::Call { resource }
            }
            "refresh" => Command::Refresh,
            "preset" => match param("name").as_deref().unwrap_or("") {
                "" => Command::Preset { name: None },
                name if figure2_protocol::presets::find(name).is_some() => {
                    Command::Preset { name: Some(name.to_owned()) }
                }
                name => {
                    return Err(format!(
                        "name: unknown preset {name:?}; known: {}",
                        figure2_protocol::presets::names().join(", ")
                    ));
                }
            },
            other => return Err(format!("no such command: {other}")),
        })
    }
}

impl Live {
    /// A live view of `scenario`; the session starts at once.
    pub async fn start(scenario: Scenario) -> Result<Arc<Self>, String> {
        let live = Arc::new(Self {
            scenario,
            state: tokio::sync::Mutex::new(State {
                session: None,
                cursor: 0,
                events: Vec::new(),
                policy: RefreshPolicy::default(),
                preset: None,
                played: Vec::new(),
                client: "demo-client".into(),
                number: 0,
            }),
            hub: Hub::default(),
        });
        {
            let mut state = live.state.lock().await;
            live.new_session(&mut state).await?;
        }
        Ok(live)
    }

    /// Stops the session and ends every event stream.
    pub async fn stop(&self) {
        self.hub.close();
        let mut state = self.state.lock().await;
        if let Some(session) = state.session.take() {
            session.stop().await;
        }
    }

    /// Runs a command to its end; its events go out as they are produced.
    pub async fn command(&self, command: Command) -> Result<(), String> {
        let mut state = self.state.lock().await;
        match command {
            Command::Reset => {
                state.played.clear();
                self.new_session(&mut state).await
            }
            Command::Preset { name } => {
                // The same session again, from the start, under the chosen policy.
                let previous = std::mem::replace(&mut state.preset, name);
                if let Err(e) = self.new_session(&mut state).await {
                    state.preset = previous;
                    return Err(e);
                }
                let played = state.played.clone();
                for command in &played {
                    self.execute(&mut state, command).await;
                }
                Ok(())
            }
            command => {
                if state.played.len() < MAX_PLAYED {
                    state.played.push(command.clone());
                }
                self.execute(&mut state, &command).await;
                Ok(())
            }
        }
    }

    /// The preset the session runs under (`None`: the scenario's own policy).
    pub async fn preset(&self) -> Option<String> {
        self.state.lock().await.preset.clone()
    }

    /// Plays one command of the session (not Reset or Preset, which start a new one).
    async fn execute(&self, state: &mut State, command: &Command) {
        match *command {
            Command::Reset | Command::Preset { .. } => {}
            Command::Step => {
                if state.cursor < self.scenario.steps.len() {
                    let step = self.scenario.steps[state.cursor].clone();
                    state.cursor += 1;
                    self.play(state, &step).await;
                }
            }
            Command::Run => {
                while state.cursor < self.scenario.steps.len() {
                    let step = self.scenario.steps[state.cursor].clone();
                    state.cursor += 1;
                    self.play(state, &step).await;
                }
            }
            Command::Advance { seconds } => self.play(state, &Step::new(Action::Advance { seconds })).await,
            Command::Replay { generation } => {
                let client = state.client.clone();
                let mut step = Step::new(Action::Replay {
                    of: client.clone(),
                    client,
                    generation,
                    scope: None,
                    lose_response: false,
                });
                step.note = Some(Text {
                    en: "Presented again from the client's history, as an attacker who copied it would: with rotation, a retired refresh token coming back is reuse (RFC 9700 §4.14.2).".into(),
                    zh: "从客户端的历史中再次出示，就像复制了它的攻击者那样：启用轮换时，已退役的刷新令牌再次出现就是重用（RFC 9700 §4.14.2）。".into(),
                });
                step.expect.status = Some(400);
                step.expect.error = Some("invalid_grant".into());
                self.play(state, &step).await;
            }
            Command::Revoke => {
                let client = state.client.clone();
                let action = Action::Revoke { of: client.clone(), client, generation: -1 };
                self.play(state, &Step::new(action)).await;
            }
            Command::Restart => self.play(state, &Step::new(Action::Restart)).await,
            Command::Call { resource } => {
                let action = Action::Call { client: state.client.clone(), resource, lose_response: false };
                self.play(state, &Step::new(action)).await;
            }
            Command::Refresh => {
                let action = Action::Refresh {
                    client: state.client.clone(),
                    scope: None,
                    lose_response: false,
                    sent_twice: false,
                };
                self.play(state, &Step::new(action)).await;
            }
        }
    }

    /// The scenario as the session plays it: under the chosen preset, if any.
    fn scenario_under_preset(&self, preset: Option<&str>) -> Scenario {
        match preset {
            Some(name) => figure2_runner::compare::under_preset(&self.scenario, name),
            None => self.scenario.clone(),
        }
    }

    async fn new_session(&self, state: &mut State) -> Result<(), String> {
        if let Some(old) = state.session.take() {
            old.stop().await;
        }
        let scenario = self.scenario_under_preset(state.preset.as_deref());
        let session = Session::start(&scenario).await.map_err(|e| e.to_string())?;
        state.policy = session.world().authorization_server.config().refresh.clone();
        state.number += 1;
        state.cursor = 0;
        state.events.clear();
        state.client = "demo-client".into();
        let first = session.scenario_event(&self.scenario);
        state.session = Some(session);
        self.hub.reset();
        let steps: Vec<Value> =
            self.scenario.steps.iter().map(|s| bilingual(|lang| lang::action(lang, &s.action))).collect();
        self.hub.publish(
            "reset",
            &json!({
                "session": state.number,
                "scenario": {
                    "id": self.scenario.id,
                    "title": self.scenario.title,
                    "description": self.scenario.description,
                    "rfc": self.scenario.rfc,
                    "steps": steps,
                },
                "epoch": SCENARIO_EPOCH,
                "preset": state.preset,
                "presets": presets_json(),
            }),
        );
        self.emit(state, first);
        self.publish_state(state, false);
        Ok(())
    }

    async fn play(&self, state: &mut State, step: &Step) {
        if let Some(client) = step.action.client() {
            state.client = client.to_owned();
        }
        self.publish_state(state, true);
        let Some(session) = state.session.as_mut() else { return };
        let events = session.step(step).await;
        for event in events {
            self.emit(state, event);
        }
        if state.cursor == self.scenario.steps.len()
            && !state.events.iter().any(|e| matches!(e, TraceEvent::Done { .. }))
            && let Some(session) = state.session.as_ref()
        {
            let done = session.done_event();
            self.emit(state, done);
        }
        self.publish_state(state, false);
    }

    fn emit(&self, state: &mut State, event: TraceEvent) {
        let mut value = serde_json::to_value(&event).unwrap_or_default();
        // Each learner-visible line, rendered in both languages: the page switches
        // between them without asking again.
        if let Value::Object(fields) = &mut value {
            fields.insert("text".into(), event_text(&event));
        }
        self.hub.publish("trace", &json!({ "index": state.events.len(), "event": value }));
        state.events.push(event);
    }

    fn publish_state(&self, state: &State, busy: bool) {
        let lineage = Lineage::from_events(&state.events, &state.policy);
        self.hub.publish("lineage", &serde_json::to_value(&lineage).unwrap_or_default());
        self.hub.publish("status", &self.status(state, busy));
    }

    fn status(&self, state: &State, busy: bool) -> Value {
        let total = self.scenario.steps.len();
        let t =
            state.session.as_ref().map(|s| figure2_protocol::Clock::now(&s.world().clock)).unwrap_or(SCENARIO_EPOCH);
        json!({
            "busy": busy,
            "cursor": state.cursor,
            "total": total,
            "next": self.scenario.steps.get(state.cursor).map(|s| bilingual(|lang| lang::action(lang, &s.action))),
            "t": t,
            "client": state.client,
            "failures": state.session.as_ref().map(|s| {
                s.failures().iter().map(|f| bilingual(|lang| lang::failure(lang, f))).collect::<Vec<_>>()
            }).unwrap_or_default(),
        })
    }

    /// Everything so far, as one JSON document (`GET /api/state`).
    async fn snapshot(&self) -> Value {
        let state = self.state.lock().await;
        json!({
            "status": self.status(&state, false),
            "events": state.events,
            "lineage": Lineage::from_events(&state.events, &state.policy),
        })
    }
}

/// The event streams: every frame goes to every open page, and the frames since the
/// session started are kept for pages that connect later.
#[derive(Default)]
struct Hub {
    inner: std::sync::Mutex<HubInner>,
}

#[derive(Default)]
struct HubInner {
    history: Vec<Bytes>,
    subscribers: Vec<mpsc::UnboundedSender<Bytes>>,
    closed: bool,
}

impl Hub {
    fn publish(&self, event: &str, data: &Value) {
        let frame = Bytes::from(format!("event: {event}\ndata: {data}\n\n"));
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.history.len() < MAX_HISTORY {
            inner.history.push(frame.clone());
        }
        inner.subscribers.retain(|s| s.send(frame.clone()).is_ok());
    }

    fn reset(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.history.clear();
        }
    }

    /// A new stream, primed with the history; `None` when closed or full.
    fn subscribe(&self) -> Option<mpsc::UnboundedReceiver<Bytes>> {
        let mut inner = self.inner.lock().ok()?;
        inner.subscribers.retain(|s| !s.is_closed());
        if inner.closed || inner.subscribers.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for frame in &inner.history {
            let _ = tx.send(frame.clone());
        }
        inner.subscribers.push(tx);
        Some(rx)
    }

    fn close(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.closed = true;
            inner.subscribers.clear();
        }
    }
}

/// A `text/event-stream` body: the frames of one subscription, with a comment every
/// 15 seconds so proxies and browsers keep the connection open. It ends when the hub
/// closes.
struct SseBody {
    frames: mpsc::UnboundedReceiver<Bytes>,
    keepalive: tokio::time::Interval,
}

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.frames.poll_recv(cx) {
            Poll::Ready(Some(frame)) => return Poll::Ready(Some(Ok(Frame::data(frame)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match self.keepalive.poll_tick(cx) {
            Poll::Ready(_) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": keepalive\n\n"))))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    if let Ok(v) = content_type.parse() {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    // Everything is served from here: no script, style or connection elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    full(status, "application/json", value.to_string())
}

fn allow(mut response: Response<Body>, methods: &'static str) -> Response<Body> {
    response.headers_mut().insert(header::ALLOW, header::HeaderValue::from_static(methods));
    response
}

/// Routes one request.
async fn handle(live: Arc<Live>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/") | (&Method::GET, "/index.html") => full(200, "text/html; charset=utf-8", INDEX_HTML),
        (&Method::GET, "/app.js") => full(200, "text/javascript; charset=utf-8", APP_JS),
        (&Method::GET, "/style.css") => full(200, "text/css; charset=utf-8", STYLE_CSS),
        (&Method::GET, "/favicon.ico") => full(204, "image/x-icon", Bytes::new()),
        (&Method::GET, "/api/i18n") => json_response(200, &crate::lang::i18n_json()),
        (&Method::GET, "/api/state") => json_response(200, &live.snapshot().await),
        // RFC 9110 §9.3.2: HEAD (seen here as GET) gets the stream's head, no stream.
        (&Method::GET, "/events") if figure2_http::is_head(&request) => full(200, "text/event-stream", Bytes::new()),
        (&Method::GET, "/events") => match live.hub.subscribe() {
            Some(frames) => {
                let start = tokio::time::Instant::now() + Duration::from_secs(15);
                let body = SseBody { frames, keepalive: tokio::time::interval_at(start, Duration::from_secs(15)) };
                let mut response = Response::new(body.boxed());
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/event-stream"));
                headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
                response
            }
            None => full(503, "text/plain", "too many live pages open"),
        },
        (&Method::POST, p) if p.starts_with("/api/") => {
            // A header a cross-site form cannot send: only the page (or a deliberate
            // client) can press the buttons.
            if request.headers().get("x-figure2-live").is_none() {
                return json_response(403, &json!({"error": "missing x-figure2-live header"}));
            }
            match Command::parse(&p["/api/".len()..], &query) {
                Ok(command) => match live.command(command).await {
                    Ok(()) => json_response(200, &json!({"ok": true})),
                    Err(e) => {
                        live.hub.publish("failure", &json!({"message": e}));
                        json_response(500, &json!({"error": e}))
                    }
                },
                Err(e) => json_response(400, &json!({"error": e})),
            }
        }
        // RFC 9110 §15.5.6: a 405 carries Allow (HEAD is added next to GET by figure2_http).
        (
            _,
            "/" | "/index.html" | "/app.js" | "/style.css" | "/favicon.ico" | "/api/i18n" | "/api/state" | "/events",
        ) => allow(full(405, "text/plain", "method not allowed"), "GET"),
        (_, p) if p.starts_with("/api/") => allow(full(405, "text/plain", "method not allowed"), "POST"),
        _ => full(404, "text/plain", "not found"),
    }
}

/// Serves the live view on `listener` until `shutdown` completes, then ends the event
/// streams, lets requests in flight finish (at most five seconds) and stops the session.
pub async fn serve(listener: TcpListener, live: Arc<Live>, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let hub = live.clone();
    // Ending the event streams first lets the graceful shutdown finish at once.
    let shutdown = async move {
        shutdown.await;
        hub.hub.close();
    };
    let handler = live.clone();
    let served = figure2_http::serve_fn(listener, figure2_http::Limits::default(), shutdown, move |request| {
        handle(handler.clone(), request)
    })
    .await;
    live.stop().await;
    served
}

/// The preset selector's options: the scenario's own policy first, then every preset,
/// each with its label in every language and the document it follows.
fn presets_json() -> Value {
    let own = json!({ "name": "", "label": bilingual(|lang| lang::scenario_policy(lang).to_owned()), "source": "" });
    let presets = figure2_protocol::presets::all().into_iter().map(|p| {
        json!({
            "name": p.name,
            "label": bilingual(|lang| lang::preset_label(lang, p.name).unwrap_or_default()),
            "source": p.source,
        })
    });
    Value::Array(std::iter::once(own).chain(presets).collect())
}

/// `{"en": …, "zh": …}`: one line in every language.
fn bilingual(line: impl Fn(Lang) -> String) -> Value {
    Value::Object(Lang::ALL.iter().map(|l| (l.code().to_owned(), json!(line(*l)))).collect())
}

/// The lines of an event the page shows, in every language: `{"en": {"line": …,
/// "note": …, "failures": […]}, "zh": {…}}`.
fn event_text(event: &TraceEvent) -> Value {
    let render = |lang: Lang| -> Value {
        match event {
            TraceEvent::Scenario { title, .. } => json!({ "line": lang::text(lang, title) }),
            TraceEvent::Step { action, note, .. } => json!({
                "line": lang::action(lang, action),
                "note": note.as_ref().map(|n| lang::text(lang, n)),
            }),
            TraceEvent::ResourceOwner { what } => json!({ "line": lang::resource_owner(lang, what) }),
            TraceEvent::Network { what } => json!({ "line": lang::happening(lang, what) }),
            TraceEvent::Check { check, .. } => json!({ "line": lang::expectation(lang, check) }),
            TraceEvent::Exchange(x) => json!({
                "line": x.rejection.as_ref().map(|r| lang::rejection(lang, x.error.as_deref(), r)),
            }),
            TraceEvent::Done { failures, .. } => json!({
                "failures": failures.iter().map(|f| lang::failure(lang, f)).collect::<Vec<_>>(),
            }),
            TraceEvent::Clock { .. } => json!({}),
        }
    };
    Value::Object(Lang::ALL.iter().map(|l| (l.code().to_owned(), render(*l))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9110 §9.3.2 on the live view's own router: HEAD on every GET route (the event
    /// stream answers its head only), and 405 with Allow (§15.5.6).
    #[tokio::test]
    async fn rfc9110_9_3_2_head_and_405_allow() {
        let text = include_str!("../../../../scenarios/figure2.toml");
        let scenario = Scenario::from_toml("figure2.toml", text).expect("scenario");
        let live = Live::start(scenario).await.expect("live view starts");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(serve(listener, live, async {
            let _ = stopped.await;
        }));
        let http = figure2_http::HttpClient::new();
        for path in ["/", "/app.js", "/style.css", "/api/i18n", "/api/state", "/events"] {
            let r = http.send(Method::HEAD, &format!("{base}{path}"), &[], None).await.expect("HEAD");
            assert_eq!((r.status, r.body.len()), (200, 0), "HEAD {path}");
            assert!(r.header("content-type").is_some(), "HEAD {path}");
        }
        let r = http.send(Method::DELETE, &format!("{base}/app.js"), &[], None).await.expect("DELETE");
        assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
        let r = http.send(Method::GET, &format!("{base}/api/advance"), &[], None).await.expect("GET");
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
        let _ = stop.send(());
        served.await.expect("task").expect("served");
    }

    #[test]
    fn commands_are_bounded() {
        assert_eq!(Command::parse("advance", "seconds=301"), Ok(Command::Advance { seconds: 301 }));
        assert!(Command::parse("advance", "seconds=-1").is_err());
        assert!(Command::parse("advance", "seconds=99999999999").is_err());
        assert_eq!(Command::parse("replay", ""), Ok(Command::Replay { generation: 0 }));
        assert!(Command::parse("call", "resource=../etc").is_err());
        assert!(Command::parse("rm", "").is_err());
        assert_eq!(Command::parse("preset", "name=dex"), Ok(Command::Preset { name: Some("dex".into()) }));
        assert_eq!(Command::parse("preset", "name="), Ok(Command::Preset { name: None }));
        assert!(Command::parse("preset", "name=../etc").is_err());
    }

    /// The preset selector: the same commands played again under another policy give
    /// another trace (the lost-response scenario: strict rotation logs the client out,
    /// Hydra's grace period lets its retry in).
    #[tokio::test]
    async fn choosing_a_preset_plays_the_session_again_under_it() {
        let text = include_str!("../../../../scenarios/lost-response.toml");
        let scenario = Scenario::from_toml("lost-response.toml", text).expect("scenario");
        let live = Live::start(scenario).await.expect("live view starts");
        let refreshes = |events: &[TraceEvent]| -> Vec<(u16, Option<String>)> {
            events
                .iter()
                .filter_map(|e| match e {
                    TraceEvent::Exchange(x) if x.request_letter == figure2_protocol::FlowStep::G => {
                        Some((x.status, x.error.clone()))
                    }
                    _ => None,
                })
                .collect()
        };
        live.command(Command::Run).await.expect("run");
        let strict = refreshes(&live.state.lock().await.events);
        assert_eq!(strict, vec![(504, None), (400, Some("invalid_grant".into()))], "no grace: the retry is reuse");
        live.command(Command::Preset { name: Some("hydra-graceful".into()) }).await.expect("preset");
        assert_eq!(live.preset().await.as_deref(), Some("hydra-graceful"));
        assert_eq!(live.state.lock().await.policy.refresh_token_reuse_interval, 300);
        let graceful = refreshes(&live.state.lock().await.events);
        assert_eq!(graceful, vec![(504, None), (200, None)], "within rotation_grace_period the retry is accepted");
        live.command(Command::Preset { name: Some("kanidm".into()) }).await.expect("preset");
        assert_eq!(refreshes(&live.state.lock().await.events), strict);
        live.command(Command::Preset { name: None }).await.expect("the scenario's own policy");
        assert_eq!(refreshes(&live.state.lock().await.events), strict);
        live.stop().await;
    }
}
