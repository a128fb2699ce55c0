//! `figure2 compare`: one scenario played under several refresh policies (presets of
//! real servers, `figure2_protocol::presets`), each with the real in-process roles, and
//! what each step produced under each, side by side: the answer (status, error code),
//! the refresh tokens live after it, whether the user must authorize again, and how many
//! families the authorization server has revoked.
//!
//! The scenario's own policy options in `[config]` are dropped so the preset decides;
//! its expectations are not checked (they hold for one policy, not for all).

use crate::run::{Answer, Session};
use crate::scenario::Scenario;
use crate::world::WorldError;
use figure2_protocol::family::RefreshTokenStatus;
use serde::Serialize;

/// The options of `[config]` that make up the refresh policy (a preset sets them all).
pub const POLICY_OPTIONS: [&str; 13] = [
    "preset",
    "refresh_token_lifetime",
    "refresh_token_idle_lifetime",
    "refresh_token_absolute_lifetime",
    "always_issue_new_refresh_token",
    "rotate_after_lifetime_percent",
    "refresh_token_reuse_interval",
    "refresh_token_max_reuse",
    "reuse_while_successor_unused",
    "reuse_returns_issued_successor",
    "on_reuse",
    "revoke_family_on_reuse",
    "issue_refresh_tokens_to_public_clients",
];

/// One scenario under several presets.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub scenario: String,
    pub title: crate::scenario::Text,
    pub presets: Vec<String>,
    pub steps: Vec<ComparedStep>,
}

/// One step of the scenario and what it produced under each preset (same order as
/// [`Comparison::presets`]).
#[derive(Debug, Clone, Serialize)]
pub struct ComparedStep {
    pub number: usize,
    pub action: crate::scenario::Action,
    pub cells: Vec<Cell>,
}

/// What one step produced under one preset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cell {
    #[serde(flatten)]
    pub answer: Answer,
    /// The refresh tokens the authorization server would still take as live after the
    /// step, as `holder#generation` (`demo-client#1` = the second it received).
    pub live: Vec<String>,
    /// The acting client's user must go back to step A.
    pub must_reauthorize: bool,
    /// Families with a revoked token so far.
    pub families_revoked: usize,
}

/// The scenario with its `[config]` policy replaced by `preset`.
pub fn under_preset(scenario: &Scenario, preset: &str) -> Scenario {
    let mut s = scenario.clone();
    for key in POLICY_OPTIONS {
        s.config.remove(key);
    }
    s.config.insert("preset".into(), preset.into());
    s
}

/// Plays `scenario` once per preset (one after another: each run owns its world) and
/// lines up the results step by step.
pub async fn compare(scenario: &Scenario, presets: &[String]) -> Result<Comparison, WorldError> {
    let mut columns = Vec::new();
    for preset in presets {
        if figure2_protocol::presets::find(preset).is_none() {
            return Err(WorldError::Config(format!(
                "unknown preset {preset:?}; known: {}",
                figure2_protocol::presets::names().join(", ")
            )));
        }
        columns.push(play(&under_preset(scenario, preset)).await?);
    }
    let steps = scenario
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| ComparedStep {
            number: i + 1,
            action: step.action.clone(),
            cells: columns.iter().map(|c| c[i].clone()).collect(),
        })
        .collect();
    Ok(Comparison { scenario: scenario.id.clone(), title: scenario.title.clone(), presets: presets.to_vec(), steps })
}

async fn play(scenario: &Scenario) -> Result<Vec<Cell>, WorldError> {
    let mut session = Session::start(scenario).await?;
    let mut cells = Vec::new();
    for step in &scenario.steps {
        session.step(step).await;
        let held = session.held_refresh_tokens().await;
        let live = held
            .iter()
            .filter(|h| matches!(h.status, Some(RefreshTokenStatus::Active)))
            .map(|h| format!("{}#{}", h.holder, h.generation))
            .collect();
        let mut revoked: Vec<&str> = held
            .iter()
            .filter(|h| matches!(h.status, Some(RefreshTokenStatus::Revoked)))
            .filter_map(|h| h.family.as_deref())
            .collect();
        revoked.sort_unstable();
        revoked.dedup();
        let client = step.action.client().unwrap_or("demo-client");
        cells.push(Cell {
            answer: session.last_answer().cloned().unwrap_or_default(),
            live,
            must_reauthorize: session.must_reauthorize(client).await,
            families_revoked: revoked.len(),
        });
    }
    session.stop().await;
    Ok(cells)
}

impl Cell {
    /// The answer in a few characters: `200`, `400 invalid_grant`, `—` when nothing was sent.
    pub fn answer_text(&self) -> String {
        match (&self.answer.status, &self.answer.error) {
            (Some(s), Some(e)) => format!("{s} {e}"),
            (Some(s), None) => s.to_string(),
            _ => "—".into(),
        }
    }
}

/// Every shipped preset's name, in the catalogue's order.
pub fn all_presets() -> Vec<String> {
    figure2_protocol::presets::names().into_iter().map(str::to_owned).collect()
}
