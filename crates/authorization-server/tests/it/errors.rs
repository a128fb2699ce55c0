//! Token endpoint error responses (RFC 6749 §3.2, §5.2).

use crate::support::*;
use http::Method;

#[tokio::test]
async fn rfc6749_5_2_missing_grant_type_is_invalid_request() {
    let server = Setup::demo().start().await;
    assert_error(&server.token(DEMO, &[("refresh_token", "x")]).await, 400, "invalid_request");
    // §3.2: "parameters sent without a value MUST be treated as if they were omitted".
    assert_error(&server.token(DEMO, &[("grant_type", "")]).await, 400, "invalid_request");
}

#[tokio::test]
async fn rfc6749_5_2_unknown_grant_type_is_unsupported_grant_type() {
    let server = Setup::demo().start().await;
    for grant in ["implicit", "urn:ietf:params:oauth:grant-type:device_code", "REFRESH_TOKEN"] {
        let r = server.token(DEMO, &[("grant_type", grant)]).await;
        assert_error(&r, 400, "unsupported_grant_type");
    }
}

#[tokio::test]
async fn rfc6749_3_2_repeated_parameter_is_invalid_request() {
    let server = Setup::demo().start().await;
    let body = "grant_type=client_credentials&grant_type=client_credentials";
    let basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let r = server.send_raw(Method::POST, "/token", &[FORM, ("authorization", &basic)], body).await;
    assert_error(&r, 400, "invalid_request");
    let body = "grant_type=refresh_token&refresh_token=a&refresh_token=b";
    let r = server.send_raw(Method::POST, "/token", &[FORM, ("authorization", &basic)], body).await;
    assert_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn rfc6749_3_2_repeated_unrecognized_parameters_are_ignored_everywhere() {
    let server = Setup::demo().start().await;
    let basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let headers = [FORM, ("authorization", basic.as_str())];
    // The issue's input: RFC 8707 `resource` is multi-valued by design.
    let body = "grant_type=client_credentials&resource=https%3A%2F%2Fa.example%2F&resource=https%3A%2F%2Fb.example%2F";
    let r = server.send_raw(Method::POST, "/token", &headers, body).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    // A parameter /token does not define, repeated, for every grant type.
    let body = "grant_type=client_credentials&audience=a&audience=b&x=1&x=2";
    let at = field(&ok_json(&server.send_raw(Method::POST, "/token", &headers, body).await), "access_token");
    let body = "grant_type=password&username=alice&password=alice-password&x=1&x=2";
    let rt = field(&ok_json(&server.send_raw(Method::POST, "/token", &headers, body).await), "refresh_token");
    let body = form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", &rt),
        ("x", "1"),
        ("x", "2"),
        ("code", "a"),
        ("code", "b"),
    ]);
    let rt = field(&ok_json(&server.send_raw(Method::POST, "/token", &headers, body).await), "refresh_token");
    // /introspect and /revoke alike.
    let body = form(&[("token", &at), ("audience", "a"), ("audience", "b")]);
    let r = server.send_raw(Method::POST, "/introspect", &headers, body).await;
    assert_eq!(ok_json(&r)["active"], true);
    let body = form(&[("token", &rt), ("x", "1"), ("x", "2")]);
    assert_eq!(server.send_raw(Method::POST, "/revoke", &headers, body).await.status, 200);
    server.refresh_refused(DEMO, &rt).await;
}

#[tokio::test]
async fn rfc6749_3_2_repeated_defined_parameters_are_refused_at_every_endpoint() {
    let server = Setup::demo().start().await;
    let basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let headers = [FORM, ("authorization", basic.as_str())];
    for (endpoint, body) in [
        ("/token", "grant_type=client_credentials&scope=read&scope=read"),
        ("/token", "grant_type=password&username=alice&username=alice&password=alice-password"),
        ("/token", "grant_type=client_credentials&client_id=demo-client&client_id=demo-client"),
        ("/revoke", "token=a&token=b"),
        ("/introspect", "token=a&token_type_hint=refresh_token&token_type_hint=access_token"),
    ] {
        let r = server.send_raw(Method::POST, endpoint, &headers, body).await;
        let error = assert_error(&r, 400, "invalid_request");
        assert!(field(&error, "error_description").contains("repeated"), "{endpoint} {body}: {error}");
    }
}

#[tokio::test]
async fn rfc6749_5_2_grant_type_not_registered_for_client_is_unauthorized_client() {
    let server = Setup::demo().start().await;
    // public-client may use authorization_code and refresh_token only.
    let r = server
        .token(PUBLIC, &[("grant_type", "password"), ("username", "alice"), ("password", "alice-password")])
        .await;
    assert_error(&r, 400, "unauthorized_client");
    let r = server.token(PUBLIC, &[("grant_type", "client_credentials")]).await;
    assert_error(&r, 400, "unauthorized_client");
    // other-client is not registered for client_credentials.
    let r = server.token(OTHER, &[("grant_type", "client_credentials")]).await;
    assert_error(&r, 400, "unauthorized_client");
}

#[tokio::test]
async fn rfc6749_5_2_scope_beyond_the_clients_registration_is_invalid_scope() {
    let server = Setup::demo().start().await;
    // demo-client is registered for "read write".
    let r = server.token(DEMO, &[("grant_type", "client_credentials"), ("scope", "read admin")]).await;
    assert_error(&r, 400, "invalid_scope");
    let r = server
        .token(
            DEMO,
            &[("grant_type", "password"), ("username", "alice"), ("password", "alice-password"), ("scope", "admin")],
        )
        .await;
    assert_error(&r, 400, "invalid_scope");
}

#[tokio::test]
async fn rfc6749_3_3_malformed_scope_is_invalid_scope() {
    let server = Setup::demo().start().await;
    for scope in ["read  write", " read", "read\"", "read\\"] {
        let r = server.token(DEMO, &[("grant_type", "client_credentials"), ("scope", scope)]).await;
        assert_error(&r, 400, "invalid_scope");
    }
}

#[tokio::test]
async fn rfc6749_3_2_get_on_token_endpoint_is_405_with_allow_post() {
    let server = Setup::demo().start().await;
    for method in [Method::GET, Method::PUT, Method::DELETE] {
        let r = server.send_raw(method.clone(), "/token?grant_type=client_credentials", &[], "").await;
        assert_error(&r, 405, "invalid_request");
        assert_eq!(r.header("allow"), Some("POST"), "{method}");
    }
}

#[tokio::test]
async fn rfc6749_3_2_wrong_content_type_is_invalid_request() {
    let server = Setup::demo().start().await;
    let basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let auth = ("authorization", basic.as_str());
    let json = r#"{"grant_type":"client_credentials"}"#;
    let r = server.send_raw(Method::POST, "/token", &[auth, ("content-type", "application/json")], json).await;
    assert_error(&r, 400, "invalid_request");
    let r = server.send_raw(Method::POST, "/token", &[auth], "grant_type=client_credentials").await;
    assert_error(&r, 400, "invalid_request");
    let r = server
        .send_raw(
            Method::POST,
            "/token",
            &[auth, ("content-type", "multipart/form-data")],
            "grant_type=client_credentials",
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    // Parameters of the media type are fine.
    let ct = ("content-type", "application/x-www-form-urlencoded; charset=UTF-8");
    let r = server.send_raw(Method::POST, "/token", &[auth, ct], "grant_type=client_credentials").await;
    ok_json(&r);
}

#[tokio::test]
async fn oversized_token_request_body_is_413() {
    let server = Setup::demo().start().await;
    let body = format!("grant_type=client_credentials&pad={}", "a".repeat(20 * 1024));
    let r = server.send_raw(Method::POST, "/token", &[FORM], body).await;
    assert_error(&r, 413, "invalid_request");
}

#[tokio::test]
async fn rfc6749_5_2_every_error_is_json_with_error_and_no_store() {
    let server = Setup::demo().start().await;
    let cases: Vec<(u16, &str, figure2_http::ReceivedResponse)> = vec![
        (400, "invalid_request", server.token(DEMO, &[]).await),
        (401, "invalid_client", server.token(Auth::Anonymous, &[("grant_type", "client_credentials")]).await),
        (400, "invalid_grant", server.refresh(DEMO, "no-such-token", None).await),
        (400, "unauthorized_client", server.token(OTHER, &[("grant_type", "client_credentials")]).await),
        (400, "unsupported_grant_type", server.token(DEMO, &[("grant_type", "magic")]).await),
        (400, "invalid_scope", server.token(DEMO, &[("grant_type", "client_credentials"), ("scope", "x")]).await),
        (405, "invalid_request", server.get("/token").await),
    ];
    for (status, code, r) in &cases {
        let body = assert_error(r, *status, code);
        assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    }
}
