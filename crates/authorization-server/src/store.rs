//! Durable state of the authorization server: refresh-token families, authorization
//! codes and signing keys, behind the small [`Store`] trait. [`SqliteStore`] (an embedded
//! SQLite file, `:memory:` for tests) is the default.
//!
//! Only SHA-256 digests of refresh tokens and codes are stored (RFC 6749 §10.4/§10.5:
//! keep them confidential). The rules deciding *whether* a token may be used live in
//! `figure2_protocol::refresh`; the store runs them inside one transaction, so checking
//! that the presented token is live and replacing it happen atomically (step G → H).
//!
//! Crash safety: WAL journal with `synchronous=NORMAL` keeps every committed transaction
//! across a process crash (SIGKILL); the answer of step H is sent only after the commit.

use figure2_protocol::authorization::{AuthorizationCodeGrant, CodeRejection};
use figure2_protocol::refresh::{RefreshGranted, RefreshRejection, RefreshTokenState, RefreshTokenStatus};
use figure2_protocol::secret::TokenDigest;
use figure2_protocol::{Scope, UnixTime};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::sync::{Arc, Mutex};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A grant the resource owner made to a client: the root of a refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub client_id: String,
    pub subject: String,
    pub scope: Scope,
}

/// A refresh token about to be stored.
#[derive(Debug, Clone, Copy)]
pub struct NewRefreshToken {
    pub digest: TokenDigest,
    pub expires_at: Option<UnixTime>,
}

/// The outcome of a successful refresh, with what the token endpoint needs for step H.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub granted: RefreshGranted,
    pub family_id: i64,
    pub subject: String,
    /// Whether the replacement token was stored (rotation).
    pub rotated: bool,
}

/// A refused refresh, with whether the family was revoked because of it.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub rejection: RefreshRejection,
    pub family_revoked: bool,
}

/// What introspection and revocation need to know about a refresh token.
#[derive(Debug, Clone)]
pub struct RefreshTokenInfo {
    pub family_id: i64,
    pub grant: Grant,
    pub state: RefreshTokenState,
    pub issued_at: UnixTime,
}

/// A stored signing key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub pkcs8: Vec<u8>,
    pub created_at: UnixTime,
}

/// The decision run inside a refresh transaction (see `figure2_protocol::refresh::check_refresh`).
pub type RefreshDecision<'a> =
    &'a mut dyn FnMut(Option<&RefreshTokenState>) -> Result<RefreshGranted, RefreshRejection>;

/// What the authorization server keeps. Every method is one transaction.
pub trait Store: Send + Sync {
    /// Step B: records a new grant and, if given, its first refresh token.
    fn create_family(&self, grant: &Grant, refresh: Option<NewRefreshToken>, now: UnixTime) -> Result<i64, StoreError>;

    /// Steps G → H, atomically: looks up `presented`, runs `decide`, and on success stores
    /// `replacement` (if rotating) and retires `presented`. On reuse, revokes the family
    /// when `revoke_on_reuse` is set.
    fn refresh(
        &self,
        presented: &TokenDigest,
        replacement: NewRefreshToken,
        now: UnixTime,
        revoke_on_reuse: bool,
        decide: RefreshDecision<'_>,
    ) -> Result<Result<Refreshed, Refused>, StoreError>;

    fn family_created_at(&self, presented: &TokenDigest) -> Result<Option<UnixTime>, StoreError>;

    fn save_code(&self, digest: &TokenDigest, grant: &AuthorizationCodeGrant) -> Result<(), StoreError>;

    /// Step A with a code: marks the code used (single use, RFC 6749 §4.1.2) and creates
    /// the family, if `check` accepts it. A second use revokes the family the first use
    /// created ("SHOULD revoke ... all tokens previously issued based on that code").
    fn redeem_code(
        &self,
        digest: &TokenDigest,
        now: UnixTime,
        check: &mut dyn FnMut(&AuthorizationCodeGrant) -> Result<(), CodeRejection>,
        refresh: Option<NewRefreshToken>,
    ) -> Result<Result<(AuthorizationCodeGrant, i64), CodeRejection>, StoreError>;

    fn refresh_token_info(&self, digest: &TokenDigest) -> Result<Option<RefreshTokenInfo>, StoreError>;

    /// RFC 7009: revokes the family of a refresh token. Returns whether one was found.
    fn revoke_family(&self, family_id: i64, now: UnixTime, reason: &str) -> Result<(), StoreError>;

    fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    fn add_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError>;

    /// Number of refresh-token families not revoked (for the operator and benchmarks).
    fn live_family_count(&self) -> Result<u64, StoreError>;

    /// Families of `subject` and/or `client_id` (all if both are `None`), newest first, at
    /// most `limit` (test control's listing; `end_session` revokes a user's families).
    fn families(
        &self,
        subject: Option<&str>,
        client_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FamilySummary>, StoreError>;
}

/// A family as the operator sees it (no token digests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilySummary {
    pub id: i64,
    pub grant: Grant,
    pub created_at: UnixTime,
    pub last_used_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
    pub revoked_reason: Option<String>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS families (
    id            INTEGER PRIMARY KEY,
    client_id     TEXT NOT NULL,
    subject       TEXT NOT NULL,
    scope         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoked_reason TEXT
);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    digest      BLOB PRIMARY KEY,
    family_id   INTEGER NOT NULL REFERENCES families(id),
    generation  INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER,
    -- 'active' (the family's one live token) or 'retired' (replaced by rotation)
    status      TEXT NOT NULL,
    retired_at  INTEGER,
    -- digest of the token whose issue retired this one
    retired_by  BLOB
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens(family_id, status);
CREATE TABLE IF NOT EXISTS authorization_codes (
    digest          BLOB PRIMARY KEY,
    client_id       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    scope           TEXT NOT NULL,
    redirect_uri    TEXT,
    code_challenge  TEXT,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER,
    family_id       INTEGER
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signing_keys (
    kid         TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    pkcs8       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
";

/// The SQLite store. One connection behind a mutex: every operation is a short
/// transaction, and SQLite serialises writers anyway.
pub struct SqliteStore {
    // Declared first so it is dropped (and its connection closed) first: the request
    // connection, closed last, still does SQLite's final checkpoint and removes the WAL.
    _checkpointer: Option<Checkpointer>,
    conn: Arc<Mutex<Connection>>,
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
/// each on a virtual disk) then ran inside a token request with the store locked, and
/// every other token request waited. This thread, with a connection of its own:
/// - every [`CHECKPOINT_INTERVAL`], runs a PASSIVE checkpoint, which copies frames into
///   the database file without ever blocking the writer, then fsyncs the database file
///   (SQLite fsyncs it only when a checkpoint catches up with the writer);
/// - once the WAL reaches [`WAL_RESTART_FRAMES`], takes the store's lock (so no writer
///   is active), copies the last frames with a TRUNCATE checkpoint, and lets the WAL
///   start again, empty. Only this short step holds the store.
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
    fn start(path: &str, store: std::sync::Weak<Mutex<Connection>>) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
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
                    let Some(store) = store.upgrade() else { break };
                    let _writer_stopped = store.lock().unwrap_or_else(|e| e.into_inner());
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

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`; `:memory:` for a throwaway store.
    pub fn open(path: &str) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL + NORMAL: durable across process crashes, one fsync per checkpoint.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        // Performance settings; none changes an answer or what is durable.
        // Query planner stability: plans no longer depend on bound values. Without it
        // SQLite re-prepares the two lookups by digest (the JOINs below) on every run,
        // which cost about 12 % of the refresh grant's CPU.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        // Checkpoints move to the checkpointer thread (`:memory:` has no WAL, so no thread).
        let wal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let conn = if wal.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "wal_autocheckpoint", 2 * WAL_RESTART_FRAMES)?;
            Arc::new(Mutex::new(conn))
        } else {
            return Ok(Self { _checkpointer: None, conn: Arc::new(Mutex::new(conn)) });
        };
        let checkpointer = Checkpointer::start(path, Arc::downgrade(&conn))?;
        Ok(Self { _checkpointer: Some(checkpointer), conn })
    }

    /// A fast path for loading many grants at once (benchmarks, imports): every family
    /// with its first refresh token, all in one transaction, where
    /// [`Store::create_family`] commits once per family. Insert in ascending digest order
    /// if you can: the token table is keyed by digest, so ordered keys append to its
    /// B-tree. Returns how many families were created.
    pub fn create_families_bulk(
        &self,
        families: impl IntoIterator<Item = (Grant, NewRefreshToken)>,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut created = 0;
        for (grant, token) in families {
            let family_id = insert_family(&tx, &grant, now)?;
            insert_token(&tx, family_id, 0, &token, now)?;
            created += 1;
        }
        tx.commit()?;
        Ok(created)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done transaction behind
        // (rusqlite rolls back on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn parse_scope(s: String) -> Result<Scope, StoreError> {
    if s.is_empty() { Ok(Scope::empty()) } else { Scope::parse(&s).map_err(|e| StoreError::Corrupt(e.to_string())) }
}

fn insert_token(
    tx: &rusqlite::Transaction<'_>,
    family_id: i64,
    generation: i64,
    token: &NewRefreshToken,
    now: UnixTime,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO refresh_tokens (digest, family_id, generation, issued_at, expires_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, 'active')",
    )?
    .execute(params![&token.digest[..], family_id, generation, now as i64, token.expires_at.map(|e| e as i64)])?;
    Ok(())
}

fn insert_family(tx: &rusqlite::Transaction<'_>, grant: &Grant, now: UnixTime) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO families (client_id, subject, scope, created_at, last_used_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?
    .execute(params![grant.client_id, grant.subject, grant.scope.to_string(), now as i64])?;
    Ok(tx.last_insert_rowid())
}

fn revoke(tx: &rusqlite::Transaction<'_>, family_id: i64, now: UnixTime, reason: &str) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE families SET revoked_at = ?2, revoked_reason = ?3 WHERE id = ?1 AND revoked_at IS NULL")?
        .execute(params![family_id, now as i64, reason])?;
    Ok(())
}

struct Row {
    family_id: i64,
    generation: i64,
    issued_at: i64,
    expires_at: Option<i64>,
    status: String,
    retired_at: Option<i64>,
    retired_by: Option<Vec<u8>>,
    client_id: String,
    subject: String,
    scope: String,
    last_used_at: i64,
    revoked: bool,
}

fn load(conn: &Connection, digest: &TokenDigest) -> Result<Option<(Row, RefreshTokenState)>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT t.family_id, t.generation, t.issued_at, t.expires_at, t.status, t.retired_at, t.retired_by,
                    f.client_id, f.subject, f.scope, f.last_used_at, f.revoked_at IS NOT NULL
             FROM refresh_tokens t JOIN families f ON f.id = t.family_id WHERE t.digest = ?1",
        )?
        .query_row([&digest[..]], |r| {
            Ok(Row {
                family_id: r.get(0)?,
                generation: r.get(1)?,
                issued_at: r.get(2)?,
                expires_at: r.get(3)?,
                status: r.get(4)?,
                retired_at: r.get(5)?,
                retired_by: r.get(6)?,
                client_id: r.get(7)?,
                subject: r.get(8)?,
                scope: r.get(9)?,
                last_used_at: r.get(10)?,
                revoked: r.get(11)?,
            })
        })
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let status = if row.revoked {
        RefreshTokenStatus::Revoked
    } else if row.status == "active" {
        RefreshTokenStatus::Active
    } else {
        // Only the token retired by the issue of the live token may use the grace period.
        let live: Option<Vec<u8>> = conn
            .prepare_cached("SELECT digest FROM refresh_tokens WHERE family_id = ?1 AND status = 'active'")?
            .query_row([row.family_id], |r| r.get(0))
            .optional()?;
        let predecessor_of_live = live.is_some() && live == row.retired_by;
        RefreshTokenStatus::Retired { at: row.retired_at.unwrap_or(0) as u64, predecessor_of_live }
    };
    let state = RefreshTokenState {
        client_id: row.client_id.clone(),
        scope: parse_scope(row.scope.clone())?,
        status,
        expires_at: row.expires_at.map(|e| e as u64),
        last_used_at: row.last_used_at as u64,
    };
    Ok(Some((row, state)))
}

impl Store for SqliteStore {
    fn create_family(&self, grant: &Grant, refresh: Option<NewRefreshToken>, now: UnixTime) -> Result<i64, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let family_id = insert_family(&tx, grant, now)?;
        if let Some(token) = refresh {
            insert_token(&tx, family_id, 0, &token, now)?;
        }
        tx.commit()?;
        Ok(family_id)
    }

    fn refresh(
        &self,
        presented: &TokenDigest,
        replacement: NewRefreshToken,
        now: UnixTime,
        revoke_on_reuse: bool,
        decide: RefreshDecision<'_>,
    ) -> Result<Result<Refreshed, Refused>, StoreError> {
        let mut conn = self.lock();
        // IMMEDIATE: take the write lock before reading, so two refreshes of one token
        // cannot both see it live (atomic rotation).
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let loaded = load(&tx, presented)?;
        let decision = decide(loaded.as_ref().map(|(_, state)| state));
        let (granted, row) = match (decision, loaded) {
            (Ok(granted), Some((row, _))) => (granted, row),
            (Ok(_), None) => return Err(StoreError::Corrupt("refresh decision accepted an unknown token".into())),
            (Err(rejection), loaded) => {
                let mut family_revoked = false;
                if let (RefreshRejection::Reused, Some((row, _)), true) = (rejection, &loaded, revoke_on_reuse) {
                    // RFC 9700 §4.14.2: reuse of a retired token revokes the whole family.
                    revoke(&tx, row.family_id, now, "refresh token reuse detected")?;
                    family_revoked = true;
                }
                tx.commit()?;
                return Ok(Err(Refused { rejection, family_revoked }));
            }
        };
        if granted.rotate {
            // Performance: the presented token is the family's live one unless it is used
            // in the grace period, so the lookup is needed only then.
            let live: Option<(Vec<u8>, i64)> = if row.status == "active" {
                Some((presented.to_vec(), row.generation))
            } else {
                tx.prepare_cached(
                    "SELECT digest, generation FROM refresh_tokens WHERE family_id = ?1 AND status = 'active'",
                )?
                .query_row([row.family_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
            };
            let next_generation = live.as_ref().map_or(row.generation, |(_, g)| *g).max(row.generation) + 1;
            // Retire the live token: the presented one or, in the grace period, its
            // successor. In the grace period the immediate predecessors of the old live
            // token are re-pointed at the new one, so they stay "the immediately previous
            // token" for their grace window; after an ordinary rotation they are not, and
            // a token two generations old is reuse.
            if let Some((live_digest, _)) = &live {
                if granted.within_grace_period {
                    tx.prepare_cached(
                        "UPDATE refresh_tokens SET retired_by = ?2 WHERE family_id = ?1 AND retired_by = ?3",
                    )?
                    .execute(params![row.family_id, &replacement.digest[..], live_digest])?;
                }
                tx.prepare_cached(
                    "UPDATE refresh_tokens SET status = 'retired', retired_at = ?2, retired_by = ?3 WHERE digest = ?1",
                )?
                .execute(params![live_digest, now as i64, &replacement.digest[..]])?;
            }
            insert_token(&tx, row.family_id, next_generation, &replacement, now)?;
        }
        tx.prepare_cached("UPDATE families SET last_used_at = ?2 WHERE id = ?1")?
            .execute(params![row.family_id, now as i64])?;
        tx.commit()?;
        Ok(Ok(Refreshed { rotated: granted.rotate, granted, family_id: row.family_id, subject: row.subject }))
    }

    fn family_created_at(&self, presented: &TokenDigest) -> Result<Option<UnixTime>, StoreError> {
        let conn = self.lock();
        Ok(conn
            .prepare_cached(
                "SELECT f.created_at FROM refresh_tokens t JOIN families f ON f.id = t.family_id WHERE t.digest = ?1",
            )?
            .query_row([&presented[..]], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|t| t as u64))
    }

    fn save_code(&self, digest: &TokenDigest, grant: &AuthorizationCodeGrant) -> Result<(), StoreError> {
        let conn = self.lock();
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
    }

    fn redeem_code(
        &self,
        digest: &TokenDigest,
        now: UnixTime,
        check: &mut dyn FnMut(&AuthorizationCodeGrant) -> Result<(), CodeRejection>,
        refresh: Option<NewRefreshToken>,
    ) -> Result<Result<(AuthorizationCodeGrant, i64), CodeRejection>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row = tx
            .prepare_cached(
                "SELECT client_id, subject, scope, redirect_uri, code_challenge, expires_at, used_at, family_id
                 FROM authorization_codes WHERE digest = ?1",
            )?
            .query_row([&digest[..]], |r| {
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
        let Some((client_id, subject, scope, redirect_uri, code_challenge, expires_at, used_at, family_id)) = row
        else {
            return Ok(Err(CodeRejection::Unknown));
        };
        if used_at.is_some() {
            // RFC 6749 §4.1.2: a second use "SHOULD revoke (when possible) all tokens
            // previously issued based on that authorization code".
            if let Some(family_id) = family_id {
                revoke(&tx, family_id, now, "authorization code reused")?;
            }
            tx.commit()?;
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
        if let Err(rejection) = check(&grant) {
            return Ok(Err(rejection));
        }
        let family =
            Grant { client_id: grant.client_id.clone(), subject: grant.subject.clone(), scope: grant.scope.clone() };
        let family_id = insert_family(&tx, &family, now)?;
        if let Some(token) = refresh {
            insert_token(&tx, family_id, 0, &token, now)?;
        }
        tx.prepare_cached("UPDATE authorization_codes SET used_at = ?2, family_id = ?3 WHERE digest = ?1")?
            .execute(params![&digest[..], now as i64, family_id])?;
        tx.commit()?;
        Ok(Ok((grant, family_id)))
    }

    fn refresh_token_info(&self, digest: &TokenDigest) -> Result<Option<RefreshTokenInfo>, StoreError> {
        let conn = self.lock();
        Ok(load(&conn, digest)?.map(|(row, state)| RefreshTokenInfo {
            family_id: row.family_id,
            grant: Grant { client_id: row.client_id, subject: row.subject, scope: state.scope.clone() },
            issued_at: row.issued_at as u64,
            state,
        }))
    }

    fn revoke_family(&self, family_id: i64, now: UnixTime, reason: &str) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        revoke(&tx, family_id, now, reason)?;
        tx.commit()?;
        Ok(())
    }

    fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached("SELECT kid, alg, pkcs8, created_at FROM signing_keys ORDER BY rowid")?;
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
    }

    fn add_signing_key(&self, key: &StoredKey) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO signing_keys (kid, alg, pkcs8, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![key.kid, key.alg, key.pkcs8, key.created_at as i64],
        )?;
        Ok(())
    }

    fn remove_signing_key(&self, kid: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute("DELETE FROM signing_keys WHERE kid = ?1", [kid])?;
        Ok(())
    }

    fn live_family_count(&self) -> Result<u64, StoreError> {
        let conn = self.lock();
        Ok(conn.query_row("SELECT COUNT(*) FROM families WHERE revoked_at IS NULL", [], |r| r.get::<_, i64>(0))? as u64)
    }

    fn families(
        &self,
        subject: Option<&str>,
        client_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<FamilySummary>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, client_id, subject, scope, created_at, last_used_at, revoked_at, revoked_reason FROM families
             WHERE (?1 IS NULL OR subject = ?1) AND (?2 IS NULL OR client_id = ?2) ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![subject, client_id, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, client_id, subject, scope, created_at, last_used_at, revoked_at, revoked_reason)| {
                Ok(FamilySummary {
                    id,
                    grant: Grant { client_id, subject, scope: parse_scope(scope)? },
                    created_at: created_at as u64,
                    last_used_at: last_used_at as u64,
                    revoked_at: revoked_at.map(|t| t as u64),
                    revoked_reason,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant { client_id: "c".into(), subject: "alice".into(), scope: Scope::parse("read").unwrap() }
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
            store.create_family(&grant(), Some(NewRefreshToken { digest, expires_at: None }), 1).unwrap();
        }
        // No commit checkpoints (the automatic one is far off): only the thread can have
        // copied the committed pages into the database file.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() <= before {
            assert!(std::time::Instant::now() < deadline, "the checkpointer copied nothing");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(store.refresh_token_info(&figure2_protocol::secret::digest("7")).unwrap().is_some());
        // Dropping the store joins the thread; the last connection's close removes the WAL.
        drop(store);
        assert!(!wal.exists(), "the WAL outlived the store");
        let reopened = SqliteStore::open(path.to_str().unwrap()).unwrap();
        assert_eq!(reopened.live_family_count().unwrap(), 2_000);
        drop(reopened);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn memory_stores_have_no_checkpointer() {
        let store = SqliteStore::open(":memory:").unwrap();
        assert!(store._checkpointer.is_none());
    }
}
