//! Refresh-token policies of real servers as [`RefreshPolicy`] values ("a policy is
//! data"): `preset = "hydra"` in the authorization server's configuration, `--preset` on
//! its command line, or a scenario's `[config]`. Each preset names the public document or
//! source file it copies and the values it takes from it; where a product's behaviour is
//! not documented, [`Preset::undocumented`] says so instead of guessing.
//!
//! What Figure2 cannot copy, whatever the preset:
//! - public clients always rotate (RFC 9700 §4.14.2: Figure2 does not sender-constrain
//!   refresh tokens), so a preset that keeps tokens (Spring's `reuseRefreshTokens`,
//!   Keycloak's default, Duende `ReUse`) keeps them for confidential clients only;
//! - access tokens are self-contained JWTs: a revoked family cannot recall the access
//!   tokens already issued (Hydra and MAS revoke theirs, which their resource servers see
//!   through introspection); they die at `exp`;
//! - errors: every refusal is `invalid_grant` (Hydra answers the loser of a concurrent
//!   refresh `invalid_request`; Figure2 decides the two in order, so the loser is reuse).

use crate::refresh::{RefreshPolicy, ReuseRevokes};

/// One product's refresh-token policy and where it comes from.
#[derive(Debug, Clone)]
pub struct Preset {
    /// The name in configuration files and on the command line (`hydra-graceful`).
    pub name: &'static str,
    /// The product and setting, in the product's own words.
    pub title: &'static str,
    /// The public document or source file followed (repository path or URL).
    pub source: &'static str,
    /// The values copied from it, in the product's option names.
    pub copies: &'static str,
    /// What the product does that is not documented, or that Figure2 does differently.
    pub undocumented: &'static str,
    pub policy: RefreshPolicy,
}

const DAY: u64 = 24 * 3600;

fn base() -> RefreshPolicy {
    RefreshPolicy::default()
}

/// Every preset, in the order the comparison prints them.
pub fn all() -> Vec<Preset> {
    vec![
        Preset {
            name: "figure2",
            title: "Figure2 default (RFC 9700 §4.14.2: rotation, no grace, reuse revokes the family)",
            source: "config/demo.toml",
            copies: "always_issue_new_refresh_token = true, refresh_token_lifetime = 1209600, refresh_token_reuse_interval = 0, on_reuse = family",
            undocumented: "",
            policy: base(),
        },
        Preset {
            name: "oidc-provider",
            title: "panva/node-oidc-provider v9 defaults",
            source: "github.com/panva/node-oidc-provider lib/helpers/defaults.js (rotateRefreshToken, RefreshTokenTTL); lib/actions/grants/refresh_token.js (consumed token)",
            copies: "ttl.RefreshToken = 14 days; rotateRefreshToken: public clients always, otherwise once 70 % of the TTL has passed; a consumed token is destroyed and the grant revoked; no grace",
            undocumented: "the one-year cap on rotation (totalLifetime) and the shortened TTL for rotated SPA tokens are not modelled",
            policy: RefreshPolicy {
                always_issue_new_refresh_token: false,
                rotate_after_lifetime_percent: Some(70),
                refresh_token_lifetime: Some(14 * DAY),
                ..base()
            },
        },
        Preset {
            name: "hydra",
            title: "Ory Hydra v2, strict (rotation_grace_period = 0s)",
            source: "github.com/ory/hydra .schema/config.schema.json (ttl.refresh_token, oauth2.grant.refresh_token.rotation_grace_period); github.com/ory/fosite handler/oauth2/flow_refresh.go (handleRefreshTokenReuse)",
            copies: "ttl.refresh_token = 720h; rotation_grace_period = 0s; reuse revokes the refresh and access tokens of the request chain",
            undocumented: "Hydra answers the loser of a concurrent refresh invalid_request (a storage serialisation error); Figure2 orders the two and the loser is reuse (invalid_grant)",
            policy: RefreshPolicy { refresh_token_lifetime: Some(30 * DAY), ..base() },
        },
        Preset {
            name: "hydra-graceful",
            title: "Ory Hydra v2, graceful rotation (rotation_grace_period = 5m)",
            source: "github.com/ory/hydra .schema/config.schema.json (rotation_grace_period, rotation_grace_reuse_count); persistence/sql/persister_oauth2.go (GetRefreshTokenSession grace check)",
            copies: "rotation_grace_period = 5m (the schema's maximum without a reuse count; the value is ours, the default is 0s); rotation_grace_reuse_count = 0 (no count limit); each use in grace issues a new pair",
            undocumented: "Hydra measures the grace from the token's first use and lets any used token in, not only the immediate predecessor; Figure2 keeps its immediate-predecessor rule",
            policy: RefreshPolicy {
                refresh_token_lifetime: Some(30 * DAY),
                refresh_token_reuse_interval: 300,
                ..base()
            },
        },
        Preset {
            name: "keycloak",
            title: "Keycloak realm defaults (Revoke Refresh Token off)",
            source: "github.com/keycloak/keycloak services/src/main/java/org/keycloak/protocol/oidc/TokenManager.java (validateTokenReuseForRefresh: checked only if realm.isRevokeRefreshToken())",
            copies: "revokeRefreshToken = false: a used refresh token stays valid; lifetime = SSO Session Idle 30 min (sliding), SSO Session Max 10 h",
            undocumented: "Keycloak returns a new refresh token on every refresh while the old one stays valid; Figure2 models that as a kept token (the old one goes on working). SSO session defaults are from the admin console, not from the file above",
            policy: RefreshPolicy {
                always_issue_new_refresh_token: false,
                refresh_token_lifetime: None,
                refresh_token_idle_lifetime: Some(1800),
                refresh_token_absolute_lifetime: Some(36_000),
                ..base()
            },
        },
        Preset {
            name: "keycloak-revoke",
            title: "Keycloak, Revoke Refresh Token on, Refresh Token Max Reuse = 0",
            source: "github.com/keycloak/keycloak services/src/main/java/org/keycloak/protocol/oidc/TokenManager.java (validateTokenReuse, validateTokenReuseForRefresh)",
            copies: "revokeRefreshToken = true, refreshTokenMaxReuse = 0: a used token is 'Stale token' / 'Maximum allowed refresh token reuse exceeded' (invalid_grant) and the client session is detached from the user session",
            undocumented: "Keycloak counts uses of the token last presented, not of each retired token; with refreshTokenMaxReuse > 0 Figure2 counts per retired token",
            policy: RefreshPolicy {
                refresh_token_lifetime: None,
                refresh_token_idle_lifetime: Some(1800),
                refresh_token_absolute_lifetime: Some(36_000),
                refresh_token_max_reuse: Some(0),
                ..base()
            },
        },
        Preset {
            name: "dex",
            title: "Dex, refresh tokens as in config.yaml.dist",
            source: "github.com/dexidp/dex config.yaml.dist (expiry.refreshTokens); server/tokens/refresh_store.go (Rotate); server/tokens/refresh_lookup.go",
            copies: "disableRotation = false; reuseInterval = 3s: the obsolete token gets the current token back, and the current token used within 3 s is returned as is; validIfNotUsedFor = 2160h; absoluteLifetime = 3960h; a token claimed twice is refused, nothing revoked",
            undocumented: "left unset, Dex's code has no reuse interval and no lifetimes; the values above are the documented example",
            policy: RefreshPolicy {
                refresh_token_lifetime: None,
                refresh_token_idle_lifetime: Some(2160 * 3600),
                refresh_token_absolute_lifetime: Some(3960 * 3600),
                refresh_token_reuse_interval: 3,
                reuse_returns_issued_successor: true,
                on_reuse: ReuseRevokes::Nothing,
                ..base()
            },
        },
        Preset {
            name: "rauthy",
            title: "Rauthy defaults",
            source: "github.com/sebadob/rauthy config.toml ([lifetimes] refresh_token_grace_time); src/service/src/oidc/validation.rs (a used token's exp set to now + grace)",
            copies: "refresh_token_grace_time = 5 (seconds a used refresh token stays valid); after it the token is gone, nothing else is revoked",
            undocumented: "Rauthy keeps every used token valid for its 5 s, not only the immediate predecessor; the refresh token lifetime (tied to the session) is not modelled here: 48 h is ours",
            policy: RefreshPolicy {
                refresh_token_lifetime: Some(2 * DAY),
                refresh_token_reuse_interval: 5,
                on_reuse: ReuseRevokes::Nothing,
                ..base()
            },
        },
        Preset {
            name: "kanidm",
            title: "Kanidm defaults",
            source: "github.com/kanidm/kanidm server/lib/src/idm/oauth2.rs (refresh: 'reuse of a refresh token detected, destroying session'); server/lib/src/constants/mod.rs (OAUTH_REFRESH_TOKEN_EXPIRY)",
            copies: "OAUTH_REFRESH_TOKEN_EXPIRY = 16 h; always rotates; no grace; reuse removes the OAuth2 session",
            undocumented: "",
            policy: RefreshPolicy { refresh_token_lifetime: Some(16 * 3600), ..base() },
        },
        Preset {
            name: "mas",
            title: "matrix-authentication-service",
            source: "github.com/element-hq/matrix-authentication-service crates/handlers/src/oauth2/token.rs (refresh_token_grant: consumed token accepted while the next access token is unused)",
            copies: "a consumed refresh token is accepted again while its successor is unconsumed and the successor's access token was never used; the unused successor is revoked; a replay otherwise is refused and the session kept",
            undocumented: "MAS learns of a use when the homeserver introspects the access token; Figure2's resource server validates JWTs locally, so it reports a use the same way only when started with --report-first-use (it introspects each access token once, on its first use, RFC 7662 §2.1; the scenario runner turns it on under this preset). Refresh tokens have no lifetime of their own in MAS: none here",
            policy: RefreshPolicy {
                refresh_token_lifetime: None,
                reuse_while_successor_unused: true,
                on_reuse: ReuseRevokes::Nothing,
                ..base()
            },
        },
        Preset {
            name: "duende",
            title: "Duende IdentityServer 7, RefreshTokenUsage = ReUse (the model default)",
            source: "github.com/DuendeSoftware/IdentityServer src/Storage/Models/Client.cs (RefreshTokenUsage, RefreshTokenExpiration, AbsoluteRefreshTokenLifetime)",
            copies: "RefreshTokenUsage = ReUse; RefreshTokenExpiration = Absolute; AbsoluteRefreshTokenLifetime = 2592000",
            undocumented: "the EntityFramework entity (src/EntityFramework.Storage/Entities/Client.cs) defaults to OneTimeOnly: see duende-onetime",
            policy: RefreshPolicy {
                always_issue_new_refresh_token: false,
                refresh_token_lifetime: None,
                refresh_token_absolute_lifetime: Some(2_592_000),
                on_reuse: ReuseRevokes::Nothing,
                ..base()
            },
        },
        Preset {
            name: "duende-onetime",
            title: "Duende IdentityServer 7, RefreshTokenUsage = OneTimeOnly",
            source: "github.com/DuendeSoftware/IdentityServer src/IdentityServer/Services/Default/DefaultRefreshTokenService.cs (AcceptConsumedTokenAsync returns false)",
            copies: "OneTimeOnly: every refresh issues a new token and marks the old one consumed; a consumed token is refused and nothing is revoked; AbsoluteRefreshTokenLifetime = 2592000",
            undocumented: "",
            policy: RefreshPolicy {
                refresh_token_lifetime: None,
                refresh_token_absolute_lifetime: Some(2_592_000),
                on_reuse: ReuseRevokes::Nothing,
                ..base()
            },
        },
        Preset {
            name: "spring",
            title: "Spring Authorization Server defaults",
            source: "github.com/spring-projects/spring-authorization-server oauth2-authorization-server/.../settings/TokenSettings.java (reuseRefreshTokens, refreshTokenTimeToLive); .../token/OAuth2RefreshTokenGenerator.java (no refresh token for a public client)",
            copies: "reuseRefreshTokens = true; refreshTokenTimeToLive = 60 min; public clients get no refresh token",
            undocumented: "what Spring does when a reused token is presented after a rotation is moot: it never rotates by default",
            policy: RefreshPolicy {
                always_issue_new_refresh_token: false,
                refresh_token_lifetime: Some(3600),
                issue_refresh_tokens_to_public_clients: false,
                ..base()
            },
        },
        Preset {
            name: "auth0",
            title: "Auth0, refresh token rotation with a reuse interval",
            source: "https://auth0.com/docs/secure/tokens/refresh-tokens/configure-refresh-token-rotation (Reuse Interval); https://auth0.com/docs/secure/tokens/refresh-tokens/configure-refresh-token-expiration",
            copies: "rotation on; within the reuse interval only the previous token may be exchanged and a new rotating token is issued; outside it breach detection revokes the family",
            undocumented: "Auth0 is closed source and the cited pages give no default values: the reuse interval (30 s), absolute lifetime (30 days) and inactivity lifetime (15 days) are ours",
            policy: RefreshPolicy {
                refresh_token_lifetime: None,
                refresh_token_absolute_lifetime: Some(30 * DAY),
                refresh_token_idle_lifetime: Some(15 * DAY),
                refresh_token_reuse_interval: 30,
                ..base()
            },
        },
    ]
}

/// The preset named `name`.
pub fn find(name: &str) -> Option<Preset> {
    all().into_iter().find(|p| p.name == name)
}

/// Every preset's name, for error messages and `--help`.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_cites_its_source_and_has_a_unique_name() {
        let all = all();
        assert!(all.len() >= 14);
        for p in &all {
            assert!(!p.source.is_empty() && !p.copies.is_empty(), "{} cites nothing", p.name);
            assert_eq!(find(p.name).map(|f| f.policy), Some(p.policy.clone()));
        }
        let mut names = names();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len());
    }

    #[test]
    fn presets_differ_where_the_products_do() {
        let p = |n: &str| find(n).unwrap().policy;
        assert!(!p("hydra").allows_recovery() && p("hydra-graceful").allows_recovery());
        assert!(p("dex").reuse_returns_issued_successor && p("dex").on_reuse == ReuseRevokes::Nothing);
        assert!(p("mas").reuse_while_successor_unused);
        assert!(!p("keycloak").always_issue_new_refresh_token && p("keycloak-revoke").always_issue_new_refresh_token);
        assert!(!p("spring").issue_refresh_tokens_to_public_clients);
        assert_eq!(p("rauthy").refresh_token_reuse_interval, 5);
        assert_eq!(p("oidc-provider").rotate_after_lifetime_percent, Some(70));
    }
}
