//! The SQLite store: one embedded file, durable across crashes, with group commit.
//!
//! **Group commit.** One writer thread owns the connection. Requests hand it jobs over a
//! channel and await the answer; the writer takes every job that is waiting (at most
//! [`MAX_BATCH`]), runs them one after the other inside one `BEGIN IMMEDIATE`
//! transaction, each in a savepoint of its own, commits once, and only then answers each
//! caller. While one batch commits, the next one queues: the wait a request adds is at
//! most one commit, and a busy server pays one commit for many refreshes. Jobs run in
//! arrival order on the state the previous ones left, so two presentations of the same
//! refresh token in one batch have exactly one winner; the second is reuse.
//!
//! **Durability.** WAL journal with `synchronous=NORMAL`: a committed transaction
//! survives a process crash (SIGKILL); step H is answered only after its commit.
//!
//! **No runtime worker waits on the disk.** The async operations send a job and await a
//! one-shot answer; the writer is a plain thread.

use super::migrations::migrations;
use super::{
    FamilyId, FamilySummary, Grant, NewRefreshToken, OidcAuthorization, RedeemCode, RefreshCommand, RefreshOutcome,
    RefreshTokenInfo, Store, StoreError, StoreFuture, StoredKey, digest_of, parse_scope,
};
use figure2_protocol::UnixTime;
use figure2_protocol::authorization::{AuthorizationCodeGrant, CodeRejection};
use figure2_protocol::family::{FamilyEffect, LiveToken, PresentedToken, RefreshTokenFamily, Revocation, reason};
use figure2_protocol::secret::TokenDigest;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::sync::mpsc;

/// The most jobs one transaction takes. Bounds the latency a batch adds and the WAL it
/// writes in one commit.
pub const MAX_BATCH: usize = 256;

/// Page cache of the writer, in KiB: large enough that a rotation in a store of a
/// million families finds its pages in memory.
const CACHE_KIB: i64 = 64 * 1024;

/// Bytes of the database file SQLite reads through a memory map instead of `pread`
/// (measured: reads were 8 % of the writer's CPU with 1M families). Only reads: writes go
/// through the WAL as before, so durability is unchanged.
const MMAP_BYTES: i64 = 1 << 30;

/// One unit of work for the writer.
trait Job: Send {
    /// Runs inside the batch's transaction (in its own savepoint). Returns whether it
    /// succeeded; a failed job's writes are rolled back, the others' are kept.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the batch has committed (or failed to).
    fn finish(self: Box<Self>, committed: Result<(), &rusqlite::Error>);
}

struct Submitted<T, W, R> {
    work: Option<W>,
    result: Option<Result<T, StoreError>>,
    reply: R,
}

impl<T, W, R> Job for Submitted<T, W, R>
where
    T: Send,
    W: FnOnce(&Connection) -> Result<T, StoreError> + Send,
    R: FnOnce(Result<T, StoreError>) + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: Result<(), &rusqlite::Error>) {
        let result = match (committed, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(e), _) => Err(StoreError::Commit(e.to_string())),
            (Ok(()), None) => Err(StoreError::Commit("the job did not run".into())),
        };
        (self.reply)(result);
    }
}

/// The SQLite store. See the module documentation.
pub struct SqliteStore {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    checkpointer: Option<Checkpointer>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Stop the checkpointer first: the writer's connection, closed last, then runs
        // SQLite's final checkpoint and removes the WAL.
        drop(self.checkpointer.take());
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, `:memory:` for a throwaway store, and
    /// brings its schema up to date.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL + NORMAL: durable across process crashes, one fsync per checkpoint.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "mmap_size", MMAP_BYTES)?;
        migrations().to_latest(&mut conn)?;
        // Query planner stability: plans no longer depend on bound values, so the lookups
        // by digest are not re-prepared on every run.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let wal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let checkpointer = if wal.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "wal_autocheckpoint", 2 * WAL_RESTART_FRAMES)?;
            Some(Checkpointer::start(path)?)
        } else {
            None // `:memory:` has no WAL
        };
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let writer = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_batches(conn, queue))
            .map_err(|e| StoreError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(Self { jobs: Some(jobs), writer: Some(writer), checkpointer })
    }

    /// Queues `work` for the writer; `reply` gets its result after the commit.
    fn submit<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
        reply: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        let job = Box::new(Submitted { work: Some(work), result: None, reply });
        if let Some(jobs) = &self.jobs {
            // A send fails only if the writer died; dropping the job drops `reply`, and
            // the caller sees `StoreError::Stopped`.
            let _ = jobs.send(job);
        }
    }

    /// Runs `work` on the writer and awaits its committed result.
    fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'_, T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(work, move |result| {
            let _ = tx.send(result);
        });
        Box::pin(async move { rx.await.unwrap_or(Err(StoreError::Stopped)) })
    }

    /// Runs `work` on the writer and blocks this thread until it has committed. For
    /// start-up, the command line and tests; never call it on a runtime worker in a hot path.
    pub fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.submit(work, move |result| {
            let _ = tx.send(result);
        });
        rx.recv().unwrap_or(Err(StoreError::Stopped))
    }

    /// A fast path for loading many grants at once (benchmarks, imports): every family
    /// with its first refresh token, in one transaction. Returns how many were created.
    pub fn create_families_bulk(
        &self,
        families: impl IntoIterator<Item = (Grant, NewRefreshToken)> + Send + 'static,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        self.run_blocking(move |conn| {
            let mut created = 0;
            for (grant, token) in families {
                insert_family(conn, &grant, Some(&token), now)?;
                created += 1;
            }
            Ok(created)
        })
    }

    /// [`Store::refresh_token_info`], blocking (tests, tools).
    pub fn refresh_token_info_blocking(&self, digest: TokenDigest) -> Result<Option<RefreshTokenInfo>, StoreError> {
        self.run_blocking(move |conn| refresh_token_info(conn, &digest))
    }

    /// [`Store::live_family_count`], blocking (tests, tools).
    pub fn live_family_count_blocking(&self) -> Result<u64, StoreError> {
        self.run_blocking(live_family_count)
    }
}

/// The writer thread: batches, one transaction each, answers after the commit.
fn write_batches(mut conn: Connection, queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // Ends when the store (every sender) is dropped.
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = run_batch(&mut conn, &mut batch);
        for job in batch.drain(..) {
            job.finish(committed.as_ref().map(|_| ()));
        }
    }
}

fn run_batch(conn: &mut Connection, batch: &mut [Box<dyn Job>]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for job in batch.iter_mut() {
        tx.prepare_cached("SAVEPOINT job")?.execute([])?;
        if job.run(&tx) {
            tx.prepare_cached("RELEASE job")?.execute([])?;
        } else {
            tracing::warn!("a store operation failed; its writes are rolled back, the batch goes on");
            tx.prepare_cached("ROLLBACK TO job")?.execute([])?;
            tx.prepare_cached("RELEASE job")?.execute([])?;
        }
    }
    tx.commit()
}

fn insert_family(
    conn: &Connection,
    grant: &Grant,
    first: Option<&NewRefreshToken>,
    now: UnixTime,
) -> Result<FamilyId, StoreError> {
    conn.prepare_cached(
        "INSERT INTO families (client_id, subject, scope, created_at, last_used_at,
                               live_digest, live_generation, live_issued_at, live_expires_at, grace_floor, dpop_jkt)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
    )?
    .execute(params![
        grant.client_id,
        grant.subject,
        grant.scope.to_string(),
        now as i64,
        first.map(|t| &t.digest[..]),
        first.map(|_| 0i64),
        first.map(|_| now as i64),
        first.and_then(|t| t.expires_at).map(|e| e as i64),
        grant.dpop_jkt,
    ])?;
    let family_id = conn.last_insert_rowid();
    if let Some(token) = first {
        insert_token(conn, family_id, 0, now, token)?;
    }
    Ok(family_id)
}

fn insert_token(
    conn: &Connection,
    family_id: FamilyId,
    generation: u64,
    now: UnixTime,
    token: &NewRefreshToken,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (digest, family_id, generation, issued_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        &token.digest[..],
        family_id,
        generation as i64,
        now as i64,
        token.expires_at.map(|e| e as i64)
    ])?;
    Ok(())
}

/// Loads the family `digest` belongs to, with what is known of that token.
fn load(
    conn: &Connection,
    digest: &TokenDigest,
) -> Result<Option<(FamilyId, RefreshTokenFamily, PresentedToken, UnixTime)>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT t.family_id, t.generation, t.issued_at, t.expires_at, t.retired_at,
                    f.client_id, f.subject, f.scope, f.created_at, f.last_used_at,
                    f.live_digest, f.live_generation, f.live_issued_at, f.live_expires_at, f.grace_floor,
                    f.revoked_at, f.revoked_reason, t.reuses, f.live_access_token_id, f.live_access_token_used,
                    f.dpop_jkt
             FROM refresh_tokens t JOIN families f ON f.id = t.family_id WHERE t.digest = ?1",
        )?
        .query_row([&digest[..]], |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?),
                r.get::<_, Option<i64>>(4)?,
                (r.get::<_, String>(5)?, r.get::<_, String>(6)?, r.get::<_, String>(7)?),
                (r.get::<_, i64>(8)?, r.get::<_, i64>(9)?),
                (
                    r.get::<_, Option<Vec<u8>>>(10)?,
                    r.get::<_, Option<i64>>(11)?,
                    r.get::<_, Option<i64>>(12)?,
                    r.get::<_, Option<i64>>(13)?,
                    r.get::<_, i64>(14)?,
                ),
                (r.get::<_, Option<i64>>(15)?, r.get::<_, Option<String>>(16)?),
                (r.get::<_, i64>(17)?, r.get::<_, Option<Vec<u8>>>(18)?, r.get::<_, bool>(19)?),
                r.get::<_, Option<String>>(20)?,
            ))
        })
        .optional()?;
    let Some((
        (family_id, generation, issued_at, expires_at),
        retired_at,
        (client_id, subject, scope),
        (created_at, last_used_at),
        (live_digest, live_generation, live_issued_at, live_expires_at, grace_floor),
        (revoked_at, revoked_reason),
        (reuses, live_access_token_id, live_access_token_used),
        dpop_jkt,
    )) = row
    else {
        return Ok(None);
    };
    let live = match (live_digest, live_generation) {
        (Some(digest), Some(generation)) => Some(LiveToken {
            digest: digest_of(digest)?,
            generation: generation as u64,
            issued_at: live_issued_at.unwrap_or(created_at) as u64,
            expires_at: live_expires_at.map(|e| e as u64),
            access_token_id: live_access_token_id.map(digest_of).transpose()?,
            access_token_used: live_access_token_used,
        }),
        _ => None,
    };
    let family = RefreshTokenFamily {
        grant: Grant { client_id, subject, scope: parse_scope(scope)?, dpop_jkt },
        created_at: created_at as u64,
        last_used_at: last_used_at as u64,
        live,
        grace_floor: grace_floor as u64,
        revoked: revoked_at.map(|at| Revocation { at: at as u64, reason: revoked_reason.unwrap_or_default() }),
    };
    let presented = PresentedToken {
        generation: generation as u64,
        expires_at: expires_at.map(|e| e as u64),
        retired_at: retired_at.map(|r| r as u64),
        reuses: u32::try_from(reuses).unwrap_or(u32::MAX),
    };
    Ok(Some((family_id, family, presented, issued_at as u64)))
}

/// Writes a transition's effects. The only place a family's rows change after step B.
/// `presented` is the token the transition was about (the token-level effects apply to it).
fn persist(
    conn: &Connection,
    family_id: FamilyId,
    presented: Option<&TokenDigest>,
    effects: &[FamilyEffect],
) -> Result<(), StoreError> {
    for effect in effects {
        match effect {
            FamilyEffect::RetireLive { digest, at, .. } => {
                conn.prepare_cached("UPDATE refresh_tokens SET retired_at = ?2 WHERE digest = ?1")?
                    .execute(params![&digest[..], *at as i64])?;
            }
            FamilyEffect::IssueLive(token) => {
                let new = NewRefreshToken { digest: token.digest, expires_at: token.expires_at };
                insert_token(conn, family_id, token.generation, token.issued_at, &new)?;
                conn.prepare_cached(
                    "UPDATE families SET live_digest = ?2, live_generation = ?3, live_issued_at = ?4,
                                         live_expires_at = ?5, live_access_token_id = ?6,
                                         live_access_token_used = ?7 WHERE id = ?1",
                )?
                .execute(params![
                    family_id,
                    &token.digest[..],
                    token.generation as i64,
                    token.issued_at as i64,
                    token.expires_at.map(|e| e as i64),
                    token.access_token_id.as_ref().map(|d| &d[..]),
                    token.access_token_used,
                ])?;
            }
            FamilyEffect::SetGraceFloor(generation) => {
                conn.prepare_cached("UPDATE families SET grace_floor = ?2 WHERE id = ?1")?
                    .execute(params![family_id, *generation as i64])?;
            }
            FamilyEffect::Touch { at } => {
                conn.prepare_cached("UPDATE families SET last_used_at = ?2 WHERE id = ?1")?
                    .execute(params![family_id, *at as i64])?;
            }
            FamilyEffect::Revoke { at, reason } => revoke(conn, family_id, *at, reason)?,
            FamilyEffect::RecordReuse { reuses } => {
                if let Some(digest) = presented {
                    conn.prepare_cached("UPDATE refresh_tokens SET reuses = ?2 WHERE digest = ?1")?
                        .execute(params![&digest[..], i64::from(*reuses)])?;
                }
            }
            FamilyEffect::ForgetPresented => {
                if let Some(digest) = presented {
                    conn.prepare_cached("DELETE FROM refresh_tokens WHERE digest = ?1")?.execute([&digest[..]])?;
                }
            }
            FamilyEffect::DiscardLive { digest, .. } => {
                conn.prepare_cached("DELETE FROM refresh_tokens WHERE digest = ?1")?.execute([&digest[..]])?;
            }
            FamilyEffect::AccessTokenUsed { .. } => {
                conn.prepare_cached("UPDATE families SET live_access_token_used = 1 WHERE id = ?1")?
                    .execute([family_id])?;
            }
        }
    }
    Ok(())
}

fn revoke(conn: &Connection, family_id: FamilyId, now: UnixTime, reason: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE families SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL",
    )?
    .execute(params![family_id, now as i64, reason])?;
    Ok(())
}

fn refresh(conn: &Connection, command: RefreshCommand) -> Result<RefreshOutcome, StoreError> {
    let RefreshCommand { presented, mut request, policy, directory } = command;
    let Some((family_id, family, token, _)) = load(conn, &presented)? else {
        return Ok(RefreshOutcome::unknown());
    };
    request.subject_registered = directory.subject_registered(&family.grant.subject);
    let transition = family.refresh(&token, &request, &policy);
    persist(conn, family_id, Some(&presented), &transition.effects)?;
    Ok(RefreshOutcome { family_id: Some(family_id), subject: family.grant.subject, transition })
}

/// RFC 7662: an access token (`access_token_id`, digest of its `jti`) was seen in use.
fn record_access_token_use(
    conn: &Connection,
    access_token_id: &TokenDigest,
    now: UnixTime,
) -> Result<bool, StoreError> {
    let live: Option<Vec<u8>> = conn
        .prepare_cached("SELECT live_digest FROM families WHERE live_access_token_id = ?1")?
        .query_row([&access_token_id[..]], |r| r.get(0))
        .optional()?
        .flatten();
    let Some(live) = live else { return Ok(false) };
    let Some((family_id, family, _, _)) = load(conn, &digest_of(live)?)? else { return Ok(false) };
    let effects = family.access_token_used(access_token_id, now);
    persist(conn, family_id, None, &effects)?;
    Ok(!effects.is_empty())
}

/// The named server secret (32 random bytes), made on first use.
fn server_secret(conn: &Connection, name: &str) -> Result<[u8; 32], StoreError> {
    let stored: Option<Vec<u8>> = conn
        .prepare_cached("SELECT value FROM server_secrets WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?;
    if let Some(value) = stored {
        return digest_of(value);
    }
    let mut value = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut value);
    conn.prepare_cached("INSERT INTO server_secrets (name, value) VALUES (?1, ?2)")?
        .execute(params![name, &value[..]])?;
    Ok(value)
}

fn redeem_code(
    conn: &Connection,
    command: RedeemCode,
) -> Result<Result<(AuthorizationCodeGrant, FamilyId), CodeRejection>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT client_id, subject, scope, redirect_uri, code_challenge, expires_at, used_at, family_id
             FROM authorization_codes WHERE digest = ?1",
        )?
        .query_row([&command.digest[..]], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<i64>>(7)?,
            ))
        })
        .optional()?;
    let Some((client_id, subject, scope, redirect_uri, code_challenge, expires_at, used_at, family_id)) = row else {
        return Ok(Err(CodeRejection::Unknown));
    };
    if used_at.is_some() {
        // RFC 6749 §4.1.2: a second use "SHOULD revoke (when possible) all tokens
        // previously issued based on that authorization code".
        if let Some(family_id) = family_id {
            revoke(conn, family_id, command.now, reason::CODE_REUSED)?;
        }
        return Ok(Err(CodeRejection::AlreadyUsed));
    }
    let grant = AuthorizationCodeGrant {
        client_id,
        subject,
        scope: parse_scope(scope)?,
        redirect_uri,
        code_challenge,
        expires_at: expires_at as u64,
    };
    let family = match super::redeemed_grant(&grant, &command) {
        Ok(family) => family,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let family_id = insert_family(conn, &family, command.refresh.as_ref(), command.now)?;
    conn.prepare_cached("UPDATE authorization_codes SET used_at = ?2, family_id = ?3 WHERE digest = ?1")?
        .execute(params![&command.digest[..], command.now as i64, family_id])?;
    Ok(Ok((grant, family_id)))
}

fn refresh_token_info(conn: &Connection, digest: &TokenDigest) -> Result<Option<RefreshTokenInfo>, StoreError> {
    Ok(load(conn, digest)?.map(|(family_id, family, presented, issued_at)| RefreshTokenInfo {
        family_id,
        family,
        presented,
        issued_at,
    }))
}

fn live_family_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("SELECT COUNT(*) FROM families WHERE revoked_at IS NULL", [], |r| r.get::<_, i64>(0))? as u64)
}

fn families(
    conn: &Connection,
    subject: Option<&str>,
    client_id: Option<&str>,
    limit: usize,
) -> Result<Vec<FamilySummary>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, client_id, subject, scope, created_at, last_used_at, revoked_at, revoked_reason, dpop_jkt FROM families
         WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR client_id = ?2) ORDER BY id DESC LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![subject, client_id, limit.min(i64::MAX as usize) as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<i64>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, Option<String>>(8)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, client_id, subject, scope, created_at, last_used_at, revoked_at, revoked_reason, dpop_jkt)| {
            Ok(FamilySummary {
                id,
                grant: Grant { client_id, subject, scope: parse_scope(scope)?, dpop_jkt },
                created_at: created_at as u64,
                last_used_at: last_used_at as u64,
                revoked_at: revoked_at.map(|t| t as u64),
                revoked_reason,
            })
        })
        .collect()
}

impl Store for SqliteStore {
    fn create_family(
        &self,
        grant: Grant,
        refresh: Option<NewRefreshToken>,
        now: UnixTime,
    ) -> StoreFuture<'_, FamilyId> {
        self.run(move |conn| insert_family(conn, &grant, refresh.as_ref(), now))
    }

    fn refresh(&self, command: RefreshCommand) -> StoreFuture<'_, RefreshOutcome> {
        self.run(move |conn| refresh(conn, command))
    }

    fn save_code(&self, digest: TokenDigest, grant: AuthorizationCodeGrant) -> StoreFuture<'_, ()> {
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO authorization_codes (digest, client_id, subject, scope, redirect_uri, code_challenge, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                &digest[..],
                grant.client_id,
                grant.subject,
                grant.scope.to_string(),
                grant.redirect_uri,
                grant.code_challenge,
                grant.expires_at as i64
            ])?;
            Ok(())
        })
    }

    fn redeem_code(
        &self,
        command: RedeemCode,
    ) -> StoreFuture<'_, Result<(AuthorizationCodeGrant, FamilyId), CodeRejection>> {
        self.run(move |conn| redeem_code(conn, command))
    }

    fn refresh_token_info(&self, digest: TokenDigest) -> StoreFuture<'_, Option<RefreshTokenInfo>> {
        self.run(move |conn| refresh_token_info(conn, &digest))
    }

    fn revoke_family(&self, family_id: FamilyId, now: UnixTime, reason: &'static str) -> StoreFuture<'_, ()> {
        self.run(move |conn| revoke(conn, family_id, now, reason))
    }

    fn live_family_count(&self) -> StoreFuture<'_, u64> {
        self.run(live_family_count)
    }

    fn record_access_token_use(&self, access_token_id: TokenDigest, now: UnixTime) -> StoreFuture<'_, bool> {
        self.run(move |conn| record_access_token_use(conn, &access_token_id, now))
    }

    fn server_secret(&self, name: &str) -> Result<[u8; 32], StoreError> {
        let name = name.to_owned();
        self.run_blocking(move |conn| server_secret(conn, &name))
    }

    fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.run_blocking(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT kid, alg, pkcs8, created_at FROM signing_keys ORDER BY rowid")?;
            let keys = stmt
                .query_map([], |r| {
                    Ok(StoredKey {
                        kid: r.get(0)?,
                        alg: r.get(1)?,
                        pkcs8: r.get(2)?,
                        created_at: r.get::<_, i64>(3)? as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(keys)
        })
    }

    fn add_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.run_blocking(move |conn| {
            conn.execute(
                "INSERT INTO signing_keys (kid, alg, pkcs8, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key.kid, key.alg, key.pkcs8, key.created_at as i64],
            )?;
            Ok(())
        })
    }

    fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let kid = kid.to_owned();
        self.run_blocking(move |conn| {
            conn.execute("DELETE FROM signing_keys WHERE kid = ?1", [kid])?;
            Ok(())
        })
    }

    fn families(
        &self,
        subject: Option<String>,
        client_id: Option<String>,
        limit: usize,
    ) -> StoreFuture<'_, Vec<FamilySummary>> {
        self.run(move |conn| families(conn, subject.as_deref(), client_id.as_deref(), limit))
    }

    fn record_oidc_authorization(&self, code: TokenDigest, authorization: OidcAuthorization) -> StoreFuture<'_, ()> {
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO oidc_authorizations (code_digest, nonce, auth_time, offline_access, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                &code[..],
                authorization.nonce,
                authorization.auth_time as i64,
                authorization.offline_access,
                authorization.expires_at as i64
            ])?;
            Ok(())
        })
    }

    fn oidc_authorization(&self, code: TokenDigest) -> StoreFuture<'_, Option<OidcAuthorization>> {
        self.run(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT nonce, auth_time, offline_access, expires_at FROM oidc_authorizations
                     WHERE code_digest = ?1",
                )?
                .query_row([&code[..]], |r| {
                    Ok(OidcAuthorization {
                        nonce: r.get(0)?,
                        auth_time: r.get::<_, i64>(1)? as u64,
                        offline_access: r.get(2)?,
                        expires_at: r.get::<_, i64>(3)? as u64,
                    })
                })
                .optional()?)
        })
    }

    fn bind_oidc_family(&self, code: TokenDigest, family_id: FamilyId, auth_time: UnixTime) -> StoreFuture<'_, ()> {
        self.run(move |conn| {
            conn.prepare_cached("INSERT OR REPLACE INTO oidc_families (family_id, auth_time) VALUES (?1, ?2)")?
                .execute(params![family_id, auth_time as i64])?;
            conn.prepare_cached("DELETE FROM oidc_authorizations WHERE code_digest = ?1")?.execute([&code[..]])?;
            Ok(())
        })
    }

    fn oidc_auth_time(&self, family_id: FamilyId) -> StoreFuture<'_, Option<UnixTime>> {
        self.run(move |conn| {
            Ok(conn
                .prepare_cached("SELECT auth_time FROM oidc_families WHERE family_id = ?1")?
                .query_row([family_id], |r| r.get::<_, i64>(0))
                .optional()?
                .map(|t| t as u64))
        })
    }
}

/// When the WAL holds this many frames (4 KiB pages), the checkpointer restarts it from
/// the beginning, which bounds the WAL file to about 256 MiB. A restart holds the store
/// for two fsyncs: rarely is better (measured: at 16384 frames the refresh grant's p99
/// under load was 30 ms, at 65536 about 20 ms, on a disk whose fsync takes 3 to 60 ms).
const WAL_RESTART_FRAMES: i64 = 65_536;

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// Performance: checkpoints off the request path. SQLite's default runs a checkpoint on
/// the committing connection every 1000 pages: the copy and its two fsyncs (3 to 60 ms
/// each on a virtual disk) then ran inside a token request, and every other token
/// request waited. This thread, with a connection of its own:
/// - every [`CHECKPOINT_INTERVAL`], runs a PASSIVE checkpoint, which copies frames into
///   the database file without ever blocking the writer, then fsyncs the database file
///   (SQLite fsyncs it only when a checkpoint catches up with the writer);
/// - once the WAL reaches [`WAL_RESTART_FRAMES`], copies the last frames with a TRUNCATE
///   checkpoint (which waits for the writer's batch to end and holds the next one), and
///   lets the WAL start again, empty. Only this short step holds the writer.
///
/// Durability is unchanged: with WAL and `synchronous=NORMAL` a transaction survives a
/// process crash once committed to the WAL, whoever checkpoints it later and whenever.
/// The request connection keeps an automatic checkpoint as a backstop at twice the
/// restart size, should this thread ever fall behind.
struct Checkpointer {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &str) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        // A TRUNCATE checkpoint waits (through the busy handler) for the writer's
        // transaction to end, and the writer's next BEGIN waits for it.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let database_file = std::fs::File::open(path).ok();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let run = move || {
            // (busy, frames in the WAL, frames copied into the database file)
            let checkpoint = |mode: &str| -> rusqlite::Result<(i64, i64, i64)> {
                conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            };
            let mut synced = 0; // frames copied when the database file was last synced
            let mut wait = CHECKPOINT_INTERVAL;
            let mut next_restart = std::time::Instant::now();
            // Stops when the store drops the sender.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                let (frames, copied) = match checkpoint("PASSIVE") {
                    Ok((_, frames, copied)) => (frames, copied),
                    Err(e) => {
                        tracing::debug!(error = %e, "background checkpoint failed");
                        continue;
                    }
                };
                if copied != synced {
                    // A failed sync only leaves the work to the checkpoint that restarts the WAL.
                    let _ = database_file.as_ref().map(std::fs::File::sync_data);
                    synced = copied;
                }
                // Idle: look again in a while.
                wait = if copied == frames { 10 * CHECKPOINT_INTERVAL } else { CHECKPOINT_INTERVAL };
                if frames >= WAL_RESTART_FRAMES && std::time::Instant::now() >= next_restart {
                    // TRUNCATE, not RESTART: the WAL starts again as an empty file. Its
                    // frames (4120 bytes) are not aligned to pages, so overwriting an old
                    // WAL whose pages the kernel already dropped from its cache made every
                    // commit read disk blocks first (measured: the refresh grant's CPU per
                    // request doubled after a few minutes); appending never reads.
                    if !matches!(checkpoint("TRUNCATE"), Ok((0, _, _))) {
                        // Another process is reading: try again later, not every round.
                        next_restart = std::time::Instant::now() + std::time::Duration::from_secs(1);
                    }
                }
            }
        };
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(run)
            .map_err(|e| StoreError::Corrupt(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figure2_protocol::Scope;

    fn grant() -> Grant {
        Grant { client_id: "c".into(), subject: "alice".into(), scope: Scope::parse("read").unwrap(), dpop_jkt: None }
    }

    #[test]
    fn the_checkpointer_copies_the_wal_and_stops_with_the_store() {
        let dir = std::env::temp_dir().join(format!("figure2-checkpointer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let wal = dir.join("store.db-wal");
        let store = SqliteStore::open(path.to_str().unwrap()).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for i in 0..2_000u32 {
            let digest = figure2_protocol::secret::digest(&i.to_string());
            let token = NewRefreshToken { digest, expires_at: None };
            store.run_blocking(move |conn| insert_family(conn, &grant(), Some(&token), 1)).unwrap();
        }
        // No commit checkpoints (the automatic one is far off): only the thread can have
        // copied the committed pages into the database file.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(std::time::Instant::now() < deadline, "the checkpointer copied nothing");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(store.refresh_token_info_blocking(figure2_protocol::secret::digest("7")).unwrap().is_some());
        // Dropping the store joins the thread; the last connection's close removes the WAL.
        drop(store);
        assert!(!wal.exists(), "the WAL outlived the store");
        let reopened = SqliteStore::open(path.to_str().unwrap()).unwrap();
        assert_eq!(reopened.live_family_count_blocking().unwrap(), 2_000);
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_stores_have_no_checkpointer() {
        let store = SqliteStore::open(":memory:").unwrap();
        assert!(store.checkpointer.is_none());
    }
}
