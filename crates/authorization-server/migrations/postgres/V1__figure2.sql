-- Figure2 on PostgreSQL: the same model as the SQLite schema at its version 4 (see
-- src/store/migrations.rs), for several authorization-server instances over one database.
-- Times are seconds since the Unix epoch (RFC 7519 NumericDate); digests are SHA-256.

-- A refresh-token family (RFC 9700 §4.14.2): one grant and its live refresh token. A
-- refresh locks this row (SELECT ... FOR UPDATE): presentations of one family's tokens
-- are decided one after the other, whichever instance received them.
CREATE TABLE families (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id              TEXT NOT NULL,
    subject                TEXT NOT NULL,
    scope                  TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    last_used_at           BIGINT NOT NULL,
    revoked_at             BIGINT,
    revoked_reason         TEXT,
    live_digest            BYTEA,
    live_generation        BIGINT,
    live_issued_at         BIGINT,
    live_expires_at        BIGINT,
    grace_floor            BIGINT NOT NULL DEFAULT 0,
    live_access_token_id   BYTEA,
    live_access_token_used BOOLEAN NOT NULL DEFAULT FALSE,
    -- RFC 9449 §5: the DPoP key thumbprint the family's refresh tokens are bound to.
    dpop_jkt               TEXT,
    -- OpenID Connect Core §12.2: the auth_time every refreshed id_token repeats.
    auth_time              BIGINT
);
CREATE INDEX families_subject ON families (subject);
CREATE INDEX families_client ON families (client_id);
CREATE INDEX families_live_access_token ON families (live_access_token_id)
    WHERE live_access_token_id IS NOT NULL;

-- Every refresh token ever issued (its digest), live (retired_at NULL) or retired.
CREATE TABLE refresh_tokens (
    digest      BYTEA PRIMARY KEY,
    family_id   BIGINT NOT NULL REFERENCES families (id),
    generation  BIGINT NOT NULL,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT,
    retired_at  BIGINT,
    reuses      INTEGER NOT NULL DEFAULT 0
);

-- RFC 6749 §4.1.2: codes, single use; a redemption locks its row.
CREATE TABLE authorization_codes (
    digest          BYTEA PRIMARY KEY,
    client_id       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    scope           TEXT NOT NULL,
    redirect_uri    TEXT,
    code_challenge  TEXT,
    expires_at      BIGINT NOT NULL,
    used_at         BIGINT,
    family_id       BIGINT
);

-- OpenID Connect: what the authorization step recorded for an `openid` code.
CREATE TABLE oidc_authorizations (
    code_digest     BYTEA PRIMARY KEY,
    nonce           TEXT,
    auth_time       BIGINT NOT NULL,
    offline_access  BOOLEAN NOT NULL,
    expires_at      BIGINT NOT NULL
);

-- The keys every instance signs with and publishes (RFC 7517), oldest first.
CREATE TABLE signing_keys (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kid         TEXT NOT NULL UNIQUE,
    alg         TEXT NOT NULL,
    pkcs8       BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Named 32-byte server secrets shared by every instance.
CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    value  BYTEA NOT NULL
);
