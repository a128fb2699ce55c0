//! Logs carry fingerprints, never secrets (RFC 6749 §10.3, §10.4: access and refresh
//! tokens, codes and credentials must stay confidential, and logs are read by people
//! and systems that are not the client).
//!
//! Captures everything the authorization server traces, at TRACE level, during a
//! password grant, a refresh, refused refreshes (reuse, unknown token, wrong secret),
//! the authorization code flow and a replayed code, introspection and revocation, and
//! asserts that no token, code, secret or password appears in it.
//!
//! A test binary of its own: tracing caches each call site's interest process-wide, and a
//! call site first reached by another test's thread (with no subscriber) raced with this
//! test's thread-local subscriber.

#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::secret::fingerprint;
use http::Method;
use std::sync::{Arc, Mutex};
use support::*;

/// A `MakeWriter` that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[test]
fn rfc6749_10_logs_carry_fingerprints_never_tokens_secrets_or_passwords() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(captured.clone())
        .finish();
    // The subscriber is this thread's default; a current-thread runtime keeps the
    // server's tasks on this thread, so everything the server logs is captured.
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let secrets = runtime.block_on(exercise_the_server());

    let logs = captured.text();
    assert!(logs.contains("refresh granted") && logs.contains("refresh refused"), "nothing captured:\n{logs}");
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is too short to search for");
        assert!(!logs.contains(secret.as_str()), "the logs contain {what}:\n{logs}");
    }
    // What the logs do carry instead: fingerprints.
    let rt0 = &secrets.iter().find(|(w, _)| *w == "refresh token from the grant").expect("rt0").1;
    assert!(logs.contains(&fingerprint(rt0)), "no fingerprint of the refresh token in:\n{logs}");
}

/// Drives every endpoint that sees a secret; returns the secrets that went over the wire.
async fn exercise_the_server() -> Vec<(&'static str, String)> {
    let server = Setup::demo().start().await;
    let mut secrets: Vec<(&'static str, String)> = vec![
        ("alice's password", "alice-password".into()),
        ("bob's password", "bob-password".into()),
        ("demo-client's secret", "demo-secret".into()),
        ("other-client's secret", "other-secret".into()),
    ];
    let basic = ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    secrets.push(("demo-client's Basic credentials", basic.trim_start_matches("Basic ").to_owned()));

    // Steps A → B, G → H, and a replay of the rotated token (reuse: refused, family revoked).
    let b = server.password_grant(DEMO, Some("read write")).await;
    let (at0, rt0) = (field(&b, "access_token"), field(&b, "refresh_token"));
    let h = server.refresh_ok(DEMO, &rt0, None).await;
    let (at1, rt1) = (field(&h, "access_token"), field(&h, "refresh_token"));
    server.refresh_refused(DEMO, &rt0).await;
    server.refresh_refused(DEMO, &rt1).await;

    // Refused requests carrying secrets: an unknown refresh token, a wrong password, a
    // wrong client secret (in the body), a wrong secret in a Basic header.
    let unknown = "unknown-refresh-token-7f3a9c2e51";
    server.refresh_refused(DEMO, unknown).await;
    let wrong_password = "wrong-password-4b1d";
    let r =
        server.token(DEMO, &[("grant_type", "password"), ("username", "alice"), ("password", wrong_password)]).await;
    assert_error(&r, 400, "invalid_grant");
    let wrong_secret = "wrong-client-secret-93ce";
    let r = server.refresh(Auth::Post("demo-client", wrong_secret), &rt1, None).await;
    assert_error(&r, 401, "invalid_client");
    let r = server.refresh(Auth::Basic("other-client", wrong_secret), &rt1, None).await;
    assert_error(&r, 401, "invalid_client");

    // The code flow: the resource owner logs in (a wrong password first), the code is
    // exchanged, then replayed.
    let query = form(&[("response_type", "code"), ("client_id", "demo-client"), ("state", "s")]);
    let login = |password: &str| {
        form(&[("request", &query), ("username", "bob"), ("password", password), ("decision", "approve")])
    };
    let r = server.send_raw(Method::POST, "/authorize", &[FORM], login(wrong_password)).await;
    assert_eq!(r.status, 401);
    let r = server.send_raw(Method::POST, "/authorize", &[FORM], login("bob-password")).await;
    assert_eq!(r.status, 303, "{}", r.body_text());
    let code = query_params(r.header("location").expect("Location")).get("code").expect("code").to_owned();
    let exchange = [("grant_type", "authorization_code"), ("code", code.as_str())];
    let b2 = ok_json(&server.token(Auth::Post("demo-client", "demo-secret"), &exchange).await);
    assert_error(&server.token(DEMO, &exchange).await, 400, "invalid_grant");
    let (at2, rt2) = (field(&b2, "access_token"), field(&b2, "refresh_token"));

    // RFC 7662 and RFC 7009 with tokens of every kind.
    for token in [&at2, &rt2, &at0, unknown] {
        server.introspect(OTHER, token).await;
    }
    assert_eq!(server.revoke(DEMO, &rt2, Some("refresh_token")).await.status, 200);
    assert_eq!(server.revoke(DEMO, &at2, None).await.status, 400);

    for (what, token) in [
        ("access token from the grant", at0),
        ("access token from the refresh", at1),
        ("access token from the code", at2),
    ] {
        // The whole JWT, and its signature (its header part is the same in every token).
        let signature = token.rsplit('.').next().expect("JWS signature").to_owned();
        secrets.push((what, token));
        secrets.push((what, signature));
    }
    secrets.extend([
        ("refresh token from the grant", rt0),
        ("refresh token from the refresh", rt1),
        ("refresh token from the code", rt2),
        ("authorization code", code),
        ("an unknown refresh token", unknown.to_owned()),
        ("a wrong password", wrong_password.to_owned()),
        ("a wrong client secret", wrong_secret.to_owned()),
    ]);
    server.stop().await;
    secrets
}
