//! The PostgreSQL store: several authorization-server instances over one database.
//!
//! Every instance keeps nothing of a family in memory: each refresh (steps G → H) is one
//! transaction that locks the family's row, reads the presented token, runs the family
//! machine ([`RefreshTokenFamily::refresh`]) and writes its effects.
//!
//! **One winner across instances** (RFC 9700 §4.14.2). Two instances that receive the
//! same refresh token at the same time both reach `SELECT … FOR UPDATE` on its family's
//! row; PostgreSQL lets one through, and the other waits until the first commits. Under
//! `READ COMMITTED` the waiting statement then reads the row as the winner left it, and
//! the next statement (the presented token's row) sees the winner's writes too: the loser
//! presents a token that is now retired, which the machine answers as reuse
//! (`invalid_grant`, or the grace answer the policy allows). Never a 5xx and never
//! `invalid_request`: the race is decided by the lock, not by a failed write. A refresh
//! takes exactly one row lock, so two refreshes cannot deadlock each other; should
//! PostgreSQL still report a serialization failure or a deadlock (SQLSTATE 40001,
//! 40P01), the whole transaction runs again, at most [`MAX_ATTEMPTS`] times.
//!
//! **Shared state.** Signing keys and server secrets live in the database: every
//! instance publishes the same JWKS, and a key added at one instance is loaded by the
//! others within [`KEY_RELOAD_INTERVAL`] (see `AuthorizationServer::reload_signing_keys`).
//! Schema changes are versioned migrations (`migrations/postgres/`, applied at start by
//! `refinery` under an advisory lock, so instances starting together apply them once).

use super::{
    FamilyId, FamilySummary, Grant, NewRefreshToken, OidcAuthorization, RedeemCode, RefreshCommand, RefreshOutcome,
    RefreshTokenInfo, Store, StoreError, StoreFuture, StoredKey, digest_of, parse_scope,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Transaction};
use figure2_protocol::UnixTime;
use figure2_protocol::authorization::{AuthorizationCodeGrant, CodeRejection};
use figure2_protocol::family::{FamilyEffect, LiveToken, PresentedToken, RefreshTokenFamily, Revocation, reason};
use figure2_protocol::secret::TokenDigest;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

refinery::embed_migrations!("migrations/postgres");

/// How many times a transaction runs when PostgreSQL reports a serialization failure or
/// a deadlock before the error reaches the caller (then a 500 `server_error`).
pub const MAX_ATTEMPTS: u32 = 5;

/// How often every instance reloads the signing keys from the database: a key added or
/// retired at one instance is served by all within this bound (seconds).
pub const KEY_RELOAD_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Connections in each instance's pool.
pub const POOL_SIZE: usize = 16;

/// The advisory lock instances take while they apply migrations.
const MIGRATION_LOCK: i64 = 0x6669_6775_7265_3200; // "figure2\0"

/// Whether `database` names a PostgreSQL database (`postgres://…` or `postgresql://…`).
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}

/// The PostgreSQL store. See the module documentation.
pub struct PostgresStore {
    pool: Pool,
    /// The rare blocking operations (start-up, signing keys) on a connection of their own.
    lane: BlockingLane,
    /// Statements sent to PostgreSQL (BEGIN and COMMIT included), for benchmarks.
    statements: AtomicU64,
    /// Transactions run again after a serialization failure or a deadlock.
    retries: AtomicU64,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

fn pool_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Postgres(format!("connection pool: {e}"))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED => {
                StoreError::Conflict(e.to_string())
            }
            _ => StoreError::Postgres(e.to_string()),
        }
    }
}

/// Runs `$body` in a transaction on a pooled connection (`$tx`), commits, and runs it all
/// again on [`StoreError::Conflict`], at most [`MAX_ATTEMPTS`] times.
macro_rules! in_transaction {
    ($store:expr, |$tx:ident| $body:block) => {{
        let store: &PostgresStore = $store;
        let mut attempt = 1;
        loop {
            let result: Result<_, StoreError> = async {
                let mut client = store.pool.get().await.map_err(pool_error)?;
                let $tx = client.transaction().await?;
                let value = $body;
                $tx.commit().await?;
                store.statements.fetch_add(2, Ordering::Relaxed);
                Ok(value)
            }
            .await;
            match result {
                Err(StoreError::Conflict(e)) if attempt < MAX_ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "transaction conflict; running it again");
                    store.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                }
                other => break other,
            }
        }
    }};
}

impl PostgresStore {
    /// Connects to `url`, applies the migrations this release has and the database lacks,
    /// and returns the store. Errors name what failed (connection, migration).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Postgres(format!("invalid PostgreSQL URL: {e}")))?;
        let manager =
            Manager::from_config(config.clone(), NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager).max_size(POOL_SIZE).build().map_err(pool_error)?;
        {
            let mut client = pool.get().await.map_err(pool_error)?;
            let client: &mut tokio_postgres::Client = &mut client;
            client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
            let applied = migrations::runner().run_async(client).await;
            client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await?;
            let report = applied.map_err(|e| StoreError::Migration(e.to_string()))?;
            for m in report.applied_migrations() {
                tracing::info!(version = m.version(), name = m.name(), "PostgreSQL migration applied");
            }
        }
        let lane = BlockingLane::start(config)?;
        Ok(Self { pool, lane, statements: AtomicU64::new(0), retries: AtomicU64::new(0) })
    }

    /// Statements sent so far (each `BEGIN` and `COMMIT` counts).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Transactions run again after a serialization failure or deadlock so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    async fn execute(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = tx.prepare_cached(sql).await?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        Ok(tx.execute(&statement, params).await?)
    }

    async fn query_opt(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = tx.prepare_cached(sql).await?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        Ok(tx.query_opt(&statement, params).await?)
    }

    async fn query(
        &self,
        tx: &Transaction<'_>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = tx.prepare_cached(sql).await?;
        self.statements.fetch_add(1, Ordering::Relaxed);
        Ok(tx.query(&statement, params).await?)
    }

    async fn insert_family(
        &self,
        tx: &Transaction<'_>,
        grant: &Grant,
        first: Option<&NewRefreshToken>,
        now: UnixTime,
    ) -> Result<FamilyId, StoreError> {
        let row = self
            .query_opt(
                tx,
                "INSERT INTO families (client_id, subject, scope, created_at, last_used_at, live_digest,
                                       live_generation, live_issued_at, live_expires_at, dpop_jkt)
                 VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9) RETURNING id",
                &[
                    &grant.client_id,
                    &grant.subject,
                    &grant.scope.to_string(),
                    &(now as i64),
                    &first.map(|t| &t.digest[..]),
                    &first.map(|_| 0i64),
                    &first.map(|_| now as i64),
                    &first.and_then(|t| t.expires_at).map(|e| e as i64),
                    &grant.dpop_jkt,
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING returned no row".into()))?;
        let family_id: i64 = row.try_get(0)?;
        if let Some(token) = first {
            self.insert_token(tx, family_id, 0, now, token).await?;
        }
        Ok(family_id)
    }

    async fn insert_token(
        &self,
        tx: &Transaction<'_>,
        family_id: FamilyId,
        generation: u64,
        now: UnixTime,
        token: &NewRefreshToken,
    ) -> Result<(), StoreError> {
        self.execute(
            tx,
            "INSERT INTO refresh_tokens (digest, family_id, generation, issued_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
            &[&&token.digest[..], &family_id, &(generation as i64), &(now as i64), &token.expires_at.map(|e| e as i64)],
        )
        .await?;
        Ok(())
    }

    /// Loads the family `digest` belongs to, with what is known of that token. With
    /// `lock`, the family's row stays locked until the transaction ends: the token's row
    /// is read after the lock is granted, so it shows every write of the previous holder.
    async fn load(
        &self,
        tx: &Transaction<'_>,
        digest: &TokenDigest,
        lock: bool,
    ) -> Result<Option<(FamilyId, RefreshTokenFamily, PresentedToken, UnixTime)>, StoreError> {
        let family_sql = if lock {
            "SELECT id, client_id, subject, scope, created_at, last_used_at, live_digest, live_generation,
                    live_issued_at, live_expires_at, grace_floor, revoked_at, revoked_reason,
                    live_access_token_id, live_access_token_used, dpop_jkt
             FROM families WHERE id = (SELECT family_id FROM refresh_tokens WHERE digest = $1) FOR UPDATE"
        } else {
            "SELECT id, client_id, subject, scope, created_at, last_used_at, live_digest, live_generation,
                    live_issued_at, live_expires_at, grace_floor, revoked_at, revoked_reason,
                    live_access_token_id, live_access_token_used, dpop_jkt
             FROM families WHERE id = (SELECT family_id FROM refresh_tokens WHERE digest = $1)"
        };
        // Pipelined: both statements go out together and PostgreSQL runs them in order, so
        // the token's row is read only after the family's lock is granted. Both are
        // prepared first (an unprepared statement would be sent later, out of order).
        let family_statement = tx.prepare_cached(family_sql).await?;
        let token_statement = tx
            .prepare_cached(
                "SELECT generation, issued_at, expires_at, retired_at, reuses FROM refresh_tokens WHERE digest = $1",
            )
            .await?;
        self.statements.fetch_add(2, Ordering::Relaxed);
        let key: &[u8] = &digest[..];
        let (f, t) = futures_util::future::try_join(
            tx.query_opt(&family_statement, &[&key]),
            tx.query_opt(&token_statement, &[&key]),
        )
        .await?;
        let Some(f) = f else { return Ok(None) };
        // None: forgotten while this transaction waited for the lock.
        let Some(t) = t else { return Ok(None) };
        let family_id: i64 = f.try_get(0)?;
        let created_at: i64 = f.try_get(4)?;
        let live = match (f.try_get::<_, Option<Vec<u8>>>(6)?, f.try_get::<_, Option<i64>>(7)?) {
            (Some(live_digest), Some(generation)) => Some(LiveToken {
                digest: digest_of(live_digest)?,
                generation: generation as u64,
                issued_at: f.try_get::<_, Option<i64>>(8)?.unwrap_or(created_at) as u64,
                expires_at: f.try_get::<_, Option<i64>>(9)?.map(|e| e as u64),
                access_token_id: f.try_get::<_, Option<Vec<u8>>>(13)?.map(digest_of).transpose()?,
                access_token_used: f.try_get(14)?,
            }),
            _ => None,
        };
        let family = RefreshTokenFamily {
            grant: Grant {
                client_id: f.try_get(1)?,
                subject: f.try_get(2)?,
                scope: parse_scope(f.try_get(3)?)?,
                dpop_jkt: f.try_get(15)?,
            },
            created_at: created_at as u64,
            last_used_at: f.try_get::<_, i64>(5)? as u64,
            live,
            grace_floor: f.try_get::<_, i64>(10)? as u64,
            revoked: f.try_get::<_, Option<i64>>(11)?.map(|at| Revocation {
                at: at as u64,
                reason: f.try_get::<_, Option<String>>(12).ok().flatten().unwrap_or_default(),
            }),
        };
        let presented = PresentedToken {
            generation: t.try_get::<_, i64>(0)? as u64,
            expires_at: t.try_get::<_, Option<i64>>(2)?.map(|e| e as u64),
            retired_at: t.try_get::<_, Option<i64>>(3)?.map(|r| r as u64),
            reuses: u32::try_from(t.try_get::<_, i32>(4)?).unwrap_or(0),
        };
        Ok(Some((family_id, family, presented, t.try_get::<_, i64>(1)? as u64)))
    }

    /// Writes a transition's effects (the only place a family's rows change after step B).
    /// `family` is the family as loaded, its row locked. The family's row is written once,
    /// with the state the effects leave it in ([`RefreshTokenFamily::apply`]); each token
    /// row gets a statement of its own. All are pipelined: sent together and run by
    /// PostgreSQL in the order sent (a rotation — retire, insert, family — is one round
    /// trip). They touch different rows, so their order does not matter.
    async fn persist(
        &self,
        tx: &Transaction<'_>,
        family_id: FamilyId,
        family: &RefreshTokenFamily,
        presented: Option<&TokenDigest>,
        effects: &[FamilyEffect],
    ) -> Result<(), StoreError> {
        type Sent<'a> = std::pin::Pin<Box<dyn Future<Output = Result<u64, tokio_postgres::Error>> + Send + 'a>>;
        let mut after = family.clone();
        let mut family_changed = false;
        let mut sends: Vec<Sent<'_>> = Vec::new();
        for effect in effects {
            after.apply(effect);
            let (sql, digest): (&str, TokenDigest) = match (effect, presented) {
                (FamilyEffect::RetireLive { digest, .. }, _) => {
                    ("UPDATE refresh_tokens SET retired_at = $2 WHERE digest = $1", *digest)
                }
                (FamilyEffect::IssueLive(token), _) => (
                    "INSERT INTO refresh_tokens (digest, family_id, generation, issued_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    token.digest,
                ),
                (FamilyEffect::RecordReuse { .. }, Some(p)) => {
                    ("UPDATE refresh_tokens SET reuses = $2 WHERE digest = $1", *p)
                }
                (FamilyEffect::ForgetPresented, Some(p)) => ("DELETE FROM refresh_tokens WHERE digest = $1", *p),
                (FamilyEffect::RecordReuse { .. } | FamilyEffect::ForgetPresented, None) => continue,
                (FamilyEffect::DiscardLive { digest, .. }, _) => {
                    ("DELETE FROM refresh_tokens WHERE digest = $1", *digest)
                }
                (
                    FamilyEffect::SetGraceFloor(_)
                    | FamilyEffect::Touch { .. }
                    | FamilyEffect::Revoke { .. }
                    | FamilyEffect::AccessTokenUsed { .. },
                    _,
                ) => {
                    family_changed = true;
                    continue;
                }
            };
            // The live token changes with these: the family's row too.
            family_changed |= matches!(
                effect,
                FamilyEffect::RetireLive { .. } | FamilyEffect::IssueLive(_) | FamilyEffect::DiscardLive { .. }
            );
            // Prepared before anything is sent (see `load`).
            let statement = tx.prepare_cached(sql).await?;
            self.statements.fetch_add(1, Ordering::Relaxed);
            let effect = effect.clone();
            sends.push(Box::pin(async move {
                let key: &[u8] = &digest[..];
                match effect {
                    FamilyEffect::RetireLive { at, .. } => tx.execute(&statement, &[&key, &(at as i64)]).await,
                    FamilyEffect::IssueLive(token) => {
                        let expires_at = token.expires_at.map(|e| e as i64);
                        let (generation, issued_at) = (token.generation as i64, token.issued_at as i64);
                        tx.execute(&statement, &[&key, &family_id, &generation, &issued_at, &expires_at]).await
                    }
                    FamilyEffect::RecordReuse { reuses } => {
                        tx.execute(&statement, &[&key, &i32::try_from(reuses).unwrap_or(i32::MAX)]).await
                    }
                    _ => tx.execute(&statement, &[&key]).await,
                }
            }));
        }
        if family_changed {
            let statement = tx
                .prepare_cached(
                    "UPDATE families SET live_digest = $2, live_generation = $3, live_issued_at = $4,
                                         live_expires_at = $5, live_access_token_id = $6, live_access_token_used = $7,
                                         grace_floor = $8, last_used_at = $9, revoked_at = $10, revoked_reason = $11
                     WHERE id = $1",
                )
                .await?;
            self.statements.fetch_add(1, Ordering::Relaxed);
            sends.push(Box::pin(async move {
                let live = after.live;
                let live_digest = live.map(|l| l.digest.to_vec());
                let generation = live.map(|l| l.generation as i64);
                let issued_at = live.map(|l| l.issued_at as i64);
                let expires_at = live.and_then(|l| l.expires_at).map(|e| e as i64);
                let access_token_id = live.and_then(|l| l.access_token_id).map(|d| d.to_vec());
                let access_token_used = live.is_some_and(|l| l.access_token_used);
                let (grace_floor, last_used_at) = (after.grace_floor as i64, after.last_used_at as i64);
                let revoked_at = after.revoked.as_ref().map(|r| r.at as i64);
                let revoked_reason = after.revoked.map(|r| r.reason);
                tx.execute(
                    &statement,
                    &[
                        &family_id,
                        &live_digest,
                        &generation,
                        &issued_at,
                        &expires_at,
                        &access_token_id,
                        &access_token_used,
                        &grace_floor,
                        &last_used_at,
                        &revoked_at,
                        &revoked_reason,
                    ],
                )
                .await
            }));
        }
        futures_util::future::try_join_all(sends).await?;
        Ok(())
    }

    async fn revoke(
        &self,
        tx: &Transaction<'_>,
        family_id: FamilyId,
        now: UnixTime,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.execute(
            tx,
            "UPDATE families SET revoked_at = $2, revoked_reason = $3 WHERE id = $1 AND revoked_at IS NULL",
            &[&family_id, &(now as i64), &reason],
        )
        .await?;
        Ok(())
    }

    async fn refresh_once(&self, tx: &Transaction<'_>, command: &RefreshCommand) -> Result<RefreshOutcome, StoreError> {
        let Some((family_id, family, token, _)) = self.load(tx, &command.presented, true).await? else {
            return Ok(RefreshOutcome::unknown());
        };
        let mut request = command.request.clone();
        request.subject_registered = command.directory.subject_registered(&family.grant.subject);
        let transition = family.refresh(&token, &request, &command.policy);
        self.persist(tx, family_id, &family, Some(&command.presented), &transition.effects).await?;
        Ok(RefreshOutcome { family_id: Some(family_id), subject: family.grant.subject, transition })
    }

    async fn redeem_code_once(
        &self,
        tx: &Transaction<'_>,
        command: &RedeemCode,
    ) -> Result<Result<(AuthorizationCodeGrant, FamilyId), CodeRejection>, StoreError> {
        // FOR UPDATE: two instances redeeming one code at once are decided one after the other.
        let Some(row) = self
            .query_opt(
                tx,
                "SELECT client_id, subject, scope, redirect_uri, code_challenge, expires_at, used_at, family_id
                 FROM authorization_codes WHERE digest = $1 FOR UPDATE",
                &[&&command.digest[..]],
            )
            .await?
        else {
            return Ok(Err(CodeRejection::Unknown));
        };
        if row.try_get::<_, Option<i64>>(6)?.is_some() {
            // RFC 6749 §4.1.2: a second use "SHOULD revoke (when possible) all tokens
            // previously issued based on that authorization code".
            if let Some(family_id) = row.try_get::<_, Option<i64>>(7)? {
                self.revoke(tx, family_id, command.now, reason::CODE_REUSED).await?;
            }
            return Ok(Err(CodeRejection::AlreadyUsed));
        }
        let grant = AuthorizationCodeGrant {
            client_id: row.try_get(0)?,
            subject: row.try_get(1)?,
            scope: parse_scope(row.try_get(2)?)?,
            redirect_uri: row.try_get(3)?,
            code_challenge: row.try_get(4)?,
            expires_at: row.try_get::<_, i64>(5)? as u64,
        };
        let family = match super::redeemed_grant(&grant, command) {
            Ok(family) => family,
            Err(rejection) => return Ok(Err(rejection)),
        };
        let family_id = self.insert_family(tx, &family, command.refresh.as_ref(), command.now).await?;
        self.execute(
            tx,
            "UPDATE authorization_codes SET used_at = $2, family_id = $3 WHERE digest = $1",
            &[&&command.digest[..], &(command.now as i64), &family_id],
        )
        .await?;
        Ok(Ok((grant, family_id)))
    }
}

impl Store for PostgresStore {
    fn create_family(
        &self,
        grant: Grant,
        refresh: Option<NewRefreshToken>,
        now: UnixTime,
    ) -> StoreFuture<'_, FamilyId> {
        Box::pin(async move {
            in_transaction!(self, |tx| { self.insert_family(&tx, &grant, refresh.as_ref(), now).await? })
        })
    }

    fn refresh(&self, command: RefreshCommand) -> StoreFuture<'_, RefreshOutcome> {
        Box::pin(async move { in_transaction!(self, |tx| { self.refresh_once(&tx, &command).await? }) })
    }

    fn save_code(&self, digest: TokenDigest, grant: AuthorizationCodeGrant) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                self.execute(
                    &tx,
                    "INSERT INTO authorization_codes (digest, client_id, subject, scope, redirect_uri,
                                                      code_challenge, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &&digest[..],
                        &grant.client_id,
                        &grant.subject,
                        &grant.scope.to_string(),
                        &grant.redirect_uri,
                        &grant.code_challenge,
                        &(grant.expires_at as i64),
                    ],
                )
                .await?;
            })
        })
    }

    fn redeem_code(
        &self,
        command: RedeemCode,
    ) -> StoreFuture<'_, Result<(AuthorizationCodeGrant, FamilyId), CodeRejection>> {
        Box::pin(async move { in_transaction!(self, |tx| { self.redeem_code_once(&tx, &command).await? }) })
    }

    fn refresh_token_info(&self, digest: TokenDigest) -> StoreFuture<'_, Option<RefreshTokenInfo>> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                self.load(&tx, &digest, false).await?.map(|(family_id, family, presented, issued_at)| {
                    RefreshTokenInfo { family_id, family, presented, issued_at }
                })
            })
        })
    }

    fn revoke_family(&self, family_id: FamilyId, now: UnixTime, reason: &'static str) -> StoreFuture<'_, ()> {
        Box::pin(async move { in_transaction!(self, |tx| { self.revoke(&tx, family_id, now, reason).await? }) })
    }

    fn live_family_count(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                let rows = self.query(&tx, "SELECT COUNT(*) FROM families WHERE revoked_at IS NULL", &[]).await?;
                rows.first().map(|r| r.try_get::<_, i64>(0)).transpose()?.unwrap_or(0) as u64
            })
        })
    }

    fn record_access_token_use(&self, access_token_id: TokenDigest, now: UnixTime) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                let live = self
                    .query_opt(
                        &tx,
                        "SELECT live_digest FROM families WHERE live_access_token_id = $1",
                        &[&&access_token_id[..]],
                    )
                    .await?
                    .map(|r| r.try_get::<_, Option<Vec<u8>>>(0))
                    .transpose()?
                    .flatten();
                match live {
                    None => false,
                    Some(live) => match self.load(&tx, &digest_of(live)?, true).await? {
                        None => false,
                        Some((family_id, family, _, _)) => {
                            let effects = family.access_token_used(&access_token_id, now);
                            self.persist(&tx, family_id, &family, None, &effects).await?;
                            !effects.is_empty()
                        }
                    },
                }
            })
        })
    }

    fn server_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        self.lane.call(LaneOp::ServerSecret(name.to_owned()))?.secret()
    }

    fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.lane.call(LaneOp::SigningKeys)?.keys()
    }

    fn add_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        self.lane.call(LaneOp::AddKey(key.clone(), false)).map(drop)
    }

    fn add_first_signing_key(&self, key: &StoredKey) -> Result<Vec<StoredKey>, StoreError> {
        self.lane.call(LaneOp::AddKey(key.clone(), true))?.keys()
    }

    fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        self.lane.call(LaneOp::RemoveKey(kid.to_owned())).map(drop)
    }

    fn families(
        &self,
        subject: Option<String>,
        client_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<FamilySummary>> {
        Box::pin(async move {
            let limit = limit.min(i64::MAX as usize) as i64;
            in_transaction!(self, |tx| {
                let rows = self
                    .query(
                        &tx,
                        "SELECT id, client_id, subject, scope, created_at, last_used_at, revoked_at, revoked_reason,
                                dpop_jkt
                         FROM families WHERE ($1::TEXT IS NULL OR subject = $1) AND ($2::TEXT IS NULL OR client_id = $2)
                         ORDER BY id DESC LIMIT $3",
                        &[&subject, &client_id, &limit],
                    )
                    .await?;
                let mut families = Vec::with_capacity(rows.len());
                for r in rows {
                    families.push(FamilySummary {
                        id: r.try_get(0)?,
                        grant: Grant {
                            client_id: r.try_get(1)?,
                            subject: r.try_get(2)?,
                            scope: parse_scope(r.try_get(3)?)?,
                            dpop_jkt: r.try_get(8)?,
                        },
                        created_at: r.try_get::<_, i64>(4)? as u64,
                        last_used_at: r.try_get::<_, i64>(5)? as u64,
                        revoked_at: r.try_get::<_, Option<i64>>(6)?.map(|t| t as u64),
                        revoked_reason: r.try_get(7)?,
                    });
                }
                families
            })
        })
    }

    fn record_oidc_authorization(&self, code: TokenDigest, authorization: OidcAuthorization) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                self.execute(
                    &tx,
                    "INSERT INTO oidc_authorizations (code_digest, nonce, auth_time, offline_access, expires_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &&code[..],
                        &authorization.nonce,
                        &(authorization.auth_time as i64),
                        &authorization.offline_access,
                        &(authorization.expires_at as i64),
                    ],
                )
                .await?;
            })
        })
    }

    fn oidc_authorization(&self, code: TokenDigest) -> StoreFuture<'_, Option<OidcAuthorization>> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                match self
                    .query_opt(
                        &tx,
                        "SELECT nonce, auth_time, offline_access, expires_at FROM oidc_authorizations
                         WHERE code_digest = $1",
                        &[&&code[..]],
                    )
                    .await?
                {
                    None => None,
                    Some(r) => Some(OidcAuthorization {
                        nonce: r.try_get(0)?,
                        auth_time: r.try_get::<_, i64>(1)? as u64,
                        offline_access: r.try_get(2)?,
                        expires_at: r.try_get::<_, i64>(3)? as u64,
                    }),
                }
            })
        })
    }

    fn bind_oidc_family(&self, code: TokenDigest, family_id: FamilyId, auth_time: UnixTime) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                self.execute(
                    &tx,
                    "UPDATE families SET auth_time = $2 WHERE id = $1",
                    &[&family_id, &(auth_time as i64)],
                )
                .await?;
                self.execute(&tx, "DELETE FROM oidc_authorizations WHERE code_digest = $1", &[&&code[..]]).await?;
            })
        })
    }

    fn oidc_auth_time(&self, family_id: FamilyId) -> StoreFuture<'_, Option<UnixTime>> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                self.query_opt(&tx, "SELECT auth_time FROM families WHERE id = $1", &[&family_id])
                    .await?
                    .map(|r| r.try_get::<_, Option<i64>>(0))
                    .transpose()?
                    .flatten()
                    .map(|t| t as u64)
            })
        })
    }

    fn first_dpop_jti_use(&self, jti: TokenDigest, until: UnixTime, now: UnixTime) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            in_transaction!(self, |tx| {
                // An expired record may be taken again; a live one is a replay.
                let first = self
                    .query_opt(
                        &tx,
                        "INSERT INTO dpop_jtis (digest, until) VALUES ($1, $2)
                         ON CONFLICT (digest) DO UPDATE SET until = EXCLUDED.until WHERE dpop_jtis.until < $3
                         RETURNING 1",
                        &[&&jti[..], &(until as i64), &(now as i64)],
                    )
                    .await?
                    .is_some();
                // Now and then, forget the records whose proofs no longer pass the iat check.
                if jti[0] == 0 {
                    self.execute(&tx, "DELETE FROM dpop_jtis WHERE until < $1", &[&(now as i64)]).await?;
                }
                first
            })
        })
    }

    fn shared(&self) -> bool {
        true
    }

    fn statements_executed(&self) -> Option<u64> {
        Some(self.statements())
    }
}

/// The blocking operations: signing keys and server secrets change at start-up or on
/// `rotate-key`, and their callers are not async. They run on a thread of their own with
/// its own runtime and connection, so a caller that blocks its (perhaps only) runtime
/// thread cannot starve the connection it waits on.
struct BlockingLane {
    jobs: Option<std::sync::mpsc::Sender<LaneJob>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An operation and where its answer goes.
type LaneJob = (LaneOp, std::sync::mpsc::SyncSender<Result<LaneAnswer, StoreError>>);

enum LaneOp {
    SigningKeys,
    /// The key; with `true`, only if the newest stored key is not of the same algorithm
    /// (instances starting together over an empty database add one key between them).
    AddKey(StoredKey, bool),
    RemoveKey(String),
    ServerSecret(String),
}

enum LaneAnswer {
    Keys(Vec<StoredKey>),
    Secret([u8; 32]),
}

impl LaneAnswer {
    fn keys(self) -> Result<Vec<StoredKey>, StoreError> {
        match self {
            LaneAnswer::Keys(keys) => Ok(keys),
            LaneAnswer::Secret(_) => Err(StoreError::Corrupt("unexpected answer".into())),
        }
    }

    fn secret(self) -> Result<[u8; 32], StoreError> {
        match self {
            LaneAnswer::Secret(secret) => Ok(secret),
            LaneAnswer::Keys(_) => Err(StoreError::Corrupt("unexpected answer".into())),
        }
    }
}

impl BlockingLane {
    fn start(config: tokio_postgres::Config) -> Result<Self, StoreError> {
        let (jobs, queue) =
            std::sync::mpsc::channel::<(LaneOp, std::sync::mpsc::SyncSender<Result<LaneAnswer, StoreError>>)>();
        let thread = std::thread::Builder::new()
            .name("postgres-blocking".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                runtime.block_on(async move {
                    let mut client: Option<tokio_postgres::Client> = None;
                    while let Ok((op, reply)) = queue.recv() {
                        if client.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
                            match config.connect(NoTls).await {
                                Ok((c, connection)) => {
                                    tokio::spawn(connection);
                                    client = Some(c);
                                }
                                Err(e) => {
                                    let _ = reply.send(Err(e.into()));
                                    continue;
                                }
                            }
                        }
                        let Some(c) = client.as_mut() else { continue };
                        let _ = reply.send(lane_op(c, op).await);
                    }
                });
            })
            .map_err(|e| StoreError::Corrupt(format!("cannot start the PostgreSQL key thread: {e}")))?;
        Ok(Self { jobs: Some(jobs), thread: Some(thread) })
    }

    fn call(&self, op: LaneOp) -> Result<LaneAnswer, StoreError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.jobs.as_ref().ok_or(StoreError::Stopped)?.send((op, reply)).map_err(|_| StoreError::Stopped)?;
        answer.recv().unwrap_or(Err(StoreError::Stopped))
    }
}

impl Drop for BlockingLane {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn lane_op(client: &mut tokio_postgres::Client, op: LaneOp) -> Result<LaneAnswer, StoreError> {
    async fn keys(tx: &tokio_postgres::Transaction<'_>) -> Result<Vec<StoredKey>, StoreError> {
        let rows = tx.query("SELECT kid, alg, pkcs8, created_at FROM signing_keys ORDER BY seq", &[]).await?;
        rows.iter()
            .map(|r| {
                Ok(StoredKey {
                    kid: r.try_get(0)?,
                    alg: r.try_get(1)?,
                    pkcs8: r.try_get(2)?,
                    created_at: r.try_get::<_, i64>(3)? as u64,
                })
            })
            .collect()
    }
    let tx = client.transaction().await?;
    let answer = match op {
        LaneOp::SigningKeys => LaneAnswer::Keys(keys(&tx).await?),
        LaneOp::AddKey(key, only_if_needed) => {
            // One instance at a time decides whether a first key is needed.
            tx.execute("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE", &[]).await?;
            let stored = keys(&tx).await?;
            if !(only_if_needed && stored.last().is_some_and(|k| k.alg == key.alg)) {
                tx.execute(
                    "INSERT INTO signing_keys (kid, alg, pkcs8, created_at) VALUES ($1, $2, $3, $4)",
                    &[&key.kid, &key.alg, &key.pkcs8, &(key.created_at as i64)],
                )
                .await?;
            }
            LaneAnswer::Keys(keys(&tx).await?)
        }
        LaneOp::RemoveKey(kid) => {
            tx.execute("DELETE FROM signing_keys WHERE kid = $1", &[&kid]).await?;
            LaneAnswer::Keys(keys(&tx).await?)
        }
        LaneOp::ServerSecret(name) => {
            let mut value = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut value);
            // The first instance's secret wins; every other one reads it.
            tx.execute(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                &[&name, &&value[..]],
            )
            .await?;
            let row = tx.query_one("SELECT value FROM server_secrets WHERE name = $1", &[&name]).await?;
            LaneAnswer::Secret(digest_of(row.try_get(0)?)?)
        }
    };
    tx.commit().await?;
    Ok(answer)
}

/// The environment variable naming the PostgreSQL server that tests, scenarios with
/// several instances and benchmarks use (`scripts/postgres-up.sh` prints a value).
pub const TEST_DATABASE_ENV: &str = "FIGURE2_TEST_POSTGRES";

/// Set (to anything) where PostgreSQL must be present: CI. Then a missing
/// [`TEST_DATABASE_ENV`] is an error, never a skip.
pub const REQUIRE_ENV: &str = "FIGURE2_REQUIRE_POSTGRES";

/// The PostgreSQL server to test against: `Ok(None)` if none is configured (the caller
/// says what it skips), `Err` if none is configured but [`REQUIRE_ENV`] is set.
pub fn test_database() -> Result<Option<String>, String> {
    match std::env::var(TEST_DATABASE_ENV) {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ if std::env::var_os(REQUIRE_ENV).is_some() => Err(format!(
            "{REQUIRE_ENV} is set but {TEST_DATABASE_ENV} is not: start PostgreSQL with \
             `export {TEST_DATABASE_ENV}=$(bash scripts/postgres-up.sh)`"
        )),
        _ => Ok(None),
    }
}

/// A schema of its own in a PostgreSQL database, for one test or scenario run: the
/// instances given [`ScratchDatabase::url`] share it and see nothing of other runs.
/// Dropped (with everything in it) when this value is.
#[derive(Debug)]
pub struct ScratchDatabase {
    base: String,
    schema: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates a new schema in the database `base` names.
    pub async fn create(base: &str) -> Result<Self, StoreError> {
        let mut suffix = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut suffix);
        let schema = format!("figure2_{}", suffix.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let config: tokio_postgres::Config =
            base.parse().map_err(|e| StoreError::Postgres(format!("invalid PostgreSQL URL: {e}")))?;
        let (client, connection) = config.connect(NoTls).await?;
        let connection = tokio::spawn(connection);
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
        drop(client);
        let _ = connection.await;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Ok(Self { base: base.to_owned(), schema, url })
    }

    /// The URL of the scratch schema (the base URL with `search_path` set).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        // Its own thread and runtime: Drop may run on a runtime thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let config: tokio_postgres::Config = base.parse().ok()?;
                let (client, connection) = config.connect(NoTls).await.ok()?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.ok()
            })
        });
        let _ = dropped.join();
    }
}
