//! The checker against a deliberately lenient authorization server and resource server
//! (the kinds of deviation issue 16 found in real servers): each new check fails on it,
//! with the key word of the strongest requirement broken. Figure2's own roles pass the
//! same checks (`figure2-runner`'s `the_server_catalogue_passes_in_process`).

use figure2_conformance::server::{Target, TimeSource, run_check};
use figure2_conformance::{CatalogueFile, Keyword, Verdict, server_catalogue};
use figure2_http::{HttpClient, HttpResponse, Incoming, Limits};
use std::sync::{Arc, Mutex};

/// Accepts what a lenient server accepts: JSON bodies, bytes that are not UTF-8 (decoded
/// lossily), a body `client_id` that contradicts Basic; answers an empty body
/// `unsupported_grant_type`; refuses the admin resource with 403 and no `WWW-Authenticate`.
struct Lenient {
    issuer: String,
    live: Mutex<Vec<String>>,
    /// The access tokens issued (`/resource/strict` serves these only).
    issued: Mutex<Vec<String>>,
}

impl figure2_http::Handler for Lenient {
    async fn handle(self: Arc<Self>, request: http::Request<Incoming>) -> HttpResponse {
        let (parts, body) = request.into_parts();
        let body = figure2_http::read_body(body, 64 * 1024).await.unwrap_or_default();
        let path = parts.uri.path().to_owned();
        if path == "/.well-known/oauth-authorization-server" {
            let m = serde_json::json!({"issuer": self.issuer, "token_endpoint": format!("{}/token", self.issuer),
                "response_types_supported": ["code"]});
            return figure2_http::json(200, &m, &[]);
        }
        let authorization = parts.headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        if path == "/token" {
            let basic =
                figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
            if authorization != basic {
                return figure2_http::json(
                    401,
                    &serde_json::json!({"error": "invalid_client"}),
                    &[("www-authenticate", "Basic")],
                );
            }
            let is_json =
                parts.headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            let params: Vec<(String, String)> = if is_json {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            } else {
                serde_urlencoded::from_str(&String::from_utf8_lossy(&body)).unwrap_or_default()
            };
            let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
            let mut live = self.live.lock().unwrap();
            let ok = match get("grant_type").as_deref() {
                Some("password") => true,
                Some("refresh_token") => get("refresh_token").is_some_and(|rt| live.contains(&rt)),
                _ => return figure2_http::json(400, &serde_json::json!({"error": "unsupported_grant_type"}), &[]),
            };
            if !ok {
                return figure2_http::json(400, &serde_json::json!({"error": "invalid_grant"}), &[]);
            }
            let n = live.len();
            let (at, rt) = (format!("at-{n}-{}", get("scope").unwrap_or_default()), format!("rt-{n}"));
            live.push(rt.clone());
            self.issued.lock().unwrap().push(at.clone());
            let scope = get("scope").filter(|s| s == "read" || s == "write").unwrap_or_else(|| "read write".into());
            let answer = serde_json::json!({"access_token": at, "token_type": "Bearer", "expires_in": 60,
                "refresh_token": rt, "scope": scope});
            return figure2_http::json(200, &answer, &figure2_protocol::token_response::NO_STORE_HEADERS);
        }
        match path.as_str() {
            "/resource/read" if authorization.starts_with("Bearer at-") => {
                figure2_http::json(200, &serde_json::json!({"resource": "read"}), &[])
            }
            // RFC 6750 §3 wants WWW-Authenticate here; this server leaves it out.
            "/resource/admin" if authorization.starts_with("Bearer at-") => {
                figure2_http::json(403, &serde_json::json!({"error": "insufficient_scope"}), &[])
            }
            // A bad token gets 403 (RFC 6750 §3.1: SHOULD be 401) with its challenge (§3).
            "/resource/strict" if authorization.starts_with("Bearer ") => {
                let token = &authorization["Bearer ".len()..];
                if self.issued.lock().unwrap().iter().any(|t| t == token) {
                    figure2_http::json(200, &serde_json::json!({"resource": "strict"}), &[])
                } else {
                    figure2_http::text(
                        403,
                        "text/plain",
                        "",
                        &[("www-authenticate", r#"Bearer error="invalid_token""#)],
                    )
                }
            }
            _ => figure2_http::text(401, "text/plain", "", &[("www-authenticate", "Bearer")]),
        }
    }
}

#[tokio::test]
async fn a_lenient_server_fails_each_new_check_with_its_strongest_key_word() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let server =
        Arc::new(Lenient { issuer: issuer.clone(), live: Mutex::new(Vec::new()), issued: Mutex::new(Vec::new()) });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(figure2_http::serve(listener, server, Limits::default(), async {
        let _ = stopped.await;
    }));
    let http = HttpClient::new();
    let target = Target {
        metadata: figure2_http::discover(&http, &issuer).await.unwrap(),
        issuer: issuer.clone(),
        client_id: "demo-client".into(),
        client_secret: "demo-secret".into(),
        other_client: None,
        user: Some(("alice".into(), "alice-password".into())),
        sources: Default::default(),
        scope: Some("read write".into()),
        resource: Some(format!("{issuer}/resource/read")),
        scope_limited_resource: Some(format!("{issuer}/resource/admin")),
        time: TimeSource::Real { max_wait: 0 },
        metadata_url: None,
        forge: None,
        dpop_bound_refresh_tokens: false,
        http,
    };
    let expected = [
        // Serving or mis-coding these breaks no key word (RFC 6749 §5.2 names the error;
        // the MUST NOTs of §2.3 and §3.2 bind the client).
        ("AS-3.2.1-conflicting-client-id", Keyword::Descriptive),
        ("AS-B-non-utf8-body", Keyword::Descriptive),
        ("AS-B-percent-encoded-non-utf8", Keyword::Descriptive),
        ("AS-3.2-json-body", Keyword::Descriptive),
        ("AS-5.2-empty-body", Keyword::Descriptive),
        // The 403 is right (SHOULD), the missing challenge is not (MUST): MUST is reported.
        ("RS-6750-3.1-insufficient-scope", Keyword::Must),
    ];
    for (id, keyword) in expected {
        let file =
            if id.starts_with("RS-") { CatalogueFile::ResourceServer } else { CatalogueFile::AuthorizationServer };
        let catalogue = server_catalogue(file).unwrap();
        let check = catalogue.checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("{id} is in the catalogue"));
        let result = run_check(catalogue.role, check, &target).await;
        assert_eq!((result.verdict.clone(), result.keyword), (Verdict::Fail, keyword), "{id}: {}", result.reason);
    }
    // Serving a request that carries the token two ways breaks §3.1's SHOULD only (§2's
    // MUST NOT binds the client); opaque tokens are tampered with too (this server takes
    // any `at-` token, so the challenge check runs and fails instead of "not a JWT").
    for (id, keyword) in [("RS-6750-2-one-method", Keyword::Should), ("RS-6750-3-challenge-syntax", Keyword::Must)] {
        let catalogue = server_catalogue(CatalogueFile::ResourceServer).unwrap();
        let check = catalogue.checks.iter().find(|c| c.id == id).unwrap();
        let result = run_check(catalogue.role, check, &target).await;
        assert_eq!((result.verdict.clone(), result.keyword), (Verdict::Fail, keyword), "{id}: {}", result.reason);
        assert!(!result.reason.contains("not a JWT"), "{id}: {}", result.reason);
    }
    // No jwks_uri in the metadata (OPTIONAL, RFC 8414 §2): the checks that read it skip.
    let catalogue = server_catalogue(CatalogueFile::AuthorizationServer).unwrap();
    let check = catalogue.checks.iter().find(|c| c.id == "AS-9110-9.3.2-head").unwrap();
    let result = run_check(catalogue.role, check, &target).await;
    assert_eq!(result.verdict, Verdict::Skip, "{}", result.reason);
    assert!(result.reason.contains("no jwks_uri"), "{}", result.reason);
    // A bare 401 with a Bearer challenge to a request without a token is right.
    let catalogue = server_catalogue(CatalogueFile::ResourceServer).unwrap();
    let check = catalogue.checks.iter().find(|c| c.id == "RS-6750-3-no-token").unwrap();
    assert_eq!(run_check(catalogue.role, check, &target).await.verdict, Verdict::Pass);
    // A bad token refused with 403 and its challenge: the challenge (RFC 6750 §3's MUST)
    // is there, only §3.1's SHOULD 401 is broken.
    let strict = Target { resource: Some(format!("{issuer}/resource/strict")), ..target };
    let check = catalogue.checks.iter().find(|c| c.id == "RS-6750-3-challenge-syntax").unwrap();
    let result = run_check(catalogue.role, check, &strict).await;
    assert_eq!((result.verdict.clone(), result.keyword), (Verdict::Fail, Keyword::Should), "{}", result.reason);
    assert!(result.reason.contains("[SHOULD, RFC 6750 §3.1]"), "{}", result.reason);
    let _ = stop.send(());
    let _ = served.await;
}
