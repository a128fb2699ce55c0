//! The text trace: the events of a run as the terminal shows them, narrated in the
//! chosen language.

use crate::lang::{self, Lang, Phrase, phrase};
use figure2_runner::trace::{TraceEvent, relative};

/// Prints events as the human-readable trace.
pub fn print_text(event: &TraceEvent, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    print_text_in(event, Lang::En, out)
}

/// Prints events as the human-readable trace, every line in `lang`.
pub fn print_text_in(event: &TraceEvent, lang: Lang, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    match event {
        TraceEvent::Scenario { id, title, rfc, authorization_server, resource_server } => {
            writeln!(out, "━━ {}", phrase(lang, Phrase::Scenario, &[id, lang::text(lang, title)]))?;
            if !rfc.is_empty() {
                writeln!(out, "   {}", phrase(lang, Phrase::Shows, &[&rfc.join(", ")]))?;
            }
            writeln!(out, "   {}", phrase(lang, Phrase::Servers, &[authorization_server, resource_server]))?;
        }
        TraceEvent::Step { number, action, note, t } => {
            writeln!(out)?;
            writeln!(out, "── {number}. {}   [{}]", lang::action(lang, action), relative(*t))?;
            if let Some(note) = note {
                writeln!(out, "   {}", lang::text(lang, note))?;
            }
        }
        TraceEvent::ResourceOwner { what } => {
            writeln!(out, "   ({}) {}", phrase(lang, Phrase::ResourceOwner, &[]), lang::resource_owner(lang, what))?
        }
        TraceEvent::Network { what } => writeln!(out, "   ⚡ {}", lang::happening(lang, what))?,
        TraceEvent::Exchange(x) => {
            let to = lang::party(lang, x.to);
            writeln!(out, " ({}) {} → {to}: {} {}", x.request_letter, x.client_id, x.method, x.path)?;
            for (k, v) in &x.request {
                writeln!(out, "       {}: {}", lang::field(lang, k), lang::field(lang, v))?;
            }
            writeln!(out, "       ↳ {}", lang::narration(lang, x.request_letter, true))?;
            for line in lang::dpop_narration(lang, x, true) {
                writeln!(out, "       ↳ {line}")?;
            }
            writeln!(out, " ({}) {to} → {}: {}", x.response_letter, x.client_id, x.status)?;
            for (k, v) in &x.response {
                writeln!(out, "       {}: {}", lang::field(lang, k), lang::field(lang, v))?;
            }
            if let Some(reason) = &x.rejection {
                writeln!(out, "       ⚠ {}", lang::rejection(lang, x.error.as_deref(), reason))?;
            }
            writeln!(out, "       ↳ {}", lang::response_narration(lang, x.response_letter, x.status))?;
            for line in lang::dpop_narration(lang, x, false) {
                writeln!(out, "       ↳ {line}")?;
            }
        }
        TraceEvent::Clock { advanced_by, t } => {
            let (by, to) = (advanced_by.to_string(), relative(*t));
            writeln!(out, "   {}", phrase(lang, Phrase::ClockMoves, &[&by, &to]))?;
        }
        TraceEvent::Check { ok, check } => {
            writeln!(out, "   {} {}", if *ok { "✔" } else { "✘" }, lang::expectation(lang, check))?;
        }
        TraceEvent::Done { passed, steps, exchanges, failures } => {
            writeln!(out)?;
            if *passed {
                let (steps, exchanges) = (steps.to_string(), exchanges.to_string());
                writeln!(out, "✔ {}", phrase(lang, Phrase::Passed, &[&steps, &exchanges]))?;
            } else {
                writeln!(out, "✘ {}", phrase(lang, Phrase::Failed, &[&failures.len().to_string()]))?;
                for f in failures {
                    writeln!(out, "   - {}", lang::failure(lang, f))?;
                }
            }
        }
    }
    Ok(())
}
