//! What the harness reads from Linux's /proc: CPU time of a process (or of some of its
//! threads) and its memory, plus a few facts about the machine for the report.
//!
//! CPU time is `utime + stime` from `/proc/PID/stat` (RFC-free, proc(5)): it counts the
//! threads that already exited too, in clock ticks (`getconf CLK_TCK`, 100 on Linux).
//! Over a measured interval of seconds that resolution (10 ms) is well under 1 %.

use std::sync::OnceLock;

/// Clock ticks per second for /proc CPU times.
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t: &u64| t > 0)
            .unwrap_or(100)
    })
}

/// Converts clock ticks to microseconds.
pub fn ticks_to_us(ticks: u64) -> f64 {
    ticks as f64 * 1e6 / clk_tck() as f64
}

/// `utime + stime` of a `stat` line (fields 14 and 15; the command name may hold spaces
/// and parentheses, so fields are counted after the last `)`).
fn stat_cpu(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): field n is rest[n - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The fields after the command name of a `stat` line: `rest[n - 3]` is field `n`.
fn stat_fields(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

/// The parent of a process (`stat` field 4).
pub fn parent_pid(pid: u32) -> Option<u32> {
    stat_fields(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?.get(1)?.parse().ok()
}

/// A process's command name (`/proc/PID/comm`).
pub fn command_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).ok().map(|c| c.trim_end().to_owned())
}

/// CPU ticks used so far by a process tree one level deep: `root` itself, the children
/// it already reaped (`cutime + cstime`, fields 16 and 17) and its live children. A
/// PostgreSQL cluster is such a tree: the postmaster, one backend per connection, and
/// its background processes (WAL writer, checkpointer, …).
pub fn tree_cpu_ticks(root: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{root}/stat")).ok()?;
    let fields = stat_fields(&stat)?;
    let own = stat_cpu(&stat)?;
    let reaped: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    let children: u64 = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter(|stat| stat_fields(stat).and_then(|f| f.get(1)?.parse::<u32>().ok()) == Some(root))
        .filter_map(|stat| stat_cpu(&stat))
        .sum();
    Some(own + reaped + children)
}

/// CPU ticks a process used so far, all its threads together (dead ones included).
pub fn process_cpu_ticks(pid: u32) -> Option<u64> {
    stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU ticks used so far by the live threads of this process whose name is `name`.
pub fn own_threads_cpu_ticks(name: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0 };
    dir.flatten()
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == name))
        .filter_map(|task| stat_cpu(&std::fs::read_to_string(task.path().join("stat")).ok()?))
        .sum()
}

/// Resident memory of a process, from `/proc/PID/status`, in KiB.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// VmRSS: resident now.
    pub rss_kib: u64,
    /// VmHWM: the peak resident size so far.
    pub peak_rss_kib: u64,
    /// RssAnon: heap and stacks.
    pub anon_kib: u64,
    /// RssFile: mapped files (the binary, and SQLite's file if memory-mapped).
    pub file_kib: u64,
}

pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(Memory {
        rss_kib: field("VmRSS:"),
        peak_rss_kib: field("VmHWM:"),
        anon_kib: field("RssAnon:"),
        file_kib: field("RssFile:"),
    })
}

/// The 1, 5 and 15 minute load averages: a busy machine (another build, say) blurs the
/// figures, so the report says how busy it was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The machine, for the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub memory_mib: u64,
}

pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_mib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024);
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        memory_mib,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_strange_command_name() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 10 1000 200";
        assert_eq!(stat_cpu(line), Some(325));
    }

    #[test]
    fn reads_this_process() {
        assert!(process_cpu_ticks(std::process::id()).is_some());
        let parent = parent_pid(std::process::id()).expect("a parent");
        assert!(tree_cpu_ticks(parent).is_some_and(|t| t >= process_cpu_ticks(std::process::id()).unwrap_or(0)));
        assert!(command_name(std::process::id()).is_some());
        assert!(memory(std::process::id()).is_some_and(|m| m.rss_kib > 0));
    }
}
