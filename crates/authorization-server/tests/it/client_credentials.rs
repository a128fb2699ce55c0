//! The client credentials grant (RFC 6749 §4.4).

use crate::support::*;

#[tokio::test]
async fn rfc6749_4_4_3_client_credentials_issues_no_refresh_token_and_sub_is_the_client() {
    let server = Setup::demo().start().await;
    let body = ok_json(&server.token(DEMO, &[("grant_type", "client_credentials")]).await);
    // §4.4.3: "A refresh token SHOULD NOT be included."
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write");
    let (_, claims) = verify_with_jwks(&field(&body, "access_token"), &server.jwks().await).unwrap();
    // RFC 9068 §2.2: with no resource owner, sub is the client's own identifier.
    assert_eq!(claims["sub"], "demo-client");
    assert_eq!(claims["client_id"], "demo-client");
}

#[tokio::test]
async fn rfc6749_4_4_2_client_credentials_with_narrower_scope_gets_that_scope() {
    let server = Setup::demo().start().await;
    let body = ok_json(&server.token(DEMO, &[("grant_type", "client_credentials"), ("scope", "write")]).await);
    assert_eq!(body["scope"], "write");
    let (_, claims) = verify_with_jwks(&field(&body, "access_token"), &server.jwks().await).unwrap();
    assert_eq!(claims["scope"], "write");
}
