//! Atomic rotation: one refresh token presented many times at once is rotated once.

use crate::support::*;
use figure2_http::HttpClient;
use figure2_protocol::client_auth::ClientAuthentication;
use http::Method;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9700_4_14_2_fifty_concurrent_refreshes_of_one_token_succeed_exactly_once() {
    const N: usize = 50;
    let server = Setup::demo().start().await;
    let rt = field(&server.password_grant(DEMO, None).await, "refresh_token");
    let url = server.url("/token");
    let basic = ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let body = form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]);
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            // One client each: separate connections.
            let http = HttpClient::new();
            let (url, basic, body, barrier) = (url.clone(), basic.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let headers = [FORM, ("authorization", basic.as_str())];
                http.send(Method::POST, &url, &headers, Some(body.into())).await.expect("HTTP exchange")
            })
        })
        .collect();
    let mut granted = Vec::new();
    let mut refused = 0;
    for task in tasks {
        let r = task.await.expect("task");
        assert!(r.status < 500, "server error: {} {}", r.status, r.body_text());
        if r.status == 200 {
            granted.push(ok_json(&r));
        } else {
            assert_error(&r, 400, "invalid_grant");
            refused += 1;
        }
    }
    assert_eq!(granted.len(), 1, "exactly one refresh wins");
    assert_eq!(refused, N - 1);
    // The losers presented a retired token: reuse detection revoked the family, the
    // winner's new refresh token included (RFC 9700 §4.14.2).
    server.refresh_refused(DEMO, &field(&granted[0], "refresh_token")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc6749_4_1_2_concurrent_exchanges_of_one_code_succeed_at_most_once() {
    const N: usize = 10;
    let server = Setup::demo().start().await;
    let query = form(&[("response_type", "code"), ("client_id", "demo-client"), ("state", "c")]);
    let approval =
        form(&[("request", &query), ("username", "alice"), ("password", "alice-password"), ("decision", "approve")]);
    let r = server.send_raw(Method::POST, "/authorize", &[FORM], approval).await;
    assert_eq!(r.status, 303, "{}", r.body_text());
    let code = query_params(r.header("location").unwrap()).get("code").unwrap().to_owned();

    let url = server.url("/token");
    let basic = ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let body = form(&[("grant_type", "authorization_code"), ("code", &code)]);
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let http = HttpClient::new();
            let (url, basic, body, barrier) = (url.clone(), basic.clone(), body.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let headers = [FORM, ("authorization", basic.as_str())];
                http.send(Method::POST, &url, &headers, Some(body.into())).await.expect("HTTP exchange")
            })
        })
        .collect();
    let mut granted = Vec::new();
    for task in tasks {
        let r = task.await.expect("task");
        if r.status == 200 {
            granted.push(ok_json(&r));
        } else {
            assert_error(&r, 400, "invalid_grant");
        }
    }
    assert_eq!(granted.len(), 1, "a code is single-use");
    // The other presentations were reuses: the tokens issued from the code are revoked.
    server.refresh_refused(DEMO, &field(&granted[0], "refresh_token")).await;
}
