//! Figure 2 steps C → D (served) and E → F (invalid_token once the token expired).

use crate::support::{Harness, NowSecs, challenge, json_body};
use bytes::Bytes;
use http::Method;

#[tokio::test]
async fn step_c_d_valid_token_is_served() {
    let h = Harness::start().await;
    let r = h.get("/resource/read", Some(&h.token())).await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("www-authenticate").is_none());
    let body = json_body(&r);
    assert_eq!(body["resource"], "read");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["client_id"], "demo-client");
    assert_eq!(body["scope"], "read write");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    // Validation is local: discovery fetched the JWKS once and nothing since.
    assert_eq!(h.jwks_fetches().await, 1);
}

#[tokio::test]
async fn step_d_write_echoes_the_body() {
    let h = Harness::start().await;
    let auth = format!("Bearer {}", h.token());
    let r = h
        .send(Method::POST, "/resource/write", &[("authorization", &auth)], Some(Bytes::from_static(b"hello figure 2")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let body = json_body(&r);
    assert_eq!(body["resource"], "write");
    assert_eq!(body["echo"], "hello figure 2");

    let too_big = Bytes::from(vec![b'a'; 16 * 1024 + 1]);
    let r = h.send(Method::POST, "/resource/write", &[("authorization", &auth)], Some(too_big)).await;
    assert_eq!(r.status, 413);
    let exactly = Bytes::from(vec![b'a'; 16 * 1024]);
    let r = h.send(Method::POST, "/resource/write", &[("authorization", &auth)], Some(exactly)).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn step_e_f_expired_token_is_invalid_token() {
    let h = Harness::start().await;
    let token = h.token(); // exp = now + 300
    h.clock.advance(299);
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 200);
    h.clock.advance(1);
    // RFC 6749 §7.2 / RFC 6750 §3: step F.
    let r = h.get("/resource/read", Some(&token)).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        challenge(&r),
        r#"Bearer realm="figure2", error="invalid_token", error_description="The access token expired""#
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = json_body(&r);
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["error_description"], "The access token expired");
}

#[tokio::test]
async fn leeway_is_honoured_on_exp_nbf_and_iat() {
    let h = Harness::start_with(|c| c.leeway = 30).await;
    let token = h.token();
    h.clock.advance(329);
    assert_eq!(h.get("/resource/read", Some(&token)).await.status, 200, "within exp + leeway");
    h.clock.advance(1);
    let r = h.get("/resource/read", Some(&token)).await;
    assert_eq!(r.status, 401, "at exp + leeway");

    let now = h.clock.now_secs();
    let mut early = h.claims();
    early.nbf = Some((now + 30).into());
    early.iat = (now + 30).into();
    assert_eq!(h.get("/resource/read", Some(&h.signer.sign(&early))).await.status, 200, "skew within leeway");
    early.nbf = Some((now + 31).into());
    let r = h.get("/resource/read", Some(&h.signer.sign(&early))).await;
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("not yet valid"), "{}", challenge(&r));
}

#[tokio::test]
async fn no_leeway_by_default_for_future_tokens() {
    let h = Harness::start().await;
    let now = h.clock.now_secs();
    let mut c = h.claims();
    c.nbf = Some((now + 1).into());
    assert_eq!(h.get("/resource/read", Some(&h.signer.sign(&c))).await.status, 401);
    let mut c = h.claims();
    c.iat = (now + 1).into();
    let r = h.get("/resource/read", Some(&h.signer.sign(&c))).await;
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains("issued in the future"));
}

#[tokio::test]
async fn insufficient_scope_is_403_with_the_needed_scope() {
    let h = Harness::start().await;
    let r = h.get("/resource/admin", Some(&h.token())).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        challenge(&r),
        r#"Bearer realm="figure2", scope="admin", error="insufficient_scope", error_description="The access token lacks the required scope""#
    );
    let body = json_body(&r);
    assert_eq!(body["error"], "insufficient_scope");
    assert_eq!(body["scope"], "admin");

    let mut read_only = h.claims();
    read_only.scope = Some("read".into());
    let auth = format!("Bearer {}", h.signer.sign(&read_only));
    let r = h.send(Method::POST, "/resource/write", &[("authorization", &auth)], Some(Bytes::from_static(b"x"))).await;
    assert_eq!(r.status, 403);
    assert!(challenge(&r).contains(r#"scope="write""#));

    let mut no_scope = h.claims();
    no_scope.scope = None;
    assert_eq!(h.get("/resource/read", Some(&h.signer.sign(&no_scope))).await.status, 403);

    let mut admin = h.claims();
    admin.scope = Some("admin".into());
    assert_eq!(h.get("/resource/admin", Some(&h.signer.sign(&admin))).await.status, 200);
}

#[tokio::test]
async fn audience_may_be_a_list() {
    let h = Harness::start().await;
    let mut c = h.claims();
    c.aud = figure2_protocol::access_token::Audience::Many(vec!["other".into(), crate::support::AUDIENCE.into()]);
    assert_eq!(h.get("/resource/read", Some(&h.signer.sign(&c))).await.status, 200);
}

#[tokio::test]
async fn realm_is_configurable() {
    let h = Harness::start_with(|c| c.realm = "my \"realm\"".into()).await;
    let r = h.get("/resource/read", None).await;
    assert_eq!(challenge(&r), r#"Bearer realm="my \"realm\"""#);
}

#[tokio::test]
async fn serve_returns_after_shutdown() {
    let h = Harness::start().await;
    assert_eq!(h.get("/health", None).await.status, 200);
    h.shutdown().await.expect("clean shutdown");
}

#[tokio::test]
async fn validate_access_token_is_usable_as_a_library() {
    let h = Harness::start().await;
    let claims = h.server.validate_access_token(&h.token()).await.expect("valid");
    assert_eq!((claims.sub.as_str(), claims.client_id.as_str()), ("alice", "demo-client"));
    h.clock.advance(300);
    let err = h.server.validate_access_token(&h.signer.sign(&claims)).await.unwrap_err();
    assert_eq!(err, figure2_protocol::access_token::AccessTokenRejection::Expired.into());
    assert_eq!(h.server.config().audience, crate::support::AUDIENCE);
}
