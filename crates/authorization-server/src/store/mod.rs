//! Durable state of the authorization server: refresh-token families, authorization
//! codes and signing keys, behind the small [`Store`] trait.
//!
//! A store *persists*; it decides nothing. Every rule of a refresh (steps G → H) is
//! [`figure2_protocol::family::RefreshTokenFamily::refresh`]: a store loads the family
//! the presented token belongs to, hands it to the machine, writes the
//! [`FamilyEffect`]s it returns in the same transaction, and answers only after the
//! commit. Two presentations of one token are decided one after the other on the state
//! the first left behind: exactly one wins.
//!
//! Only SHA-256 digests of refresh tokens and codes are stored (RFC 6749 §10.4/§10.5:
//! keep them confidential). [`SqliteStore`] (an embedded SQLite file, `:memory:` for
//! tests) is the default; [`PostgresStore`] lets several instances share one database
//! (`--database postgres://…`).
//!
//! [`FamilyEffect`]: figure2_protocol::family::FamilyEffect

mod migrations;
pub mod postgres;
mod sqlite;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

use figure2_protocol::authorization::{AuthorizationCodeGrant, CodeRejection};
use figure2_protocol::family::{PresentedToken, RefreshRejection, RefreshRequest, RefreshTokenFamily, Transition};
use figure2_protocol::pkce::CodeVerifier;
use figure2_protocol::refresh::RefreshPolicy;
use figure2_protocol::secret::TokenDigest;
use figure2_protocol::{Scope, UnixTime};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use figure2_protocol::family::Grant;

/// A stored scope (`""`: none) as a [`Scope`].
fn parse_scope(s: String) -> Result<Scope, StoreError> {
    if s.is_empty() { Ok(Scope::empty()) } else { Scope::parse(&s).map_err(|e| StoreError::Corrupt(e.to_string())) }
}

/// A stored SHA-256 digest.
fn digest_of(bytes: Vec<u8>) -> Result<TokenDigest, StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt("a stored digest is not 32 bytes".into()))
}

/// Step A with an unused code the store has loaded: RFC 6749 §4.1.3 and RFC 7636 §4.6
/// (`figure2_protocol::authorization::check_code`), then the grant of the family the
/// redemption creates (bound to the request's DPoP key, if any). Both stores call it.
fn redeemed_grant(grant: &AuthorizationCodeGrant, command: &RedeemCode) -> Result<Grant, CodeRejection> {
    figure2_protocol::authorization::check_code(
        grant,
        &command.client_id,
        command.redirect_uri.as_deref(),
        command.code_verifier.as_ref(),
        command.now,
    )?;
    Ok(Grant {
        client_id: grant.client_id.clone(),
        subject: grant.subject.clone(),
        scope: grant.scope.clone(),
        dpop_jkt: command.dpop_jkt.clone(),
    })
}

/// A family's row id.
pub type FamilyId = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("schema migration failed: {0}")]
    Migration(String),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// A serialization failure or deadlock (SQLSTATE 40001, 40P01) left after every
    /// attempt; the transaction wrote nothing.
    #[error("PostgreSQL transaction conflict: {0}")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("the batch this request was part of failed to commit: {0}")]
    Commit(String),
    #[error("the store's writer has stopped")]
    Stopped,
}

/// What a store's async operations return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A refresh token about to be stored.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken {
    pub digest: TokenDigest,
    pub expires_at: Option<UnixTime>,
}

/// Who is registered now: the refresh decision reads the current registration, not only
/// the stored grant (a removed resource owner's families die on their next refresh).
pub trait Directory: Send + Sync {
    fn subject_registered(&self, subject: &str) -> bool;
}

/// Step G, as the token endpoint hands it to the store.
pub struct RefreshCommand {
    pub presented: TokenDigest,
    /// The presentation; the store fills in `subject_registered` from `directory` once it
    /// knows the family's subject.
    pub request: RefreshRequest,
    pub policy: Arc<RefreshPolicy>,
    pub directory: Arc<dyn Directory>,
}

/// The machine's transition for one refresh, with what step H needs.
#[derive(Debug, Clone)]
pub struct RefreshOutcome {
    /// `None` for an unknown token.
    pub family_id: Option<FamilyId>,
    pub subject: String,
    pub transition: Transition,
}

impl RefreshOutcome {
    pub(crate) fn unknown() -> Self {
        Self {
            family_id: None,
            subject: String::new(),
            transition: Transition { decision: Err(RefreshRejection::Unknown), effects: Vec::new() },
        }
    }
}

/// Step A with a code, as the token endpoint hands it to the store.
pub struct RedeemCode {
    pub digest: TokenDigest,
    pub client_id: String,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<CodeVerifier>,
    pub now: UnixTime,
    /// The family's first refresh token, if the client gets one.
    pub refresh: Option<NewRefreshToken>,
    /// RFC 9449 §5: the DPoP key thumbprint the family is bound to, if any.
    pub dpop_jkt: Option<String>,
}

/// What introspection and revocation need to know about a refresh token.
#[derive(Debug, Clone)]
pub struct RefreshTokenInfo {
    pub family_id: FamilyId,
    pub family: RefreshTokenFamily,
    pub presented: PresentedToken,
    pub issued_at: UnixTime,
}

impl RefreshTokenInfo {
    pub fn grant(&self) -> &Grant {
        &self.family.grant
    }

    /// Where the token stands (active, retired, revoked).
    pub fn status(&self) -> figure2_protocol::family::RefreshTokenStatus {
        self.family.status_of(&self.presented)
    }
}

impl From<rusqlite_migration::Error> for StoreError {
    fn from(e: rusqlite_migration::Error) -> Self {
        StoreError::Migration(e.to_string())
    }
}

/// OpenID Connect: what the authorization step recorded for an `openid` code (its
/// `nonce`, when the user authenticated, whether `offline_access` was granted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcAuthorization {
    pub nonce: Option<String>,
    pub auth_time: UnixTime,
    pub offline_access: bool,
    pub expires_at: UnixTime,
}

/// A stored signing key.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub pkcs8: Vec<u8>,
    pub created_at: UnixTime,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never reaches a log.
        f.debug_struct("StoredKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// What the authorization server keeps. Every operation is atomic; the token endpoint's
/// operations are async so that no request holds a runtime worker while the disk works.
pub trait Store: Send + Sync {
    /// Step B: records a new grant and, if given, its first refresh token.
    fn create_family(&self, grant: Grant, refresh: Option<NewRefreshToken>, now: UnixTime)
    -> StoreFuture<'_, FamilyId>;

    /// Steps G → H: loads the presented token's family, runs the family machine, persists
    /// its effects, and returns the transition once they are durable.
    fn refresh(&self, command: RefreshCommand) -> StoreFuture<'_, RefreshOutcome>;

    fn save_code(&self, digest: TokenDigest, grant: AuthorizationCodeGrant) -> StoreFuture<'_, ()>;

    /// Step A with a code: checks it (`figure2_protocol::authorization::check_code`), marks
    /// it used (single use, RFC 6749 §4.1.2) and creates the family. A second use revokes
    /// the family the first use created ("SHOULD revoke ... all tokens previously issued
    /// based on that code").
    fn redeem_code(
        &self,
        command: RedeemCode,
    ) -> StoreFuture<'_, Result<(AuthorizationCodeGrant, FamilyId), CodeRejection>>;

    fn refresh_token_info(&self, digest: TokenDigest) -> StoreFuture<'_, Option<RefreshTokenInfo>>;

    /// RFC 7009: revokes a family. Revoking a revoked family changes nothing.
    fn revoke_family(&self, family_id: FamilyId, now: UnixTime, reason: &'static str) -> StoreFuture<'_, ()>;

    /// Number of refresh-token families not revoked (for the operator and benchmarks).
    fn live_family_count(&self) -> StoreFuture<'_, u64>;

    /// RFC 7662: the access token whose `jti` has digest `access_token_id` was seen in use
    /// (usage-based recovery ends for its family). Returns whether anything changed.
    fn record_access_token_use(&self, access_token_id: TokenDigest, now: UnixTime) -> StoreFuture<'_, bool>;

    /// A named 32-byte server secret, made on first use and kept with the signing keys
    /// (blocking: start-up only).
    fn server_secret(&self, name: &str) -> Result<[u8; 32], StoreError>;

    // Signing keys change rarely (start-up, `rotate-key`): these block the caller.
    fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    fn add_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Adds `key` unless the newest stored key already has its algorithm, atomically (two
    /// instances starting together over an empty database add one key between them).
    /// Returns the stored keys, oldest first.
    fn add_first_signing_key(&self, key: &StoredKey) -> Result<Vec<StoredKey>, StoreError> {
        let stored = self.signing_keys()?;
        if stored.last().is_some_and(|k| k.alg == key.alg) {
            return Ok(stored);
        }
        self.add_signing_key(key)?;
        self.signing_keys()
    }

    /// OpenID Connect: remembers an `openid` code's authorization (Core §3.1.2).
    fn record_oidc_authorization(&self, code: TokenDigest, authorization: OidcAuthorization) -> StoreFuture<'_, ()>;
    fn oidc_authorization(&self, code: TokenDigest) -> StoreFuture<'_, Option<OidcAuthorization>>;
    /// Keeps the `auth_time` of the family the code created (Core §12.2) and forgets the code's record.
    fn bind_oidc_family(&self, code: TokenDigest, family_id: FamilyId, auth_time: UnixTime) -> StoreFuture<'_, ()>;
    fn oidc_auth_time(&self, family_id: FamilyId) -> StoreFuture<'_, Option<UnixTime>>;

    /// RFC 9449 §11.1 across instances: records a DPoP proof's `jti` (its digest) until
    /// `until`; false if it was already recorded and has not expired (a replay). A store
    /// no other instance shares answers true: each instance's memory is the whole check.
    fn first_dpop_jti_use(&self, _jti: TokenDigest, _until: UnixTime, _now: UnixTime) -> StoreFuture<'_, bool> {
        Box::pin(async { Ok(true) })
    }

    /// Whether other authorization-server instances share this store (then signing keys
    /// are reloaded from it periodically).
    fn shared(&self) -> bool {
        false
    }

    /// Statements sent to the database so far, where the store counts them (benchmarks).
    fn statements_executed(&self) -> Option<u64> {
        None
    }

    /// Families of `subject` and/or `client_id` (all if both are `None`), newest first, at
    /// most `limit` (the test-control listing; `end_session` revokes a user's families).
    fn families(
        &self,
        subject: Option<String>,
        client_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<FamilySummary>>;
}

/// A family as the operator sees it (no token digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilySummary {
    pub id: FamilyId,
    pub grant: Grant,
    pub created_at: UnixTime,
    pub last_used_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
    pub revoked_reason: Option<String>,
}
