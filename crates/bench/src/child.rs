//! The measured servers run in child processes: the harness re-executes itself as
//! `figure2-bench serve TARGET`, so that the load generator never shares a process with
//! the server and the server's CPU time can be read from /proc over the measured interval.
//!
//! The line protocol is tiny: the child prints `READY {json}` once it listens (the JSON
//! holds its addresses), then answers each command line read from stdin with one
//! `RESULT {json}` line. Closing its stdin stops it; it also stops by itself after
//! `--max-seconds`, so no child outlives a broken harness for long.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Child {
    pub name: String,
    process: std::process::Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The JSON of the child's `READY` line.
    pub ready: Value,
}

impl Child {
    /// Starts `figure2-bench serve TARGET ARGS...` and waits for its `READY` line.
    pub fn spawn(target: &str, args: &[String], max_seconds: u64) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find the harness binary: {e}"))?;
        let mut process = Command::new(exe)
            .arg("serve")
            .arg(target)
            .arg("--max-seconds")
            .arg(max_seconds.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the {target} server: {e}"))?;
        let stdin = process.stdin.take();
        let stdout = BufReader::new(process.stdout.take().ok_or("no stdout")?);
        let mut child = Self { name: target.to_owned(), process, stdin, stdout, ready: Value::Null };
        child.ready = child.read_tagged("READY")?;
        Ok(child)
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The address the child named `key` in its `READY` line.
    pub fn addr(&self, key: &str) -> Result<std::net::SocketAddr, String> {
        self.ready[key]
            .as_str()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("{} server did not report its {key} address", self.name))
    }

    /// Sends one command line and reads its `RESULT`.
    pub fn command(&mut self, line: &str) -> Result<Value, String> {
        let stdin = self.stdin.as_mut().ok_or("child stdin closed")?;
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).map_err(|e| format!("{}: {e}", self.name))?;
        self.read_tagged("RESULT")
    }

    fn read_tagged(&mut self, tag: &str) -> Result<Value, String> {
        // Bounded: a child that prints other lines gets 1000 of them, and a child that
        // hangs is ended by its own --max-seconds, which closes this pipe.
        for _ in 0..1000 {
            let mut line = String::new();
            match self.stdout.read_line(&mut line) {
                Ok(0) => return Err(format!("the {} server exited before {tag}", self.name)),
                Ok(_) => {}
                Err(e) => return Err(format!("{}: {e}", self.name)),
            }
            if let Some(json) = line.trim_end().strip_prefix(tag).map(str::trim) {
                return serde_json::from_str(json).map_err(|e| format!("{}: bad {tag} line: {e}", self.name));
            }
        }
        Err(format!("the {} server never said {tag}", self.name))
    }

    /// Closes stdin (the child shuts down gracefully) and waits for it, at most 15 s.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Our own child, by its handle (never by name).
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            self.shutdown();
        }
    }
}
