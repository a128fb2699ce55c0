//! Exports of a scenario's trace: the text trace, a Mermaid sequence diagram, a Markdown
//! transcript (requests, responses, decoded tokens, cited sections) and JSON (the
//! [`TraceEvent`]s), for `figure2 run --format` and the transcripts under `docs/`.
//!
//! Every run binds new ports and mints new tokens, keys and `jti`s, so exports go through
//! a [`Normaliser`]: the ephemeral addresses become `authorization-server` and
//! `resource-server`, fingerprints become `at#1`, `rt#1`, `rt#2`… in order of first
//! appearance, key ids `key-1`… and `jti`s `jti-1`…. The same scenario then always
//! exports the same bytes, and the transcripts can be committed and checked for
//! staleness (`figure2 export-docs`, tested by `tests/it/docs.rs`).

use crate::lang::{self, Lang};
use crate::lineage::{FamilyState, GenerationStatus, Lineage};
use crate::text::print_text_in;
use figure2_protocol::FlowStep;
use figure2_protocol::refresh::RefreshPolicy;
use figure2_runner::Scenario;
use figure2_runner::trace::{Failure, Happening, TraceEvent, relative};
use figure2_runner::world::WorldError;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The folder, relative to the workspace root, that holds the generated transcripts.
pub const DOCS_DIR: &str = "docs/transcripts";

/// The command that regenerates them.
pub const DOCS_COMMAND: &str = "cargo run -- export-docs";

/// An export format of `figure2 run --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Mermaid,
    Markdown,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Format::Text),
            "mermaid" => Ok(Format::Mermaid),
            "markdown" | "md" => Ok(Format::Markdown),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown format {other:?} (text, mermaid, markdown or json)")),
        }
    }
}

/// A scenario played to the end, with what the exports need to know.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub scenario: Scenario,
    /// The file it came from, as given (for the transcript's header).
    pub source: String,
    pub events: Vec<TraceEvent>,
    /// The authorization server's refresh policy (for the lineage).
    pub policy: RefreshPolicy,
    pub passed: bool,
    /// The unmet expectations.
    pub failures: Vec<Failure>,
}

/// Plays `scenario` to the end with the runner, calling `emit` with each event as it
/// happens.
pub async fn record(
    scenario: &Scenario,
    source: &str,
    emit: &mut dyn FnMut(&TraceEvent),
) -> Result<Recorded, WorldError> {
    let report = figure2_runner::run(scenario, emit).await?;
    Ok(Recorded {
        scenario: scenario.clone(),
        source: source.to_owned(),
        events: report.events,
        policy: report.policy,
        passed: report.passed,
        failures: report.failures,
    })
}

/// Renders a recorded scenario. `stable` normalises the text trace too (the other
/// formats are always normalised).
pub fn render(recorded: &Recorded, format: Format, lang: Lang, stable: bool) -> String {
    let mut n = Normaliser::for_events(&recorded.events);
    match format {
        Format::Text => {
            let mut out = Vec::new();
            for event in &recorded.events {
                let _ = print_text_in(event, lang, &mut out);
            }
            let text = String::from_utf8_lossy(&out).into_owned();
            if stable { n.apply(&text) } else { text }
        }
        Format::Json => {
            let mut value = serde_json::to_value(&recorded.events).unwrap_or_default();
            n.apply_json(&mut value);
            let mut out = serde_json::to_string_pretty(&value).unwrap_or_default();
            out.push('\n');
            out
        }
        Format::Mermaid => mermaid(recorded, lang, &mut n),
        Format::Markdown => markdown(recorded, lang, &mut n),
    }
}

/// Replaces what changes from run to run by stable names (see the module docs).
#[derive(Debug, Default)]
pub struct Normaliser {
    /// Exact strings and their replacements, longest first.
    literals: Vec<(String, String)>,
    /// `rt#3f9a12c0` → `rt#1`.
    labels: HashMap<String, String>,
    counts: HashMap<String, usize>,
}

/// Prefixes followed by an 8-hex-digit fingerprint.
const FINGERPRINT_PREFIXES: [&str; 6] = ["at#", "rt#", "code#", "tok#", "id#", "state="];

impl Normaliser {
    /// A normaliser for one trace: learns its addresses, key ids and `jti`s, then names
    /// the fingerprints in the order the text trace shows them.
    pub fn for_events(events: &[TraceEvent]) -> Self {
        let mut n = Self::default();
        for event in events {
            match event {
                TraceEvent::Scenario { authorization_server, resource_server, .. } => {
                    n.add_url(authorization_server, "authorization-server");
                    n.add_url(resource_server, "resource-server");
                }
                TraceEvent::Exchange(x) => {
                    if let Some(jwt) = &x.access_token {
                        if let Some(kid) = jwt.header.get("kid").and_then(|k| k.as_str()) {
                            n.add_literal(kid, "key");
                        }
                        if let Some(jti) = jwt.claims.get("jti").and_then(|k| k.as_str()) {
                            n.add_literal(jti, "jti");
                        }
                    }
                    for (_, v) in x.response.iter().chain(&x.request) {
                        n.learn_kids(v);
                    }
                }
                TraceEvent::Network { what: Happening::KeyRotated { kid } } => n.add_literal(kid, "key"),
                _ => {}
            }
        }
        for event in events {
            let mut out = Vec::new();
            let _ = print_text_in(event, Lang::En, &mut out);
            n.apply(&String::from_utf8_lossy(&out));
        }
        n
    }

    fn add_url(&mut self, url: &str, name: &str) {
        if url.is_empty() {
            return;
        }
        self.literals.push((url.to_owned(), format!("http://{name}")));
        if let Some(authority) = url.split_once("://").map(|(_, rest)| rest.trim_end_matches('/')) {
            self.literals.push((authority.to_owned(), name.to_owned()));
        }
        self.sort();
    }

    /// Names a random value `{kind}-N` (N in order of discovery).
    fn add_literal(&mut self, value: &str, kind: &str) {
        if value.is_empty() || self.literals.iter().any(|(v, _)| v == value) {
            return;
        }
        let count = self.counts.entry(kind.to_owned()).or_default();
        *count += 1;
        self.literals.push((value.to_owned(), format!("{kind}-{count}")));
        self.sort();
    }

    /// Key ids in `kid=…` (the claims summary of an exchange).
    fn learn_kids(&mut self, text: &str) {
        for part in text.split("kid=").skip(1) {
            let kid: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).collect();
            if kid.len() >= 4 {
                self.add_literal(&kid, "key");
            }
        }
    }

    fn sort(&mut self) {
        self.literals.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    }

    /// `text` with every run-specific value replaced.
    pub fn apply(&mut self, text: &str) -> String {
        let mut out = text.to_owned();
        for (from, to) in &self.literals {
            if out.contains(from.as_str()) {
                out = out.replace(from.as_str(), to);
            }
        }
        let out = self.label_fingerprints(&out);
        strip_byte_counts(&out)
    }

    /// Every string in a JSON document, normalised in place.
    pub fn apply_json(&mut self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.apply(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.apply_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.apply_json(v)),
            _ => {}
        }
    }

    fn label(&mut self, prefix: &str, hex: &str) -> String {
        let key = format!("{prefix}{hex}");
        if let Some(label) = self.labels.get(&key) {
            return label.clone();
        }
        let kind = if prefix == "state=" { "state#" } else { prefix };
        let count = self.counts.entry(kind.to_owned()).or_default();
        *count += 1;
        let label = if prefix == "state=" { format!("state=state#{count}") } else { format!("{prefix}{count}") };
        self.labels.insert(key, label.clone());
        label
    }

    fn label_fingerprints(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while !rest.is_empty() {
            let boundary = out.chars().last().is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
            if boundary {
                for prefix in FINGERPRINT_PREFIXES {
                    if let Some(after) = rest.strip_prefix(prefix) {
                        let hex: String = after.chars().take(8).collect();
                        let next = after[hex.len()..].chars().next();
                        if hex.len() == 8
                            && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                            && next.is_none_or(|c| !c.is_ascii_alphanumeric())
                        {
                            out.push_str(&self.label(prefix, &hex));
                            rest = &after[8..];
                            continue 'scan;
                        }
                    }
                }
            }
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    }
}

/// `(jwt, 424 bytes)` → `(jwt)`: a token's length follows the length of its issuer URL.
fn strip_byte_counts(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(", ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(" bytes)") {
            rest = &after[digits + " bytes".len()..];
        } else {
            out.push_str(", ");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// Mermaid ends a statement at `;` and reads `#…;` as an entity: escape what could
/// break a message (`#` alone, as in `rt#1`, is left readable).
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            ';' => out.push_str("#59;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Wraps a long note at spaces, for Mermaid (`<br/>`).
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let line = lines.last_mut().expect("one line at least");
        if !line.is_empty() && line.chars().count() + word.chars().count() + 1 > width {
            lines.push(word.to_owned());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines.iter().map(|l| mermaid_escape(l)).collect::<Vec<_>>().join("<br/>")
}

/// A Mermaid sequence diagram: the client(s), the resource server and the authorization
/// server, laid out left to right as in Figure 2.
fn mermaid(recorded: &Recorded, lang: Lang, n: &mut Normaliser) -> String {
    let mut clients: Vec<String> = Vec::new();
    let mut resource_owner = false;
    for event in &recorded.events {
        match event {
            TraceEvent::Exchange(x) if !clients.contains(&x.client_id) => clients.push(x.client_id.clone()),
            TraceEvent::ResourceOwner { .. } => resource_owner = true,
            _ => {}
        }
    }
    if clients.is_empty() {
        clients.push("demo-client".into());
    }
    let alias = |client: &str| format!("C{}", clients.iter().position(|c| c == client).map_or(1, |i| i + 1));
    let first = if resource_owner { "RO".to_owned() } else { alias(&clients[0]) };
    let span = format!("{first},AS");
    let mut out = String::new();
    let _ = writeln!(out, "%% Generated by figure2 from {}: do not edit.", recorded.source);
    let _ = writeln!(out, "sequenceDiagram");
    if resource_owner {
        let _ = writeln!(out, "    participant RO as resource owner (browser)");
    }
    for client in &clients {
        let _ = writeln!(out, "    participant {} as {}", alias(client), mermaid_escape(client));
    }
    let _ = writeln!(out, "    participant RS as resource server");
    let _ = writeln!(out, "    participant AS as authorization server");
    for event in &recorded.events {
        match event {
            TraceEvent::Scenario { id, title, .. } => {
                let title = lang::text(lang, title);
                let _ = writeln!(out, "    Note over {span}: {}", wrap(&format!("{id}: {title}"), 70));
            }
            TraceEvent::Step { number, action, t, .. } => {
                let text = n.apply(&format!("{number}. {} [{}]", lang::action(lang, action), relative(*t)));
                let _ = writeln!(out, "    Note over {span}: {}", wrap(&text, 70));
            }
            TraceEvent::ResourceOwner { what } => {
                let _ = writeln!(out, "    RO->>AS: {}", wrap(&n.apply(&lang::resource_owner(lang, what)), 70));
            }
            TraceEvent::Exchange(x) => {
                let client = alias(&x.client_id);
                let server = if x.to == "resource server" { "RS" } else { "AS" };
                let mut request = format!("({}) {} {}", x.request_letter, x.method, x.path);
                if let Some(grant) = field(&x.request, "grant_type") {
                    let _ = write!(request, " grant_type={grant}");
                }
                if let Some(rt) = field(&x.request, "refresh_token") {
                    let _ = write!(request, " {rt}");
                }
                if let Some(auth) = field(&x.request, "Authorization") {
                    let _ = write!(request, " {}", auth.split(" (").next().unwrap_or(auth));
                }
                let mut response = format!("({}) {}", x.response_letter, x.status);
                if let Some(error) = &x.error {
                    let _ = write!(response, " {error}");
                }
                for key in ["access_token", "refresh_token"] {
                    if let Some(v) = field(&x.response, key).filter(|v| v.contains('#')) {
                        let _ = write!(response, " {}", v.split(" (").next().unwrap_or(v));
                    }
                }
                let arrow = if x.status >= 400 { "--x" } else { "-->>" };
                let _ = writeln!(out, "    {client}->>{server}: {}", mermaid_escape(&n.apply(&request)));
                let _ = writeln!(out, "    {server}{arrow}{client}: {}", mermaid_escape(&n.apply(&response)));
            }
            TraceEvent::Network { what } => {
                let line = n.apply(&lang::happening(lang, what));
                let _ = writeln!(out, "    Note over AS: {}", wrap(&format!("⚡ {line}"), 50));
            }
            TraceEvent::Clock { advanced_by, t } => {
                let text = format!("clock +{advanced_by}s → {}", relative(*t));
                let _ = writeln!(out, "    Note over {span}: {}", mermaid_escape(&text));
            }
            TraceEvent::Check { ok: false, check } => {
                let line = n.apply(&lang::expectation(lang, check));
                let _ = writeln!(out, "    Note over {span}: {}", wrap(&format!("✘ {line}"), 70));
            }
            TraceEvent::Check { .. } => {}
            TraceEvent::Done { passed, steps, exchanges, .. } => {
                let verdict = if *passed { "✔ passed" } else { "✘ FAILED" };
                let text = format!("{verdict}: {steps} steps, {exchanges} HTTP exchanges");
                let _ = writeln!(out, "    Note over {span}: {}", mermaid_escape(&text));
            }
        }
    }
    out
}

fn citations_md(letter: FlowStep) -> String {
    lang::citations(letter).iter().map(|c| format!("[{}]({})", c.label, c.url)).collect::<Vec<_>>().join(", ")
}

/// Top-level keys whose values differ between two JSON objects (or appear in only one).
fn changed_keys(before: &serde_json::Value, after: &serde_json::Value) -> Vec<String> {
    let (Some(b), Some(a)) = (before.as_object(), after.as_object()) else { return Vec::new() };
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The Markdown transcript: every step, every exchange in HTTP form, decoded tokens
/// with what changed since the previous one, the RFC sections, the checks and, at the
/// end, the refresh-token lineage.
fn markdown(recorded: &Recorded, lang: Lang, n: &mut Normaliser) -> String {
    let s = &recorded.scenario;
    let mut out = String::new();
    let _ = writeln!(out, "<!-- Generated by `figure2 export-docs` from {}: do not edit by hand. -->", recorded.source);
    let _ = writeln!(out, "# {}: {}\n", s.id, lang::text(lang, &s.title));
    let description = lang::text(lang, &s.description);
    if !description.trim().is_empty() {
        let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(out, "{description}\n");
    }
    if !s.rfc.is_empty() {
        let cited: Vec<String> = s
            .rfc
            .iter()
            .map(|c| match lang::citation_url(c) {
                Some(url) => format!("[{c}]({url})"),
                None => c.clone(),
            })
            .collect();
        let _ = writeln!(out, "Shows {}.\n", cited.join(", "));
    }
    let _ = writeln!(
        out,
        "Addresses, tokens, key ids and `jti`s change on every run: they are shown as stable names \
         (`authorization-server`, `at#1`, `rt#1`, `key-1`, `jti-1`), each token by the fingerprint the trace gives it. \
         Passwords and client secrets are never shown.\n"
    );
    let _ = writeln!(out, "## Sequence\n\n```mermaid\n{}```\n", mermaid(recorded, lang, n));
    let mut explained: Vec<FlowStep> = Vec::new();
    let mut previous_jwt: Option<(String, serde_json::Value, serde_json::Value)> = None;
    let mut shown: Vec<String> = Vec::new();
    for event in &recorded.events {
        match event {
            TraceEvent::Scenario { .. } => {}
            TraceEvent::Step { number, action, note, t } => {
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
                let _ = writeln!(out, "## {number}. {} · {}\n", n.apply(&lang::action(lang, action)), relative(*t));
                if let Some(note) = note {
                    let _ = writeln!(out, "> {}\n", n.apply(lang::text(lang, note)));
                }
            }
            TraceEvent::ResourceOwner { what } => {
                let who = lang::phrase(lang, lang::Phrase::Browser, &[]);
                let _ = writeln!(out, "- *{who}:* {}\n", n.apply(&lang::resource_owner(lang, what)));
            }
            TraceEvent::Network { what } => {
                let _ = writeln!(out, "- ⚡ {}\n", n.apply(&lang::happening(lang, what)));
            }
            TraceEvent::Clock { advanced_by, t } => {
                let by = advanced_by.to_string();
                let to = relative(*t);
                let _ = writeln!(out, "- {}\n", lang::phrase(lang, lang::Phrase::ClockMoves, &[&by, &to]));
            }
            TraceEvent::Check { ok, check } => {
                let _ = writeln!(out, "- {} {}", if *ok { "✔" } else { "✘" }, n.apply(&lang::expectation(lang, check)));
            }
            TraceEvent::Exchange(x) => {
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
                for (letter, heading, ok) in [
                    (x.request_letter, format!("{} → {}: `{} {}`", x.client_id, x.to, x.method, x.path), true),
                    (x.response_letter, format!("{} → {}: {}", x.to, x.client_id, x.status), x.status < 400),
                ] {
                    let _ = writeln!(out, "### ({letter}) {}\n", n.apply(&heading));
                    let said = if letter == x.response_letter {
                        lang::response_narration(lang, letter, x.status)
                    } else {
                        lang::narration(lang, letter, ok)
                    };
                    let _ = writeln!(out, "{said} ({})\n", citations_md(letter));
                    if !explained.contains(&letter) {
                        explained.push(letter);
                        let _ = writeln!(out, "> {}\n", lang::rfc_text(lang, letter));
                    }
                    let raw = if letter == x.request_letter { &x.raw.request } else { &x.raw.response };
                    let _ = writeln!(out, "```http\n{}```\n", n.apply(raw));
                    if letter == x.response_letter
                        && let Some(reason) = &x.rejection
                    {
                        let _ = writeln!(out, "⚠ {}\n", n.apply(&lang::rejection(lang, x.error.as_deref(), reason)));
                    }
                }
                if let Some(jwt) = &x.access_token {
                    let token = n.apply(&jwt.token);
                    if shown.contains(&token) {
                        let _ = writeln!(out, "Access token `{token}` ({}): decoded above.\n", jwt.role);
                        continue;
                    }
                    shown.push(token.clone());
                    let times: Vec<String> = ["iat", "nbf", "exp"]
                        .iter()
                        .filter_map(|k| {
                            jwt.claims
                                .get(*k)
                                .and_then(figure2_protocol::NumericDate::from_json)
                                .map(|t| format!("{k} = {}", relative(t.whole_seconds())))
                        })
                        .collect();
                    let header = n.apply(&serde_json::to_string_pretty(&jwt.header).unwrap_or_default());
                    let claims = n.apply(&serde_json::to_string_pretty(&jwt.claims).unwrap_or_default());
                    let _ = writeln!(out, "Access token `{token}` ({}), decoded:\n", jwt.role);
                    let _ = writeln!(out, "```json\n{header}\n{claims}\n```\n");
                    if !times.is_empty() {
                        let _ = writeln!(out, "Times: {}.\n", times.join(", "));
                    }
                    match &previous_jwt {
                        Some((previous, _, _)) if *previous == token => {}
                        Some((previous, h, c)) => {
                            let mut changed = changed_keys(h, &jwt.header);
                            changed.extend(changed_keys(c, &jwt.claims));
                            let list = changed.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                            let _ = writeln!(out, "Changed since `{previous}`: {list}.\n");
                        }
                        None => {}
                    }
                    previous_jwt = Some((token, jwt.header.clone(), jwt.claims.clone()));
                }
            }
            TraceEvent::Done { .. } => {
                let mut text = Vec::new();
                let _ = print_text_in(event, lang, &mut text);
                let verdict = String::from_utf8_lossy(&text).trim().to_owned();
                let _ = writeln!(out, "\n## Result\n\n{}\n", n.apply(&verdict).replace("\n   - ", "\n- "));
            }
        }
    }
    let lineage = Lineage::from_events(&recorded.events, &recorded.policy);
    out.push_str("## Refresh-token lineage\n\n");
    if lineage.families.is_empty() {
        out.push_str("No refresh token was issued.\n");
    } else {
        out.push_str("| family | client | generation | refresh token | issued | expires | status |\n");
        out.push_str("|---|---|---|---|---|---|---|\n");
        for family in &lineage.families {
            let state = match family.state {
                FamilyState::Live => "live".to_owned(),
                FamilyState::RevokedByReuse => "revoked by reuse".to_owned(),
                FamilyState::Revoked => "revoked (RFC 7009)".to_owned(),
                FamilyState::Expired => "expired".to_owned(),
            };
            let ended = family.ended_at.map(|t| format!(" at {}", relative(t))).unwrap_or_default();
            for g in &family.generations {
                let mut status = match g.status {
                    GenerationStatus::Active => "active",
                    GenerationStatus::Used => "used",
                    GenerationStatus::AcceptedDuringGrace => "accepted during grace",
                    GenerationStatus::RevokedByReuse => "revoked by reuse",
                    GenerationStatus::Revoked => "revoked",
                    GenerationStatus::Expired => "expired",
                }
                .to_owned();
                if g.replayed {
                    status.push_str(", replayed");
                }
                if !g.delivered {
                    status.push_str(", never delivered");
                }
                let _ = writeln!(
                    out,
                    "| {} ({state}{ended}) | {} | {} | `{}` | {} | {} | {status} |",
                    family.number,
                    family.client_id,
                    g.generation,
                    n.apply(&g.token),
                    relative(g.issued_at),
                    g.expires_at.map_or("never".to_owned(), relative),
                );
            }
        }
    }
    out
}

/// The transcripts of every scenario under `root/scenarios`, as (path relative to
/// `root`, content): `docs/transcripts/<name>.md` and `.mmd`, and an index.
pub async fn docs_files(root: &Path) -> Result<BTreeMap<PathBuf, String>, String> {
    let scenarios = root.join("scenarios");
    let mut files = BTreeMap::new();
    let mut index = String::from(
        "<!-- Generated by `figure2 export-docs`: do not edit by hand. -->\n# Transcripts of the shipped scenarios\n\n\
         Each scenario of `scenarios/`, played once and written down: a Markdown transcript (every request and \
         response, the decoded tokens, the RFC sections) and a Mermaid sequence diagram. Regenerate them with \
         `cargo run -- export-docs` after adding or changing a scenario: a test fails when they are stale.\n\n\
         | scenario | title | transcript | diagram |\n|---|---|---|---|\n",
    );
    for path in Scenario::files_in(&scenarios) {
        let relative_source = path.strip_prefix(root).unwrap_or(&path).display().to_string().replace('\\', "/");
        let scenario = Scenario::load(&path.display().to_string()).map_err(|e| e.to_string())?;
        if scenario.needs_postgres() {
            continue; // several instances: the race's winner differs from run to run
        }
        let name = path
            .strip_prefix(&scenarios)
            .unwrap_or(&path)
            .with_extension("")
            .display()
            .to_string()
            .replace(['/', '\\'], "-");
        let recorded = record(&scenario, &relative_source, &mut |_| {}).await.map_err(|e| format!("{name}: {e}"))?;
        let dir = PathBuf::from(DOCS_DIR);
        files.insert(dir.join(format!("{name}.md")), render(&recorded, Format::Markdown, Lang::En, true));
        files.insert(dir.join(format!("{name}.mmd")), render(&recorded, Format::Mermaid, Lang::En, true));
        let _ = writeln!(
            index,
            "| `{}` | {} | [{name}.md]({name}.md) | [{name}.mmd]({name}.mmd) |",
            scenario.id,
            scenario.title.en.replace('|', "\\|")
        );
    }
    files.insert(PathBuf::from(DOCS_DIR).join("README.md"), index);
    files.insert(PathBuf::from(COMPARISON_DOC), comparison_doc(&scenarios).await?);
    Ok(files)
}

/// The comparison of the shipped scenarios under every preset (`figure2 compare`).
pub const COMPARISON_DOC: &str = "docs/compare.md";

/// The scenarios [`COMPARISON_DOC`] plays under every preset: the ones where policies differ.
pub const COMPARED_SCENARIOS: [&str; 11] = [
    "lost-response",
    "recovery-usage-based",
    "fault-retry-sent-twice",
    "fault-concurrent-refresh",
    "fault-second-install",
    "fault-refresh-right-after-grant",
    "attack-stolen-token-replayed",
    "attack-stolen-token-used-first",
    "rotation-on",
    "expired-refresh-token",
    "public-client",
];

async fn comparison_doc(scenarios: &Path) -> Result<String, String> {
    let presets = figure2_runner::compare::all_presets();
    let mut doc = String::from(
        "<!-- Generated by `figure2 export-docs`: do not edit by hand. -->\n# The shipped scenarios under every preset\n\n\
         Every cell was produced by running the scenario with the real authorization server, resource server and \
         client, under that preset (the scenario's own policy options dropped): `figure2 compare --all-presets \
         scenarios/NAME.toml`. A cell reads: the step's last answer (status and error code; `—` when the step sent \
         nothing), the refresh tokens the authorization server still holds active (`holder#n` = the n-th the holder \
         received, from 0), `⟲ A` when the user must authorize again, `✖N` when N families have revoked tokens. \
         Presets and their sources: README, \"Which refresh policy?\".\n\n",
    );
    for id in COMPARED_SCENARIOS {
        let path = scenarios.join(format!("{id}.toml"));
        let scenario = Scenario::load(&path.display().to_string()).map_err(|e| e.to_string())?;
        let comparison =
            figure2_runner::compare::compare(&scenario, &presets).await.map_err(|e| format!("{id}: {e}"))?;
        doc.push_str(&crate::compare::markdown(&comparison));
    }
    Ok(doc)
}

/// Writes the transcripts under `root` and removes the ones whose scenario is gone.
pub async fn write_docs(root: &Path) -> Result<Vec<PathBuf>, String> {
    let files = docs_files(root).await?;
    let dir = root.join(DOCS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in std::fs::read_dir(&dir).map_err(|e| e.to_string())?.flatten() {
        let path = entry.path();
        let relative = PathBuf::from(DOCS_DIR).join(entry.file_name());
        if path.is_file() && !files.contains_key(&relative) {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    for (path, content) in &files {
        let full = root.join(path);
        std::fs::write(&full, content).map_err(|e| format!("{}: {e}", full.display()))?;
    }
    Ok(files.into_keys().collect())
}

/// The transcripts that differ from what the scenarios produce now (missing, changed or
/// left over from a removed scenario). Empty when the docs are up to date.
pub async fn stale_docs(root: &Path) -> Result<Vec<String>, String> {
    let files = docs_files(root).await?;
    let mut stale = Vec::new();
    for (path, content) in &files {
        match std::fs::read_to_string(root.join(path)) {
            Ok(existing) if existing == *content => {}
            Ok(_) => stale.push(format!("{} is out of date", path.display())),
            Err(_) => stale.push(format!("{} is missing", path.display())),
        }
    }
    for entry in std::fs::read_dir(root.join(DOCS_DIR)).into_iter().flatten().flatten() {
        let relative = PathBuf::from(DOCS_DIR).join(entry.file_name());
        if entry.path().is_file() && !files.contains_key(&relative) {
            stale.push(format!("{} has no scenario any more", relative.display()));
        }
    }
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_what_changes_between_runs() {
        let mut n = Normaliser::default();
        n.add_url("http://127.0.0.1:42213", "authorization-server");
        n.add_literal("f2-1767225600-KG_r126H", "key");
        let text = "GET http://127.0.0.1:42213/token host: 127.0.0.1:42213 at#c8c4c33e (jwt, 424 bytes) rt#af6baccd rt#0000000g kid=f2-1767225600-KG_r126H xat#c8c4c33e";
        assert_eq!(
            n.apply(text),
            "GET http://authorization-server/token host: authorization-server at#1 (jwt) rt#1 rt#0000000g kid=key-1 xat#c8c4c33e"
        );
        assert_eq!(n.apply("rt#b0000000 rt#af6baccd state=0123abcd"), "rt#2 rt#1 state=state#1");
    }

    #[test]
    fn mermaid_text_is_escaped() {
        assert_eq!(mermaid_escape(r#"a; "b" rt#1 <c>"#), "a#59; #quot;b#quot; rt#1 #lt;c#gt;");
    }
}
