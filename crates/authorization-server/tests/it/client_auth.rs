//! Client authentication at the token endpoint (RFC 6749 §2.3.1, §3.2.1, §5.2).

use crate::support::*;

const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

#[tokio::test]
async fn rfc6749_2_3_1_client_secret_basic_authenticates() {
    let server = Setup::demo().start().await;
    let body = ok_json(&server.token(DEMO, &CC).await);
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn rfc6749_2_3_1_client_secret_post_authenticates() {
    let server = Setup::demo().start().await;
    let body = ok_json(&server.token(Auth::Post("demo-client", "demo-secret"), &CC).await);
    let (_, claims) = verify_with_jwks(&field(&body, "access_token"), &server.jwks().await).unwrap();
    assert_eq!(claims["client_id"], "demo-client");
}

#[tokio::test]
async fn rfc6749_5_2_wrong_secret_is_401_invalid_client_with_basic_challenge() {
    let server = Setup::demo().start().await;
    for auth in [Auth::Basic("demo-client", "wrong-secret"), Auth::Post("demo-client", "wrong-secret")] {
        let r = server.token(auth, &CC).await;
        assert_error(&r, 401, "invalid_client");
        // §5.2: 401 with a WWW-Authenticate header naming the scheme.
        let challenge = r.header("www-authenticate").expect("WWW-Authenticate on 401");
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }
}

#[tokio::test]
async fn rfc6749_5_2_unknown_client_is_401_invalid_client() {
    let server = Setup::demo().start().await;
    for auth in [Auth::Basic("nobody", "demo-secret"), Auth::Post("nobody", "x"), Auth::Public("nobody")] {
        let r = server.token(auth, &CC).await;
        assert_error(&r, 401, "invalid_client");
        assert!(r.header("www-authenticate").is_some_and(|c| c.starts_with("Basic realm=")));
    }
}

#[tokio::test]
async fn rfc6749_2_3_1_basic_plus_client_secret_in_body_is_invalid_request() {
    let server = Setup::demo().start().await;
    // "The client MUST NOT use more than one authentication method in each request."
    let r = server
        .token(
            DEMO,
            &[("grant_type", "client_credentials"), ("client_id", "demo-client"), ("client_secret", "demo-secret")],
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    // A body client_id naming another client than the header is malformed too.
    let r = server.token(DEMO, &[("grant_type", "client_credentials"), ("client_id", "other-client")]).await;
    assert_error(&r, 400, "invalid_request");
}

#[tokio::test]
async fn rfc6749_2_1_public_client_presenting_a_secret_is_invalid_client() {
    let server = Setup::demo().start().await;
    let params = [("grant_type", "refresh_token"), ("refresh_token", "whatever")];
    for auth in [Auth::Basic("public-client", "guess"), Auth::Post("public-client", "guess")] {
        assert_error(&server.token(auth, &params).await, 401, "invalid_client");
    }
    // Naming itself only, the public client is identified and gets to the grant check.
    assert_error(&server.token(PUBLIC, &params).await, 400, "invalid_grant");
}

#[tokio::test]
async fn rfc6749_3_2_1_confidential_client_without_authentication_is_invalid_client() {
    let server = Setup::demo().start().await;
    // client_id only, as a public client would send it.
    let r = server.token(Auth::Public("demo-client"), &CC).await;
    assert_error(&r, 401, "invalid_client");
    // Nothing at all.
    let r = server.token(Auth::Anonymous, &CC).await;
    assert_error(&r, 401, "invalid_client");
    // A secret without a client_id.
    let r =
        server.token(Auth::Anonymous, &[("grant_type", "client_credentials"), ("client_secret", "demo-secret")]).await;
    assert!(r.status == 400 || r.status == 401, "{}", r.status);
    assert!(json_body(&r)["error"].is_string());
}

#[tokio::test]
async fn rfc6749_3_2_1_client_is_authenticated_before_the_grant_is_looked_at() {
    let server = Setup::demo().start().await;
    // A wrong secret with a broken grant is still invalid_client, not a grant error.
    let r = server
        .token(Auth::Basic("demo-client", "nope"), &[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .await;
    assert_error(&r, 401, "invalid_client");
}
