use figure2_conformance::client::{self, Ending, Env, Subject};
use figure2_conformance::{self as conformance, ConformanceReport, Keyword, Role, Verdict};
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

/// Rewrites a JSON answer of the authorization server on the way back.
fn rewrite_json(suffix: &'static str, edit: fn(&mut serde_json::Value)) -> Mutator {
    Arc::new(move |path, answer| {
        if path.ends_with(suffix)
            && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&answer.body)
        {
            edit(&mut json);
            answer.body = bytes::Bytes::from(json.to_string());
            answer.headers.remove("content-length");
        }
    })
}

#[tokio::test]
async fn a_server_that_calls_dpop_tokens_bearer_fails_exactly_that_check() {
    // Spring's habit (issue 14): a DPoP-bound access token returned as `Bearer`.
    let bearer = rewrite_json("/token", |json| {
        if json["token_type"] == "DPoP" {
            json["token_type"] = "Bearer".into();
        }
    });
    let report = run_broken(toml::Table::new(), Some(bearer)).await;
    assert_eq!(
        ids(&report, Verdict::Fail),
        set(&["AS-9449-5-token-type"]),
        "{}",
        report.render(conformance::Format::Table)
    );
}

#[tokio::test]
async fn a_server_that_calls_a_replayed_proof_invalid_grant_fails_exactly_the_jti_check() {
    // oidc-provider's habit (docs/interop.md): a replayed DPoP proof at the token
    // endpoint answered invalid_grant, the refresh token being still valid.
    let invalid_grant = rewrite_json("/token", |json| {
        let replayed = json["error_description"].as_str().is_some_and(|d| d.contains("already used"));
        if json["error"] == "invalid_dpop_proof" && replayed {
            json["error"] = "invalid_grant".into();
        }
    });
    let report = run_broken(toml::Table::new(), Some(invalid_grant)).await;
    let table = report.render(conformance::Format::Table);
    assert_eq!(ids(&report, Verdict::Fail), set(&["AS-9449-11.1-jti-replayed"]), "{table}");
    let jti = report.results.iter().find(|r| r.id == "AS-9449-11.1-jti-replayed").unwrap();
    assert!(jti.reason.contains("invalid_grant"), "{}", jti.reason);
}

#[tokio::test]
async fn a_server_that_does_not_bind_refresh_tokens_fails_the_binding_checks() {
    // The target says the refresh tokens are bound; this server does not bind them.
    let mut config = checks::in_process_config();
    config.insert("dpop_bind_confidential_refresh_tokens".into(), false.into());
    let world = World::start(&config).await.expect("world starts");
    let metadata = figure2_http::discover(&world.http, &world.issuer).await.unwrap();
    let mut target = target_without_password(&world, metadata);
    target.user = Some(("alice".into(), "alice-password".into()));
    target.dpop_bound_refresh_tokens = true;
    let report = run_servers(&target).await;
    world.stop().await;
    assert_eq!(
        ids(&report, Verdict::Fail),
        set(&["AS-9449-5-bound-refresh-no-proof", "AS-9449-5-bound-refresh-other-key"]),
        "{}",
        report.render(conformance::Format::Table)
    );
}

#[tokio::test]
async fn without_dpop_in_the_metadata_the_dpop_checks_are_skipped_saying_why() {
    let no_dpop = rewrite_json("/.well-known/oauth-authorization-server", |json| {
        if let Some(map) = json.as_object_mut() {
            map.remove("dpop_signing_alg_values_supported");
        }
    });
    let report = run_broken(toml::Table::new(), Some(no_dpop)).await;
    let dpop: BTreeSet<String> =
        report.results.iter().filter(|r| r.id.contains("-9449-")).map(|r| r.id.clone()).collect();
    assert!(dpop.len() >= 20, "{dpop:?}");
    assert_eq!(ids(&report, Verdict::Skip), dpop, "{}", report.render(conformance::Format::Table));
    assert!(ids(&report, Verdict::Fail).is_empty());
    let reason = &report.results.iter().find(|r| r.id.contains("-9449-")).unwrap().reason;
    assert_eq!(reason, conformance::Need::Dpop.describe());
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
    assert!(!report.failed_absolute(), "reuse detection is required for public clients only (RFC 9700 §4.14.2)");
}

#[tokio::test]
async fn a_server_that_refuses_with_another_error_code_breaks_no_key_word() {
    // RFC 6749 §5.2 names each error but puts no key word on which code fits: every
    // refusal is kept, only its code changed (Authlib's invalid_request for a wrong
    // password, oidc-provider's invalid_grant for a replayed DPoP proof).
    // The status too: "400 (unless specified otherwise)" has no key word either.
    let recode: Mutator = Arc::new(|path, answer| {
        if path.ends_with("/token")
            && let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&answer.body)
            && json["error"] == "invalid_grant"
        {
            json["error"] = "invalid_request".into();
            answer.status = 422;
            answer.body = bytes::Bytes::from(json.to_string());
            answer.headers.remove("content-length");
        }
    });
    let report = run_broken(toml::Table::new(), Some(recode)).await;
    let table = report.render(conformance::Format::Table);
    let failed = ids(&report, Verdict::Fail);
    for id in ["AS-5.2-invalid-grant-password", "AS-6-unknown-token", "AS-6-bound-to-client"] {
        assert!(failed.contains(id), "{id}\n{table}");
    }
    assert!(
        report.results.iter().filter(|r| r.verdict == Verdict::Fail).all(|r| r.keyword == Keyword::Descriptive),
        "{table}"
    );
    assert!(!report.failed_absolute(), "{table}");
    let password = report.results.iter().find(|r| r.id == "AS-5.2-invalid-grant-password").unwrap();
    assert!(password.reason.contains("[the error code: no key word]"), "{}", password.reason);
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
/// What the hand-written client doubles below share: the token endpoint with HTTP Basic
/// for the checker's client (RFC 6749 §2.3.1), the resource, and the shared clock.
struct Double {
    env: Env,
    http: figure2_http::HttpClient,
    basic: String,
}

impl Double {
    fn new(env: &Env) -> Self {
        let basic =
            figure2_protocol::client_auth::ClientAuthentication::basic_header_value(&env.client_id, &env.client_secret);
        Self { env: env.clone(), http: figure2_http::HttpClient::new(), basic }
    }

    /// The token endpoint's answer to `form`, whatever it is.
    async fn post(&self, form: String) -> Option<figure2_http::ReceivedResponse> {
        let headers = [("authorization", self.basic.as_str()), ("content-type", "application/x-www-form-urlencoded")];
        self.http.send(http::Method::POST, &self.env.token_endpoint, &headers, Some(form.into())).await.ok()
    }

    /// The JSON body of a 200 answer to `form`, else `None`.
    async fn token(&self, form: String) -> Option<serde_json::Value> {
        let r = self.post(form).await?;
        serde_json::from_slice(&r.body).ok().filter(|_| r.status == 200)
    }

    /// The JSON body of the answer to `form`, whatever its status (`Null` if not JSON).
    async fn token_body(&self, form: String) -> Option<serde_json::Value> {
        let r = self.post(form).await?;
        Some(serde_json::from_slice(&r.body).unwrap_or_default())
    }

    fn password_grant(&self) -> String {
        format!("grant_type=password&username={}&password={}", self.env.username, self.env.password)
    }

    fn refresh(refresh_token: &str) -> String {
        format!("grant_type=refresh_token&refresh_token={refresh_token}")
    }

    /// GET the resource with `Authorization: Bearer access_token`.
    async fn resource(&self, access_token: &str) -> Result<figure2_http::ReceivedResponse, figure2_http::ClientError> {
        let auth = format!("Bearer {access_token}");
        self.http.send(http::Method::GET, &self.env.resource_url, &[("authorization", auth.as_str())], None).await
    }

    fn now(&self) -> u64 {
        figure2_protocol::Clock::now(&self.env.clock)
    }
}

/// Lets the shared clock reach `start + t` (a call time of the check).
fn advance_to(env: &Env, start: u64, t: u64) {
    let now = figure2_protocol::Clock::now(&env.clock);
    if start + t > now {
        env.clock.advance(start + t - now);
    }
}

fn retries_forever() -> Subject {
    Subject::InProcess(Arc::new(|env: Env| Box::pin(naive_client(env, true))))
}

/// A client that forgets the rotated refresh token and keeps presenting the first one.
fn forgets_rotated_token() -> Subject {
    Subject::InProcess(Arc::new(|env: Env| Box::pin(naive_client(env, false))))
}

async fn naive_client(env: Env, store_rotated: bool) -> Ending {
    let double = Double::new(&env);
    let Some(b) = double.token(double.password_grant()).await else { return Ending::Failed("grant".into()) };
    let mut at = b["access_token"].as_str().unwrap_or("").to_owned();
    let first_rt = b["refresh_token"].as_str().unwrap_or("").to_owned();
    let mut rt = first_rt.clone();
    let start = double.now();
    for t in &env.calls {
        advance_to(&env, start, *t);
        for _ in 0..env.concurrency {
            let mut ok = false;
            for _ in 0..20 {
                if double.resource(&at).await.as_ref().is_ok_and(|r| r.status == 200) {
                    ok = true;
                    break;
                }
                let presented = if store_rotated { rt.clone() } else { first_rt.clone() };
                let Some(b) = double.token(Double::refresh(&presented)).await else {
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

/// A broken DPoP client: a new key (a new session of the library) for every call after the
/// grant, so its refresh presents a bound refresh token with a proof of another key.
async fn new_key_for_each_call(env: Env) -> Ending {
    use figure2_client::{Client, ClientConfig};
    let session = |env: &Env| {
        let mut config = ClientConfig::new(
            env.client_id.clone(),
            Some(figure2_protocol::secret::ClientSecret::new(env.client_secret.clone())),
            env.token_endpoint.clone(),
        );
        config.dpop = env.dpop;
        Client::new(config, Arc::new(env.clock.clone()), figure2_http::HttpClient::new())
    };
    let first = session(&env);
    let grant = figure2_protocol::token_request::TokenRequest::Password {
        username: env.username.clone(),
        password: figure2_protocol::secret::Secret::new(env.password.clone()),
        scope: None,
    };
    if let Err(e) = first.request_token(grant).await {
        return Ending::Failed(e.to_string());
    }
    let mut tokens = first.tokens();
    let start = figure2_protocol::Clock::now(&env.clock);
    for at in &env.calls {
        advance_to(&env, start, *at);
        let client = session(&env);
        client.set_tokens(tokens.clone());
        let result = client.call(http::Method::GET, &env.resource_url, None).await;
        tokens = client.tokens();
        match result {
            Ok(r) if r.status == 200 => {}
            Ok(r) => return Ending::Failed(format!("the resource answered {}", r.status)),
            Err(figure2_client::ClientError::ReauthorizationRequired(_)) => return Ending::Reauthorize,
            Err(e) => return Ending::Failed(e.to_string()),
        }
    }
    Ending::Ok
}

#[tokio::test]
async fn a_dpop_client_that_changes_keys_fails_the_dpop_key_checks() {
    let catalogue = conformance::client_catalogue().unwrap();
    let mut dpop = catalogue.clone();
    dpop.checks.retain(|c| c.id.starts_with("CL-9449"));
    let subject = Subject::InProcess(Arc::new(|env: Env| Box::pin(new_key_for_each_call(env))));
    let report = ConformanceReport { results: client::run_catalogue(&dpop, &subject).await };
    let table = report.render(conformance::Format::Table);
    let failed = ids(&report, Verdict::Fail);
    assert!(failed.contains("CL-9449-5-same-key"), "{table}");
    assert!(failed.contains("CL-9449-7.1-proofs"), "{table}");
}

#[tokio::test]
async fn a_client_without_dpop_is_skipped_by_the_dpop_checks() {
    let catalogue = conformance::client_catalogue().unwrap();
    let mut dpop = catalogue.clone();
    dpop.checks.retain(|c| c.id.starts_with("CL-9449"));
    let subject = Subject::InProcess(Arc::new(|env: Env| Box::pin(new_key_for_each_call(Env { dpop: false, ..env }))));
    let report = ConformanceReport { results: client::run_catalogue(&dpop, &subject).await };
    assert_eq!(ids(&report, Verdict::Skip).len(), 3, "{}", report.render(conformance::Format::Table));
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
    let double = Double::new(&env);
    let Some(b) = double.token_body(double.password_grant()).await else { return Ending::Failed("grant".into()) };
    let mut at = b["access_token"].as_str().unwrap_or("").to_owned();
    let rt = b["refresh_token"].as_str().unwrap_or("").to_owned();
    for _ in &env.calls {
        for attempt in 0..2 {
            let Ok(r) = double.resource(&at).await else { return Ending::Failed("transport".into()) };
            if r.status == 200 {
                break;
            }
            let invalid_token = r.header("www-authenticate").is_some_and(|c| c.contains("invalid_token"));
            if attempt == 1 || !invalid_token {
                return Ending::Failed(format!("the resource answered {}", r.status));
            }
            let Some(b) = double.token_body(Double::refresh(&rt)).await else {
                return Ending::Failed("refresh".into());
            };
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
        metadata_url: None,
        forge: Some(checks::forge(&world)),
        dpop_bound_refresh_tokens: true,
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
        metadata_url: None,
        forge: Some(checks::forge(world)),
        dpop_bound_refresh_tokens: world.authorization_server.config().dpop.bind_confidential_refresh_tokens,
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
    // Only the check of the password grant itself is skipped, with its reason, and the
    // checks of a DPoP-bound refresh token: the command's grant carried no proof of theirs.
    assert_eq!(
        ids(&report, Verdict::Skip),
        set(&[
            "AS-5.2-invalid-grant-password",
            "AS-9449-5-bound-refresh-no-proof",
            "AS-9449-5-bound-refresh-other-key"
        ]),
        "{table}"
    );
    let skipped = report.results.iter().find(|r| r.id == "AS-5.2-invalid-grant-password").unwrap();
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
    let double = Double::new(&env);
    let Some(mut b) = double.token_body(double.password_grant()).await else { return Ending::Failed("grant".into()) };
    for _ in &env.calls {
        let Some(new) = double.token_body(Double::refresh(b["refresh_token"].as_str().unwrap_or(""))).await else {
            return Ending::Failed("refresh".into());
        };
        b = new;
        let _ = double.resource(b["access_token"].as_str().unwrap_or("")).await;
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
/// as a dead refresh token: it drops it and sends the user back to step A, or (`regrant`,
/// as requests-auth does) gets a new password grant itself and carries on.
async fn drops_refresh_token_on_any_failure(env: Env, regrant: bool) -> Ending {
    let double = Double::new(&env);
    let Some(b) = double.token(double.password_grant()).await else { return Ending::Failed("grant".into()) };
    let start = double.now();
    let mut expires_at = start + b["expires_in"].as_u64().unwrap_or(0);
    let mut at = b["access_token"].as_str().unwrap_or("").to_owned();
    let mut rt = b["refresh_token"].as_str().map(str::to_owned);
    for t in &env.calls {
        advance_to(&env, start, *t);
        if double.now() >= expires_at {
            let Some(presented) = rt.take() else { return Ending::Reauthorize };
            // The bug: whatever went wrong, the refresh token is thrown away.
            let refreshed = double.token(Double::refresh(&presented)).await;
            let Some(b) = (match refreshed {
                None if regrant => double.token(double.password_grant()).await,
                other => other,
            }) else {
                return Ending::Reauthorize;
            };
            expires_at = double.now() + b["expires_in"].as_u64().unwrap_or(0);
            at = b["access_token"].as_str().unwrap_or("").to_owned();
            rt = Some(b["refresh_token"].as_str().unwrap_or(&presented).to_owned());
        }
        match double.resource(&at).await {
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
    for regrant in [false, true] {
        let subject =
            Subject::InProcess(Arc::new(move |env: Env| Box::pin(drops_refresh_token_on_any_failure(env, regrant))));
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
        // A new grant is going back to step A, as ending 'reauthorize' is (requests-auth).
        let back_to_a = if regrant { "went back to step A itself" } else { "asked for a new authorization" };
        assert!(strict.reason.contains(back_to_a), "{}", strict.reason);
        // Every check cites its section and key word.
        assert!(report.results.iter().all(|r| r.section.starts_with("RFC ")));
    }
}

/// Strict rotation: a client that goes on after the lost answer without a new
/// authorization (it keeps calling with its expired access token) fails.
async fn ignores_a_failed_refresh(env: Env) -> Ending {
    let double = Double::new(&env);
    let Some(b) = double.token_body(double.password_grant()).await else { return Ending::Failed("grant".into()) };
    let start = double.now();
    let mut refreshed = false;
    for t in &env.calls {
        advance_to(&env, start, *t);
        if !refreshed && double.now() >= start + b["expires_in"].as_u64().unwrap_or(0) {
            refreshed = true;
            let _ = double.post(Double::refresh(b["refresh_token"].as_str().unwrap_or(""))).await;
        }
        let _ = double.resource(b["access_token"].as_str().unwrap_or("")).await;
    }
    Ending::Ok
}

#[tokio::test]
async fn strict_rotation_fails_a_client_that_goes_on_without_a_new_authorization() {
    let catalogue = conformance::client_catalogue().unwrap();
    let check = catalogue.checks.iter().find(|c| c.id == "CL-6-lost-response-strict-logs-out").unwrap();
    let subject = Subject::InProcess(Arc::new(|env: Env| Box::pin(ignores_a_failed_refresh(env))));
    let result = client::run_check(check, &subject).await;
    assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
    assert!(result.reason.contains("without a new authorization"), "{}", result.reason);
    // Figure2's own client: logged out, it ends 'reauthorize'.
    let result = client::run_check(check, &checks::client_library()).await;
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
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

/// Issue 16: a client without single flight. Each of the racing requests sees the token
/// expired and refreshes with the refresh token it holds, all at once: the first rotates
/// it, the others present the token just replaced (Authlib's async client did this).
async fn refreshes_in_parallel(env: Env, serialised: bool) -> Ending {
    let double = Double::new(&env);
    let Some(b) = double.token_body(double.password_grant()).await else { return Ending::Failed("grant".into()) };
    let issued = double.now();
    let expires_in = b["expires_in"].as_u64().unwrap_or(0);
    let tokens = tokio::sync::Mutex::new((
        b["access_token"].as_str().unwrap_or("").to_owned(),
        b["refresh_token"].as_str().unwrap_or("").to_owned(),
    ));
    let start = double.now();
    for t in &env.calls {
        advance_to(&env, start, *t);
        let expired = double.now() >= issued + expires_in;
        let one = || async {
            let access = if expired {
                // Serialised: one refresh at a time, each with the newest refresh token,
                // but none skipped (no single flight). Parallel: everyone refreshes with
                // the refresh token held when it started.
                let mut guard = if serialised { Some(tokens.lock().await) } else { None };
                let presented = match &guard {
                    Some(g) => g.1.clone(),
                    None => tokens.lock().await.1.clone(),
                };
                let r = double.post(Double::refresh(&presented)).await?;
                if r.status != 200 {
                    return Some(Ending::Reauthorize);
                }
                let b: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
                let pair = (
                    b["access_token"].as_str().unwrap_or("").to_owned(),
                    b["refresh_token"].as_str().unwrap_or(&presented).to_owned(),
                );
                match guard.as_mut() {
                    Some(g) => **g = pair.clone(),
                    None => *tokens.lock().await = pair.clone(),
                }
                pair.0
            } else {
                tokens.lock().await.0.clone()
            };
            let r = double.resource(&access).await;
            Some(if r.is_ok_and(|r| r.status == 200) { Ending::Ok } else { Ending::Failed("resource".into()) })
        };
        let endings = client::join_all((0..env.concurrency).map(|_| one())).await;
        if let Some(bad) =
            endings.into_iter().map(|e| e.unwrap_or(Ending::Failed("http".into()))).find(|e| *e != Ending::Ok)
        {
            return bad;
        }
    }
    Ending::Ok
}

#[tokio::test]
async fn single_flight_is_judged_on_the_replaced_token_not_on_the_count() {
    let catalogue = conformance::client_catalogue().unwrap();
    let check = catalogue.checks.iter().find(|c| c.id == "CL-9700-single-flight").unwrap();
    // No key word: a token presented while its successor is on its way breaks no RFC
    // text (RFC 6749 §6's MUST is about a successor received: CL-6-concurrent-...).
    assert_eq!(check.keyword, conformance::Keyword::Descriptive);
    // Racing refreshes with one refresh token: a replaced token is presented again.
    let parallel = Subject::InProcess(Arc::new(|env: Env| Box::pin(refreshes_in_parallel(env, false))));
    let result = client::run_check(check, &parallel).await;
    assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
    assert!(result.reason.contains("presented a replaced refresh token 7 time(s)"), "{}", result.reason);
    // Eight refreshes, each with the newest token: more than one refresh, but the MUST
    // holds; the count is reported as information only.
    let serialised = Subject::InProcess(Arc::new(|env: Env| Box::pin(refreshes_in_parallel(env, true))));
    let result = client::run_check(check, &serialised).await;
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
    assert_eq!(result.reason, "8 refresh request(s), none with a replaced token");
    // Figure2's own client: single flight, one refresh.
    let result = client::run_check(check, &checks::client_library()).await;
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
    assert_eq!(result.reason, "1 refresh request(s), none with a replaced token");
}

/// Issue 16: after `invalid_grant` a client holding the resource owner's password goes
/// back to step A with a new grant (`regrant`), or presents the refused token once more
/// before giving up.
async fn after_invalid_grant(env: Env, regrant: bool) -> Ending {
    let double = Double::new(&env);
    let Some(mut b) = double.token(double.password_grant()).await else { return Ending::Failed("grant".into()) };
    let mut issued = double.now();
    let start = issued;
    for t in &env.calls {
        advance_to(&env, start, *t);
        if double.now() >= issued + b["expires_in"].as_u64().unwrap_or(0) {
            let refresh = Double::refresh(b["refresh_token"].as_str().unwrap_or(""));
            match double.token(refresh.clone()).await {
                Some(new) => b = new,
                None if regrant => match double.token(double.password_grant()).await {
                    Some(new) => b = new,
                    None => return Ending::Reauthorize,
                },
                None => {
                    let _ = double.token(refresh).await;
                    return Ending::Reauthorize;
                }
            }
            issued = double.now();
        }
        let _ = double.resource(b["access_token"].as_str().unwrap_or("")).await;
    }
    Ending::Ok
}

#[tokio::test]
async fn a_new_grant_after_invalid_grant_is_back_to_a_but_presenting_the_refused_token_fails() {
    let catalogue = conformance::client_catalogue().unwrap();
    let check = catalogue.checks.iter().find(|c| c.id == "CL-5.2-invalid-grant-stops").unwrap();
    let regrants = Subject::InProcess(Arc::new(|env: Env| Box::pin(after_invalid_grant(env, true))));
    let result = client::run_check(check, &regrants).await;
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
    let retries = Subject::InProcess(Arc::new(|env: Env| Box::pin(after_invalid_grant(env, false))));
    let result = client::run_check(check, &retries).await;
    assert_eq!(result.verdict, Verdict::Fail, "{}", result.reason);
    assert!(
        result.reason.contains("presented the refresh token refused with invalid_grant again"),
        "{}",
        result.reason
    );
    // Figure2's own client stops and ends 'reauthorize'.
    let result = client::run_check(check, &checks::client_library()).await;
    assert_eq!(result.verdict, Verdict::Pass, "{}", result.reason);
}
