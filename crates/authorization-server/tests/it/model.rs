//! Property tests: random sequences of grant, refresh, replay of an old generation,
//! revocation, use by another client, and clock moves, checked against a small model of
//! RFC 6749 §6 and RFC 9700 §4.14.2.
//!
//! Two executors play the same operations:
//! - the store level: `SqliteStore` with `figure2_protocol::refresh::check_refresh` as the
//!   decision, called as the token endpoint calls it (fast: many cases);
//! - the HTTP level: the real authorization server over loopback with a simulated clock
//!   (slower: fewer cases).
//!
//! After every operation the answer must be the model's (accepted, or refused for the
//! model's reason), and these hold:
//! - a revoked token never works again;
//! - the scope never grows: no access token beyond the original grant, and the family's
//!   scope stays the grant's;
//! - at most one live refresh token per family, at all times;
//! - a retired token outside the grace period never works;
//! - and, so that a store refusing everything cannot pass: the live token of a family
//!   that is neither revoked, expired nor idle works.

use crate::support::*;
use figure2_authorization_server::store::{Grant, NewRefreshToken};
use figure2_authorization_server::{SqliteStore, Store};
use figure2_protocol::Scope;
use figure2_protocol::refresh::{RefreshPolicy, RefreshRejection, RefreshTokenStatus, check_refresh};
use figure2_protocol::secret::digest;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};

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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..3usize).prop_map(|scope| Op::Grant { scope }),
        5 => (0..4usize, prop::option::weighted(0.2, 0..4usize)).prop_map(|(family, scope)| Op::Refresh { family, scope }),
        3 => (0..4usize, 1..4usize).prop_map(|(family, back)| Op::Replay { family, back }),
        1 => (0..4usize).prop_map(|family| Op::Revoke { family }),
        1 => (0..4usize).prop_map(|family| Op::OtherClient { family }),
        3 => prop::sample::select(vec![1u64, 5, 10, 29, 31, 59, 61, 200, 1_000]).prop_map(|seconds| Op::Advance { seconds }),
    ]
}

/// A policy from the options users set (the same ranges the config file allows).
fn policy() -> impl Strategy<Value = RefreshPolicy> {
    (
        prop::bool::weighted(0.85),
        prop::sample::select(vec![None, Some(100u64), Some(1_000)]),
        prop::sample::select(vec![None, Some(60u64)]),
        prop::sample::select(vec![None, Some(300u64)]),
        prop::sample::select(vec![0u64, 10, 30]),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(rotate, lifetime, idle, absolute, reuse_interval, revoke_on_reuse)| RefreshPolicy {
            always_issue_new_refresh_token: rotate,
            refresh_token_lifetime: lifetime,
            refresh_token_idle_lifetime: idle,
            refresh_token_absolute_lifetime: absolute,
            refresh_token_reuse_interval: reuse_interval,
            revoke_family_on_reuse: revoke_on_reuse,
        })
}

fn scope(i: usize) -> Scope {
    Scope::parse(SCOPES[i]).expect("test scope")
}

/// One refresh token as the model sees it.
#[derive(Debug, Clone)]
struct Token {
    secret: String,
    expires_at: Option<u64>,
    retired_at: Option<u64>,
    /// Index of the token whose issue retired it (re-pointed by grace refreshes).
    retired_by: Option<usize>,
}

#[derive(Debug, Clone)]
struct Family {
    /// The store's id (store level only).
    id: i64,
    scope: Scope,
    created_at: u64,
    last_used_at: u64,
    revoked: bool,
    tokens: Vec<Token>,
}

impl Family {
    /// The family's one live token: the newest one not retired.
    fn live(&self) -> Option<usize> {
        self.tokens.iter().rposition(|t| t.retired_at.is_none())
    }
}

/// The model: RFC 6749 §6 and RFC 9700 §4.14.2 written out independently of the store.
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

    fn new_token(&mut self, created_at: u64) -> Token {
        let expires_at = self.policy.expiry_for_new_token(self.now, created_at);
        Token { secret: self.mint(), expires_at, retired_at: None, retired_by: None }
    }

    /// Picks an existing family for an operation's `family` index.
    fn family_index(&self, i: usize) -> Option<usize> {
        (!self.families.is_empty()).then(|| i % self.families.len())
    }

    fn expect(&self, f: usize, t: usize, same_client: bool, requested: Option<&Scope>) -> Expected {
        let family = &self.families[f];
        let token = &family.tokens[t];
        if !same_client {
            return Err(RefreshRejection::IssuedToAnotherClient);
        }
        if family.revoked {
            return Err(RefreshRejection::Revoked);
        }
        if let Some(at) = token.retired_at {
            let predecessor_of_live = family.live().is_some() && token.retired_by == family.live();
            let interval = self.policy.refresh_token_reuse_interval;
            if !(predecessor_of_live && interval > 0 && self.now <= at + interval) {
                return Err(RefreshRejection::Reused);
            }
        }
        if token.expires_at.is_some_and(|exp| self.now >= exp) {
            return Err(RefreshRejection::Expired);
        }
        if self.policy.refresh_token_idle_lifetime.is_some_and(|idle| self.now >= family.last_used_at + idle) {
            return Err(RefreshRejection::Idle);
        }
        match requested {
            Some(s) if !s.is_subset_of(&family.scope) => Err(RefreshRejection::ScopeExceedsGrant),
            Some(s) => Ok(s.clone()),
            None => Ok(family.scope.clone()),
        }
    }

    /// Applies the expected outcome; returns the new token, if one was issued.
    fn apply(&mut self, f: usize, presented: usize, expected: &Expected) -> Option<String> {
        match expected {
            Ok(_) => {
                self.families[f].last_used_at = self.now;
                if !self.policy.always_issue_new_refresh_token {
                    return None;
                }
                let created_at = self.families[f].created_at;
                let new = self.new_token(created_at);
                let secret = new.secret.clone();
                let now = self.now;
                let family = &mut self.families[f];
                let new_index = family.tokens.len();
                let live = family.live().expect("an accepted refresh implies a live token");
                // A grace refresh (the presented token is retired) retires the live token,
                // and the live token's predecessors become the new live token's: they stay
                // "the immediately previous token" for their own grace window.
                if presented != live {
                    for t in &mut family.tokens {
                        if t.retired_by == Some(live) {
                            t.retired_by = Some(new_index);
                        }
                    }
                }
                family.tokens[live].retired_at = Some(now);
                family.tokens[live].retired_by = Some(new_index);
                family.tokens.push(new);
                Some(secret)
            }
            Err(RefreshRejection::Reused) if self.policy.revoke_family_on_reuse => {
                self.families[f].revoked = true;
                None
            }
            Err(_) => None,
        }
    }

    /// Every token of every family, with what the model says its status is.
    fn expected_statuses(&self) -> Vec<(usize, &Token, &'static str)> {
        let mut out = Vec::new();
        for (f, family) in self.families.iter().enumerate() {
            for t in &family.tokens {
                let status = if family.revoked {
                    "revoked"
                } else if t.retired_at.is_some() {
                    "retired"
                } else {
                    "active"
                };
                out.push((f, t, status));
            }
        }
        out
    }
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
    if family.revoked {
        prop_assert!(got.is_err(), "a token of a revoked family worked");
    }
    if let Some(at) = token.retired_at
        && (model.policy.refresh_token_reuse_interval == 0
            || model.now > at + model.policy.refresh_token_reuse_interval)
    {
        prop_assert!(got.is_err(), "a token retired at {at} worked at {} outside the grace period", model.now);
    }
    if let Ok(granted) = got {
        prop_assert!(granted.is_subset_of(&family.scope), "scope grew: {granted} beyond {}", family.scope);
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

/// Presents token `t` of family `f` to the store, as `client`, the way the token endpoint does.
fn present_to_store(
    store: &SqliteStore,
    model: &mut Model,
    f: usize,
    t: usize,
    client: &str,
    requested: Option<Scope>,
) -> Result<(), TestCaseError> {
    let now = model.now;
    let presented = digest(&model.families[f].tokens[t].secret);
    let expected = model.expect(f, t, client == C1, requested.as_ref());
    check_answer(model, f, t, requested.as_ref(), &expected)?; // the model itself obeys the properties
    // The replacement the token endpoint prepares before the transaction.
    let created_at = store.family_created_at(&presented).expect("store").unwrap_or(now);
    prop_assert_eq!(created_at, model.families[f].created_at);
    let replacement_secret = model.mint();
    let replacement = NewRefreshToken {
        digest: digest(&replacement_secret),
        expires_at: model.policy.expiry_for_new_token(now, created_at),
    };
    let policy = model.policy.clone();
    let outcome = store
        .refresh(&presented, replacement, now, policy.revoke_family_on_reuse, &mut |state| {
            check_refresh(state, client, requested.as_ref(), now, &policy)
        })
        .expect("store");
    let got: Expected = match &outcome {
        Ok(refreshed) => {
            prop_assert_eq!(
                &refreshed.granted.refresh_token_scope,
                &model.families[f].scope,
                "§6: the refresh token keeps the grant's scope"
            );
            prop_assert_eq!(refreshed.rotated, policy.always_issue_new_refresh_token);
            Ok(refreshed.granted.access_token_scope.clone())
        }
        Err(refused) => {
            prop_assert_eq!(
                refused.family_revoked,
                refused.rejection == RefreshRejection::Reused && policy.revoke_family_on_reuse
            );
            Err(refused.rejection)
        }
    };
    check_answer(model, f, t, requested.as_ref(), &got)?;
    prop_assert_eq!(&got, &expected, "store and model disagree on family {} token #{} at t={}", f, t, now);
    if model.apply(f, t, &expected).is_some() {
        // The model minted its own name for the new token: use the store's.
        let family = &mut model.families[f];
        family.tokens.last_mut().expect("new token").secret = replacement_secret;
    }
    Ok(())
}

/// The store agrees with the model on every token's status; at most one is active per family.
fn check_store(store: &SqliteStore, model: &Model) -> Result<(), TestCaseError> {
    let mut active = vec![0usize; model.families.len()];
    for (f, token, want) in model.expected_statuses() {
        let info = store.refresh_token_info(&digest(&token.secret)).expect("store");
        let info = info.ok_or_else(|| TestCaseError::fail("a token the model knows is not stored"))?;
        let got = status_name(&info.state.status);
        prop_assert_eq!(got, want, "family {} token status", f);
        prop_assert_eq!(&info.grant.scope, &model.families[f].scope, "the family's scope changed");
        prop_assert_eq!(info.family_id, model.families[f].id);
        if got == "active" {
            active[f] += 1;
        }
    }
    prop_assert!(active.iter().all(|&n| n <= 1), "more than one live token in a family: {:?}", active);
    Ok(())
}

fn run_against_store(policy: RefreshPolicy, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store = SqliteStore::open(":memory:").expect("in-memory store");
    let mut model = Model::new(policy, START);
    for op in ops {
        match op {
            Op::Grant { scope: s } => {
                let token = model.new_token(model.now);
                let grant = Grant { client_id: C1.into(), subject: "alice".into(), scope: scope(s % 3) };
                let new = NewRefreshToken { digest: digest(&token.secret), expires_at: token.expires_at };
                let id = store.create_family(&grant, Some(new), model.now).expect("store");
                model.families.push(Family {
                    id,
                    scope: grant.scope,
                    created_at: model.now,
                    last_used_at: model.now,
                    revoked: false,
                    tokens: vec![token],
                });
            }
            Op::Refresh { family, scope: s } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len() - 1;
                    present_to_store(&store, &mut model, f, t, C1, s.map(scope))?;
                }
            }
            Op::Replay { family, back } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len().saturating_sub(1 + back);
                    present_to_store(&store, &mut model, f, t, C1, None)?;
                }
            }
            Op::OtherClient { family } => {
                if let Some(f) = model.family_index(family) {
                    let t = model.families[f].tokens.len() - 1;
                    present_to_store(&store, &mut model, f, t, C2, None)?;
                }
            }
            Op::Revoke { family } => {
                if let Some(f) = model.family_index(family) {
                    store.revoke_family(model.families[f].id, model.now, "test").expect("store");
                    model.families[f].revoked = true;
                }
            }
            Op::Advance { seconds } => model.now += seconds,
        }
        check_store(&store, &model)?;
    }
    Ok(())
}

#[test]
fn proptest_store_rotation_model() {
    let mut runner =
        TestRunner::new(ProptestConfig { cases: 384, failure_persistence: None, ..ProptestConfig::default() });
    runner
        .run(&(policy(), prop::collection::vec(op(), 1..40)), |(policy, ops)| run_against_store(policy, ops))
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
    let expected = model.expect(f, t, same_client, requested.as_ref());
    let requested_text = requested.as_ref().map(Scope::to_string);
    let r = server.refresh(auth, &model.families[f].tokens[t].secret.clone(), requested_text.as_deref()).await;
    let (got, new_token) = answer_of(&r)?;
    check_answer(model, f, t, requested.as_ref(), &got)?;
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
    prop_assert_eq!(new_token.is_some(), expected.is_ok() && model.policy.always_issue_new_refresh_token);
    if model.apply(f, t, &expected).is_some() {
        let family = &mut model.families[f];
        family.tokens.last_mut().expect("new token").secret = new_token.expect("checked above");
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
            prop_assert_eq!(&granted, &model.families[f].scope);
        }
    }
    prop_assert!(active.iter().all(|&n| n <= 1), "more than one live token in a family: {:?}", active);
    Ok(())
}

async fn run_over_http(config: (bool, u64, bool, u64), ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (rotate, reuse_interval, revoke_on_reuse, lifetime) = config;
    let server = Setup::demo()
        .configure(|c| {
            c.always_issue_new_refresh_token = rotate;
            c.refresh_token_reuse_interval = reuse_interval;
            c.revoke_family_on_reuse = revoke_on_reuse;
            c.refresh_token_lifetime = lifetime;
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
                let now = model.now;
                let mut token = model.new_token(now);
                token.secret = field(&b, "refresh_token");
                model.families.push(Family {
                    id: 0,
                    scope: granted,
                    created_at: now,
                    last_used_at: now,
                    revoked: false,
                    tokens: vec![token],
                });
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
                    model.families[f].revoked = true;
                }
            }
            Op::Advance { seconds } => {
                server.clock.advance(seconds);
                model.now += seconds;
            }
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
    let config = (
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
