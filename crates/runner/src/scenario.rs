//! Scenario files: data, not code. A scenario names the RFC text it shows, overrides the
//! authorization server's configuration, and lists steps with what each must produce.
//!
//! ```toml
//! id = "figure2"
//! title = "Refreshing an expired access token"
//! rfc = ["RFC 6749 §1.5"]
//! [config]
//! access_token_lifetime = 300
//! [[step]]
//! do = "authorize"
//! grant = "password"
//! expect = { status = 200, steps = "A B", has = ["refresh_token"] }
//! ```

use serde::Deserialize;

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
    pub title: String,
    /// The RFC sections the scenario shows, e.g. `["RFC 6749 §6"]`.
    #[serde(default)]
    pub rfc: Vec<String>,
    #[serde(default)]
    pub description: String,
    /// Overrides of the authorization server's configuration (any option of
    /// `config/demo.toml`).
    #[serde(default)]
    pub config: toml::Table,
    /// Whether the clients use `expires_in` to know when their access token expired
    /// (default true). RFC 6749 §1.5 (E): a client that knows "skips to step (G)"; one
    /// that does not goes on presenting the token and meets step (F).
    #[serde(default = "default_true")]
    pub client_tracks_expiry: bool,
    #[serde(rename = "step")]
    pub steps: Vec<Step>,
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Steps A and B: obtain a grant (`grant` = password, authorization_code or
    /// client_credentials) and exchange it for tokens.
    Authorize,
    /// Steps C to H as the client library plays them: call a resource, refreshing first
    /// if the token is known to be expired, or after `invalid_token` (then retry once).
    Call,
    /// Steps G and H on demand, optionally narrowing `scope`.
    Refresh,
    /// Present a refresh token the client held earlier (`generation`, 0 = the first),
    /// possibly as another client, without changing any client's state.
    Replay,
    /// Move the shared simulated clock forward by `seconds`.
    Advance,
    /// Add a new signing key to the authorization server (a new `kid`).
    RotateKey,
    /// Stop the authorization server and start it again on the same database.
    Restart,
    /// RFC 7009: the client revokes a refresh token of its history (`generation`).
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantKind {
    Password,
    AuthorizationCode,
    ClientCredentials,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(rename = "do")]
    pub action: Action,
    /// For `authorize`; default `password`.
    pub grant: Option<GrantKind>,
    /// The client acting; default `demo-client`.
    pub client: Option<String>,
    /// The resource owner; default `alice`.
    pub user: Option<String>,
    pub scope: Option<String>,
    /// For `call`: `read` (GET /resource/read), `write` (POST /resource/write), `admin`.
    pub resource: Option<String>,
    /// For `advance`.
    pub seconds: Option<u64>,
    /// For `replay`: which refresh token of the history of `of` (0 = first issued;
    /// negative counts from the newest, -1 = the current one).
    pub generation: Option<i64>,
    /// For `replay`: whose token history to take from (default: the acting client).
    pub of: Option<String>,
    /// The token endpoint's answer during this step is lost on the way back to the
    /// client, after the server committed it.
    #[serde(default)]
    pub lose_response: bool,
    /// A sentence printed in the trace explaining why the step is there.
    pub note: Option<String>,
    #[serde(default)]
    pub expect: Expect,
}

/// What a step must produce. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// HTTP status of the step's last exchange.
    pub status: Option<u16>,
    /// The OAuth error code: §5.2 `error` from the token endpoint, or RFC 6750 `error`
    /// from the resource server's `WWW-Authenticate`.
    pub error: Option<String>,
    /// The Figure 2 letters of the step's exchanges, in order, e.g. `"E F G H C D"`.
    pub steps: Option<String>,
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

fn default_true() -> bool {
    true
}

impl Step {
    /// A step built in code (the live view's buttons), every optional field unset: set
    /// the ones the action needs, e.g. `seconds` for [`Action::Advance`].
    pub fn new(action: Action) -> Self {
        Self {
            action,
            grant: None,
            client: None,
            user: None,
            scope: None,
            resource: None,
            seconds: None,
            generation: None,
            of: None,
            lose_response: false,
            note: None,
            expect: Expect::default(),
        }
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
        for (i, step) in self.steps.iter().enumerate() {
            let n = i + 1;
            match step.action {
                Action::Advance if step.seconds.is_none() => return Err(format!("step {n}: advance needs seconds")),
                Action::Call if step.resource.is_none() => return Err(format!("step {n}: call needs resource")),
                Action::Replay if step.generation.is_none() => {
                    return Err(format!("step {n}: replay needs generation"));
                }
                _ => {}
            }
            if let Some(steps) = &step.expect.steps
                && let Some(bad) =
                    steps.split_whitespace().find(|l| !matches!(*l, "A" | "B" | "C" | "D" | "E" | "F" | "G" | "H"))
            {
                return Err(format!("step {n}: {bad:?} is not a Figure 2 letter (A to H)"));
            }
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
    }
}
