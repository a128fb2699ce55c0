//! The load generator: a fixed number of keep-alive HTTP/1.1 connections, each in a
//! closed loop (send one request, read the whole answer, send the next), for a fixed
//! time. Requests are pre-built bytes and answers are parsed with `httparse`: the
//! generator spends as little CPU as it can, because it shares the machine's cores with
//! the server it measures.
//!
//! A connection may carry state from one answer to its next request: a refresh-token
//! chain sends the refresh token its previous answer returned (RFC 6749 §6 with
//! rotation), which is why this is not wrk.
//!
//! Load only ever goes to 127.0.0.1 (the harness binds its servers there), and every
//! loop stops by itself: at its deadline, or after [`MAX_REQUESTS_PER_CONNECTION`].

use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A hard cap on the requests of one connection in one run, whatever the deadline.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 5_000_000;
/// The largest answer the generator reads.
const MAX_RESPONSE: usize = 1 << 20;

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One answer: its status and where its body is in the connection's buffer.
pub struct Answer {
    pub status: u16,
    body: std::ops::Range<usize>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        // The harness's servers listen on loopback only; refuse anything else.
        if !addr.ip().is_loopback() {
            return Err(std::io::Error::other(format!("refusing to load {addr}: not a loopback address")));
        }
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self { stream, buf: vec![0; 16 * 1024] })
    }

    /// Sends `request` and reads one whole answer (which must carry Content-Length, as
    /// hyper's answers with a full body do).
    pub async fn exchange(&mut self, request: &[u8]) -> std::io::Result<Answer> {
        self.stream.write_all(request).await?;
        let mut filled = 0;
        loop {
            if filled == self.buf.len() {
                if self.buf.len() >= MAX_RESPONSE {
                    return Err(std::io::Error::other("answer too large"));
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = self.stream.read(&mut self.buf[filled..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf[..filled]) {
                Ok(httparse::Status::Complete(head)) => {
                    let status = response.code.unwrap_or(0);
                    let length = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .ok_or_else(|| std::io::Error::other("answer without Content-Length"))?;
                    if head + length > MAX_RESPONSE {
                        return Err(std::io::Error::other("answer too large"));
                    }
                    if filled >= head + length {
                        return Ok(Answer { status, body: head..head + length });
                    }
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(std::io::Error::other(format!("bad answer: {e}"))),
            }
        }
    }

    pub fn body(&self, answer: &Answer) -> &[u8] {
        &self.buf[answer.body.clone()]
    }
}

/// Builds a request's bytes.
pub fn request(method: &str, addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
    for (name, value) in headers {
        r.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A `POST /token` with HTTP Basic client authentication (RFC 6749 §2.3.1).
pub fn token_request(addr: SocketAddr, basic: &str, form: &str) -> Vec<u8> {
    request(
        "POST",
        addr,
        "/token",
        &[("authorization", basic), ("content-type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    )
}

/// What the connections of one line send.
#[derive(Clone)]
pub enum Work {
    /// The same request every time.
    Fixed(Arc<Vec<u8>>),
    /// Requests from a pool: connection `i` sends `i`, `i + c`, `i + 2c`, … so that the
    /// pool is walked in order and a request comes back only after the whole pool.
    Pool(Arc<Vec<Vec<u8>>>),
    /// Refresh-token chains, one per connection: each request presents the refresh token
    /// of the previous answer (the same one again when the server does not rotate).
    /// Connection `i` goes to `addrs[i % addrs.len()]`: several instances of one
    /// authorization server share the load (as behind a round-robin balancer).
    Chains { addrs: Vec<SocketAddr>, basic: Arc<str>, tokens: Vec<String> },
}

impl Work {
    /// Where connection `i` goes (`default` unless the work names its addresses).
    fn addr_of(&self, i: usize, default: SocketAddr) -> SocketAddr {
        match self {
            Work::Chains { addrs, .. } if !addrs.is_empty() => addrs[i % addrs.len()],
            _ => default,
        }
    }
}

/// The outcome of one measured run.
pub struct RunOutcome {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of each request, in microseconds.
    pub latency: Histogram<u64>,
    /// The server's CPU ticks over the run, all its processes together (`None` if unreadable).
    pub server_cpu_ticks: Option<u64>,
    /// The database server's CPU ticks over the run (`None` if none was named or unreadable).
    pub database_cpu_ticks: Option<u64>,
    /// This process's CPU ticks over the run: the load generator's cost.
    pub loader_cpu_ticks: Option<u64>,
    /// The first error seen, for the log.
    pub first_error: Option<String>,
}

struct ConnOutcome {
    requests: u64,
    errors: u64,
    latency: Histogram<u64>,
    chain_token: Option<String>,
    first_error: Option<String>,
}

pub fn histogram() -> Histogram<u64> {
    // 1 µs to 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The CPU ticks of these processes together (`None` if one is unreadable).
fn processes_cpu_ticks(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&pid| crate::procfs::process_cpu_ticks(pid)).sum()
}

/// Runs `work` over `concurrency` connections to `addr` (or the chains' own addresses)
/// for `duration`, measuring the CPU time of the processes `server_pids` and of the
/// process tree under `database_root` (a PostgreSQL postmaster) over the same interval.
/// Chains come back updated.
pub async fn run(
    addr: SocketAddr,
    work: &mut Work,
    concurrency: usize,
    duration: Duration,
    server_pids: &[u32],
    database_root: Option<u32>,
) -> Result<RunOutcome, String> {
    let mut connections = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let addr = work.addr_of(i, addr);
        connections.push(Connection::open(addr).await.map_err(|e| format!("connect to {addr}: {e}"))?);
    }
    let cpu_before = processes_cpu_ticks(server_pids);
    let database_before = database_root.and_then(crate::procfs::tree_cpu_ticks);
    let loader_before = crate::procfs::process_cpu_ticks(std::process::id());
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, conn) in connections.into_iter().enumerate() {
        let work = match work {
            Work::Fixed(r) => ConnWork::Fixed(r.clone()),
            Work::Pool(p) => ConnWork::Pool { pool: p.clone(), next: i, stride: concurrency },
            Work::Chains { addrs, basic, tokens } => ConnWork::Chain {
                addr: addrs.get(i % addrs.len().max(1)).copied().unwrap_or(addr),
                basic: basic.clone(),
                token: tokens.get(i).cloned().ok_or("fewer chains than connections")?,
            },
        };
        tasks.spawn(async move { (i, drive(conn, work, deadline).await) });
    }
    let mut outcome = RunOutcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latency: histogram(),
        server_cpu_ticks: None,
        database_cpu_ticks: None,
        loader_cpu_ticks: None,
        first_error: None,
    };
    while let Some(joined) = tasks.join_next().await {
        let (i, conn) = joined.map_err(|e| format!("load task failed: {e}"))?;
        outcome.requests += conn.requests;
        outcome.errors += conn.errors;
        let _ = outcome.latency.add(&conn.latency);
        if outcome.first_error.is_none() {
            outcome.first_error = conn.first_error;
        }
        if let (Work::Chains { tokens, .. }, Some(token)) = (&mut *work, conn.chain_token) {
            tokens[i] = token;
        }
    }
    outcome.elapsed = start.elapsed();
    let cpu_after = processes_cpu_ticks(server_pids);
    outcome.server_cpu_ticks = cpu_before.zip(cpu_after).map(|(b, a)| a.saturating_sub(b));
    let database_after = database_root.and_then(crate::procfs::tree_cpu_ticks);
    outcome.database_cpu_ticks = database_before.zip(database_after).map(|(b, a)| a.saturating_sub(b));
    let loader_after = crate::procfs::process_cpu_ticks(std::process::id());
    outcome.loader_cpu_ticks = loader_before.zip(loader_after).map(|(b, a)| a.saturating_sub(b));
    Ok(outcome)
}

enum ConnWork {
    Fixed(Arc<Vec<u8>>),
    Pool { pool: Arc<Vec<Vec<u8>>>, next: usize, stride: usize },
    Chain { addr: SocketAddr, basic: Arc<str>, token: String },
}

async fn drive(mut conn: Connection, mut work: ConnWork, deadline: Instant) -> ConnOutcome {
    let mut out = ConnOutcome { requests: 0, errors: 0, latency: histogram(), chain_token: None, first_error: None };
    let mut chain_request = Vec::new();
    while out.requests < MAX_REQUESTS_PER_CONNECTION && Instant::now() < deadline {
        let request: &[u8] = match &mut work {
            ConnWork::Fixed(r) => r,
            ConnWork::Pool { pool, next, stride } => {
                let r = &pool[*next % pool.len()];
                *next = (*next + *stride) % pool.len();
                r
            }
            ConnWork::Chain { addr, basic, token } => {
                chain_request = token_request(*addr, basic, &format!("grant_type=refresh_token&refresh_token={token}"));
                &chain_request
            }
        };
        let sent = Instant::now();
        let answer = match conn.exchange(request).await {
            Ok(a) => a,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| format!("I/O: {e}"));
                break; // the connection is gone; the run's other connections go on
            }
        };
        out.latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
        out.requests += 1;
        if answer.status != 200 {
            out.errors += 1;
            out.first_error.get_or_insert_with(|| {
                format!("HTTP {}: {}", answer.status, String::from_utf8_lossy(conn.body(&answer)))
            });
            if matches!(work, ConnWork::Chain { .. }) {
                break; // a broken chain cannot go on
            }
            continue;
        }
        if let ConnWork::Chain { token, .. } = &mut work {
            // RFC 6749 §6: with rotation the answer carries the next refresh token; without,
            // the client keeps presenting the one it has.
            if let Some(next) = refresh_token_of(conn.body(&answer)) {
                *token = next;
            }
        }
    }
    if let ConnWork::Chain { token, .. } = work {
        out.chain_token = Some(token);
    }
    drop(chain_request);
    out
}

#[derive(serde::Deserialize)]
struct TokenAnswer<'a> {
    #[serde(borrow)]
    access_token: Option<&'a str>,
    #[serde(borrow)]
    refresh_token: Option<&'a str>,
}

/// The `refresh_token` of an RFC 6749 §5.1 answer.
pub fn refresh_token_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<TokenAnswer<'_>>(body).ok()?.refresh_token.map(str::to_owned)
}

/// The `access_token` of an RFC 6749 §5.1 answer.
pub fn access_token_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<TokenAnswer<'_>>(body).ok()?.access_token.map(str::to_owned)
}

/// Sends each request once over `concurrency` connections and returns the answers'
/// bodies in order (for setting up: issuing tokens, creating chains).
pub async fn send_all(addr: SocketAddr, requests: Vec<Vec<u8>>, concurrency: usize) -> Result<Vec<Vec<u8>>, String> {
    let requests = Arc::new(requests);
    let n = requests.len();
    let concurrency = concurrency.clamp(1, n.max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..concurrency {
        let requests = requests.clone();
        tasks.spawn(async move {
            let mut conn = Connection::open(addr).await.map_err(|e| format!("connect to {addr}: {e}"))?;
            let mut bodies = Vec::new();
            for i in (c..requests.len()).step_by(concurrency) {
                let answer = conn.exchange(&requests[i]).await.map_err(|e| format!("{addr}: {e}"))?;
                let body = conn.body(&answer).to_vec();
                if answer.status != 200 {
                    return Err(format!("{addr} answered {}: {}", answer.status, String::from_utf8_lossy(&body)));
                }
                bodies.push((i, body));
            }
            Ok::<_, String>(bodies)
        });
    }
    let mut all = vec![Vec::new(); n];
    while let Some(joined) = tasks.join_next().await {
        for (i, body) in joined.map_err(|e| e.to_string())?? {
            all[i] = body;
        }
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tokens_of_a_token_answer() {
        let body = br#"{"access_token":"eyJ.a.b","token_type":"Bearer","expires_in":3600,"refresh_token":"rt1","scope":"read"}"#;
        assert_eq!(refresh_token_of(body).as_deref(), Some("rt1"));
        assert_eq!(access_token_of(body).as_deref(), Some("eyJ.a.b"));
        assert_eq!(refresh_token_of(br#"{"access_token":"x","token_type":"Bearer"}"#), None);
    }

    #[test]
    fn builds_requests() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let r = String::from_utf8(token_request(addr, "Basic x", "a=b")).unwrap();
        assert!(r.starts_with("POST /token HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n"), "{r}");
        assert!(r.ends_with("content-length: 3\r\n\r\na=b"), "{r}");
        let g = String::from_utf8(request("GET", addr, "/x", &[], b"")).unwrap();
        assert!(!g.contains("content-length"));
    }
}
