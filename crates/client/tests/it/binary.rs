//! The `client` binary as the compose demo runs it: `--ignore-expires-in` meets step F,
//! an authorization server that goes away and comes back costs retries but no new step A,
//! and SIGTERM ends it cleanly.

use crate::support::{CLIENT_ID, CLIENT_SECRET, RESOURCE, form, resource_invalid_token, resource_ok};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every wait in this file gives up after this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// The client binary, its stdout read line by line on a thread.
struct Running {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_client"))
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the client binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Reads lines until one starts with `prefix`; panics with what it saw after [`PATIENCE`].
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no line starting with {prefix:?}; saw {:#?}", self.seen)
                }
            }
        }
    }

    /// SIGTERM, then the exit status (bounded wait).
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the client did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in authorization server on `listener`, answering discovery.
async fn authorization_server(listener: TcpListener) -> MockServer {
    let server = MockServer::builder().listener(listener).start().await;
    let issuer = server.uri();
    Mock::given(method("GET"))
        .and(path("/.well-known/oauth-authorization-server"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
        })))
        .mount(&server)
        .await;
    server
}

fn token_answer(at: &str, rt: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .set_body_json(
            json!({"access_token": at, "token_type": "Bearer", "expires_in": expires_in, "refresh_token": rt}),
        )
        .insert_header("cache-control", "no-store")
}

/// Waits until nothing listens on `addr` any more.
fn wait_until_closed(addr: SocketAddr) {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
        assert!(Instant::now() < deadline, "{addr} still accepts connections");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_client_meets_step_f_and_outlives_an_authorization_server_restart() {
    // The resource server accepts at1 once, then says it expired (E/F); at2 is good.
    let rs = MockServer::start().await;
    resource_ok("at1").up_to_n_times(1).with_priority(1).mount(&rs).await;
    resource_invalid_token("at1").mount(&rs).await;
    resource_ok("at2").mount(&rs).await;

    // The authorization server grants at1/rt1, living 1 second.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let auth = authorization_server(listener).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form("grant_type", "password"))
        .respond_with(token_answer("at1", "rt1", 1))
        .mount(&auth)
        .await;

    let issuer = auth.uri();
    let resource = format!("{}{RESOURCE}", rs.uri());
    let mut client = Running::start(&[
        "--issuer",
        &issuer,
        "--resource",
        &resource,
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--interval",
        "2",
        "--ignore-expires-in",
    ]);
    client.wait_for("(A)->(B) grant 200");
    client.wait_for("(C)->(D) GET /resource/read 200");

    // The authorization server goes away before the token expires.
    drop(auth);
    wait_until_closed(addr);
    // The client presents the expired token anyway (E/F); the refresh (G) cannot connect.
    client.wait_for("(E)->(F) GET /resource/read 401 invalid_token");
    client.wait_for("(E)->(F) GET /resource/read 401 invalid_token");

    // It comes back on the same address, with the same grant: the refresh goes through.
    let auth = authorization_server(TcpListener::bind(addr).unwrap()).await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(form("grant_type", "refresh_token"))
        .and(form("refresh_token", "rt1"))
        .respond_with(token_answer("at2", "rt2", 3600))
        .mount(&auth)
        .await;
    let refreshed = client.wait_for("(G)->(H) refresh 200");
    assert!(refreshed.contains(" rotated rt#"), "{refreshed}");
    client.wait_for("(C)->(D) GET /resource/read 200");

    let grants = client.seen.iter().filter(|l| l.starts_with("(A)")).count();
    assert_eq!(grants, 1, "a lost connection is no reason to go back to (A): {:#?}", client.seen);
    assert!(forms_with(&auth, "grant_type", "password").await == 0);
    assert!(client.terminate().success(), "SIGTERM is a clean exit");
}

/// How many requests `server` received whose form has `name=value`.
async fn forms_with(server: &MockServer, name: &str, value: &str) -> usize {
    crate::support::forms(server).await.iter().filter(|f| f.get(name) == Some(value)).count()
}
