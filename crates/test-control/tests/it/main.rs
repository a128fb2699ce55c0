//! The test-control API over real HTTP on 127.0.0.1, driven by the typed client, with
//! Figure2's own client crate as the client under test: a real authorization server with
//! test control on (its clock = system clock + an offset the API moves), a real resource
//! server following that clock (`--clock-from`), and the client meeting each fault.

use figure2_authorization_server::control::ControlledClock;
use figure2_authorization_server::{AuthorizationServer, ConfigFile};
use figure2_client::{Client, ClientConfig, ClientError};
use figure2_http::HttpClient;
use figure2_protocol::secret::{ClientSecret, Secret};
use figure2_protocol::token_request::TokenRequest;
use figure2_protocol::{ErrorCode, Scope, SystemClock};
use figure2_resource_server::clock_follow::{FollowedClock, serve_following};
use figure2_resource_server::{ResourceServer, ResourceServerConfig};
use figure2_test_control::{ControlClient, ControlClientError, FamilyFilter, Fault, FaultRequest, NewClient, NewUser};
use http::Method;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const DEMO_CONFIG: &str = include_str!("../../../../config/demo.toml");

/// Both servers, stopped on drop.
struct World {
    issuer: String,
    rs: String,
    server: Arc<AuthorizationServer>,
    control: ControlClient,
    _stop: Vec<oneshot::Sender<()>>,
}

impl World {
    async fn start(configure: impl FnOnce(&mut ConfigFile)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let mut file = ConfigFile::from_toml(DEMO_CONFIG).unwrap();
        file.database = ":memory:".into();
        file.issuer = Some(issuer.clone());
        configure(&mut file);
        let clock = Arc::new(ControlledClock::new(Arc::new(SystemClock)));
        let server = AuthorizationServer::new(file.resolve().unwrap(), clock.clone()).unwrap();
        assert!(server.enable_test_control(clock));
        let (as_stop, as_stopped) = oneshot::channel::<()>();
        tokio::spawn(figure2_authorization_server::serve(listener, server.clone(), async {
            let _ = as_stopped.await;
        }));

        // The resource server follows the authorization server's clock.
        let http = HttpClient::new().with_timeout(Duration::from_secs(5));
        let followed = Arc::new(FollowedClock::new(&issuer, http.clone()));
        let rs_config = ResourceServerConfig::new(&issuer, figure2_resource_server::DEFAULT_AUDIENCE);
        let resource_server = ResourceServer::discover(rs_config, followed.clone(), http).await.unwrap();
        let rs_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let rs = format!("http://{}", rs_listener.local_addr().unwrap());
        let (rs_stop, rs_stopped) = oneshot::channel::<()>();
        tokio::spawn(serve_following(rs_listener, resource_server, followed, async {
            let _ = rs_stopped.await;
        }));
        let control = ControlClient::new(&issuer);
        Self { issuer, rs, server, control, _stop: vec![as_stop, rs_stop] }
    }

    /// Figure2's client as the client under test: demo-client, the system clock (it knows
    /// nothing of the control API), and `timeout` on every HTTP exchange.
    fn client(&self, timeout: Duration) -> Client {
        let config =
            ClientConfig::new("demo-client", Some(ClientSecret::new("demo-secret")), format!("{}/token", self.issuer));
        Client::new(config, Arc::new(SystemClock), HttpClient::new().with_timeout(timeout))
    }

    async fn authorized_client(&self) -> Client {
        let client = self.client(Duration::from_secs(5));
        client.request_token(password("alice", "alice-password")).await.expect("step A→B");
        client
    }

    fn read(&self) -> String {
        format!("{}/resource/read", self.rs)
    }

    async fn metric(&self, base: &str, series: &str) -> f64 {
        let text =
            HttpClient::new().send(Method::GET, &format!("{base}/metrics"), &[], None).await.unwrap().body_text();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .map_or(0.0, |v| v.trim().parse().unwrap())
    }
}

fn password(username: &str, password: &str) -> TokenRequest {
    TokenRequest::Password {
        username: username.into(),
        password: Secret::new(password),
        scope: Some(Scope::parse("read").unwrap()),
    }
}

#[tokio::test]
async fn advancing_the_clock_expires_the_access_token_at_the_resource_server_and_the_client_refreshes() {
    let world = World::start(|_| {}).await;
    let client = world.authorized_client().await;
    let before = world.control.clock().await.unwrap();
    assert_eq!(before.offset, 0);
    // C→D.
    assert_eq!(client.call(Method::GET, &world.read(), None).await.unwrap().status, 200);
    let refresh_token = client.tokens().unwrap().refresh_token.unwrap();

    // One hour and a second later (demo access_token_lifetime = 3600 s), without waiting.
    let after = world.control.advance_clock(3601).await.unwrap();
    assert_eq!(after.offset, 3601);
    assert!(after.now >= before.now + 3601);
    // The client's own clock says the token is fresh, so it sends it (E); the resource
    // server, following the authorization server's clock, answers invalid_token (F); the
    // client refreshes (G→H) and retries (C→D).
    let answer = client.call(Method::GET, &world.read(), None).await.unwrap();
    assert_eq!(answer.status, 200);
    assert_ne!(client.tokens().unwrap().refresh_token.unwrap().expose(), refresh_token.expose(), "rotated");
    assert_eq!(world.metric(&world.rs, "figure2_resource_rejections_total{error=\"invalid_token\"}").await, 1.0);
    assert_eq!(world.metric(&world.issuer, "figure2_refresh_outcomes_total{outcome=\"rotated\"}").await, 1.0);
    // The new tokens carry the server's time: iat moved with the clock.
    let families = world.control.families(&FamilyFilter::default()).await.unwrap().families;
    assert_eq!(families.len(), 1);
    assert!(families[0].last_used_at >= after.now, "{families:?}");
}

#[tokio::test]
async fn an_error_fault_reaches_the_client_once_and_commits_nothing() {
    let world = World::start(|_| {}).await;
    let client = world.authorized_client().await;
    let fault = Fault::Error { error: "server_error".into(), error_description: Some("injected".into()), status: None };
    let queued = world.control.queue_fault(&FaultRequest::next(fault).for_grant_type("refresh_token")).await.unwrap();
    assert_eq!(queued.remaining, 1);
    // A password grant does not match: the fault waits for a refresh.
    world.client(Duration::from_secs(5)).request_token(password("bob", "bob-password")).await.unwrap();
    assert_eq!(world.control.faults().await.unwrap().faults.len(), 1);

    match client.refresh(None).await {
        Err(ClientError::TokenEndpoint { status: 500, error }) => assert_eq!(error.error, ErrorCode::ServerError),
        other => panic!("expected the injected server_error, got {other:?}"),
    }
    assert!(world.control.faults().await.unwrap().faults.is_empty(), "met once");
    // Nothing was committed: the same refresh token works on the next try.
    client.refresh(None).await.expect("the refresh token was not used up by the fault");

    // invalid_grant makes the client go back to step A, though the grant is still alive.
    let fault = Fault::Error { error: "invalid_grant".into(), error_description: None, status: None };
    world.control.queue_fault(&FaultRequest::next(fault).for_client("demo-client")).await.unwrap();
    assert!(matches!(client.refresh(None).await, Err(ClientError::ReauthorizationRequired(_))));
    let alice = FamilyFilter { subject: Some("alice".into()), ..FamilyFilter::default() };
    assert!(world.control.families(&alice).await.unwrap().families.iter().all(|f| f.revoked_at.is_none()));
}

#[tokio::test]
async fn a_response_lost_after_the_commit_without_grace_costs_the_client_its_grant() {
    let world = World::start(|_| {}).await;
    let client = world.authorized_client().await;
    world.control.queue_fault(&FaultRequest::next(Fault::LoseResponse).for_grant_type("refresh_token")).await.unwrap();
    // The refresh is committed (the token rotated) but the answer never arrives.
    match client.refresh(None).await {
        Err(ClientError::Http(figure2_http::ClientError::Transport { .. })) => {}
        other => panic!("expected a dropped connection, got {other:?}"),
    }
    assert_eq!(world.metric(&world.issuer, "figure2_refresh_outcomes_total{outcome=\"rotated\"}").await, 1.0);
    // The client retries with the token it still has: reuse of a rotated token, and
    // (RFC 9700 §4.14.2) the whole family is revoked.
    assert!(matches!(client.refresh(None).await, Err(ClientError::ReauthorizationRequired(_))));
    let families = world.control.families(&FamilyFilter::default()).await.unwrap().families;
    assert!(families[0].revoked_at.is_some(), "{families:?}");
    assert_eq!(world.metric(&world.issuer, "figure2_refresh_families_revoked_total").await, 1.0);
}

#[tokio::test]
async fn a_response_lost_after_the_commit_is_recovered_within_the_grace_period() {
    let world = World::start(|f| f.refresh_token_reuse_interval = Some(30)).await;
    let client = world.authorized_client().await;
    world.control.queue_fault(&FaultRequest::next(Fault::LoseResponse)).await.unwrap();
    assert!(client.refresh(None).await.is_err());
    // The retry presents the predecessor of the live token within 30 s: accepted.
    client.refresh(None).await.expect("accepted in the grace period");
    assert_eq!(world.metric(&world.issuer, "figure2_refresh_outcomes_total{outcome=\"accepted_in_grace\"}").await, 1.0);
    assert_eq!(client.call(Method::GET, &world.read(), None).await.unwrap().status, 200);
}

#[tokio::test]
async fn a_delay_fault_meets_the_clients_timeout() {
    let world = World::start(|_| {}).await;
    let patient = world.authorized_client().await;
    // A short delay: the client waits it out and gets its tokens.
    world.control.queue_fault(&FaultRequest::next(Fault::Delay { delay_ms: 50 })).await.unwrap();
    let started = std::time::Instant::now();
    patient.refresh(None).await.expect("a patient client gets the answer");
    assert!(started.elapsed() >= Duration::from_millis(50));

    // A long one against a client that gives up after 100 ms.
    let hasty = world.client(Duration::from_millis(100));
    world.control.queue_fault(&FaultRequest::next(Fault::Delay { delay_ms: 2_000 })).await.unwrap();
    match hasty.request_token(password("alice", "alice-password")).await {
        Err(ClientError::Http(figure2_http::ClientError::Timeout(_))) => {}
        other => panic!("expected the client's timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn users_and_clients_created_at_runtime_get_tokens_and_claims() {
    let world = World::start(|f| {
        for c in &mut f.clients {
            c.scope = format!("openid email {}", c.scope);
        }
    })
    .await;
    let new_client = NewClient {
        client_id: "app-under-test".into(),
        client_secret: Some("app-secret".into()),
        redirect_uris: vec![],
        grant_types: vec!["password".into(), "refresh_token".into()],
        scope: "read".into(),
    };
    world.control.create_client(&new_client).await.unwrap();
    let mut claims = serde_json::Map::new();
    claims.insert("email".into(), "carol@example.com".into());
    world
        .control
        .create_user(&NewUser { username: "carol".into(), password: "carol-password".into(), claims })
        .await
        .unwrap();
    // Creating either again is a conflict.
    match world.control.create_client(&new_client).await {
        Err(ControlClientError::Refused { status: 409, .. }) => {}
        other => panic!("expected 409, got {other:?}"),
    }
    let dup = NewUser { username: "alice".into(), password: "x".into(), claims: serde_json::Map::new() };
    assert!(matches!(world.control.create_user(&dup).await, Err(ControlClientError::Refused { status: 409, .. })));
    // A bad client is refused with the configuration's rules.
    let public_cc = NewClient {
        client_id: "p".into(),
        client_secret: None,
        redirect_uris: vec![],
        grant_types: vec!["client_credentials".into()],
        scope: "read".into(),
    };
    assert!(matches!(
        world.control.create_client(&public_cc).await,
        Err(ControlClientError::Refused { status: 400, .. })
    ));

    let config =
        ClientConfig::new("app-under-test", Some(ClientSecret::new("app-secret")), format!("{}/token", world.issuer));
    let client = Client::new(config, Arc::new(SystemClock), HttpClient::new());
    client.request_token(password("carol", "carol-password")).await.expect("runtime client and user");
    assert_eq!(client.call(Method::GET, &world.read(), None).await.unwrap().status, 200);
    client.refresh(None).await.unwrap();
    assert!(client.request_token(password("carol", "wrong")).await.is_err());
    let carol = FamilyFilter { subject: Some("carol".into()), ..FamilyFilter::default() };
    let families = world.control.families(&carol).await.unwrap().families;
    assert_eq!((families.len(), families[0].client_id.as_str()), (1, "app-under-test"));
}

#[tokio::test]
async fn families_are_listed_and_revoked_and_the_client_goes_back_to_step_a() {
    let world = World::start(|_| {}).await;
    let alice = world.authorized_client().await;
    let bob = world.client(Duration::from_secs(5));
    bob.request_token(password("bob", "bob-password")).await.unwrap();
    let all = world.control.families(&FamilyFilter::default()).await.unwrap().families;
    assert_eq!(all.len(), 2);
    let alice_only = FamilyFilter { subject: Some("alice".into()), ..FamilyFilter::default() };
    let families = world.control.families(&alice_only).await.unwrap().families;
    assert_eq!(families.len(), 1);
    assert_eq!((families[0].subject.as_str(), families[0].scope.as_str()), ("alice", "read"));

    assert!(matches!(
        world.control.revoke_families(&FamilyFilter::default()).await,
        Err(ControlClientError::Refused { status: 400, .. })
    ));
    let revoked = world.control.revoke_families(&alice_only).await.unwrap();
    assert_eq!(revoked.revoked, 1);
    assert_eq!(world.control.revoke_families(&alice_only).await.unwrap().revoked, 0, "already revoked");
    assert!(matches!(alice.refresh(None).await, Err(ClientError::ReauthorizationRequired(_))));
    bob.refresh(None).await.expect("bob's family is untouched");
    let by_id = FamilyFilter { id: Some(all[0].id), ..FamilyFilter::default() };
    assert!(world.control.revoke_families(&by_id).await.is_ok());
}

#[tokio::test]
async fn bad_control_calls_get_clear_errors() {
    let world = World::start(|_| {}).await;
    let http = HttpClient::new();
    let url = |p: &str| format!("{}/control{p}", world.issuer);
    let json = [("content-type", "application/json")];
    let r = http.send(Method::POST, &url("/faults"), &json, Some(r#"{"fault":"explode"}"#.into())).await.unwrap();
    assert_eq!(r.status, 400);
    let r = http.send(Method::POST, &url("/faults"), &json, Some(r#"{"fault":"error","error":"<b>"}"#.into())).await;
    assert_eq!(r.unwrap().status, 400);
    let r = http.send(Method::POST, &url("/clock/advance"), &[], Some(r#"{"seconds":1}"#.into())).await.unwrap();
    assert_eq!(r.status, 415, "JSON only");
    let r = http.send(Method::DELETE, &url("/clock"), &[], None).await.unwrap();
    assert_eq!(r.status, 405);
    let r = http.send(Method::GET, &url("/nothing"), &[], None).await.unwrap();
    assert_eq!(r.status, 404);
    // Clearing the queue.
    world.control.queue_fault(&FaultRequest::next(Fault::LoseResponse).times(3)).await.unwrap();
    world.control.clear_faults().await.unwrap();
    assert!(world.control.faults().await.unwrap().faults.is_empty());
    assert!(world.server.test_control_enabled());
}
