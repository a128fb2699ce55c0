//! Scenario files: data, not code. A scenario names the RFC text it shows, overrides the
//! authorization server's configuration, and lists steps with what each must produce.
//!
//! ```toml
//! id = "figure2"
//! title.en = "Refreshing an expired access token"
//! title.zh = "刷新过期的访问令牌"
//! rfc = ["RFC 6749 §1.5"]
//! [config]
//! access_token_lifetime = 300
//! [[step]]
//! do = "authorize"
//! grant = "password"
//! expect = { status = 200, steps = "A B", has = ["refresh_token"] }
//! ```
//!
//! A step is an [`Action`] chosen by `do`, whose other keys are the action's fields: a
//! key the action does not take is an error, so are unknown keys and missing required
//! ones (`seconds` for `advance`, `resource` for `call`, `generation` for `replay`).

use figure2_protocol::flow::{FlowStep, parse_steps};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Stable identifier, e.g. `figure2` or `rotation-off`.
    pub id: String,
    pub title: Text,
    /// The RFC sections the scenario shows, e.g. `["RFC 6749 §6"]`.
    #[serde(default)]
    pub rfc: Vec<String>,
    #[serde(default)]
    pub description: Text,
    /// Overrides of the authorization server's configuration (any option of
    /// `config/demo.toml`).
    #[serde(default)]
    pub config: toml::Table,
    /// Whether the clients use `expires_in` to know when their access token expired
    /// (default true). RFC 6749 §1.5 (E): a client that knows "skips to step (G)"; one
    /// that does not goes on presenting the token and meets step (F).
    #[serde(default = "default_true")]
    pub client_tracks_expiry: bool,
    /// Options of the resource server, e.g. `[resource_server] leeway = 60`.
    #[serde(default)]
    pub resource_server: crate::world::ResourceServerOptions,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// A sentence the learner reads, in English and Chinese. In a file either
/// `title.en = "…"` and `title.zh = "…"` (or `title = { en = "…", zh = "…" }`), or a
/// plain string (English only: shipped scenarios must not do that, a test checks).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TextInFile")]
pub struct Text {
    pub en: String,
    /// Empty when the scenario has no translation.
    pub zh: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TextInFile {
    English(String),
    Both { en: String, zh: String },
}

impl From<TextInFile> for Text {
    fn from(t: TextInFile) -> Self {
        match t {
            TextInFile::English(en) => Self { en, zh: String::new() },
            TextInFile::Both { en, zh } => Self { en, zh },
        }
    }
}

impl Text {
    pub fn english(en: impl Into<String>) -> Self {
        Self { en: en.into(), zh: String::new() }
    }

    pub fn is_translated(&self) -> bool {
        self.en.trim().is_empty() == self.zh.trim().is_empty()
    }
}

/// One step of a scenario: what it does, why it is there, and what it must produce.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "StepInFile")]
pub struct Step {
    pub action: Action,
    /// A sentence printed in the trace explaining why the step is there.
    pub note: Option<Text>,
    pub expect: Expect,
}

/// What a step does. In a file, `do = "…"` names the variant and the step's other keys
/// are its fields; `client` defaults to `demo-client`, `user` to `alice`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// Steps A and B: obtain a grant and exchange it for tokens.
    Authorize { client: String, grant: GrantKind, user: String, scope: Option<String>, lose_response: bool },
    /// Steps C to H as the client library plays them: call a resource, refreshing first
    /// if the token is known to be expired, or after `invalid_token` (then retry once).
    Call { client: String, resource: Resource, lose_response: bool },
    /// Steps G and H on demand, optionally narrowing `scope`.
    /// With `sent_twice`, the client's HTTP layer retries the request (a timeout, a
    /// dropped connection): the server receives it twice and the client sees only the
    /// second answer.
    Refresh { client: String, scope: Option<String>, lose_response: bool, sent_twice: bool },
    /// Present a refresh token held earlier by `of` (`generation` 0 = the first issued;
    /// negative counts from the newest, -1 = the current one), as `client`, without
    /// changing any client's state.
    Replay { client: String, of: String, generation: i64, scope: Option<String>, lose_response: bool },
    /// RFC 7009: `client` revokes a refresh token of the history of `of`.
    Revoke { client: String, of: String, generation: i64 },
    /// Move the shared simulated clock forward by `seconds`.
    Advance { seconds: u64 },
    /// Add a new signing key to the authorization server (a new `kid`).
    RotateKey,
    /// Stop the authorization server and start it again on the same database.
    Restart,
    /// A second install of `client` (a restored backup, a copied profile) named `device`
    /// holds refresh token #`generation` and refreshes with it.
    Install { client: String, device: String, generation: i64 },
    /// Two devices refresh the same refresh token at the same instant: `client` and a copy
    /// of it named `device`. Neither sees the other's answer before sending; the client's
    /// request arrives first.
    Race { client: String, device: String },
    /// The authorization server's `endpoint` is unreachable (502) for `seconds`.
    Outage { endpoint: crate::world::Endpoint, seconds: u64 },
    /// A proxy answers the next token request with `status` (e.g. 429, 503) itself.
    ProxyAnswers { status: u16 },
    /// The clock of `role` (`authorization_server`, `resource_server` or `client`) runs
    /// `offset` seconds ahead (negative: behind) of the shared clock; the others keep it.
    Skew { role: Role, offset: i64 },
}

/// A role whose clock a scenario can skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    AuthorizationServer,
    ResourceServer,
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationServer => "authorization server",
            Self::ResourceServer => "resource server",
            Self::Client => "client",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    #[default]
    Password,
    AuthorizationCode,
    ClientCredentials,
}

/// The demo resource server's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// `GET /resource/read` (scope `read`).
    Read,
    /// `POST /resource/write` (scope `write`).
    Write,
    /// `GET /resource/admin` (scope `admin`, which the demo never grants).
    Admin,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

/// A step as written in a file: the tag `do` and every key any action may take.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepInFile {
    #[serde(rename = "do")]
    action: String,
    grant: Option<GrantKind>,
    client: Option<String>,
    user: Option<String>,
    scope: Option<String>,
    resource: Option<Resource>,
    seconds: Option<u64>,
    generation: Option<i64>,
    of: Option<String>,
    lose_response: Option<bool>,
    sent_twice: Option<bool>,
    device: Option<String>,
    endpoint: Option<crate::world::Endpoint>,
    status: Option<u16>,
    role: Option<Role>,
    offset: Option<i64>,
    note: Option<Text>,
    #[serde(default)]
    expect: Expect,
}

impl TryFrom<StepInFile> for Step {
    type Error = String;

    fn try_from(f: StepInFile) -> Result<Self, String> {
        let do_ = f.action.as_str();
        let client = f.client.clone().unwrap_or_else(|| "demo-client".into());
        let of = f.of.clone().unwrap_or_else(|| client.clone());
        let lose_response = f.lose_response.unwrap_or(false);
        let needs = |what: &str| format!("{do_} needs {what}");
        // Every key the action does not take is a mistake in the file.
        let allowed: &[&str] = match do_ {
            "authorize" => &["grant", "client", "user", "scope", "lose_response"],
            "call" => &["client", "resource", "lose_response"],
            "refresh" => &["client", "scope", "lose_response", "sent_twice"],
            "replay" => &["client", "of", "generation", "scope", "lose_response"],
            "revoke" => &["client", "of", "generation"],
            "advance" => &["seconds"],
            "rotate_key" | "restart" => &[],
            "install" => &["client", "device", "generation"],
            "race" => &["client", "device"],
            "outage" => &["endpoint", "seconds"],
            "proxy_answers" => &["status"],
            "skew" => &["role", "offset"],
            other => {
                return Err(format!(
                    "unknown do = {other:?} (authorize, call, refresh, replay, revoke, advance, rotate_key, restart, \
                     install, race, outage, proxy_answers, skew)"
                ));
            }
        };
        let given = [
            ("grant", f.grant.is_some()),
            ("client", f.client.is_some()),
            ("user", f.user.is_some()),
            ("scope", f.scope.is_some()),
            ("resource", f.resource.is_some()),
            ("seconds", f.seconds.is_some()),
            ("generation", f.generation.is_some()),
            ("of", f.of.is_some()),
            ("lose_response", f.lose_response.is_some()),
            ("sent_twice", f.sent_twice.is_some()),
            ("device", f.device.is_some()),
            ("endpoint", f.endpoint.is_some()),
            ("status", f.status.is_some()),
            ("role", f.role.is_some()),
            ("offset", f.offset.is_some()),
        ];
        if let Some((key, _)) = given.iter().find(|(key, set)| *set && !allowed.contains(key)) {
            return Err(format!("{do_} takes no {key}"));
        }
        let action = match do_ {
            "authorize" => Action::Authorize {
                client,
                grant: f.grant.unwrap_or_default(),
                user: f.user.unwrap_or_else(|| "alice".into()),
                scope: f.scope,
                lose_response,
            },
            "call" => Action::Call { client, resource: f.resource.ok_or_else(|| needs("resource"))?, lose_response },
            "refresh" => {
                Action::Refresh { client, scope: f.scope, lose_response, sent_twice: f.sent_twice.unwrap_or(false) }
            }
            "replay" => Action::Replay {
                client,
                of,
                generation: f.generation.ok_or_else(|| needs("generation"))?,
                scope: f.scope,
                lose_response,
            },
            "revoke" => Action::Revoke { client, of, generation: f.generation.ok_or_else(|| needs("generation"))? },
            "advance" => Action::Advance { seconds: f.seconds.ok_or_else(|| needs("seconds"))? },
            "rotate_key" => Action::RotateKey,
            "restart" => Action::Restart,
            "install" => Action::Install {
                client,
                device: f.device.unwrap_or_else(|| "second-install".into()),
                generation: f.generation.ok_or_else(|| needs("generation"))?,
            },
            "race" => Action::Race { client, device: f.device.unwrap_or_else(|| "second-device".into()) },
            "outage" => Action::Outage {
                endpoint: f.endpoint.unwrap_or(crate::world::Endpoint::All),
                seconds: f.seconds.ok_or_else(|| needs("seconds"))?,
            },
            "proxy_answers" => {
                let status = f.status.ok_or_else(|| needs("status"))?;
                if !(400..=599).contains(&status) {
                    return Err(format!("proxy_answers needs an error status (400-599), not {status}"));
                }
                Action::ProxyAnswers { status }
            }
            _ => Action::Skew {
                role: f.role.ok_or_else(|| needs("role"))?,
                offset: f.offset.ok_or_else(|| needs("offset"))?,
            },
        };
        Ok(Step { action, note: f.note, expect: f.expect })
    }
}

impl Action {
    /// The client acting, if a client acts.
    pub fn client(&self) -> Option<&str> {
        match self {
            Self::Authorize { client, .. }
            | Self::Call { client, .. }
            | Self::Refresh { client, .. }
            | Self::Replay { client, .. }
            | Self::Revoke { client, .. }
            | Self::Install { client, .. }
            | Self::Race { client, .. } => Some(client),
            Self::Advance { .. }
            | Self::RotateKey
            | Self::Restart
            | Self::Outage { .. }
            | Self::ProxyAnswers { .. }
            | Self::Skew { .. } => None,
        }
    }

    /// Whether the token endpoint's answer during this step is lost on the way back to
    /// the client, after the server committed it.
    pub fn loses_response(&self) -> bool {
        match self {
            Self::Authorize { lose_response, .. }
            | Self::Call { lose_response, .. }
            | Self::Refresh { lose_response, .. }
            | Self::Replay { lose_response, .. } => *lose_response,
            _ => false,
        }
    }
}

/// What a step must produce. Every field is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// HTTP status of the step's last exchange.
    pub status: Option<u16>,
    /// The OAuth error code: §5.2 `error` from the token endpoint, or RFC 6750 `error`
    /// from the resource server's `WWW-Authenticate`.
    pub error: Option<String>,
    /// The Figure 2 steps of the step's exchanges, in order; in a file a string such as
    /// `"E F G H C D"`.
    #[serde(default, deserialize_with = "flow_steps")]
    pub steps: Option<Vec<FlowStep>>,
    /// Fields the token response must contain / must not contain.
    #[serde(default)]
    pub has: Vec<String>,
    #[serde(default)]
    pub lacks: Vec<String>,
    /// Token-response fields that must differ from / equal the client's previous ones.
    #[serde(default)]
    pub changed: Vec<String>,
    #[serde(default)]
    pub unchanged: Vec<String>,
    /// The scope of the issued access token.
    pub scope: Option<String>,
    /// `ok`, or `reauthorize` when the client must go back to step A.
    pub outcome: Option<String>,
}

fn flow_steps<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<FlowStep>>, D::Error> {
    let text = String::deserialize(d)?;
    parse_steps(&text).map(Some).map_err(serde::de::Error::custom)
}

fn default_true() -> bool {
    true
}

/// The one-line description of a step the trace prints, in English (the views
/// translate it).
impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Authorize { client, grant, .. } => {
                let grant = match grant {
                    GrantKind::Password => "password grant (RFC 6749 §4.3, legacy)",
                    GrantKind::AuthorizationCode => "authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636)",
                    GrantKind::ClientCredentials => "client credentials grant (RFC 6749 §4.4)",
                };
                write!(f, "{client} obtains tokens with the {grant}")?
            }
            Self::Call { client, resource, .. } => write!(f, "{client} calls the {} resource", resource.as_str())?,
            Self::Refresh { client, scope: Some(s), .. } => write!(f, "{client} refreshes, asking for scope \"{s}\"")?,
            Self::Refresh { client, scope: None, .. } => write!(f, "{client} refreshes")?,
            Self::Replay { client, of, generation, .. } => {
                write!(f, "{client} presents refresh token #{generation} of {of}")?
            }
            Self::Revoke { client, generation, .. } => {
                write!(f, "{client} revokes its refresh token #{generation} (RFC 7009)")?
            }
            Self::Advance { seconds } => write!(f, "time passes: {seconds} seconds")?,
            Self::RotateKey => f.write_str("the authorization server rotates its signing key")?,
            Self::Restart => f.write_str("the authorization server restarts on the same database")?,
            Self::Install { client, device, generation } => {
                write!(f, "a second install of {client} ({device}) refreshes with refresh token #{generation}")?
            }
            Self::Race { client, device } => {
                write!(f, "{client} and {device} refresh the same refresh token at the same instant")?
            }
            Self::Outage { endpoint, seconds } => match endpoint {
                crate::world::Endpoint::All => {
                    write!(f, "the authorization server is unreachable for {seconds} seconds")?
                }
                crate::world::Endpoint::Token => write!(f, "the token endpoint is unreachable for {seconds} seconds")?,
                crate::world::Endpoint::Jwks => {
                    write!(f, "the JWKS is unreachable from the resource server for {seconds} seconds")?
                }
            },
            Self::ProxyAnswers { status } => {
                write!(f, "a proxy in front of the authorization server will answer the next token request {status}")?
            }
            Self::Skew { role, offset } if *offset >= 0 => {
                write!(f, "the {} clock runs {offset} seconds ahead", role.as_str())?
            }
            Self::Skew { role, offset } => write!(f, "the {} clock runs {} seconds behind", role.as_str(), -offset)?,
        }
        if matches!(self, Self::Refresh { sent_twice: true, .. }) {
            f.write_str(" (its HTTP layer sends the request twice)")?;
        }
        if self.loses_response() {
            f.write_str(" (the token response will be lost)")?;
        }
        Ok(())
    }
}

impl Step {
    /// A step built in code (the live view's buttons), with no note and no expectation.
    pub fn new(action: Action) -> Self {
        Self { action, note: None, expect: Expect::default() }
    }
}

impl Scenario {
    pub fn from_toml(path: &str, text: &str) -> Result<Self, ScenarioError> {
        let scenario: Scenario =
            toml::from_str(text).map_err(|e| ScenarioError::Invalid { path: path.into(), message: e.to_string() })?;
        scenario.check().map_err(|message| ScenarioError::Invalid { path: path.into(), message })?;
        Ok(scenario)
    }

    pub fn load(path: &str) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read { path: path.into(), source })?;
        Self::from_toml(path, &text)
    }

    /// Whether the scenario runs several authorization servers (`instances` > 1 in its
    /// `[config]`), hence needs PostgreSQL (`FIGURE2_TEST_POSTGRES`). Such scenarios are
    /// left out of the exported transcripts and comparisons: which instance wins a race
    /// is up to PostgreSQL, so their traces differ from run to run.
    pub fn needs_postgres(&self) -> bool {
        self.config.get("instances").and_then(toml::Value::as_integer).is_some_and(|n| n > 1)
    }

    /// Every scenario file under `dir` (recursively: `*.toml`), sorted.
    pub fn files_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|x| x == "toml") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(dir, &mut files);
        files.sort();
        files
    }

    /// Catches scenario mistakes before anything runs.
    fn check(&self) -> Result<(), String> {
        if self.steps.is_empty() {
            return Err("a scenario needs at least one [[step]]".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_mistakes() {
        assert!(Scenario::from_toml("x", "id='x'\ntitle='t'\n[[step]]\ndo='advance'").is_err());
        assert!(Scenario::from_toml("x", "id='x'\ntitle='t'\n[[step]]\ndo='fly'").is_err());
        assert!(
            Scenario::from_toml("x", "id='x'\ntitle='t'\n[[step]]\ndo='advance'\nseconds=1\nexpect={steps='A Z'}")
                .is_err()
        );
        assert!(
            Scenario::from_toml("x", "id='x'\ntitle='t'\n[[step]]\ndo='advance'\nseconds=1\nexpect={stauts=200}")
                .is_err()
        );
        assert!(Scenario::from_toml("x", "id='x'\ntitle='t'\n[[step]]\ndo='advance'\nseconds=1").is_ok());
        let wrong_key =
            Scenario::from_toml("x", "id='x'\ntitle='t'\n[[step]]\ndo='advance'\nseconds=1\nresource='read'");
        assert!(wrong_key.unwrap_err().to_string().contains("advance takes no resource"));
    }

    #[test]
    fn steps_are_typed() {
        let s = Scenario::from_toml(
            "x",
            "id='x'\ntitle={en='t',zh='标题'}\n[[step]]\ndo='replay'\ngeneration=-1\nexpect={steps='G H'}",
        )
        .unwrap();
        assert_eq!(
            s.steps[0].action,
            Action::Replay {
                client: "demo-client".into(),
                of: "demo-client".into(),
                generation: -1,
                scope: None,
                lose_response: false
            }
        );
        assert_eq!(s.steps[0].expect.steps, Some(vec![FlowStep::G, FlowStep::H]));
        assert_eq!(s.title.zh, "标题");
    }

    /// Every line a learner reads follows `--lang`: a shipped scenario carries its
    /// title, description and notes in English and in Chinese.
    #[test]
    fn every_shipped_scenario_is_translated() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
        let files = Scenario::files_in(&dir);
        assert!(!files.is_empty());
        let mut missing = Vec::new();
        for path in files {
            let scenario = Scenario::load(&path.display().to_string()).expect("scenario loads");
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if scenario.title.zh.trim().is_empty() {
                missing.push(format!("{name}: title"));
            }
            if !scenario.description.is_translated() {
                missing.push(format!("{name}: description"));
            }
            for (i, step) in scenario.steps.iter().enumerate() {
                if step.note.as_ref().is_some_and(|n| !n.is_translated()) {
                    missing.push(format!("{name}: note of step {}", i + 1));
                }
            }
        }
        assert!(missing.is_empty(), "untranslated (give `{{ en = \"…\", zh = \"…\" }}`):\n  {}", missing.join("\n  "));
    }
}
