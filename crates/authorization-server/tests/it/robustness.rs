//! Garbage in, 4xx JSON out: no panics, no 5xx.

use crate::support::*;
use bytes::Bytes;
use figure2_http::ReceivedResponse;
use http::Method;

#[track_caller]
fn assert_4xx_json(what: &str, r: &ReceivedResponse) {
    assert!((400..500).contains(&r.status), "{what}: {} {}", r.status, r.body_text());
    let body: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("{what}: not JSON: {}", r.body_text()));
    assert!(body["error"].is_string(), "{what}: {body}");
    assert_no_store(r);
}

#[tokio::test]
async fn garbage_bodies_and_headers_get_4xx_json_answers() {
    let server = Setup::demo().start().await;
    let basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let huge_name = format!("{}=1", "n".repeat(12 * 1024));
    let bodies: Vec<(&str, Bytes)> = vec![
        ("invalid UTF-8", Bytes::from_static(b"grant_type=client_credentials&scope=\xff\xfe\xfd")),
        ("percent-encoded invalid UTF-8", Bytes::from_static(b"grant_type=client_%FF&scope=%C3%28")),
        ("huge parameter name", Bytes::from(huge_name)),
        ("NUL bytes", Bytes::from_static(b"grant_type=\0\0&\0=\0")),
        ("only separators", Bytes::from_static(b"&&&===&=")),
        ("binary", Bytes::from((0u8..=255).collect::<Vec<u8>>())),
        ("empty", Bytes::new()),
    ];
    for endpoint in ["/token", "/revoke", "/introspect"] {
        for (what, body) in &bodies {
            for auth in [None, Some(basic.as_str())] {
                let mut headers = vec![FORM];
                headers.extend(auth.map(|a| ("authorization", a)));
                let r = server.send_raw(Method::POST, endpoint, &headers, body.clone()).await;
                assert_4xx_json(&format!("{endpoint} {what} auth={}", auth.is_some()), &r);
            }
        }
    }

    let authorizations = [
        "Basic !!!",
        "Bearer x",
        "Basic",
        "Basic ",
        "Basic Og==",                // ":" (empty client_id)
        "Basic ZGVtby1jbGllbnQ=",    // no ':'
        "Basic //79",                // not UTF-8 once decoded
        "Basic ZGVtby1jbGllbnQ6%ZZ", // not base64
        "Basic été",                 // not ASCII
        "Digest username=\"demo-client\"",
    ];
    for endpoint in ["/token", "/revoke", "/introspect"] {
        for value in authorizations {
            let headers = [FORM, ("authorization", value)];
            let r = server.send_raw(Method::POST, endpoint, &headers, "grant_type=client_credentials&token=abc").await;
            assert_4xx_json(&format!("{endpoint} Authorization: {value:?}"), &r);
        }
        // Two Authorization headers.
        let headers = [FORM, ("authorization", basic.as_str()), ("authorization", basic.as_str())];
        let r = server.send_raw(Method::POST, endpoint, &headers, "grant_type=client_credentials&token=abc").await;
        assert_4xx_json(&format!("{endpoint} two Authorization headers"), &r);
    }

    // Still serving normally afterwards.
    assert_eq!(server.get("/health").await.status, 200);
    ok_json(&server.token(DEMO, &[("grant_type", "client_credentials")]).await);
}

#[test]
fn proptest_arbitrary_token_requests_never_get_5xx_or_non_json() {
    use proptest::prelude::*;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = runtime.block_on(Setup::demo().start());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        prop::sample::select(vec!["/token", "/revoke", "/introspect"]),
        prop::option::of("[ -~]{0,80}"),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            // Form-ish bodies drawn from the real parameter names.
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "grant_type",
                        "refresh_token",
                        "scope",
                        "client_id",
                        "client_secret",
                        "code",
                        "code_verifier",
                        "redirect_uri",
                        "token",
                        "token_type_hint",
                        "username",
                        "password",
                    ]),
                    "[a-z_%+=&0-9]{0,24}",
                ),
                0..8,
            )
            .prop_map(|pairs| pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()),
        ],
    );
    runner
        .run(&strategy, |(endpoint, authorization, body)| {
            let mut headers = vec![FORM];
            if let Some(a) = authorization.as_deref() {
                headers.push(("authorization", a));
            }
            let r = runtime.block_on(server.send_raw(Method::POST, endpoint, &headers, body.clone()));
            prop_assert!(r.status < 500, "{} {}", r.status, r.body_text());
            if r.status != 200 {
                let json: serde_json::Value = serde_json::from_slice(&r.body)
                    .map_err(|_| TestCaseError::fail(format!("not JSON: {}", r.body_text())))?;
                prop_assert!(json["error"].is_string(), "{}", json);
            }
            Ok(())
        })
        .unwrap();
    runtime.block_on(server.stop());
}
