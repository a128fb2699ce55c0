//! Renders a [`Comparison`] (`figure2 compare`): a text table for the terminal, a
//! Markdown table per scenario, or JSON. Each cell reads `answer · live tokens` with
//! `⟲ A` when the user must authorize again and `✖N` for N families revoked.

use figure2_runner::compare::{Cell, Comparison};
use std::fmt::Write as _;

fn cell_text(c: &Cell) -> String {
    let mut out = c.answer_text();
    let live = if c.live.is_empty() { "none live".to_owned() } else { format!("live: {}", c.live.join(", ")) };
    let _ = write!(out, " · {live}");
    if c.must_reauthorize {
        out.push_str(" · ⟲ A");
    }
    if c.families_revoked > 0 {
        let _ = write!(out, " · ✖{}", c.families_revoked);
    }
    out
}

/// A Markdown section: one row per step, one column per preset.
pub fn markdown(c: &Comparison) -> String {
    let mut out = format!("## `{}`: {}\n\n", c.scenario, c.title.en);
    out.push_str("| step |");
    for p in &c.presets {
        let _ = write!(out, " `{p}` |");
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(c.presets.len()));
    out.push('\n');
    for step in &c.steps {
        let _ = write!(out, "| {}. {} |", step.number, step.action.to_string().replace('|', "\\|"));
        for cell in &step.cells {
            let _ = write!(out, " {} |", cell_text(cell).replace('|', "\\|"));
        }
        out.push('\n');
    }
    out.push('\n');
    out
}

/// Plain text: per step, one line per preset.
pub fn text(c: &Comparison) -> String {
    let mut out = format!("━━ {}: {}\n", c.scenario, c.title.en);
    let width = c.presets.iter().map(String::len).max().unwrap_or(0);
    for step in &c.steps {
        let _ = writeln!(out, "\n── {}. {}", step.number, step.action);
        for (p, cell) in c.presets.iter().zip(&step.cells) {
            let _ = writeln!(out, "   {p:width$}  {}", cell_text(cell));
        }
    }
    out
}

/// JSON: the comparison as data.
pub fn json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).unwrap_or_default()
}

/// JSON: several comparisons as one array.
pub fn json_all(cs: &[Comparison]) -> String {
    serde_json::to_string_pretty(cs).unwrap_or_default()
}
