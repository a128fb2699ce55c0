//! The report: a table for people and `--json` for machines, with the same content.

use crate::procfs::{Machine, Memory};
use serde::Serialize;

/// One measured round of one line.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    /// Requests (or client cycles) per second.
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// The server's CPU time per request (or per cycle), in microseconds.
    pub server_cpu_us: Option<f64>,
    /// The load generator's CPU time per request, in microseconds (it shares the cores).
    pub loader_cpu_us: Option<f64>,
    pub requests: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// client-cycles: HTTP exchanges per cycle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_per_cycle: Option<f64>,
    /// client-cycles: the whole process's CPU (clients and servers) per cycle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_cpu_us: Option<f64>,
    /// PostgreSQL lines: the database server's CPU time per request, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_cpu_us: Option<f64>,
    /// PostgreSQL lines: statements the instances sent to the database per request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements_per_request: Option<f64>,
}

/// A line of the table: the medians of its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct LineReport {
    pub name: String,
    pub role: String,
    pub description: String,
    pub concurrency: usize,
    /// "request" or "cycle".
    pub unit: String,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub server_cpu_us: Option<f64>,
    pub loader_cpu_us: Option<f64>,
    /// PostgreSQL lines: how many authorization-server instances shared the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instances: Option<usize>,
    /// PostgreSQL lines: the database server's CPU time per request (µs), median of rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_cpu_us: Option<f64>,
    /// PostgreSQL lines: statements sent to the database per request, median of rounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements_per_request: Option<f64>,
    pub errors: u64,
    pub requests: u64,
    pub rounds: Vec<Sample>,
}

/// A line that did not run, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub line: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub name: String,
    /// Median over rounds of the ratio in each round (the two lines ran back to back).
    pub value: f64,
    /// e.g. ">= 0.8"
    pub target: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSuite {
    pub files: usize,
    pub passed: usize,
    pub failed: Vec<String>,
    /// Median wall time of the whole suite, one scenario after another.
    pub wall_s: f64,
    pub rounds_s: Vec<f64>,
    pub target_s: f64,
    pub met: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryReport {
    /// Live refresh-token families in the authorization server's store.
    pub as_families: u64,
    /// The authorization server right after it opened the store.
    pub as_at_start: Option<Memory>,
    /// The authorization server after its last measured refresh round.
    pub as_under_load: Option<Memory>,
    /// The resource server at the end of its last distinct-token round.
    pub rs_under_load: Option<Memory>,
    /// The authorization server of the password-grant line after its last round.
    pub as_password: Option<Memory>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub store_fill: String,
    pub store_fill_s: f64,
    pub chains: String,
    pub token_pool: String,
    /// The PostgreSQL lines' database and instances, or why they were skipped.
    pub postgres: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub mode: String,
    pub rounds: u32,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub concurrency: usize,
    pub password_concurrency: usize,
    pub families: u64,
    pub token_pool: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub harness: String,
    pub command: String,
    pub machine: Machine,
    pub versions: Vec<(String, String)>,
    pub settings: Settings,
    pub setup: Setup,
    pub lines: Vec<LineReport>,
    /// Lines asked for that did not run (no PostgreSQL, say), with the reason.
    pub skipped: Vec<Skipped>,
    pub ratios: Vec<Ratio>,
    pub scenario_suite: Option<ScenarioSuite>,
    pub memory: MemoryReport,
    pub targets_met: bool,
    pub total_s: f64,
    /// /proc/loadavg (1, 5, 15 min) when the run started and when it ended.
    pub load_average_before: String,
    pub load_average_after: String,
}

pub fn median_f64(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn memory_line(m: &Memory) -> String {
    format!("RSS {} (peak {}; anon {}, file {})", mib(m.rss_kib), mib(m.peak_rss_kib), mib(m.anon_kib), mib(m.file_kib))
}

impl Report {
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let m = &self.machine;
        out.push_str(&format!("{} ({} mode)\n", self.harness, s.mode));
        if s.mode == "quick" {
            out.push_str("quick mode proves the harness works; its one-second figures are rough\n");
        }
        out.push_str(&format!("command: {}\n", self.command));
        out.push_str(&format!(
            "machine: {} cores, {}, Linux {}, {} MiB\n",
            m.cores, m.cpu_model, m.kernel, m.memory_mib
        ));
        out.push_str(&format!(
            "load average (1 5 15 min): {} at the start, {} at the end\n",
            self.load_average_before, self.load_average_after
        ));
        let versions: Vec<String> = self.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("versions: {}\n", versions.join(", ")));
        out.push_str(&format!(
            "method: {} round(s), each line {:.1} s per round after a {:.1} s warm-up, lines interleaved; \
             medians of the rounds; closed-loop keep-alive HTTP/1.1 load (one thread) from a separate \
             process; CPU µs/req = utime+stime of the server process over the measured interval per \
             request; load µs = the same for the load generator\n\n",
            s.rounds, s.duration_s, s.warmup_s
        ));
        out.push_str(&format!(
            "{:<24} {:>5} {:>10} {:>9} {:>9} {:>12} {:>9} {:>7}\n",
            "line", "conc", "req/s", "p50 µs", "p99 µs", "CPU µs/req", "load µs", "errors"
        ));
        for l in &self.lines {
            let cpu = l.server_cpu_us.map_or("-".to_owned(), |c| format!("{c:.1}"));
            let loader = l.loader_cpu_us.map_or("-".to_owned(), |c| format!("{c:.1}"));
            let rate = if l.unit == "cycle" { format!("{} c/s", thousands(l.rps)) } else { thousands(l.rps) };
            out.push_str(&format!(
                "{:<24} {:>5} {:>10} {:>9} {:>9} {:>12} {:>9} {:>7}\n",
                l.name,
                l.concurrency,
                rate,
                thousands(l.p50_us as f64),
                thousands(l.p99_us as f64),
                cpu,
                loader,
                l.errors
            ));
        }
        out.push('\n');
        for l in &self.lines {
            out.push_str(&format!("  {:<22} {}: {}\n", l.name, l.role, l.description));
        }
        for s in &self.skipped {
            out.push_str(&format!("  {:<22} SKIPPED: {}\n", s.line, s.reason));
        }
        let pg: Vec<&LineReport> = self.lines.iter().filter(|l| l.instances.is_some()).collect();
        if !pg.is_empty() {
            out.push_str(&format!(
                "\n{:<24} {:>9} {:>10} {:>9} {:>12} {:>12} {:>12} {:>11}\n",
                "PostgreSQL line", "instances", "req/s", "p99 µs", "AS µs/req", "PG µs/req", "AS+PG µs", "stmts/req"
            ));
            let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
            for l in pg {
                let total = l.server_cpu_us.zip(l.database_cpu_us).map(|(a, b)| a + b);
                out.push_str(&format!(
                    "{:<24} {:>9} {:>10} {:>9} {:>12} {:>12} {:>12} {:>11}\n",
                    l.name,
                    l.instances.unwrap_or(0),
                    thousands(l.rps),
                    thousands(l.p99_us as f64),
                    f(l.server_cpu_us),
                    f(l.database_cpu_us),
                    f(total),
                    l.statements_per_request.map_or("-".to_owned(), |v| format!("{v:.2}"))
                ));
            }
        }
        if !self.ratios.is_empty() || self.scenario_suite.is_some() {
            out.push_str(&format!("\n{:<44} {:>8} {:>9}  {}\n", "target", "value", "wanted", "verdict"));
        }
        for r in &self.ratios {
            let verdict = match (r.target.as_str(), r.met) {
                ("-", _) => "(no target)",
                (_, true) => "met",
                (_, false) => "MISSED",
            };
            out.push_str(&format!("{:<44} {:>8.2} {:>9}  {}\n", r.name, r.value, r.target, verdict));
        }
        if let Some(suite) = &self.scenario_suite {
            let verdict = if suite.met { "met" } else { "MISSED" };
            out.push_str(&format!(
                "{:<44} {:>8} {:>9}  {}\n",
                format!("scenario suite wall ({} files, {} passed)", suite.files, suite.passed),
                format!("{:.2} s", suite.wall_s),
                format!("< {:.0} s", suite.target_s),
                verdict
            ));
            for f in &suite.failed {
                out.push_str(&format!("  scenario FAILED: {f}\n"));
            }
        }
        out.push('\n');
        let mem = &self.memory;
        if let Some(m) = &mem.as_under_load {
            out.push_str(&format!(
                "memory: authorization server with {} live families in its store, after load: {}\n",
                thousands(mem.as_families as f64),
                memory_line(m)
            ));
        }
        if let Some(m) = &mem.as_at_start {
            out.push_str(&format!("        authorization server right after opening the store: {}\n", memory_line(m)));
        }
        if let Some(m) = &mem.rs_under_load {
            out.push_str(&format!("        resource server under load (distinct tokens): {}\n", memory_line(m)));
        }
        if let Some(m) = &mem.as_password {
            out.push_str(&format!("        authorization server after the password-grant line: {}\n", memory_line(m)));
        }
        out.push_str(&format!("setup: {}\n", self.setup.store_fill));
        out.push_str(&format!("       {}\n", self.setup.chains));
        out.push_str(&format!("       {}\n", self.setup.token_pool));
        out.push_str(&format!("       {}\n", self.setup.postgres));
        for l in &self.lines {
            if let Some(e) = l.rounds.iter().find_map(|r| r.first_error.as_deref()) {
                out.push_str(&format!("first error of {}: {}\n", l.name, e));
            }
        }
        out.push_str(&format!(
            "\nall targets met: {}   (run took {:.0} s)\n",
            if self.targets_met { "yes" } else { "no" },
            self.total_s
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_numbers() {
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }
}
