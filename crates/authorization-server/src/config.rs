//! The authorization server's TOML configuration: clients, users, lifetimes and the
//! refresh-token policy, under the option names users know from other servers
//! (`access_token_lifetime`, `refresh_token_lifetime`, `always_issue_new_refresh_token`).
//! Every option is documented in `config/demo.toml` at the repository root.

use figure2_protocol::Scope;
use figure2_protocol::client_auth::{GrantType, RegisteredClient};
use figure2_protocol::refresh::{RefreshPolicy, ReuseRevokes};
use figure2_protocol::secret::{TokenDigest, parse_digest_hex};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The issuer identifier (RFC 8414 §2): the URL clients reach us at, no trailing slash.
    pub issuer: Option<String>,
    /// Address to listen on; `--listen` overrides it.
    pub listen: Option<String>,
    /// The SQLite file; `:memory:` keeps nothing.
    #[serde(default = "default_database")]
    pub database: String,
    /// The `aud` of issued access tokens (RFC 9068 §3): the resource server's identifier.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// `ES256` (default), `RS256` or `EdDSA`.
    #[serde(default = "default_alg")]
    pub signing_algorithm: String,
    #[serde(default = "default_access_token_lifetime")]
    pub access_token_lifetime: u64,
    /// A refresh-token policy of a real server (`figure2_protocol::presets`): `hydra`,
    /// `keycloak`, `dex`, … Every option below that is set overrides it.
    #[serde(default)]
    pub preset: Option<String>,
    /// Seconds; 0 means refresh tokens never expire on their own.
    #[serde(default)]
    pub refresh_token_lifetime: Option<u64>,
    /// Seconds; 0 means no idle lifetime.
    #[serde(default)]
    pub refresh_token_idle_lifetime: Option<u64>,
    /// Seconds; 0 means no absolute lifetime.
    #[serde(default)]
    pub refresh_token_absolute_lifetime: Option<u64>,
    #[serde(default)]
    pub always_issue_new_refresh_token: Option<bool>,
    /// Percent of its lifetime after which a token rotates even without rotation; 0: never.
    #[serde(default)]
    pub rotate_after_lifetime_percent: Option<u8>,
    #[serde(default)]
    pub refresh_token_reuse_interval: Option<u64>,
    /// How many times a retired token may be accepted again (Keycloak's "Refresh Token
    /// Max Reuse"); -1: no count limit.
    #[serde(default)]
    pub refresh_token_max_reuse: Option<i64>,
    #[serde(default)]
    pub reuse_while_successor_unused: Option<bool>,
    #[serde(default)]
    pub reuse_returns_issued_successor: Option<bool>,
    /// `"family"`, `"token"` or `"nothing"`.
    #[serde(default)]
    pub on_reuse: Option<String>,
    /// The older switch: `true` is `on_reuse = "family"`, `false` is `"nothing"`.
    #[serde(default)]
    pub revoke_family_on_reuse: Option<bool>,
    #[serde(default)]
    pub issue_refresh_tokens_to_public_clients: Option<bool>,
    /// RFC 9449 §5: bind confidential clients' refresh tokens to their DPoP key too
    /// (public clients' always are when they send a proof). Default false: a confidential
    /// client's refresh tokens are bound to its credentials.
    #[serde(default)]
    pub dpop_bind_confidential_refresh_tokens: bool,
    /// RFC 9449 §8: require a server-provided nonce in every DPoP proof at the token
    /// endpoint (answered with `use_dpop_nonce` and a `DPoP-Nonce` header). Default false.
    #[serde(default)]
    pub dpop_nonce: bool,
    /// Seconds a DPoP nonce stays current (the previous one is accepted one period more).
    #[serde(default = "default_dpop_nonce_lifetime")]
    pub dpop_nonce_lifetime: u64,
    /// Seconds: how old a DPoP proof's `iat` may be (RFC 9449 §4.3 point 11); also how
    /// long its `jti` is remembered.
    #[serde(default = "default_dpop_proof_max_age")]
    pub dpop_proof_max_age: u64,
    /// Seconds a DPoP proof's `iat` may be ahead of the server's clock.
    #[serde(default = "default_dpop_proof_leeway")]
    pub dpop_proof_leeway: u64,
    /// How many DPoP `jti`s the server remembers at once (RFC 9449 §11.1); when full of
    /// proofs still within `dpop_proof_max_age`, new proofs are refused.
    #[serde(default = "default_dpop_jti_cache_size")]
    pub dpop_jti_cache_size: usize,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// OpenID Connect (issue 13): see `crate::oidc::OidcSettings`.
    #[serde(default)]
    pub oidc: crate::oidc::OidcSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    /// Hex SHA-256 of the client secret (`authorization-server hash-secret`). Absent for
    /// a public client.
    pub client_secret_sha256: Option<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    /// The most this client may be granted, space-separated.
    pub scope: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub username: String,
    /// An argon2 PHC string (`authorization-server hash-password`).
    pub password_argon2: String,
    /// OpenID Connect claims of this user for `id_token` and `userinfo` (`email`, `name`,
    /// any custom claim); `sub` is the username.
    #[serde(default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

fn default_database() -> String {
    "figure2.db".into()
}
fn default_audience() -> String {
    "figure2-resource-server".into()
}
fn default_alg() -> String {
    "ES256".into()
}
fn default_access_token_lifetime() -> u64 {
    3600
}
fn default_dpop_nonce_lifetime() -> u64 {
    300
}
fn default_dpop_proof_max_age() -> u64 {
    60
}
fn default_dpop_proof_leeway() -> u64 {
    5
}
fn default_dpop_jti_cache_size() -> usize {
    100_000
}

/// RFC 9449 (DPoP) at the token endpoint. See the `dpop_*` options of [`ConfigFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopConfig {
    pub bind_confidential_refresh_tokens: bool,
    pub nonce: bool,
    pub nonce_lifetime: u64,
    pub proof_max_age: u64,
    pub proof_leeway: u64,
    pub jti_cache_size: usize,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            bind_confidential_refresh_tokens: false,
            nonce: false,
            nonce_lifetime: default_dpop_nonce_lifetime(),
            proof_max_age: default_dpop_proof_max_age(),
            proof_leeway: default_dpop_proof_leeway(),
            jti_cache_size: default_dpop_jti_cache_size(),
        }
    }
}

/// The configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The preset the refresh policy started from, if any.
    pub preset: Option<String>,
    pub issuer: String,
    pub database: String,
    pub audience: String,
    pub signing_algorithm: jsonwebtoken::Algorithm,
    pub access_token_lifetime: u64,
    pub refresh: RefreshPolicy,
    pub dpop: DpopConfig,
    pub clients: HashMap<String, RegisteredClient>,
    /// username → argon2 PHC string
    pub users: HashMap<String, String>,
    /// username → OpenID Connect claims (issue 13).
    pub user_claims: HashMap<String, serde_json::Map<String, serde_json::Value>>,
    pub oidc: crate::oidc::OidcSettings,
}

impl ConfigFile {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    pub fn load(path: &str) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Self::from_toml(&text)
    }

    /// The refresh-token policy: the preset (or Figure2's default), then every option set.
    pub fn refresh_policy(&self) -> Result<RefreshPolicy, ConfigError> {
        let mut policy = match &self.preset {
            Some(name) => figure2_protocol::presets::find(name).map(|p| p.policy).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "unknown preset {name:?}; known: {}",
                    figure2_protocol::presets::names().join(", ")
                ))
            })?,
            None => RefreshPolicy::default(),
        };
        let positive = |v: u64| (v > 0).then_some(v);
        if let Some(v) = self.refresh_token_lifetime {
            policy.refresh_token_lifetime = positive(v);
        }
        if let Some(v) = self.refresh_token_idle_lifetime {
            policy.refresh_token_idle_lifetime = positive(v);
        }
        if let Some(v) = self.refresh_token_absolute_lifetime {
            policy.refresh_token_absolute_lifetime = positive(v);
        }
        if let Some(v) = self.always_issue_new_refresh_token {
            policy.always_issue_new_refresh_token = v;
        }
        if let Some(v) = self.rotate_after_lifetime_percent {
            policy.rotate_after_lifetime_percent = (v > 0).then_some(v.min(100));
        }
        if let Some(v) = self.refresh_token_reuse_interval {
            policy.refresh_token_reuse_interval = v;
        }
        if let Some(v) = self.refresh_token_max_reuse {
            policy.refresh_token_max_reuse = u32::try_from(v).ok();
        }
        if let Some(v) = self.reuse_while_successor_unused {
            policy.reuse_while_successor_unused = v;
        }
        if let Some(v) = self.reuse_returns_issued_successor {
            policy.reuse_returns_issued_successor = v;
        }
        if let Some(v) = self.revoke_family_on_reuse {
            policy.on_reuse = if v { ReuseRevokes::Family } else { ReuseRevokes::Nothing };
        }
        if let Some(name) = &self.on_reuse {
            policy.on_reuse = ReuseRevokes::from_name(name).ok_or_else(|| {
                ConfigError::Invalid(format!("on_reuse must be \"family\", \"token\" or \"nothing\", not {name:?}"))
            })?;
        }
        if let Some(v) = self.issue_refresh_tokens_to_public_clients {
            policy.issue_refresh_tokens_to_public_clients = v;
        }
        Ok(policy)
    }

    /// Validates and resolves the file; `issuer` is required by now (a flag may supply it).
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let invalid = |s: String| ConfigError::Invalid(s);
        let refresh = self.refresh_policy()?;
        let issuer = self.issuer.ok_or_else(|| invalid("issuer is required".into()))?;
        let issuer = issuer.trim_end_matches('/').to_owned();
        if !(issuer.starts_with("http://") || issuer.starts_with("https://")) || issuer.contains(['?', '#']) {
            // RFC 8414 §2: a URL with the https scheme, no query or fragment (http allowed
            // here for loopback demos).
            return Err(invalid(format!("issuer {issuer:?} must be an http(s) URL without query or fragment")));
        }
        let signing_algorithm =
            crate::keys::parse_algorithm(&self.signing_algorithm).map_err(|e| invalid(e.to_string()))?;
        if self.access_token_lifetime == 0 {
            return Err(invalid("access_token_lifetime must be at least 1 second".into()));
        }
        let mut clients = HashMap::new();
        for c in self.clients {
            let secret_digest: Option<TokenDigest> = match &c.client_secret_sha256 {
                Some(hex) => Some(parse_digest_hex(hex).ok_or_else(|| {
                    invalid(format!("client {}: client_secret_sha256 must be 64 hex digits", c.client_id))
                })?),
                None => None,
            };
            let scope = Scope::parse(&c.scope).map_err(|e| invalid(format!("client {}: {e}", c.client_id)))?;
            if c.grant_types.contains(&GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
                return Err(invalid(format!("client {}: authorization_code needs redirect_uris", c.client_id)));
            }
            if secret_digest.is_none()
                && (c.grant_types.contains(&GrantType::ClientCredentials)
                    || c.grant_types.contains(&GrantType::Password))
            {
                // RFC 6749 §4.4: only confidential clients may use client_credentials.
                return Err(invalid(format!("client {}: a public client cannot use this grant", c.client_id)));
            }
            let client = RegisteredClient {
                client_id: c.client_id.clone(),
                secret_digest,
                redirect_uris: c.redirect_uris,
                grant_types: c.grant_types,
                scope,
            };
            if clients.insert(c.client_id.clone(), client).is_some() {
                return Err(invalid(format!("client {} is listed twice", c.client_id)));
            }
        }
        let mut users = HashMap::new();
        let mut user_claims = HashMap::new();
        for u in self.users {
            if u.claims.contains_key("sub") {
                return Err(invalid(format!("user {}: sub is the username and cannot be set", u.username)));
            }
            user_claims.insert(u.username.clone(), u.claims);
            if argon2::PasswordHash::new(&u.password_argon2).is_err() {
                return Err(invalid(format!("user {}: password_argon2 is not a PHC string", u.username)));
            }
            users.insert(u.username, u.password_argon2);
        }
        Ok(Config {
            preset: self.preset,
            issuer,
            database: self.database,
            audience: self.audience,
            signing_algorithm,
            access_token_lifetime: self.access_token_lifetime,
            refresh,
            dpop: DpopConfig {
                bind_confidential_refresh_tokens: self.dpop_bind_confidential_refresh_tokens,
                nonce: self.dpop_nonce,
                nonce_lifetime: self.dpop_nonce_lifetime,
                proof_max_age: self.dpop_proof_max_age,
                proof_leeway: self.dpop_proof_leeway,
                jti_cache_size: self.dpop_jti_cache_size,
            },
            clients,
            users,
            user_claims,
            oidc: self.oidc,
        })
    }
}

impl Config {
    /// Every scope some client may request (RFC 8414 `scopes_supported`).
    pub fn scopes_supported(&self) -> Vec<String> {
        let mut all: Vec<String> =
            self.clients.values().flat_map(|c| c.scope.iter().map(str::to_owned).collect::<Vec<_>>()).collect();
        all.sort();
        all.dedup();
        all
    }
}

/// Hashes a person's password with argon2id (default parameters, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// An argon2id hash of a random string nobody knows, made once: unknown usernames are
/// checked against it so they take as long as known ones.
pub(crate) static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&crate::random_token()).unwrap_or_default());

/// Checks a password against an argon2 PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    argon2::PasswordHash::new(phc)
        .map(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_resolves() {
        let text = include_str!("../../../config/demo.toml");
        let config = ConfigFile::from_toml(text).unwrap().resolve().unwrap();
        assert_eq!(config.access_token_lifetime, 3600);
        assert!(config.refresh.always_issue_new_refresh_token);
        assert!(config.clients.contains_key("demo-client"));
        assert!(verify_password("alice-password", &config.users["alice"]));
        assert!(!verify_password("wrong", &config.users["alice"]));
    }

    #[test]
    fn rejects_unknown_options_and_bad_values() {
        assert!(ConfigFile::from_toml("issuer = \"http://x\"\nrefresh_token_lifetme = 3").is_err());
        let bad = ConfigFile::from_toml("issuer = \"ftp://x\"").unwrap().resolve();
        assert!(bad.is_err());
        let public_cc = ConfigFile::from_toml(
            "issuer = \"http://x\"\n[[clients]]\nclient_id = \"p\"\ngrant_types = [\"client_credentials\"]\nscope = \"read\"",
        )
        .unwrap()
        .resolve();
        assert!(public_cc.is_err());
        let unknown = ConfigFile::from_toml("issuer = \"http://x\"\npreset = \"nope\"").unwrap().resolve();
        assert!(unknown.unwrap_err().to_string().contains("hydra-graceful"));
    }

    #[test]
    fn a_preset_is_the_base_and_options_override_it() {
        let text = "issuer = \"http://x\"\npreset = \"dex\"\nrefresh_token_reuse_interval = 10";
        let policy = ConfigFile::from_toml(text).unwrap().resolve().unwrap().refresh;
        let dex = figure2_protocol::presets::find("dex").unwrap().policy;
        assert_eq!(policy, RefreshPolicy { refresh_token_reuse_interval: 10, ..dex });
        let text = "issuer = \"http://x\"\npreset = \"hydra\"\non_reuse = \"token\"\nrefresh_token_max_reuse = 2";
        let policy = ConfigFile::from_toml(text).unwrap().resolve().unwrap().refresh;
        assert_eq!((policy.on_reuse, policy.refresh_token_max_reuse), (ReuseRevokes::PresentedToken, Some(2)));
        assert!(ConfigFile::from_toml("issuer = \"http://x\"\non_reuse = \"all\"").unwrap().resolve().is_err());
    }
}
