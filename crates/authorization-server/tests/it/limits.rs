//! The HTTP limits of `figure2_http::Limits` on the real server, over a raw socket: a
//! request head with too many headers, or too large, is refused with 431 before any
//! handler runs, and the server keeps serving. (The body limit: `errors.rs`.)

use crate::support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes on a fresh connection and returns the status of the answer (0: the
/// connection was closed without one).
async fn raw_status(server: &TestServer, request: &[u8]) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.expect("connect");
    // The server may answer and close before reading everything: ignore write errors.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let line = answer.split(|b| *b == b'\r').next().unwrap_or_default();
    String::from_utf8_lossy(line).split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn token_request_with(extra_headers: &str) -> Vec<u8> {
    let body = "grant_type=client_credentials";
    format!(
        "POST /token HTTP/1.1\r\nHost: as\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn request_heads_beyond_the_limits_are_refused_before_any_handler() {
    let server = Setup::demo().start().await;
    let basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let auth = format!("Authorization: {basic}\r\n");

    // Within the limits: served.
    assert_eq!(raw_status(&server, &token_request_with(&auth)).await, 200);

    // 100 headers (the limit is 64).
    let many: String = (0..100).map(|i| format!("X-Filler-{i}: {i}\r\n")).collect();
    let status = raw_status(&server, &token_request_with(&format!("{auth}{many}"))).await;
    assert_eq!(status, 431, "100 headers: RFC 6585 §5 Request Header Fields Too Large");

    // A 32 KiB header value (the head may be 16 KiB).
    let huge = format!("X-Filler: {}\r\n", "a".repeat(32 * 1024));
    let status = raw_status(&server, &token_request_with(&format!("{auth}{huge}"))).await;
    assert_eq!(status, 431, "a 32 KiB header");

    // Still serving normally.
    assert_eq!(raw_status(&server, &token_request_with(&auth)).await, 200);
}
