//! Server checks: each is a short sequence of raw HTTP steps against an authorization
//! server (and a resource server), with expectations on status, OAuth error, headers,
//! JSON fields and the access token's JWT. They run against a [`Target`]: Figure2's own
//! roles in-process (simulated clock, signing key at hand) or anyone's servers over
//! real HTTP with the real clock.

use super::{CheckResult, Keyword, Need, Role, Verdict, forge};
use figure2_http::{HttpClient, ReceivedResponse};
use figure2_protocol::access_token::decode_unverified;
use figure2_protocol::bearer::BearerChallenge;
use figure2_protocol::client_auth::ClientAuthentication;
use figure2_protocol::dpop::{self, DpopChallenge, ProofKey};
use figure2_protocol::metadata::AuthorizationServerMetadata;
use figure2_protocol::{Clock, Scope, SimulatedClock};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A file of server checks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCatalogue {
    pub role: Role,
    #[serde(rename = "check")]
    pub checks: Vec<ServerCheck>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerCheck {
    /// Stable identifier, e.g. `AS-6-narrower-scope`.
    pub id: String,
    /// The section it checks, e.g. `RFC 6749 §6`.
    pub section: String,
    pub keyword: Keyword,
    /// The requirement in one line.
    pub summary: String,
    #[serde(default)]
    pub needs: Vec<Need>,
    #[serde(rename = "step")]
    pub steps: Vec<HttpStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// A new token family from the target's token source (password grant,
    /// `--token-command`, the shared `--refresh-token`, or for checks needing only an
    /// access token the client credentials grant); its tokens become `{access_token}` and
    /// `{refresh_token}`. See [`TokenSources`].
    Grant,
    /// Narrows the current tokens to the first single scope value that still reads the
    /// resource (`--resource`), by a refresh with that scope (or, without a refresh token,
    /// a new client credentials grant): a token the scope-limited resource must refuse.
    NarrowScope,
    /// A request to the token endpoint built from `form`, `auth`, `method`.
    Token,
    /// `grant_type=refresh_token` with the current refresh token (or `form`); on 200 the
    /// new tokens replace the current ones.
    Refresh,
    /// `GET url`.
    Get,
    /// A request to the resource server with `token` (or a raw `authorization`).
    Resource,
    /// RFC 7009 revocation of `token`.
    Revoke,
    /// RFC 7662 introspection of `token`.
    Introspect,
    /// Let time pass: `seconds`, or `until = "access_token_expiry"`.
    Wait,
    /// In-process only: the authorization server adds a signing key, which signs from now
    /// on; the previous one is kept for `forge:retired-key`.
    RotateKey,
    /// In-process only: the authorization server stops publishing every key but the one
    /// that signs (as `authorization-server retire-key` and a restart would).
    RetireKeys,
}

/// How a step authenticates the client (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// `Authorization: Basic` (the default).
    Basic,
    /// `client_id` and `client_secret` in the body.
    Post,
    /// Basic and `client_secret` in the body: two methods.
    Both,
    /// No authentication at all.
    None,
    /// The second client's Basic credentials.
    Other,
    /// Basic with a wrong secret.
    Wrong,
    /// Basic for the client, and a body `client_id` naming another client (the second
    /// client if given, else an id no server registered): conflicting identification.
    BasicOtherClientId,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStep {
    #[serde(rename = "do")]
    pub kind: StepKind,
    pub method: Option<String>,
    pub url: Option<String>,
    pub auth: Option<AuthKind>,
    /// Form parameters as `[name, value]` pairs (values are templates; order and
    /// repetition are kept).
    #[serde(default)]
    pub form: Vec<(String, String)>,
    pub content_type: Option<String>,
    /// A raw request body instead of `form` (a template; `\xHH` is the raw byte HH, for
    /// bodies that are not UTF-8). Auth headers still follow `auth`.
    pub body: Option<String>,
    /// For `grant`: the scope to ask for.
    pub scope: Option<String>,
    /// A template, or `forge:KIND` for a crafted token (see [`forge`]).
    pub token: Option<String>,
    /// A raw `Authorization` header value (template).
    pub authorization: Option<String>,
    /// Query appended to the resource URL (template).
    pub query: Option<String>,
    /// `resource` (default) or `scope_limited_resource`.
    pub target: Option<String>,
    /// RFC 9449: send a `DPoP` proof with this request (`dpop = {}` for a valid one made
    /// with the check's key; the fields spoil it on purpose). At the resource server the
    /// token then goes in `Authorization: DPoP` unless `scheme` says otherwise.
    pub dpop: Option<ProofSpec>,
    /// For `resource`: the authorization scheme, `bearer` or `dpop` (default: `dpop` when
    /// the step sends a proof, else `bearer`).
    pub scheme: Option<String>,
    pub seconds: Option<u64>,
    pub until: Option<String>,
    #[serde(default)]
    pub expect: HttpExpect,
    /// Further expectations on the same answer, each with its own key word: a step that
    /// tests requirements of different strength (RFC 6750 §3's MUST header and §3.1's
    /// SHOULD 403) reports the strongest one broken. `expect` carries the check's keyword.
    #[serde(default)]
    pub also: Vec<KeyedExpect>,
    /// The situation the check is about, judged before `expect`: an answer that does not
    /// meet it skips the check as not exercised instead of failing it (a server that does
    /// not introspect refresh tokens may answer `active: false`, RFC 7662 §2.2).
    pub situation: Option<HttpExpect>,
}

/// A DPoP proof for a step (RFC 9449 §4.2): valid unless a field spoils it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofSpec {
    /// `other`: signed with a second key the check made, not the one its tokens are bound to.
    pub key: Option<String>,
    /// `htm` instead of the request's method (§4.3 point 8).
    pub htm: Option<String>,
    /// `htu` instead of the request's URI (a template, §4.3 point 9).
    pub htu: Option<String>,
    /// Seconds added to now for `iat` (negative: in the past, §4.3 point 11).
    pub iat: Option<i64>,
    /// Send the previous step's proof again, unchanged (same `jti`, §11.1).
    #[serde(default)]
    pub replay: bool,
    /// Put the private key (`d`) in the header's `jwk` (§4.3 point 7).
    #[serde(default)]
    pub private_jwk: bool,
    /// `HS256`: a symmetric MAC keyed with the public key's `x` (§4.3 point 5).
    pub alg: Option<String>,
    /// `wrong`: an `ath` that is not the hash of the access token (§4.3 point 12).
    pub ath: Option<String>,
}

/// Expectations with the key word of the requirement they test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyedExpect {
    pub keyword: Keyword,
    pub expect: HttpExpect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpect {
    /// One status, or any of several.
    pub status: Option<StatusSpec>,
    /// §5.2 `error` in a JSON body: one code, or any of several.
    pub error: Option<ErrorSpec>,
    /// Any answer but this §5.2 `error` (the status and the rest are free).
    pub error_not: Option<String>,
    /// RFC 6750 `error` in `WWW-Authenticate: Bearer`; `""` means a challenge with no error.
    pub bearer_error: Option<String>,
    /// Headers that must be present, with a value containing this (case-insensitive).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub json_has: Vec<String>,
    #[serde(default)]
    pub json_lacks: Vec<String>,
    /// JSON fields with exact values (string values are templates).
    #[serde(default)]
    pub json_equals: BTreeMap<String, toml::Value>,
    /// The whole body must be exactly this JSON.
    pub json_exactly: Option<String>,
    /// The granted scope, compared as a set.
    pub scope: Option<String>,
    /// `token_type`, if present, is an access token type of RFC 6749 §7.1 (the IANA
    /// "OAuth Access Token Types" registry: `Bearer`, `N_A`, `PoP`, `DPoP`), not an
    /// RFC 7009 `token_type_hint` value such as `refresh_token` (RFC 7662 §2.2).
    #[serde(default)]
    pub token_type_is_access_token_type: bool,
    pub refresh_token_changed: Option<bool>,
    pub access_token_changed: Option<bool>,
    /// RFC 6750 §3: if the answer refuses access (400, 401 or 403), it carries a
    /// `WWW-Authenticate: Bearer` challenge (an answer that serves the request is not
    /// judged here).
    #[serde(default)]
    pub challenge_when_refused: bool,
    pub jwt: Option<JwtExpect>,
    /// RFC 9449 §7.1: the error of the `WWW-Authenticate: DPoP` challenge; `""` means a
    /// DPoP challenge with no error.
    pub dpop_error: Option<String>,
    /// RFC 9449 §6.1: the issued JWT access token's `cnf.jkt` is the check's key thumbprint.
    #[serde(default)]
    pub cnf_jkt_is_proof_key: bool,
    /// RFC 9110 §9.3.2: the same status as the previous step's answer, with
    /// `WWW-Authenticate` if and only if that answer had it (HEAD answers as GET does).
    #[serde(default)]
    pub as_previous: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StatusSpec {
    One(u16),
    Any(Vec<u16>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ErrorSpec {
    One(String),
    Any(Vec<String>),
}

impl ErrorSpec {
    fn matches(&self, error: Option<&str>) -> bool {
        match self {
            Self::One(e) => error == Some(e.as_str()),
            Self::Any(list) => error.is_some_and(|e| list.iter().any(|l| l == e)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::One(e) => e.clone(),
            Self::Any(list) => list.join(" or "),
        }
    }
}

impl StatusSpec {
    fn matches(&self, status: u16) -> bool {
        match self {
            Self::One(s) => *s == status,
            Self::Any(list) => list.contains(&status),
        }
    }
}

/// Expectations on the access token of a token response (RFC 9068).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtExpect {
    pub typ: Option<String>,
    #[serde(default)]
    pub claims: Vec<String>,
    #[serde(default)]
    pub iss_is_issuer: bool,
    /// The header's `kid` names a key of the JWKS and the signature verifies with it.
    #[serde(default)]
    pub verifies_with_jwks: bool,
    #[serde(default)]
    pub alg_not_none: bool,
    /// The `scope` claim equals the granted scope.
    #[serde(default)]
    pub scope_claim: bool,
}

/// How time passes for the target.
#[derive(Debug, Clone)]
pub enum TimeSource {
    Simulated(SimulatedClock),
    /// Real time: waits up to `max_wait` seconds, else the check is skipped.
    Real {
        max_wait: u64,
    },
}

/// The servers under test and what the checker may use.
#[derive(Clone)]
pub struct Target {
    pub issuer: String,
    pub metadata: AuthorizationServerMetadata,
    pub client_id: String,
    pub client_secret: String,
    pub other_client: Option<(String, String)>,
    /// A resource owner's credentials for the password grant.
    pub user: Option<(String, String)>,
    /// The other ways to get tokens.
    pub sources: TokenSources,
    pub scope: Option<String>,
    pub resource: Option<String>,
    pub scope_limited_resource: Option<String>,
    pub time: TimeSource,
    /// Where the metadata came from, when not the RFC 8414 well-known URL of `issuer`
    /// (a server that publishes only OpenID Connect Discovery).
    pub metadata_url: Option<String>,
    /// In-process only: the authorization server's signing key, for crafted tokens.
    pub forge: Option<Arc<dyn crate::Forge>>,
    /// Whether the authorization server binds this client's refresh tokens to its DPoP
    /// key (RFC 9449 §5: always for public clients; for confidential ones as configured).
    pub dpop_bound_refresh_tokens: bool,
    pub http: HttpClient,
}

/// Where tokens come from when the password grant is not available (most servers today
/// do not offer it): RFC 6749 §1.5 (A) by any grant.
#[derive(Clone, Default)]
pub struct TokenSources {
    /// A shell command (`sh -c`) run whenever a check needs a new family; it prints an
    /// RFC 6749 §5.1 token response as JSON on stdout. It gets `FIGURE2_ISSUER`,
    /// `FIGURE2_TOKEN_ENDPOINT`, `FIGURE2_AUTHORIZATION_ENDPOINT`, `FIGURE2_CLIENT_ID`,
    /// `FIGURE2_CLIENT_SECRET` and `FIGURE2_SCOPE`.
    pub command: Option<String>,
    /// One refresh token supplied by the user: the checks that need only one family share
    /// it one after the other, each starting with a refresh of its live token.
    pub refresh_token: Option<Arc<std::sync::Mutex<SharedFamily>>>,
    /// Whether the client credentials grant (RFC 6749 §4.4) may give the checks that need
    /// only an access token their token.
    pub client_credentials: bool,
}

/// The family of a user-supplied refresh token, shared by the checks in turn.
#[derive(Debug, Clone)]
pub struct SharedFamily {
    /// The refresh token to present next.
    pub live: String,
    /// The last check that used it (named when the family stops working).
    pub last_used_by: Option<String>,
}

impl TokenSources {
    /// One shared family from a user-supplied refresh token.
    pub fn shared_refresh_token(token: String) -> Arc<std::sync::Mutex<SharedFamily>> {
        Arc::new(std::sync::Mutex::new(SharedFamily { live: token, last_used_by: None }))
    }
}

/// Where a check's tokens came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Password,
    Command,
    SharedRefreshToken,
    ClientCredentials,
}

impl Target {
    fn has(&self, need: Need) -> Option<&'static str> {
        let family = self.user.is_some() || self.sources.command.is_some();
        let ok = match need {
            Need::PasswordGrant => self.user.is_some(),
            Need::Tokens => family || self.sources.refresh_token.is_some(),
            Need::NewFamily => family,
            Need::AccessToken => family || self.sources.refresh_token.is_some() || self.sources.client_credentials,
            Need::OtherClient => self.other_client.is_some(),
            Need::Resource => self.resource.is_some(),
            Need::ScopeLimitedResource => self.scope_limited_resource.is_some(),
            Need::Revocation => self.metadata.revocation_endpoint.is_some(),
            Need::Introspection => self.metadata.introspection_endpoint.is_some(),
            Need::RefreshTokenExpiry | Need::Forge => self.forge.is_some(),
            // Decided while the check runs.
            Need::Rotation | Need::JwtAccessTokens => true,
            Need::Dpop => self
                .metadata
                .dpop_signing_alg_values_supported
                .as_ref()
                .is_some_and(|algs| algs.iter().any(|a| a == "ES256")),
            Need::DpopBoundRefreshTokens => self.dpop_bound_refresh_tokens,
        };
        (!ok).then(|| need.describe())
    }

    fn keys(&self) -> forge::Keys<'_> {
        forge::Keys { http: &self.http, jwks_uri: self.metadata.jwks_uri.as_deref(), forge: self.forge.as_deref() }
    }

    fn now(&self) -> u64 {
        match &self.time {
            TimeSource::Simulated(c) => c.now(),
            TimeSource::Real { .. } => figure2_protocol::SystemClock.now(),
        }
    }
}

/// The state of one check while it runs: the current tokens and every value steps may
/// refer to as `{name}`.
struct Run<'t> {
    target: &'t Target,
    vars: HashMap<String, String>,
    refresh_tokens: Vec<String>,
    expires_in: Option<u64>,
    last_token_response: Option<serde_json::Value>,
    /// The signing key a `rotate_key` step replaced.
    /// Whether a `rotate_key` step ran in this check (`forge:retired-key` needs one).
    rotated_key: bool,
    /// Where this check's tokens came from.
    source: Option<Source>,
    /// RFC 9449: the check's DPoP key, a second one, the last proof sent and the last
    /// `DPoP-Nonce` each origin gave.
    dpop: Option<DpopKeys>,
    last_proof: Option<String>,
    nonces: HashMap<String, String>,
    /// The status of this step's answer and whether it had `WWW-Authenticate`, and the
    /// same for the step before (`as_previous`).
    this_answer: Option<(u16, bool)>,
    previous_answer: Option<(u16, bool)>,
}

/// The check's two P-256 keys (made with the system CSPRNG), with the PKCS#8 of the first
/// for the `private_jwk` spoiler.
struct DpopKeys {
    key: ProofKey,
    other: ProofKey,
    private_d: String,
}

impl DpopKeys {
    fn generate() -> Result<Self, String> {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let make = || -> Result<(ProofKey, Vec<u8>), String> {
            let pkcs8 = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .and_then(|k| k.to_pkcs8v1())
                .map_err(|e| e.to_string())?;
            Ok((ProofKey::from_es256_pkcs8(pkcs8.as_ref())?, pkcs8.as_ref().to_vec()))
        };
        let (key, pkcs8) = make()?;
        let (other, _) = make()?;
        // The private scalar `d` sits at the end of the PKCS#8's ECPrivateKey, right after
        // the OCTET STRING header 0x04 0x20 of version 1 (RFC 5915 §3).
        let d = pkcs8
            .windows(3)
            .position(|w| w == [0x02, 0x01, 0x01])
            .and_then(|i| pkcs8.get(i + 5..i + 37))
            .ok_or("cannot find d in the PKCS#8")?;
        use base64::Engine;
        let private_d = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
        Ok(Self { key, other, private_d })
    }
}

enum StepError {
    Fail(String),
    /// A failure of a requirement whose key word differs from the check's.
    FailKeyed(String, Keyword),
    Skip(String),
}

/// Runs every check of a catalogue.
pub async fn run_catalogue(catalogue: &ServerCatalogue, target: &Target) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for check in &catalogue.checks {
        results.push(run_check(catalogue.role, check, target).await);
    }
    results
}

pub async fn run_check(role: Role, check: &ServerCheck, target: &Target) -> CheckResult {
    let mut keyword = check.keyword;
    let (verdict, reason) = match check.needs.iter().find_map(|n| target.has(*n)) {
        Some(reason) => (Verdict::Skip, reason.to_owned()),
        None => {
            let mut run = Run::new(target);
            let outcome = run.steps(check).await;
            run.hand_on_shared_family(check);
            match outcome {
                Ok(()) => (Verdict::Pass, String::new()),
                Err(StepError::Fail(reason)) => (Verdict::Fail, reason),
                Err(StepError::FailKeyed(reason, k)) => {
                    keyword = k;
                    (Verdict::Fail, reason)
                }
                Err(StepError::Skip(reason)) => (Verdict::Skip, reason),
            }
        }
    };
    CheckResult {
        id: check.id.clone(),
        role,
        section: check.section.clone(),
        keyword,
        summary: check.summary.clone(),
        verdict,
        reason,
    }
}

impl<'t> Run<'t> {
    fn new(target: &'t Target) -> Self {
        let m = &target.metadata;
        let mut vars = HashMap::new();
        let mut set = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                vars.insert(k.to_owned(), v.to_owned());
            }
        };
        set("issuer", Some(&target.issuer));
        let metadata_url =
            target.metadata_url.clone().or_else(|| figure2_protocol::metadata::metadata_url(&target.issuer));
        set("metadata_url", metadata_url.as_deref());
        set("token_endpoint", m.token_endpoint.as_deref());
        set("jwks_uri", m.jwks_uri.as_deref());
        set("revocation_endpoint", m.revocation_endpoint.as_deref());
        set("introspection_endpoint", m.introspection_endpoint.as_deref());
        set("client_id", Some(&target.client_id));
        set("other_client_id", target.other_client.as_ref().map(|(id, _)| id.as_str()));
        set("username", target.user.as_ref().map(|(u, _)| u.as_str()));
        set("password", target.user.as_ref().map(|(_, p)| p.as_str()));
        set("unknown_token", Some("figure2-unknown-token-qY3mV8rTzK1wXb5nLp0sA7"));
        Self {
            target,
            vars,
            refresh_tokens: Vec::new(),
            expires_in: None,
            last_token_response: None,
            rotated_key: false,
            source: None,
            dpop: None,
            last_proof: None,
            this_answer: None,
            previous_answer: None,
            nonces: HashMap::new(),
        }
    }

    /// The DPoP proof a step asks for, for `method url` (and `access_token` at the
    /// resource server), with the origin's last nonce.
    fn proof(
        &mut self,
        spec: &ProofSpec,
        method: &http::Method,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, StepError> {
        if spec.replay {
            return self.last_proof.clone().ok_or_else(|| StepError::Fail("no earlier proof to replay".into()));
        }
        if self.dpop.is_none() {
            self.dpop = Some(DpopKeys::generate().map_err(StepError::Fail)?);
        }
        let keys = self.dpop.as_ref().ok_or_else(|| StepError::Fail("no DPoP key".into()))?;
        let key = if spec.key.as_deref() == Some("other") { &keys.other } else { &keys.key };
        let mut jti = [0u8; 16];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut jti);
        let htu = match &spec.htu {
            Some(t) => self.expand(t)?,
            None => url.split(['?', '#']).next().unwrap_or(url).to_owned(),
        };
        let now = self.target.now() as i64;
        let mut claims = serde_json::json!({
            "jti": figure2_protocol::secret::encode_token(&jti),
            "htm": spec.htm.clone().unwrap_or_else(|| method.as_str().to_owned()),
            "htu": htu,
            "iat": now + spec.iat.unwrap_or(0),
        });
        if let Some(token) = access_token {
            claims["ath"] = match spec.ath.as_deref() {
                Some("wrong") => serde_json::json!(dpop::access_token_hash("not-the-access-token")),
                _ => serde_json::json!(dpop::access_token_hash(token)),
            };
        }
        if let Some(nonce) = origin(url).and_then(|o| self.nonces.get(&o)) {
            claims["nonce"] = serde_json::json!(nonce);
        }
        let mut jwk = key.public_jwk().clone();
        if spec.private_jwk {
            jwk["d"] = serde_json::json!(keys.private_d);
        }
        let proof = match spec.alg.as_deref() {
            Some("HS256") => {
                // A MAC keyed with public material: anyone could make it (§4.3 point 5).
                use base64::Engine;
                let b64 = |v: &serde_json::Value| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
                };
                let header = serde_json::json!({"typ": dpop::TYP, "alg": "HS256", "jwk": jwk});
                let message = format!("{}.{}", b64(&header), b64(&claims));
                let secret = jsonwebtoken::EncodingKey::from_secret(jwk["x"].as_str().unwrap_or("").as_bytes());
                let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &secret, jsonwebtoken::Algorithm::HS256)
                    .map_err(|e| StepError::Fail(e.to_string()))?;
                format!("{message}.{signature}")
            }
            Some(other) => return Err(StepError::Fail(format!("unknown proof alg {other:?} (HS256)"))),
            None => {
                let header = serde_json::json!({"typ": dpop::TYP, "alg": "ES256", "jwk": jwk});
                key.sign_raw(&header, &claims).map_err(StepError::Fail)?
            }
        };
        self.last_proof = Some(proof.clone());
        Ok(proof)
    }

    /// Keeps the `DPoP-Nonce` of an answer from `url`'s server (§8, §9); whether it asked
    /// for one (`use_dpop_nonce`) and gave a nonce not already used.
    fn asked_nonce(&mut self, url: &str, r: &ReceivedResponse) -> bool {
        let Some(nonce) = r.headers.get(dpop::NONCE_HEADER).and_then(|v| v.to_str().ok()) else { return false };
        let Some(origin) = origin(url) else { return false };
        let fresh = self.nonces.insert(origin, nonce.to_owned()).as_deref() != Some(nonce);
        let json_asks = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .is_some_and(|j| j.get("error").and_then(|e| e.as_str()) == Some("use_dpop_nonce"));
        let challenge_asks = r
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(DpopChallenge::parse)
            .any(|c| c.error == Some(dpop::DpopChallengeError::UseDpopNonce));
        fresh && (json_asks || challenge_asks)
    }

    /// After a check on the shared `--refresh-token` family: the next check presents the
    /// newest refresh token this one was given.
    fn hand_on_shared_family(&self, check: &ServerCheck) {
        if self.source != Some(Source::SharedRefreshToken) {
            return;
        }
        if let Some(shared) = &self.target.sources.refresh_token {
            let mut shared = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(rt) = self.vars.get("refresh_token") {
                shared.live = rt.clone();
            }
            shared.last_used_by = Some(check.id.clone());
        }
    }

    fn expand(&self, template: &str) -> Result<String, StepError> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| StepError::Fail(format!("bad template {template}")))?;
            let name = &rest[start + 1..start + end];
            // Only `{identifier}` is a template: JSON bodies keep their braces.
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                out.push('{');
                rest = &rest[start + 1..];
                continue;
            }
            let value = self.vars.get(name).ok_or_else(|| match name {
                // RFC 8414 §2: OPTIONAL metadata; a server without it is not checked on it.
                "jwks_uri" | "revocation_endpoint" | "introspection_endpoint" | "authorization_endpoint" => {
                    StepError::Skip(format!("the metadata has no {name} (OPTIONAL, RFC 8414 §2)"))
                }
                _ => StepError::Fail(format!("{{{name}}} is not known at this point")),
            })?;
            out.push_str(value);
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    async fn steps(&mut self, check: &ServerCheck) -> Result<(), StepError> {
        for (i, step) in check.steps.iter().enumerate() {
            self.step(step, check).await.map_err(|e| match e {
                StepError::Fail(r) => StepError::Fail(format!("step {}: {r}", i + 1)),
                StepError::FailKeyed(r, k) => StepError::FailKeyed(format!("step {}: {r}", i + 1), k),
                skip => skip,
            })?;
        }
        Ok(())
    }

    async fn step(&mut self, step: &HttpStep, check: &ServerCheck) -> Result<(), StepError> {
        let response = match step.kind {
            StepKind::Wait => return self.wait(step).await,
            StepKind::RotateKey | StepKind::RetireKeys => {
                let forge = self.target.forge.clone().ok_or_else(|| StepError::Skip(Need::Forge.describe().into()))?;
                if step.kind == StepKind::RotateKey {
                    forge.rotate_key().map_err(StepError::Fail)?;
                    self.rotated_key = true;
                } else {
                    forge.retire_other_keys().map_err(StepError::Fail)?;
                }
                return Ok(());
            }
            StepKind::NarrowScope => return self.narrow_scope(step).await,
            StepKind::Grant => {
                let answer = self.grant(step, check).await?;
                if answer.status != 200 {
                    return Err(StepError::Fail(format!(
                        "the {} that sets up this check answered {}: {}",
                        self.source_name(),
                        answer.status,
                        short(&answer.body_text())
                    )));
                }
                if check.needs.contains(&Need::JwtAccessTokens)
                    && self.vars.get("access_token").is_some_and(|t| decode_unverified(t).is_none())
                {
                    return Err(StepError::Skip(Need::JwtAccessTokens.describe().into()));
                }
                // RFC 9449 §5 binds a refresh token when its family is granted: a family the
                // checker did not ask for itself was never bound to this check's key.
                if check.needs.contains(&Need::DpopBoundRefreshTokens)
                    && !matches!(self.source, Some(Source::Password | Source::ClientCredentials))
                {
                    return Err(StepError::Skip(format!(
                        "the family comes from the {}, whose grant carried no proof of this check's DPoP key (RFC 9449 §5 binds the refresh token at the grant)",
                        self.source_name()
                    )));
                }
                answer
            }
            StepKind::Token | StepKind::Refresh => {
                let form = if step.form.is_empty() && step.kind == StepKind::Refresh {
                    vec![
                        ("grant_type".to_owned(), "refresh_token".to_owned()),
                        ("refresh_token".into(), "{refresh_token}".into()),
                    ]
                } else {
                    step.form.clone()
                };
                let endpoint = self.expand("{token_endpoint}")?;
                let answer = match &step.body {
                    Some(raw) => self.post_raw(&endpoint, step, raw).await?,
                    None => self.post_form(&endpoint, step, &form).await?,
                };
                if step.kind == StepKind::Refresh && answer.status == 200 {
                    let rotated = self.absorb_tokens(&answer);
                    if check.needs.contains(&Need::Rotation) && !rotated {
                        return Err(StepError::Skip(Need::Rotation.describe().into()));
                    }
                }
                answer
            }
            StepKind::Revoke | StepKind::Introspect => {
                let endpoint = self.expand(if step.kind == StepKind::Revoke {
                    "{revocation_endpoint}"
                } else {
                    "{introspection_endpoint}"
                })?;
                let token = self.token_value(step).await?;
                let mut form = vec![("token".to_owned(), token)];
                form.extend(step.form.iter().cloned());
                self.post_form(&endpoint, step, &form).await?
            }
            StepKind::Get => {
                let url = self.expand(step.url.as_deref().unwrap_or("{metadata_url}"))?;
                self.send(method(step, "GET")?, &url, Vec::new(), None).await?
            }
            StepKind::Resource => {
                let base = match step.target.as_deref() {
                    Some("scope_limited_resource") => self.target.scope_limited_resource.clone(),
                    _ => self.target.resource.clone(),
                }
                .ok_or_else(|| StepError::Skip(Need::Resource.describe().into()))?;
                let url = match &step.query {
                    Some(q) => format!("{base}{}{}", if base.contains('?') { '&' } else { '?' }, self.expand(q)?),
                    None => base,
                };
                let mut headers = Vec::new();
                let mut presented = None;
                if let Some(raw) = &step.authorization {
                    headers.push(("authorization".to_owned(), self.expand(raw)?));
                } else if step.token.is_some() {
                    let token = self.token_value(step).await?;
                    // RFC 9449 §7.1: a DPoP-bound token goes in `Authorization: DPoP`.
                    let scheme = match step.scheme.as_deref() {
                        Some("bearer") => "Bearer",
                        Some("dpop") => "DPoP",
                        Some(other) => return Err(StepError::Fail(format!("unknown scheme {other:?}"))),
                        None if step.dpop.is_some() => "DPoP",
                        None => "Bearer",
                    };
                    headers.push(("authorization".to_owned(), format!("{scheme} {token}")));
                    presented = Some(token);
                }
                self.send_with_proof(step, method(step, "GET")?, &url, headers, None, presented.as_deref()).await?
            }
        };
        let challenged = response.headers.contains_key(http::header::WWW_AUTHENTICATE);
        self.previous_answer = self.this_answer.replace((response.status, challenged));
        if let Some(situation) = &step.situation {
            match self.verify(situation, &response).await {
                Ok(()) => {}
                Err(StepError::Fail(r)) => return Err(StepError::Skip(format!("not exercised: {r}"))),
                Err(other) => return Err(other),
            }
        }
        // The step's own expectations carry the check's key word; `also` carries others.
        // Every one is judged, and the strongest broken requirement is reported.
        // RFC 6749 §5.2 makes `error` REQUIRED, one code from its list, but puts no key
        // word on which code fits: a refusal with another code breaks no key word, while
        // not refusing breaks the check's.
        // At the resource server, once the request is refused with a Bearer challenge
        // (RFC 6750 §3's MUST), the status each error code asks for is a SHOULD (§3.1:
        // 400, 401, 403) and the code itself has no key word either.
        let mut broken: Vec<(String, Keyword)> = Vec::new();
        let mut refusal = step.expect.clone();
        let mut weaker: Vec<(HttpExpect, Keyword, &str)> = vec![(
            HttpExpect { error: refusal.error.take(), ..HttpExpect::default() },
            Keyword::Descriptive,
            "the error code: no key word",
        )];
        let refused = (400..500).contains(&response.status);
        // RFC 6749 §5.2: "responds with an HTTP 400 (Bad Request) status code (unless
        // specified otherwise)", no key word: another 4xx refusal breaks none.
        if step.kind != StepKind::Resource && refused && matches!(refusal.status, Some(StatusSpec::One(400))) {
            let status = HttpExpect { status: refusal.status.take(), ..HttpExpect::default() };
            weaker.push((status, Keyword::Descriptive, "the status: no key word, RFC 6749 §5.2"));
        }
        // A DPoP request (RFC 9449 §7.1) is not judged by RFC 6750 §3.1's statuses.
        let bearer = step.dpop.is_none() && step.expect.dpop_error.is_none();
        if step.kind == StepKind::Resource && refused && bearer {
            let challenged = response
                .headers
                .get_all(http::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|c| BearerChallenge::parse(c).is_some());
            let refusal_status = |s: &StatusSpec| match s {
                StatusSpec::One(s) => (400..500).contains(s),
                StatusSpec::Any(list) => list.iter().all(|s| (400..500).contains(s)),
            };
            if refusal.status.as_ref().is_some_and(refusal_status) {
                let status = HttpExpect { status: refusal.status.take(), ..HttpExpect::default() };
                weaker.push((status, Keyword::Should, "SHOULD, RFC 6750 §3.1"));
            }
            if challenged && refusal.bearer_error.as_deref().is_some_and(|e| !e.is_empty()) {
                let code = HttpExpect { bearer_error: refusal.bearer_error.take(), ..HttpExpect::default() };
                weaker.push((code, Keyword::Descriptive, "the error code: no key word"));
            }
        }
        match self.verify(&refusal, &response).await {
            Ok(()) => {}
            Err(StepError::Fail(r)) => broken.push((r, check.keyword)),
            Err(other) => return Err(other),
        }
        for (expect, keyword, why) in weaker {
            if !broken.is_empty() {
                break;
            }
            match self.verify(&expect, &response).await {
                Ok(()) => {}
                // A check keyed this weakly already reports at its own key word.
                Err(StepError::Fail(r)) if keyword.strength() <= check.keyword.strength() => {
                    broken.push((r, check.keyword))
                }
                Err(StepError::Fail(r)) => broken.push((format!("{r} [{why}]"), keyword)),
                Err(other) => return Err(other),
            }
        }
        for keyed in &step.also {
            match self.verify(&keyed.expect, &response).await {
                Ok(()) => {}
                Err(StepError::Fail(r)) => broken.push((format!("{r} [{}]", keyed.keyword.as_str()), keyed.keyword)),
                Err(other) => return Err(other),
            }
        }
        let Some(strongest) = broken.iter().map(|(_, k)| *k).min_by_key(|k| k.strength()) else { return Ok(()) };
        let reason = broken.into_iter().map(|(r, _)| r).collect::<Vec<_>>().join("; ");
        if strongest == check.keyword {
            Err(StepError::Fail(reason))
        } else {
            Err(StepError::FailKeyed(reason, strongest))
        }
    }

    async fn wait(&mut self, step: &HttpStep) -> Result<(), StepError> {
        let seconds = match (step.seconds, step.until.as_deref()) {
            (Some(s), _) => s,
            (None, Some("access_token_expiry")) => self
                .expires_in
                .ok_or_else(|| StepError::Skip("the token response has no expires_in to wait for".into()))?,
            _ => return Err(StepError::Fail("wait needs seconds or until".into())),
        };
        match &self.target.time {
            TimeSource::Simulated(clock) => {
                clock.advance(seconds);
            }
            TimeSource::Real { max_wait } => {
                if seconds > *max_wait {
                    return Err(StepError::Skip(format!("needs {seconds}s to pass, more than --max-wait {max_wait}s")));
                }
                // Real-clock mode: the only place the checker waits.
                tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
            }
        }
        Ok(())
    }

    fn source_name(&self) -> &'static str {
        match self.source {
            Some(Source::Password) | None => "password grant",
            Some(Source::Command) => "--token-command",
            Some(Source::SharedRefreshToken) => "refresh of the --refresh-token family",
            Some(Source::ClientCredentials) => "client credentials grant",
        }
    }

    /// Step A/B for this check: a family from the first source the target has.
    async fn grant(&mut self, step: &HttpStep, check: &ServerCheck) -> Result<ReceivedResponse, StepError> {
        let scope = step.scope.clone().or_else(|| self.target.scope.clone());
        let endpoint = self.expand("{token_endpoint}")?;
        let sources = &self.target.sources;
        // A check that needs only an access token may take one from client credentials.
        let access_token_only = !check.needs.iter().any(|n| matches!(n, Need::Tokens | Need::NewFamily))
            && check.needs.contains(&Need::AccessToken);
        let answer = if let Some((username, password)) = self.target.user.clone() {
            self.source = Some(Source::Password);
            let mut form = vec![
                ("grant_type".to_owned(), "password".to_owned()),
                ("username".to_owned(), username),
                ("password".to_owned(), password),
            ];
            if let Some(scope) = scope {
                form.push(("scope".to_owned(), scope));
            }
            self.post_form(&endpoint, step, &form).await?
        } else if let Some(command) = sources.command.clone() {
            self.source = Some(Source::Command);
            let body = self.run_token_command(&command, scope.as_deref()).await?;
            let answer = synthetic_answer(&body);
            self.absorb_tokens(&answer);
            if step.expect.headers.is_empty() && step.dpop.is_none() {
                // The expectations look at the §5.1 JSON only: judge the command's.
                answer
            } else {
                // They look at HTTP headers the command's output does not have, or the
                // check needs tokens bound to its DPoP key (RFC 9449 §5 lets a refresh
                // bind them): judge the token endpoint's own §5.1 answer to a refresh.
                self.refresh_for_grant(&endpoint, step).await?
            }
        } else if let Some(shared) = sources.refresh_token.clone().filter(|_| step.dpop.is_none()) {
            // (A DPoP proof could bind the shared family to this check's key for good.)
            self.source = Some(Source::SharedRefreshToken);
            let (live, last) = {
                let shared = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                (shared.live.clone(), shared.last_used_by.clone())
            };
            self.vars.insert("refresh_token".into(), live.clone());
            self.refresh_tokens.push(live);
            let answer = self.refresh_for_grant(&endpoint, step).await?;
            if answer.status != 200 {
                return Err(StepError::Skip(format!(
                    "the --refresh-token family no longer refreshes ({} {}){}",
                    answer.status,
                    short(&answer.body_text()),
                    last.map(|id| format!(", last used by {id}")).unwrap_or_default()
                )));
            }
            answer
        } else if sources.client_credentials && access_token_only {
            self.source = Some(Source::ClientCredentials);
            let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
            if let Some(scope) = scope {
                form.push(("scope".to_owned(), scope));
            }
            self.post_form(&endpoint, step, &form).await?
        } else {
            let need = if access_token_only { Need::AccessToken } else { Need::Tokens };
            return Err(StepError::Skip(need.describe().into()));
        };
        if answer.status == 200 && matches!(self.source, Some(Source::Password | Source::ClientCredentials)) {
            self.absorb_tokens(&answer);
        }
        if answer.status == 200 {
            let scope = self.vars.get("granted_scope").cloned().unwrap_or_default();
            let parsed = Scope::parse(&scope).unwrap_or_default();
            // A scope strictly narrower than the grant, and one strictly wider.
            if let Some(first) = parsed.iter().next() {
                self.vars.insert("narrower_scope".into(), first.to_owned());
            }
            self.vars.insert("wider_scope".into(), format!("{scope} figure2-never-granted").trim().to_owned());
        }
        Ok(answer)
    }

    /// A refresh of the current refresh token, standing in for the grant's own answer.
    async fn refresh_for_grant(&mut self, endpoint: &str, step: &HttpStep) -> Result<ReceivedResponse, StepError> {
        let Some(rt) = self.vars.get("refresh_token").cloned() else {
            return Err(StepError::Skip(format!(
                "the {} gave no refresh token, and this check looks at the token endpoint's own answer",
                self.source_name()
            )));
        };
        let form = vec![("grant_type".to_owned(), "refresh_token".to_owned()), ("refresh_token".to_owned(), rt)];
        let plain = HttpStep { auth: step.auth, dpop: step.dpop.clone(), ..bare_step(StepKind::Refresh) };
        let answer = self.post_form(endpoint, &plain, &form).await?;
        if answer.status == 200 {
            self.absorb_tokens(&answer);
        }
        Ok(answer)
    }

    /// Runs `--token-command` for a new family (RFC 6749 §1.5 (A)/(B) by whatever grant the
    /// command drives) and returns its §5.1 JSON.
    async fn run_token_command(&self, command: &str, scope: Option<&str>) -> Result<serde_json::Value, StepError> {
        let t = self.target;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .env("FIGURE2_ISSUER", &t.issuer)
            .env("FIGURE2_TOKEN_ENDPOINT", t.metadata.token_endpoint.as_deref().unwrap_or(""))
            .env("FIGURE2_AUTHORIZATION_ENDPOINT", t.metadata.authorization_endpoint.as_deref().unwrap_or(""))
            .env("FIGURE2_CLIENT_ID", &t.client_id)
            .env("FIGURE2_CLIENT_SECRET", &t.client_secret)
            .env("FIGURE2_SCOPE", scope.unwrap_or(""))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
            .await
            .map_err(|_| StepError::Fail("--token-command did not finish within 60s".into()))?
            .map_err(|e| StepError::Fail(format!("cannot run --token-command: {e}")))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(StepError::Fail(format!(
                "--token-command {}: {}",
                exit_status(&output.status),
                short(&String::from_utf8_lossy(&output.stderr))
            )));
        }
        // The JSON is the whole output, or its last line (tools that print progress first).
        let parsed = serde_json::from_str::<serde_json::Value>(stdout.trim()).ok().or_else(|| {
            stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).and_then(|l| serde_json::from_str(l).ok())
        });
        match parsed {
            Some(body) if body.get("access_token").and_then(|v| v.as_str()).is_some() => Ok(body),
            _ => Err(StepError::Fail(format!(
                "--token-command printed no RFC 6749 §5.1 token response (JSON with access_token): {}",
                short(&stdout)
            ))),
        }
    }

    /// `narrow_scope`: a token of the first single scope value that still reads
    /// `--resource`, so that the scope-limited resource is refused for scope alone.
    async fn narrow_scope(&mut self, step: &HttpStep) -> Result<(), StepError> {
        let granted = self.vars.get("granted_scope").cloned().unwrap_or_default();
        let values: Vec<String> = Scope::parse(&granted).unwrap_or_default().iter().map(str::to_owned).collect();
        if values.len() < 2 {
            return Ok(());
        }
        let resource = self.target.resource.clone().ok_or_else(|| StepError::Skip(Need::Resource.describe().into()))?;
        let endpoint = self.expand("{token_endpoint}")?;
        for value in values {
            let form = match self.vars.get("refresh_token") {
                Some(rt) if self.source != Some(Source::ClientCredentials) => vec![
                    ("grant_type".to_owned(), "refresh_token".to_owned()),
                    ("refresh_token".to_owned(), rt.clone()),
                    ("scope".to_owned(), value.clone()),
                ],
                _ => vec![
                    ("grant_type".to_owned(), "client_credentials".to_owned()),
                    ("scope".to_owned(), value.clone()),
                ],
            };
            let answer = self.post_form(&endpoint, step, &form).await?;
            if answer.status != 200 {
                continue;
            }
            self.absorb_tokens(&answer);
            let bearer = format!("Bearer {}", self.vars.get("access_token").cloned().unwrap_or_default());
            let read = self.send(http::Method::GET, &resource, vec![("authorization".into(), bearer)], None).await?;
            if read.status == 200 {
                self.vars.insert("narrowed_scope".into(), value);
                return Ok(());
            }
        }
        Err(StepError::Skip(format!(
            "no single value of the granted scope \"{granted}\" reads --resource on its own: cannot narrow the token"
        )))
    }

    /// Takes the tokens of a 200 token response; returns whether a new refresh token came.
    fn absorb_tokens(&mut self, answer: &ReceivedResponse) -> bool {
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&answer.body) else { return false };
        if let Some(at) = body.get("access_token").and_then(|v| v.as_str())
            && let Some(previous) = self.vars.insert("access_token".into(), at.to_owned())
        {
            self.vars.insert("previous_access_token".into(), previous);
        }
        self.expires_in = body.get("expires_in").and_then(|v| v.as_u64());
        if let Some(scope) = body.get("scope").and_then(|v| v.as_str()) {
            self.vars.entry("granted_scope".into()).or_insert_with(|| scope.to_owned());
        } else if let Some(scope) = &self.target.scope {
            self.vars.entry("granted_scope".into()).or_insert_with(|| scope.clone());
        }
        let mut rotated = false;
        if let Some(rt) = body.get("refresh_token").and_then(|v| v.as_str()) {
            rotated = self.vars.get("refresh_token").is_some_and(|old| old != rt);
            if let Some(previous) = self.vars.insert("refresh_token".into(), rt.to_owned()) {
                self.vars.insert("previous_refresh_token".into(), previous);
            }
            if self.refresh_tokens.is_empty() {
                self.vars.insert("first_refresh_token".into(), rt.to_owned());
            }
            self.refresh_tokens.push(rt.to_owned());
        }
        self.last_token_response = Some(body);
        rotated
    }

    async fn token_value(&self, step: &HttpStep) -> Result<String, StepError> {
        let spec = step.token.as_deref().unwrap_or("{access_token}");
        match spec.strip_prefix("forge:") {
            None => self.expand(spec),
            // A token with valid claims signed by the key a `rotate_key` step replaced.
            Some("retired-key") => {
                let forge = self.target.forge.clone().ok_or_else(|| StepError::Skip(Need::Forge.describe().into()))?;
                if !self.rotated_key {
                    return Err(StepError::Fail("no rotate_key step before".into()));
                }
                let access_token = self.vars.get("access_token").cloned().unwrap_or_default();
                let (_, mut claims) = decode_unverified(&access_token)
                    .ok_or_else(|| StepError::Skip(Need::JwtAccessTokens.describe().into()))?;
                let now = self.target.now();
                claims["iat"] = serde_json::json!(now);
                claims["exp"] = serde_json::json!(now + 600);
                forge.sign_with_previous_key(&claims).map_err(StepError::Fail)
            }
            Some(kind) => {
                let access_token = self.vars.get("access_token").cloned().unwrap_or_default();
                if decode_unverified(&access_token).is_none() {
                    // An opaque access token: one changed character still makes a token
                    // the server never issued; the other kinds need a JWT.
                    if kind == "tampered" {
                        return Ok(forge::tamper_opaque(&access_token));
                    }
                    return Err(StepError::Skip(Need::JwtAccessTokens.describe().into()));
                }
                forge::craft(kind, &access_token, self.target.keys(), self.target.now()).await.map_err(StepError::Fail)
            }
        }
    }

    async fn post_form(
        &mut self,
        url: &str,
        step: &HttpStep,
        form: &[(String, String)],
    ) -> Result<ReceivedResponse, StepError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form {
            pairs.push((k.clone(), self.expand(v)?));
        }
        let mut headers = vec![(
            "content-type".to_owned(),
            step.content_type.clone().unwrap_or_else(|| "application/x-www-form-urlencoded".into()),
        )];
        let t = self.target;
        let basic =
            |id: &str, secret: &str| ("authorization".to_owned(), ClientAuthentication::basic_header_value(id, secret));
        match step.auth.unwrap_or(AuthKind::Basic) {
            AuthKind::Basic => headers.push(basic(&t.client_id, &t.client_secret)),
            AuthKind::Post => {
                pairs.push(("client_id".into(), t.client_id.clone()));
                pairs.push(("client_secret".into(), t.client_secret.clone()));
            }
            AuthKind::Both => {
                headers.push(basic(&t.client_id, &t.client_secret));
                pairs.push(("client_secret".into(), t.client_secret.clone()));
            }
            AuthKind::None => {}
            AuthKind::Other => {
                let (id, secret) =
                    t.other_client.clone().ok_or_else(|| StepError::Skip(Need::OtherClient.describe().into()))?;
                headers.push(basic(&id, &secret));
            }
            AuthKind::Wrong => headers.push(basic(&t.client_id, &format!("{}-wrong", t.client_secret))),
            AuthKind::BasicOtherClientId => {
                headers.push(basic(&t.client_id, &t.client_secret));
                let other = t.other_client.as_ref().map_or("figure2-unregistered-client", |(id, _)| id.as_str());
                pairs.push(("client_id".into(), other.to_owned()));
            }
        }
        let body = serde_urlencoded::to_string(&pairs).map_err(|e| StepError::Fail(e.to_string()))?;
        self.send_with_proof(step, method(step, "POST")?, url, headers, Some(body.into_bytes()), None).await
    }

    /// Sends a request with the step's DPoP proof if it has one; once more with the
    /// server's nonce if it answers `use_dpop_nonce` (§8, §9) to a proof not meant to fail.
    async fn send_with_proof(
        &mut self,
        step: &HttpStep,
        method: http::Method,
        url: &str,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        access_token: Option<&str>,
    ) -> Result<ReceivedResponse, StepError> {
        let Some(spec) = &step.dpop else { return self.send(method, url, headers, body).await };
        let mut retried = false;
        loop {
            let proof = self.proof(spec, &method, url, access_token)?;
            let mut with_proof = headers.clone();
            with_proof.push((dpop::DPOP_HEADER.to_owned(), proof));
            let answer = self.send(method.clone(), url, with_proof, body.clone()).await?;
            if self.asked_nonce(url, &answer) && !retried && !spec.replay {
                retried = true;
                continue;
            }
            return Ok(answer);
        }
    }

    /// A request with a raw body (`body`): a template in which `\xHH` is the byte HH.
    async fn post_raw(&self, url: &str, step: &HttpStep, raw: &str) -> Result<ReceivedResponse, StepError> {
        let body = unescape_bytes(&self.expand(raw)?);
        let mut headers = Vec::new();
        if let Some(ct) = &step.content_type {
            headers.push(("content-type".to_owned(), ct.clone()));
        } else if !body.is_empty() {
            headers.push(("content-type".to_owned(), "application/x-www-form-urlencoded".to_owned()));
        }
        let t = self.target;
        if step.auth.unwrap_or(AuthKind::Basic) == AuthKind::Basic {
            headers.push((
                "authorization".to_owned(),
                ClientAuthentication::basic_header_value(&t.client_id, &t.client_secret),
            ));
        }
        self.send(method(step, "POST")?, url, headers, Some(body)).await
    }

    async fn send(
        &self,
        method: http::Method,
        url: &str,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
    ) -> Result<ReceivedResponse, StepError> {
        let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let body = if method == http::Method::GET { None } else { body.map(bytes::Bytes::from) };
        self.target
            .http
            .send(method.clone(), url, &pairs, body)
            .await
            .map_err(|e| StepError::Fail(format!("{method} {url}: {e}")))
    }

    async fn verify(&mut self, expect: &HttpExpect, r: &ReceivedResponse) -> Result<(), StepError> {
        let fail =
            |what: String| Err(StepError::Fail(format!("{what} (answer {}: {})", r.status, short(&r.body_text()))));
        if let Some(status) = &expect.status
            && !status.matches(r.status)
        {
            return fail(format!("expected status {status:?}"));
        }
        if expect.as_previous
            && let Some((status, challenged)) = self.previous_answer
            && (r.status, r.headers.contains_key(http::header::WWW_AUTHENTICATE)) != (status, challenged)
        {
            let with = if challenged { "with" } else { "without" };
            return fail(format!("expected what the previous request got: {status} {with} WWW-Authenticate"));
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(&r.body).ok();
        if let Some(want) = &expect.error {
            let got = json.as_ref().and_then(|j| j.get("error")).and_then(|e| e.as_str());
            if !want.matches(got) {
                return fail(format!("expected error {}", want.describe()));
            }
        }
        if let Some(unwanted) = &expect.error_not
            && json.as_ref().and_then(|j| j.get("error")).and_then(|e| e.as_str()) == Some(unwanted.as_str())
        {
            return fail(format!("expected any answer but error {unwanted}"));
        }
        if expect.challenge_when_refused && matches!(r.status, 400 | 401 | 403) {
            let challenges: Vec<&str> =
                r.headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
            if !challenges.iter().any(|c| BearerChallenge::parse(c).is_some()) {
                return fail("refused without a WWW-Authenticate: Bearer challenge".into());
            }
        }
        if let Some(want) = &expect.bearer_error {
            let challenges: Vec<&str> =
                r.headers.get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
            let challenge = challenges.iter().find_map(|c| BearerChallenge::parse(c));
            let Some(challenge) = challenge else {
                return fail("expected a WWW-Authenticate: Bearer challenge".into());
            };
            let got = challenge.error.map(|e| e.as_str()).unwrap_or("");
            if got != want {
                return fail(format!("expected Bearer error {:?}, got {got:?}", want));
            }
        }
        if let Some(want) = &expect.dpop_error {
            let challenge = r
                .headers
                .get_all("www-authenticate")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(DpopChallenge::parse);
            let Some(challenge) = challenge else {
                return fail("expected a WWW-Authenticate: DPoP challenge".into());
            };
            let got = challenge.error.map(|e| e.as_str()).unwrap_or("");
            if got != want {
                return fail(format!("expected DPoP error {want:?}, got {got:?}"));
            }
        }
        if expect.cnf_jkt_is_proof_key {
            let token = json.as_ref().and_then(|j| j.get("access_token")).and_then(|v| v.as_str()).unwrap_or("");
            let (_, claims) =
                decode_unverified(token).ok_or_else(|| StepError::Skip(Need::JwtAccessTokens.describe().into()))?;
            let want = self.dpop.as_ref().map(|k| k.key.thumbprint().to_owned());
            let got = claims.get("cnf").and_then(|c| c.get("jkt")).and_then(|v| v.as_str()).map(str::to_owned);
            if got.is_none() || got != want {
                return fail(format!("expected cnf.jkt {want:?} (the proof's key), got {got:?}"));
            }
        }
        for (name, contains) in &expect.headers {
            let values: Vec<String> = r
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_lowercase)
                .collect();
            if !values.iter().any(|v| v.contains(&contains.to_lowercase())) {
                return fail(format!("expected header {name} containing {contains:?}, got {values:?}"));
            }
        }
        for field in &expect.json_has {
            if json.as_ref().and_then(|j| j.get(field)).is_none() {
                return fail(format!("expected JSON field {field}"));
            }
        }
        for field in &expect.json_lacks {
            if json.as_ref().and_then(|j| j.get(field)).is_some() {
                return fail(format!("expected no JSON field {field}"));
            }
        }
        for (field, want) in &expect.json_equals {
            let got = json.as_ref().and_then(|j| j.get(field));
            let ok = match (want, got) {
                (toml::Value::String(s), Some(serde_json::Value::String(g))) => {
                    let s = self.expand(s)?;
                    if field == "token_type" { s.eq_ignore_ascii_case(g) } else { &s == g }
                }
                (toml::Value::Boolean(b), Some(serde_json::Value::Bool(g))) => b == g,
                (toml::Value::Integer(i), Some(serde_json::Value::Number(n))) => n.as_i64() == Some(*i),
                _ => false,
            };
            if !ok {
                return fail(format!("expected {field} = {want}"));
            }
        }
        if let Some(exact) = &expect.json_exactly {
            let want: serde_json::Value = serde_json::from_str(exact).map_err(|e| StepError::Fail(e.to_string()))?;
            if json.as_ref() != Some(&want) {
                return fail(format!("expected exactly {exact}"));
            }
        }
        if let Some(want) = &expect.scope {
            let want = Scope::parse(&self.expand(want)?).map_err(|e| StepError::Fail(e.to_string()))?;
            let got =
                json.as_ref().and_then(|j| j.get("scope")).and_then(|s| s.as_str()).and_then(|s| Scope::parse(s).ok());
            // RFC 6749 §5.1: scope may be omitted only if identical to the requested one,
            // and each `scope` expectation is the scope its request asked for (or, with
            // none asked, the original one, §6): an omitted scope meets it.
            if got.as_ref().is_some_and(|got| *got != want) {
                return fail(format!("expected scope \"{want}\""));
            }
        }
        if expect.token_type_is_access_token_type
            && let Some(got) = json.as_ref().and_then(|j| j.get("token_type"))
        {
            let registered = ["Bearer", "N_A", "PoP", "DPoP"];
            let ok = got.as_str().is_some_and(|t| registered.iter().any(|r| r.eq_ignore_ascii_case(t)));
            if !ok {
                return fail(format!(
                    "token_type {got} is not an RFC 6749 §7.1 access token type (refresh_token and access_token are RFC 7009 token_type_hint values)"
                ));
            }
        }
        let history = &self.refresh_tokens;
        if let Some(changed) = expect.refresh_token_changed {
            let got_new = json.as_ref().and_then(|j| j.get("refresh_token")).and_then(|v| v.as_str());
            let previous = history.len().checked_sub(2).and_then(|i| history.get(i));
            let is_changed = got_new.is_some() && got_new != previous.map(String::as_str);
            if is_changed != changed {
                return fail(format!("expected refresh_token {}", if changed { "to change" } else { "to stay" }));
            }
        }
        if let Some(changed) = expect.access_token_changed {
            let is_changed = self.vars.get("previous_access_token") != self.vars.get("access_token");
            if is_changed != changed {
                return fail(format!("expected access_token {}", if changed { "to change" } else { "to stay" }));
            }
        }
        if let Some(jwt) = &expect.jwt {
            let token = json.as_ref().and_then(|j| j.get("access_token")).and_then(|v| v.as_str()).unwrap_or("");
            self.verify_jwt(jwt, token).await?;
        }
        Ok(())
    }

    async fn verify_jwt(&self, expect: &JwtExpect, token: &str) -> Result<(), StepError> {
        let (header, claims) =
            decode_unverified(token).ok_or_else(|| StepError::Skip(Need::JwtAccessTokens.describe().into()))?;
        let fail = |s: String| Err(StepError::Fail(s));
        if let Some(typ) = &expect.typ {
            let got = header.get("typ").and_then(|v| v.as_str()).unwrap_or("");
            if !(got.eq_ignore_ascii_case(typ) || got.eq_ignore_ascii_case(&format!("application/{typ}"))) {
                return fail(format!("JWT typ is {got:?}, expected {typ:?}"));
            }
        }
        for claim in &expect.claims {
            if claims.get(claim).is_none() {
                return fail(format!("JWT lacks the {claim} claim"));
            }
        }
        if expect.iss_is_issuer && claims.get("iss").and_then(|v| v.as_str()) != Some(self.target.issuer.as_str()) {
            return fail(format!("JWT iss {} is not the issuer", claims["iss"]));
        }
        if expect.alg_not_none
            && header.get("alg").and_then(|v| v.as_str()).is_none_or(|a| a.eq_ignore_ascii_case("none"))
        {
            return fail("JWT alg is none".into());
        }
        if expect.scope_claim {
            let granted = self.vars.get("granted_scope").and_then(|s| Scope::parse(s).ok());
            let claim = claims.get("scope").and_then(|v| v.as_str()).and_then(|s| Scope::parse(s).ok());
            if claim.is_none() || claim != granted {
                return fail(format!("JWT scope claim {:?} is not the granted scope", claims.get("scope")));
            }
        }
        if expect.verifies_with_jwks {
            forge::verify_with_jwks(self.target.keys(), token).await.map_err(StepError::Fail)?;
        }
        Ok(())
    }
}

/// A step with nothing but its kind.
fn bare_step(kind: StepKind) -> HttpStep {
    HttpStep {
        kind,
        method: None,
        url: None,
        auth: None,
        form: Vec::new(),
        content_type: None,
        body: None,
        scope: None,
        token: None,
        authorization: None,
        query: None,
        target: None,
        dpop: None,
        scheme: None,
        seconds: None,
        until: None,
        expect: HttpExpect::default(),
        also: Vec::new(),
        situation: None,
    }
}

/// The answer a `--token-command` stands for: its JSON as a 200 `application/json`.
fn synthetic_answer(body: &serde_json::Value) -> ReceivedResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    ReceivedResponse { status: 200, headers, body: bytes::Bytes::from(body.to_string()) }
}

/// `\xHH` escapes to raw bytes (bodies that are not UTF-8, RFC 6749 Appendix B).
fn unescape_bytes(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(b) = s.get(i + 2..i + 4).and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// `scheme://authority` of a URL, lower-cased: nonces are kept per server.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{}://{}", scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

/// "exited with status 1", "was killed by signal 9".
pub fn exit_status(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "ended without an exit status".to_owned(),
    }
}

fn method(step: &HttpStep, default: &str) -> Result<http::Method, StepError> {
    step.method
        .as_deref()
        .unwrap_or(default)
        .parse()
        .map_err(|_| StepError::Fail(format!("bad method {:?}", step.method)))
}

/// A response body for a failure reason: one line, bounded, and with any token replaced
/// by its fingerprint (reports end up in CI logs).
fn short(s: &str) -> String {
    let s = match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Object(mut map)) => {
            for key in ["access_token", "refresh_token", "id_token"] {
                if let Some(serde_json::Value::String(t)) = map.get_mut(key) {
                    *t = format!("#{}", figure2_protocol::secret::fingerprint(t));
                }
            }
            serde_json::Value::Object(map).to_string()
        }
        _ => s.to_owned(),
    };
    let one_line: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() > 160 { one_line.chars().take(160).collect::<String>() + "…" } else { one_line }
}
