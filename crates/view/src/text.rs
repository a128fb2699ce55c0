//! The text trace: the events of a run as the terminal shows them, narrated in the
//! chosen language.

use crate::lang::{Lang, Phrase, phrase};
use figure2_runner::trace::{TraceEvent, relative};

/// Prints events as the human-readable trace.
pub fn print_text(event: &TraceEvent, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    print_text_in(event, Lang::En, out)
}

/// Prints events as the human-readable trace, narrated in `lang`.
pub fn print_text_in(event: &TraceEvent, lang: Lang, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    match event {
        TraceEvent::Scenario { id, title, rfc, authorization_server, resource_server } => {
            writeln!(out, "━━ scenario {id}: {title}")?;
            if !rfc.is_empty() {
                writeln!(out, "   shows {}", rfc.join(", "))?;
            }
            writeln!(out, "   authorization server {authorization_server}   resource server {resource_server}")?;
        }
        TraceEvent::Step { number, label, note, t } => {
            writeln!(out)?;
            writeln!(out, "── {number}. {label}   [{}]", relative(*t))?;
            if let Some(note) = note {
                writeln!(out, "   {note}")?;
            }
        }
        TraceEvent::ResourceOwner { line } => {
            writeln!(out, "   ({}) {line}", phrase(lang, Phrase::ResourceOwner, &[]))?
        }
        TraceEvent::Network { line } => writeln!(out, "   ⚡ {line}")?,
        TraceEvent::Exchange(x) => {
            writeln!(out, " ({}) {} → {}: {} {}", x.request_letter, x.client_id, x.to, x.method, x.path)?;
            for (k, v) in &x.request {
                writeln!(out, "       {k}: {v}")?;
            }
            writeln!(out, "       ↳ {}", crate::lang::narration(lang, x.request_letter, true))?;
            writeln!(out, " ({}) {} → {}: {}", x.response_letter, x.to, x.client_id, x.status)?;
            for (k, v) in &x.response {
                writeln!(out, "       {k}: {v}")?;
            }
            writeln!(out, "       ↳ {}", crate::lang::response_narration(lang, x.response_letter, x.status))?;
        }
        TraceEvent::Clock { advanced_by, t } => {
            let (by, to) = (advanced_by.to_string(), relative(*t));
            writeln!(out, "   {}", phrase(lang, Phrase::ClockMoves, &[&by, &to]))?;
        }
        TraceEvent::Check { ok, message } => {
            writeln!(out, "   {} {message}", if *ok { "✔" } else { "✘" })?;
        }
        TraceEvent::Done { passed, steps, exchanges, failures } => {
            writeln!(out)?;
            if *passed {
                let (steps, exchanges) = (steps.to_string(), exchanges.to_string());
                writeln!(out, "✔ {}", phrase(lang, Phrase::Passed, &[&steps, &exchanges]))?;
            } else {
                writeln!(out, "✘ {}", phrase(lang, Phrase::Failed, &[&failures.len().to_string()]))?;
                for f in failures {
                    writeln!(out, "   - {f}")?;
                }
            }
        }
    }
    Ok(())
}
