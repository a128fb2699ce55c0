use figure2_conformance::client::{self, Ending, Env, Subject};
use figure2_conformance::{self as conformance, ConformanceReport, Role, Verdict};
use figure2_runner::checks;
use figure2_runner::world::{Mutator, World};
use std::collections::BTreeSet;
use std::sync::Arc;

fn ids(report: &ConformanceReport, verdict: Verdict) -> BTreeSet<String> {
    report.results.iter().filter(|r| r.verdict == verdict).map(|r| r.id.clone()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn run_broken(overrides: toml::Table, mutator: Option<Mutator>) -> ConformanceReport {
    let mut config = checks::in_process_config();
    config.extend(overrides);
    let world = World::start(&config).await.expect("world starts");
    world.network.set_mutator(mutator);
    let report = checks::run_against_world(&world).await.expect("catalogue runs");
    world.stop().await;
    report
}

#[tokio::test]
async fn the_server_catalogue_passes_in_process() {
    let report = checks::run_in_process(&checks::in_process_config()).await.unwrap();
    let failed = ids(&report, Verdict::Fail);
    assert!(failed.is_empty(), "{}", report.render(conformance::Format::Table));
    assert!(ids(&report, Verdict::Skip).is_empty(), "in-process nothing is skipped");
    let count = |role| report.results.iter().filter(|r| r.role == role).count();
    assert!(count(Role::AuthorizationServer) >= 30, "at least 30 authorization-server checks");
    assert!(count(Role::ResourceServer) >= 10, "at least 10 resource-server checks");
    // Every id is unique and cites a section.
    let unique: BTreeSet<_> = report.results.iter().map(|r| &r.id).collect();
    assert_eq!(unique.len(), report.results.len());
    assert!(report.results.iter().all(|r| r.section.starts_with("RFC ")));
    assert!(report.render(conformance::Format::Table).ends_with(&format!("{}\n", report.summary_line())));
}

#[tokio::test]
async fn the_client_catalogue_passes_for_the_client_library() {
    let catalogue = conformance::client_catalogue().unwrap();
    assert!(catalogue.checks.len() >= 8);
    let report = ConformanceReport { results: client::run_catalogue(&catalogue, &checks::client_library()).await };
    assert!(ids(&report, Verdict::Fail).is_empty(), "{}", report.render(conformance::Format::Table));
}

#[tokio::test]
async fn a_server_without_no_store_fails_exactly_that_check() {
    let strip: Mutator = Arc::new(|path, answer| {
        if path.ends_with("/token") {
            answer.headers.remove("cache-control");
        }
    });
    let report = run_broken(toml::Table::new(), Some(strip)).await;
    assert_eq!(ids(&report, Verdict::Fail), set(&["AS-5.1-no-store"]));
    assert!(report.failed_absolute(), "a failed MUST fails the run");
}

#[tokio::test]
async fn a_server_that_widens_scope_on_refresh_fails_the_scope_checks() {
    let widen: Mutator = Arc::new(|path, answer| {
        if !path.ends_with("/token") || answer.status != 200 {
            return;
        }
        let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&answer.body) else { return };
        // Only refreshes: a grant's response is left alone.
        if body.get("refresh_token").is_some() && body["scope"].as_str().is_some_and(|s| !s.contains("admin")) {
            let widened = format!("{} admin", body["scope"].as_str().unwrap_or(""));
            body["scope"] = serde_json::json!(widened);
            answer.body = serde_json::to_vec(&body).unwrap().into();
            answer.headers.remove("content-length");
        }
    });
    let report = run_broken(toml::Table::new(), Some(widen)).await;
    let failed = ids(&report, Verdict::Fail);
    assert!(failed.contains("AS-6-narrower-scope"), "{failed:?}");
    assert!(failed.contains("AS-6-omitted-scope-is-original"), "{failed:?}");
    assert!(failed.iter().all(|id| id.starts_with("AS-6-") || id.starts_with("AS-9068-scope")), "{failed:?}");
}

#[tokio::test]
async fn a_server_without_reuse_detection_fails_exactly_that_check() {
    let mut config = toml::Table::new();
    config.insert("revoke_family_on_reuse".into(), false.into());
    let report = run_broken(config, None).await;
    assert_eq!(ids(&report, Verdict::Fail), set(&["AS-9700-reuse-revokes-family"]));
    assert!(!report.failed_absolute(), "reuse detection is a SHOULD");
}

#[tokio::test]
async fn a_server_without_rotation_fails_the_rotation_check_and_skips_the_rest() {
    let mut config = toml::Table::new();
    config.insert("always_issue_new_refresh_token".into(), false.into());
    let report = run_broken(config, None).await;
    assert_eq!(ids(&report, Verdict::Fail), set(&["AS-9700-rotation"]));
    let skipped = ids(&report, Verdict::Skip);
    assert!(skipped.contains("AS-9700-reuse-revokes-family") && skipped.contains("AS-9700-rotated-token-refused"));
    let reasons: BTreeSet<_> =
        report.results.iter().filter(|r| r.verdict == Verdict::Skip).map(|r| r.reason.clone()).collect();
    assert_eq!(reasons.len(), 1, "every skip gives the same reason: {reasons:?}");
}

/// A naive client: never looks at expires_in, and after invalid_token refreshes and
/// retries until it works (bounded here so the test ends).
fn retries_forever() -> Subject {
    Subject::InProcess(Arc::new(|env: Env| Box::pin(naive_client(env, true))))
}

/// A client that forgets the rotated refresh token and keeps presenting the first one.
fn forgets_rotated_token() -> Subject {
    Subject::InProcess(Arc::new(|env: Env| Box::pin(naive_client(env, false))))
}

async fn naive_client(env: Env, store_rotated: bool) -> Ending {
    use figure2_protocol::Clock;
    let http = figure2_http::HttpClient::new();
    let basic =
        figure2_protocol::client_auth::ClientAuthentication::basic_header_value(&env.client_id, &env.client_secret);
    let token = |form: String| {
        let http = http.clone();
        let url = env.token_endpoint.clone();
        let basic = basic.clone();
        async move {
            let r = http
                .send(
                    http::Method::POST,
                    &url,
                    &[("authorization", basic.as_str()), ("content-type", "application/x-www-form-urlencoded")],
                    Some(form.into()),
                )
                .await
                .ok()?;
            serde_json::from_slice::<serde_json::Value>(&r.body).ok().filter(|_| r.status == 200)
        }
    };
    let grant = format!("grant_type=password&username={}&password={}", env.username, env.password);
    let Some(b) = token(grant).await else { return Ending::Failed("grant".into()) };
    let mut at = b["access_token"].as_str().unwrap_or("").to_owned();
    let first_rt = b["refresh_token"].as_str().unwrap_or("").to_owned();
    let mut rt = first_rt.clone();
    let start = env.clock.now();
    for t in &env.calls {
        let now = env.clock.now();
        if start + t > now {
            env.clock.advance(start + t - now);
        }
        for _ in 0..env.concurrency {
            let mut ok = false;
            for _ in 0..20 {
                let auth = format!("Bearer {at}");
                let r =
                    http.send(http::Method::GET, &env.resource_url, &[("authorization", auth.as_str())], None).await;
                if r.as_ref().is_ok_and(|r| r.status == 200) {
                    ok = true;
                    break;
                }
                let presented = if store_rotated { rt.clone() } else { first_rt.clone() };
                let Some(b) = token(format!("grant_type=refresh_token&refresh_token={presented}")).await else {
                    return Ending::Reauthorize;
                };
                at = b["access_token"].as_str().unwrap_or("").to_owned();
                if let Some(new) = b["refresh_token"].as_str() {
                    rt = new.to_owned();
                }
            }
            if !ok {
                return Ending::Failed("gave up after 20 tries".into());
            }
        }
    }
    Ending::Ok
}

#[tokio::test]
async fn a_client_that_retries_forever_fails_the_loop_and_expiry_checks() {
    let catalogue = conformance::client_catalogue().unwrap();
    let report = ConformanceReport { results: client::run_catalogue(&catalogue, &retries_forever()).await };
    let failed = ids(&report, Verdict::Fail);
    assert!(failed.contains("CL-1.5-no-loop"), "{}", report.render(conformance::Format::Table));
    assert!(failed.contains("CL-1.5-E-skip-to-G"), "{failed:?}");
    assert!(!failed.contains("CL-10.4-refresh-token-private"), "{failed:?}");
    assert!(!failed.contains("CL-5.1-honours-expires-in"), "{failed:?}");
}

#[tokio::test]
async fn a_client_that_forgets_the_rotated_token_fails_the_rotation_check() {
    let catalogue = conformance::client_catalogue().unwrap();
    let report = ConformanceReport { results: client::run_catalogue(&catalogue, &forgets_rotated_token()).await };
    let failed = ids(&report, Verdict::Fail);
    assert!(failed.contains("CL-6-keeps-rotated-token"), "{}", report.render(conformance::Format::Table));
    assert!(!failed.contains("CL-6-keeps-token-without-rotation"), "{failed:?}");
}

#[tokio::test]
async fn a_server_that_calls_a_refresh_token_type_refresh_token_fails_the_vocabulary_check() {
    // Issue 10 kind 4: RFC 7662 §2.2 token_type is an RFC 6749 §7.1 type, not a hint value.
    let mislabel: Mutator = Arc::new(|path, answer| {
        if !path.ends_with("/introspect") || answer.status != 200 {
            return;
        }
        let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&answer.body) else { return };
        if body["active"] == true && body.get("token_type").is_none() {
            body["token_type"] = serde_json::json!("refresh_token");
            answer.body = serde_json::to_vec(&body).unwrap().into();
            answer.headers.remove("content-length");
        }
    });
    let report = run_broken(toml::Table::new(), Some(mislabel)).await;
    assert_eq!(ids(&report, Verdict::Fail), set(&["AS-7662-token-type-vocabulary"]));
}

/// Issue 10 kind 7's broken client: refreshes only on an explicit `invalid_token`, so a
/// bare 401 leaves it presenting the refused token for ever.
async fn refreshes_only_on_invalid_token(env: Env) -> Ending {
    let http = figure2_http::HttpClient::new();
    let basic =
        figure2_protocol::client_auth::ClientAuthentication::basic_header_value(&env.client_id, &env.client_secret);
    let headers = [("authorization", basic.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let grant = format!("grant_type=password&username={}&password={}", env.username, env.password);
    let Ok(r) = http.send(http::Method::POST, &env.token_endpoint, &headers, Some(grant.into())).await else {
        return Ending::Failed("grant".into());
    };
    let b: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let mut at = b["access_token"].as_str().unwrap_or("").to_owned();
    let rt = b["refresh_token"].as_str().unwrap_or("").to_owned();
    for _ in &env.calls {
        for attempt in 0..2 {
            let auth = format!("Bearer {at}");
            let Ok(r) =
                http.send(http::Method::GET, &env.resource_url, &[("authorization", auth.as_str())], None).await
            else {
                return Ending::Failed("transport".into());
            };
            if r.status == 200 {
                break;
            }
            let invalid_token = r.header("www-authenticate").is_some_and(|c| c.contains("invalid_token"));
            if attempt == 1 || !invalid_token {
                return Ending::Failed(format!("the resource answered {}", r.status));
            }
            let form = format!("grant_type=refresh_token&refresh_token={rt}");
            let Ok(r) = http.send(http::Method::POST, &env.token_endpoint, &headers, Some(form.into())).await else {
                return Ending::Failed("refresh".into());
            };
            let b: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            at = b["access_token"].as_str().unwrap_or("").to_owned();
        }
    }
    Ending::Ok
}

#[tokio::test]
async fn a_client_that_ignores_bare_401_fails_the_bare_401_checks() {
    let catalogue = conformance::client_catalogue().unwrap();
    let subject = Subject::InProcess(Arc::new(|env: Env| Box::pin(refreshes_only_on_invalid_token(env))));
    let mut checks = catalogue.clone();
    checks.checks.retain(|c| c.id.starts_with("CL-1.5-F-") || c.id == "CL-1.5-F-retry-once");
    let report = ConformanceReport { results: client::run_catalogue(&checks, &subject).await };
    let failed = ids(&report, Verdict::Fail);
    assert_eq!(
        failed,
        set(&["CL-1.5-F-bare-401", "CL-1.5-F-401-without-challenge"]),
        "{}",
        report.render(conformance::Format::Table)
    );
}

/// Issue 10 kind 3's broken resource server: trusts its key set for a day whatever the
/// JWKS's max-age says. It fails exactly the retired-key check.
#[tokio::test]
async fn a_resource_server_whose_keys_never_age_fails_the_retired_key_check() {
    use figure2_conformance::server::{self, Target, TimeSource};
    use figure2_resource_server::{ResourceServer, ResourceServerConfig};
    let world = World::start(&checks::in_process_config()).await.expect("world starts");
    let mut config = ResourceServerConfig::new(world.issuer.clone(), "figure2-resource-server");
    config.jwks_cache_floor = 86_400;
    config.jwks_cache_ceiling = 86_400;
    let rs = ResourceServer::discover(config, Arc::new(world.clock.clone()), world.http.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/resource/read", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(figure2_resource_server::serve(listener, rs, async {
        let _ = stopped.await;
    }));
    let target = Target {
        issuer: world.issuer.clone(),
        metadata: figure2_http::discover(&world.http, &world.issuer).await.unwrap(),
        client_id: "demo-client".into(),
        client_secret: "demo-secret".into(),
        other_client: None,
        user: Some(("alice".into(), "alice-password".into())),
        sources: Default::default(),
        scope: Some("read write".into()),
        resource: Some(url),
        scope_limited_resource: None,
        time: TimeSource::Simulated(world.clock.clone()),
        forge: Some(checks::forge(&world)),
        http: world.http.clone(),
    };
    let catalogue = conformance::server_catalogue(conformance::CatalogueFile::ResourceServer).unwrap();
    let mut verdicts = Vec::new();
    for id in ["RS-9068-4-new-key-at-once", "RS-9111-retired-key"] {
        let check = catalogue.checks.iter().find(|c| c.id == id).expect(id);
        verdicts.push(server::run_check(catalogue.role, check, &target).await.verdict);
    }
    assert_eq!(verdicts, [Verdict::Pass, Verdict::Fail]);
    let _ = stop.send(());
    let _ = served.await;
    world.stop().await;
}

/// Issue 16: a server without the password grant. Figure2's authorization server with a
/// configuration in which the demo client may use only the authorization code and refresh
/// grants; the checker gets each family from `--token-command`, here
/// `scripts/token-command-authcode.sh` (a login on the /authorize page driven with curl).
const NO_PASSWORD_GRANT: &str = r#"
[[clients]]
client_id = "demo-client"
client_secret_sha256 = "cd577fe2561ebff23505db0bb006300c7cdecbd46bc0e03c449afafaca2c25bf"
redirect_uris = ["http://127.0.0.1:8090/callback"]
grant_types = ["authorization_code", "refresh_token"]
scope = "read write"

[[clients]]
client_id = "other-client"
client_secret_sha256 = "9c0ee26e4a1fbb028187486a7ea91f81f8ab81fcf467cba75107dbd3a64244d7"
redirect_uris = ["http://127.0.0.1:8091/callback"]
grant_types = ["authorization_code", "refresh_token"]
scope = "read write admin"
"#;

fn target_without_password(
    world: &World,
    metadata: figure2_protocol::metadata::AuthorizationServerMetadata,
) -> figure2_conformance::server::Target {
    figure2_conformance::server::Target {
        issuer: world.issuer.clone(),
        metadata,
        client_id: "demo-client".into(),
        client_secret: "demo-secret".into(),
        other_client: Some(("other-client".into(), "other-secret".into())),
        user: None,
        sources: Default::default(),
        scope: Some("read write".into()),
        resource: Some(format!("{}/resource/read", world.resource_url)),
        scope_limited_resource: Some(format!("{}/resource/admin", world.resource_url)),
        time: figure2_conformance::server::TimeSource::Simulated(world.clock.clone()),
        forge: Some(checks::forge(world)),
        http: world.http.clone(),
    }
}

async fn run_servers(target: &figure2_conformance::server::Target) -> ConformanceReport {
    let mut report = ConformanceReport::default();
    for file in conformance::CatalogueFile::SERVERS {
        let catalogue = conformance::server_catalogue(file).unwrap();
        report.results.extend(figure2_conformance::server::run_catalogue(&catalogue, target).await);
    }
    report
}

#[tokio::test]
async fn the_token_command_checks_a_server_without_the_password_grant() {
    let mut config = checks::in_process_config();
    config.extend(toml::from_str::<toml::Table>(NO_PASSWORD_GRANT).unwrap());
    let world = World::start(&config).await.expect("world starts");
    let metadata = figure2_http::discover(&world.http, &world.issuer).await.unwrap();
    let token_endpoint = metadata.token_endpoint.clone().unwrap();
    // The premise: this server refuses the password grant to the demo client.
    let basic = figure2_protocol::client_auth::ClientAuthentication::basic_header_value("demo-client", "demo-secret");
    let refused = world
        .http
        .send(
            http::Method::POST,
            &token_endpoint,
            &[("authorization", basic.as_str()), ("content-type", "application/x-www-form-urlencoded")],
            Some("grant_type=password&username=alice&password=alice-password".into()),
        )
        .await
        .unwrap();
    assert_eq!(refused.status, 400, "{}", refused.body_text());

    let script = format!("bash {}/../../scripts/token-command-authcode.sh", env!("CARGO_MANIFEST_DIR"));
    let mut target = target_without_password(&world, metadata.clone());
    target.sources.command = Some(script);
    let report = run_servers(&target).await;
    let table = report.render(conformance::Format::Table);
    assert!(ids(&report, Verdict::Fail).is_empty(), "{table}");
    // Only the check of the password grant itself is skipped, with its reason.
    assert_eq!(ids(&report, Verdict::Skip), set(&["AS-5.2-invalid-grant-password"]), "{table}");
    let skipped = report.results.iter().find(|r| r.verdict == Verdict::Skip).unwrap();
    assert_eq!(skipped.reason, conformance::Need::PasswordGrant.describe());
    assert!(ids(&report, Verdict::Pass).contains("AS-9700-reuse-revokes-family"), "{table}");

    // One user-supplied refresh token (--refresh-token): the checks share its family in
    // turn; those that would spend it are skipped, saying why.
    let first = run_servers(&{
        let mut t = target.clone();
        t.sources.command = None;
        t.sources.refresh_token = Some(figure2_conformance::server::TokenSources::shared_refresh_token({
            let out = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(target.sources.command.clone().unwrap())
                .env("FIGURE2_AUTHORIZATION_ENDPOINT", metadata.authorization_endpoint.clone().unwrap())
                .env("FIGURE2_TOKEN_ENDPOINT", &token_endpoint)
                .env("FIGURE2_CLIENT_ID", "demo-client")
                .env("FIGURE2_CLIENT_SECRET", "demo-secret")
                .env("FIGURE2_SCOPE", "read write")
                .output()
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            body["refresh_token"].as_str().unwrap().to_owned()
        }));
        t
    })
    .await;
    let table = first.render(conformance::Format::Table);
    assert!(ids(&first, Verdict::Fail).is_empty(), "{table}");
    let spent: BTreeSet<String> = first
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Skip && r.reason == conformance::Need::NewFamily.describe())
        .map(|r| r.id.clone())
        .collect();
    assert!(
        spent.contains("AS-9700-reuse-revokes-family") && spent.contains("AS-7009-revoked-refresh-token"),
        "{table}"
    );
    assert!(ids(&first, Verdict::Pass).len() >= 40, "{table}");
    world.stop().await;
}

/// Issue 16: a client that refreshes before each call never presents the token the
/// resource server would refuse, so the retry was never exercised: no pass for it.
async fn refreshes_before_each_call(env: Env) -> Ending {
    let http = figure2_http::HttpClient::new();
    let basic =
        figure2_protocol::client_auth::ClientAuthentication::basic_header_value(&env.client_id, &env.client_secret);
    let headers = [("authorization", basic.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let grant = format!("grant_type=password&username={}&password={}", env.username, env.password);
    let Ok(r) = http.send(http::Method::POST, &env.token_endpoint, &headers, Some(grant.into())).await else {
        return Ending::Failed("grant".into());
    };
    let mut b: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    for _ in &env.calls {
        let form = format!("grant_type=refresh_token&refresh_token={}", b["refresh_token"].as_str().unwrap_or(""));
        let Ok(r) = http.send(http::Method::POST, &env.token_endpoint, &headers, Some(form.into())).await else {
            return Ending::Failed("refresh".into());
        };
        b = serde_json::from_slice(&r.body).unwrap_or_default();
        let auth = format!("Bearer {}", b["access_token"].as_str().unwrap_or(""));
        let _ = http.send(http::Method::GET, &env.resource_url, &[("authorization", auth.as_str())], None).await;
    }
    Ending::Ok
}

#[tokio::test]
async fn a_check_whose_situation_never_arose_does_not_pass() {
    let catalogue = conformance::client_catalogue().unwrap();
    let subject = Subject::InProcess(Arc::new(|env: Env| Box::pin(refreshes_before_each_call(env))));
    let check = catalogue.checks.iter().find(|c| c.id == "CL-1.5-F-retry-once").unwrap();
    let result = client::run_check(check, &subject).await;
    assert_eq!(result.verdict, Verdict::Skip, "{}", result.reason);
    assert!(result.reason.starts_with("not exercised"), "{}", result.reason);
    assert_eq!(result.keyword, conformance::Keyword::May, "RFC 6750 §3.1: the client MAY retry");
}

/// A broken client of the matrix-js-sdk#5495 kind: it follows expires_in and keeps
/// rotated tokens, but treats any failed refresh (a proxy's 429 or 503, a gateway's 504)
/// as a dead refresh token: it drops it and sends the user back to step A.
async fn drops_refresh_token_on_any_failure(env: Env) -> Ending {
    use figure2_protocol::Clock;
    let http = figure2_http::HttpClient::new();
    let basic =
        figure2_protocol::client_auth::ClientAuthentication::basic_header_value(&env.client_id, &env.client_secret);
    let headers = [("authorization", basic.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    let token = |form: String| {
        let http = http.clone();
        let url = env.token_endpoint.clone();
        async move {
            let r = http.send(http::Method::POST, &url, &headers, Some(form.into())).await.ok()?;
            serde_json::from_slice::<serde_json::Value>(&r.body).ok().filter(|_| r.status == 200)
        }
    };
    let grant = format!("grant_type=password&username={}&password={}", env.username, env.password);
    let Some(b) = token(grant).await else { return Ending::Failed("grant".into()) };
    let start = env.clock.now();
    let mut expires_at = start + b["expires_in"].as_u64().unwrap_or(0);
    let mut at = b["access_token"].as_str().unwrap_or("").to_owned();
    let mut rt = b["refresh_token"].as_str().map(str::to_owned);
    for t in &env.calls {
        let now = env.clock.now();
        if start + t > now {
            env.clock.advance(start + t - now);
        }
        if env.clock.now() >= expires_at {
            let Some(presented) = rt.take() else { return Ending::Reauthorize };
            // The bug: whatever went wrong, the refresh token is thrown away.
            let Some(b) = token(format!("grant_type=refresh_token&refresh_token={presented}")).await else {
                return Ending::Reauthorize;
            };
            expires_at = env.clock.now() + b["expires_in"].as_u64().unwrap_or(0);
            at = b["access_token"].as_str().unwrap_or("").to_owned();
            rt = Some(b["refresh_token"].as_str().unwrap_or(&presented).to_owned());
        }
        let auth = format!("Bearer {at}");
        match http.send(http::Method::GET, &env.resource_url, &[("authorization", auth.as_str())], None).await {
            Ok(r) if r.status == 200 => {}
            Ok(r) => return Ending::Failed(format!("the resource answered {}", r.status)),
            Err(e) => return Ending::Failed(e.to_string()),
        }
    }
    Ending::Ok
}

/// The issue-12 client profiles: the client library passes them all (above); a client
/// that drops its refresh token on any failed refresh fails the 429/503 checks and every
/// lost-response check where the server would have taken the retry, while strict rotation
/// logs it out as it logs out everyone (a pass: the expected outcome).
#[tokio::test]
async fn a_client_that_drops_its_refresh_token_on_503_fails_the_fault_profiles() {
    let mut catalogue = conformance::client_catalogue().unwrap();
    catalogue.checks.retain(|c| {
        c.id.starts_with("CL-6585-") || c.id.starts_with("CL-9110-") || c.id.starts_with("CL-6-lost-response-")
    });
    assert_eq!(catalogue.checks.len(), 7);
    let subject = Subject::InProcess(Arc::new(|env: Env| Box::pin(drops_refresh_token_on_any_failure(env))));
    let report = ConformanceReport { results: client::run_catalogue(&catalogue, &subject).await };
    let table = report.render(conformance::Format::Table);
    assert_eq!(
        ids(&report, Verdict::Fail),
        set(&[
            "CL-6585-429-keeps-refresh-token",
            "CL-9110-503-keeps-refresh-token",
            "CL-6-lost-response-time-grace",
            "CL-6-lost-response-idempotent-retry",
            "CL-6-lost-response-count-reuse",
            "CL-6-lost-response-usage-based",
        ]),
        "{table}"
    );
    assert_eq!(ids(&report, Verdict::Pass), set(&["CL-6-lost-response-strict-logs-out"]), "{table}");
    let strict = report.results.iter().find(|r| r.id == "CL-6-lost-response-strict-logs-out").unwrap();
    assert!(strict.reason.contains("expected outcome"), "{}", strict.reason);
    // Every check cites its section and key word.
    assert!(report.results.iter().all(|r| r.section.starts_with("RFC ")));
}

/// The lost-response and 429/503 checks prove their situation before they pass: a client
/// that never refreshes is skipped, not passed.
#[tokio::test]
async fn the_fault_profiles_are_skipped_when_the_client_never_refreshes() {
    let mut catalogue = conformance::client_catalogue().unwrap();
    catalogue.checks.retain(|c| c.id.starts_with("CL-9110-") || c.id.starts_with("CL-6-lost-response-"));
    for check in &mut catalogue.checks {
        check.calls = vec![0];
    }
    let report = ConformanceReport { results: client::run_catalogue(&catalogue, &checks::client_library()).await };
    assert_eq!(
        ids(&report, Verdict::Skip).len(),
        catalogue.checks.len(),
        "{}",
        report.render(conformance::Format::Table)
    );
}
