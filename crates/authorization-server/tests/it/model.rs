//! Property tests: random sequences of grant, refresh, replay of an old generation,
//! revocation, use by another client, and clock moves, checked against a small model of
//! RFC 6749 §6 and RFC 9700 §4.14.2.
//!
//! The reference is the family state machine (`figure2_protocol::family`) run in memory;
//! two executors play the same operations and must give its answers:
//! - the store level: `SqliteStore::refresh`, called as the token endpoint calls it
//!   (fast: many cases);
//! - the HTTP level: the real authorization server over loopback with a simulated clock
//!   (slower: fewer cases).
//!
//! After every operation the answer must be the model's (accepted, or refused for the
//! model's reason), and these hold:
//! - a revoked token never works again;
//! - the scope never grows: no access token beyond the original grant, and the family's
//!   scope stays the grant's;
//! - at most one live refresh token per family, at all times;
//! - a retired token outside the grace period never works (and within it, only within
//!   every recovery limit of the policy: time, count, use);
//! - and, so that a store refusing everything cannot pass: the live token of a family
//!   that is neither revoked, expired nor idle works.

use crate::support::*;
use figure2_authorization_server::store::postgres::ScratchDatabase;
use figure2_authorization_server::store::{Directory, NewRefreshToken, RefreshCommand};
use figure2_authorization_server::{PostgresStore, SqliteStore, Store};
use figure2_protocol::Scope;
use figure2_protocol::family::{
    ClientRegistration, FamilyEffect, Grant, PresentedToken, RefreshGranted, RefreshRejection, RefreshRequest,
    RefreshTokenFamily, RefreshTokenStatus,
};
use figure2_protocol::refresh::{RefreshPolicy, ReuseRevokes};
use figure2_protocol::secret::digest;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use std::sync::Arc;

/// Scopes a grant or a refresh may ask for (by index).
const SCOPES: [&str; 4] = ["read", "write", "read write", "admin"];

#[derive(Debug, Clone)]
enum Op {
    /// Steps A → B: a new family with scope `SCOPES[scope % 3]`.
    Grant {
        scope: usize,
    },
    /// Steps G → H with the newest token of a family, optionally asking for a scope.
    Refresh {
        family: usize,
        scope: Option<usize>,
    },
    /// Presents the token `back` generations before the newest (a replay, or a retry).
    Replay {
        family: usize,
        back: usize,
    },
    /// RFC 7009 for the family.
    Revoke {
        family: usize,
    },
    /// Another (authenticated) client presents the family's newest token.
    OtherClient {
        family: usize,
    },
    Advance {
        seconds: u64,
    },
    /// RFC 7662 saw the access token issued with the family's live token in use.
    UseAccessToken {
        family: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3usize).prop_map(|scope| Op::Grant { scope }),
        5 => (0..4usize, prop::option::weighted(0.2, 0..4usize)).prop_map(|(family, scope)| Op::Refresh { family, scope }),
        3 => (0..4usize, 1..4usize).prop_map(|(family, back)| Op::Replay { family, back }),
        1 => (0..4usize).prop_map(|family| Op::Revoke { family }),
        1 => (0..4usize).prop_map(|family| Op::OtherClient { family }),
        3 => prop::sample::select(vec![1u64, 5, 10, 29, 31, 59, 61, 200, 1_000]).prop_map(|seconds| Op::Advance { seconds }),
        1 => (0..4usize).prop_map(|family| Op::UseAccessToken { family }),
    ]
}

/// A policy from the options users set (the same ranges the config file allows), or a
/// shipped preset as it is.
fn policy() -> impl Strategy<Value = RefreshPolicy> {
    let base = (
        prop::bool::weighted(0.85),
        prop::sample::select(vec![None, Some(100u64), Some(1_000)]),
        prop::sample::select(vec![None, Some(60u64)]),
        prop::sample::select(vec![None, Some(300u64)]),
        prop::sample::select(vec![0u64, 3, 10, 30]),
    );
    let recovery = (
        prop::sample::select(vec![None, Some(0u32), Some(1), Some(2)]),
        prop::bool::weighted(0.3),
        prop::bool::weighted(0.3),
        prop::sample::select(vec![ReuseRevokes::Family, ReuseRevokes::PresentedToken, ReuseRevokes::Nothing]),
        prop::sample::select(vec![None, Some(70u8)]),
    );
    let random = (base, recovery).prop_map(
        |((rotate, lifetime, idle, absolute, reuse_interval), (max_reuse, unused, idempotent, on_reuse, percent))| {
            RefreshPolicy {
                always_issue_new_refresh_token: rotate,
                rotate_after_lifetime_percent: percent,
                refresh_token_lifetime: lifetime,
                refresh_token_idle_lifetime: idle,
                refresh_token_absolute_lifetime: absolute,
                refresh_token_reuse_interval: reuse_interval,
                refresh_token_max_reuse: max_reuse,
                reuse_while_successor_unused: unused,
                reuse_returns_issued_successor: idempotent,
                on_reuse,
                issue_refresh_tokens_to_public_clients: true,
            }
        },
    );
    prop_oneof![random, prop::sample::select(figure2_protocol::presets::all()).prop_map(|p| p.policy)]
}

fn scope(i: usize) -> Scope {
    Scope::parse(SCOPES[i]).expect("test scope")
}

/// One refresh token as the model sees it.
#[derive(Debug, Clone)]
struct Token {
    secret: String,
    generation: u64,
    expires_at: Option<u64>,
    retired_at: Option<u64>,
    reuses: u32,
    /// The store forgot it (reuse revoking only the presented token): now unknown.
    forgotten: bool,
}

impl Token {
    fn new(secret: String, generation: u64, expires_at: Option<u64>) -> Self {
        Self { secret, generation, expires_at, retired_at: None, reuses: 0, forgotten: false }
    }

    fn presented(&self) -> PresentedToken {
        PresentedToken {
            generation: self.generation,
            expires_at: self.expires_at,
            retired_at: self.retired_at,
            reuses: self.reuses,
        }
    }
}

#[derive(Debug, Clone)]
struct Family {
    /// The store's id (store level only).
    id: i64,
    /// The reference: the family state machine of `figure2_protocol::family`, in memory.
    machine: RefreshTokenFamily,
    tokens: Vec<Token>,
}

impl Family {
    fn scope(&self) -> &Scope {
        &self.machine.grant.scope
    }

    fn revoked(&self) -> bool {
        self.machine.revoked.is_some()
    }
}

/// The model: the same family machine the stores run, applied in memory. The stores must
/// give its answers; `check_answer` checks the properties independently of it.
#[derive(Debug)]
struct Model {
    policy: RefreshPolicy,
    now: u64,
    families: Vec<Family>,
    minted: u64,
}

/// What the model expects of one presentation: the access token's scope, or the reason.
type Expected = Result<Scope, RefreshRejection>;

impl Model {
    fn new(policy: RefreshPolicy, now: u64) -> Self {
        Self { policy, now, families: Vec::new(), minted: 0 }
    }

    fn mint(&mut self) -> String {
        self.minted += 1;
        format!("model-token-{}", self.minted)
    }

    /// Step B in the model: a family with its first token.
    fn grant(&mut self, id: i64, scope: Scope, secret: Option<String>) -> &Family {
        let secret = secret.unwrap_or_else(|| self.mint());
        let expires_at = self.policy.expiry_for_new_token(self.now, self.now);
        let grant = Grant { client_id: C1.into(), subject: "alice".into(), scope, dpop_jkt: None };
        let machine = RefreshTokenFamily::new(grant, Some((digest(&secret), expires_at)), self.now);
        let token = Token::new(secret, 0, expires_at);
        self.families.push(Family { id, machine, tokens: vec![token] });
        self.families.last().expect("just pushed")
    }

    /// Picks an existing family for an operation's `family` index.
    fn family_index(&self, i: usize) -> Option<usize> {
        (!self.families.is_empty()).then(|| i % self.families.len())
    }

    fn request(&self, client: &str, requested: Option<&Scope>, replacement: &str) -> RefreshRequest {
        RefreshRequest {
            client: ClientRegistration {
                client_id: client.into(),
                scope: Scope::parse("read write admin").unwrap(),
                public: false,
            },
            subject_registered: true,
            requested_scope: requested.cloned(),
            dpop_jkt: None,
            replacement: digest(replacement),
            access_token_id: Some(access_token_id(replacement)),
            now: self.now,
        }
    }

    /// Runs the machine for token `t` of family `f` and applies the transition; returns
    /// the decision and whether a new token was issued (named `replacement`).
    fn present(
        &mut self,
        f: usize,
        t: usize,
        client: &str,
        requested: Option<&Scope>,
        replacement: &str,
    ) -> (Result<RefreshGranted, RefreshRejection>, bool) {
        let request = self.request(client, requested, replacement);
        let family = &mut self.families[f];
        if family.tokens[t].forgotten {
            return (Err(RefreshRejection::Unknown), false);
        }
        let transition = family.machine.refresh(&family.tokens[t].presented(), &request, &self.policy);
        let mut issued = false;
        for effect in &transition.effects {
            match effect {
                FamilyEffect::RetireLive { generation, at, .. } => {
                    for token in family.tokens.iter_mut().filter(|tk| tk.generation == *generation) {
                        token.retired_at = Some(*at);
                    }
                }
                FamilyEffect::IssueLive(live) => {
                    issued = true;
                    family.tokens.push(Token::new(replacement.to_owned(), live.generation, live.expires_at));
                }
                FamilyEffect::RecordReuse { reuses } => family.tokens[t].reuses = *reuses,
                FamilyEffect::ForgetPresented => family.tokens[t].forgotten = true,
                FamilyEffect::DiscardLive { generation, .. } => {
                    for token in family.tokens.iter_mut().filter(|tk| tk.generation == *generation) {
                        token.forgotten = true;
                    }
                }
                _ => {}
            }
            family.machine.apply(effect);
        }
        (transition.decision, issued)
    }

    /// Every token of every family, with what the model says its status is.
    fn expected_statuses(&self) -> Vec<(usize, &Token, &'static str)> {
        let mut out = Vec::new();
        for (f, family) in self.families.iter().enumerate() {
            for t in family.tokens.iter().filter(|t| !t.forgotten) {
                out.push((f, t, status_name(&family.machine.status_of(&t.presented()))));
            }
        }
        out
    }
}

/// The `jti` digest the model gives the access token issued with `replacement`.
fn access_token_id(replacement: &str) -> figure2_protocol::secret::TokenDigest {
    digest(&format!("jti-{replacement}"))
}

fn status_name(s: &RefreshTokenStatus) -> &'static str {
    match s {
        RefreshTokenStatus::Active => "active",
        RefreshTokenStatus::Retired { .. } => "retired",
        RefreshTokenStatus::Revoked => "revoked",
    }
}

/// The properties every answer must have, whatever the model says.
fn check_answer(
    model: &Model,
    f: usize,
    t: usize,
    requested: Option<&Scope>,
    got: &Expected,
) -> Result<(), TestCaseError> {
    let family = &model.families[f];
    let token = &family.tokens[t];
    if family.revoked() {
        prop_assert!(got.is_err(), "a token of a revoked family worked");
    }
    if let Some(at) = token.retired_at {
        let successor_used = family.machine.live.is_some_and(|l| l.access_token_used);
        if !model.policy.allows_reuse(at, token.reuses, successor_used, model.now) {
            prop_assert!(got.is_err(), "a token retired at {at} worked at {} outside every recovery limit", model.now);
        }
    }
    if let Ok(granted) = got {
        prop_assert!(granted.is_subset_of(family.scope()), "scope grew: {granted} beyond {}", family.scope());
        if let Some(r) = requested {
            prop_assert_eq!(granted, r);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Store level
// ---------------------------------------------------------------------------------------

const C1: &str = "c1";
const C2: &str = "c2";

/// Presents token `t` of family `f` to the store, as `client`, the way the token endpoint
/// does, and to the model; both must answer the same.
async fn present_to_store(
    store: &dyn Store,
    model: &mut Model,
    f: usize,
    t: usize,
    client: &str,
    requested: Option<Scope>,
) -> Result<(), TestCaseError> {
    let now = model.now;
    let presented = digest(&model.families[f].tokens[t].secret);
    let replacement = model.mint();
    let request = model.request(client, requested.as_ref(), &replacement);
    let policy = Arc::new(model.policy.clone());
    let command = RefreshCommand { presented, request, policy: policy.clone(), directory: Arc::new(Everyone) };
    let outcome = store.refresh(command).await.expect("store");
    let revoked = outcome.transition.revokes_family();
    let got: Expected = match &outcome.transition.decision {
        Ok(granted) => {
            prop_assert_eq!(
                &granted.refresh_token_scope,
                model.families[f].scope(),
                "§6: the refresh token keeps the grant's scope"
            );
            Ok(granted.access_token_scope.clone())
        }
        Err(rejection) => {
            prop_assert_eq!(revoked, *rejection == RefreshRejection::Reused && policy.revokes_family_on_reuse());
            Err(*rejection)
        }
    };
    check_answer(model, f, t, requested.as_ref(), &got)?;
    let (expected, _) = model.present(f, t, client, requested.as_ref(), &replacement);
    // The whole decision: scope, the token issued (or handed back again), grace.
    prop_assert_eq!(
        &outcome.transition.decision,
        &expected,
        "store and model disagree on family {} token #{} at t={}",
        f,
        t,
        now
    );
    Ok(())
}

/// Everyone is registered (registration changes are tested in `refresh.rs`).
struct Everyone;

impl Directory for Everyone {
    fn subject_registered(&self, _: &str) -> bool {
        true
    }
}

/// The store agrees with the model on every token's status; at most one is active per family.
async fn check_store(store: &dyn Store, model: &Model) -> Result<(), TestCaseError> {
    let mut active = vec![0usize; model.families.len()];
    for token in model.families.iter().flat_map(|f| &f.tokens).filter(|t| t.forgotten) {
        let info = store.refresh_token_info(digest(&token.secret)).await.expect("store");
        prop_assert!(info.is_none(), "a token reuse should have made the store forget is still known");
    }
    for (f, token, want) in model.expected_statuses() {
        let info = store.refresh_token_info(digest(&token.secret)).await.expect("store");
        let info = info.ok_or_else(|| TestCaseError::fail("a token the model knows is not stored"))?;
        let got = status_name(&info.status());
        prop_assert_eq!(got, want, "family {} token status", f);
        prop_assert_eq!(&info.grant().scope, model.families[f].scope(), "the family's scope changed");
        prop_assert_eq!(info.family_id, model.families[f].id);
        prop_assert_eq!(info.presented.reuses, token.reuses, "reuse count of family {}", f);
        prop_assert_eq!(info.family.live, model.families[f].machine.live, "live token of family {}", f);
        if got == "active" {
            active[f] += 1;
        }
    }
    prop_assert!(active.iter().all(|&n| n <= 1), "more than one live token in a family: {:?}", active);
    Ok(())
}

async fn run_against_store(store: &dyn Store, policy: RefreshPolicy, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model::new(policy, START);
    for op in ops {
        match op {
            Op::Grant { scope: s } => {
                let family = model.grant(0, scope(s % 3), None);
                let token = &family.tokens[0];
                let new = NewRefreshToken { digest: digest(&token.secret), expires_at: token.expires_at };
                let id = store.create_family(family.machine.grant.clone(), Some(new), model.now).await.expect("store");
                model.families.last_mut().expect("just granted").id = id;
            }
            Op::Refresh { family, scope: s } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len() - 1;
                    present_to_store(store, &mut model, f, t, C1, s.map(scope)).await?;
                }
            }
            Op::Replay { family, back } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len().saturating_sub(1 + back);
                    present_to_store(store, &mut model, f, t, C1, None).await?;
                }
            }
            Op::OtherClient { family } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len() - 1;
                    present_to_store(store, &mut model, f, t, C2, None).await?;
                }
            }
            Op::Revoke { family } => {
                if let Some(f) = model.family_index(family) {
                    store.revoke_family(model.families[f].id, model.now, "test").await.expect("store");
                    let now = model.now;
                    let machine = &mut model.families[f].machine;
                    for effect in machine.revoke(now, "test") {
                        machine.apply(&effect);
                    }
                }
            }
            Op::Advance { seconds } => model.now += seconds,
            Op::UseAccessToken { family } => {
                if let Some(f) = model.family_index(family) {
                    let now = model.now;
                    let machine = &mut model.families[f].machine;
                    if let Some(id) = machine.live.and_then(|l| l.access_token_id) {
                        let changed = store.record_access_token_use(id, now).await.expect("store");
                        let effects = machine.access_token_used(&id, now);
                        prop_assert_eq!(changed, !effects.is_empty());
                        for effect in &effects {
                            machine.apply(effect);
                        }
                    }
                }
            }
        }
        check_store(store, &model).await?;
    }
    Ok(())
}

#[test]
fn proptest_store_rotation_model() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&(policy(), prop::collection::vec(op(), 1..40)), |(policy, ops)| {
            let store = SqliteStore::open(":memory:").expect("in-memory store");
            runtime.block_on(run_against_store(&store, policy, ops))
        })
        .unwrap();
}

/// The same model, the same operations, against the PostgreSQL store: the same answers
/// as SQLite (each case in a schema of its own).
#[test]
fn proptest_store_rotation_model_postgres() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let Some(base) = crate::support::postgres_server("proptest_store_rotation_model_postgres") else { return };
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&(policy(), prop::collection::vec(op(), 1..40)), |(policy, ops)| {
            runtime.block_on(async {
                let scratch = ScratchDatabase::create(&base).await.expect("scratch schema");
                let store = PostgresStore::connect(scratch.url()).await.expect("PostgreSQL store");
                let result = run_against_store(&store, policy, ops).await;
                drop(store);
                drop(scratch);
                result
            })
        })
        .unwrap();
}

// ---------------------------------------------------------------------------------------
// HTTP level
// ---------------------------------------------------------------------------------------

/// The answer of the token endpoint, in the model's terms.
fn answer_of(r: &figure2_http::ReceivedResponse) -> Result<(Expected, Option<String>), TestCaseError> {
    prop_assert!(r.status < 500, "server error: {} {}", r.status, r.body_text());
    let body = json_body(r);
    if r.status == 200 {
        let scope =
            Scope::parse(body["scope"].as_str().unwrap_or_default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        Ok((Ok(scope), body["refresh_token"].as_str().map(str::to_owned)))
    } else {
        prop_assert_eq!(r.status, 400);
        // On the wire only two reasons are told apart (RFC 9700 §4.14: say no more).
        let rejection = match body["error"].as_str() {
            Some("invalid_scope") => RefreshRejection::ScopeExceedsGrant,
            Some("invalid_grant") => RefreshRejection::Unknown,
            other => return Err(TestCaseError::fail(format!("unexpected error {other:?}"))),
        };
        Ok((Err(rejection), None))
    }
}

fn wire(e: &Expected) -> Result<(), RefreshRejection> {
    match e {
        Ok(_) => Ok(()),
        Err(RefreshRejection::ScopeExceedsGrant) => Err(RefreshRejection::ScopeExceedsGrant),
        Err(_) => Err(RefreshRejection::Unknown),
    }
}

async fn present_over_http(
    server: &TestServer,
    model: &mut Model,
    f: usize,
    t: usize,
    auth: Auth,
    requested: Option<Scope>,
) -> Result<(), TestCaseError> {
    let same_client = matches!(auth, Auth::Basic("demo-client", _));
    let requested_text = requested.as_ref().map(Scope::to_string);
    let r = server.refresh(auth, &model.families[f].tokens[t].secret.clone(), requested_text.as_deref()).await;
    let (got, new_token) = answer_of(&r)?;
    check_answer(model, f, t, requested.as_ref(), &got)?;
    let replacement = new_token.clone().unwrap_or_default();
    let client = if same_client { C1 } else { C2 };
    let (decision, issued) = model.present(f, t, client, requested.as_ref(), &replacement);
    let reissued = decision.as_ref().is_ok_and(|g| g.reissued);
    let expected: Expected = decision.map(|g| g.access_token_scope);
    prop_assert_eq!(
        wire(&got),
        wire(&expected),
        "server and model disagree on family {} token #{} at t={}",
        f,
        t,
        model.now
    );
    if let Ok(s) = &expected {
        prop_assert_eq!(got.as_ref().ok(), Some(s));
    }
    prop_assert_eq!(new_token.is_some(), issued || reissued);
    if reissued {
        // Idempotent retry: the very successor the model already holds.
        let live = model.families[f].tokens.iter().rev().find(|t| t.retired_at.is_none()).map(|t| t.secret.clone());
        prop_assert_eq!(new_token, live, "an idempotent retry returned another token");
    }
    Ok(())
}

/// RFC 7662 agrees with the model: at most one active refresh token per family.
async fn check_introspection(server: &TestServer, model: &Model) -> Result<(), TestCaseError> {
    let mut active = vec![0usize; model.families.len()];
    for (f, token, want) in model.expected_statuses() {
        let answer = server.introspect(DEMO, &token.secret).await;
        if answer["active"] == true {
            active[f] += 1;
            prop_assert_eq!(want, "active", "an introspected {} token is active", want);
            let granted = Scope::parse(answer["scope"].as_str().unwrap_or_default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&granted, model.families[f].scope());
        }
    }
    prop_assert!(active.iter().all(|&n| n <= 1), "more than one live token in a family: {:?}", active);
    Ok(())
}

/// The configuration of one HTTP case: a preset, or options over Figure2's default.
type HttpConfig = (Option<&'static str>, bool, u64, bool, u64);

async fn run_over_http(config: HttpConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (preset, rotate, reuse_interval, revoke_on_reuse, lifetime) = config;
    let server = Setup::demo()
        .configure(|c| match preset {
            Some(name) => c.preset = Some(name.to_owned()),
            None => {
                c.always_issue_new_refresh_token = Some(rotate);
                c.refresh_token_reuse_interval = Some(reuse_interval);
                c.revoke_family_on_reuse = Some(revoke_on_reuse);
                c.refresh_token_lifetime = Some(lifetime);
            }
        })
        .start()
        .await;
    let mut model = Model::new(server.server.config().refresh.clone(), START);
    let mut grants = 0;
    for op in ops {
        match op {
            Op::Grant { scope: s } => {
                // Password grants verify argon2: keep them few.
                if grants == 3 {
                    continue;
                }
                grants += 1;
                let granted = scope(s % 3);
                let b = server.password_grant(DEMO, Some(&granted.to_string())).await;
                model.grant(0, granted, Some(field(&b, "refresh_token")));
            }
            Op::Refresh { family, scope: s } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len() - 1;
                    present_over_http(&server, &mut model, f, t, DEMO, s.map(scope)).await?;
                }
            }
            Op::Replay { family, back } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len().saturating_sub(1 + back);
                    present_over_http(&server, &mut model, f, t, DEMO, None).await?;
                }
            }
            Op::OtherClient { family } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len() - 1;
                    present_over_http(&server, &mut model, f, t, OTHER, None).await?;
                }
            }
            Op::Revoke { family } => {
                if let Some(f) = model.family_index(family) {
                    let token = model.families[f].tokens[0].secret.clone();
                    let r = server.revoke(DEMO, &token, Some("refresh_token")).await;
                    prop_assert_eq!(r.status, 200);
                    let now = model.now;
                    let machine = &mut model.families[f].machine;
                    for effect in machine.revoke(now, "test") {
                        machine.apply(&effect);
                    }
                }
            }
            Op::Advance { seconds } => {
                server.clock.advance(seconds);
                model.now += seconds;
            }
            // Access-token use over HTTP is tested in refresh.rs (it needs the access token).
            Op::UseAccessToken { .. } => {}
        }
        check_introspection(&server, &model).await?;
    }
    server.stop().await;
    Ok(())
}

#[test]
fn proptest_http_rotation_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() });
    let presets: Vec<Option<&'static str>> =
        std::iter::once(None).chain(figure2_protocol::presets::all().iter().map(|p| Some(p.name))).collect();
    let config = (
        prop::sample::select(presets),
        prop::bool::weighted(0.85),
        prop::sample::select(vec![0u64, 30]),
        prop::bool::weighted(0.8),
        prop::sample::select(vec![0u64, 1_000]),
    );
    runner
        .run(&(config, prop::collection::vec(op(), 1..16)), |(config, ops)| {
            runtime.block_on(run_over_http(config, ops))
        })
        .unwrap();
}
