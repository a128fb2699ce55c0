//! Single flight: many callers, one refresh (with rotation, a second one would present a
//! retired token and, per RFC 9700 §4.14.2, get the whole family revoked).

use crate::support::*;
use figure2_client::{ClientError, Step};
use tokio::task::JoinSet;

const CALLERS: usize = 10;

async fn call_concurrently(h: &Harness) -> Vec<Result<u16, ClientError>> {
    let mut set = JoinSet::new();
    for _ in 0..CALLERS {
        let client = h.client.clone();
        let url = h.resource_url();
        set.spawn(async move { client.call(http::Method::GET, &url, None).await.map(|r| r.status) });
    }
    set.join_all().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_calls_with_an_expired_token_refresh_once() {
    let h = Harness::new().await;
    h.authorize().await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
    resource_ok("at0").expect(0).mount(&h.rs).await;
    resource_ok("at1").expect(CALLERS as u64).mount(&h.rs).await;

    h.clock.advance(LIFETIME + 10);
    for result in call_concurrently(&h).await {
        assert_eq!(result.unwrap(), 200);
    }
    assert_eq!(h.steps().iter().filter(|s| **s == Step::Refresh).count(), 1);
    assert_eq!(h.client.tokens().unwrap().generation, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_calls_told_invalid_token_refresh_once() {
    let h = Harness::new().await;
    h.authorize().await;
    refresh_mock("rt0", "at1", Some("rt1")).expect(1).mount(&h.auth).await;
    resource_invalid_token("at0").mount(&h.rs).await;
    resource_ok("at1").mount(&h.rs).await;

    for result in call_concurrently(&h).await {
        assert_eq!(result.unwrap(), 200);
    }
    // Each caller: at most one E/F and one retry.
    let requests = h.rs.received_requests().await.unwrap();
    assert!(requests.len() <= 2 * CALLERS, "{}", requests.len());
    let ok = requests.iter().filter(|r| r.headers["authorization"] == "Bearer at1").count();
    assert_eq!(ok, CALLERS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_queued_behind_a_refused_refresh_all_learn_it() {
    let h = Harness::new().await;
    h.authorize().await;
    any_refresh(token_error(400, "invalid_grant")).expect(1).mount(&h.auth).await;
    h.clock.advance(LIFETIME);
    let results = call_concurrently(&h).await;
    // Everyone who saw the expired token gets the refusal (callers that started after the
    // tokens were cleared get NotAuthorized: equally "back to A").
    for result in results {
        assert!(
            matches!(result, Err(ClientError::ReauthorizationRequired(_) | ClientError::NotAuthorized)),
            "{result:?}"
        );
    }
    assert!(h.client.tokens().is_none());
}
