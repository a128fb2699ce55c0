//! Reporting an access token's first use (RFC 7662 introspection, `report_first_use`):
//! once per token, authenticated as the resource server, `active: false` refused, and an
//! unreachable authorization server does not stop a locally valid token.

use crate::support::*;
use figure2_protocol::secret::ClientSecret;
use figure2_resource_server::IntrospectionClient;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, ResponseTemplate};

async fn reporting() -> Harness {
    Harness::start_with(|c| {
        c.report_first_use = Some(IntrospectionClient {
            client_id: "figure2-resource-server".into(),
            client_secret: ClientSecret::new("resource-server-secret"),
        });
    })
    .await
}

async fn introspections(h: &Harness) -> Vec<String> {
    let requests = h.mock.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path() == INTROSPECTION_PATH)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[tokio::test]
async fn rfc7662_2_1_the_first_use_of_each_token_is_introspected_once() {
    let h = reporting().await;
    // RFC 7662 §2.1: form-encoded token and hint; the resource server authenticates
    // (client_secret_basic: base64 of figure2-resource-server:resource-server-secret).
    Mock::given(method("POST"))
        .and(path(INTROSPECTION_PATH))
        .and(header("authorization", "Basic ZmlndXJlMi1yZXNvdXJjZS1zZXJ2ZXI6cmVzb3VyY2Utc2VydmVyLXNlY3JldA=="))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("token_type_hint=access_token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"active": true})))
        .mount(&h.mock)
        .await;
    let first = h.token();
    for _ in 0..3 {
        assert_eq!(h.get("/resource/read", Some(&first)).await.status, 200);
    }
    let reported = introspections(&h).await;
    assert_eq!(reported.len(), 1, "one introspection for three uses");
    assert!(reported[0].contains(&format!("token={first}")));
    let second = h.token();
    assert_eq!(h.get("/resource/read", Some(&second)).await.status, 200);
    assert_eq!(introspections(&h).await.len(), 2, "a new token is reported too");
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn rfc7662_2_2_an_inactive_answer_refuses_the_token() {
    let h = reporting().await;
    Mock::given(method("POST"))
        .and(path(INTROSPECTION_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"active": false})))
        .mount(&h.mock)
        .await;
    let r = h.get("/resource/read", Some(&h.token())).await;
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("error=\"invalid_token\""), "{}", challenge(&r));
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn an_unreachable_introspection_endpoint_serves_the_token_and_reports_it_later() {
    let h = reporting().await;
    Mock::given(method("POST"))
        .and(path(INTROSPECTION_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .mount(&h.mock)
        .await;
    Mock::given(method("POST"))
        .and(path(INTROSPECTION_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"active": true})))
        .mount(&h.mock)
        .await;
    let token = h.token();
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 200, "validated locally: served");
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 200);
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 200);
    assert_eq!(introspections(&h).await.len(), 2, "the failed report is tried once more, then never");
    h.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn without_report_first_use_the_authorization_server_is_never_called() {
    let h = Harness::start().await;
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
    assert!(introspections(&h).await.is_empty());
    h.shutdown().await.expect("shutdown");
}
