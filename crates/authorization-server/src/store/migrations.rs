//! The SQLite schema, as versioned migrations (`PRAGMA user_version`, by
//! `rusqlite_migration`). A file written by any earlier release opens with this one.
//!
//! - **1** — release 0.1.0: one row per refresh token with a status column and an index on
//!   `(family_id, status)`; a rotation wrote about five pages. Its statements are
//!   `IF NOT EXISTS`, so a 0.1.0 file (which has the tables but `user_version = 0`) takes
//!   it as a no-op.
//! - **2** — the lean schema: the family row holds its live token, and `refresh_tokens`
//!   maps every digest ever issued to its family. A rotation writes three pages: the new
//!   token's row, the retired token's `retired_at`, and the family row.
//! - **3** — recovery policies (`figure2_protocol::presets`): a retired token's reuse count
//!   (count grace), the live token's access-token id and whether it was used (usage-based
//!   recovery, indexed for introspection), and `server_secrets` (the key the idempotent
//!   retry derives successors with). Rows of older files get the defaults: never reused,
//!   no access token known.
//! - **4** — RFC 9449 §5: `families.dpop_jkt`, the thumbprint of the DPoP key a family's
//!   refresh tokens are bound to (NULL: not bound; every family written before).
//! - **5** — OpenID Connect moves into the store: `oidc_authorizations` (an `openid`
//!   code's `nonce`, `auth_time`, `offline_access`) and `oidc_families` (a family's
//!   `auth_time`). Earlier releases created both with `IF NOT EXISTS` on a connection of
//!   their own; so does this migration, which keeps their rows.

use rusqlite_migration::{M, Migrations};

const V1: &str = "
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
    status      TEXT NOT NULL,
    retired_at  INTEGER,
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

const V2: &str = "
-- The family row carries its live token (NULL when the client got no refresh token) and
-- the grace floor (see figure2_protocol::family::RefreshTokenFamily::grace_floor).
ALTER TABLE families ADD COLUMN live_digest BLOB;
ALTER TABLE families ADD COLUMN live_generation INTEGER;
ALTER TABLE families ADD COLUMN live_issued_at INTEGER;
ALTER TABLE families ADD COLUMN live_expires_at INTEGER;
ALTER TABLE families ADD COLUMN grace_floor INTEGER NOT NULL DEFAULT 0;
UPDATE families SET (live_digest, live_generation, live_issued_at, live_expires_at) =
    (SELECT digest, generation, issued_at, expires_at FROM refresh_tokens t
     WHERE t.family_id = families.id AND t.status = 'active');
-- 0.1.0 pointed each immediate predecessor of the live token at it (`retired_by`); they
-- are the retired generations from the lowest of them up.
UPDATE families SET grace_floor = COALESCE(
    (SELECT MIN(generation) FROM refresh_tokens t
     WHERE t.family_id = families.id AND t.retired_by = families.live_digest),
    live_generation, 0);
-- Every digest ever issued, live (retired_at NULL) or retired. No index but the key.
CREATE TABLE refresh_tokens_v2 (
    digest      BLOB PRIMARY KEY,
    family_id   INTEGER NOT NULL,
    generation  INTEGER NOT NULL,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER,
    retired_at  INTEGER
) WITHOUT ROWID;
INSERT INTO refresh_tokens_v2 (digest, family_id, generation, issued_at, expires_at, retired_at)
    SELECT digest, family_id, generation, issued_at, expires_at,
           CASE WHEN status = 'active' THEN NULL ELSE COALESCE(retired_at, issued_at) END
    FROM refresh_tokens;
DROP INDEX IF EXISTS refresh_tokens_family;
DROP TABLE refresh_tokens;
ALTER TABLE refresh_tokens_v2 RENAME TO refresh_tokens;
";

const V3: &str = "
ALTER TABLE refresh_tokens ADD COLUMN reuses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE families ADD COLUMN live_access_token_id BLOB;
ALTER TABLE families ADD COLUMN live_access_token_used INTEGER NOT NULL DEFAULT 0;
CREATE INDEX families_live_access_token ON families(live_access_token_id)
    WHERE live_access_token_id IS NOT NULL;
CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
";

const V4: &str = "
ALTER TABLE families ADD COLUMN dpop_jkt TEXT;
";

const V5: &str = "
CREATE TABLE IF NOT EXISTS oidc_authorizations (
    code_digest     BLOB PRIMARY KEY,
    nonce           TEXT,
    auth_time       INTEGER NOT NULL,
    offline_access  INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS oidc_families (
    family_id  INTEGER PRIMARY KEY,
    auth_time  INTEGER NOT NULL
);
";

/// Every migration, oldest first. Append; never edit one that has shipped.
pub(super) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1), M::up(V2), M::up(V3), M::up(V4), M::up(V5)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }
}
