//! Issue 17: with `--lang zh` every line the learner reads is Chinese. Every shipped
//! scenario is played and rendered in Chinese (the text trace and the Markdown
//! transcript); no English sentence the views can say about its events may appear.

use figure2_runner::Scenario;
use figure2_runner::reasons::Rejection;
use figure2_runner::trace::TraceEvent;
use figure2_view::export::{Format, Normaliser, record, render};
use figure2_view::lang::{self, Lang, Phrase};
use std::path::PathBuf;

/// A line long enough to be a sentence of ours, not a wire name (`grant_type`, `DPoP`).
fn is_sentence(s: &str) -> bool {
    s.split_whitespace().count() >= 3
}

/// The lines the views write themselves: not the wire's own text (fenced HTTP and JSON
/// blocks, and the servers' `error_description` and challenges, which RFC 6749 §5.2 and
/// RFC 6750 §3 leave to the server, quoted as sent).
fn our_lines(rendered: &str) -> String {
    let mut out = String::new();
    // Inside a fence: `Some(true)` for wire text, `Some(false)` for our Mermaid diagram.
    let mut fence: Option<bool> = None;
    for line in rendered.lines() {
        if line.starts_with("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(!line.starts_with("```mermaid")),
            };
            continue;
        }
        let fenced = fence == Some(true);
        if fenced || line.contains("error_description") || line.contains("WWW-Authenticate:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The English sentences the views can say whatever the events.
fn fixed_sentences() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in Phrase::ALL {
        let template = lang::phrase(Lang::En, p, &[]);
        for part in template.split(['{', '}']) {
            out.push(part.trim().to_owned());
        }
    }
    for letter in figure2_protocol::FlowStep::ALL {
        for ok in [true, false] {
            out.push(lang::narration(Lang::En, letter, ok).to_owned());
        }
        out.push(lang::rfc_text(Lang::En, letter).to_owned());
    }
    out.push(lang::no_answer(Lang::En).to_owned());
    out.extend(lang::FIELD_LABELS.iter().map(|(en, _)| en.to_string()));
    out.extend(Rejection::all().iter().map(|r| r.to_string()));
    out
}

/// The English sentences the views say about `event`.
fn event_sentences(event: &TraceEvent) -> Vec<String> {
    let en = Lang::En;
    match event {
        TraceEvent::Scenario { title, .. } => vec![lang::text(en, title).to_owned()],
        TraceEvent::Step { action, note, .. } => {
            let mut out = vec![lang::action(en, action)];
            out.extend(note.iter().map(|n| lang::text(en, n).to_owned()));
            out
        }
        TraceEvent::ResourceOwner { what } => vec![lang::resource_owner(en, what)],
        TraceEvent::Network { what } => vec![lang::happening(en, what)],
        TraceEvent::Check { check, .. } => vec![lang::expectation(en, check)],
        TraceEvent::Exchange(x) => {
            let mut out: Vec<String> = [true, false]
                .into_iter()
                .flat_map(|request| lang::dpop_narration(en, x, request))
                .map(str::to_owned)
                .collect();
            out.extend(x.rejection.as_ref().map(|r| lang::rejection(en, x.error.as_deref(), r)));
            out.push(format!("{} → {}", x.client_id, x.to));
            out.push(format!("{} → {}", x.to, x.client_id));
            out
        }
        TraceEvent::Done { failures, .. } => failures.iter().map(|f| lang::failure(en, f)).collect(),
        TraceEvent::Clock { .. } => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_line_follows_the_language() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixed: Vec<String> = fixed_sentences().into_iter().filter(|s| is_sentence(s)).collect();
    let mut untranslated = Vec::new();
    for path in Scenario::files_in(&root.join("scenarios")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let scenario = Scenario::load(&path.display().to_string()).expect("scenario loads");
        let recorded = match record(&scenario, &name, &mut |_| {}).await {
            Ok(recorded) => recorded,
            // Several instances over PostgreSQL, and none is configured here.
            Err(figure2_runner::world::WorldError::Unavailable(why)) if scenario.needs_postgres() => {
                eprintln!("{name}: not rendered: {why}");
                continue;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let zh = our_lines(&format!(
            "{}\n{}",
            render(&recorded, Format::Text, Lang::Zh, true),
            render(&recorded, Format::Markdown, Lang::Zh, true)
        ));
        let mut n = Normaliser::for_events(&recorded.events);
        let mut english: Vec<String> = recorded.events.iter().flat_map(event_sentences).map(|s| n.apply(&s)).collect();
        english.retain(|s| is_sentence(s));
        english.extend(fixed.iter().cloned());
        for sentence in english {
            if zh.contains(&sentence) {
                untranslated.push(format!("{name}: {sentence}"));
            }
        }
    }
    untranslated.sort();
    untranslated.dedup();
    assert!(untranslated.is_empty(), "English in the Chinese rendering:\n  {}", untranslated.join("\n  "));
}

#[test]
fn every_reason_and_phrase_has_a_chinese_form() {
    let chinese = |s: &str| s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
    for reason in Rejection::all() {
        assert!(chinese(&lang::reason_zh(&reason)), "{reason:?}");
    }
    for p in Phrase::ALL {
        let (en, zh) = (lang::phrase(Lang::En, p, &[]), lang::phrase(Lang::Zh, p, &[]));
        assert!(en != zh && chinese(&zh), "{p:?}");
    }
    for (en, zh) in lang::FIELD_LABELS {
        assert!(chinese(zh) && lang::field(Lang::Zh, en) == *zh, "{en}");
    }
    assert!(chinese(&lang::field(Lang::Zh, "authorization server instance 2")));
    for to in ["authorization server", "resource server"] {
        assert!(chinese(lang::party(Lang::Zh, to)), "{to}");
    }
}
