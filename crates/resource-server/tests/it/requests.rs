//! RFC 6750 §2 and §3.1: how the token is presented, and the answers to requests that
//! carry no token or a malformed one. Also routing, and garbage that must never be a 5xx.

use crate::support::{Harness, Xorshift, challenge, json_body};
use bytes::Bytes;
use http::Method;

const BARE: &str = r#"Bearer realm="figure2""#;

fn assert_invalid_request(r: &figure2_http::ReceivedResponse) {
    assert_eq!(r.status, 400, "{}", r.body_text());
    let c = challenge(r);
    assert!(c.starts_with(r#"Bearer realm="figure2", error="invalid_request", error_description=""#), "{c}");
    assert_eq!(json_body(r)["error"], "invalid_request");
}

#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    // RFC 6750 §3.1: no error code when the request carries no authentication.
    let h = Harness::start().await;
    for path in ["/resource/read", "/resource/admin"] {
        let r = h.get(path, None).await;
        assert_eq!(r.status, 401);
        assert_eq!(challenge(&r), BARE);
        assert!(r.body.is_empty());
    }
    let r = h.send(Method::POST, "/resource/write", &[], Some(Bytes::from_static(b"x"))).await;
    assert_eq!((r.status, challenge(&r)), (401, BARE));
    // Another scheme is no Bearer token either.
    let r = h.get_with_authorization("/resource/read", "Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW").await;
    assert_eq!((r.status, challenge(&r)), (401, BARE));
}

#[tokio::test]
async fn malformed_bearer_credentials_are_invalid_request() {
    let h = Harness::start().await;
    for value in ["Bearer", "Bearer ", "Bearer a b", "Bearer a=b", "Bearer {json}", "Bearer é"] {
        let r = h.get_with_authorization("/resource/read", value).await;
        assert_invalid_request(&r);
    }
}

#[tokio::test]
async fn scheme_is_case_insensitive() {
    let h = Harness::start().await;
    let r = h.get_with_authorization("/resource/read", &format!("bEaReR {}", h.token())).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn header_and_query_token_is_more_than_one_method() {
    let h = Harness::start().await;
    let token = h.token();
    let auth = format!("Bearer {token}");
    let r =
        h.send(Method::GET, &format!("/resource/read?access_token={token}"), &[("authorization", &auth)], None).await;
    assert_invalid_request(&r);
    assert!(challenge(&r).contains("more than one method"));
    // A query token alone is not supported (RFC 9700 §2.4): no token.
    let r = h.send(Method::GET, &format!("/resource/read?access_token={token}"), &[], None).await;
    assert_eq!((r.status, challenge(&r)), (401, BARE));
    // Other query parameters are fine.
    let r = h.send(Method::GET, "/resource/read?page=2", &[("authorization", &auth)], None).await;
    assert_eq!(r.status, 200);
    // RFC 6750 §2.2: a form-body token beside the header.
    let form = [("authorization", auth.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let body = Bytes::from(format!("access_token={token}"));
    let r = h.send(Method::POST, "/resource/write", &form, Some(body)).await;
    assert_invalid_request(&r);
}

#[tokio::test]
async fn several_authorization_headers_are_invalid_request() {
    let h = Harness::start().await;
    let auth = format!("Bearer {}", h.token());
    let r = h.send(Method::GET, "/resource/read", &[("authorization", &auth), ("authorization", &auth)], None).await;
    assert_invalid_request(&r);
}

#[tokio::test]
async fn routing_health_404_405() {
    let h = Harness::start().await;
    let r = h.get("/health", None).await;
    assert_eq!((r.status, r.body_text().as_str()), (200, "ok"));
    for path in ["/", "/resource", "/resource/read/", "/resource/delete", "/.well-known/oauth-authorization-server"] {
        assert_eq!(h.get(path, Some(&h.token())).await.status, 404, "{path}");
    }
    // RFC 9110 §15.5.6: every 405 carries Allow, with HEAD wherever GET is (§9.3.2); on
    // a protected resource it keeps the bare Bearer challenge.
    let r = h.send(Method::POST, "/resource/read", &[], None).await;
    assert_eq!((r.status, r.header("allow"), challenge(&r)), (405, Some("GET, HEAD"), BARE));
    let r = h.get("/resource/write", Some(&h.token())).await;
    assert_eq!((r.status, r.header("allow"), challenge(&r)), (405, Some("POST"), BARE));
    let r = h.send(Method::HEAD, "/resource/write", &[], None).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = h.send(Method::DELETE, "/resource/admin", &[], None).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = h.send(Method::PUT, "/health", &[], None).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert!(r.header("www-authenticate").is_none(), "/health needs no token");
}

/// RFC 9110 §9.3.2: HEAD is GET without the content, on every GET route (the issue's
/// `curl -sI` inputs): same status, same headers, the challenge kept.
#[tokio::test]
async fn rfc9110_9_3_2_head_on_every_get_route() {
    let h = Harness::start().await;
    let token = h.token();
    let auth = format!("Bearer {token}");
    let head = h.send(Method::HEAD, "/health", &[], None).await;
    let get = h.get("/health", None).await;
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), get.header("content-length"));
    for path in ["/resource/read", "/resource/admin"] {
        let head = h.send(Method::HEAD, path, &[("authorization", &auth)], None).await;
        let get = h.get(path, Some(&token)).await;
        assert_eq!((head.status, head.body.len()), (get.status, 0), "{path}");
        assert_eq!(head.header("www-authenticate"), get.header("www-authenticate"), "{path}");
        assert_eq!(head.header("content-length"), get.header("content-length"), "{path}");
        // Without a token: 401 with the bare challenge, as for GET.
        let r = h.send(Method::HEAD, path, &[], None).await;
        assert_eq!((r.status, challenge(&r), r.body.len()), (401, BARE, 0), "{path}");
    }
    // An expired token: 401 invalid_token, the challenge in the head.
    h.clock.advance(300);
    let r = h.send(Method::HEAD, "/resource/read", &[("authorization", &auth)], None).await;
    assert_eq!(r.status, 401);
    assert!(challenge(&r).contains(r#"error="invalid_token""#), "{}", challenge(&r));
}

/// Random bytes (all but CR and LF) as the Authorization value, sent on a raw socket.
#[tokio::test]
async fn garbage_authorization_bytes_never_give_a_5xx() {
    let h = Harness::start().await;
    let mut rng = Xorshift(0x9E37_79B9_7F4A_7C15);
    for i in 0..300 {
        let len = 1 + rng.below(if i % 10 == 0 { 9000 } else { 200 }) as usize;
        // Three byte classes: anything, no control bytes (reaches the handler as
        // obs-text), and visible ASCII (reaches the Bearer parser).
        let (low, span) = match i % 3 {
            0 => (0u64, 256u64),
            1 => (0x20, 0xE0),
            _ => (0x21, 0x5E),
        };
        let mut value: Vec<u8> = (0..len)
            .map(|_| (low + rng.below(span)) as u8)
            .filter(|b| *b != b'\r' && *b != b'\n' && *b != 0x7F)
            .collect();
        if i % 2 == 0 {
            let mut prefixed = b"Bearer ".to_vec();
            prefixed.append(&mut value);
            value = prefixed;
        }
        let mut request = b"GET /resource/read HTTP/1.1\r\nHost: rs\r\nConnection: close\r\nAuthorization: ".to_vec();
        request.extend_from_slice(&value);
        request.extend_from_slice(b"\r\n\r\n");
        let answer = h.raw(&request).await;
        if answer.is_empty() {
            continue; // hyper may close the connection on an unparseable head: not a 5xx
        }
        let status_line = answer.split(|b| *b == b'\r').next().unwrap_or_default();
        let status_line = String::from_utf8_lossy(status_line);
        let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((400..500).contains(&status), "request {i}: {status_line:?}");
    }
    // Still serving.
    assert_eq!(h.get("/resource/read", Some(&h.token())).await.status, 200);
}

/// Random b64token strings, some JWT-shaped, through the whole validation path.
#[tokio::test]
async fn garbage_tokens_are_400_or_401() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=";
    let h = Harness::start().await;
    let valid = h.token();
    let mut rng = Xorshift(42);
    for i in 0..300 {
        let token: String = match i % 3 {
            // Pure noise from the b64token alphabet.
            0 => (0..1 + rng.below(120)).map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize] as char).collect(),
            // A valid token with a few bytes changed.
            1 => {
                let mut bytes = valid.clone().into_bytes();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = ALPHABET[rng.below(64) as usize];
                }
                String::from_utf8(bytes).unwrap()
            }
            // Three random segments.
            _ => (0..3)
                .map(|_| (0..rng.below(40)).map(|_| ALPHABET[rng.below(64) as usize] as char).collect::<String>())
                .collect::<Vec<_>>()
                .join("."),
        };
        let r = h.get_with_authorization("/resource/read", &format!("Bearer {token}")).await;
        if token == valid {
            continue;
        }
        assert!(matches!(r.status, 400 | 401), "{token:?} gave {}", r.status);
    }
}
